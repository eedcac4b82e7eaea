/* Portable FFN kernel: same blocking and summation order as the AVX2 one
 * (8 partial sums per dot product, reduced at the end of the k block), in
 * plain C so any compiler and CPU run it. */
#include "compute/quant/quant_tables.h"
#include "ffn_kernel.h"

static float dot8(const float *w, const float *x, int64_t kp) {
    float part[8] = {0};
    for (int64_t k = 0; k < kp; k += 8)
        for (int l = 0; l < 8; l++) part[l] += w[k + l] * x[k + l];
    return ((part[0] + part[1]) + (part[2] + part[3])) + ((part[4] + part[5]) + (part[6] + part[7]));
}

static void gemm_nt_generic(const float *const w[4], const float *x, int64_t ldx, int64_t ntok,
                            int64_t kp, float *c, int64_t ldc, const moep__ffn_prefetch_t *next) {
    for (int64_t j = 0; j < ntok; j++) {
        moep__ffn_prefetch_part(next, j, ntok);
        for (int64_t i = 0; i < 4; i++) c[j * ldc + i] += dot8(w[i], x + j * ldx, kp);
    }
}

/* bf16 is the top half of an f32: widening is exact (a plain shift). */
static void widen_bf16_generic(const uint16_t *src, int64_t n, float *dst) {
    uint32_t *d = (uint32_t *)(void *)dst;
    for (int64_t i = 0; i < n; i++) d[i] = (uint32_t)src[i] << 16;
}

static void decode_fp4_generic(const uint8_t *q, int64_t n, const float *scales, int64_t block,
                               float *dst) {
    for (int64_t b = 0; b < n / block; b++)
        moep__decode_e2m1_scaled(q + b * block / 2, block / 2, scales[b], dst + b * block);
}

static void decode_fp8_generic(const uint8_t *q, int64_t n, float scale, float *dst) {
    moep__decode_e4m3_scaled(q, n, scale, dst);
}

const moep__ffn_kernel_t moep__ffn_kernel_generic = {"generic", gemm_nt_generic, widen_bf16_generic,
                                                     decode_fp4_generic, decode_fp8_generic};
