/*
 * C launchers of moep's CUDA kernels (internal, moep__cuda_ prefix): raw
 * device pointers, sizes and a stream, nothing else (as DeepEP's api.cuh).
 * Every launcher enqueues on `stream` and returns a cudaError_t value
 * (0 = success, from cudaGetLastError after the launch).
 * Implemented in *.cu, compiled by nvcc (cuda.bzl).
 */
#ifndef MOEP_CUDA_KERNELS_H
#define MOEP_CUDA_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "moep_core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- routing (route_kernels.cu) ---- */
typedef struct moep__cuda_route_args {
    int32_t kind; /* moep_route_kind_t */
    int32_t num_experts, top_k, renormalize, n_group, topk_group;
    float scale;
    const float *bias; /* [E] device or NULL */
    int32_t num_ranks, max_ranks_per_token;
    uint64_t hash_seed;
    int32_t layer_id;
    const void *scores; /* [T, E] or NULL (HASH) */
    int32_t scores_bf16;
    const int64_t *token_ids; /* [T] (HASH) */
    int64_t num_tokens;
    int32_t *topk_idx;  /* [T, k] */
    float *topk_w;      /* [T, k] */
    /* NULL: scores were checked beforehand. Else a token whose scores hold a
     * NaN gets ids E and weights 0, and atomicMin puts its index here. */
    unsigned long long *first_nan;
} moep__cuda_route_args_t;

/* First token (row) of scores [T, E] holding a NaN into *first (device i64,
 * must hold T beforehand). */
int moep__cuda_find_nan(const void *scores, int bf16, int64_t T, int32_t E, int64_t *first,
                        moep_stream_t stream);
/* Route every token (one thread each; scratch allocated stream-ordered). */
int moep__cuda_route(const moep__cuda_route_args_t *a, moep_stream_t stream);

/* ---- dispatch layout (layout_kernels.cu) ---- */
/* Where the count kernel writes the count messages of a fresh dispatch
 * (the header fields, then E i64 expert counts; see count_msg.cuh): the
 * one for rank r at msgs + r * a.msg_bytes, or with mapped != 0 at
 * to.base[r] (rank r's own area, peer-mapped). */
typedef struct moep__cuda_header_args {
    uint32_t magic, version;
    int32_t hidden, top_k, dtype, wire_dtype;
    int32_t status_if_bad; /* status to announce when *bad != 0 */
    int32_t num_experts, num_ranks;
    int32_t num_tokens; /* the sender's T, in the header's aux field */
    size_t msg_bytes; /* per peer */
} moep__cuda_header_args_t;
#define MOEP_CUDA_PEER_MAX 16
/* Peer-mapped buffers (ranks of one node): base[r] is an address in rank
 * r's memory, mapped here (base[this rank] is local). */
typedef struct moep__cuda_peer_dst {
    void *base[MOEP_CUDA_PEER_MAX];
} moep__cuda_peer_dst_t;
typedef struct moep__cuda_msg_out {
    moep__cuda_header_args_t a;
    uint8_t *msgs;
    moep__cuda_peer_dst_t to;
    int32_t mapped;
} moep__cuda_msg_out_t;
/* Per-token send flags and counts, in one launch. Fills flags [R, T] u8
 * (token t goes to rank r), rank_count [R], expert_count [E] (i64) and
 * *bad (i32 count of ids outside [-1, E)); with out != NULL also the count
 * messages (after the counts are final: the last block writes them).
 * scratch: moep__cuda_layout_count_scratch(T, E, R) bytes of device memory
 * whose first 4 bytes are zero before the first launch (the kernel leaves
 * them zero again); one launch at a time per scratch. */
size_t moep__cuda_layout_count_scratch(int64_t T, int32_t E, int32_t R);
int moep__cuda_layout_count(const int32_t *topk_idx, int64_t T, int32_t k, int32_t E, int32_t R,
                            const int32_t *expert_rank, uint8_t *flags, int64_t *rank_count,
                            int64_t *expert_count, int32_t *bad, void *scratch,
                            const moep__cuda_msg_out_t *out, moep_stream_t stream);
/* Slots from the flags: token_rank_slot [T, R] (-1 = not sent) and
 * slot_token [num_slots]; slots grouped by rank, tokens ascending. */
int moep__cuda_layout_slots(const uint8_t *flags, int64_t T, int32_t R, int32_t *token_rank_slot,
                            int32_t *slot_token, moep_stream_t stream);

