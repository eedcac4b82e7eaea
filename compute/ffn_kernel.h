/*
 * The inner kernel of the expert FFN: a "dot-form" GEMM block,
 *   c[j*ldc + i] += sum_k w[i][k] * x[j*ldx + k]
 * for i < 4 (weight rows = output neurons) and j < ntok (tokens).
 * Weights stay row-major as stored (no transpose); both operands are read
 * along k, 8 floats at a time, into 4x3 register tiles of accumulators.
 * Internal (moep__), not part of the public API.
 */
#ifndef MOEP_COMPUTE_FFN_KERNEL_H
#define MOEP_COMPUTE_FFN_KERNEL_H

#include <stddef.h>
#include <stdint.h>

/*
 * The stored bytes of the weight block that comes next (4 row pieces, NULL
 * where none): the kernel prefetches them a slice per token tile, so the
 * next block arrives from DRAM while this one is computed without a burst of
 * prefetches that stalls on the miss buffers.
 */
typedef struct moep__ffn_prefetch {
    const char *row[4];
    int64_t bytes; /* of each row piece */
} moep__ffn_prefetch_t;

/* Prefetch slice `part` of `nparts` of the next block (into L2). */
static inline void moep__ffn_prefetch_part(const moep__ffn_prefetch_t *pf, int64_t part,
                                           int64_t nparts) {
    if (pf == NULL || part >= nparts) return;
    const int64_t lines = (pf->bytes + 63) / 64, total = 4 * lines;
    for (int64_t l = part * total / nparts; l < (part + 1) * total / nparts; l++) {
        const char *row = pf->row[l / lines];
        if (row != NULL) __builtin_prefetch(row + (l % lines) * 64, 0, 2);
    }
}

/* The 4 weight rows are separate pointers so they can point straight into
 * an f32 weight matrix (or into a decoded tile, or at zeros past its edge).
 * kp % 8 == 0; every row and token valid for kp floats. next may be NULL. */
typedef void (*moep__gemm_nt_fn)(const float *const w[4], const float *x, int64_t ldx,
                                 int64_t ntok, int64_t kp, float *c, int64_t ldc,
                                 const moep__ffn_prefetch_t *next);

/* dst[i] = f32 value of the bf16 src[i], i < n (exact). */
typedef void (*moep__widen_bf16_fn)(const uint16_t *src, int64_t n, float *dst);

/* dst[0 .. n) = E2M1 codes of q (two per byte, low nibble first), block b
 * of `block` elements times scales[b]; n % block == 0, block % 8 == 0.
 * Exactly moep__decode_e2m1_scaled (compute/quant/quant_tables.h) per block. */
typedef void (*moep__decode_fp4_fn)(const uint8_t *q, int64_t n, const float *scales,
                                    int64_t block, float *dst);
/* dst[0 .. n) = E4M3 codes of q times scale, exactly moep__decode_e4m3_scaled. */
typedef void (*moep__decode_fp8_fn)(const uint8_t *q, int64_t n, float scale, float *dst);

/* The ISA-specific pieces of the FFN, one table per instruction set. */
typedef struct moep__ffn_kernel {
    const char *name;
    moep__gemm_nt_fn gemm_nt;
    moep__widen_bf16_fn widen_bf16;
    moep__decode_fp4_fn decode_fp4;
    moep__decode_fp8_fn decode_fp8;
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
