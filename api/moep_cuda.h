/*
 * moep on CUDA: routing and layout kernels on a caller's stream, and the
 * stream that GPU dispatch / combine use. Included by moep.h when
 * MOEP_WITH_CUDA is defined (the CUDA build, --config=cuda, defines it for
 * its users); these functions exist only in that build.
 *
 * Device tensors: moep_tensor_t with device = MOEP_DEVICE_CUDA and
 * device_id = the CUDA ordinal; data is a device pointer. Every function
 * here enqueues on `stream` (NULL = the legacy default stream) and returns
 * once enqueued unless its comment names a host synchronisation.
 * CUDA failures return MOEP_ERR_CUDA with cudaGetErrorString in the message.
 *
 * GPU dispatch / combine: create the communicator with params.device =
 * MOEP_DEVICE_CUDA, params.device_id = this rank's GPU and transport "nccl"
 * (or let the probe pick it); then moep_dispatch / moep_combine take device
 * tensors and run on the communicator's stream (moep_comm_set_stream_cuda).
 * Result differences from the CPU path: recv_x, recv_topk_idx,
 * recv_topk_weights, expert_x and recv_src_rank are device memory;
 * tokens_per_local_expert and expert_offset are host arrays.
 * Host synchronisation: a fresh dispatch copies the exchanged counts
 * (R headers of 40 + 8 E bytes) to the host once and waits for them: they
 * size the results (num_recv, expert offsets, expert_x). When the comm's
 * previous fresh dispatch had T <= some capacity on every rank (the usual
 * steady state; 2-4 ranks with top-k routing, or T <= 256), counts, ids
 * and x rows travel in ONE NCCL group with worst-case-sized blocks (the
 * largest T of the previous fresh dispatch, in rows, per peer: padding
 * crosses the wire) and the wait ends after the payload; otherwise (first
 * dispatch, a larger T) the counts go first and the payload after the
 * wait. Device memory of a handle: up to 3 x R x T rows of x. A dispatch with MOEP_DISPATCH_REUSE_LAYOUT and
 * combine do not synchronise at all. A peer that stalls is detected at that
 * one wait (MOEP_ERR_TIMEOUT after the comm's timeout, then ncclCommAbort);
 * NCCL async errors surface as MOEP_ERR_CUDA / MOEP_ERR_REMOTE.
 * One node with GPU peer access (every rank a separate process, MOEP_GPU_PEER
 * unset or 1): the comm maps one receive buffer per rank from every other
 * rank at creation (CUDA IPC; a collective decision, the same on every
 * rank) and the one-round and cached dispatches and combine store rows
 * straight into the receivers' buffers instead of going through NCCL
 * (padding then costs memory, not transfers: the one round is used for any
 * T up to the previous largest). Each such op ends with a GPU signal round
 * that gives up after the comm's timeout; a peer that stalls there makes
 * the comm's next call (or the fresh dispatch's wait) return
 * MOEP_ERR_TIMEOUT, and the results of the op that timed out are not
 * valid. A fresh dispatch of large blocks (>= 8 MB per peer) sends its
 * counts first, with a signal round of their own: the host's wait then
 * ends once the counts are in, while the rows are still on the way (the
 * results are valid in stream order), and every rank's own rows go
 * straight into its recv_x. The mapped buffer is the comm's (up to R x T rows of x, grown by
 * all ranks together).
 * Not on the GPU path yet: FP8 or bf16 wire formats different from x's dtype
 * (MOEP_ERR_UNSUPPORTED).
 */
#ifndef MOEP_CUDA_H
#define MOEP_CUDA_H

#include "moep_comm.h"
#include "moep_routing.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * moep_route on the GPU: same config, same results as the CPU version (ids
 * identical, weights within 1e-6; the same ordering and tie rules).
 *   scores [T, E] f32/bf16, token_ids [T] i64 (HASH), topk_idx [T, k] i32,
 *   topk_weights [T, k] f32: device tensors. cfg->expert_bias is a HOST
 *   array (copied on each call).
 * NaN check: one 4-byte device->host copy and a wait on `stream` before the
 * routing kernel (a NaN is reported as on the CPU and leaves the outputs
 * untouched). Errors: as moep_route, plus MOEP_ERR_CUDA.
 */
MOEP_API moep_status_t moep_route_cuda(const moep_router_config_t *cfg, const moep_tensor_t *scores,
                                       const moep_tensor_t *token_ids, moep_tensor_t *topk_idx,
                                       moep_tensor_t *topk_weights, moep_stream_t stream);

/*
 * moep_route_cuda without any host wait (the steady-state path of the GPU
 * layer). A token whose scores hold a NaN is not routed: its k ids become
 * num_experts (outside [-1, E), so moep_dispatch refuses them: this rank
 * gets MOEP_ERR_OUT_OF_RANGE, every other rank MOEP_ERR_REMOTE, and the
 * communicator stays usable) and its weights 0. `first_nan` (one device
 * int64) receives, in stream order, the smallest such token index, or -1
 * when there is none: read it when a dispatch fails to tell a NaN from a
 * bad id. Errors: as moep_route_cuda, MOEP_ERR_INVALID_ARG for a NULL
 * first_nan; NaN is never an error here.
 */
