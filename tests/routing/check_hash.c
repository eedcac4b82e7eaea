/* HASH routing: determinism, distinct experts, near-uniform load, weights. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "routing_test.h"

static test_rng_t rng;

static void setup(void) { test_rng_init(&rng, test_seed("routing/hash")); }

static moep_router_config_t hash_config(int32_t E, int32_t k) {
    moep_router_config_t c;
    moep_router_config_init(&c);
    c.kind = MOEP_ROUTE_HASH;
    c.num_experts = E;
    c.top_k = k;
    return c;
}

/* Route T tokens with the given ids (scores optional); caller frees *idx_p, *w_p. */
static void hash_route(const moep_router_config_t *c, const int64_t *ids, int64_t T,
                       const float *scores, int32_t **idx_p, float **w_p) {
    *idx_p = malloc((size_t)(T * c->top_k + 1) * sizeof **idx_p);
    *w_p = malloc((size_t)(T * c->top_k + 1) * sizeof **w_p);
    moep_tensor_t tt = moep_tensor_1d((void *)ids, MOEP_DTYPE_I64, T);
    moep_tensor_t ts = moep_tensor_2d((void *)scores, MOEP_DTYPE_F32, T, c->num_experts);
    moep_tensor_t ti = moep_tensor_2d(*idx_p, MOEP_DTYPE_I32, T, c->top_k);
    moep_tensor_t tw = moep_tensor_2d(*w_p, MOEP_DTYPE_F32, T, c->top_k);
    ck_assert_ok(moep_route(c, scores ? &ts : NULL, &tt, &ti, &tw));
}

static int64_t *random_ids(int64_t T) {
    int64_t *ids = malloc((size_t)T * sizeof *ids);
    for (int64_t t = 0; t < T; t++) ids[t] = (int64_t)test_rng_u64(&rng);
    return ids;
}

START_TEST(deterministic_and_distinct) {
    const int64_t T = 3000;
    moep_router_config_t c = hash_config(32, 6);
    c.hash_seed = test_rng_u64(&rng);
    c.layer_id = 7;
    int64_t *ids = random_ids(T);
    int32_t *a, *b;
    float *wa, *wb;
    hash_route(&c, ids, T, NULL, &a, &wa);
    /* Same ids in reverse order, as a batch of another size: same rows. */
    int64_t *rev = malloc((size_t)T * sizeof *rev);
    for (int64_t t = 0; t < T; t++) rev[t] = ids[T - 1 - t];
    hash_route(&c, rev, T - 1, NULL, &b, &wb);
    for (int64_t t = 0; t < T - 1; t++)
        require(!memcmp(b + t * 6, a + (T - 1 - t) * 6, 6 * sizeof(int32_t)),
                "token id %lld routed differently in another batch", (long long)rev[t]);
    for (int64_t t = 0; t < T; t++) {
        uint32_t seen = 0;
        for (int i = 0; i < 6; i++) {
            int32_t e = a[t * 6 + i];
            require(e >= 0 && e < 32, "token %lld: expert %d", (long long)t, e);
            require(!(seen >> e & 1), "token %lld repeats expert %d", (long long)t, e);
            seen |= 1u << e;
            require(wa[t * 6 + i] == 1.0f / 6, "token %lld: weight %g", (long long)t, wa[t * 6 + i]);
        }
    }
    /* top-k' is a prefix of top-k: draws do not depend on k. */
    moep_router_config_t c3 = c;
    c3.top_k = 3;
    free(b);
    free(wb);
    hash_route(&c3, ids, T, NULL, &b, &wb);
    for (int64_t t = 0; t < T; t++)
        require(!memcmp(b + t * 3, a + t * 6, 3 * sizeof(int32_t)), "token %lld: top-3 is not a prefix", (long long)t);
    free(a), free(wa), free(b), free(wb), free(ids), free(rev);
}
END_TEST

/* Fraction of tokens whose expert lists match under two configs. */
static double same_rows(const moep_router_config_t *c1, const moep_router_config_t *c2,
                        const int64_t *ids, int64_t T) {
    int32_t *a, *b;
    float *wa, *wb;
    hash_route(c1, ids, T, NULL, &a, &wa);
    hash_route(c2, ids, T, NULL, &b, &wb);
    int64_t same = 0;
    for (int64_t t = 0; t < T; t++)
        same += memcmp(a + t * c1->top_k, b + t * c1->top_k, (size_t)c1->top_k * 4) == 0;
    free(a), free(wa), free(b), free(wb);
    return (double)same / (double)T;
}

