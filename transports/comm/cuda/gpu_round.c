/*
 * One-round fresh dispatch (device communicators): the count messages, the
 * meta and the x rows go in ONE transport group. NCCL needs matching sizes,
 * so every peer block is worst-case sized: cap rows, cap >= every rank's T
 * (a token goes to a rank at most once). cap is per communicator, the same
 * on every rank: the largest T of the previous fresh dispatch (each message
 * carries its sender's T). A dispatch whose T exceeds cap on some rank,
 * the first one (cap 0), and shapes where worst-case blocks would mostly
 * move padding (moep__gpu_next_cap) take the count round and then the
 * exact payload round instead.
 * The receiver finds the counts in the messages on the GPU: rank 0's block
 * lands in recv_x in place, the others in padded blocks and one kernel
 * moves them behind it; ids/weights and the expert rows follow on the GPU.
 * The host waits only for the counts it returns (recv sizes, expert
 * offsets), after the payload has arrived.
 */
#include <stdlib.h>

#include "gpu_internal.h"

static const char *const FN = "moep_dispatch";

int64_t moep__gpu_next_cap(int32_t R, int32_t k, int64_t max_t, bool peer) {
    if (max_t <= 0 || R < 2) return 0;
    if (max_t <= 256 || peer) return max_t; /* decode: latency-bound, padding is cheap; peer-mapped:
                                             * padding costs memory, never a transfer */
    /* expected share of a rank's tokens that reach a given peer with
     * uniform top-k routing: 1 - (1 - 1/R)^k */
    double miss = 1.0;
    for (int32_t j = 0; j < k; j++) miss *= 1.0 - 1.0 / R;
    return 1.0 - miss >= 0.85 ? max_t : 0;
}

int64_t moep__gpu_rows_bound(const moep_comm_t *c, const moep_handle_t *h, int64_t n) {
    int64_t per = h->top_k < c->num_local_experts ? h->top_k : c->num_local_experts;
    return n * per + (int64_t)c->num_local_experts * (h->alignment - 1);
}

moep_status_t moep__gpu_round_reserve(moep_comm_t *c, moep_handle_t *h, int64_t cap, size_t row,
                                      bool padded) {
    struct moep__gpu_handle *g = h->gpu;
    size_t n = (size_t)c->world_size * (size_t)cap, k = (size_t)h->top_k;
    MOEP_TRY(moep__dbuf_reserve(c, FN, &g->recv_x, n * row));
    if (padded) { /* else the padded blocks are in the peer-mapped buffer */
        MOEP_TRY(moep__dbuf_reserve(c, FN, &g->recv_pad, n * row));
        MOEP_TRY(moep__dbuf_reserve(c, FN, &g->recv_meta, n * 8 * k));
    }
    MOEP_TRY(moep__dbuf_reserve(c, FN, &g->local_idx, n * 4 * k));
    MOEP_TRY(moep__dbuf_reserve(c, FN, &g->weight, n * 4 * k));
    MOEP_TRY(moep__dbuf_reserve(c, FN, &g->src, n * 4));
    MOEP_TRY(moep__dbuf_reserve(c, FN, &g->slot_row, n * 4 * k));
    MOEP_TRY(moep__dbuf_reserve(c, FN, &g->row_src, (size_t)moep__gpu_rows_bound(c, h, (int64_t)n) * 4));
    MOEP_TRY(moep__dbuf_reserve(c, FN, &g->recv_offset, (size_t)(c->world_size + 1) * 8));
    MOEP_TRY(moep__dbuf_reserve(c, FN, &g->rows_scratch,
                                moep__cuda_expert_rows_scratch((int64_t)n, h->top_k,
                                                               c->num_local_experts)));
    return moep__dbuf_reserve(c, FN, &g->expert_offset, (size_t)(c->num_local_experts + 1) * 8);
}

moep_status_t moep__gpu_round_transfer(moep_comm_t *c, moep_handle_t *h, int64_t cap, size_t row) {
    struct moep__gpu_handle *g = h->gpu;
    int32_t R = c->world_size;
    size_t meta_row = 8 * (size_t)h->top_k;
    int64_t *v = c->gpu->row_tmp; /* [0, 5R) */
    int64_t *cnt = v, *send_off = v + R, *pad_off = v + 2 * R, *first = v + 3 * R, *rest = v + 4 * R;
    for (int32_t r = 0; r < R; r++) {
        cnt[r] = cap;
        send_off[r] = r * g->blk;
        pad_off[r] = r * cap;
        first[r] = r == 0 ? cap : 0; /* rank 0's rows sit at the front of recv_x */
        rest[r] = r == 0 ? 0 : cap;
    }
    moep_status_t st = moep__gpu_alltoallv_rows(c, FN, g->send_meta.p, cnt, send_off, g->recv_meta.p,
                                                cnt, pad_off, meta_row, &h->dispatch_wire_bytes);
    /* x: the sends and rank 0's block into recv_x, then the other blocks */
    if (st == MOEP_OK)
        st = moep__gpu_alltoallv_rows(c, FN, g->send_x.p, cnt, send_off, g->recv_x.p, first, pad_off,
                                      row, &h->dispatch_wire_bytes);
    for (int32_t r = 0; r < R; r++) cnt[r] = 0;
    if (st == MOEP_OK)
        st = moep__gpu_alltoallv_rows(c, FN, g->send_x.p, cnt, send_off, g->recv_pad.p, rest, pad_off,
                                      row, NULL);
    return st;
}

moep_status_t moep__gpu_round_finish(moep_comm_t *c, moep_handle_t *h, int64_t cap, size_t row,
                                     const moep__gpu_round_in_t *in) {
    struct moep__gpu_handle *g = h->gpu;
    int32_t R = c->world_size, L = c->num_local_experts, k = h->top_k;
    moep_stream_t s = c->gpu->stream;
    int64_t *recv_offset = g->recv_offset.p;
    moep__cuda_recv_rows_t n = {(int64_t)R * cap, recv_offset + R};
    int64_t rows_cap = moep__gpu_rows_bound(c, h, n.max);
    int err = in->planned ? 0
                          : moep__cuda_recv_plan(in->msgs, g->msg_bytes, R, cap, c->gpu->local_experts,
                                                 L, h->alignment, recv_offset, g->expert_offset.p, s);
    MOEP_TRY(moep__cuda_check(c, FN, err, "one-round dispatch kernels"));
    /* the compaction (a copy of the peers' rows) on the side stream, beside
     * the ids and the expert rows */
    MOEP_TRY(moep__gpu_fork(c, FN));
    err = moep__cuda_compact_rows(in->x, row, cap, R, recv_offset, g->recv_x.p, in->skip, c->gpu->side);
    if (!err) err = moep__cuda_unpack_meta(in->meta, &n, k, c->num_experts, c->gpu->global_to_local,
                                           recv_offset, R, cap, g->local_idx.p, g->weight.p, g->src.p, s);
    if (!err) err = moep__cuda_expert_rows(g->local_idx.p, &n, k, L, g->expert_offset.p, rows_cap,
                                           g->slot_row.p, g->row_src.p, g->rows_scratch.p, s);
    MOEP_TRY(moep__cuda_check(c, FN, err, "one-round dispatch kernels"));
    return moep__gpu_join(c, FN);
}
