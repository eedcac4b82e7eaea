/* Decoding weight row segments to f32, one function per storage format. */
#include <string.h>

#include "ffn_weights.h"

void moep__wsrc_decode(const moep__ffn_kernel_t *k, const moep__wsrc_t *s, int64_t e, int64_t r,
                       int64_t k0, int64_t n, float *dst) {
    const int64_t at = (e * s->rows + r) * s->cols + k0; /* element index */
    switch (s->format) {
    case MOEP_WEIGHTS_F32:
        memcpy(dst, (const float *)s->stack.data + at, (size_t)n * sizeof(float));
        break;
    case MOEP_WEIGHTS_BF16: k->widen_bf16((const uint16_t *)s->stack.data + at, n, dst); break;
    default: memset(dst, 0, (size_t)n * sizeof(float)); break; /* rejected by the plan */
    }
}

void moep__wsrc_pack(const moep__ffn_kernel_t *k, const moep__wsrc_t *s, int64_t e, int64_t r0, int64_t valid, int64_t count,
                     int64_t k0, int64_t kc, int64_t kp, float *dst, int64_t ld) {
    for (int64_t i = 0; i < count; i++) {
        float *row = dst + i * ld;
        if (i < valid) {
            moep__wsrc_decode(k, s, e, r0 + i, k0, kc, row);
            memset(row + kc, 0, (size_t)(kp - kc) * sizeof(float));
        } else {
            memset(row, 0, (size_t)kp * sizeof(float));
        }
    }
}
