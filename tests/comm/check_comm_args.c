/* Bad arguments to the communicator, dispatch and combine: each gives its
 * specific status (one rank, local transport). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "test_util.h"

static moep_local_world_t *world;
static moep_bootstrap_t *bs;
static moep_comm_t *comm;

enum { E = 8, K = 2, T = 5, H = 16 };
static float x[T * H], w[T * K];
static int32_t idx[T * K];

static void setup(void) {
    ck_assert_ok(moep_local_world_create(1, 2000, &world));
    ck_assert_ok(moep_bootstrap_local_create(world, 0, &bs));
    moep_comm_params_t p;
    moep_comm_params_init(&p);
    p.transport = "local";
    p.num_experts = E;
    ck_assert_ok(moep_comm_create(&p, bs, &comm));
    for (int i = 0; i < T * H; i++) x[i] = (float)i / 7.0f;
    for (int i = 0; i < T * K; i++) {
        idx[i] = i % E;
        w[i] = 0.5f;
    }
}

static void teardown(void) {
    moep_comm_destroy(comm);
    moep_bootstrap_destroy(bs);
    moep_local_world_destroy(world);
}

static moep_tensor_t tx, ti, tw;
static moep_dispatch_params_t good_params(void) {
    tx = moep_tensor_2d(x, MOEP_DTYPE_F32, T, H);
    ti = moep_tensor_2d(idx, MOEP_DTYPE_I32, T, K);
    tw = moep_tensor_2d(w, MOEP_DTYPE_F32, T, K);
    moep_dispatch_params_t p;
    moep_dispatch_params_init(&p);
    p.x = &tx;
    p.topk_idx = &ti;
    p.topk_weights = &tw;
    return p;
}

START_TEST(comm_create_errors) {
    moep_comm_params_t p;
    moep_comm_t *c = NULL;
    moep_comm_params_init(&p);
    p.num_experts = E;
    ck_assert_status(moep_comm_create(&p, bs, NULL), MOEP_ERR_INVALID_ARG);
    ck_assert_status(moep_comm_create(NULL, bs, &c), MOEP_ERR_INVALID_ARG);
    ck_assert_status(moep_comm_create(&p, NULL, &c), MOEP_ERR_INVALID_ARG);
    moep_comm_params_t zero;
    memset(&zero, 0, sizeof zero);
    ck_assert_status(moep_comm_create(&zero, bs, &c), MOEP_ERR_INVALID_ARG);
    p.num_experts = 0;
    ck_assert_status(moep_comm_create(&p, bs, &c), MOEP_ERR_INVALID_ARG);
    p.num_experts = E;
    int32_t bad_map[E] = {0, 0, 0, 0, 1, 0, 0, 0}; /* rank 1 does not exist */
    p.expert_rank = bad_map;
    ck_assert_status(moep_comm_create(&p, bs, &c), MOEP_ERR_OUT_OF_RANGE);
    p.expert_rank = NULL;
    p.transport = "no-such-transport";
    moep_status_t st = moep_comm_create(&p, bs, &c);
    ck_assert_msg(st == MOEP_ERR_INVALID_ARG || st == MOEP_ERR_UNSUPPORTED, "unknown transport: %s",
                  moep_status_name(st));
    ck_assert_ptr_null(c);
    moep_bootstrap_t broken = *bs;
    broken.allgather = NULL;
    p.transport = NULL;
    ck_assert_status(moep_comm_create(&p, &broken, &c), MOEP_ERR_INVALID_ARG);
    moep_comm_destroy(NULL); /* no-op */
    int32_t port = -1;
    ck_assert_status(moep_tcp_free_loopback_port(NULL), MOEP_ERR_INVALID_ARG);
    moep_bootstrap_t *lbs = NULL;
    ck_assert_status(moep_bootstrap_tcp_loopback(0, 1, 0, 0, &lbs), MOEP_ERR_INVALID_ARG);
    ck_assert_status(moep_bootstrap_tcp_loopback(0, 1, 70000, 0, &lbs), MOEP_ERR_INVALID_ARG);
    ck_assert_status(moep_bootstrap_tcp_loopback(2, 1, 5000, 0, &lbs), MOEP_ERR_INVALID_ARG);
    ck_assert_ptr_null(lbs);
    ck_assert_ok(moep_tcp_free_loopback_port(&port));
    ck_assert_int_gt(port, 0);
    ck_assert_ok(moep_bootstrap_tcp_loopback(0, 1, port, 5000, &lbs)); /* a world of one */
    ck_assert_ptr_nonnull(lbs);
    ck_assert_int_eq(lbs->world_size, 1);
    moep_bootstrap_destroy(lbs);
    ck_assert_int_eq(moep_comm_rank(NULL), -1);
    ck_assert_str_eq(moep_comm_last_error(NULL), "");
}
END_TEST