/* token_rank_slot[t, r] = r * blk + (index of t among rank r's tokens), -1
 * if t does not go to r: per-destination blocks of blk rows (blk >= the
 * largest rank count), one block scan per rank. */
int moep__cuda_layout_slots_padded(const uint8_t *flags, int64_t T, int32_t R, int64_t blk,
                                   int32_t *token_rank_slot, moep_stream_t stream);

/* ---- dispatch / combine (ep_kernels.cu) ---- */
/* Which slots a pack writes, and where this rank's own rows go: they skip
 * the transport, straight into the receive buffers (x row and meta of slot
 * s at x / meta + (s - slot0) rows). */
typedef struct moep__cuda_pack_self {
    int32_t rank;       /* this rank */
    int32_t peers;      /* pack the slots of the other ranks (into send_x / meta) */
    int32_t self;       /* pack this rank's slots (into x / meta below) */
    int64_t slot0;      /* first slot of this rank */
    void *x, *meta;     /* this rank's rows in the receive buffers */
} moep__cuda_pack_self_t;
/* Send rows: x row of token t into send_x + slot * row_bytes for each of its
 * slots; with meta != NULL also ids and weights (k i32 + k f32) per slot. */
int moep__cuda_pack(const void *x, size_t row_bytes, int64_t T, int32_t R,
                    const int32_t *token_rank_slot, void *send_x, const int32_t *topk_idx,
                    const float *topk_w, int32_t k, void *meta, const moep__cuda_pack_self_t *self,
                    moep_stream_t stream);
/* Peer-mapped one-round dispatch: slot s = r * blk + i (i < cap) of rank r
 * goes to row me * cap + i of r's padded x / meta blocks, x->base[r] /
 * meta->base[r] (every rank's, ours too); slots with i >= cap are skipped. */
typedef struct moep__cuda_peer_pack {
    moep__cuda_peer_dst_t x, meta;
    int32_t me;
    int64_t blk, cap;
    void *self_x; /* != NULL: our own slot i's x row goes to self_x row i instead */
    /* != NULL (device, the R received count messages): our own slot i's x
     * row goes to self_x row recv_offset[me] + i, recv_offset from them */
    const uint8_t *self_msgs;
    size_t msg_bytes;
} moep__cuda_peer_pack_t;
int moep__cuda_pack_peer(const void *x, size_t row_bytes, int64_t T, int32_t R,
                         const int32_t *token_rank_slot, const int32_t *topk_idx, const float *topk_w,
                         int32_t k, const moep__cuda_peer_pack_t *to, moep_stream_t stream);
/* Received token count: at most `max`; with dev != NULL the exact count is
 * *dev (device memory, known only on the GPU before the host waits). */
typedef struct moep__cuda_recv_rows {
    int64_t max;
    const int64_t *dev;
} moep__cuda_recv_rows_t;
/* Received meta -> local expert ids ([-1] elsewhere), weights, source rank.
 * cap > 0: the meta of source rank r sits in a padded block at r * cap rows
 * (a one-round dispatch); cap == 0: contiguous in receive order. */
int moep__cuda_unpack_meta(const void *meta, const moep__cuda_recv_rows_t *n, int32_t k, int32_t E,
                           const int32_t *global_to_local, const int64_t *recv_offset, int32_t R,
                           int64_t cap, int32_t *local_idx, float *weight, int32_t *src,
                           moep_stream_t stream);
/* One-round dispatch, on the GPU from the received messages (R of
 * msg_bytes: header, E i64 expert counts): recv_offset [R+1] (counts clamped
 * to cap) and expert_offset [L+1] (per local expert, rounded up to align). */
int moep__cuda_recv_plan(const uint8_t *msgs, size_t msg_bytes, int32_t R, int64_t cap,
                         const int32_t *local_experts, int32_t L, int32_t align,
                         int64_t *recv_offset, int64_t *expert_offset, moep_stream_t stream);
/* Rows of source ranks q != skip from their padded blocks (pad + q * cap
 * rows) to recv_x at recv_offset[q] (device); block `skip` (or none: -1) is
 * in place already. */
int moep__cuda_compact_rows(const void *pad, size_t row_bytes, int64_t cap, int32_t R,
                            const int64_t *recv_offset, void *recv_x, int32_t skip,
                            moep_stream_t stream);
/* Expert-major rows: slot s = i*k+j with local expert l gets row
 * expert_offset[l] + (earlier slots of l); row_src[row] = i, -1 for the
 * padding rows up to expert_offset[L] (written here, within rows_cap). */
