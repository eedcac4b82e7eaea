/* moep_layout_create against a brute-force reference. */
#include <stdlib.h>
#include <string.h>

#include "routing_test.h"

static test_rng_t rng;

static void setup(void) { test_rng_init(&rng, test_seed("routing/layout")); }

/* Does token t send to rank r? Straight from the definition. */
static int sends_to(const int32_t *idx, int32_t k, int32_t t, int32_t r, const int32_t *map) {
    for (int32_t j = 0; j < k; j++) {
        int32_t e = idx[t * k + j];
        if (e >= 0 && map[e] == r) return 1;
    }
    return 0;
}

/* Build the layout and compare every field with the definition. */
static void check_layout(const int32_t *idx, int32_t T, int32_t k, int32_t E, int32_t R,
                         const int32_t *expert_rank) {
    int32_t *map = malloc((size_t)E * sizeof *map);
    for (int32_t e = 0; e < E; e++) map[e] = expert_rank ? expert_rank[e] : e / (E / R);
    moep_tensor_t ti = moep_tensor_2d((void *)idx, MOEP_DTYPE_I32, T, k);
    moep_layout_t *l = NULL;
    ck_assert_ok(moep_layout_create(&ti, E, R, expert_rank, &l));
    ck_assert_int_eq(l->num_tokens, T);
    ck_assert_int_eq(l->top_k, k);
    ck_assert_int_eq(l->num_experts, E);
    ck_assert_int_eq(l->num_ranks, R);
    ck_assert_mem_eq(l->expert_rank, map, (size_t)E * sizeof *map);
    ck_assert_ptr_ne(l->expert_rank, expert_rank); /* a copy the layout owns */

    for (int32_t e = 0; e < E; e++) {
        int64_t n = 0;
        for (int64_t i = 0; i < (int64_t)T * k; i++) n += idx[i] == e;
        require(l->tokens_per_expert[e] == n, "expert %d: %lld tokens, expected %lld", e,
                (long long)l->tokens_per_expert[e], (long long)n);
    }
    int64_t slot = 0;
    ck_assert_int_eq(l->rank_offset[0], 0);
    for (int32_t r = 0; r < R; r++) {
        for (int32_t t = 0; t < T; t++) {
            if (!sends_to(idx, k, t, r, map)) {
                require(l->token_rank_slot[(int64_t)t * R + r] == -1, "token %d, rank %d: slot set",
                        t, r);
                continue;
            }
            /* Slots of rank r are consecutive, tokens ascending. */
            require(l->token_rank_slot[(int64_t)t * R + r] == slot && l->slot_token[slot] == t,
                    "token %d, rank %d: slot %d, expected %lld", t, r,
                    l->token_rank_slot[(int64_t)t * R + r], (long long)slot);
            slot++;
        }
        ck_assert_int_eq(l->rank_offset[r + 1], slot);
        ck_assert_int_eq(l->tokens_per_rank[r], l->rank_offset[r + 1] - l->rank_offset[r]);
    }
    ck_assert_int_eq(l->num_slots, slot);
    moep_layout_destroy(l);
    free(map);
}

START_TEST(random_topk) {
    enum { T = 500, K = 8, E = 64, R = 8 };
    int32_t *idx = malloc(T * K * sizeof *idx);
    for (int t = 0; t < T; t++) {
        int32_t draw[E];
        for (int e = 0; e < E; e++) draw[e] = e;
        for (int j = 0; j < K; j++) { /* distinct experts, some slots masked */
            int p = j + test_rng_int(&rng, E - j);
            int32_t tmp = draw[j];
            draw[j] = draw[p];
            draw[p] = tmp;
            idx[t * K + j] = test_rng_int(&rng, 10) == 0 ? -1 : draw[j];
        }
    }
    check_layout(idx, T, K, E, R, NULL);
    free(idx);
}
END_TEST

