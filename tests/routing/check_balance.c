/* moep_bias_update and moep_load_stats against direct float64 computations. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "routing_test.h"

static test_rng_t rng;

static void setup(void) { test_rng_init(&rng, test_seed("routing/balance")); }

START_TEST(bias_update_signs) {
    enum { E = 64 };
    int64_t counts[E];
    float bias[E], before[E];
    /* Pairs around 100 keep the mean exactly 100, so experts 0 and 1 sit on it. */
    counts[0] = counts[1] = 100;
    for (int e = 2; e < E; e += 2) {
        int64_t d = test_rng_int(&rng, 100);
        counts[e] = 100 + d;
        counts[e + 1] = 100 - d;
    }
    const int64_t total = 100 * E;
    test_fill_normal(&rng, bias, E, 0.1f);
    memcpy(before, bias, sizeof bias);
    const float gamma = 1e-3f;
    ck_assert_ok(moep_bias_update(bias, counts, E, gamma));
    double mean = (double)total / E;
    for (int e = 0; e < E; e++) {
        double want = before[e] + (counts[e] < mean ? gamma : counts[e] > mean ? -gamma : 0.0);
        ck_assert_double_eq_tol(bias[e], want, 1e-7);
    }
    ck_assert_float_eq(bias[1], before[1]); /* sign(0) = 0 */
}
END_TEST

START_TEST(bias_update_errors) {
    float bias[4] = {0};
    int64_t counts[4] = {1, 2, 3, 4};
    ck_assert_status(moep_bias_update(NULL, counts, 4, 0.1f), MOEP_ERR_INVALID_ARG);
    ck_assert_status(moep_bias_update(bias, NULL, 4, 0.1f), MOEP_ERR_INVALID_ARG);
    ck_assert_status(moep_bias_update(bias, counts, 0, 0.1f), MOEP_ERR_INVALID_ARG);
    ck_assert_status(moep_bias_update(bias, counts, -3, 0.1f), MOEP_ERR_INVALID_ARG);
    ck_assert_status(moep_bias_update(bias, counts, 4, NAN), MOEP_ERR_INVALID_ARG);
    ck_assert_status(moep_bias_update(bias, counts, 4, INFINITY), MOEP_ERR_INVALID_ARG);
    ck_assert_ptr_nonnull(strstr(moep_last_error(), "moep_bias_update:"));
    for (int e = 0; e < 4; e++) ck_assert_float_eq(bias[e], 0.0f);
}
END_TEST

START_TEST(load_stats_random) {
    enum { T = 700, K = 6, E = 48 };
    int32_t idx[T * K];
    int64_t want[E] = {0}, got[E];
    for (int i = 0; i < T * K; i++) {
        idx[i] = test_rng_int(&rng, 8) == 0 ? -1 : test_rng_int(&rng, E - 1); /* last expert idle */
        if (idx[i] >= 0) want[idx[i]]++;
    }
    moep_tensor_t ti = moep_tensor_2d(idx, MOEP_DTYPE_I32, T, K);
    moep_load_stats_t st;
    ck_assert_ok(moep_load_stats(&ti, E, got, &st));
    ck_assert_mem_eq(got, want, sizeof want);
    double total = 0, max = 0, min = 1e300, var = 0;
    for (int e = 0; e < E; e++) {
        total += (double)want[e];
        max = fmax(max, (double)want[e]);
        min = fmin(min, (double)want[e]);
    }
    double mean = total / E;
    for (int e = 0; e < E; e++) var += (want[e] - mean) * (want[e] - mean);
    ck_assert_int_eq(st.total, (int64_t)total);
    ck_assert_int_eq(st.max, (int64_t)max);
    ck_assert_int_eq(st.min, 0);
    ck_assert_double_eq_tol(st.mean, mean, 1e-12);
    ck_assert_double_eq_tol(st.imbalance, max / mean, 1e-12);
    ck_assert_double_eq_tol(st.cv, sqrt(var / E) / mean, 1e-12);
    /* Either output may be NULL. */
    ck_assert_ok(moep_load_stats(&ti, E, NULL, &st));
    ck_assert_ok(moep_load_stats(&ti, E, got, NULL));
}
END_TEST

START_TEST(load_stats_empty_and_masked) {
    int32_t idx[6] = {-1, -1, -1, -1, -1, -1};
    int64_t counts[3] = {9, 9, 9};
    moep_load_stats_t st;
    moep_tensor_t ti = moep_tensor_2d(idx, MOEP_DTYPE_I32, 3, 2);
    ck_assert_ok(moep_load_stats(&ti, 3, counts, &st));
    ck_assert_int_eq(counts[0] + counts[1] + counts[2], 0);
    ck_assert_int_eq(st.total, 0);
    ck_assert_double_eq(st.imbalance, 0.0);
    ck_assert_double_eq(st.cv, 0.0);
    ti.shape[0] = 0; /* T = 0 */
    ck_assert_ok(moep_load_stats(&ti, 3, counts, &st));
    ck_assert_int_eq(st.total, 0);
}
END_TEST

START_TEST(load_stats_errors) {
    int32_t idx[4] = {0, 1, 2, 3};
    int64_t counts[4] = {5, 5, 5, 5};
    moep_load_stats_t st;
    moep_tensor_t ti = moep_tensor_2d(idx, MOEP_DTYPE_I32, 2, 2);
    ck_assert_status(moep_load_stats(NULL, 4, counts, &st), MOEP_ERR_INVALID_ARG);
    ck_assert_status(moep_load_stats(&ti, 0, counts, &st), MOEP_ERR_INVALID_ARG);
    ck_assert_status(moep_load_stats(&ti, 3, counts, &st), MOEP_ERR_OUT_OF_RANGE);
    ck_assert_ptr_nonnull(strstr(moep_last_error(), "topk_idx[1, 1] = 3"));
    idx[2] = -2;
    ck_assert_status(moep_load_stats(&ti, 4, counts, &st), MOEP_ERR_OUT_OF_RANGE);
    for (int e = 0; e < 4; e++) ck_assert_int_eq(counts[e], 5); /* untouched */
    ti.dtype = MOEP_DTYPE_I64;
    ck_assert_status(moep_load_stats(&ti, 4, counts, &st), MOEP_ERR_SHAPE);
    ti = moep_tensor_1d(idx, MOEP_DTYPE_I32, 4);
    ck_assert_status(moep_load_stats(&ti, 4, counts, &st), MOEP_ERR_SHAPE);
}
END_TEST

Suite *moep_check_balance_suite(void) {
    Suite *s = suite_create("routing/balance");
    TCase *tc = tcase_create("balance");
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_add_test(tc, bias_update_signs);
    tcase_add_test(tc, bias_update_errors);
    tcase_add_test(tc, load_stats_random);
    tcase_add_test(tc, load_stats_empty_and_masked);
    tcase_add_test(tc, load_stats_errors);
    suite_add_tcase(s, tc);
    return s;
}
