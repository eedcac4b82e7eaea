/* Registry of the bootstrap suites (one per file), run by main.c. */
#ifndef MOEP_BOOTSTRAP_SUITES_H
#define MOEP_BOOTSTRAP_SUITES_H

#include <check.h>

#define MOEP_BOOTSTRAP_SUITES(XX) \
    XX(bootstrap_common)          \
    XX(local_bootstrap)           \
    XX(tcp_params)                \
    XX(tcp_collectives)           \
    XX(tcp_failures)              \
    XX(tcp_hostile)               \
    XX(mpi_bootstrap)

#define MOEP_DECLARE_SUITE_(name) Suite *moep_check_##name##_suite(void);
MOEP_BOOTSTRAP_SUITES(MOEP_DECLARE_SUITE_)
#undef MOEP_DECLARE_SUITE_

#endif
