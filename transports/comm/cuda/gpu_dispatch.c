/*
 * GPU dispatch (device communicators): the same semantics and results as
 * dispatch.c, with every per-token step in CUDA kernels (compute/cuda) and
 * the exchange on the transport's stream-ordered alltoallv (NCCL).
 *
 * Fresh dispatch, all on the comm's stream: layout counts + per-rank slots
 * (send slots of rank r at r * blk) -> per-peer count messages (header +
 * E expert counts) -> pack the peers' x rows and ids/weights into their
 * blocks. Then, when the comm has a block capacity (gpu_round.c), ONE
 * transport group moves messages, meta and x rows (worst-case-sized
 * blocks) while a side stream packs our own rows, and the GPU lays out
 * the received rows from the counts in the messages; the host waits once,
 * after the payload, for the counts it returns. Otherwise (first dispatch,
 * a T above the capacity, shapes where padding would dominate): the
 * messages alone -> host waits for them -> x rows and meta in one group
 * (own rows packed straight into recv_x / recv_meta on a side stream) ->
 * received ids to local ids -> expert-major rows (offsets from the host).
 * Cached dispatch (MOEP_DISPATCH_REUSE_LAYOUT): pack (own rows straight into
 * recv_x) -> alltoallv -> expert rows; no host sync.
 * On one node with peer-mapped buffers (gpu_peer.c), the one round and the
 * cached dispatch skip the transport (gpu_dispatch_peer.c).
 */
#include <stdlib.h>
#include <string.h>

#include "gpu_internal.h"

static const char *const FN = "moep_dispatch";

moep_status_t moep__handle_create(moep_comm_t *c, moep_handle_t **h_p);

#define HDR_BYTES 40 /* moep_dispatch_header_t */

static moep_status_t check_inputs(moep_comm_t *c, const moep_dispatch_params_t *p, bool reuse) {
    const int64_t any2[2] = {MOEP_ANY, MOEP_ANY};
    MOEP_TRY(moep__check_cuda_tensor(c, FN, "x", p->x, 2, MOEP_ANY, any2));
    if (p->x->dtype != MOEP_DTYPE_F32 && p->x->dtype != MOEP_DTYPE_BF16)
        return moep__fail(MOEP_ERR_SHAPE, "%s: x must be f32 or bf16, got %s", FN,
                          moep_dtype_name(p->x->dtype));
    if (p->x->shape[1] <= 0 || p->x->shape[1] > (1 << 24) || p->x->shape[0] > INT32_MAX)
        return moep__fail(MOEP_ERR_SHAPE, "%s: x shape [%lld, %lld] out of range", FN,
                          (long long)p->x->shape[0], (long long)p->x->shape[1]);
    if (p->wire_dtype != 0 && p->wire_dtype != p->x->dtype)
        return moep__fail(MOEP_ERR_UNSUPPORTED, "%s: wire dtype %s differs from x (%s): not on "
                          "the GPU path yet", FN, moep_dtype_name(p->wire_dtype),
                          moep_dtype_name(p->x->dtype));
    if (p->expert_alignment < 1 || p->expert_alignment > 4096)
        return moep__fail(MOEP_ERR_INVALID_ARG, "%s: expert_alignment %d outside [1, 4096]", FN,
                          p->expert_alignment);
    if (reuse) return MOEP_OK;
    const int64_t idx_shape[2] = {p->x->shape[0], MOEP_ANY};
    MOEP_TRY(moep__check_cuda_tensor(c, FN, "topk_idx", p->topk_idx, 2, MOEP_DTYPE_I32, idx_shape));
    int64_t k = p->topk_idx->shape[1];
    if (k <= 0 || k > c->num_experts)
        return moep__fail(MOEP_ERR_SHAPE, "%s: top-k %lld outside [1, %d]", FN, (long long)k,
                          c->num_experts);
    const int64_t w_shape[2] = {p->x->shape[0], k};
    return moep__check_cuda_tensor(c, FN, "topk_weights", p->topk_weights, 2, MOEP_DTYPE_F32, w_shape);
}

/* Pinned host staging: received messages, our rank counts, bad ids,
 * receive offsets, expert offsets. */
