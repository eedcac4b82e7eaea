/* moep_bootstrap_destroy and the shared validation, on caller-filled structs. */
#include <string.h>

#include "suites.h"
#include "test_util.h"
#include "transports/bootstrap/bootstrap_internal.h"

static int destroyed;
static moep_status_t fake_allgather(void *ctx, const void *s, void *r, size_t n) {
    (void)ctx, (void)s, (void)r, (void)n;
    return MOEP_OK;
}
static moep_status_t fake_barrier(void *ctx) { return fake_allgather(ctx, NULL, NULL, 0); }
static void fake_destroy(void *ctx) { destroyed += ctx == &destroyed; }

static moep_bootstrap_t fake(void) {
    moep_bootstrap_t bs = {sizeof bs, 1, 2, &destroyed, fake_allgather, fake_barrier, fake_destroy};
    return bs;
}

START_TEST(destroy_calls_callback_once) {
    moep_bootstrap_t bs = fake();
    destroyed = 0;
    moep_bootstrap_destroy(&bs);
    ck_assert_int_eq(destroyed, 1);
    moep_bootstrap_destroy(NULL); /* no-op */
    bs.destroy = NULL;            /* caller-filled without destroy: nothing */
    moep_bootstrap_destroy(&bs);
    bs = fake();
    bs.struct_size = (uint32_t)offsetof(moep_bootstrap_t, destroy); /* old struct: no destroy */
    moep_bootstrap_destroy(&bs);
    ck_assert_int_eq(destroyed, 1);
}
END_TEST

START_TEST(validate_rejects_bad_structs) {
    moep_bootstrap_t bs = fake();
    ck_assert_ok(moep__bootstrap_validate("f", &bs));
    ck_assert_status(moep__bootstrap_validate("f", NULL), MOEP_ERR_INVALID_ARG);
    bs.struct_size = 0;
    ck_assert_status(moep__bootstrap_validate("f", &bs), MOEP_ERR_INVALID_ARG);
    ck_assert(strncmp(moep_last_error(), "f: ", 3) == 0);
    bs = fake();
    bs.allgather = NULL;
    ck_assert_status(moep__bootstrap_validate("f", &bs), MOEP_ERR_INVALID_ARG);
    bs = fake();
    bs.barrier = NULL;
    ck_assert_status(moep__bootstrap_validate("f", &bs), MOEP_ERR_INVALID_ARG);
    bs = fake();
    bs.world_size = 0;
    ck_assert_status(moep__bootstrap_validate("f", &bs), MOEP_ERR_INVALID_ARG);
    bs = fake();
    bs.rank = 2;
    ck_assert_status(moep__bootstrap_validate("f", &bs), MOEP_ERR_INVALID_ARG);
    bs.rank = -1;
    ck_assert_status(moep__bootstrap_validate("f", &bs), MOEP_ERR_INVALID_ARG);
}
END_TEST

START_TEST(check_allgather_args) {
    char b[4];
    ck_assert_ok(moep__bootstrap_check_allgather("f", 2, NULL, NULL, 0));
    ck_assert_ok(moep__bootstrap_check_allgather("f", 2, b, b, 1));
    ck_assert_status(moep__bootstrap_check_allgather("f", 2, NULL, b, 1), MOEP_ERR_INVALID_ARG);
    ck_assert_status(moep__bootstrap_check_allgather("f", 2, b, NULL, 1), MOEP_ERR_INVALID_ARG);
    ck_assert_status(moep__bootstrap_check_allgather("f", 3, b, b, SIZE_MAX / 2),
                     MOEP_ERR_INVALID_ARG);
}
END_TEST

Suite *moep_check_bootstrap_common_suite(void) {
    Suite *s = suite_create("bootstrap_common");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, destroy_calls_callback_once);
    tcase_add_test(tc, validate_rejects_bad_structs);
    tcase_add_test(tc, check_allgather_args);
    suite_add_tcase(s, tc);
    return s;
}
