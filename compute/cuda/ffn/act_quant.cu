/*
 * Activations bf16 -> FP8 E4M3 with one f32 scale per row per 128 channels,
 * the same arithmetic as the CPU moep_quantize_act_fp8: scale = amax / 448
 * (1 if the block is zero), q = e4m3_rn_satfinite(x / scale).
 */
#include <cuda_bf16.h>
#include <cuda_fp8.h>

#include "ffn_cuda.h"

/* One warp per (row, 128-block), 4 channels per lane. */
__global__ void moep__act_quant_kernel(const __nv_bfloat16 *x, int64_t n, int32_t h, uint8_t *q,
                                       float *scales) {
    int32_t nb = (h + 127) / 128;
    int64_t w = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) >> 5;
    int lane = threadIdx.x & 31;
    if (w >= n * nb) return;
    int64_t row = w / nb;
    int32_t c0 = (int32_t)(w % nb) * 128 + lane * 4;
    const __nv_bfloat16 *xr = x + row * h;
    float v[4];
    float amax = 0.f;
#pragma unroll
    for (int j = 0; j < 4; ++j) {
        v[j] = c0 + j < h ? __bfloat162float(xr[c0 + j]) : 0.f;
        amax = fmaxf(amax, fabsf(v[j]));
    }
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, o));
    float s = amax == 0.f ? 1.f : __fdiv_rn(amax, 448.f);
#pragma unroll
    for (int j = 0; j < 4; ++j)
        if (c0 + j < h)
            q[row * h + c0 + j] =
                (uint8_t)__nv_cvt_float_to_fp8(__fdiv_rn(v[j], s), __NV_SATFINITE, __NV_E4M3);
    if (lane == 0) scales[row * nb + (w % nb)] = s;
}

extern "C" cudaError_t moep__act_quant_fp8(const void *x, int64_t n, int32_t h, uint8_t *q,
                                           float *scales, cudaStream_t s) {
    int64_t warps = n * ((h + 127) / 128);
    if (warps == 0) return cudaSuccess;
    int64_t blocks = (warps * 32 + 255) / 256;
    moep__act_quant_kernel<<<(unsigned)blocks, 256, 0, s>>>((const __nv_bfloat16 *)x, n, h, q,
                                                             scales);
    return cudaGetLastError();
}
