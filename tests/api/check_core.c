/* The core every layer uses: status codes and messages, logging, dtypes,
 * tensors, bf16 conversion and the vectorised row operations. */
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "moep_internal.h"
#include "test_util.h"

START_TEST(every_status_has_a_name_and_text) {
    static const moep_status_t all[] = {
#define X(name, value, text) MOEP_##name,
        MOEP_STATUS_MAP(X)
#undef X
    };
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        ck_assert_str_ne(moep_status_string(all[i]), "unknown status");
        ck_assert_int_eq(strncmp(moep_status_name(all[i]), "MOEP_", 5), 0);
        ck_assert_int_le(all[i], 1); /* only OK and INPROGRESS are non-negative */
    }
    ck_assert_str_eq(moep_status_name(MOEP_ERR_TIMEOUT), "MOEP_ERR_TIMEOUT");
    ck_assert_str_eq(moep_status_string((moep_status_t)12345), "unknown status");
    ck_assert_str_eq(moep_status_name((moep_status_t)-999), "MOEP_UNKNOWN");
    ck_assert_int_eq(moep_version(), MOEP_VERSION_MAJOR * 10000 + MOEP_VERSION_MINOR * 100 + MOEP_VERSION_PATCH);
}
END_TEST

static void *fail_in_thread(void *arg) {
    (void)arg;
    moep__fail(MOEP_ERR_SHAPE, "thread-local %d", 7);
    return strcmp(moep_last_error(), "thread-local 7") == 0 ? (void *)1 : NULL;
}

START_TEST(last_error_is_per_thread) {
    moep__clear_error();
    ck_assert_str_eq(moep_last_error(), "");
    ck_assert_int_eq(moep__fail(MOEP_ERR_OUT_OF_RANGE, "main %s", "x"), MOEP_ERR_OUT_OF_RANGE);
    pthread_t th;
    void *ok = NULL;
    pthread_create(&th, NULL, fail_in_thread, NULL);
    pthread_join(th, &ok);
    ck_assert_ptr_nonnull(ok);
    ck_assert_str_eq(moep_last_error(), "main x"); /* untouched by the other thread */
}
END_TEST

static int log_calls;
static moep_log_level_t last_level;
static void count_log(void *user, moep_log_level_t level, const char *msg) {
    (void)msg;
    ++*(int *)user;
    last_level = level;
}

START_TEST(log_levels_and_handler) {
    moep_log_set_handler(count_log, &log_calls);
    moep_log_set_level(MOEP_LOG_WARN);
    log_calls = 0;
    moep__log(MOEP_LOG_DEBUG, "hidden");
    moep__log(MOEP_LOG_ERROR, "shown");
    ck_assert_int_eq(log_calls, 1);
    ck_assert_int_eq(last_level, MOEP_LOG_ERROR);
    moep_log_set_level(MOEP_LOG_TRACE);
    moep__fail(MOEP_ERR_INVALID_ARG, "failures log at debug");
    ck_assert_int_eq(log_calls, 2);
    moep_log_set_handler(NULL, NULL);
    moep_log_set_level(MOEP_LOG_WARN);
}
END_TEST

START_TEST(dtypes_and_tensors) {
    ck_assert_str_eq(moep_dtype_name(MOEP_DTYPE_BF16), "bf16");
    ck_assert_str_eq(moep_dtype_name((moep_dtype_t)99), "?");
    ck_assert_int_eq(moep_dtype_bits(MOEP_DTYPE_FP4_E2M1), 4);
    ck_assert_int_eq(moep_dtype_bits((moep_dtype_t)-1), 0);
    float buf[6];
    moep_tensor_t t = moep_tensor_2d(buf, MOEP_DTYPE_F32, 2, 3);
    ck_assert_int_eq(moep_tensor_numel(&t), 6);
    ck_assert_int_eq(moep_tensor_numel(NULL), 0);
    const int64_t shape[2] = {2, MOEP_ANY};
    ck_assert_ok(moep__check_tensor("f", "t", &t, 2, MOEP_DTYPE_F32, shape));
    ck_assert_status(moep__check_tensor("f", "t", &t, 3, MOEP_DTYPE_F32, shape), MOEP_ERR_SHAPE);
    ck_assert_status(moep__check_tensor("f", "t", &t, 2, MOEP_DTYPE_BF16, shape), MOEP_ERR_SHAPE);
    ck_assert_status(moep__check_tensor("f", "t", NULL, 2, MOEP_ANY, NULL), MOEP_ERR_INVALID_ARG);
    t.shape[1] = -1;
    ck_assert_status(moep__check_tensor("f", "t", &t, 2, MOEP_ANY, NULL), MOEP_ERR_SHAPE);
    t = moep_tensor_2d(NULL, MOEP_DTYPE_F32, 2, 3);
    ck_assert_status(moep__check_tensor("f", "t", &t, 2, MOEP_ANY, NULL), MOEP_ERR_INVALID_ARG);
    t = moep_tensor_2d(NULL, MOEP_DTYPE_F32, 0, 3); /* empty: NULL data is fine */
    ck_assert_ok(moep__check_tensor("f", "t", &t, 2, MOEP_ANY, NULL));
    t.device = MOEP_DEVICE_CUDA;
    ck_assert_status(moep__check_tensor("f", "t", &t, 2, MOEP_ANY, NULL), MOEP_ERR_UNSUPPORTED);
}
END_TEST