typedef struct staging {
    uint8_t *msgs;
    int64_t *rank_count, *recv_offset, *expert_offset;
    int32_t *bad;
} staging_t;

static moep_status_t reserve_fresh(moep_comm_t *c, moep_handle_t *h, staging_t *sg, int64_t cap) {
    struct moep__gpu_handle *g = h->gpu;
    int32_t R = c->world_size, E = c->num_experts, L = c->num_local_experts, k = h->top_k;
    size_t T = (size_t)h->num_tokens, row = (size_t)h->hidden * moep__gpu_esize(h->dtype);
    g->blk = cap > h->num_tokens ? cap : h->num_tokens;
    g->num_slots = (int64_t)R * g->blk;
    size_t max_slots = (size_t)g->num_slots;
    g->msg_bytes = (HDR_BYTES + 8 * (size_t)E + 15) / 16 * 16;
    MOEP_TRY(moep__dbuf_reserve(c, FN, &g->flags, T * R));
    MOEP_TRY(moep__dbuf_reserve(c, FN, &g->trs, T * R * 4));
    MOEP_TRY(moep__dbuf_reserve(c, FN, &g->expert_count, (size_t)E * 8));
    void *had = g->count_scratch.p;
    MOEP_TRY(moep__dbuf_reserve(c, FN, &g->count_scratch, moep__cuda_layout_count_scratch((int64_t)T, E, R)));
    if (g->count_scratch.p != had) /* the count kernel's ticket starts at zero */
        MOEP_TRY(moep__cuda_check(c, FN, cudaMemsetAsync(g->count_scratch.p, 0, 4, (cudaStream_t)c->gpu->stream),
                                  "cudaMemsetAsync"));
    MOEP_TRY(moep__dbuf_reserve(c, FN, &g->send_hdr, (size_t)R * g->msg_bytes));
    /* received messages, then our rank counts and bad-id count: one copy home */
    MOEP_TRY(moep__dbuf_reserve(c, FN, &g->recv_hdr, (size_t)R * g->msg_bytes + (size_t)R * 8 + 16));
    MOEP_TRY(moep__dbuf_reserve(c, FN, &g->send_x, max_slots * row));
    MOEP_TRY(moep__dbuf_reserve(c, FN, &g->send_meta, max_slots * 8 * (size_t)k));
    size_t host = (size_t)R * g->msg_bytes + (size_t)R * 8 + 16 + (size_t)(R + 1) * 8 +
                  (size_t)(L + 1) * 8;
    if (host > g->host_cap) {
        if (g->host != NULL) cudaFreeHost(g->host);
        g->host = NULL;
        g->host_cap = 0;
        MOEP_TRY(moep__cuda_check(c, FN, cudaMallocHost(&g->host, host), "cudaMallocHost"));
        g->host_cap = host;
    }
    if (g->counts_ready == NULL)
        MOEP_TRY(moep__cuda_check(c, FN, cudaEventCreateWithFlags(&g->counts_ready,
                                                                  cudaEventDisableTiming),
                                  "cudaEventCreate"));
    if (g->rank_offset == NULL) g->rank_offset = moep__calloc(FN, (size_t)R + 1, sizeof(int64_t));
    if (g->rank_offset == NULL) return MOEP_ERR_NO_MEMORY;
    for (int32_t r = 0; r <= R; r++) g->rank_offset[r] = r * g->blk;
    if (cap > 0) MOEP_TRY(moep__gpu_round_reserve(c, h, cap, row, !c->gpu->peer.on));
    sg->msgs = g->host;
    sg->rank_count = (int64_t *)(sg->msgs + (size_t)R * g->msg_bytes);
    sg->bad = (int32_t *)(sg->rank_count + R);
    sg->recv_offset = sg->rank_count + R + 2;
    sg->expert_offset = sg->recv_offset + R + 1;
    return MOEP_OK;
}

static moep_status_t pack(moep_comm_t *c, moep_handle_t *h, const moep_dispatch_params_t *p,
                          bool fresh, bool peers, void *self_x, void *self_meta, cudaStream_t stream);

/* Our own rows in a one-round dispatch: rank 0's block is in place in
 * recv_x, the others' in their padded blocks; meta always padded. */
