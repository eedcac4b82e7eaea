#include "bench_run.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_model.h"

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

moep_status_t bench_fail(bench_result_t *r, moep_status_t st, const char *what) {
    r->status = st;
    snprintf(r->error, sizeof r->error, "%s: %s (%s)", what, moep_status_name(st), moep_last_error());
    return st;
}

moep_status_t bench_make_layer(const bench_options_t *o, const bench_model_t *m, moep_comm_t *comm,
                               const moep_expert_weights_t *experts,
                               const moep_expert_weights_t *shared, moep_layer_t **l_p) {
    moep_layer_config_t cfg;
    moep_layer_config_init(&cfg);
    cfg.router.kind = o->route;
    cfg.router.num_experts = o->experts;
    cfg.router.top_k = o->top_k;
    if (o->route == MOEP_ROUTE_SIGMOID_GROUPED) {
        cfg.router.n_group = o->n_group;
        cfg.router.topk_group = o->topk_group;
        cfg.router.routed_scaling_factor = 2.5f;
    }
    if (o->max_ranks_per_token > 0) {
        cfg.router.num_ranks = o->ranks;
        cfg.router.max_ranks_per_token = o->max_ranks_per_token;
    }
    cfg.hidden = o->hidden;
    cfg.intermediate = o->intermediate;
    cfg.act_dtype = o->dtype;
    cfg.num_threads = o->threads;
    cfg.wire_dtype = o->wire;
    BENCH_TRY(moep_layer_create(&cfg, comm, l_p));
    moep_tensor_t gate = moep_tensor_2d(m->gate, MOEP_DTYPE_F32, o->experts, o->hidden);
    BENCH_TRY(moep_layer_set_gate(*l_p, &gate));
    if (o->route == MOEP_ROUTE_SIGMOID_GROUPED) BENCH_TRY(moep_layer_set_bias(*l_p, m->bias));
    BENCH_TRY(moep_layer_set_experts(*l_p, experts));
    if (o->shared_intermediate > 0) BENCH_TRY(moep_layer_set_shared(*l_p, shared));
    return MOEP_OK;
}

void bench_timed_loop(const bench_options_t *o, moep_layer_t *l, const moep_tensor_t *x,
                      const moep_tensor_t *ids, moep_tensor_t *y, bench_result_t *r) {
    int n = o->iters;
    double *t[6];
    for (int i = 0; i < 6; i++) t[i] = calloc((size_t)n, sizeof(double));
    moep_layer_timings_t tm;
    for (int it = 0; it < o->warmup + n; it++) {
        moep_status_t st = moep_layer_forward(l, x, ids, y, &tm);
        if (st != MOEP_OK) {
            bench_fail(r, st, "moep_layer_forward");
            break;
        }
        if (it < o->warmup) continue;
        int i = it - o->warmup;
        t[0][i] = tm.route_ms;
        t[1][i] = tm.dispatch_ms;
        t[2][i] = tm.experts_ms;
        t[3][i] = tm.shared_ms;
        t[4][i] = tm.combine_ms;
        t[5][i] = tm.total_ms;
        r->imbalance = tm.expert_imbalance;
        r->bytes_sent = tm.bytes_sent;
        r->expert_flops = 6.0 * o->hidden * o->intermediate * (double)tm.expert_rows;
    }
    if (r->status == MOEP_OK) {
        r->route_ms = median(t[0], n);
        r->dispatch_ms = median(t[1], n);
        r->experts_ms = median(t[2], n);
        r->shared_ms = median(t[3], n);
        r->combine_ms = median(t[4], n);
        r->total_ms = median(t[5], n);
    }
    for (int i = 0; i < 6; i++) free(t[i]);
}

void bench_run_rank(const bench_options_t *o, const moep_bootstrap_t *bs, bench_result_t *r) {
#ifdef MOEP_HAVE_CUDA
    if (o->device == MOEP_DEVICE_CUDA) {
        bench_run_rank_cuda(o, bs, r);
        return;
    }
#endif
    memset(r, 0, sizeof *r);
    r->rank = bs ? bs->rank : 0;
    int32_t world = bs ? bs->world_size : 1;
    bench_model_t *m = NULL;
    moep_comm_t *comm = NULL;
    moep_layer_t *l = NULL;
    void *x = NULL, *y = NULL;
    int64_t *ids = NULL;
    moep_status_t st = bench_model_create(o, r->rank, world, &m);
    if (st != MOEP_OK) bench_fail(r, st, "building the model");
    if (st == MOEP_OK && bs != NULL) {
        moep_comm_params_t cp;
        moep_comm_params_init(&cp);
        cp.transport = o->transport;
        cp.num_experts = o->experts;
        st = moep_comm_create(&cp, bs, &comm);
        if (st != MOEP_OK) bench_fail(r, st, "moep_comm_create");
    }
    if (st == MOEP_OK) {
        st = bench_make_layer(o, m, comm, &m->local, &m->shared, &l);
        if (st != MOEP_OK) bench_fail(r, st, "creating the layer");
    }
    if (st == MOEP_OK) {
        snprintf(r->transport, sizeof r->transport, "%s", comm ? moep_comm_transport(comm) : "local");
        st = bench_model_tokens(m, &x, &ids);
        size_t es = o->dtype == MOEP_DTYPE_BF16 ? 2 : 4;
        y = calloc((size_t)o->tokens * o->hidden + 1, es);
        if (st != MOEP_OK || y == NULL) st = bench_fail(r, MOEP_ERR_NO_MEMORY, "allocating tokens");
    }
    if (st == MOEP_OK) {
        moep_tensor_t xt = moep_tensor_2d(x, o->dtype, o->tokens, o->hidden);
        moep_tensor_t yt = moep_tensor_2d(y, o->dtype, o->tokens, o->hidden);
        moep_tensor_t it = moep_tensor_1d(ids, MOEP_DTYPE_I64, o->tokens);
        bench_timed_loop(o, l, &xt, &it, &yt, r);
    }
    if (r->status == MOEP_OK && st == MOEP_OK) {
        moep_tensor_t idx, w;
        moep_layer_last_routing(l, &idx, &w);
        bench_model_verify(m, x, &idx, &w, y, &r->rel_err);
        bench_model_verify_original(m, x, &idx, &w, y, &r->rel_err_original);
    }
    free(x);
    free(y);
    free(ids);
    moep_layer_destroy(l);
    moep_comm_destroy(comm);
    bench_model_destroy(m);
}
