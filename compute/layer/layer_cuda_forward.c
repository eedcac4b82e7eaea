/*
 * One forward of the GPU layer, all on the comm's stream:
 *   router GEMM -> moep_route_cuda -> moep_dispatch -> routed experts
 *   (moep_expert_ffn_cuda on the expert-major rows) -> shared expert
 *   (writes y) -> moep_combine (accumulates onto y),
 * with a CUDA event between the stages for moep_layer_timings_t.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_kernels.h"
#include "layer_cuda.h"
#include "moep_cuda_ffn.h"

static const char *const FN = "moep_layer_forward";

static moep_status_t check_dev(const struct moep__layer_gpu *g, const char *name,
                               const moep_tensor_t *t, int dtype, const int64_t *shape) {
    MOEP_CHECK_ARG(FN, t);
    moep_tensor_t v = *t;
    v.device = MOEP_DEVICE_CPU;
    MOEP_TRY(moep__check_tensor(FN, name, &v, 2 - (dtype == MOEP_DTYPE_I64), dtype, shape));
    if (moep_tensor_numel(t) > 0 && (t->device != MOEP_DEVICE_CUDA || t->device_id != g->device))
        return moep__fail(MOEP_ERR_INVALID_ARG, "%s: %s must be on CUDA device %d (the layer's)", FN,
                          name, (int)g->device);
    return MOEP_OK;
}

static moep_status_t check_forward(const moep_layer_t *l, const moep_tensor_t *x,
                                   const moep_tensor_t *token_ids, const moep_tensor_t *y) {
    if (!l->have_experts)
        return moep__fail(MOEP_ERR_INVALID_USAGE, "%s: call moep_layer_set_experts first", FN);
    const int64_t xs[2] = {MOEP_ANY, l->cfg.hidden};
    MOEP_TRY(check_dev(l->gpu, "x", x, MOEP_DTYPE_BF16, xs));
    const int64_t ys[2] = {x->shape[0], l->cfg.hidden};
    MOEP_TRY(check_dev(l->gpu, "y", y, MOEP_DTYPE_BF16, ys));
    if (x->data == y->data && x->shape[0] > 0)
        return moep__fail(MOEP_ERR_INVALID_ARG, "%s: y may not alias x", FN);
    if (l->cfg.router.kind == MOEP_ROUTE_HASH) {
        const int64_t is[1] = {x->shape[0]};
        MOEP_TRY(check_dev(l->gpu, "token_ids", token_ids, MOEP_DTYPE_I64, is));
    }
    return MOEP_OK;
}

static moep_tensor_t dev_view(const struct moep__layer_gpu *g, void *p, moep_dtype_t t, int64_t a,
                              int64_t b) {
    moep_tensor_t x = moep_tensor_2d(p, t, a, b);
    x.device = MOEP_DEVICE_CUDA;
    x.device_id = g->device;
    return x;
}

static moep_status_t record(const struct moep__layer_gpu *g, int i, moep_stream_t s) {
    return moep__layer_cuda_check(FN, cudaEventRecord(g->ev[i], (cudaStream_t)s), "cudaEventRecord");
}

static moep_status_t route(moep_layer_t *l, const moep_tensor_t *x, const moep_tensor_t *token_ids,
                           moep_stream_t s) {
    struct moep__layer_gpu *g = l->gpu;
    int64_t T = x->shape[0];
    int32_t E = l->cfg.router.num_experts, k = l->cfg.router.top_k;
    MOEP_TRY(moep__layer_dbuf_reserve(FN, &g->topk_idx, (size_t)T * k * sizeof(int32_t), s));
    MOEP_TRY(moep__layer_dbuf_reserve(FN, &g->topk_w, (size_t)T * k * sizeof(float), s));
    moep_router_config_t rc = l->cfg.router;
    rc.expert_bias = l->bias; /* host array: moep_route_cuda copies it */
    moep_tensor_t scores = dev_view(g, NULL, MOEP_DTYPE_F32, T, E);
    if (rc.kind != MOEP_ROUTE_HASH) {
        MOEP_TRY(moep__layer_dbuf_reserve(FN, &g->logits, (size_t)T * E * sizeof(float), s));
        size_t parts = moep__cuda_router_partials(T, l->cfg.hidden, E);
        if (parts > 0) MOEP_TRY(moep__layer_dbuf_reserve(FN, &g->router_part, parts * sizeof(float), s));
        scores.data = g->logits.p;
        MOEP_TRY(moep__layer_cuda_check(
            FN, (cudaError_t)moep__cuda_router_logits(x->data, 1, T, l->cfg.hidden, g->gate, E,
                                                      parts > 0 ? g->router_part.p : NULL,
                                                      g->logits.p, s),
            "router GEMM"));
    }
    moep_tensor_t idx = dev_view(g, g->topk_idx.p, MOEP_DTYPE_I32, T, k);
    moep_tensor_t w = dev_view(g, g->topk_w.p, MOEP_DTYPE_F32, T, k);
    l->last_tokens = T;
    MOEP_TRY(moep__layer_dbuf_reserve(FN, &g->first_nan, sizeof(int64_t), s));
    /* No host wait: a NaN row gets out-of-range ids, which the dispatch
     * refuses on every rank (see nan_verdict). */
    return moep_route_cuda_async(&rc, rc.kind == MOEP_ROUTE_HASH ? NULL : &scores, token_ids, &idx,
                                 &w, g->first_nan.p, s);
}