static moep_status_t pack_self_round(moep_comm_t *c, moep_handle_t *h, const moep_dispatch_params_t *p,
                                     int64_t cap) {
    struct moep__gpu_handle *g = h->gpu;
    size_t row = (size_t)h->hidden * moep__gpu_esize(h->dtype), at = (size_t)(c->rank * cap);
    void *x = c->rank == 0 ? g->recv_x.p : (uint8_t *)g->recv_pad.p + at * row;
    MOEP_TRY(moep__gpu_fork(c, FN));
    return pack(c, h, p, true, false, x, (uint8_t *)g->recv_meta.p + at * 8 * (size_t)h->top_k,
                c->gpu->side);
}

/* The messages (and with cap > 0 the meta and x rows) in one group. */
static moep_status_t first_group(moep_comm_t *c, moep_handle_t *h, int64_t cap) {
    struct moep__gpu_handle *g = h->gpu;
    int32_t R = c->world_size;
    int64_t *one = c->gpu->row_tmp + (size_t)R * 5; /* [5R, 7R): not the round's */
    for (int32_t r = 0; r < R; r++) {
        one[r] = 1;
        one[R + r] = r;
    }
    h->dispatch_wire_bytes = 0;
    MOEP_TRY(moep__gpu_group(c, FN, 1));
    moep_status_t st = moep__gpu_alltoallv_rows(c, FN, g->send_hdr.p, one, one + R, g->recv_hdr.p,
                                                one, one + R, g->msg_bytes, NULL);
    if (st == MOEP_OK && cap > 0)
        st = moep__gpu_round_transfer(c, h, cap, (size_t)h->hidden * moep__gpu_esize(h->dtype));
    return moep__gpu_group_end(c, FN, st);
}

/* Layout, count messages, pack, the first group, the copy home of the
 * counts and (one round) the GPU side of the receive. */
static moep_status_t first_round(moep_comm_t *c, moep_handle_t *h, const moep_dispatch_params_t *p,
                                 const staging_t *sg, int64_t cap) {
    struct moep__gpu_handle *g = h->gpu;
    moep_stream_t s = c->gpu->stream;
    int32_t R = c->world_size, E = c->num_experts, k = h->top_k;
    int64_t T = h->num_tokens;
    uint8_t *msgs = g->recv_hdr.p;
    int64_t *rank_count = (int64_t *)(msgs + (size_t)R * g->msg_bytes);
    int32_t *bad = (int32_t *)(rank_count + R);
    moep__cuda_msg_out_t out;
    memset(&out, 0, sizeof out);
    out.a = (moep__cuda_header_args_t){MOEP_DISPATCH_MAGIC, MOEP_DISPATCH_VERSION, h->hidden, k,
                                       (int32_t)h->dtype, (int32_t)h->wire_dtype,
                                       (int32_t)MOEP_ERR_OUT_OF_RANGE, E, R, (int32_t)T, g->msg_bytes};
    out.msgs = g->send_hdr.p;
    bool peer = cap > 0 && c->gpu->peer.on;
    if (peer) MOEP_TRY(moep__gpu_peer_round_begin(c, h, cap, &out));
    int err = moep__cuda_layout_count(p->topk_idx->data, T, k, E, R, c->gpu->expert_rank, g->flags.p,
                                      rank_count, g->expert_count.p, bad, g->count_scratch.p, &out, s);
    if (!err) err = moep__cuda_layout_slots_padded(g->flags.p, T, R, g->blk, g->trs.p, s);
    if (peer) {
        MOEP_TRY(moep__cuda_check(c, FN, err, "layout kernels"));
        return moep__gpu_peer_round(c, h, p, cap, rank_count, sg->msgs, sg->rank_count);
    }
    if (!err) /* our own message skips the transport */
        err = cudaMemcpyAsync(msgs + (size_t)c->rank * g->msg_bytes,
                              (uint8_t *)g->send_hdr.p + (size_t)c->rank * g->msg_bytes, g->msg_bytes,
                              cudaMemcpyDeviceToDevice, (cudaStream_t)s);
    MOEP_TRY(moep__cuda_check(c, FN, err, "layout kernels"));
    MOEP_TRY(pack(c, h, p, true, true, NULL, NULL, (cudaStream_t)s));
    if (cap > 0) MOEP_TRY(pack_self_round(c, h, p, cap));
    MOEP_TRY(first_group(c, h, cap));
    if (cap > 0) MOEP_TRY(moep__gpu_join(c, FN));
    cudaStream_t cs = (cudaStream_t)s;
    /* staging has the same layout: messages, rank counts, bad */
    err = cudaMemcpyAsync(sg->msgs, msgs, (size_t)R * g->msg_bytes + (size_t)R * 8 + 4,
                          cudaMemcpyDeviceToHost, cs);
    if (!err) err = cudaEventRecord(g->counts_ready, cs);
    MOEP_TRY(moep__cuda_check(c, FN, err, "copy of the counts"));
    if (cap == 0) return MOEP_OK;
    moep__gpu_round_in_t in = {msgs, g->recv_meta.p, g->recv_pad.p, 0, false}; /* block 0 in place */
    return moep__gpu_round_finish(c, h, cap, (size_t)h->hidden * moep__gpu_esize(h->dtype), &in);
}

