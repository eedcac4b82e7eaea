/*
 * moep compute: the expert FFN (SwiGLU), grouped over experts.
 *   y = W2 · (silu(W1 · x) ⊙ (W3 · x))
 * Included by moep.h.
 */
#ifndef MOEP_COMPUTE_H
#define MOEP_COMPUTE_H

#include "moep_core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* How a stack of expert weight matrices is stored. */
typedef enum moep_weight_format {
    MOEP_WEIGHTS_F32 = 0,
    MOEP_WEIGHTS_BF16 = 1,
    /* FP8 E4M3 values + one f32 scale per 128x128 block (DeepSeek-V3). */
    MOEP_WEIGHTS_FP8_E4M3 = 2,
    /* FP4 E2M1, two per byte, + one E8M0 scale (u8) per 32 elements of a row (OCP MX). */
    MOEP_WEIGHTS_MXFP4 = 3,
    /* FP4 E2M1, two per byte, + one E4M3 scale per 16 elements of a row + one f32 per matrix. */
    MOEP_WEIGHTS_NVFP4 = 4,
    MOEP_WEIGHTS_FORMAT_COUNT_
} moep_weight_format_t;

MOEP_API const char *moep_weight_format_name(moep_weight_format_t f);

/*
 * One stack of E matrices of shape [rows, cols] (row-major; a row is one
 * output neuron). Scale layouts by format, per expert:
 *   F32/BF16: scales unused.
 *   FP8_E4M3: scales f32 [ceil(rows/128), ceil(cols/128)].
 *   MXFP4:    scales u8 (E8M0) [rows, cols/32]; cols % 32 == 0.
 *   NVFP4:    scales u8 (E4M3) [rows, cols/16]; cols % 16 == 0;
 *             global_scale f32 [E] (one per expert matrix).
 * Experts are stored back to back: expert e starts at e * (its size).
 */
typedef struct moep_weight_stack {
    const void *data;
    const void *scales;
    const float *global_scale;
} moep_weight_stack_t;

/*
 * How a stack's bytes are arranged.
 *   ROWS: the row-major layout above; every FFN takes it.
 *   FP4_PACKED: MXFP4 / NVFP4 weights rearranged for the GPU kernels by
 *     moep_expert_weights_pack_cuda (api/moep_cuda_ffn.h), where the layout
 *     is described; only the GPU FFN takes it (the CPU FFN answers
 *     MOEP_ERR_UNSUPPORTED).
 */
typedef enum moep_weight_layout {
    MOEP_WEIGHT_LAYOUT_ROWS = 0,
    MOEP_WEIGHT_LAYOUT_FP4_PACKED = 1,
} moep_weight_layout_t;

/*
 * The routed experts of one rank (or the shared expert: num_experts = 1).
 * W1 (gate) and W3 (up): [E, I, H]; W2 (down): [E, H, I].
 * The library keeps pointers, never copies: weights must outlive their users.
 */
typedef struct moep_expert_weights {
    uint32_t struct_size; /* set by moep_expert_weights_init() */
    moep_weight_format_t format;
    int32_t num_experts;  /* E */
    int32_t hidden;       /* H */
    int32_t intermediate; /* I */
    moep_weight_stack_t w1, w3, w2;
    /* appended in version 2 (a struct_size that ends before it means ROWS) */
    moep_weight_layout_t layout; /* MOEP_WEIGHT_LAYOUT_ROWS by default */
} moep_expert_weights_t;

MOEP_API moep_status_t moep_expert_weights_init(moep_expert_weights_t *w);

/*
 * Grouped expert FFN on the CPU.
 *   x              [N, H] f32 or bf16, rows grouped by expert.
 *   expert_offset  [E+1] i64: rows expert_offset[e] .. expert_offset[e+1]-1
 *                  belong to expert e; non-decreasing, expert_offset[E] <= N.
 *                  Rows outside every range (padding) are left untouched in y.
 *   y              [N, H] f32 or bf16, out (may not alias x).
 *   num_threads    OpenMP threads; 0 = OpenMP default.
 * Accumulation is f32 whatever the storage formats; FP8 / FP4 weights are
 * decoded a tile at a time inside the kernel (never a dequantized copy of an
 * expert). Called from inside the caller's own OpenMP parallel region it runs
 * on the calling thread only.
 * Errors: MOEP_ERR_INVALID_ARG (NULLs, unknown weight format), MOEP_ERR_SHAPE
 * (H/I mismatch, bad dtype, cols not a multiple of the FP4 block),
 * MOEP_ERR_OUT_OF_RANGE (offsets not monotone or beyond N), MOEP_ERR_UNSUPPORTED
 * (tensors not in host memory), MOEP_ERR_NO_MEMORY. On error y is untouched.
 */
MOEP_API moep_status_t moep_expert_ffn(const moep_expert_weights_t *w, const moep_tensor_t *x,
                                       const int64_t *expert_offset, moep_tensor_t *y,
                                       int32_t num_threads);

#ifdef __cplusplus
}
#endif
#endif /* MOEP_COMPUTE_H */
