/* Runner for the quant layer's suites. */
#include "quant_suites.h"

int main(void) {
    Suite *suites[] = {
        moep_check_fp8_suite(),
        moep_check_fp4_suite(),
        moep_check_weights_quant_suite(),
        moep_check_act_fp8_suite(),
    };
    return test_run_suites(suites, (int)(sizeof suites / sizeof suites[0]));
}