/* The largest T of any rank (each message carries its sender's T). */
static int64_t max_tokens(const moep_comm_t *c, const moep_handle_t *h, const staging_t *sg) {
    int64_t m = 0;
    for (int32_t r = 0; r < c->world_size; r++) {
        const moep_dispatch_header_t *hd =
            (const moep_dispatch_header_t *)(sg->msgs + (size_t)r * h->gpu->msg_bytes);
        if (hd->aux > m) m = hd->aux; /* GPU path: the sender's T */
    }
    return m;
}

/* Every rank's slot block (max(cap, its T), as reserve_fresh makes ours):
 * where a peer-mapped combine writes into that rank's receive buffer. */
static moep_status_t note_peer_blocks(moep_comm_t *c, moep_handle_t *h, const staging_t *sg, int64_t cap) {
    struct moep__gpu_handle *g = h->gpu;
    if (g->peer_blk == NULL) g->peer_blk = moep__calloc(FN, (size_t)c->world_size, sizeof(int64_t));
    if (g->peer_blk == NULL) return MOEP_ERR_NO_MEMORY;
    for (int32_t r = 0; r < c->world_size; r++) {
        const moep_dispatch_header_t *hd =
            (const moep_dispatch_header_t *)(sg->msgs + (size_t)r * g->msg_bytes);
        g->peer_blk[r] = cap > hd->aux ? cap : hd->aux;
        if (r == 0 || hd->aux > g->peer_rows) g->peer_rows = hd->aux;
    }
    return MOEP_OK;
}

/* The verdict of every rank's message, the same on every rank (as dispatch.c). */
static moep_status_t check_messages(moep_comm_t *c, moep_handle_t *h, const staging_t *sg) {
    moep_status_t local = MOEP_OK;
    if (*sg->bad != 0)
        local = moep__comm_fail(c, MOEP_ERR_OUT_OF_RANGE,
                                "%s: topk_idx holds %d expert ids outside [-1, %d)", FN,
                                (int)*sg->bad, c->num_experts);
    for (int32_t r = 0; r < c->world_size; r++) {
        const moep_dispatch_header_t *m =
            (const moep_dispatch_header_t *)(sg->msgs + (size_t)r * h->gpu->msg_bytes);
        if (m->magic != MOEP_DISPATCH_MAGIC || m->version != MOEP_DISPATCH_VERSION ||
            m->num_tokens < 0 || m->num_tokens > INT32_MAX)
            return moep__comm_fail(c, MOEP_ERR_PROTOCOL, "%s: malformed counts from rank %d", FN, r);
        if (local != MOEP_OK) return local;
        if (m->status != MOEP_OK)
            return moep__comm_fail(c, MOEP_ERR_REMOTE, "%s: rank %d failed this dispatch with %s",
                                   FN, r, moep_status_name((moep_status_t)m->status));
        if (m->hidden != h->hidden || m->top_k != h->top_k || m->dtype != (int32_t)h->dtype ||
            m->wire_dtype != (int32_t)h->wire_dtype)
            return moep__comm_fail(c, MOEP_ERR_MISMATCH,
                                   "%s: rank %d dispatches hidden=%d top_k=%d dtype=%s, rank %d "
                                   "hidden=%d top_k=%d dtype=%s", FN, r, m->hidden, m->top_k,
                                   moep_dtype_name(m->dtype), c->rank, h->hidden, h->top_k,
                                   moep_dtype_name(h->dtype));
        h->recv_count[r] = m->num_tokens;
    }
    return MOEP_OK;
}

