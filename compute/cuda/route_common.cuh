/*
 * Device helpers shared by the two GPU routing kernels (route_kernels.cu:
 * a thread per token; route_warp.cu: a warp per token). The arithmetic is
 * the CPU's (routing/): exp evaluated in double and rounded, so that it
 * matches the host's correctly rounded expf; weight sums in double.
 */
#ifndef MOEP_ROUTE_COMMON_CUH
#define MOEP_ROUTE_COMMON_CUH

#include <cuda_runtime.h>
#include <math.h>
#include <stdint.h>

#include "cuda_kernels.h"

enum { MOEP__SOFTMAX_TOPK = 0, MOEP__TOPK_SOFTMAX = 1, MOEP__SIGMOID_GROUPED = 2, MOEP__HASH = 3 };

#define MOEP__ROUTE_MAXK 64 /* top-k held per token */

__device__ inline float moep__expf_rn(float x) { return (float)exp((double)x); }

__device__ inline float moep__load_score(const void *s, int bf16, size_t i) {
    if (!bf16) return ((const float *)s)[i];
    return __uint_as_float((uint32_t)((const uint16_t *)s)[i] << 16);
}

__device__ inline float moep__sigmoid(float x) {
    return __fdiv_rn(1.0f, __fadd_rn(1.0f, moep__expf_rn(-x)));
}

/* The tie rule everywhere: higher score first, then lower index. */
__device__ inline bool moep__beats(float sa, int32_t ia, float sb, int32_t ib) {
    return sa > sb || (sa == sb && ia < ib);
}

__device__ inline void moep__finish_weights(float *w, int32_t k, int32_t renormalize, float scale) {
    double sum = 0;
    if (renormalize)
        for (int32_t i = 0; i < k; i++) sum += w[i];
    float mult = renormalize && sum > 0 ? (float)(scale / sum) : scale;
    for (int32_t i = 0; i < k; i++) w[i] = __fmul_rn(w[i], mult);
}

#endif /* MOEP_ROUTE_COMMON_CUH */
