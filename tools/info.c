/* `moep info`: version, compiled-in transports and whether each can run here. */
#include <stdio.h>

#include "moep.h"

int info_main(int argc, char **argv) {
    (void)argc;
    (void)argv;
    int v = moep_version();
    printf("moep %d.%d.%d\n", v / 10000, v / 100 % 100, v % 100);
    __builtin_cpu_init();
    printf("cpu: avx2=%d fma=%d avx512f=%d\n", __builtin_cpu_supports("avx2") != 0,
           __builtin_cpu_supports("fma") != 0, __builtin_cpu_supports("avx512f") != 0);
    printf("\n%-10s %-9s %-6s %s\n", "transport", "compiled", "probe", "detail");
    for (int32_t i = 0; i < moep_transport_count(); i++) {
        const char *name = "?";
        int compiled = 0;
        moep_status_t probe = MOEP_ERR_UNSUPPORTED;
        char why[256] = "";
        moep_transport_describe(i, &name, &compiled, &probe, why, sizeof why);
        printf("%-10s %-9s %-6s %s\n", name, compiled ? "yes" : "no",
               probe == MOEP_OK ? "ok" : "fail", why);
    }
    printf("\nselection: --transport / moep_comm_params.transport > MOEP_TRANSPORT > probe order above\n");
    return 0;
}
