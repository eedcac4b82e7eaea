/*
 * Row conversions and accumulations between f32 and bf16: the inner loops of
 * dispatch, combine and the router. Branch-free so that they vectorise;
 * target_clones adds an AVX2 copy picked at load time (portable baseline
 * otherwise, never -march=native).
 */
#include <string.h>

#include "moep_internal.h"

#define MOEP_ROW_CLONES __attribute__((target_clones("avx2", "default")))

static inline float bf16_bits_to_f32(uint16_t b) {
    uint32_t u = (uint32_t)b << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static inline uint16_t f32_to_bf16_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    uint32_t rounded = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16; /* round to nearest even */
    uint32_t quiet_nan = (u >> 16) | 0x40u;
    return (uint16_t)((u & 0x7fffffffu) > 0x7f800000u ? quiet_nan : rounded);
}

uint16_t moep_f32_to_bf16(float f) { return f32_to_bf16_bits(f); }
float moep_bf16_to_f32(uint16_t b) { return bf16_bits_to_f32(b); }

MOEP_ROW_CLONES static void bf16_row_to_f32(const uint16_t *s, int64_t n, float *d) {
    for (int64_t i = 0; i < n; i++) d[i] = bf16_bits_to_f32(s[i]);
}

MOEP_ROW_CLONES static void f32_row_to_bf16(const float *s, int64_t n, uint16_t *d) {
    for (int64_t i = 0; i < n; i++) d[i] = f32_to_bf16_bits(s[i]);
}

void moep__row_to_f32(const void *src, moep_dtype_t t, int64_t n, float *dst) {
    if (t == MOEP_DTYPE_F32)
        memcpy(dst, src, (size_t)n * sizeof(float));
    else
        bf16_row_to_f32(src, n, dst);
}

void moep__row_from_f32(const float *src, int64_t n, moep_dtype_t t, void *dst) {
    if (t == MOEP_DTYPE_F32)
        memcpy(dst, src, (size_t)n * sizeof(float));
    else
        f32_row_to_bf16(src, n, dst);
}

MOEP_ROW_CLONES static void axpy_f32(float *acc, float a, const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) acc[i] += a * x[i];
}

MOEP_ROW_CLONES static void axpy_bf16(float *acc, float a, const uint16_t *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) acc[i] += a * bf16_bits_to_f32(x[i]);
}

void moep__row_axpy(float *acc, float a, const void *x, moep_dtype_t t, int64_t n) {
    if (t == MOEP_DTYPE_F32)
        axpy_f32(acc, a, x, n);
    else
        axpy_bf16(acc, a, x, n);
}

MOEP_ROW_CLONES static void scale_f32(float *acc, float a, const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) acc[i] = a * x[i];
}

MOEP_ROW_CLONES static void scale_bf16(float *acc, float a, const uint16_t *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) acc[i] = a * bf16_bits_to_f32(x[i]);
}

void moep__row_scale(float *acc, float a, const void *x, moep_dtype_t t, int64_t n) {
    if (t == MOEP_DTYPE_F32)
        scale_f32(acc, a, x, n);
    else
        scale_bf16(acc, a, x, n);
}