MOEP_API moep_status_t moep_route_cuda_async(const moep_router_config_t *cfg,
                                             const moep_tensor_t *scores,
                                             const moep_tensor_t *token_ids,
                                             moep_tensor_t *topk_idx, moep_tensor_t *topk_weights,
                                             int64_t *first_nan, moep_stream_t stream);

/*
 * The counts of the dispatch layout on the GPU (moep_layout_t's
 * tokens_per_rank, tokens_per_expert and token_rank_slot), no host sync.
 *   topk_idx          [T, k] i32 device, -1 = masked.
 *   expert_rank       [E] i32 HOST array, or NULL for contiguous blocks.
 *   tokens_per_rank   [R] i64 device out.
 *   tokens_per_expert [E] i64 device out.
 *   token_rank_slot   [T, R] i32 device out (may be NULL).
 * Ids outside [-1, E) are skipped and counted in *bad_ids (device i32, may
 * be NULL): checking them would need a host sync.
 */
MOEP_API moep_status_t moep_layout_counts_cuda(const moep_tensor_t *topk_idx, int32_t num_experts,
                                               int32_t num_ranks, const int32_t *expert_rank,
                                               moep_tensor_t *tokens_per_rank,
                                               moep_tensor_t *tokens_per_expert,
                                               moep_tensor_t *token_rank_slot, int32_t *bad_ids,
                                               moep_stream_t stream);

/* Stream on which the comm's GPU dispatch / combine run (default NULL, the
 * legacy stream). MOEP_ERR_INVALID_USAGE on a CPU communicator. */
MOEP_API moep_status_t moep_comm_set_stream_cuda(moep_comm_t *comm, moep_stream_t stream);
/* The stream set above (NULL = legacy); MOEP_ERR_INVALID_USAGE on a CPU
 * communicator. */
MOEP_API moep_status_t moep_comm_get_stream_cuda(const moep_comm_t *comm, moep_stream_t *stream);
/* The CUDA ordinal of a device communicator; -1 for a CPU one (or NULL). */
MOEP_API int32_t moep_comm_device_cuda(const moep_comm_t *comm);

/*
 * The GPU MoE layer (api/moep_layer.h): moep_layer_create with a device
 * communicator makes a layer whose forward runs on that comm's GPU and
 * stream, with the same config, setters and collective semantics:
 *   router GEMM (a tiled f32 CUDA kernel, no cuBLAS) -> moep_route_cuda_async ->
 *   moep_dispatch -> moep_expert_ffn_cuda on the expert-major rows ->
 *   shared expert (moep_expert_ffn_cuda, E = 1, writes y) -> moep_combine
 *   (accumulates onto y).
 * Differences from the CPU layer:
 *   - act_dtype must be bf16 (the GPU FFN takes and writes bf16 rows);
 *     x, y (and token_ids for HASH routing) are device tensors on the comm's
 *     GPU; a layer without a communicator (comm NULL) is CPU-only: make a
 *     1-rank nccl communicator for one GPU.
 *   - moep_layer_set_experts / moep_layer_set_shared take weights whose
 *     data, scales and global_scale pointers are DEVICE memory, referenced
 *     (not copied), in MOEP_WEIGHTS_FP8_E4M3, MXFP4 or NVFP4: the GPU FFN
 *     has no f32 / bf16-weight path (MOEP_ERR_UNSUPPORTED). H and I must meet
 *     moep_expert_ffn_cuda's constraints (checked at forward: MOEP_ERR_SHAPE).
 *     FP4 weights may be row-major or packed (moep_expert_weights_pack_cuda,
 *     api/moep_cuda_ffn.h; faster at decode); a CPU layer refuses packed
 *     ones (MOEP_ERR_UNSUPPORTED).
 *   - moep_layer_set_gate accepts a host or a device f32 tensor (copied to
 *     the GPU); moep_layer_set_bias stays a host array.
 *   - moep_layer_last_routing returns device tensors (device = CUDA).
 *   - timings come from CUDA events recorded on the stream between the
 *     stages (route_ms includes the router GEMM); filling them waits for
 *     the forward to finish and copies topk_idx home for the load
 *     statistics. With timings NULL the forward returns once enqueued,
 *     apart from the fresh dispatch's one host wait (counts).
 *   - NaN router scores: found by the routing kernel, reported by the
 *     dispatch's count exchange (MOEP_ERR_NUMERIC naming the token on this
 *     rank, MOEP_ERR_REMOTE on the others; the layer stays usable). The CPU
 *     layer reports it the same way on every rank.
 */

#ifdef __cplusplus
}
#endif
#endif /* MOEP_CUDA_H */