START_TEST(versioned_structs) {
    struct v2 {
        uint32_t struct_size;
        int32_t a, b;
    } dst = {0, 1, 2};
    struct v1 {
        uint32_t struct_size;
        int32_t a;
    } old = {sizeof(struct v1), 10};
    ck_assert_ok(moep__load_versioned("f", &dst, sizeof dst, &old));
    ck_assert_int_eq(dst.a, 10); /* the caller's prefix */
    ck_assert_int_eq(dst.b, 2);  /* the default for what an older caller does not know */
    ck_assert_uint_eq(dst.struct_size, sizeof dst);
    struct v1 uninit = {0, 5};
    ck_assert_status(moep__load_versioned("f", &dst, sizeof dst, &uninit), MOEP_ERR_INVALID_ARG);
    ck_assert_status(moep__load_versioned("f", &dst, sizeof dst, NULL), MOEP_ERR_INVALID_ARG);
}
END_TEST

START_TEST(bf16_round_to_nearest_even) {
    ck_assert_uint_eq(moep_f32_to_bf16(1.0f), 0x3f80);
    ck_assert_uint_eq(moep_f32_to_bf16(-2.0f), 0xc000);
    /* 1 + 2^-8 is halfway between 1 and 1 + 2^-7: ties to even (1.0) */
    ck_assert_uint_eq(moep_f32_to_bf16(1.0f + 0x1p-8f), 0x3f80);
    ck_assert_uint_eq(moep_f32_to_bf16(1.0f + 0x1p-8f + 0x1p-20f), 0x3f81);
    ck_assert_uint_eq(moep_f32_to_bf16(INFINITY), 0x7f80);
    ck_assert(isnan(moep_bf16_to_f32(moep_f32_to_bf16(NAN))));
    ck_assert_float_eq(moep_bf16_to_f32(0x4049), 3.140625f);
}
END_TEST

START_TEST(row_ops_match_scalar) {
    test_rng_t rng;
    test_rng_init(&rng, test_seed("core"));
    enum { N = 1003 }; /* not a multiple of the vector width */
    float x[N], acc[N], want[N], back[N];
    uint16_t xb[N], out_b[N];
    test_fill_normal(&rng, x, N, 3.0f);
    for (int i = 0; i < N; i++) xb[i] = moep_f32_to_bf16(x[i]);
    moep__row_to_f32(xb, MOEP_DTYPE_BF16, N, back);
    for (int i = 0; i < N; i++) ck_assert_float_eq(back[i], moep_bf16_to_f32(xb[i]));
    moep__row_from_f32(x, N, MOEP_DTYPE_BF16, out_b);
    ck_assert_int_eq(memcmp(out_b, xb, sizeof xb), 0);
    for (int dt = 0; dt < 2; dt++) {
        const void *src = dt ? (const void *)xb : (const void *)x;
        moep_dtype_t t = dt ? MOEP_DTYPE_BF16 : MOEP_DTYPE_F32;
        moep__row_scale(acc, 0.5f, src, t, N);
        moep__row_axpy(acc, -2.0f, src, t, N);
        for (int i = 0; i < N; i++) {
            float v = dt ? moep_bf16_to_f32(xb[i]) : x[i];
            want[i] = 0.5f * v + -2.0f * v;
            ck_assert_float_eq_tol(acc[i], want[i], 1e-6f * (1.0f + fabsf(want[i])));
        }
    }
}
END_TEST

Suite *core_suite(void) {
    Suite *s = suite_create("core");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, every_status_has_a_name_and_text);
    tcase_add_test(tc, last_error_is_per_thread);
    tcase_add_test(tc, log_levels_and_handler);
    tcase_add_test(tc, dtypes_and_tensors);
    tcase_add_test(tc, versioned_structs);
    tcase_add_test(tc, bf16_round_to_nearest_even);
    tcase_add_test(tc, row_ops_match_scalar);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    Suite *suites[] = {core_suite()};
    return test_run_suites(suites, 1);
}
