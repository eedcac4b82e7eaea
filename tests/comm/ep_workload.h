/*
 * Deterministic EP workloads for the comm tests: every rank can regenerate
 * every other rank's tokens and routing from (seed, rank), so each rank can
 * compute exactly what it must receive and what combine must return.
 */
#ifndef MOEP_EP_WORKLOAD_H
#define MOEP_EP_WORKLOAD_H

#include <stdint.h>

#include "moep.h"

typedef enum { ROUTE_RANDOM, ROUTE_ZIPF, ROUTE_ONE_EXPERT, ROUTE_ALL_MASKED } route_pattern_t;

typedef struct ep_spec {
    int32_t world, num_experts, top_k, hidden;
    moep_dtype_t dtype;
    moep_dtype_t wire;   /* 0 = dtype */
    route_pattern_t pattern;
    int32_t tokens[8];   /* tokens per rank */
    uint64_t seed;
    int32_t alignment;
} ep_spec_t;

typedef struct ep_tokens {
    int32_t T;
    void *x;             /* [T, H] dtype */
    int32_t *topk_idx;   /* [T, k] */
    float *topk_w;       /* [T, k] */
} ep_tokens_t;

/* Tokens of `rank` (version v changes x only: the cached-layout test). */
int ep_tokens_make(const ep_spec_t *s, int32_t rank, int version, ep_tokens_t *t);
void ep_tokens_free(ep_tokens_t *t);

/* The toy expert: y = x * (1 + 0.01 * global_expert), computed in f32. */
void ep_expert_apply(const ep_spec_t *s, const moep_dispatch_result_t *r, const int32_t *local_experts,
                     void *expert_y);

/* Check everything the dispatch result must contain on `rank`; 0 or an error. */
int ep_check_dispatch(const ep_spec_t *s, int32_t rank, int version, const int32_t *expert_rank,
                      const moep_dispatch_result_t *r, char *err, size_t len);
/* Check combine output against the float64 reference; 0 or an error. */
int ep_check_combine(const ep_spec_t *s, int32_t rank, int version, const void *out, char *err,
                     size_t len);

#endif