/* Host arithmetic on the counts: offsets, per-expert rows, padding. */
static void plan_counts(moep_comm_t *c, moep_handle_t *h, const staging_t *sg) {
    struct moep__gpu_handle *g = h->gpu;
    int32_t R = c->world_size, L = c->num_local_experts;
    h->recv_offset[0] = 0;
    for (int32_t r = 0; r < R; r++) {
        h->send_count[r] = sg->rank_count[r];
        h->recv_offset[r + 1] = h->recv_offset[r] + h->recv_count[r];
        sg->recv_offset[r] = h->recv_offset[r];
    }
    sg->recv_offset[R] = h->recv_offset[R];
    h->num_recv = h->recv_offset[R];
    h->expert_offset[0] = 0;
    for (int32_t l = 0; l < L; l++) {
        int64_t n = 0;
        for (int32_t r = 0; r < R; r++) {
            const int64_t *cnt = (const int64_t *)(sg->msgs + (size_t)r * g->msg_bytes + HDR_BYTES);
            n += cnt[c->local_experts[l]];
        }
        int64_t a = h->alignment;
        h->tokens_per_local_expert[l] = n;
        h->expert_offset[l + 1] = h->expert_offset[l] + (n + a - 1) / a * a;
    }
    h->num_expert_rows = h->expert_offset[L];
    memcpy(sg->expert_offset, h->expert_offset, (size_t)(L + 1) * sizeof(int64_t));
}

static moep_status_t reserve_recv(moep_comm_t *c, moep_handle_t *h, bool expert_x) {
    struct moep__gpu_handle *g = h->gpu;
    size_t n = (size_t)h->num_recv, k = (size_t)h->top_k, row = (size_t)h->hidden * moep__gpu_esize(h->dtype);
    MOEP_TRY(moep__dbuf_reserve(c, FN, &g->recv_x, n * row));
    MOEP_TRY(moep__dbuf_reserve(c, FN, &g->recv_meta, n * 8 * k));
    MOEP_TRY(moep__dbuf_reserve(c, FN, &g->local_idx, n * 4 * k));
    MOEP_TRY(moep__dbuf_reserve(c, FN, &g->weight, n * 4 * k));
    MOEP_TRY(moep__dbuf_reserve(c, FN, &g->src, n * 4));
    MOEP_TRY(moep__dbuf_reserve(c, FN, &g->slot_row, n * 4 * k));
    MOEP_TRY(moep__dbuf_reserve(c, FN, &g->row_src, (size_t)h->num_expert_rows * 4));
    MOEP_TRY(moep__dbuf_reserve(c, FN, &g->recv_offset, (size_t)(c->world_size + 1) * 8));
    MOEP_TRY(moep__dbuf_reserve(c, FN, &g->expert_offset, (size_t)(c->num_local_experts + 1) * 8));
    MOEP_TRY(moep__dbuf_reserve(c, FN, &g->rows_scratch,
                                moep__cuda_expert_rows_scratch(h->num_recv, h->top_k,
                                                               c->num_local_experts)));
    if (expert_x) MOEP_TRY(moep__dbuf_reserve(c, FN, &g->expert_x, (size_t)h->num_expert_rows * row));
    return MOEP_OK;
}

/* Pack the peers' rows into the send blocks and / or this rank's own rows
 * straight into self_x (and self_meta on a fresh dispatch): receive rows. */
