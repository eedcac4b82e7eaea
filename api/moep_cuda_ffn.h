/*
 * moep on CUDA: the grouped expert FFN (SwiGLU) on a Hopper GPU (sm_90a).
 *   y = W2 · (silu(W1 · x) ⊙ (W3 · x))
 * Declared in every build; in a build without CUDA (no --config=cuda, or the
 * stub library) both functions return MOEP_ERR_UNSUPPORTED.
 *
 * Weights (moep_expert_weights_t, api/moep_compute.h): device pointers.
 *   MOEP_WEIGHTS_FP8_E4M3: wgmma (QGMMA) kernels, FP8 x FP8 -> f32, the
 *     128x128 weight scales and the 1x128 activation scales applied per
 *     128-wide K block (promotion into an f32 sum). The gate/up GEMM fuses
 *     silu*mul and re-quantizes the intermediate to FP8 with 1x128 scales
 *     (amax/448, as moep_quantize_act_fp8) in its epilogue; the down GEMM
 *     writes bf16. Needs H % 16 == 0 and I % 16 == 0 (TMA row pitch).
 *   MOEP_WEIGHTS_MXFP4 / NVFP4: the FP4 weights (row-major or, faster,
 *     packed by moep_expert_weights_pack_cuda below) are streamed from HBM and
 *     decoded in registers to f16 (exact: E2M1 times the block scale) for the
 *     tensor cores with f32 accumulation (mma.sync up to 16 tokens per tile,
 *     wgmma above); no dequantized copy is made. SwiGLU is fused into the
 *     gate/up kernel: only the f16 intermediate goes through memory. Where a
 *     tile can hold more than 16 tokens, a small kernel first writes x as f16
 *     in the layout the wgmma tiles read, which the copy engine then stages
 *     (the workspace holds it: N x H x 2 more bytes). Tiles of
 *     64 tokens: made for decode (<= 64 tokens per expert); more tokens are
 *     correct but re-read the weights once per 64 tokens. The masked layout
 *     needs no tile-map launch. Needs H % 32 == 0 and I % 32 == 0.
 *     MXFP4 block scales above 2^13 (|w| >= 2^15) are not representable in
 *     f16 and unsupported; x and the intermediate must stay within f16 range.
 *   Other formats: MOEP_ERR_UNSUPPORTED.
 * Activations x: bf16 [N, H] (quantized on the GPU to FP8 1x128 on the FP8
 *   path), or FP8 E4M3 [N, H] with x_scales f32 [N, ceil(H/128)] (as from an
 *   FP8 dispatch). y: bf16 [N, H]. All device memory, 16-byte aligned.
 * Workspace: taken with cudaMallocAsync on `stream` (from the device's
 *   current memory pool) and freed on it, or the caller's (the _ws variants
 *   below). Note: with CUDA's default pool settings (release threshold 0) the
 *   pool gives its memory back at every synchronisation, so each call maps
 *   fresh memory: about 40 us per call on an H200. Either raise that pool's
 *   cudaMemPoolAttrReleaseThreshold (the application's choice; moep never
 *   changes a pool) or pass a workspace.
 * Errors: MOEP_ERR_INVALID_ARG (NULL), MOEP_ERR_SHAPE (dtype/shape/format
 *   constraint), MOEP_ERR_UNSUPPORTED (format, no CUDA build, no sm_90 GPU),
 *   MOEP_ERR_NO_MEMORY (workspace), MOEP_ERR_CUDA (launch or driver failure).
 * Everything is enqueued on `stream`; no host synchronisation.
 */
#ifndef MOEP_CUDA_FFN_H
#define MOEP_CUDA_FFN_H

#include "moep_compute.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Contiguous layout: rows expert_offset[e] .. expert_offset[e+1]-1 of x / y
 * belong to expert e (device i64 [E+1], non-decreasing, last <= N; rows may
 * be padded, unaligned offsets are fine). Rows outside every range are left
 * untouched in y. Offsets are read on the GPU only.
 */
MOEP_API moep_status_t moep_expert_ffn_cuda(const moep_expert_weights_t *w, const moep_tensor_t *x,
                                            const moep_tensor_t *x_scales,
                                            const int64_t *expert_offset, moep_tensor_t *y,
                                            moep_stream_t stream);

/*
 * Masked layout (decode): x, y [E, max_tokens, H]; counts device i64 [E]
 * (values clamped to [0, max_tokens]), read on the GPU only; rows t >=
 * counts[e] are left untouched in y. x_scales [E, max_tokens, ceil(H/128)].
 */
