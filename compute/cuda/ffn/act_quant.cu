/*
 * Activations bf16 -> FP8 E4M3 with one f32 scale per row per 128 channels,
 * the same arithmetic as the CPU moep_quantize_act_fp8: scale = amax / 448
 * (1 if the block is zero), q = e4m3_rn_satfinite(x / scale).
 */
#include <cuda_bf16.h>
#include <cuda_fp8.h>

#include "ffn_cuda.h"

/*
 * One half-warp per (row, 128-block), 8 channels per lane: 16-byte loads,
 * 8-byte stores (H % 16 == 0 on the FP8 path, so a lane's 8 channels are all
 * in range or all out). No early return: the amax shuffles use every lane.
 */
__global__ void moep__act_quant_kernel(const __nv_bfloat16 *x, int64_t n, int32_t h, uint8_t *q,
                                       float *scales) {
    const int32_t nb = (h + 127) / 128;
    const int64_t hw = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) >> 4;
    const int l = threadIdx.x & 15;
    const bool live = hw < n * nb;
    const int64_t row = live ? hw / nb : 0;
    const int32_t blk = live ? (int32_t)(hw % nb) : 0;
    const int32_t c0 = blk * 128 + l * 8;
    const bool ok = live && c0 < h;
    float v[8];
    float amax = 0.f;
    if (ok) {
        const uint4 b = *(const uint4 *)(x + row * h + c0);
        const uint32_t w[4] = {b.x, b.y, b.z, b.w};
#pragma unroll
        for (int j = 0; j < 8; ++j) {
            v[j] = __uint_as_float((w[j >> 1] >> (16 * (j & 1))) << 16);
            amax = fmaxf(amax, fabsf(v[j]));
        }
    }
#pragma unroll
    for (int o = 8; o > 0; o >>= 1) amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, o));
    const float s = amax == 0.f ? 1.f : __fdiv_rn(amax, 448.f);
    if (ok) {
        uint32_t p[2] = {0u, 0u};
#pragma unroll
        for (int j = 0; j < 8; j += 2) /* pairwise cvt: one F2FP per two codes, same rounding */
            p[j >> 2] |= (uint32_t)__nv_cvt_float2_to_fp8x2(
                             make_float2(__fdiv_rn(v[j], s), __fdiv_rn(v[j + 1], s)), __NV_SATFINITE,
                             __NV_E4M3)
                         << (8 * (j & 3));
        *(uint2 *)(q + row * h + c0) = make_uint2(p[0], p[1]);
    }
    if (live && l == 0) scales[row * nb + blk] = s;
}

extern "C" cudaError_t moep__act_quant_fp8(const void *x, int64_t n, int32_t h, uint8_t *q,
                                           float *scales, cudaStream_t s) {
    int64_t groups = n * ((h + 127) / 128);
    if (groups == 0) return cudaSuccess;
    int64_t blocks = (groups * 16 + 255) / 256;
    moep__act_quant_kernel<<<(unsigned)blocks, 256, 0, s>>>((const __nv_bfloat16 *)x, n, h, q,
                                                             scales);
    return cudaGetLastError();
}
