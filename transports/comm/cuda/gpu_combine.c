/*
 * GPU combine: per received token, the weighted sum of this rank's expert
 * rows in f32 (rounded to expert_y's dtype for the wire, as combine.c);
 * the partials go home over the stream-ordered alltoallv; the home rank
 * adds them in rank order in f32. No host synchronisation.
 * The partials of our own tokens skip the transport: a side stream reduces
 * them straight into the receive buffer while the transport moves the
 * peers'. Large blocks are pipelined (moep__gpu_pair_chunks): the side
 * stream reduces each peer block piece by piece and the comm's stream sends
 * a piece as soon as it is reduced, so the transfer of piece i overlaps the
 * reduction of piece i + 1 instead of waiting for all of them.
 */
#include <string.h>

#include "gpu_internal.h"

static const char *const FN = "moep_combine";

/* Weighted sums of the received tokens [lo, hi) into `partial`. */
static int reduce_range(const moep_handle_t *h, const moep_combine_params_t *p, int64_t lo, int64_t hi,
                        void *partial, cudaStream_t s) {
    const struct moep__gpu_handle *g = h->gpu;
    int32_t k = h->top_k;
    return moep__cuda_combine_local(p->expert_y->data, p->expert_y->dtype == MOEP_DTYPE_BF16,
                                    h->hidden, (const int32_t *)g->slot_row.p + lo * k,
                                    (const float *)g->weight.p + lo * k, hi - lo, k, partial,
                                    (moep_stream_t)s);
}

/* Our own tokens' partials straight into partial_recv (they skip the transport). */
static moep_status_t reduce_own(moep_comm_t *c, moep_handle_t *h, const moep_combine_params_t *p,
                                size_t row, cudaStream_t s) {
    struct moep__gpu_handle *g = h->gpu;
    int32_t me = c->rank;
    int err = reduce_range(h, p, h->recv_offset[me], h->recv_offset[me + 1],
                           (uint8_t *)g->partial_recv.p + (size_t)g->rank_offset[me] * row, s);
    return moep__cuda_check(c, FN, err, "combine kernel (experts)");
}

/* The peers' tokens (before and after ours in receive order) first, into
 * partial_send; then ours straight into partial_recv, on the side stream
 * (overlapping the transport) when they are large enough to pay for it. */
static moep_status_t reduce_then_send(moep_comm_t *c, moep_handle_t *h, const moep_combine_params_t *p,
                                      size_t row) {
    struct moep__gpu_handle *g = h->gpu;
    int32_t me = c->rank;
    int64_t lo = h->recv_offset[me], hi = h->recv_offset[me + 1];
    cudaStream_t s = (cudaStream_t)c->gpu->stream;
    int err = reduce_range(h, p, 0, lo, g->partial_send.p, s);
    if (!err) err = reduce_range(h, p, hi, h->num_recv, (uint8_t *)g->partial_send.p + (size_t)hi * row, s);
    MOEP_TRY(moep__cuda_check(c, FN, err, "combine kernel (experts)"));
    bool overlap = (size_t)(hi - lo) * row >= ((size_t)8 << 20);
    if (overlap) MOEP_TRY(moep__gpu_fork(c, FN));
    MOEP_TRY(reduce_own(c, h, p, row, overlap ? c->gpu->side : s));
    MOEP_TRY(moep__gpu_alltoallv_rows(c, FN, g->partial_send.p, h->recv_count, h->recv_offset,
                                      g->partial_recv.p, h->send_count, g->rank_offset, row,
                                      &h->combine_wire_bytes));
    return overlap ? moep__gpu_join(c, FN) : MOEP_OK;
}

/* The pipeline: piece i of every peer block is reduced on the side stream
 * and sent on the comm's stream once it is ready; our own rows are reduced
 * last, on the side stream, while the last pieces travel. Piece i of the
 * block we send to peer q covers the same rows as q's piece i of the block
 * it receives from us (both split recv_count / send_count alike). */