MOEP_API moep_status_t moep_expert_ffn_masked_cuda(const moep_expert_weights_t *w,
                                                   const moep_tensor_t *x,
                                                   const moep_tensor_t *x_scales,
                                                   const int64_t *counts, moep_tensor_t *y,
                                                   moep_stream_t stream);

/*
 * The same with the caller's workspace: `workspace` is device memory,
 * 256-byte aligned, of at least the bytes moep_expert_ffn_cuda_workspace_size
 * gives for these weights and this x; it is in use until the work enqueued
 * on `stream` has run. One workspace may serve call after call (layers,
 * CUDA-graph replays) in stream order; the FP4 path keeps an epoch counter
 * in it from one call to the next, and whatever else is there between calls
 * does no harm. workspace == NULL: taken and freed on the stream, as
 * above. Errors as above, plus MOEP_ERR_INVALID_ARG (misaligned workspace)
 * and MOEP_ERR_SHAPE (workspace_bytes too small).
 */
MOEP_API moep_status_t moep_expert_ffn_cuda_ws(const moep_expert_weights_t *w, const moep_tensor_t *x,
                                               const moep_tensor_t *x_scales,
                                               const int64_t *expert_offset, moep_tensor_t *y,
                                               void *workspace, size_t workspace_bytes,
                                               moep_stream_t stream);
MOEP_API moep_status_t moep_expert_ffn_masked_cuda_ws(const moep_expert_weights_t *w,
                                                      const moep_tensor_t *x,
                                                      const moep_tensor_t *x_scales,
                                                      const int64_t *counts, moep_tensor_t *y,
                                                      void *workspace, size_t workspace_bytes,
                                                      moep_stream_t stream);
/* Workspace bytes of the call above for these weights and x (its shape and
 * dtype only; masked = the masked layout); 0 for an x with no rows. */
MOEP_API moep_status_t moep_expert_ffn_cuda_workspace_size(const moep_expert_weights_t *w,
                                                           const moep_tensor_t *x, int masked,
                                                           size_t *bytes);

/*
 * FP4 weights packed for the GPU kernels, once per weight load (decode reads
 * every weight byte per step: H200, 8 experts 7168 x 2048, T = 1: NVFP4
 * 69 us packed against 75 us row-major, MXFP4 71 against 77 us; packed,
 * tiles of at most 8 tokens also stream the weights through shared memory:
 * 66.5 / 68 us with L2 cold, bench/RESULTS.md).
 * `w`: MXFP4 or NVFP4 weights, row-major (MOEP_WEIGHT_LAYOUT_ROWS), in device
 * memory. `buffer`: device memory, 256-byte aligned, of at least the bytes
 * moep_expert_weights_pack_cuda_size gives. On success *packed is w with its
 * data / scales (and MXFP4 global_scale) pointing into buffer and layout
 * MOEP_WEIGHT_LAYOUT_FP4_PACKED; pass it to the functions above or to the
 * GPU layer. The source is read by work enqueued on `stream` and may be freed
 * once that has run; NVFP4's packed weights keep the source's global_scale
 * pointers, which must live on.
 * Layout, per stack of E matrices [R, C], nseg = ceil(C / 128), rows taken
 * in blocks of 8 (R is a multiple of 32):
 *   data   [E * R/8][nseg][8 rows][64 bytes]: the 128 channels of a segment
 *          of 8 rows side by side (what a warp reads at once), zero past C.
 *   scales [E * R/8][nseg][8 rows][4 (MX) or 8 (NV) bytes], same order.
 *   MXFP4: an expert matrix's E8M0 scales are shifted by b = (largest) - 128
 *          and global_scale[e] = 2^b (f32, in buffer), so every block takes
 *          the kernels' single-multiply path; a block whose scale is more than
 *          2^29 below its matrix's largest becomes zero (its weights are
 *          about 2^-30 of the matrix's largest, for scales set by amax). Unlike row-major MXFP4, any scale up to
 *          2^127 works. NaN scales (0xFF) are not supported.
 * Errors: MOEP_ERR_INVALID_ARG (NULL, misaligned buffer, already packed),
 * MOEP_ERR_UNSUPPORTED (not FP4, no CUDA build), MOEP_ERR_SHAPE (H or I not a
 * multiple of 32, buffer too small), MOEP_ERR_CUDA (launch failure).
 */
MOEP_API moep_status_t moep_expert_weights_pack_cuda_size(const moep_expert_weights_t *w, size_t *bytes);
MOEP_API moep_status_t moep_expert_weights_pack_cuda(const moep_expert_weights_t *w, void *buffer,
                                                     size_t bytes, moep_expert_weights_t *packed,
                                                     moep_stream_t stream);

#ifdef __cplusplus
}
#endif
#endif /* MOEP_CUDA_FFN_H */
