/* GPU test runner (CUDA build; skips with a message without a GPU). */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>

#include "gpu_probe.h"

Suite *moep_check_gpu_route_suite(void);
Suite *moep_check_gpu_ep_suite(void);

int main(void) {
    setenv("NCCL_NVLS_ENABLE", "0", 1);
    if (gpu_count() == 0) {
        printf("SKIP gpu tests: no CUDA GPU on this machine\n");
        return 0;
    }
    SRunner *sr = srunner_create(moep_check_gpu_route_suite());
    srunner_add_suite(sr, moep_check_gpu_ep_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
