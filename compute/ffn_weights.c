/* Decoding weight row segments to f32, one function per storage format. */
#include <string.h>

#include "compute/quant/quant_tables.h"
#include "ffn_weights.h"

/* Longest row segment decoded at once (the FFN's k block). */
#define FFN_WEIGHTS_MAX_K 1024

/*
 * The block-scaled formats. k0 is always a multiple of the k block
 * (FFN_KC, a multiple of 128), so a segment starts on a scale block.
 */
static void decode_fp8(const moep__ffn_kernel_t *k, const moep__wsrc_t *s, int64_t e, int64_t r,
                       int64_t k0, int64_t n, float *dst) {
    const int64_t B = MOEP__FP8_BLOCK, nbr = (s->rows + B - 1) / B, nbc = (s->cols + B - 1) / B;
    const uint8_t *q = (const uint8_t *)s->stack.data + (e * s->rows + r) * s->cols;
    const float *srow = (const float *)s->stack.scales + (e * nbr + r / B) * nbc;
    for (int64_t c = k0; c < k0 + n; c += B)
        k->decode_fp8(q + c, (k0 + n - c < B ? k0 + n - c : B), srow[c / B], dst + (c - k0));
}

static void decode_fp4(const moep__ffn_kernel_t *k, const moep__wsrc_t *s, int64_t e, int64_t r,
                       int64_t k0, int64_t n, float *dst) {
    const int nv = s->format == MOEP_WEIGHTS_NVFP4;
    const int64_t B = nv ? MOEP__NV_BLOCK : MOEP__MX_BLOCK, row = e * s->rows + r;
    const uint8_t *q = (const uint8_t *)s->stack.data + (row * s->cols + k0) / 2;
    const uint8_t *sc = (const uint8_t *)s->stack.scales + row * (s->cols / B) + k0 / B;
    const float global = nv ? s->stack.global_scale[e] : 1.0f;
    float scales[FFN_WEIGHTS_MAX_K / MOEP__NV_BLOCK];
    for (int64_t b = 0; b < n / B; b++)
        /* NVFP4: the block scale times the global one, rounded once (as the reference). */
        scales[b] = nv ? moep__e4m3_lut[sc[b]] * global : moep__e8m0_decode(sc[b]);
    k->decode_fp4(q, n, scales, B, dst);
}

void moep__wsrc_decode(const moep__ffn_kernel_t *k, const moep__wsrc_t *s, int64_t e, int64_t r,
                       int64_t k0, int64_t n, float *dst) {
    const int64_t at = (e * s->rows + r) * s->cols + k0; /* element index */
    switch (s->format) {
    case MOEP_WEIGHTS_F32:
        memcpy(dst, (const float *)s->stack.data + at, (size_t)n * sizeof(float));
        break;
    case MOEP_WEIGHTS_BF16: k->widen_bf16((const uint16_t *)s->stack.data + at, n, dst); break;
    case MOEP_WEIGHTS_FP8_E4M3: decode_fp8(k, s, e, r, k0, n, dst); break;
    case MOEP_WEIGHTS_MXFP4:
    case MOEP_WEIGHTS_NVFP4: decode_fp4(k, s, e, r, k0, n, dst); break;
    default: memset(dst, 0, (size_t)n * sizeof(float)); break; /* unreachable: plan checks */
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
