/* Bad arguments and misuse of the layer API: each gives its specific status. */
#include <stdlib.h>
#include <string.h>

#include "test_util.h"

enum { E = 8, K = 2, H = 16, I = 8, T = 3 };

static moep_layer_config_t config(void) {
    moep_layer_config_t c;
    moep_layer_config_init(&c);
    c.router.num_experts = E;
    c.router.top_k = K;
    c.hidden = H;
    c.intermediate = I;
    return c;
}

static float w1[E * I * H], w3[E * I * H], w2[E * H * I], gate[E * H];

static moep_expert_weights_t experts(int32_t n) {
    moep_expert_weights_t w;
    moep_expert_weights_init(&w);
    w.format = MOEP_WEIGHTS_F32;
    w.num_experts = n;
    w.hidden = H;
    w.intermediate = I;
    w.w1.data = w1;
    w.w3.data = w3;
    w.w2.data = w2;
    return w;
}

START_TEST(create_errors) {
    moep_layer_t *l = NULL;
    moep_layer_config_t c = config();
    ck_assert_status(moep_layer_create(&c, NULL, NULL), MOEP_ERR_INVALID_ARG);
    ck_assert_status(moep_layer_create(NULL, NULL, &l), MOEP_ERR_INVALID_ARG);
    moep_layer_config_t zero;
    memset(&zero, 0, sizeof zero);
    ck_assert_status(moep_layer_create(&zero, NULL, &l), MOEP_ERR_INVALID_ARG);
    c.hidden = 0;
    ck_assert_status(moep_layer_create(&c, NULL, &l), MOEP_ERR_INVALID_ARG);
    c = config();
    c.act_dtype = MOEP_DTYPE_I32;
    ck_assert_status(moep_layer_create(&c, NULL, &l), MOEP_ERR_SHAPE);
    c = config();
    c.router.top_k = E + 1;
    ck_assert_status(moep_layer_create(&c, NULL, &l), MOEP_ERR_INVALID_ARG);
    c = config();
    c.router.kind = MOEP_ROUTE_SIGMOID_GROUPED;
    c.router.n_group = 3; /* does not divide 8 */
    ck_assert_status(moep_layer_create(&c, NULL, &l), MOEP_ERR_INVALID_ARG);
    ck_assert_ptr_null(l);
    moep_layer_destroy(NULL);
}
END_TEST

START_TEST(comm_with_other_expert_count) {
    moep_local_world_t *w;
    moep_bootstrap_t *bs;
    moep_comm_t *comm;
    ck_assert_ok(moep_local_world_create(1, 1000, &w));
    ck_assert_ok(moep_bootstrap_local_create(w, 0, &bs));
    moep_comm_params_t p;
    moep_comm_params_init(&p);
    p.num_experts = 2 * E;
    ck_assert_ok(moep_comm_create(&p, bs, &comm));
    moep_layer_config_t c = config();
    moep_layer_t *l = NULL;
    ck_assert_status(moep_layer_create(&c, comm, &l), MOEP_ERR_MISMATCH);
    moep_comm_destroy(comm);
    moep_bootstrap_destroy(bs);
    moep_local_world_destroy(w);
}
END_TEST