int moep__cuda_expert_rows(const int32_t *local_idx, const moep__cuda_recv_rows_t *n, int32_t k,
                           int32_t L, const int64_t *expert_offset, int64_t rows_cap,
                           int32_t *slot_row, int32_t *row_src, int32_t *scratch,
                           moep_stream_t stream);
/* Device scratch moep__cuda_expert_rows needs for up to n_max_tokens received
 * tokens (expert_rows.cu: a counting sort; NULL scratch or more than
 * MOEP_EXPERT_ROWS_MAX_L local experts take a slower one-pass kernel). */
#define MOEP_EXPERT_ROWS_MAX_L 1024
size_t moep__cuda_expert_rows_scratch(int64_t n_max_tokens, int32_t k, int32_t L);
int moep__cuda_expert_rows_sorted(const int32_t *local_idx, const moep__cuda_recv_rows_t *n, int32_t k,
                                  int32_t L, const int64_t *expert_offset, int64_t rows_cap,
                                  int32_t *slot_row, int32_t *row_src, int32_t *scratch,
                                  moep_stream_t stream);
/* expert_x[row] = recv_x[row_src[row]] or zeros. */
int moep__cuda_gather_rows(const void *recv_x, size_t row_bytes, const int32_t *row_src,
                           int64_t rows, void *expert_x, moep_stream_t stream);
/* Combine, sender side: partial[i] = sum_j w[i,j] * y[slot_row[i,j]] in f32
 * (in j order), stored in y's dtype. dtypes: 0 = f32, 1 = bf16. */
int moep__cuda_combine_local(const void *y, int y_bf16, int32_t H, const int32_t *slot_row,
                             const float *weight, int64_t n, int32_t k, void *partial,
                             moep_stream_t stream);
/* moep__cuda_combine_local with received token i's partial stored at
 * base[src[i]] + (i - recv_offset[src[i]]) rows: straight into its home
 * rank's receive buffer over NVLink / PCIe peer access. Tokens
 * [own_lo, own_lo + own_n) (ours: local stores) are interleaved with the
 * others in the launch order, so local and remote work overlap. */
int moep__cuda_combine_local_peer(const void *y, int y_bf16, int32_t H, const int32_t *slot_row,
                                  const float *weight, int64_t n, int32_t k, const int32_t *src,
                                  const int64_t *recv_offset, const moep__cuda_peer_dst_t *dst,
                                  int64_t own_lo, int64_t own_n, moep_stream_t stream);
/* Signals between the GPUs of one node (peer_kernels.cu). Each rank has an
 * area of 2R u64 in its memory, mapped by the others: slot kind * R + p is
 * written by rank p. One launch: every peer q gets `value` in slot
 * kind * R + me of its area (after a system-scope fence: the writes of the
 * kernels before are visible first), then waits until slot kind * R + q of
 * ours holds >= value, for at most timeout_ns; a peer that does not arrive
 * by then sets *error = 1 + q (host-mapped) and the wait ends. */
typedef struct moep__cuda_peer_sync {
    uint64_t *area[MOEP_CUDA_PEER_MAX]; /* every rank's area, mapped here */
    int32_t ranks, me, kind;
    uint64_t value, timeout_ns;
    int32_t *error;
} moep__cuda_peer_sync_t;
int moep__cuda_peer_sync(const moep__cuda_peer_sync_t *a, moep_stream_t stream);
/* Combine, home side: out[t] = (acc ? out[t] : 0) + sum over ranks r in
 * order of partial[token_rank_slot[t, r]], in f32. */
int moep__cuda_combine_home(const void *partial, int p_bf16, int32_t H,
                            const int32_t *token_rank_slot, int64_t T, int32_t R, void *out,
                            int out_bf16, int accumulate, moep_stream_t stream);

/* ---- MoE layer (router_gemm.cu) ---- */
/* logits [T, E] f32 = x [T, H] (bf16 if x_bf16, else f32) · gate [E, H]ᵀ.
 * partials: device workspace of moep__cuda_router_partials(T, H, E) floats
 * (split-K partial sums, added in a fixed order: deterministic). */
size_t moep__cuda_router_partials(int64_t T, int32_t H, int32_t E);
int moep__cuda_router_logits(const void *x, int x_bf16, int64_t T, int32_t H, const float *gate,
                             int32_t E, float *partials, float *logits, moep_stream_t stream);

#ifdef __cplusplus
}
#endif
#endif
