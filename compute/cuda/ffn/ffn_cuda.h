/* GPU expert FFN: internal launchers shared by the entry points (moep__ prefix). */
#ifndef MOEP_FFN_CUDA_H
#define MOEP_FFN_CUDA_H

#include <cuda_runtime.h>
#include <stddef.h>
#include <stdint.h>

#include "moep_compute.h"

#define MOEP__FFN_TILE_ROWS 64 /* token rows per tile, every kernel */

/* The packed FP4 layout (fp4_pack.cu), shared by the packer and the kernels'
 * weight stream: per (8-row block, 128-channel segment), 8 rows x 64 code
 * bytes, and 8 rows x the segment's 4 (MX) or 8 (NV) scale bytes. */
#define MOEP__FP4_PACK_CODE_BYTES (8 * 64)
#define MOEP__FP4_PACK_SCALE_BYTES(nv) (8 * ((nv) ? 8 : 4))

/* Workspace and buffer pieces start on 256-byte boundaries. */
static inline size_t moep__align256(size_t b) { return (b + 255) & ~(size_t)255; }

/* One tile of token rows of one expert; expert < 0 marks an unused slot. */
typedef struct moep__ffn_tile {
    int32_t expert;
    int32_t pad;
    int64_t row_start; /* first row of the tile in x / y */
    int64_t row_end;   /* one past the expert's last row */
} moep__ffn_tile_t;

/* The rows of the problem, as the kernels see them. */
typedef struct moep__ffn_rows {
    const int64_t *offsets; /* contiguous: [E+1], else NULL */
    const int64_t *counts;  /* masked: [E], else NULL */
    int64_t max_tokens;     /* masked: rows per expert */
    int64_t num_rows;       /* N */
    int32_t num_experts;
    int32_t max_tiles; /* upper bound on tiles */
} moep__ffn_rows_t;

#ifdef __cplusplus
extern "C" {
#endif

int32_t moep__ffn_max_tiles(const moep__ffn_rows_t *r);
cudaError_t moep__ffn_tile_map(const moep__ffn_rows_t *r, moep__ffn_tile_t *tiles, cudaStream_t s);

/* bf16 [N, H] -> FP8 [N, H] + f32 [N, ceil(H/128)] (bit-identical to moep_quantize_act_fp8). */
cudaError_t moep__act_quant_fp8(const void *x_bf16, int64_t n, int32_t h, uint8_t *q, float *scales,
                                cudaStream_t s);

/*
 * FP8 path: gate/up + silu*mul + FP8 re-quantization, then down.
 * xq [N, H] FP8 + xs; hq [N, I] FP8 + hs workspace; y bf16 [N, H].
 */
int moep__fp8_ffn(const moep_expert_weights_t *w, const uint8_t *xq, const float *xs, int64_t n,
                  const moep__ffn_tile_t *tiles, int32_t max_tiles, uint8_t *hq, float *hs, void *y,
                  cudaStream_t s, cudaError_t *err);

/*
 * FP4 path: x bf16 (xs == NULL) or FP8 + xs; y bf16. ws: device workspace of
 * moep__fp4_workspace(w, rows) bytes (f16 h [N, Ip], then, where a tile can
 * hold more than 16 tokens, x blocked for the wgmma body [N, Hp] and its
 * epoch and segment flags (fp4_xshare.cuh); Ip, Hp: I, H rounded up to 128).
 * Kept between calls on one workspace: the epoch. tiles: the tile table, or
 * NULL for masked rows (the kernels derive their tiles from rows->counts).
 */
size_t moep__fp4_workspace(const moep_expert_weights_t *w, const moep__ffn_rows_t *rows);
cudaError_t moep__fp4_ffn(const moep_expert_weights_t *w, const void *x, const float *xs,
                          const moep__ffn_rows_t *rows, const moep__ffn_tile_t *tiles,
                          int32_t max_tiles, void *ws, void *y, cudaStream_t s);

/*
 * One FP4 stack [E, R, C] (row-major device memory) into the packed layout
 * (fp4_pack.cu): data E*R/8*ceil(C/128)*512 bytes, scales E*R/8*ceil(C/128)*
 * 8*(NV 8, MX 4) bytes; MX also writes global[E] (f32 2^bias) and bias[E].
 */
cudaError_t moep__fp4_pack_stack(int nv, const moep_weight_stack_t *src, int32_t E, int32_t R, int32_t C,
                                 uint8_t *data, uint8_t *scales, float *global, int32_t *bias,
                                 cudaStream_t s);

#ifdef __cplusplus
}
#endif
#endif /* MOEP_FFN_CUDA_H */
