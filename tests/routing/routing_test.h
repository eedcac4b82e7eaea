/* Shared pieces of the routing tests: the suites and a float64 reference router. */
#ifndef MOEP_ROUTING_TEST_H
#define MOEP_ROUTING_TEST_H

#include "test_util.h"

/* Assertion for hot loops: Check's ck_assert records its location on every
 * call, which dominates run time (and valgrind time) over 10^5 elements. */
#define require(cond, ...)                         \
    do {                                           \
        if (!(cond)) ck_abort_msg(__VA_ARGS__);    \
    } while (0)

Suite *moep_check_route_config_suite(void);
Suite *moep_check_topk_suite(void);
Suite *moep_check_grouped_suite(void);
Suite *moep_check_hash_suite(void);
Suite *moep_check_balance_suite(void);
Suite *moep_check_layout_suite(void);

/*
 * Straightforward float64 router for one token of the score-based kinds:
 * repeated argmax (ties: lower id), no heaps, no masks shared with the
 * library. x[E] are the logits as the library sees them (after bf16
 * rounding). idx[k] in selection order, w[k] the matching weights. Returns 1
 * if a selection boundary is a near-tie (0 < gap < 1e-5) that float32
 * rounding could legitimately flip; such tokens are not compared.
 */
int ref_route_token(const moep_router_config_t *c, const double *x, int32_t *idx, double *w);

/*
 * Route `scores` ([T, E] f32 or bf16 data) with the library and compare every
 * token with ref_route_token: same expert set, weights within rel. error
 * 1e-5, weights non-increasing, ids distinct, and at most
 * max_ranks_per_token ranks when set. Returns the number of near-tie tokens
 * skipped (asserts it stays under 2%).
 */
int64_t check_route_vs_ref(const moep_router_config_t *c, const void *scores, moep_dtype_t dtype,
                           int64_t T);

/* Random [T, E] logits (N(0, scale^2)) as f32 or bf16; caller frees. */
void *random_scores(test_rng_t *r, moep_dtype_t dtype, int64_t T, int32_t E, float scale);

/* Logit at expert e of row t as a double (f32 or bf16 data). */
double score_at(const void *scores, moep_dtype_t dtype, int64_t i);

#endif
