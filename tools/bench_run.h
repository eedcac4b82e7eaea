/* One rank of `moep bench`: build the layer, run it, time it, verify it. */
#ifndef MOEP_BENCH_RUN_H
#define MOEP_BENCH_RUN_H

#include "bench_options.h"

typedef struct bench_result {
    int32_t rank;
    int32_t status;      /* moep_status_t */
    char error[256];
    char transport[32];
    double route_ms, dispatch_ms, experts_ms, shared_ms, combine_ms, total_ms; /* medians */
    double rel_err;      /* against the layer as stored (dequantized weights, wire) */
    double rel_err_original; /* against the original f32 layer: what the formats cost */
    double imbalance;    /* of this rank's routing, last iteration */
    double expert_flops; /* routed expert FLOPs per forward on this rank */
    uint64_t bytes_sent; /* dispatch + combine wire bytes per forward */
} bench_result_t;

/* Run one rank over `bs` (NULL: a single-rank layer without a communicator).
 * --device cuda hands over to bench_run_rank_cuda (CUDA build). */
void bench_run_rank(const bench_options_t *o, const moep_bootstrap_t *bs, bench_result_t *r);

typedef struct bench_model bench_model_t;
/* The layer of the model over comm, with these routed / shared weights (the
 * model's host ones, or device copies). */
moep_status_t bench_make_layer(const bench_options_t *o, const bench_model_t *m, moep_comm_t *comm,
                               const moep_expert_weights_t *experts,
                               const moep_expert_weights_t *shared, moep_layer_t **l_p);
/* Warm-up and timed forwards; medians into r (r->status set on failure). */
void bench_timed_loop(const bench_options_t *o, moep_layer_t *l, const moep_tensor_t *x,
                      const moep_tensor_t *ids, moep_tensor_t *y, bench_result_t *r);
/* Record a failure in r; returns st. */
moep_status_t bench_fail(bench_result_t *r, moep_status_t st, const char *what);

#ifdef MOEP_HAVE_CUDA
/* One rank on GPU `rank` (bench_run_cuda.c). */
void bench_run_rank_cuda(const bench_options_t *o, const moep_bootstrap_t *bs, bench_result_t *r);
#endif

#endif
