/* Run-time choice of the FFN kernel (no -march flags: one portable binary). */
#include <stdlib.h>
#include <string.h>

#include "ffn_kernel.h"

static int cpu_has_avx2_fma(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
    return 0;
#endif
}

const moep__ffn_kernel_t *moep__ffn_kernel_select(void) {
    const char *want = getenv("MOEP_FFN_KERNEL");
    if (want != NULL && strcmp(want, "generic") == 0) return &moep__ffn_kernel_generic;
#if defined(__x86_64__) || defined(__i386__)
    if (cpu_has_avx2_fma()) return &moep__ffn_kernel_avx2;
#endif
    return &moep__ffn_kernel_generic;
}