static moep_status_t pack(moep_comm_t *c, moep_handle_t *h, const moep_dispatch_params_t *p,
                          bool fresh, bool peers, void *self_x, void *self_meta, cudaStream_t stream) {
    struct moep__gpu_handle *g = h->gpu;
    size_t row = (size_t)h->hidden * moep__gpu_esize(h->dtype);
    moep__cuda_pack_self_t ps = {c->rank, peers, self_x != NULL, g->rank_offset[c->rank], self_x,
                                 fresh ? self_meta : NULL};
    int err = moep__cuda_pack(p->x->data, row, h->num_tokens, c->world_size, g->trs.p, g->send_x.p,
                              fresh ? p->topk_idx->data : NULL, fresh ? p->topk_weights->data : NULL,
                              h->top_k, fresh ? g->send_meta.p : NULL, &ps, (moep_stream_t)stream);
    return moep__cuda_check(c, FN, err, "pack kernel");
}

/* x rows (and on a fresh dispatch the meta) to their ranks. */
static moep_status_t exchange_rows(moep_comm_t *c, moep_handle_t *h, bool fresh) {
    struct moep__gpu_handle *g = h->gpu;
    size_t row = (size_t)h->hidden * moep__gpu_esize(h->dtype);
    h->dispatch_wire_bytes = 0;
    if (!fresh)
        return moep__gpu_alltoallv_rows(c, FN, g->send_x.p, h->send_count, g->rank_offset,
                                        g->recv_x.p, h->recv_count, h->recv_offset, row,
                                        &h->dispatch_wire_bytes);
    /* rows and meta in one transport launch */
    MOEP_TRY(moep__gpu_group(c, FN, 1));
    moep_status_t st = moep__gpu_alltoallv_rows(c, FN, g->send_x.p, h->send_count, g->rank_offset,
                                                g->recv_x.p, h->recv_count, h->recv_offset, row,
                                                &h->dispatch_wire_bytes);
    if (st == MOEP_OK)
        st = moep__gpu_alltoallv_rows(c, FN, g->send_meta.p, h->send_count, g->rank_offset,
                                      g->recv_meta.p, h->recv_count, h->recv_offset,
                                      8 * (size_t)h->top_k, &h->dispatch_wire_bytes);
    return moep__gpu_group_end(c, FN, st);
}

/* Fresh dispatch after the counts: our own rows packed on the side stream
 * while the transport moves the peers' rows. */
static moep_status_t exchange_fresh(moep_comm_t *c, moep_handle_t *h, const moep_dispatch_params_t *p) {
    struct moep__gpu_handle *g = h->gpu;
    size_t at = (size_t)h->recv_offset[c->rank], row = (size_t)h->hidden * moep__gpu_esize(h->dtype);
    MOEP_TRY(moep__gpu_fork(c, FN));
    MOEP_TRY(pack(c, h, p, true, false, (uint8_t *)g->recv_x.p + at * row,
                  (uint8_t *)g->recv_meta.p + at * 8 * (size_t)h->top_k, c->gpu->side));
    MOEP_TRY(exchange_rows(c, h, true));
    return moep__gpu_join(c, FN);
}

static moep_status_t expert_layout(moep_comm_t *c, moep_handle_t *h, const staging_t *sg) {
    struct moep__gpu_handle *g = h->gpu;
    cudaStream_t s = (cudaStream_t)c->gpu->stream;
    int32_t R = c->world_size, L = c->num_local_experts, k = h->top_k;
    int err = cudaMemcpyAsync(g->recv_offset.p, sg->recv_offset, (size_t)(R + 1) * 8,
                              cudaMemcpyHostToDevice, s);
    if (!err) err = cudaMemcpyAsync(g->expert_offset.p, sg->expert_offset, (size_t)(L + 1) * 8,
                                    cudaMemcpyHostToDevice, s);
    moep__cuda_recv_rows_t n = {h->num_recv, NULL};
    if (!err) err = moep__cuda_unpack_meta(g->recv_meta.p, &n, k, c->num_experts,
                                           c->gpu->global_to_local, g->recv_offset.p, R, 0,
                                           g->local_idx.p, g->weight.p, g->src.p, s);
    if (!err) err = moep__cuda_expert_rows(g->local_idx.p, &n, k, L, g->expert_offset.p,
                                           h->num_expert_rows, g->slot_row.p, g->row_src.p,
                                           g->rows_scratch.p, s);
    return moep__cuda_check(c, FN, err, "expert layout kernels");
}

