/*
 * Decoding moep's low-precision formats: lookup tables and inline row
 * decoders shared by the quantizers (compute/quant) and the kernels that read
 * quantized weights (compute/ FFN). Internal (moep__), not installed.
 *
 * Every decoder here gives exactly the values moep_dequantize_weights() and
 * moep_dequantize_act_fp8() give, so kernels and reference agree bit for bit.
 * Layouts are those of moep_weight_stack_t (api/moep_compute.h).
 */
#ifndef MOEP_QUANT_TABLES_H
#define MOEP_QUANT_TABLES_H

#include <stdint.h>
#include <string.h>

/* Block sizes of the formats. */
#define MOEP__FP8_BLOCK 128 /* FP8 weights: 128x128; FP8 activations: 1x128 */
#define MOEP__MX_BLOCK 32   /* MXFP4: one E8M0 scale per 32 elements of a row */
#define MOEP__NV_BLOCK 16   /* NVFP4: one E4M3 scale per 16 elements of a row */

/* Code -> value. NaN codes decode to NaN (sign kept), E5M2 0x7C/0xFC to +-Inf. */
extern const float moep__e4m3_lut[256];
extern const float moep__e5m2_lut[256];
extern const float moep__e2m1_lut[16]; /* low nibble code; bit 3 is the sign */

/* E8M0 scale 2^(v-127); v = 0 is the float subnormal 2^-127; v = 0xFF is NaN. */
static inline float moep__e8m0_decode(uint8_t v) {
    uint32_t u = v == 0xFF ? 0x7FC00000u : v == 0 ? 0x00400000u : (uint32_t)v << 23;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* n E4M3 codes times one scale (FP8 weight blocks, FP8 activations). */
static inline void moep__decode_e4m3_scaled(const uint8_t *q, int64_t n, float scale,
                                            float *dst) {
    for (int64_t i = 0; i < n; i++) dst[i] = moep__e4m3_lut[q[i]] * scale;
}

/* 2*nbytes E2M1 codes, two per byte (low nibble = even element), times one scale. */
static inline void moep__decode_e2m1_scaled(const uint8_t *q, int64_t nbytes, float scale,
                                            float *dst) {
    for (int64_t j = 0; j < nbytes; j++) {
        dst[2 * j] = moep__e2m1_lut[q[j] & 15] * scale;
        dst[2 * j + 1] = moep__e2m1_lut[q[j] >> 4] * scale;
    }
}

/* One MXFP4 row: cols % 32 == 0; q has cols/2 bytes, scales cols/32 E8M0 codes. */
static inline void moep__decode_mxfp4_row(const uint8_t *q, const uint8_t *scales, int64_t cols,
                                          float *dst) {
    for (int64_t b = 0; b < cols / MOEP__MX_BLOCK; b++)
        moep__decode_e2m1_scaled(q + b * (MOEP__MX_BLOCK / 2), MOEP__MX_BLOCK / 2,
                                 moep__e8m0_decode(scales[b]), dst + b * MOEP__MX_BLOCK);
}

/*
 * One NVFP4 row: cols % 16 == 0; q has cols/2 bytes, scales cols/16 E4M3
 * codes. value = e2m1 * (e4m3(scale) * global), the product in brackets
 * rounded to f32 once per block.
 */
static inline void moep__decode_nvfp4_row(const uint8_t *q, const uint8_t *scales, int64_t cols,
                                          float global, float *dst) {
    for (int64_t b = 0; b < cols / MOEP__NV_BLOCK; b++)
        moep__decode_e2m1_scaled(q + b * (MOEP__NV_BLOCK / 2), MOEP__NV_BLOCK / 2,
                                 moep__e4m3_lut[scales[b]] * global, dst + b * MOEP__NV_BLOCK);
}

/*
 * One FP8 weight row r of a [rows, cols] matrix: scales is the matrix's
 * [ceil(rows/128), ceil(cols/128)] f32 grid.
 */
static inline void moep__decode_fp8_weight_row(const uint8_t *q, const float *scales, int64_t r,
                                               int64_t cols, float *dst) {
    int64_t nbc = (cols + MOEP__FP8_BLOCK - 1) / MOEP__FP8_BLOCK;
    const float *srow = scales + (r / MOEP__FP8_BLOCK) * nbc;
    for (int64_t c0 = 0; c0 < cols; c0 += MOEP__FP8_BLOCK) {
        int64_t n = cols - c0 < MOEP__FP8_BLOCK ? cols - c0 : MOEP__FP8_BLOCK;
        moep__decode_e4m3_scaled(q + c0, n, srow[c0 / MOEP__FP8_BLOCK], dst + c0);
    }
}

#endif /* MOEP_QUANT_TABLES_H */
