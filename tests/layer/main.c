/* Runner for the MoE layer suites. */
#include "test_util.h"

Suite *layer_suite(void);
Suite *layer_args_suite(void);

int main(void) {
    Suite *suites[] = {layer_args_suite(), layer_suite()};
    return test_run_suites(suites, 2);
}
