/*
 * Dispatch on peer-mapped buffers (gpu_peer.c; ranks of one node): the
 * fresh dispatch's one round and the cached dispatch skip the transport.
 * The pack kernel stores ids and x rows straight into every peer's padded
 * blocks of cap rows per source rank and our own rows straight into recv_x,
 * one signal round, then the receiver moves the peers' blocks into recv_x
 * and lays out the rest as the transport round does (gpu_round.c). A fresh
 * dispatch of large blocks first exchanges the count messages (one more
 * signal round) so that every rank knows where its own rows go.
 */
#include <string.h>

#include "gpu_internal.h"

static const char *const FN = "moep_dispatch";

/* Where a peer-mapped round puts things in every rank's mapped buffer:
 * the R count messages, then meta and x in padded blocks of cap rows per
 * source rank. The same on every rank (cap, E, k and the row are). */
typedef struct peer_round_layout {
    size_t meta, x, bytes;
} peer_round_layout_t;

static peer_round_layout_t round_layout(const moep_comm_t *c, const moep_handle_t *h, int64_t cap) {
    size_t R = (size_t)c->world_size, row = (size_t)h->hidden * moep__gpu_esize(h->dtype);
    peer_round_layout_t l;
    l.meta = (R * h->gpu->msg_bytes + 255) / 256 * 256;
    l.x = l.meta + (R * (size_t)cap * 8 * (size_t)h->top_k + 255) / 256 * 256;
    l.bytes = l.x + R * (size_t)cap * row;
    return l;
}

/* The receive plan (recv_offset, expert offsets) from the count messages
 * in our area, and their copy home (plus our rank counts and bad), which
 * the host waits for. */
static moep_status_t plan_and_copy_counts(moep_comm_t *c, moep_handle_t *h, int64_t cap,
                                          const int64_t *rank_count, void *host_msgs,
                                          int64_t *host_rank_count, cudaStream_t s) {
    struct moep__gpu_handle *g = h->gpu;
    const void *msgs = c->gpu->peer.buf;
    int32_t R = c->world_size;
    int err = moep__cuda_recv_plan(msgs, g->msg_bytes, R, cap, c->gpu->local_experts,
                                   c->num_local_experts, h->alignment, g->recv_offset.p,
                                   g->expert_offset.p, (moep_stream_t)s);
    if (!err) err = cudaMemcpyAsync(host_msgs, msgs, (size_t)R * g->msg_bytes, cudaMemcpyDeviceToHost, s);
    if (!err) /* rank counts and bad follow in the staging, as in recv_hdr */
        err = cudaMemcpyAsync(host_rank_count, rank_count, (size_t)R * 8 + 4, cudaMemcpyDeviceToHost, s);
    if (!err) err = cudaEventRecord(g->counts_ready, s);
    return moep__cuda_check(c, FN, err, "receive plan and the copy of the counts");
}

/* Before the count kernel of the one round: the op's begin (the peers have
 * finished reading our earlier stores), and where the count kernel puts the
 * count messages: our slot in every rank's area. */
moep_status_t moep__gpu_peer_round_begin(moep_comm_t *c, moep_handle_t *h, int64_t cap,
                                         moep__cuda_msg_out_t *out) {
    moep__gpu_peer_t *pm = &c->gpu->peer;
    MOEP_TRY(moep__gpu_peer_begin(c, FN, round_layout(c, h, cap).bytes));
    for (int32_t r = 0; r < c->world_size; r++)
        out->to.base[r] = (uint8_t *)pm->bufs[r] + (size_t)c->rank * h->gpu->msg_bytes;
    out->mapped = 1;
    return MOEP_OK;
}

/* The one round on peer-mapped buffers (c->gpu->peer.on, cap > 0), after
 * the count kernel has put the count messages into every rank's area
 * (moep__gpu_peer_round_begin): the pack: ids, weights and x rows
 * straight into every rank's padded blocks; one signal round; then the
 * same receive-side kernels as the transport round, which move the blocks
 * into recv_x. With large blocks (prefill) the counts go first, with a
 * signal round of their own: then the pack puts our own rows straight into
 * their final place in recv_x (the kernel adds up the counts before ours),
 * only the peers' blocks are moved, and the receive plan and the copy home
 * of the counts run on the side stream while the rows travel. For small
 * blocks (decode) the extra round would cost more than the copy it saves. */