static moep_status_t gather(moep_comm_t *c, moep_handle_t *h, bool expert_x) {
    if (!expert_x) return MOEP_OK;
    struct moep__gpu_handle *g = h->gpu;
    MOEP_TRY(moep__dbuf_reserve(c, FN, &g->expert_x,
                                (size_t)h->num_expert_rows * h->hidden * moep__gpu_esize(h->dtype)));
    int err = moep__cuda_gather_rows(g->recv_x.p, (size_t)h->hidden * moep__gpu_esize(h->dtype), g->row_src.p,
                                     h->num_expert_rows, g->expert_x.p, c->gpu->stream);
    return moep__cuda_check(c, FN, err, "expert gather kernel");
}

static moep_tensor_t dev2d(const moep_comm_t *c, void *p, moep_dtype_t t, int64_t n0, int64_t n1) {
    moep_tensor_t x = moep_tensor_2d(p, t, n0, n1);
    x.device = MOEP_DEVICE_CUDA;
    x.device_id = c->device_id;
    return x;
}

static void fill_result(const moep_comm_t *c, const moep_handle_t *h, bool expert_x,
                        moep_dispatch_result_t *res) {
    const struct moep__gpu_handle *g = h->gpu;
    memset(res, 0, sizeof *res);
    res->num_recv = h->num_recv;
    res->recv_x = dev2d(c, g->recv_x.p, h->dtype, h->num_recv, h->hidden);
    res->recv_topk_idx = dev2d(c, g->local_idx.p, MOEP_DTYPE_I32, h->num_recv, h->top_k);
    res->recv_topk_weights = dev2d(c, g->weight.p, MOEP_DTYPE_F32, h->num_recv, h->top_k);
    res->recv_src_rank = g->src.p;
    res->num_local_experts = c->num_local_experts;
    res->tokens_per_local_expert = h->tokens_per_local_expert;
    res->expert_x = dev2d(c, expert_x ? g->expert_x.p : NULL, h->dtype, h->num_expert_rows, h->hidden);
    res->expert_offset = h->expert_offset;
    res->num_expert_rows = h->num_expert_rows;
}

static moep_status_t fresh_dispatch(moep_comm_t *c, moep_handle_t *h, const moep_dispatch_params_t *p,
                                    bool expert_x) {
    staging_t sg;
    int64_t cap = c->gpu->cap_rows;
    moep_status_t st = reserve_fresh(c, h, &sg, cap);
    /* a local failure before the exchange must still reach the peers: it
     * cannot here (no buffers), so the comm is out of step */
    if (st != MOEP_OK) {
        c->broken = true;
        return st;
    }
    st = first_round(c, h, p, &sg, cap);
    if (st == MOEP_OK) st = moep__gpu_wait_event(c, FN, h->gpu->counts_ready, "the dispatch counts");
    if (st == MOEP_OK) st = check_messages(c, h, &sg);
    if (st == MOEP_ERR_PROTOCOL || st == MOEP_ERR_CUDA || st == MOEP_ERR_TIMEOUT) c->broken = true;
    /* every rank sees every rank's T and the same verdict: the same cap */
    int64_t max_t = st == MOEP_OK ? max_tokens(c, h, &sg) : 0;
    if (st == MOEP_OK) st = note_peer_blocks(c, h, &sg, cap);
    c->gpu->cap_rows = moep__gpu_next_cap(c->world_size, h->top_k, max_t, c->gpu->peer.on);
    if (st != MOEP_OK) return st; /* every rank stops here with the same verdict */
    plan_counts(c, h, &sg);
    if (cap > 0 && c->gpu->peer.on) { /* what the pack wrote into the peers */
        h->dispatch_wire_bytes = 0;
        for (int32_t r = 0; r < c->world_size; r++)
            if (r != c->rank)
                h->dispatch_wire_bytes +=
                    (uint64_t)(h->send_count[r] < cap ? h->send_count[r] : cap) *
                    ((uint64_t)h->hidden * moep__gpu_esize(h->dtype) + 8 * (uint64_t)h->top_k);
    }
    if (cap == 0 || max_t > cap) { /* no round with the payload: the exact one now */
        st = reserve_recv(c, h, expert_x);
        if (st == MOEP_OK) st = exchange_fresh(c, h, p);
        if (st == MOEP_OK) st = expert_layout(c, h, &sg);
    }
    if (st == MOEP_OK) st = gather(c, h, expert_x);
    if (st != MOEP_OK) c->broken = true; /* peers already exchanged rows with us */
    return st;
}

