/* moep_router_config_init, kind names, and every error path of moep_route. */
#include <math.h>
#include <string.h>

#include "routing_test.h"

enum { T = 4, E = 8, K = 2 };

typedef struct fixture {
    moep_router_config_t cfg;
    float scores[T * E];
    int64_t token_ids[T];
    int32_t idx[T * K];
    float w[T * K];
    moep_tensor_t ts, tt, ti, tw;
} fixture_t;

static fixture_t f;

static void setup(void) {
    memset(&f, 0, sizeof f);
    moep_router_config_init(&f.cfg);
    f.cfg.num_experts = E;
    f.cfg.top_k = K;
    for (int i = 0; i < T * E; i++) f.scores[i] = (float)((i * 37) % 11) * 0.3f;
    for (int t = 0; t < T; t++) f.token_ids[t] = 100 + t;
    f.ts = moep_tensor_2d(f.scores, MOEP_DTYPE_F32, T, E);
    f.tt = moep_tensor_1d(f.token_ids, MOEP_DTYPE_I64, T);
    f.ti = moep_tensor_2d(f.idx, MOEP_DTYPE_I32, T, K);
    f.tw = moep_tensor_2d(f.w, MOEP_DTYPE_F32, T, K);
}

static moep_status_t route(void) { return moep_route(&f.cfg, &f.ts, &f.tt, &f.ti, &f.tw); }

START_TEST(config_defaults) {
    moep_router_config_t c;
    memset(&c, 0xff, sizeof c);
    ck_assert_ok(moep_router_config_init(&c));
    ck_assert_uint_eq(c.struct_size, sizeof c);
    ck_assert_int_eq(c.kind, MOEP_ROUTE_SOFTMAX_TOPK);
    ck_assert_int_eq(c.renormalize, 1);
    ck_assert_int_eq(c.n_group, 1);
    ck_assert_int_eq(c.topk_group, 1);
    ck_assert_float_eq(c.routed_scaling_factor, 1.0f);
    ck_assert_ptr_null(c.expert_bias);
    ck_assert_int_eq(c.num_ranks, 1);
    ck_assert_int_eq(c.max_ranks_per_token, 0);
    ck_assert_uint_eq(c.hash_seed, 0);
    ck_assert_int_eq(c.layer_id, 0);
    ck_assert_status(moep_router_config_init(NULL), MOEP_ERR_INVALID_ARG);
    ck_assert_ptr_nonnull(strstr(moep_last_error(), "moep_router_config_init"));
}
END_TEST

START_TEST(kind_names) {
    for (int k = 0; k < MOEP_ROUTE_KIND_COUNT_; k++) {
        moep_route_kind_t parsed;
        ck_assert_ok(moep_route_kind_parse(moep_route_kind_name((moep_route_kind_t)k), &parsed));
        ck_assert_int_eq(parsed, k);
    }
    moep_route_kind_t kind;
    ck_assert_ok(moep_route_kind_parse("Sigmoid_GROUPED", &kind));
    ck_assert_int_eq(kind, MOEP_ROUTE_SIGMOID_GROUPED);
    ck_assert_str_eq(moep_route_kind_name(MOEP_ROUTE_KIND_COUNT_), "?");
    ck_assert_str_eq(moep_route_kind_name((moep_route_kind_t)-1), "?");
    ck_assert_status(moep_route_kind_parse("softmax", &kind), MOEP_ERR_INVALID_ARG);
    ck_assert_ptr_nonnull(strstr(moep_last_error(), "moep_route_kind_parse"));
    ck_assert_status(moep_route_kind_parse(NULL, &kind), MOEP_ERR_INVALID_ARG);
    ck_assert_status(moep_route_kind_parse("hash", NULL), MOEP_ERR_INVALID_ARG);
}
END_TEST

