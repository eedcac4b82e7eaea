/*
 * Runner of the GPU expert FFN tests. Argument checks run anywhere; the
 * kernel suite needs an sm_90 GPU and is skipped, with a message, without one.
 */
#include <cuda_runtime_api.h>
#include <stdio.h>
#include <stdlib.h>

#include "gpu_ffn_suites.h"
#include "test_util.h"

int main(void) {
    /* CUDA contexts do not survive fork(): run the cases in this process. */
    setenv("CK_FORK", "no", 0);
    int n = 0, major = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e == cudaSuccess && n > 0) cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, 0);
    if (e != cudaSuccess || n == 0 || major != 9) {
        fprintf(stderr, "gpu_ffn: no sm_90 CUDA device (%s), kernel suite SKIPPED\n",
                e != cudaSuccess ? cudaGetErrorString(e) : (n == 0 ? "none" : "not Hopper"));
        Suite *only[] = {gpu_ffn_args_suite()};
        return test_run_suites(only, 1);
    }
    Suite *suites[] = {gpu_ffn_args_suite(), gpu_ffn_device_suite()};
    return test_run_suites(suites, 2);
}
