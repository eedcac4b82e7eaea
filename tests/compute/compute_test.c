/* Runner for the compute layer's Check suites. */
#include "test_util.h"

Suite *moep_check_expert_ffn_suite(void);
Suite *moep_check_ffn_errors_suite(void);
Suite *moep_check_ffn_cuda_stub_suite(void);

int main(void) {
    Suite *suites[] = {moep_check_expert_ffn_suite(), moep_check_ffn_errors_suite(),
                       moep_check_ffn_cuda_stub_suite()};
    return test_run_suites(suites, (int)(sizeof suites / sizeof suites[0]));
}