START_TEST(weights_and_forward_errors) {
    moep_layer_config_t c = config();
    moep_layer_t *l = NULL;
    ck_assert_ok(moep_layer_create(&c, NULL, &l));
    float x[T * H], y[T * H];
    for (int i = 0; i < T * H; i++) x[i] = (float)(i % 5) - 2.0f;
    moep_tensor_t xt = moep_tensor_2d(x, MOEP_DTYPE_F32, T, H);
    moep_tensor_t yt = moep_tensor_2d(y, MOEP_DTYPE_F32, T, H);
    ck_assert_status(moep_layer_forward(l, &xt, NULL, &yt, NULL), MOEP_ERR_INVALID_USAGE);

    moep_tensor_t g = moep_tensor_2d(gate, MOEP_DTYPE_F32, E, H + 1);
    ck_assert_status(moep_layer_set_gate(l, &g), MOEP_ERR_SHAPE);
    g = moep_tensor_2d(gate, MOEP_DTYPE_F32, E, H);
    ck_assert_ok(moep_layer_set_gate(l, &g));
    moep_expert_weights_t wrong = experts(E - 1);
    ck_assert_status(moep_layer_set_experts(l, &wrong), MOEP_ERR_SHAPE);
    moep_expert_weights_t uninit;
    memset(&uninit, 0, sizeof uninit);
    ck_assert_status(moep_layer_set_experts(l, &uninit), MOEP_ERR_INVALID_ARG);
    moep_expert_weights_t ok = experts(E);
    ok.w2.data = NULL;
    ck_assert_status(moep_layer_set_experts(l, &ok), MOEP_ERR_INVALID_ARG);
    ok = experts(E);
    ok.layout = MOEP_WEIGHT_LAYOUT_FP4_PACKED; /* the GPU's layout, on a CPU layer */
    ck_assert_status(moep_layer_set_experts(l, &ok), MOEP_ERR_UNSUPPORTED);
    moep_expert_weights_t shared_packed = experts(1);
    shared_packed.layout = MOEP_WEIGHT_LAYOUT_FP4_PACKED;
    ck_assert_status(moep_layer_set_shared(l, &shared_packed), MOEP_ERR_UNSUPPORTED);
    ok = experts(E);
    ck_assert_ok(moep_layer_set_experts(l, &ok));
    moep_expert_weights_t shared = experts(2);
    ck_assert_status(moep_layer_set_shared(l, &shared), MOEP_ERR_SHAPE);
    ck_assert_ok(moep_layer_set_shared(l, NULL));

    moep_tensor_t bad = moep_tensor_2d(x, MOEP_DTYPE_BF16, T, H);
    ck_assert_status(moep_layer_forward(l, &bad, NULL, &yt, NULL), MOEP_ERR_SHAPE);
    bad = moep_tensor_2d(y, MOEP_DTYPE_F32, T + 1, H);
    ck_assert_status(moep_layer_forward(l, &xt, NULL, &bad, NULL), MOEP_ERR_SHAPE);
    ck_assert_status(moep_layer_forward(l, &xt, NULL, &xt, NULL), MOEP_ERR_INVALID_ARG);
    ck_assert_status(moep_layer_forward(NULL, &xt, NULL, &yt, NULL), MOEP_ERR_INVALID_ARG);
    x[4] = 0.0f / 0.0f; /* NaN logits reach the router */
    ck_assert_status(moep_layer_forward(l, &xt, NULL, &yt, NULL), MOEP_ERR_NUMERIC);
    x[4] = 1.0f;
    moep_layer_timings_t tm;
    ck_assert_ok(moep_layer_forward(l, &xt, NULL, &yt, &tm));
    ck_assert_int_eq(tm.expert_rows, T * K);
    moep_layer_destroy(l);
}
END_TEST

START_TEST(hash_layer_needs_token_ids) {
    moep_layer_config_t c = config();
    c.router.kind = MOEP_ROUTE_HASH;
    moep_layer_t *l = NULL;
    ck_assert_ok(moep_layer_create(&c, NULL, &l));
    moep_expert_weights_t w = experts(E);
    ck_assert_ok(moep_layer_set_experts(l, &w));
    float x[T * H] = {0}, y[T * H];
    int64_t ids[T] = {1, 2, 3};
    moep_tensor_t xt = moep_tensor_2d(x, MOEP_DTYPE_F32, T, H);
    moep_tensor_t yt = moep_tensor_2d(y, MOEP_DTYPE_F32, T, H);
    moep_tensor_t it = moep_tensor_1d(ids, MOEP_DTYPE_I64, T);
    ck_assert_status(moep_layer_forward(l, &xt, NULL, &yt, NULL), MOEP_ERR_INVALID_ARG);
    ck_assert_ok(moep_layer_forward(l, &xt, &it, &yt, NULL));
    moep_layer_destroy(l);
}
END_TEST

Suite *layer_args_suite(void) {
    Suite *s = suite_create("layer_args");
    TCase *tc = tcase_create("errors");
    tcase_add_test(tc, create_errors);
    tcase_add_test(tc, comm_with_other_expert_count);
    tcase_add_test(tc, weights_and_forward_errors);
    tcase_add_test(tc, hash_layer_needs_token_ids);
    suite_add_tcase(s, tc);
    return s;
}