START_TEST(valid_setup_routes) {
    ck_assert_ok(route());
    /* T = 0 is fine. */
    f.ts.shape[0] = f.ti.shape[0] = f.tw.shape[0] = 0;
    ck_assert_ok(route());
    /* An older caller's shorter struct: fields past struct_size take defaults. */
    setup();
    f.cfg.struct_size = (uint32_t)offsetof(moep_router_config_t, renormalize);
    f.cfg.renormalize = 0;
    ck_assert_ok(route());
    ck_assert_float_eq_tol(f.w[0] + f.w[1], 1.0f, 1e-6);
}
END_TEST

/* One bad config field: expected status, and a message naming moep_route. */
static void expect_config_error(moep_status_t want) {
    ck_assert_status(route(), want);
    ck_assert_ptr_nonnull(strstr(moep_last_error(), "moep_route:"));
    setup();
}

START_TEST(config_errors) {
    static const float bad_bias[E] = {0, 0, 0, NAN, 0, 0, 0, 0};
    ck_assert_status(moep_route(NULL, &f.ts, NULL, &f.ti, &f.tw), MOEP_ERR_INVALID_ARG);
    f.cfg.struct_size = 0;
    expect_config_error(MOEP_ERR_INVALID_ARG);
    f.cfg.kind = MOEP_ROUTE_KIND_COUNT_;
    expect_config_error(MOEP_ERR_INVALID_ARG);
    f.cfg.num_experts = 0;
    expect_config_error(MOEP_ERR_INVALID_ARG);
    f.cfg.top_k = 0;
    expect_config_error(MOEP_ERR_INVALID_ARG);
    f.cfg.top_k = -1;
    expect_config_error(MOEP_ERR_INVALID_ARG);
    f.cfg.top_k = E + 1;
    expect_config_error(MOEP_ERR_INVALID_ARG);
    f.cfg.routed_scaling_factor = INFINITY;
    expect_config_error(MOEP_ERR_INVALID_ARG);
    /* SIGMOID_GROUPED fields */
    const struct { int32_t n_group, topk_group; } bad_groups[] = {{3, 1}, {0, 1}, {4, 0}, {4, 5}, {8, 1}};
    for (size_t i = 0; i < sizeof bad_groups / sizeof bad_groups[0]; i++) {
        f.cfg.kind = MOEP_ROUTE_SIGMOID_GROUPED;
        f.cfg.n_group = bad_groups[i].n_group; /* {8, 1}: 1 expert kept < k = 2 */
        f.cfg.topk_group = bad_groups[i].topk_group;
        expect_config_error(MOEP_ERR_INVALID_ARG);
    }
    f.cfg.kind = MOEP_ROUTE_SIGMOID_GROUPED;
    f.cfg.expert_bias = bad_bias;
    expect_config_error(MOEP_ERR_NUMERIC);
    /* device-limited fields */
    f.cfg.num_ranks = 0;
    expect_config_error(MOEP_ERR_INVALID_ARG);
    f.cfg.max_ranks_per_token = -1;
    expect_config_error(MOEP_ERR_INVALID_ARG);
    f.cfg.num_ranks = 3;
    f.cfg.max_ranks_per_token = 1;
    expect_config_error(MOEP_ERR_INVALID_ARG); /* 3 does not divide 8 */
    f.cfg.num_ranks = 8;
    f.cfg.max_ranks_per_token = 1;
    expect_config_error(MOEP_ERR_INVALID_ARG); /* 1 rank x 1 expert < k */
    f.cfg.kind = MOEP_ROUTE_HASH;
    f.cfg.num_ranks = 2;
    f.cfg.max_ranks_per_token = 1;
    expect_config_error(MOEP_ERR_INVALID_ARG); /* not for hash */
}
END_TEST

