/* FP4 E2M1 weights with MXFP4 (E8M0 per 32) or NVFP4 (E4M3 per 16 + f32
 * per matrix) block scales, one row of blocks at a time. */
#include "quant_internal.h"

/* Encode n (even) values divided by `div` as E2M1 pairs, low nibble first.
 * div = 0 (a block whose scale underflowed) stores zeros. */
static void encode_e2m1_pairs(const float *x, int64_t n, float div, uint8_t *q) {
    if (div == 0.0f) {
        memset(q, 0, (size_t)n / 2);
        return;
    }
    for (int64_t j = 0; j < n / 2; j++)
        q[j] = (uint8_t)(moep__e2m1_encode(x[2 * j] / div) |
                         moep__e2m1_encode(x[2 * j + 1] / div) << 4);
}

/*
 * MX shared exponent as an E8M0 code: floor(log2 amax) - 2 + 127, which is
 * the f32 exponent field of amax minus 2, clamped at 0 (amax subnormal in
 * f32 lands there too). All-zero block: 127 (scale 1).
 */
static uint8_t mx_scale_code(float amax) {
    if (amax == 0.0f) return 127;
    const uint32_t e = moep__f32_bits(amax) >> 23;
    return (uint8_t)(e > 2 ? e - 2 : 0);
}

void moep__quant_mxfp4_weights(const void *src, moep_dtype_t t, int64_t rows, int64_t cols,
                               uint8_t *q, uint8_t *scales) {
    const int64_t nb = cols / MOEP__MX_BLOCK;
#pragma omp parallel for schedule(static) if (rows * cols >= MOEP__QUANT_PAR_MIN)
    for (int64_t r = 0; r < rows; r++) {
        for (int64_t b = 0; b < nb; b++) {
            float tmp[MOEP__MX_BLOCK];
            const float *x = moep__load_f32(src, t, r * cols + b * MOEP__MX_BLOCK,
                                            MOEP__MX_BLOCK, tmp);
            const uint8_t code = mx_scale_code(moep__amax(x, MOEP__MX_BLOCK));
            scales[r * nb + b] = code;
            /* Division by the power of two 2^X is exact, as x * 2^-X would be. */
            encode_e2m1_pairs(x, MOEP__MX_BLOCK, moep__e8m0_decode(code),
                              q + (r * cols + b * MOEP__MX_BLOCK) / 2);
        }
    }
}

/* max |x| over a whole matrix. */
static float matrix_amax(const void *src, moep_dtype_t t, int64_t n) {
    float amax = 0.0f;
#pragma omp parallel for schedule(static) reduction(max : amax) if (n >= MOEP__QUANT_PAR_MIN)
    for (int64_t c0 = 0; c0 < n; c0 += MOEP__FP8_BLOCK) {
        const int64_t m = n - c0 < MOEP__FP8_BLOCK ? n - c0 : MOEP__FP8_BLOCK;
        float tmp[MOEP__FP8_BLOCK];
        amax = fmaxf(amax, moep__amax(moep__load_f32(src, t, c0, m, tmp), m));
    }
    return amax;
}

void moep__quant_nvfp4_weights(const void *src, moep_dtype_t t, int64_t rows, int64_t cols,
                               uint8_t *q, uint8_t *scales, float *global) {
    float g = matrix_amax(src, t, rows * cols) / (MOEP__E4M3_MAX * MOEP__E2M1_MAX);
    if (g == 0.0f) g = 1.0f; /* all-zero matrix (or amax so small it underflows) */
    *global = g;
    const int64_t nb = cols / MOEP__NV_BLOCK;
#pragma omp parallel for schedule(static) if (rows * cols >= MOEP__QUANT_PAR_MIN)
    for (int64_t r = 0; r < rows; r++) {
        for (int64_t b = 0; b < nb; b++) {
            float tmp[MOEP__NV_BLOCK];
            const float *x = moep__load_f32(src, t, r * cols + b * MOEP__NV_BLOCK,
                                            MOEP__NV_BLOCK, tmp);
            const uint8_t s =
                moep__e4m3_encode(moep__amax(x, MOEP__NV_BLOCK) / MOEP__E2M1_MAX / g);
            scales[r * nb + b] = s;
            /* Same f32 product as the decoder (quant_tables.h) forms. */
            encode_e2m1_pairs(x, MOEP__NV_BLOCK, moep__e4m3_lut[s] * g,
                              q + (r * cols + b * MOEP__NV_BLOCK) / 2);
        }
    }
}
