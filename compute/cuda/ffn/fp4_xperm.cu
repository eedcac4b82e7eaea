/*
 * FP4 path input: x (bf16, or FP8 E4M3 + 1x128 scales) -> f16 in the
 * K-permuted record layout of fp4_decode.cuh, [kseg][8][np][16], channels
 * >= K zero. One thread per (row, segment, j): it reads the four 8-channel
 * groups 4q + j (q = 0..3) and writes whole 32-byte records 2j and 2j + 1.
 */
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_fp8.h>

#include "ffn_cuda.h"
#include "fp4_decode.cuh"

template <bool FP8>
__device__ __forceinline__ void moep__xperm_load8(const void *x, const float *xs, int64_t row,
                                                  int32_t K, int32_t e, float v[8]) {
    if (FP8) {
        const uint2 b = *(const uint2 *)((const uint8_t *)x + row * K + e);
        const float s = xs[row * ((K + 127) / 128) + e / 128];
        const uint32_t w[2] = {b.x, b.y};
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            __half2_raw h = __nv_cvt_fp8x2_to_halfraw2(
                (__nv_fp8x2_storage_t)((w[i >> 1] >> (16 * (i & 1))) & 0xFFFF), __NV_E4M3);
            v[2 * i] = __half2float(__half(__half_raw{h.x})) * s;
            v[2 * i + 1] = __half2float(__half(__half_raw{h.y})) * s;
        }
    } else {
        const uint4 b = *(const uint4 *)((const uint16_t *)x + row * K + e);
        const uint32_t w[4] = {b.x, b.y, b.z, b.w};
#pragma unroll
        for (int i = 0; i < 8; ++i) v[i] = __uint_as_float((w[i >> 1] >> (16 * (i & 1))) << 16);
    }
}

template <bool FP8>
__global__ void moep__xperm_kernel(const void *x, const float *xs, int64_t n, int32_t K,
                                   int32_t kseg, int64_t np, uint4 *xp) {
    const int64_t idx = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= n * kseg * 4) return;
    const int j = (int)(idx & 3);
    const int64_t rs = idx >> 2;
    const int seg = (int)(rs % kseg);
    const int64_t row = rs / kseg;
    uint32_t w[2][8];
#pragma unroll
    for (int q = 0; q < 4; ++q) {
        const int32_t e = seg * 128 + 8 * (4 * q + j);
        float v[8];
        if (e < K) {
            moep__xperm_load8<FP8>(x, xs, row, K, e, v);
        } else {
#pragma unroll
            for (int i = 0; i < 8; ++i) v[i] = 0.f;
        }
#pragma unroll
        for (int sb = 0; sb < 2; ++sb)
#pragma unroll
            for (int h = 0; h < 2; ++h) {
                const int c = 2 * sb + h;
                __half2 p = __floats2half2_rn(v[c], v[c + 4]);
                w[sb][q * 2 + h] = *(uint32_t *)&p;
            }
    }
#pragma unroll
    for (int sb = 0; sb < 2; ++sb) {
        uint4 *d = xp + (((int64_t)seg * 8 + 2 * j + sb) * np + row) * 2;
        d[0] = make_uint4(w[sb][0], w[sb][1], w[sb][2], w[sb][3]);
        d[1] = make_uint4(w[sb][4], w[sb][5], w[sb][6], w[sb][7]);
    }
}

extern "C" cudaError_t moep__fp4_xperm(const void *x, const float *xs, int64_t n, int32_t K,
                                       int64_t np, void *xp, cudaStream_t s) {
    const int32_t kseg = (K + 127) / 128;
    const int64_t threads = n * kseg * 4;
    if (threads == 0) return cudaSuccess;
    const unsigned blocks = (unsigned)((threads + 255) / 256);
    if (xs)
        moep__xperm_kernel<true><<<blocks, 256, 0, s>>>(x, xs, n, K, kseg, np, (uint4 *)xp);
    else
        moep__xperm_kernel<false><<<blocks, 256, 0, s>>>(x, xs, n, K, kseg, np, (uint4 *)xp);
    return cudaGetLastError();
}