moep_status_t moep__gpu_peer_round(moep_comm_t *c, moep_handle_t *h, const moep_dispatch_params_t *p,
                                   int64_t cap, const int64_t *rank_count, void *host_msgs,
                                   int64_t *host_rank_count) {
    struct moep__gpu_handle *g = h->gpu;
    moep__gpu_peer_t *pm = &c->gpu->peer;
    int32_t R = c->world_size, me = c->rank;
    size_t row = (size_t)h->hidden * moep__gpu_esize(h->dtype);
    bool counts_first = (size_t)cap * row >= ((size_t)8 << 20); /* cap and row: the same on every rank */
    peer_round_layout_t l = round_layout(c, h, cap);
    moep__cuda_peer_pack_t pk;
    memset(&pk, 0, sizeof pk);
    for (int32_t r = 0; r < R; r++) {
        pk.meta.base[r] = (uint8_t *)pm->bufs[r] + l.meta;
        pk.x.base[r] = (uint8_t *)pm->bufs[r] + l.x;
    }
    pk.me = me;
    pk.blk = g->blk;
    pk.cap = cap;
    moep_stream_t s = c->gpu->stream;
    cudaStream_t side = c->gpu->side;
    int err = 0;
    if (counts_first) {
        MOEP_TRY(moep__gpu_peer_sync(c, FN, MOEP__PEER_COUNTS, c->seq));
        pk.self_x = g->recv_x.p;
        pk.self_msgs = pm->buf;
        pk.msg_bytes = g->msg_bytes;
        err = cudaEventRecord(c->gpu->fork, (cudaStream_t)s); /* the side stream starts here */
    }
    /* Few host calls before the pack: the kernels before it are short, so
     * every call there is time the GPU waits for the host. The side
     * stream's work is enqueued after the pack, though it starts before. */
    if (!err) err = moep__cuda_pack_peer(p->x->data, row, h->num_tokens, R, g->trs.p, p->topk_idx->data,
                                         p->topk_weights->data, h->top_k, &pk, s);
    MOEP_TRY(moep__cuda_check(c, FN, err, "pack kernel (into the peers)"));
    if (counts_first) {
        MOEP_TRY(moep__cuda_check(c, FN, cudaStreamWaitEvent(side, c->gpu->fork, 0), "fork to the side stream"));
        MOEP_TRY(plan_and_copy_counts(c, h, cap, rank_count, host_msgs, host_rank_count, side));
    }
    MOEP_TRY(moep__gpu_peer_end(c, FN));
    if (counts_first)
        MOEP_TRY(moep__gpu_join(c, FN)); /* the receive plan */
    else
        MOEP_TRY(plan_and_copy_counts(c, h, cap, rank_count, host_msgs, host_rank_count, (cudaStream_t)s));
    moep__gpu_round_in_t in = {pm->buf, (uint8_t *)pm->buf + l.meta, (uint8_t *)pm->buf + l.x,
                               counts_first ? me : -1, true};
    return moep__gpu_round_finish(c, h, cap, row, &in);
}

/* Cached dispatch on peer-mapped buffers: our rows straight into every
 * peer's padded blocks (peer_rows per source rank) and into our recv_x,
 * one signal round, then the peers' blocks moved into recv_x at the cached
 * offsets. */
moep_status_t moep__gpu_peer_cached(moep_comm_t *c, moep_handle_t *h, const moep_dispatch_params_t *p) {
    struct moep__gpu_handle *g = h->gpu;
    moep__gpu_peer_t *pm = &c->gpu->peer;
    int32_t R = c->world_size;
    size_t row = (size_t)h->hidden * moep__gpu_esize(h->dtype);
    int64_t P = g->peer_rows;
    MOEP_TRY(moep__gpu_peer_begin(c, FN, (size_t)R * (size_t)P * row));
    moep__cuda_peer_pack_t pk;
    memset(&pk, 0, sizeof pk);
    for (int32_t r = 0; r < R; r++) pk.x.base[r] = pm->bufs[r];
    pk.me = c->rank;
    pk.blk = g->blk;
    pk.cap = P;
    pk.self_x = (uint8_t *)g->recv_x.p + (size_t)h->recv_offset[c->rank] * row; /* known: no detour */
    moep_stream_t s = c->gpu->stream;
    int err = moep__cuda_pack_peer(p->x->data, row, h->num_tokens, R, g->trs.p, NULL, NULL, h->top_k,
                                   &pk, s);
    MOEP_TRY(moep__cuda_check(c, FN, err, "pack kernel (into the peers)"));
    MOEP_TRY(moep__gpu_peer_end(c, FN));
    err = moep__cuda_compact_rows(pm->buf, row, P, R, g->recv_offset.p, g->recv_x.p, c->rank, s);
    MOEP_TRY(moep__cuda_check(c, FN, err, "compaction kernel"));
    h->dispatch_wire_bytes = 0;
    for (int32_t r = 0; r < R; r++)
        if (r != c->rank) h->dispatch_wire_bytes += (uint64_t)h->send_count[r] * row;
    return MOEP_OK;
}