START_TEST(special_patterns) {
    enum { T = 37, K = 4, E = 16, R = 4 };
    int32_t idx[T * K];
    for (int i = 0; i < T * K; i++) idx[i] = 5; /* all to one expert (repeats allowed here) */
    check_layout(idx, T, K, E, R, NULL);
    for (int i = 0; i < T * K; i++) idx[i] = -1; /* fully masked */
    check_layout(idx, T, K, E, R, NULL);
    for (int t = 0; t < T; t++) /* all k experts of a token on one rank */
        for (int j = 0; j < K; j++) idx[t * K + j] = (t % R) * (E / R) + j;
    check_layout(idx, T, K, E, R, NULL);
    check_layout(idx, 0, K, E, R, NULL); /* T = 0 */
    check_layout(idx, T, K, E, 1, NULL); /* one rank */
}
END_TEST

START_TEST(explicit_expert_rank) {
    enum { T = 200, K = 3, E = 10, R = 3 }; /* E % R != 0 is fine with a map */
    int32_t map[E], idx[T * K];
    for (int e = 0; e < E; e++) map[e] = test_rng_int(&rng, R);
    for (int i = 0; i < T * K; i++) idx[i] = test_rng_int(&rng, E + 1) - 1;
    check_layout(idx, T, K, E, R, map);
}
END_TEST

START_TEST(layout_errors) {
    int32_t idx[4] = {0, 1, 2, 3}, map[4] = {0, 0, 1, 1};
    moep_tensor_t ti = moep_tensor_2d(idx, MOEP_DTYPE_I32, 2, 2);
    moep_layout_t *l = (moep_layout_t *)&ti;
    ck_assert_status(moep_layout_create(&ti, 4, 2, NULL, NULL), MOEP_ERR_INVALID_ARG);
    ck_assert_status(moep_layout_create(NULL, 4, 2, NULL, &l), MOEP_ERR_INVALID_ARG);
    ck_assert_ptr_null(l); /* cleared on failure */
    ck_assert_status(moep_layout_create(&ti, 0, 2, NULL, &l), MOEP_ERR_INVALID_ARG);
    ck_assert_status(moep_layout_create(&ti, 4, 0, NULL, &l), MOEP_ERR_INVALID_ARG);
    ck_assert_status(moep_layout_create(&ti, 4, 3, NULL, &l), MOEP_ERR_INVALID_ARG);
    ck_assert_ptr_nonnull(strstr(moep_last_error(), "moep_layout_create:"));
    ck_assert_status(moep_layout_create(&ti, 3, 3, NULL, &l), MOEP_ERR_OUT_OF_RANGE);
    map[2] = 2;
    ck_assert_status(moep_layout_create(&ti, 4, 2, map, &l), MOEP_ERR_OUT_OF_RANGE);
    map[2] = -1;
    ck_assert_status(moep_layout_create(&ti, 4, 2, map, &l), MOEP_ERR_OUT_OF_RANGE);
    idx[1] = -2;
    ck_assert_status(moep_layout_create(&ti, 4, 2, NULL, &l), MOEP_ERR_OUT_OF_RANGE);
    ti.dtype = MOEP_DTYPE_I64;
    ck_assert_status(moep_layout_create(&ti, 4, 2, NULL, &l), MOEP_ERR_SHAPE);
    ti = moep_tensor_1d(idx, MOEP_DTYPE_I32, 4);
    ck_assert_status(moep_layout_create(&ti, 4, 2, NULL, &l), MOEP_ERR_SHAPE);
    ck_assert_ptr_null(l);
    moep_layout_destroy(NULL);
}
END_TEST

Suite *moep_check_layout_suite(void) {
    Suite *s = suite_create("routing/layout");
    TCase *tc = tcase_create("layout");
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_add_test(tc, random_topk);
    tcase_add_test(tc, special_patterns);
    tcase_add_test(tc, explicit_expert_rank);
    tcase_add_test(tc, layout_errors);
    suite_add_tcase(s, tc);
    return s;
}
