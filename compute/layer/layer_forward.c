/* One forward pass: route -> dispatch -> experts -> combine (+ shared). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "layer_internal.h"
#ifdef MOEP_HAVE_CUDA
#include "layer_cuda.h"
#endif

static const char *const FN = "moep_layer_forward";

static moep_status_t reserve(void **buf, size_t *cap, size_t bytes) {
    if (bytes <= *cap && *buf != NULL) return MOEP_OK;
    void *p = moep__aligned_alloc(FN, bytes);
    if (p == NULL) return MOEP_ERR_NO_MEMORY;
    free(*buf);
    *buf = p;
    *cap = bytes;
    return MOEP_OK;
}

static moep_status_t check_forward(const moep_layer_t *l, const moep_tensor_t *x,
                                   const moep_tensor_t *y) {
    if (!l->have_experts)
        return moep__fail(MOEP_ERR_INVALID_USAGE, "%s: call moep_layer_set_experts first", FN);
    const int64_t xs[2] = {MOEP_ANY, l->cfg.hidden};
    MOEP_TRY(moep__check_tensor(FN, "x", x, 2, l->cfg.act_dtype, xs));
    const int64_t ys[2] = {x->shape[0], l->cfg.hidden};
    MOEP_TRY(moep__check_tensor(FN, "y", y, 2, l->cfg.act_dtype, ys));
    if (x->data == y->data && x->shape[0] > 0)
        return moep__fail(MOEP_ERR_INVALID_ARG, "%s: y may not alias x", FN);
    return MOEP_OK;
}

static moep_status_t route(moep_layer_t *l, const moep_tensor_t *x, const moep_tensor_t *token_ids) {
    int64_t T = x->shape[0];
    int32_t E = l->cfg.router.num_experts, k = l->cfg.router.top_k;
    MOEP_TRY(reserve((void **)&l->topk_idx, &l->idx_cap, (size_t)T * k * sizeof(int32_t)));
    MOEP_TRY(reserve((void **)&l->topk_weights, &l->w_cap, (size_t)T * k * sizeof(float)));
    moep_router_config_t rc = l->cfg.router;
    rc.expert_bias = l->bias;
    moep_tensor_t scores = moep_tensor_2d(NULL, MOEP_DTYPE_F32, T, E);
    if (rc.kind != MOEP_ROUTE_HASH) {
        MOEP_TRY(reserve((void **)&l->logits, &l->logits_cap, (size_t)T * E * sizeof(float)));
        MOEP_TRY(moep__router_logits(x, l->gate, E, l->logits));
        scores.data = l->logits;
    }
    moep_tensor_t idx = moep_tensor_2d(l->topk_idx, MOEP_DTYPE_I32, T, k);
    moep_tensor_t w = moep_tensor_2d(l->topk_weights, MOEP_DTYPE_F32, T, k);
    l->last_tokens = T;
    return moep_route(&rc, rc.kind == MOEP_ROUTE_HASH ? NULL : &scores, token_ids, &idx, &w);
}

moep_status_t moep__layer_dispatch(moep_layer_t *l, const moep_tensor_t *x, const moep_tensor_t *idx,
                                   const moep_tensor_t *w, moep_dispatch_result_t *res) {
    moep_dispatch_params_t dp;
    moep_dispatch_params_init(&dp);
    dp.x = x;
    dp.topk_idx = idx;
    dp.topk_weights = w;
    dp.expert_alignment = l->cfg.expert_alignment;
    dp.wire_dtype = l->cfg.wire_dtype;
    return moep_dispatch(l->comm, &dp, &l->handle, res);
}

/*
 * A rank whose routing failed (NaN scores) still takes part in the dispatch,
 * with one dummy token whose ids are all out of range: the peers then stop
 * with MOEP_ERR_REMOTE at once instead of waiting for this rank until the
 * timeout (which would leave the communicator broken). Returns `st` with
 * the routing's message.
 */