/* The dispatch refused out-of-range ids: NaN scores (flagged by the route
 * kernel) are reported as such, like the CPU layer does. */
static moep_status_t nan_verdict(moep_layer_t *l, moep_status_t st) {
    char msg[512];
    snprintf(msg, sizeof msg, "%s", moep_last_error());
    int64_t first = -1;
    if (cudaMemcpy(&first, l->gpu->first_nan.p, sizeof first, cudaMemcpyDeviceToHost) == cudaSuccess &&
        first >= 0)
        return moep__fail(MOEP_ERR_NUMERIC, "%s: router scores of token %lld hold a NaN", FN,
                          (long long)first);
    return moep__fail(st, "%s", msg);
}

/* Routed expert offsets [L+1] and the shared expert's {0, T} to the GPU
 * through pinned staging. Reusing the staging is safe: a forward's copy has
 * run before the next forward's fresh dispatch returns (it waits on an
 * event recorded later on the same stream), and only then is it rewritten. */
static moep_status_t upload_offsets(moep_layer_t *l, const moep_dispatch_result_t *res, int64_t T,
                                    moep_stream_t s) {
    struct moep__layer_gpu *g = l->gpu;
    size_t n = (size_t)res->num_local_experts + 1 + 2;
    if (n > g->offsets_host_cap) {
        if (g->offsets_host != NULL) cudaFreeHost(g->offsets_host);
        g->offsets_host = NULL;
        g->offsets_host_cap = 0;
        MOEP_TRY(moep__layer_cuda_check(FN, cudaMallocHost((void **)&g->offsets_host, n * 8),
                                        "cudaMallocHost"));
        g->offsets_host_cap = n;
    }
    MOEP_TRY(moep__layer_dbuf_reserve(FN, &g->offsets, n * 8, s));
    memcpy(g->offsets_host, res->expert_offset, (n - 2) * 8);
    g->offsets_host[n - 2] = 0;
    g->offsets_host[n - 1] = T;
    return moep__layer_cuda_check(FN, cudaMemcpyAsync(g->offsets.p, g->offsets_host, n * 8,
                                                      cudaMemcpyHostToDevice, (cudaStream_t)s),
                                  "copy of the expert offsets");
}

static moep_status_t experts(moep_layer_t *l, const moep_tensor_t *x, const moep_dispatch_result_t *res,
                             moep_tensor_t *ey, moep_tensor_t *y, moep_stream_t s) {
    struct moep__layer_gpu *g = l->gpu;
    int64_t T = x->shape[0], rows = res->num_expert_rows;
    MOEP_TRY(moep__layer_dbuf_reserve(FN, &g->expert_y, (size_t)rows * l->cfg.hidden * 2, s));
    *ey = dev_view(g, g->expert_y.p, MOEP_DTYPE_BF16, rows, l->cfg.hidden);
    MOEP_TRY(upload_offsets(l, res, T, s));
    /* one workspace kept by the layer: a per-call stream-ordered allocation
     * maps fresh memory each time under CUDA's default pool settings */
    size_t routed_ws = 0, shared_ws = 0;
    if (rows > 0) MOEP_TRY(moep_expert_ffn_cuda_workspace_size(&l->experts, &res->expert_x, 0, &routed_ws));
    if (l->have_shared && T > 0) MOEP_TRY(moep_expert_ffn_cuda_workspace_size(&l->shared, x, 0, &shared_ws));
    size_t ws_bytes = routed_ws > shared_ws ? routed_ws : shared_ws;
    MOEP_TRY(moep__layer_dbuf_reserve(FN, &g->ffn_ws, ws_bytes, s));
    const int64_t *off = g->offsets.p;
    if (rows > 0)
        MOEP_TRY(moep_expert_ffn_cuda_ws(&l->experts, &res->expert_x, NULL, off, ey, g->ffn_ws.p, ws_bytes, s));
    MOEP_TRY(record(g, 3, s));
    if (l->have_shared && T > 0)
        MOEP_TRY(moep_expert_ffn_cuda_ws(&l->shared, x, NULL, off + res->num_local_experts + 1, y,
                                         g->ffn_ws.p, ws_bytes, s));
    return record(g, 4, s);
}

