/* SOFTMAX_TOPK (Mixtral, Qwen3-MoE) and TOPK_SOFTMAX (gpt-oss), plain and
 * device-limited, against the float64 reference. */
#include <math.h>
#include <stdlib.h>

#include "routing_test.h"

static test_rng_t rng;

static void setup(void) { test_rng_init(&rng, test_seed("routing/topk")); }

typedef struct shape_case {
    int32_t E, k, renormalize;
    int64_t T;
    float scale;
} shape_case_t;

static const shape_case_t cases[] = {
    {8, 2, 1, 50, 1.0f},    {64, 8, 0, 200, 1.0f}, {256, 8, 1, 300, 2.5f},
    {16, 16, 1, 20, 1.0f},  {128, 1, 0, 100, 1.0f}, {64, 4, 1, 2048, 1.0f}, /* parallel path */
};
#define N_CASES ((int)(sizeof cases / sizeof cases[0]))

static void run_kind(moep_route_kind_t kind, moep_dtype_t dtype) {
    for (int i = 0; i < N_CASES; i++) {
        moep_router_config_t c;
        ck_assert_ok(moep_router_config_init(&c));
        c.kind = kind;
        c.num_experts = cases[i].E;
        c.top_k = cases[i].k;
        c.renormalize = cases[i].renormalize;
        c.routed_scaling_factor = cases[i].scale;
        void *s = random_scores(&rng, dtype, cases[i].T, cases[i].E, 2.0f);
        check_route_vs_ref(&c, s, dtype, cases[i].T);
        free(s);
    }
}

START_TEST(softmax_topk_f32) { run_kind(MOEP_ROUTE_SOFTMAX_TOPK, MOEP_DTYPE_F32); }
END_TEST
START_TEST(softmax_topk_bf16) { run_kind(MOEP_ROUTE_SOFTMAX_TOPK, MOEP_DTYPE_BF16); }
END_TEST
START_TEST(topk_softmax_f32) { run_kind(MOEP_ROUTE_TOPK_SOFTMAX, MOEP_DTYPE_F32); }
END_TEST
START_TEST(topk_softmax_bf16) { run_kind(MOEP_ROUTE_TOPK_SOFTMAX, MOEP_DTYPE_BF16); }
END_TEST

/* Route one row of E logits; returns the status. */
static moep_status_t route_row(const moep_router_config_t *c, float *x, int32_t *idx, float *w) {
    moep_tensor_t ts = moep_tensor_2d(x, MOEP_DTYPE_F32, 1, c->num_experts);
    moep_tensor_t ti = moep_tensor_2d(idx, MOEP_DTYPE_I32, 1, c->top_k);
    moep_tensor_t tw = moep_tensor_2d(w, MOEP_DTYPE_F32, 1, c->top_k);
    return moep_route(c, &ts, NULL, &ti, &tw);
}

START_TEST(ties_go_to_lower_ids) {
    moep_router_config_t c;
    moep_router_config_init(&c);
    c.num_experts = 8;
    c.top_k = 3;
    c.renormalize = 0;
    float x[8] = {1, 5, 1, 5, 5, 1, 5, 1};
    int32_t idx[3];
    float w[3];
    ck_assert_ok(route_row(&c, x, idx, w));
    ck_assert_int_eq(idx[0], 1);
    ck_assert_int_eq(idx[1], 3);
    ck_assert_int_eq(idx[2], 4);
    ck_assert_float_eq_tol(w[0], w[2], 1e-7);
    float flat[8] = {0};
    ck_assert_ok(route_row(&c, flat, idx, w));
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(idx[i], i);
        ck_assert_float_eq_tol(w[i], 1.0f / 8, 1e-7);
    }
}
END_TEST

