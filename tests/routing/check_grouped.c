/* SIGMOID_GROUPED (DeepSeek-V3): a hand-computed case, then random data
 * against the float64 reference. */
#include <math.h>
#include <stdlib.h>

#include "routing_test.h"

static test_rng_t rng;

static void setup(void) { test_rng_init(&rng, test_seed("routing/grouped")); }

static moep_router_config_t grouped_config(int32_t E, int32_t k, int32_t n_group,
                                           int32_t topk_group) {
    moep_router_config_t c;
    moep_router_config_init(&c);
    c.kind = MOEP_ROUTE_SIGMOID_GROUPED;
    c.num_experts = E;
    c.top_k = k;
    c.n_group = n_group;
    c.topk_group = topk_group;
    return c;
}

static moep_status_t route_row(const moep_router_config_t *c, float *x, int32_t *idx, float *w) {
    moep_tensor_t ts = moep_tensor_2d(x, MOEP_DTYPE_F32, 1, c->num_experts);
    moep_tensor_t ti = moep_tensor_2d(idx, MOEP_DTYPE_I32, 1, c->top_k);
    moep_tensor_t tw = moep_tensor_2d(w, MOEP_DTYPE_F32, 1, c->top_k);
    return moep_route(c, &ts, NULL, &ti, &tw);
}

/*
 * 8 experts, 4 groups of 2, keep 2 groups, top-2, scaling 2.5.
 *   sigmoid s  = .90 .10 | .60 .55 | .20 .85 | .30 .35
 *   bias       =  0   0  |  0   0  |  .5  0  |  0   0
 *   biased     = .90 .10 | .60 .55 | .70 .85 | .30 .35
 *   group score  1.00      1.15      1.55      0.65   -> keep groups 2, 1
 * Expert 0 (the best score) is dropped with its group. Among {2,3,4,5} the
 * biased top-2 is 5 (.85), 4 (.70); weights use the unbiased s: .85, .20,
 * renormalised to .85/1.05, .20/1.05, times 2.5.
 */
START_TEST(deepseek_v3_hand_case) {
    const double s[8] = {.90, .10, .60, .55, .20, .85, .30, .35};
    const float bias[8] = {0, 0, 0, 0, .5f, 0, 0, 0};
    float x[8];
    for (int e = 0; e < 8; e++) x[e] = (float)log(s[e] / (1 - s[e]));
    moep_router_config_t c = grouped_config(8, 2, 4, 2);
    c.expert_bias = bias;
    c.routed_scaling_factor = 2.5f;
    int32_t idx[2];
    float w[2];
    ck_assert_ok(route_row(&c, x, idx, w));
    ck_assert_int_eq(idx[0], 5);
    ck_assert_int_eq(idx[1], 4);
    ck_assert_double_eq_tol(w[0], 2.5 * .85 / 1.05, 1e-6);
    ck_assert_double_eq_tol(w[1], 2.5 * .20 / 1.05, 1e-6);

    c.renormalize = 0;
    ck_assert_ok(route_row(&c, x, idx, w));
    ck_assert_double_eq_tol(w[0], 2.5 * .85, 1e-6);
    ck_assert_double_eq_tol(w[1], 2.5 * .20, 1e-6);

    /* One group: plain biased top-2 = experts 0 (.90) and 5 (.85). */
    c = grouped_config(8, 2, 1, 1);
    c.expert_bias = bias;
    ck_assert_ok(route_row(&c, x, idx, w));
    ck_assert_int_eq(idx[0], 0);
    ck_assert_int_eq(idx[1], 5);
    ck_assert_double_eq_tol(w[0], .90 / 1.75, 1e-6);

    /* A bias that wins selection still reports the unbiased weight, and the
     * output is ordered by weight: 4 (s .20, biased 1.2) comes after 0. */
    const float big[8] = {0, 0, 0, 0, 1.0f, 0, 0, 0};
    c.expert_bias = big;
    c.renormalize = 0;
    ck_assert_ok(route_row(&c, x, idx, w));
    ck_assert_int_eq(idx[0], 0);
    ck_assert_int_eq(idx[1], 4);
    ck_assert_double_eq_tol(w[1], .20, 1e-6);
}
END_TEST

static void run_random(moep_router_config_t c, moep_dtype_t dtype, int64_t T, int with_bias) {
    float *bias = malloc((size_t)c.num_experts * sizeof *bias);
    test_fill_normal(&rng, bias, c.num_experts, 0.1f);
    c.expert_bias = with_bias ? bias : NULL;
    void *s = random_scores(&rng, dtype, T, c.num_experts, 2.0f);
    check_route_vs_ref(&c, s, dtype, T);
    free(s);
    free(bias);
}

START_TEST(deepseek_v3_config) {
    moep_router_config_t c = grouped_config(256, 8, 8, 4);
    c.routed_scaling_factor = 2.5f;
    run_random(c, MOEP_DTYPE_F32, 300, 1);
    run_random(c, MOEP_DTYPE_BF16, 300, 1);
    run_random(c, MOEP_DTYPE_F32, 1024, 1); /* parallel path */
    c.renormalize = 0;
    run_random(c, MOEP_DTYPE_F32, 300, 0);
}
END_TEST

START_TEST(group_shapes) {
    run_random(grouped_config(16, 4, 16, 4), MOEP_DTYPE_F32, 200, 1); /* groups of one */
    run_random(grouped_config(32, 8, 4, 1), MOEP_DTYPE_F32, 200, 1);  /* k == kept experts */
    run_random(grouped_config(64, 6, 1, 1), MOEP_DTYPE_BF16, 200, 1); /* no grouping */
    run_random(grouped_config(12, 12, 3, 3), MOEP_DTYPE_F32, 50, 1);  /* k == E */
}
END_TEST

START_TEST(grouped_device_limited) {
    moep_router_config_t c = grouped_config(64, 8, 1, 1);
    c.num_ranks = 8;
    c.max_ranks_per_token = 3;
    run_random(c, MOEP_DTYPE_F32, 400, 1);
    run_random(c, MOEP_DTYPE_BF16, 400, 0);
    /* Grouping and rank limits together could leave fewer than k experts. */
    c.n_group = 4;
    c.topk_group = 2;
    float x[64] = {0};
    int32_t idx[8];
    float w[8];
    ck_assert_status(route_row(&c, x, idx, w), MOEP_ERR_UNSUPPORTED);
}
END_TEST

Suite *moep_check_grouped_suite(void) {
    Suite *s = suite_create("routing/grouped");
    TCase *tc = tcase_create("grouped");
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_add_test(tc, deepseek_v3_hand_case);
    tcase_add_test(tc, deepseek_v3_config);
    tcase_add_test(tc, group_shapes);
    tcase_add_test(tc, grouped_device_limited);
    suite_add_tcase(s, tc);
    return s;
}
