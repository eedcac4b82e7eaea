/* Weight format names and the moep_expert_weights_t initialiser. */
#include <string.h>

#include "moep_internal.h"

const char *moep_weight_format_name(moep_weight_format_t f) {
    static const char *const names[MOEP_WEIGHTS_FORMAT_COUNT_] = {"f32", "bf16", "fp8_e4m3",
                                                                  "mxfp4", "nvfp4"};
    if ((int)f < 0 || f >= MOEP_WEIGHTS_FORMAT_COUNT_) return "?";
    return names[f];
}

moep_status_t moep_expert_weights_init(moep_expert_weights_t *w) {
    MOEP_CHECK_ARG("moep_expert_weights_init", w);
    memset(w, 0, sizeof *w);
    w->struct_size = (uint32_t)sizeof *w;
    w->format = MOEP_WEIGHTS_F32;
    return MOEP_OK;
}