START_TEST(dispatch_errors) {
    moep_handle_t *h = NULL;
    moep_dispatch_result_t r;
    moep_dispatch_params_t p = good_params();
    ck_assert_status(moep_dispatch(NULL, &p, &h, &r), MOEP_ERR_INVALID_ARG);
    ck_assert_status(moep_dispatch(comm, NULL, &h, &r), MOEP_ERR_INVALID_ARG);
    ck_assert_status(moep_dispatch(comm, &p, NULL, &r), MOEP_ERR_INVALID_ARG);
    ck_assert_status(moep_dispatch(comm, &p, &h, NULL), MOEP_ERR_INVALID_ARG);
    p.x = NULL;
    ck_assert_status(moep_dispatch(comm, &p, &h, &r), MOEP_ERR_INVALID_ARG);
    p = good_params();
    tx.dtype = MOEP_DTYPE_I32;
    ck_assert_status(moep_dispatch(comm, &p, &h, &r), MOEP_ERR_SHAPE);
    p = good_params();
    ti.shape[0] = T - 1;
    ck_assert_status(moep_dispatch(comm, &p, &h, &r), MOEP_ERR_SHAPE);
    p = good_params();
    tw.dtype = MOEP_DTYPE_BF16;
    ck_assert_status(moep_dispatch(comm, &p, &h, &r), MOEP_ERR_SHAPE);
    p = good_params();
    ti.shape[1] = E + 1;
    tw.shape[1] = E + 1;
    ck_assert_status(moep_dispatch(comm, &p, &h, &r), MOEP_ERR_SHAPE);
    p = good_params();
    p.expert_alignment = 0;
    ck_assert_status(moep_dispatch(comm, &p, &h, &r), MOEP_ERR_INVALID_ARG);
    p = good_params();
    p.wire_dtype = MOEP_DTYPE_I64;
    ck_assert_status(moep_dispatch(comm, &p, &h, &r), MOEP_ERR_UNSUPPORTED);
    p = good_params();
    p.flags = MOEP_DISPATCH_REUSE_LAYOUT;
    ck_assert_status(moep_dispatch(comm, &p, &h, &r), MOEP_ERR_INVALID_USAGE);
    ck_assert_ptr_null(h);
    p = good_params();
    idx[3] = E; /* out of range */
    ck_assert_status(moep_dispatch(comm, &p, &h, &r), MOEP_ERR_OUT_OF_RANGE);
    idx[3] = -2;
    ck_assert_status(moep_dispatch(comm, &p, &h, &r), MOEP_ERR_OUT_OF_RANGE);
    idx[3] = 3;
    x[5] = NAN;
    p.wire_dtype = MOEP_DTYPE_FP8_E4M3;
    ck_assert_status(moep_dispatch(comm, &p, &h, &r), MOEP_ERR_NUMERIC);
    x[5] = 1.0f;
    /* the communicator is still usable after all of these */
    p = good_params();
    ck_assert_ok(moep_dispatch(comm, &p, &h, &r));
    ck_assert_int_eq(r.num_recv, T);
    /* cached layout with a different token count */
    tx.shape[0] = T - 1;
    p.flags = MOEP_DISPATCH_REUSE_LAYOUT;
    ck_assert_status(moep_dispatch(comm, &p, &h, &r), MOEP_ERR_INVALID_USAGE);
    moep_handle_destroy(h);
    moep_handle_destroy(NULL);
}
END_TEST

START_TEST(combine_errors) {
    moep_handle_t *h = NULL;
    moep_dispatch_result_t r;
    moep_dispatch_params_t p = good_params();
    ck_assert_ok(moep_dispatch(comm, &p, &h, &r));
    float *ey = calloc((size_t)r.num_expert_rows * H + 1, sizeof(float));
    float out[T * H];
    moep_tensor_t eyt = moep_tensor_2d(ey, MOEP_DTYPE_F32, r.num_expert_rows, H);
    moep_tensor_t ot = moep_tensor_2d(out, MOEP_DTYPE_F32, T, H);
    moep_combine_params_t cp;
    moep_combine_params_init(&cp);
    cp.expert_y = &eyt;
    cp.out = &ot;
    ck_assert_status(moep_combine(comm, &cp, NULL), MOEP_ERR_INVALID_ARG);
    ck_assert_status(moep_combine(NULL, &cp, h), MOEP_ERR_INVALID_ARG);
    ck_assert_status(moep_combine(comm, NULL, h), MOEP_ERR_INVALID_ARG);
    eyt.shape[0] += 1;
    ck_assert_status(moep_combine(comm, &cp, h), MOEP_ERR_SHAPE);
    eyt.shape[0] -= 1;
    ot.shape[1] = H + 1;
    ck_assert_status(moep_combine(comm, &cp, h), MOEP_ERR_SHAPE);
    ot.shape[1] = H;
    ot.dtype = MOEP_DTYPE_I32;
    ck_assert_status(moep_combine(comm, &cp, h), MOEP_ERR_SHAPE);
    ot.dtype = MOEP_DTYPE_F32;
    ck_assert_ok(moep_combine(comm, &cp, h));
    /* combine again on the same handle, accumulating: doubles the result */
    for (int64_t i = 0; i < r.num_expert_rows * H; i++) ey[i] = 1.0f;
    ck_assert_ok(moep_combine(comm, &cp, h));
    cp.accumulate = 1;
    ck_assert_ok(moep_combine(comm, &cp, h));
    for (int t = 0; t < T; t++) ck_assert_float_eq_tol(out[t * H], 2.0f * K * 0.5f, 1e-6f);
    free(ey);
    moep_handle_destroy(h);
}
END_TEST

Suite *comm_args_suite(void) {
    Suite *s = suite_create("comm_args");
    TCase *tc = tcase_create("errors");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, comm_create_errors);
    tcase_add_test(tc, dispatch_errors);
    tcase_add_test(tc, combine_errors);
    suite_add_tcase(s, tc);
    return s;
}
