/*
 * MPI bootstrap, without mpirun: argument checks and "MPI not initialised"
 * (compiled path), or MOEP_ERR_UNSUPPORTED (built with --define=moep_mpi=off).
 * The collectives themselves run under mpirun: see mpi_smoke.c.
 */
#include "suites.h"
#include "test_util.h"

START_TEST(mpi_create_without_mpi_init) {
    moep_bootstrap_t *bs = (moep_bootstrap_t *)&bs;
    ck_assert_status(moep_bootstrap_mpi_create(NULL, NULL), MOEP_ERR_INVALID_ARG);
#ifdef MOEP_TEST_MPI_OFF
    ck_assert_status(moep_bootstrap_mpi_create(NULL, &bs), MOEP_ERR_UNSUPPORTED);
#else
    ck_assert_status(moep_bootstrap_mpi_create(NULL, &bs), MOEP_ERR_INVALID_USAGE);
#endif
    ck_assert_ptr_null(bs);
}
END_TEST

Suite *moep_check_mpi_bootstrap_suite(void) {
    Suite *s = suite_create("mpi_bootstrap");
    TCase *tc = tcase_create("mpi");
    tcase_add_test(tc, mpi_create_without_mpi_init);
    suite_add_tcase(s, tc);
    return s;
}
