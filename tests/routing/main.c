/* Runner for the routing suites. */
#include "routing_test.h"

int main(void) {
    Suite *suites[] = {
        moep_check_route_config_suite(), moep_check_topk_suite(),    moep_check_grouped_suite(),
        moep_check_hash_suite(),         moep_check_balance_suite(), moep_check_layout_suite(),
    };
    return test_run_suites(suites, (int)(sizeof suites / sizeof suites[0]));
}
