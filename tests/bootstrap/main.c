/* Runs every bootstrap suite (see suites.h). */
#include "suites.h"
#include "test_util.h"

int main(void) {
#define MOEP_SUITE_ENTRY_(name) moep_check_##name##_suite(),
    Suite *suites[] = {MOEP_BOOTSTRAP_SUITES(MOEP_SUITE_ENTRY_)};
#undef MOEP_SUITE_ENTRY_
    return test_run_suites(suites, (int)(sizeof suites / sizeof suites[0]));
}
