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

void moep__wsrc_rows(const moep__ffn_kernel_t *k, const moep__wsrc_t *s, int64_t e, int64_t r0,
                     int64_t valid, int64_t count, int64_t k0, int64_t kc, int64_t kp, float *buf,
                     int64_t ld, const float *zeros, const float **rows) {
    const int direct = s->format == MOEP_WEIGHTS_F32 && s->cols % 8 == 0;
    for (int64_t i = 0; i < count; i++) {
        if (i >= valid) {
            rows[i] = zeros;
        } else if (direct) {
            rows[i] = (const float *)s->stack.data + (e * s->rows + r0 + i) * s->cols + k0;
        } else {
            float *row = buf + i * ld;
            moep__wsrc_decode(k, s, e, r0 + i, k0, kc, row);
            memset(row + kc, 0, (size_t)(kp - kc) * sizeof(float));
            rows[i] = row;
        }
    }
}

/* Bits per stored element (the scales are small and left to the hardware). */
static int64_t element_bits(moep_weight_format_t f) {
    switch (f) {
    case MOEP_WEIGHTS_F32: return 32;
    case MOEP_WEIGHTS_BF16: return 16;
    case MOEP_WEIGHTS_FP8_E4M3: return 8;
    default: return 4;
    }
}

void moep__wsrc_locate(const moep__wsrc_t *s, int64_t e, int64_t r0, int64_t count, int64_t k0,
                       int64_t kc, const char **row, int64_t *bytes) {
    const int64_t bits = element_bits(s->format);
    for (int64_t i = 0; i < count; i++)
        row[i] = (const char *)s->stack.data + ((e * s->rows + r0 + i) * s->cols + k0) * bits / 8;
    *bytes = (kc * bits + 7) / 8;
}
