/*
 * AVX2+FMA FFN kernel, compiled for the baseline ISA with per-function
 * target attributes and chosen at run time (ffn_kernel_select.c).
 *
 * Register tile: 4 weight rows x 3 tokens = 12 ymm accumulators, plus 3
 * token vectors and 1 weight vector = all 16 ymm registers. Per 8-wide k step
 * that is 12 FMAs for 7 loads, so the FMA ports, not the loads, set the pace.
 * The 8 partial sums of each accumulator are folded once per k block.
 */
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#include <string.h>

#include "ffn_kernel.h"

#define AVX2 __attribute__((target("avx2,fma")))
#define AVX2_INLINE __attribute__((target("avx2,fma"), always_inline)) static inline

/* (sum a0, sum a1, sum a2, sum a3) added to c[0..3]. */
AVX2_INLINE void add_sums4(float *c, __m256 a0, __m256 a1, __m256 a2, __m256 a3) {
    __m256 h = _mm256_hadd_ps(_mm256_hadd_ps(a0, a1), _mm256_hadd_ps(a2, a3));
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
    _mm_storeu_ps(c, _mm_add_ps(_mm_loadu_ps(c), s));
}

/* 4 weight rows x NT tokens (NT = 1..3, a compile-time constant after inlining). */
AVX2_INLINE void tile_4xn(const float *const w[4], const float *x, int64_t ldx, int64_t kp,
                          float *c, int64_t ldc, const int nt) {
    __m256 acc[4][3];
#pragma GCC unroll 4
    for (int i = 0; i < 4; i++)
#pragma GCC unroll 3
        for (int j = 0; j < 3; j++) acc[i][j] = _mm256_setzero_ps();
    for (int64_t k = 0; k < kp; k += 8) {
        __m256 xv[3];
#pragma GCC unroll 3
        for (int j = 0; j < nt; j++) xv[j] = _mm256_loadu_ps(x + j * ldx + k);
#pragma GCC unroll 4
        for (int i = 0; i < 4; i++) {
            __m256 wv = _mm256_loadu_ps(w[i] + k);
#pragma GCC unroll 3
            for (int j = 0; j < nt; j++) acc[i][j] = _mm256_fmadd_ps(wv, xv[j], acc[i][j]);
        }
    }
#pragma GCC unroll 3
    for (int j = 0; j < nt; j++) add_sums4(c + j * ldc, acc[0][j], acc[1][j], acc[2][j], acc[3][j]);
}

AVX2 static void gemm_nt_avx2(const float *const w[4], const float *x, int64_t ldx, int64_t ntok,
                              int64_t kp, float *c, int64_t ldc, const moep__ffn_prefetch_t *next) {
    const int64_t tiles = (ntok + 2) / 3;
    int64_t j = 0;
    for (; j + 3 <= ntok; j += 3) {
        moep__ffn_prefetch_part(next, j / 3, tiles);
        tile_4xn(w, x + j * ldx, ldx, kp, c + j * ldc, ldc, 3);
    }
    moep__ffn_prefetch_part(next, j / 3, tiles); /* the tail tile's slice, if any */
    if (ntok - j == 2) tile_4xn(w, x + j * ldx, ldx, kp, c + j * ldc, ldc, 2);
    if (ntok - j == 1) tile_4xn(w, x + j * ldx, ldx, kp, c + j * ldc, ldc, 1);
}

AVX2 static void widen_bf16_avx2(const uint16_t *src, int64_t n, float *dst) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256i v = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(const void *)(src + i)));
        _mm256_storeu_si256((__m256i *)(void *)(dst + i), _mm256_slli_epi32(v, 16));
    }
    uint32_t *d = (uint32_t *)(void *)dst;
    for (; i < n; i++) d[i] = (uint32_t)src[i] << 16;
}

/*
 * E2M1 -> f32, 8 codes (4 bytes) per step: each nibble moved into its own
 * 32-bit lane by a variable shift, the magnitude looked up with a permute
 * of the 8 non-negative values, the sign bit put back, times the block's
 * scale: the same single rounding as moep__decode_e2m1_scaled.
 */
AVX2 static void decode_fp4_avx2(const uint8_t *q, int64_t n, const float *scales, int64_t block,
                                 float *dst) {
    const __m256 mag = _mm256_setr_ps(0.0f, 0.5f, 1.0f, 1.5f, 2.0f, 3.0f, 4.0f, 6.0f);
    const __m256i shifts = _mm256_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28);
    const __m256i sign_bit = _mm256_set1_epi32(8);
    for (int64_t b0 = 0; b0 < n; b0 += block) {
        const __m256 s = _mm256_set1_ps(scales[b0 / block]);
        for (int64_t i = b0; i < b0 + block; i += 8) {
            uint32_t word;
            memcpy(&word, q + i / 2, 4);
            __m256i codes = _mm256_srlv_epi32(_mm256_set1_epi32((int)word), shifts);
            __m256 v = _mm256_permutevar8x32_ps(mag, codes); /* uses the low 3 bits */
            __m256i sign = _mm256_slli_epi32(_mm256_and_si256(codes, sign_bit), 28);
            v = _mm256_xor_ps(v, _mm256_castsi256_ps(sign));
            _mm256_storeu_ps(dst + i, _mm256_mul_ps(v, s));
        }
    }
}

/*
 * E4M3 -> f32, 8 codes per step, by bit moves instead of a table: the
 * exponent and mantissa bits land under an f32 exponent biased 120 lower,
 * so multiplying by 2^120 gives the exact value (subnormal codes included);
 * then the sign, NaN for the 0x7F / 0xFF codes, and one rounding by the scale
 * (as moep__decode_e4m3_scaled: lut[code] * scale).
 */
AVX2 static void decode_fp8_avx2(const uint8_t *q, int64_t n, float scale, float *dst) {
    const __m256i low7 = _mm256_set1_epi32(0x7F), sign_bit = _mm256_set1_epi32(0x80);
    const __m256 rebias = _mm256_set1_ps(0x1p120f), s = _mm256_set1_ps(scale);
    const __m256 nan = _mm256_set1_ps(__builtin_nanf(""));
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256i codes = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(const void *)(q + i)));
        __m256i m = _mm256_and_si256(codes, low7);
        __m256 v = _mm256_mul_ps(_mm256_castsi256_ps(_mm256_slli_epi32(m, 20)), rebias);
        v = _mm256_blendv_ps(v, nan, _mm256_castsi256_ps(_mm256_cmpeq_epi32(m, low7)));
        __m256i sign = _mm256_slli_epi32(_mm256_and_si256(codes, sign_bit), 24);
        v = _mm256_or_ps(v, _mm256_castsi256_ps(sign));
        _mm256_storeu_ps(dst + i, _mm256_mul_ps(v, s));
    }
    if (i < n) moep__ffn_kernel_generic.decode_fp8(q + i, n - i, scale, dst + i);
}

const moep__ffn_kernel_t moep__ffn_kernel_avx2 = {"avx2", gemm_nt_avx2, widen_bf16_avx2,
                                                  decode_fp4_avx2, decode_fp8_avx2};
#endif