static moep_status_t reduce_pipelined(moep_comm_t *c, moep_handle_t *h, const moep_combine_params_t *p,
                                      size_t row, int32_t pieces) {
    struct moep__gpu_handle *g = h->gpu;
    int32_t R = c->world_size, me = c->rank;
    int64_t *v = c->gpu->row_tmp; /* [0, 4R) */
    int64_t *scnt = v, *soff = v + R, *rcnt = v + 2 * R, *roff = v + 3 * R;
    cudaStream_t side = c->gpu->side;
    MOEP_TRY(moep__gpu_fork(c, FN));
    for (int32_t i = 0; i < pieces; i++) {
        for (int32_t q = 0; q < R; q++) {
            scnt[q] = rcnt[q] = 0;
            soff[q] = roff[q] = 0;
            if (q == me) continue;
            int64_t n = h->recv_count[q], m = h->send_count[q];
            int32_t ns = moep__gpu_pair_chunks(c, n, row), nr = moep__gpu_pair_chunks(c, m, row);
            int64_t lo = moep__gpu_chunk_lo(n, i, ns), hi = moep__gpu_chunk_lo(n, i + 1, ns);
            soff[q] = h->recv_offset[q] + lo;
            scnt[q] = hi - lo;
            roff[q] = g->rank_offset[q] + moep__gpu_chunk_lo(m, i, nr);
            rcnt[q] = moep__gpu_chunk_lo(m, i + 1, nr) - moep__gpu_chunk_lo(m, i, nr);
            int err = reduce_range(h, p, soff[q], soff[q] + scnt[q],
                                   (uint8_t *)g->partial_send.p + (size_t)soff[q] * row, side);
            MOEP_TRY(moep__cuda_check(c, FN, err, "combine kernel (experts)"));
        }
        cudaError_t e = cudaEventRecord(c->gpu->chunk_ready[i], side);
        if (e == cudaSuccess)
            e = cudaStreamWaitEvent((cudaStream_t)c->gpu->stream, c->gpu->chunk_ready[i], 0);
        MOEP_TRY(moep__cuda_check(c, FN, e, "combine pipeline event"));
        MOEP_TRY(moep__gpu_alltoallv_rows(c, FN, g->partial_send.p, scnt, soff, g->partial_recv.p,
                                          rcnt, roff, row, &h->combine_wire_bytes));
    }
    MOEP_TRY(reduce_own(c, h, p, row, side));
    return moep__gpu_join(c, FN);
}

/* Peer-mapped: every received token's partial goes straight into its home
 * rank's buffer (ours included), in one kernel; no transport. Before it,
 * wait until every peer has finished reading its buffer in the previous
 * peer-mapped op; after it, signal "written" to each peer and wait for theirs.
 * The home sums then read our buffer, laid out like partial_recv. */
static moep_status_t reduce_into_peers(moep_comm_t *c, moep_handle_t *h, const moep_combine_params_t *p,
                                       size_t row, void **partial_recv) {
    struct moep__gpu_handle *g = h->gpu;
    moep__gpu_peer_t *pm = &c->gpu->peer;
    int32_t R = c->world_size, me = c->rank;
    size_t need = 0;
    for (int32_t q = 0; q < R; q++) {
        size_t b = (size_t)R * (size_t)g->peer_blk[q] * row;
        if (b > need) need = b;
        if (q != me) h->combine_wire_bytes += (size_t)h->recv_count[q] * row;
    }
    MOEP_TRY(moep__gpu_peer_begin(c, FN, need));
    moep__cuda_peer_dst_t dst;
    memset(&dst, 0, sizeof dst);
    for (int32_t q = 0; q < R; q++) dst.base[q] = (uint8_t *)pm->bufs[q] + (size_t)me * g->peer_blk[q] * row;
    int err = moep__cuda_combine_local_peer(p->expert_y->data, p->expert_y->dtype == MOEP_DTYPE_BF16,
                                            h->hidden, g->slot_row.p, g->weight.p, h->num_recv,
                                            h->top_k, g->src.p, g->recv_offset.p, &dst,
                                            h->recv_offset[me], h->recv_count[me], c->gpu->stream);
    MOEP_TRY(moep__cuda_check(c, FN, err, "combine kernel (experts, into the peers)"));
    MOEP_TRY(moep__gpu_peer_end(c, FN));
    *partial_recv = pm->buf;
    return MOEP_OK;
}

