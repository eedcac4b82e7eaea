/* Options of `moep bench` and their parsing. */
#ifndef MOEP_BENCH_OPTIONS_H
#define MOEP_BENCH_OPTIONS_H

#include <stdint.h>

#include "moep.h"

/* Return a failing status to the caller (tools use the public API only). */
#define BENCH_TRY(expr)                          \
    do {                                         \
        moep_status_t bench_st_ = (expr);        \
        if (bench_st_ != MOEP_OK) return bench_st_; \
    } while (0)

typedef struct bench_options {
    int32_t experts, top_k, n_group, topk_group;
    int32_t hidden, intermediate, shared_intermediate;
    int32_t tokens; /* per rank */
    moep_route_kind_t route;
    moep_dtype_t dtype;           /* activations and (f32/bf16) weights */
    moep_weight_format_t weights; /* routed expert storage */
    moep_dtype_t wire;            /* dispatch wire format (0 = dtype) */
    int32_t threads;              /* per rank; 0 = cores / ranks */
    int32_t ranks;
    const char *transport;        /* NULL = selection rules */
    int32_t iters, warmup;
    uint64_t seed;
    int32_t max_ranks_per_token;  /* device-limited routing, 0 = off */
    moep_device_t device;         /* CPU, or CUDA: one GPU per rank (CUDA build) */
} bench_options_t;

void bench_options_default(bench_options_t *o);
/* Parse argv (after "bench"); returns 0, or prints the problem and returns 2. */
int bench_options_parse(bench_options_t *o, int argc, char **argv);
void bench_usage(void);

#endif
