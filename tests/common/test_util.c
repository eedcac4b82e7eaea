#include "test_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

uint64_t test_seed(const char *suite) {
    const char *env = getenv("MOEP_TEST_SEED");
    uint64_t seed = env ? strtoull(env, NULL, 0)
                        : ((uint64_t)time(NULL) * 1000003u) ^ ((uint64_t)getpid() << 20);
    fprintf(stderr, "[%s] MOEP_TEST_SEED=%llu\n", suite, (unsigned long long)seed);
    return seed;
}

void test_rng_init(test_rng_t *r, uint64_t seed) { r->s = seed ^ 0x9e3779b97f4a7c15ull; }

uint64_t test_rng_u64(test_rng_t *r) {
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

double test_rng_uniform(test_rng_t *r) { return (double)(test_rng_u64(r) >> 11) * 0x1p-53; }

double test_rng_normal(test_rng_t *r) {
    double u1 = test_rng_uniform(r), u2 = test_rng_uniform(r);
    if (u1 < 1e-300) u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

int32_t test_rng_int(test_rng_t *r, int32_t n) { return (int32_t)(test_rng_u64(r) % (uint64_t)n); }

void test_fill_normal(test_rng_t *r, float *x, int64_t n, float scale) {
    for (int64_t i = 0; i < n; i++) x[i] = (float)(test_rng_normal(r) * scale);
}

double test_max_rel_err(const float *got, const double *ref, int64_t n) {
    double max_ref = 1e-30, max_diff = 0;
    for (int64_t i = 0; i < n; i++) {
        if (fabs(ref[i]) > max_ref) max_ref = fabs(ref[i]);
        double d = fabs((double)got[i] - ref[i]);
        if (d > max_diff || d != d) max_diff = d != d ? INFINITY : d;
    }
    return max_diff / max_ref;
}

int test_run_suites(Suite **suites, int n) {
    SRunner *sr = srunner_create(suites[0]);
    for (int i = 1; i < n; i++) srunner_add_suite(sr, suites[i]);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