START_TEST(tensor_errors) {
    ck_assert_status(moep_route(&f.cfg, NULL, NULL, &f.ti, &f.tw), MOEP_ERR_INVALID_ARG);
    ck_assert_status(moep_route(&f.cfg, &f.ts, NULL, NULL, &f.tw), MOEP_ERR_INVALID_ARG);
    ck_assert_status(moep_route(&f.cfg, &f.ts, NULL, &f.ti, NULL), MOEP_ERR_INVALID_ARG);
    f.ts.dtype = MOEP_DTYPE_F16;
    ck_assert_status(route(), MOEP_ERR_SHAPE);
    setup();
    f.ts.shape[1] = E - 1;
    ck_assert_status(route(), MOEP_ERR_SHAPE);
    setup();
    f.ts.shape[0] = T + 1;
    ck_assert_status(route(), MOEP_ERR_SHAPE);
    setup();
    f.ts.ndim = 3;
    ck_assert_status(route(), MOEP_ERR_SHAPE);
    setup();
    f.ti.dtype = MOEP_DTYPE_I64;
    ck_assert_status(route(), MOEP_ERR_SHAPE);
    setup();
    f.ti.shape[1] = K + 1;
    ck_assert_status(route(), MOEP_ERR_SHAPE);
    setup();
    f.tw.dtype = MOEP_DTYPE_BF16;
    ck_assert_status(route(), MOEP_ERR_SHAPE);
    setup();
    f.tw.shape[0] = T - 1;
    ck_assert_status(route(), MOEP_ERR_SHAPE);
    setup();
    f.ts.data = NULL;
    ck_assert_status(route(), MOEP_ERR_INVALID_ARG);
    setup();
    f.ts.device = MOEP_DEVICE_CUDA;
    ck_assert_status(route(), MOEP_ERR_UNSUPPORTED);
    /* HASH needs token_ids [T] i64 */
    setup();
    f.cfg.kind = MOEP_ROUTE_HASH;
    ck_assert_status(moep_route(&f.cfg, &f.ts, NULL, &f.ti, &f.tw), MOEP_ERR_INVALID_ARG);
    f.tt.dtype = MOEP_DTYPE_I32;
    ck_assert_status(route(), MOEP_ERR_SHAPE);
    f.tt.dtype = MOEP_DTYPE_I64;
    f.tt.shape[0] = T + 1;
    ck_assert_status(route(), MOEP_ERR_SHAPE);
    ck_assert_ptr_nonnull(strstr(moep_last_error(), "token_ids"));
}
END_TEST

START_TEST(nan_names_the_token) {
    for (int kind = 0; kind < MOEP_ROUTE_KIND_COUNT_; kind++) {
        for (int bf16 = 0; bf16 < 2; bf16++) {
            setup();
            f.cfg.kind = (moep_route_kind_t)kind;
            uint16_t b[T * E];
            f.scores[2 * E + 5] = NAN;
            f.scores[3 * E + 1] = NAN;
            if (bf16) {
                for (int i = 0; i < T * E; i++) b[i] = moep_f32_to_bf16(f.scores[i]);
                f.ts = moep_tensor_2d(b, MOEP_DTYPE_BF16, T, E);
            }
            for (int i = 0; i < T * K; i++) f.idx[i] = -7;
            ck_assert_status(route(), MOEP_ERR_NUMERIC);
            ck_assert_ptr_nonnull(strstr(moep_last_error(), "token 2"));
            ck_assert_ptr_nonnull(strstr(moep_last_error(), "scores[2, 5]"));
            for (int i = 0; i < T * K; i++) ck_assert_int_eq(f.idx[i], -7); /* untouched */
        }
    }
}
END_TEST

Suite *moep_check_route_config_suite(void) {
    Suite *s = suite_create("routing/config");
    TCase *tc = tcase_create("config");
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_add_test(tc, config_defaults);
    tcase_add_test(tc, kind_names);
    tcase_add_test(tc, valid_setup_routes);
    tcase_add_test(tc, config_errors);
    tcase_add_test(tc, tensor_errors);
    tcase_add_test(tc, nan_names_the_token);
    suite_add_tcase(s, tc);
    return s;
}
