/*
 * The inner kernel of the expert FFN: a "dot-form" GEMM block,
 *   c[j*ldc + i] += sum_k w[i*ldw + k] * x[j*ldx + k]
 * for i < nrows (weight rows = output neurons) and j < ntok (tokens).
 * Weights stay row-major as stored (no transpose); both operands are read
 * along k, 8 floats at a time, into 4x3 register tiles of accumulators.
 * Internal (moep__), not part of the public API.
 */
#ifndef MOEP_COMPUTE_FFN_KERNEL_H
#define MOEP_COMPUTE_FFN_KERNEL_H

#include <stdint.h>

/* nrows % 4 == 0, kp % 8 == 0, all pointers valid for those extents. */
typedef void (*moep__gemm_nt_fn)(const float *w, int64_t ldw, int64_t nrows, const float *x,
                                 int64_t ldx, int64_t ntok, int64_t kp, float *c, int64_t ldc);

/* dst[i] = f32 value of the bf16 src[i], i < n (exact). */
typedef void (*moep__widen_bf16_fn)(const uint16_t *src, int64_t n, float *dst);

/* The ISA-specific pieces of the FFN, one table per instruction set. */
typedef struct moep__ffn_kernel {
    const char *name;
    moep__gemm_nt_fn gemm_nt;
    moep__widen_bf16_fn widen_bf16;
} moep__ffn_kernel_t;

/* Widest kernel this CPU runs; MOEP_FFN_KERNEL=generic|avx2 overrides
 * (an unknown or unsupported name falls back to the automatic choice). */
const moep__ffn_kernel_t *moep__ffn_kernel_select(void);

/* The implementations (ffn_kernel_generic.c, ffn_kernel_avx2.c). */
extern const moep__ffn_kernel_t moep__ffn_kernel_generic;
#if defined(__x86_64__) || defined(__i386__)
extern const moep__ffn_kernel_t moep__ffn_kernel_avx2;
#endif

#endif /* MOEP_COMPUTE_FFN_KERNEL_H */