static moep_status_t announce_route_failure(moep_layer_t *l, moep_status_t st) {
    char msg[512];
    snprintf(msg, sizeof msg, "%s", moep_last_error());
    const int32_t H = l->cfg.hidden, k = l->cfg.router.top_k;
    void *x1 = calloc((size_t)H, moep__dtype_size(l->cfg.act_dtype));
    int32_t *idx1 = malloc((size_t)k * sizeof *idx1);
    float *w1 = calloc((size_t)k, sizeof *w1);
    if (x1 != NULL && idx1 != NULL && w1 != NULL) {
        for (int32_t j = 0; j < k; j++) idx1[j] = l->cfg.router.num_experts;
        moep_tensor_t xt = moep_tensor_2d(x1, l->cfg.act_dtype, 1, H);
        moep_tensor_t it = moep_tensor_2d(idx1, MOEP_DTYPE_I32, 1, k);
        moep_tensor_t wt = moep_tensor_2d(w1, MOEP_DTYPE_F32, 1, k);
        moep_dispatch_result_t res;
        (void)moep__layer_dispatch(l, &xt, &it, &wt, &res); /* fails: out-of-range ids */
    }
    free(x1);
    free(idx1);
    free(w1);
    return moep__fail(st, "%s", msg);
}

static moep_status_t shared_expert(moep_layer_t *l, const moep_tensor_t *x, moep_tensor_t *y) {
    int64_t offsets[2] = {0, x->shape[0]};
    return moep_expert_ffn(&l->shared, x, offsets, y, l->cfg.num_threads);
}

moep_status_t moep_layer_forward(moep_layer_t *l, const moep_tensor_t *x,
                                 const moep_tensor_t *token_ids, moep_tensor_t *y,
                                 moep_layer_timings_t *timings) {
    MOEP_CHECK_ARG(FN, l);
#ifdef MOEP_HAVE_CUDA
    if (l->gpu != NULL) return moep__layer_cuda_forward(l, x, token_ids, y, timings);
#endif
    MOEP_TRY(check_forward(l, x, y));
    moep_layer_timings_t tm;
    memset(&tm, 0, sizeof tm);
    double t0 = moep__now_ms();
    moep_status_t st = route(l, x, token_ids);
    if (st != MOEP_OK) return announce_route_failure(l, st);
    double t1 = moep__now_ms();

    moep_tensor_t idx, w;
    moep_layer_last_routing(l, &idx, &w);
    moep_dispatch_result_t res;
    MOEP_TRY(moep__layer_dispatch(l, x, &idx, &w, &res));
    double t2 = moep__now_ms();

    size_t row = (size_t)l->cfg.hidden * moep__dtype_size(l->cfg.act_dtype);
    MOEP_TRY(reserve(&l->expert_y, &l->expert_y_cap, (size_t)res.num_expert_rows * row));
    moep_tensor_t ey = moep_tensor_2d(l->expert_y, l->cfg.act_dtype, res.num_expert_rows, l->cfg.hidden);
    MOEP_TRY(moep_expert_ffn(&l->experts, &res.expert_x, res.expert_offset, &ey, l->cfg.num_threads));
    double t3 = moep__now_ms();

    /* the shared expert writes y first; combine then accumulates onto it */
    if (l->have_shared) MOEP_TRY(shared_expert(l, x, y));
    double t4 = moep__now_ms();

    moep_combine_params_t cp;
    moep_combine_params_init(&cp);
    cp.expert_y = &ey;
    cp.out = y;
    cp.accumulate = l->have_shared;
    MOEP_TRY(moep_combine(l->comm, &cp, l->handle));
    double t5 = moep__now_ms();

    if (timings != NULL) {
        moep_load_stats_t stats;
        MOEP_TRY(moep_load_stats(&idx, l->cfg.router.num_experts, l->expert_counts, &stats));
        tm.route_ms = t1 - t0;
        tm.dispatch_ms = t2 - t1;
        tm.experts_ms = t3 - t2;
        tm.shared_ms = t4 - t3;
        tm.combine_ms = t5 - t4;
        tm.total_ms = t5 - t0;
        tm.expert_counts_max = stats.max;
        tm.expert_imbalance = stats.imbalance;
        uint64_t ds = 0, cs = 0;
        moep_handle_bytes(l->handle, &ds, &cs);
        tm.bytes_sent = ds + cs;
        for (int32_t e = 0; e < res.num_local_experts; e++) tm.expert_rows += res.tokens_per_local_expert[e];
        *timings = tm;
    }
    return MOEP_OK;
}