START_TEST(infinite_logits) {
    moep_router_config_t c;
    moep_router_config_init(&c);
    c.num_experts = 6;
    c.top_k = 2;
    c.renormalize = 0;
    int32_t idx[2];
    float w[2];
    float one_inf[6] = {0, 3, INFINITY, -INFINITY, 2, 1};
    for (int kind = 0; kind < 2; kind++) {
        c.kind = (moep_route_kind_t)kind;
        ck_assert_ok(route_row(&c, one_inf, idx, w));
        ck_assert_int_eq(idx[0], 2);
        ck_assert_int_eq(idx[1], 1);
        ck_assert_float_eq(w[0], 1.0f);
        ck_assert_float_eq(w[1], 0.0f);
    }
    float all_neg_inf[6] = {-INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY};
    c.kind = MOEP_ROUTE_SOFTMAX_TOPK;
    ck_assert_ok(route_row(&c, all_neg_inf, idx, w));
    ck_assert_int_eq(idx[0], 0);
    ck_assert_int_eq(idx[1], 1);
    ck_assert_float_eq_tol(w[0], 1.0f / 6, 1e-7);
    c.kind = MOEP_ROUTE_TOPK_SOFTMAX;
    ck_assert_ok(route_row(&c, all_neg_inf, idx, w));
    ck_assert_float_eq_tol(w[1], 0.5f, 1e-7);
    /* Masked-out experts (-Inf) are never chosen while finite ones remain. */
    float some_masked[6] = {-INFINITY, -4, -INFINITY, -9, -INFINITY, -INFINITY};
    ck_assert_ok(route_row(&c, some_masked, idx, w));
    ck_assert_int_eq(idx[0], 1);
    ck_assert_int_eq(idx[1], 3);
}
END_TEST

static void run_device_limited(moep_route_kind_t kind, int32_t M) {
    moep_router_config_t c;
    moep_router_config_init(&c);
    c.kind = kind;
    c.num_experts = 64;
    c.top_k = 6;
    c.num_ranks = 8;
    c.max_ranks_per_token = M;
    c.renormalize = kind == MOEP_ROUTE_SOFTMAX_TOPK ? 0 : 1; /* keeps the all-E softmax visible */
    for (int d = 0; d < 2; d++) {
        moep_dtype_t dtype = d ? MOEP_DTYPE_BF16 : MOEP_DTYPE_F32;
        void *s = random_scores(&rng, dtype, 500, 64, 2.0f);
        check_route_vs_ref(&c, s, dtype, 500);
        free(s);
    }
}

START_TEST(device_limited) {
    run_device_limited(MOEP_ROUTE_SOFTMAX_TOPK, 1);
    run_device_limited(MOEP_ROUTE_SOFTMAX_TOPK, 2);
    run_device_limited(MOEP_ROUTE_TOPK_SOFTMAX, 3);
    run_device_limited(MOEP_ROUTE_TOPK_SOFTMAX, 9); /* M > R: no limit */
}
END_TEST

/* Hand case: the best single expert's rank loses to a rank with a better max
 * only after masking; softmax stays normalised over all experts. */
START_TEST(device_limited_hand_case) {
    moep_router_config_t c;
    moep_router_config_init(&c);
    c.num_experts = 6;
    c.top_k = 2;
    c.num_ranks = 3;
    c.max_ranks_per_token = 1;
    c.renormalize = 0;
    /* ranks {0,1} {2,3} {4,5}: maxima 1, 3, 2.5 -> keep rank 1 only. */
    float x[6] = {1, 0, 3, -1, 2.5f, 2.4f};
    int32_t idx[2];
    float w[2];
    ck_assert_ok(route_row(&c, x, idx, w));
    ck_assert_int_eq(idx[0], 2);
    ck_assert_int_eq(idx[1], 3);
    double sum = 0;
    for (int e = 0; e < 6; e++) sum += exp(x[e]);
    ck_assert_double_eq_tol(w[0], exp(3.0) / sum, 1e-6);
    ck_assert_double_eq_tol(w[1], exp(-1.0) / sum, 1e-6);
}
END_TEST

Suite *moep_check_topk_suite(void) {
    Suite *s = suite_create("routing/topk");
    TCase *tc = tcase_create("topk");
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_add_test(tc, softmax_topk_f32);
    tcase_add_test(tc, softmax_topk_bf16);
    tcase_add_test(tc, topk_softmax_f32);
    tcase_add_test(tc, topk_softmax_bf16);
    tcase_add_test(tc, ties_go_to_lower_ids);
    tcase_add_test(tc, infinite_logits);
    tcase_add_test(tc, device_limited);
    tcase_add_test(tc, device_limited_hand_case);
    suite_add_tcase(s, tc);
    return s;
}