/* Pieces of the largest peer block (1: no pipeline). */
static int32_t combine_pieces(const moep_comm_t *c, const moep_handle_t *h, size_t row) {
    int32_t most = 1;
    for (int32_t q = 0; q < c->world_size; q++) {
        if (q == c->rank) continue;
        int32_t a = moep__gpu_pair_chunks(c, h->recv_count[q], row);
        int32_t b = moep__gpu_pair_chunks(c, h->send_count[q], row);
        if (a > most) most = a;
        if (b > most) most = b;
    }
    return most;
}

moep_status_t moep__gpu_combine(moep_comm_t *c, const moep_combine_params_t *params, moep_handle_t *h) {
    struct moep__gpu_handle *g = h->gpu;
    if (h->comm != c || g == NULL || !g->ready)
        return moep__fail(MOEP_ERR_INVALID_USAGE,
                          "%s: handle has no completed GPU dispatch on this communicator", FN);
    moep_combine_params_t p;
    moep_combine_params_init(&p);
    MOEP_TRY(moep__load_versioned(FN, &p, sizeof p, params));
    const int64_t y_shape[2] = {h->num_expert_rows, h->hidden};
    const int64_t o_shape[2] = {h->num_tokens, h->hidden};
    MOEP_TRY(moep__check_cuda_tensor(c, FN, "expert_y", p.expert_y, 2, MOEP_ANY, y_shape));
    MOEP_TRY(moep__check_cuda_tensor(c, FN, "out", p.out, 2, MOEP_ANY, o_shape));
    moep_dtype_t yt = p.expert_y->dtype, ot = p.out->dtype;
    if ((yt != MOEP_DTYPE_F32 && yt != MOEP_DTYPE_BF16) || (ot != MOEP_DTYPE_F32 && ot != MOEP_DTYPE_BF16))
        return moep__fail(MOEP_ERR_SHAPE, "%s: expert_y (%s) and out (%s) must be f32 or bf16", FN,
                          moep_dtype_name(yt), moep_dtype_name(ot));
    MOEP_TRY(moep__cuda_check(c, FN, cudaSetDevice(c->device_id), "cudaSetDevice"));
    MOEP_TRY(moep__gpu_peer_check(c, FN));
    c->seq++;
    size_t row = (size_t)h->hidden * (yt == MOEP_DTYPE_BF16 ? 2 : 4);
    moep_stream_t s = c->gpu->stream;
    moep_status_t st = MOEP_OK;
    h->combine_wire_bytes = 0;
    void *partial_recv = g->partial_recv.p;
    if (c->gpu->peer.on) {
        st = reduce_into_peers(c, h, &p, row, &partial_recv);
    } else {
        st = moep__dbuf_reserve(c, FN, &g->partial_send, (size_t)h->num_recv * row);
        if (st == MOEP_OK) st = moep__dbuf_reserve(c, FN, &g->partial_recv, (size_t)g->num_slots * row);
        partial_recv = g->partial_recv.p;
        int32_t pieces = combine_pieces(c, h, row);
        if (st == MOEP_OK)
            st = pieces > 1 ? reduce_pipelined(c, h, &p, row, pieces) : reduce_then_send(c, h, &p, row);
    }
    if (st == MOEP_OK)
        st = moep__cuda_check(c, FN,
                              moep__cuda_combine_home(partial_recv, yt == MOEP_DTYPE_BF16,
                                                      h->hidden, g->trs.p, h->num_tokens,
                                                      c->world_size, p.out->data,
                                                      ot == MOEP_DTYPE_BF16, p.accumulate != 0, s),
                              "combine kernel (home)");
    if (st != MOEP_OK) c->broken = true; /* peers are sending to us */
    return st;
}
