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
    double rel_err;
    double imbalance;    /* of this rank's routing, last iteration */
    double expert_flops; /* routed expert FLOPs per forward on this rank */
    uint64_t bytes_sent; /* dispatch + combine wire bytes per forward */
} bench_result_t;

/* Run one rank over `bs` (NULL: a single-rank layer without a communicator). */
void bench_run_rank(const bench_options_t *o, const moep_bootstrap_t *bs, bench_result_t *r);

#endif
