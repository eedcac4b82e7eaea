/*
 * Encoders and helpers private to compute/quant. Inline so the block loops
 * vectorise: every encoder is branch-free integer / float arithmetic.
 */
#ifndef MOEP_QUANT_INTERNAL_H
#define MOEP_QUANT_INTERNAL_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "compute/quant/quant_tables.h"
#include "moep_internal.h"

static inline uint32_t moep__f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static inline float moep__bits_f32(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/*
 * f32 -> 8-bit float with `mbits` mantissa bits and exponent `bias`, RNE,
 * saturating at max_code (magnitude code), NaN -> 0x7F | sign.
 * Normal results: round the f32 bit pattern to mbits mantissa bits (the
 * carry walks into the exponent) and rebias. Subnormal results: adding the
 * power of two whose f32 ulp equals the target's subnormal step lets the FPU
 * do the RNE (default rounding mode assumed, as everywhere in moep).
 */
static inline uint8_t moep__fp8_encode(float f, int mbits, int bias, uint32_t max_code) {
    const uint32_t u = moep__f32_bits(f);
    const uint32_t sign = (u >> 24) & 0x80u;
    const uint32_t a = u & 0x7FFFFFFFu;
    const uint32_t shift = 23u - (uint32_t)mbits;
    const uint32_t min_normal = (uint32_t)(127 + 1 - bias) << 23;
    const float magic = moep__bits_f32((uint32_t)(127 + 24 - bias - mbits) << 23);
    uint32_t sub = moep__f32_bits(moep__bits_f32(a) + magic) - moep__f32_bits(magic);
    uint32_t nrm = ((a + ((1u << (shift - 1)) - 1u) + ((a >> shift) & 1u)) >> shift) -
                   ((uint32_t)(127 - bias) << mbits);
    /* Select with masks: a ternary lets GCC branch around the float add
     * (which may trap), and a branch stops the loops from vectorising. */
    const uint32_t is_sub = 0u - (uint32_t)(a < min_normal);
    uint32_t code = (sub & is_sub) | (nrm & ~is_sub);
    code = code > max_code ? max_code : code;
    code = a > 0x7F800000u ? 0x7Fu : code;
    return (uint8_t)(code | sign);
}

#define MOEP__E4M3_MAX 448.0f
#define MOEP__E2M1_MAX 6.0f

static inline uint8_t moep__e4m3_encode(float f) { return moep__fp8_encode(f, 3, 7, 0x7Eu); }
static inline uint8_t moep__e5m2_encode(float f) { return moep__fp8_encode(f, 2, 15, 0x7Bu); }

/*
 * f32 -> E2M1 code (sign in bit 3). The thresholds are the midpoints between
 * neighbours; a tie goes to the even code: > for ties that round down, >= for
 * ties that round up. Beyond 5 everything is 6 (saturation, Inf included).
 * NaN compares false everywhere and gives +-0.
 */
static inline uint8_t moep__e2m1_encode(float f) {
    const uint32_t sign = (moep__f32_bits(f) >> 28) & 8u;
    const float a = fabsf(f);
    uint32_t code = (uint32_t)(a > 0.25f) + (uint32_t)(a >= 0.75f) + (uint32_t)(a > 1.25f) +
                    (uint32_t)(a >= 1.75f) + (uint32_t)(a > 2.5f) + (uint32_t)(a >= 3.5f) +
                    (uint32_t)(a > 5.0f);
    return (uint8_t)(code | sign);
}

/* max |x[i]| (x finite). Finite non-negative floats order like their bit
 * patterns; an integer max vectorises where a float max (NaN rules) does not. */
static inline float moep__amax(const float *x, int64_t n) {
    int32_t m = 0;
    for (int64_t i = 0; i < n; i++) {
        const int32_t a = (int32_t)(moep__f32_bits(x[i]) & 0x7FFFFFFFu);
        m = a > m ? a : m;
    }
    return moep__bits_f32((uint32_t)m);
}

/* FP8 block scale amax / 448; 1 when that is 0 (all-zero block, or underflow). */
static inline float moep__fp8_block_scale(float amax) {
    float s = amax / MOEP__E4M3_MAX;
    return s > 0.0f ? s : 1.0f;
}

/* E4M3-encode n values divided by scale. */
static inline void moep__encode_e4m3_scaled(const float *x, int64_t n, float scale, uint8_t *q) {
    for (int64_t i = 0; i < n; i++) q[i] = moep__e4m3_encode(x[i] / scale);
}

/*
 * Elements off .. off+n-1 of an f32 or bf16 array as f32: a pointer into
 * the source for f32, else converted into tmp (n floats).
 */
static inline const float *moep__load_f32(const void *base, moep_dtype_t t, int64_t off,
                                          int64_t n, float *tmp) {
    if (t == MOEP_DTYPE_F32) return (const float *)base + off;
    const uint16_t *s = (const uint16_t *)base + off;
    for (int64_t i = 0; i < n; i++) tmp[i] = moep__bits_f32((uint32_t)s[i] << 16);
    return tmp;
}

/* Where to decode n elements bound for dst[off..]: dst itself for f32, else tmp. */
static inline float *moep__out_f32(void *base, moep_dtype_t t, int64_t off, float *tmp) {
    return t == MOEP_DTYPE_F32 ? (float *)base + off : tmp;
}
/* Finish a moep__out_f32 span: convert tmp to bf16 (RNE) if needed. */
static inline void moep__out_commit(const float *tmp, int64_t n, moep_dtype_t t, void *base,
                                    int64_t off) {
    if (t != MOEP_DTYPE_F32) moep__row_from_f32(tmp, n, t, (uint16_t *)base + off);
}

/* Index of the first NaN/Inf among n f32 or bf16 values, -1 if all finite. */
int64_t moep__first_nonfinite(const void *src, moep_dtype_t t, int64_t n);

/*
 * A quantizer's source tensor (already shape-checked): dtype f32 or bf16
 * (else MOEP_ERR_SHAPE), every value finite (else MOEP_ERR_NUMERIC naming the
 * element as name[i][j].. and its value).
 */
moep_status_t moep__check_quant_src(const char *fn, const char *name, const moep_tensor_t *t);

/* Weight stack quantizers, one expert matrix [rows, cols] at a time (inputs
 * valid and finite; src points at the matrix, elements of dtype t). */
void moep__quant_fp8_weights(const void *src, moep_dtype_t t, int64_t rows, int64_t cols,
                             uint8_t *q, float *scales);
void moep__quant_mxfp4_weights(const void *src, moep_dtype_t t, int64_t rows, int64_t cols,
                               uint8_t *q, uint8_t *scales);
void moep__quant_nvfp4_weights(const void *src, moep_dtype_t t, int64_t rows, int64_t cols,
                               uint8_t *q, uint8_t *scales, float *global);

/* Parallelise loops over at least this many elements (OpenMP `if`). */
#define MOEP__QUANT_PAR_MIN (1 << 16)

#endif /* MOEP_QUANT_INTERNAL_H */