moep_status_t moep__gpu_dispatch(moep_comm_t *c, const moep_dispatch_params_t *params,
                                 moep_handle_t **handle_p, moep_dispatch_result_t *res) {
    moep_dispatch_params_t p;
    moep_dispatch_params_init(&p);
    MOEP_TRY(moep__load_versioned(FN, &p, sizeof p, params));
    bool reuse = (p.flags & MOEP_DISPATCH_REUSE_LAYOUT) != 0;
    bool expert_x = (p.flags & MOEP_DISPATCH_NO_EXPERT_X) == 0;
    MOEP_TRY(check_inputs(c, &p, reuse));
    moep_handle_t *h = *handle_p;
    if (reuse) {
        if (h == NULL || h->gpu == NULL || !h->gpu->ready)
            return moep__fail(MOEP_ERR_INVALID_USAGE,
                              "%s: MOEP_DISPATCH_REUSE_LAYOUT needs a handle from an earlier dispatch", FN);
        if (p.x->shape[0] != h->num_tokens || p.x->shape[1] != h->hidden || p.x->dtype != h->dtype ||
            p.expert_alignment != h->alignment)
            return moep__fail(MOEP_ERR_INVALID_USAGE,
                              "%s: cached layout was made for T=%lld H=%d dtype=%s: x differs", FN,
                              (long long)h->num_tokens, h->hidden, moep_dtype_name(h->dtype));
    }
    if (h != NULL && h->comm != c)
        return moep__fail(MOEP_ERR_INVALID_USAGE, "%s: handle belongs to another communicator", FN);
    MOEP_TRY(moep__cuda_check(c, FN, cudaSetDevice(c->device_id), "cudaSetDevice"));
    MOEP_TRY(moep__gpu_peer_check(c, FN));
    bool created = false;
    if (h == NULL) {
        MOEP_TRY(moep__handle_create(c, &h));
        created = true;
    }
    if (h->gpu == NULL) {
        h->gpu = moep__calloc(FN, 1, sizeof *h->gpu);
        if (h->gpu == NULL) {
            if (created) moep_handle_destroy(h);
            return MOEP_ERR_NO_MEMORY;
        }
    }
    c->seq++;
    moep_status_t st;
    if (reuse && c->gpu->peer.on) {
        st = moep__gpu_peer_cached(c, h, &p);
        if (st == MOEP_OK) st = gather(c, h, expert_x);
        if (st != MOEP_OK) c->broken = true;
    } else if (reuse) {
        st = pack(c, h, &p, false, true,
                  (uint8_t *)h->gpu->recv_x.p +
                      (size_t)h->recv_offset[c->rank] * (size_t)h->hidden * moep__gpu_esize(h->dtype),
                  NULL, (cudaStream_t)c->gpu->stream);
        if (st == MOEP_OK) st = exchange_rows(c, h, false);
        if (st == MOEP_OK) st = gather(c, h, expert_x);
        if (st != MOEP_OK) c->broken = true;
    } else {
        h->gpu->ready = false;
        h->num_tokens = p.x->shape[0];
        h->hidden = (int32_t)p.x->shape[1];
        h->top_k = (int32_t)p.topk_idx->shape[1];
        h->dtype = p.x->dtype;
        h->wire_dtype = p.x->dtype;
        h->alignment = p.expert_alignment;
        st = fresh_dispatch(c, h, &p, expert_x);
        h->gpu->ready = st == MOEP_OK;
    }
    if (st != MOEP_OK) {
        if (created) moep_handle_destroy(h);
        return st;
    }
    fill_result(c, h, expert_x, res);
    *handle_p = h;
    return MOEP_OK;
}