static double elapsed(const struct moep__layer_gpu *g, int a, int b) {
    float ms = 0;
    return cudaEventElapsedTime(&ms, g->ev[a], g->ev[b]) == cudaSuccess ? ms : 0.0;
}

static moep_status_t fill_timings(moep_layer_t *l, const moep_dispatch_result_t *res,
                                  moep_layer_timings_t *tm) {
    struct moep__layer_gpu *g = l->gpu;
    MOEP_TRY(moep__layer_cuda_check(FN, cudaEventSynchronize(g->ev[5]), "the forward"));
    memset(tm, 0, sizeof *tm);
    tm->route_ms = elapsed(g, 0, 1);
    tm->dispatch_ms = elapsed(g, 1, 2);
    tm->experts_ms = elapsed(g, 2, 3);
    tm->shared_ms = elapsed(g, 3, 4);
    tm->combine_ms = elapsed(g, 4, 5);
    tm->total_ms = elapsed(g, 0, 5);
    size_t n = (size_t)l->last_tokens * l->cfg.router.top_k;
    if (n > g->idx_host_cap) {
        free(g->idx_host);
        g->idx_host = moep__calloc(FN, n, sizeof(int32_t));
        g->idx_host_cap = g->idx_host ? n : 0;
        if (g->idx_host == NULL) return MOEP_ERR_NO_MEMORY;
    }
    if (n > 0)
        MOEP_TRY(moep__layer_cuda_check(FN, cudaMemcpy(g->idx_host, g->topk_idx.p, n * 4,
                                                       cudaMemcpyDeviceToHost), "copy of topk_idx"));
    moep_tensor_t idx = moep_tensor_2d(g->idx_host, MOEP_DTYPE_I32, l->last_tokens, l->cfg.router.top_k);
    moep_load_stats_t stats;
    MOEP_TRY(moep_load_stats(&idx, l->cfg.router.num_experts, l->expert_counts, &stats));
    tm->expert_counts_max = stats.max;
    tm->expert_imbalance = stats.imbalance;
    uint64_t ds = 0, cs = 0;
    moep_handle_bytes(l->handle, &ds, &cs);
    tm->bytes_sent = ds + cs;
    for (int32_t e = 0; e < res->num_local_experts; e++) tm->expert_rows += res->tokens_per_local_expert[e];
    return MOEP_OK;
}

moep_status_t moep__layer_cuda_forward(moep_layer_t *l, const moep_tensor_t *x,
                                       const moep_tensor_t *token_ids, moep_tensor_t *y,
                                       moep_layer_timings_t *timings) {
    struct moep__layer_gpu *g = l->gpu;
    MOEP_TRY(check_forward(l, x, token_ids, y));
    moep_stream_t s = NULL;
    MOEP_TRY(moep_comm_get_stream_cuda(l->comm, &s));
    MOEP_TRY(moep__layer_cuda_check(FN, cudaSetDevice(g->device), "cudaSetDevice"));
    MOEP_TRY(record(g, 0, s));
    MOEP_TRY(route(l, x, token_ids, s));
    MOEP_TRY(record(g, 1, s));

    moep_tensor_t idx, w;
    moep__layer_cuda_last_routing(l, &idx, &w);
    moep_dispatch_result_t res;
    moep_status_t st = moep__layer_dispatch(l, x, &idx, &w, &res);
    if (st == MOEP_ERR_OUT_OF_RANGE) return nan_verdict(l, st);
    MOEP_TRY(st);
    MOEP_TRY(record(g, 2, s));

    moep_tensor_t ey;
    MOEP_TRY(experts(l, x, &res, &ey, y, s));

    moep_combine_params_t cp;
    moep_combine_params_init(&cp);
    cp.expert_y = &ey;
    cp.out = y;
    cp.accumulate = l->have_shared;
    MOEP_TRY(moep_combine(l->comm, &cp, l->handle));
    MOEP_TRY(record(g, 5, s));
    return timings != NULL ? fill_timings(l, &res, timings) : MOEP_OK;
}
