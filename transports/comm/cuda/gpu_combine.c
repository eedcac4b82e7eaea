/*
 * GPU combine: per received token, the weighted sum of this rank's expert
 * rows in f32 (rounded to expert_y's dtype for the wire, as combine.c);
 * the partials go home over the stream-ordered alltoallv; the home rank
 * adds them in rank order in f32. No host synchronisation.
 * The partials of our own tokens skip the transport: a side stream reduces
 * them straight into the receive buffer while the comm's stream reduces
 * the peers' partials and the transport moves them.
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

/* The peers' tokens (before and after ours in receive order) first, into
 * partial_send; then ours straight into partial_recv, on the side stream
 * (overlapping the transport) when they are large enough to pay for it. */
static moep_status_t reduce_local(moep_comm_t *c, moep_handle_t *h, const moep_combine_params_t *p,
                                  size_t row, bool *forked) {
    struct moep__gpu_handle *g = h->gpu;
    int32_t me = c->rank;
    int64_t lo = h->recv_offset[me], hi = h->recv_offset[me + 1];
    cudaStream_t s = (cudaStream_t)c->gpu->stream;
    int err = reduce_range(h, p, 0, lo, g->partial_send.p, s);
    if (!err) err = reduce_range(h, p, hi, h->num_recv, (uint8_t *)g->partial_send.p + (size_t)hi * row, s);
    MOEP_TRY(moep__cuda_check(c, FN, err, "combine kernel (experts)"));
    bool overlap = (size_t)(hi - lo) * row >= ((size_t)8 << 20);
    if (overlap) MOEP_TRY(moep__gpu_fork(c, FN));
    *forked = overlap;
    err = reduce_range(h, p, lo, hi, (uint8_t *)g->partial_recv.p + (size_t)g->rank_offset[me] * row,
                       overlap ? c->gpu->side : s);
    return moep__cuda_check(c, FN, err, "combine kernel (experts)");
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
    c->seq++;
    size_t row = (size_t)h->hidden * (yt == MOEP_DTYPE_BF16 ? 2 : 4);
    moep_stream_t s = c->gpu->stream;
    moep_status_t st = moep__dbuf_reserve(c, FN, &g->partial_send, (size_t)h->num_recv * row);
    if (st == MOEP_OK) st = moep__dbuf_reserve(c, FN, &g->partial_recv, (size_t)g->num_slots * row);
    bool forked = false;
    if (st == MOEP_OK) st = reduce_local(c, h, &p, row, &forked);
    h->combine_wire_bytes = 0;
    if (st == MOEP_OK)
        st = moep__gpu_alltoallv_rows(c, FN, g->partial_send.p, h->recv_count, h->recv_offset,
                                      g->partial_recv.p, h->send_count, g->rank_offset, row,
                                      &h->combine_wire_bytes);
    if (st == MOEP_OK && forked) st = moep__gpu_join(c, FN);
    if (st == MOEP_OK)
        st = moep__cuda_check(c, FN,
                              moep__cuda_combine_home(g->partial_recv.p, yt == MOEP_DTYPE_BF16,
                                                      h->hidden, g->trs.p, h->num_tokens,
                                                      c->world_size, p.out->data,
                                                      ot == MOEP_DTYPE_BF16, p.accumulate != 0, s),
                              "combine kernel (home)");
    if (st != MOEP_OK) c->broken = true; /* peers are sending to us */
    return st;
}
