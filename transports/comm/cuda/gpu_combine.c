/*
 * GPU combine: per received token, the weighted sum of this rank's expert
 * rows in f32 (rounded to expert_y's dtype for the wire, as combine.c);
 * the partials go home over the stream-ordered alltoallv; the home rank
 * adds them in rank order in f32. No host synchronisation.
 */
#include <string.h>

#include "gpu_internal.h"

static const char *const FN = "moep_combine";

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
    if (st == MOEP_OK)
        st = moep__cuda_check(c, FN,
                              moep__cuda_combine_local(p.expert_y->data, yt == MOEP_DTYPE_BF16,
                                                       h->hidden, g->slot_row.p, g->weight.p,
                                                       h->num_recv, h->top_k, g->partial_send.p, s),
                              "combine kernel (experts)");
    h->combine_wire_bytes = 0;
    if (st == MOEP_OK)
        st = moep__gpu_alltoallv_rows(c, FN, g->partial_send.p, h->recv_count, h->recv_offset,
                                      g->partial_recv.p, h->send_count, g->rank_offset, row,
                                      &h->combine_wire_bytes);
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