START_TEST(seed_and_layer_change_the_choice) {
    const int64_t T = 2000;
    int64_t *ids = random_ids(T);
    moep_router_config_t c = hash_config(64, 4), other = c;
    other.hash_seed = 1;
    ck_assert_double_lt(same_rows(&c, &other, ids, T), 0.01);
    other = c;
    other.layer_id = 1;
    ck_assert_double_lt(same_rows(&c, &other, ids, T), 0.01);
    ck_assert_double_eq(same_rows(&c, &c, ids, T), 1.0);
    free(ids);
}
END_TEST

START_TEST(near_uniform_load) {
    const int64_t T = 100000;
    moep_router_config_t c = hash_config(64, 8);
    c.hash_seed = test_rng_u64(&rng);
    int64_t *ids = malloc((size_t)T * sizeof *ids);
    for (int64_t t = 0; t < T; t++) ids[t] = t; /* consecutive ids: the hard case for a weak mix */
    int32_t *idx;
    float *w;
    hash_route(&c, ids, T, NULL, &idx, &w);
    moep_tensor_t ti = moep_tensor_2d(idx, MOEP_DTYPE_I32, T, 8);
    moep_load_stats_t st;
    ck_assert_ok(moep_load_stats(&ti, 64, NULL, &st));
    ck_assert_int_eq(st.total, T * 8);
    ck_assert_msg(st.imbalance < 1.1, "max/mean load %g", st.imbalance);
    free(idx), free(w), free(ids);
}
END_TEST

START_TEST(k_equals_e_is_a_permutation) {
    moep_router_config_t c = hash_config(16, 16);
    int64_t *ids = random_ids(200);
    int32_t *idx;
    float *w;
    hash_route(&c, ids, 200, NULL, &idx, &w);
    for (int t = 0; t < 200; t++) {
        uint32_t seen = 0;
        for (int i = 0; i < 16; i++) seen |= 1u << idx[t * 16 + i];
        require(seen == 0xffffu, "token %d: not a permutation", t);
    }
    free(idx), free(w), free(ids);
}
END_TEST

START_TEST(weights_from_scores) {
    const int64_t T = 300;
    const int32_t E = 32, k = 4;
    int64_t *ids = random_ids(T);
    float *scores = random_scores(&rng, MOEP_DTYPE_F32, T, E, 2.0f);
    for (int renorm = 0; renorm < 2; renorm++) {
        moep_router_config_t c = hash_config(E, k);
        c.renormalize = renorm;
        c.routed_scaling_factor = 1.5f;
        int32_t *idx, *plain;
        float *w, *wp;
        hash_route(&c, ids, T, scores, &idx, &w);
        hash_route(&c, ids, T, NULL, &plain, &wp);
        ck_assert_mem_eq(idx, plain, (size_t)(T * k) * sizeof *idx); /* scores never steer */
        for (int64_t i = 0; i < T * k; i++) require(wp[i] == 1.5f / k, "weight %g", wp[i]);
        double *ref = malloc((size_t)(T * k) * sizeof *ref);
        for (int64_t t = 0; t < T; t++) {
            double sum = 0, max = -INFINITY, chosen = 0;
            for (int e = 0; e < E; e++) max = fmax(max, scores[t * E + e]);
            for (int e = 0; e < E; e++) sum += exp(scores[t * E + e] - max);
            for (int i = 0; i < k; i++) {
                ref[t * k + i] = exp(scores[t * E + idx[t * k + i]] - max) / sum;
                chosen += ref[t * k + i];
            }
            for (int i = 0; i < k; i++) ref[t * k + i] *= 1.5 / (renorm ? chosen : 1.0);
        }
        ck_assert_double_lt(test_max_rel_err(w, ref, T * k), 1e-5);
        free(idx), free(w), free(plain), free(wp), free(ref);
    }
    free(ids), free(scores);
}
END_TEST

Suite *moep_check_hash_suite(void) {
    Suite *s = suite_create("routing/hash");
    TCase *tc = tcase_create("hash");
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_add_test(tc, deterministic_and_distinct);
    tcase_add_test(tc, seed_and_layer_change_the_choice);
    tcase_add_test(tc, near_uniform_load);
    tcase_add_test(tc, k_equals_e_is_a_permutation);
    tcase_add_test(tc, weights_from_scores);
    suite_add_tcase(s, tc);
    return s;
}
