/* Helpers shared by moep's Check suites. */
#ifndef MOEP_TEST_UTIL_H
#define MOEP_TEST_UTIL_H

#include <check.h>
#include <stdint.h>

#include "moep.h"

/* splitmix64-based RNG: deterministic per seed, independent per stream. */
typedef struct test_rng {
    uint64_t s;
} test_rng_t;

/* Seed from MOEP_TEST_SEED if set, else from time and pid: every run uses
 * fresh data; the seed is printed so a failure can be replayed. */
uint64_t test_seed(const char *suite);
void test_rng_init(test_rng_t *r, uint64_t seed);
uint64_t test_rng_u64(test_rng_t *r);
double test_rng_uniform(test_rng_t *r);           /* [0, 1) */
double test_rng_normal(test_rng_t *r);            /* N(0, 1) */
int32_t test_rng_int(test_rng_t *r, int32_t n);   /* [0, n) */
void test_fill_normal(test_rng_t *r, float *x, int64_t n, float scale);

/* Max relative error of `got` against a float64 reference:
 * max |got - ref| / max(max |ref|, tiny). */
double test_max_rel_err(const float *got, const double *ref, int64_t n);

/* Assert a call returns the expected status, printing moep_last_error() if not. */
#define ck_assert_status(expr, expected)                                              \
    do {                                                                              \
        moep_status_t st_ = (expr);                                                   \
        ck_assert_msg(st_ == (expected), "%s returned %s (%s), expected %s", #expr,  \
                      moep_status_name(st_), moep_last_error(),                       \
                      moep_status_name(expected));                                    \
    } while (0)
#define ck_assert_ok(expr) ck_assert_status(expr, MOEP_OK)

/* Run suites with a runner; returns the process exit code. */
int test_run_suites(Suite **suites, int n);

#endif
