/*
 * The router GEMM of the GPU MoE layer: logits [T, E] f32 = x [T, H] (bf16
 * or f32) · gate [E, H]ᵀ (f32), f32 accumulation. E is tens to hundreds, so
 * a plain shared-memory tiled SGEMM (64 tokens x 64 experts per block, K in
 * steps of 32, 4x4 outputs per thread) is enough and needs no cuBLAS; it runs
 * at CUDA-core f32 rate (the router is a few % of the layer's FLOPs).
 */
#include <cuda_runtime.h>

#include "cuda_kernels.h"

namespace {

constexpr int BM = 64, BN = 64, BK = 32, THREADS = 256;

__device__ inline float load_x(const void *x, bool bf16, size_t i) {
    if (bf16) return __uint_as_float((uint32_t)((const uint16_t *)x)[i] << 16);
    return ((const float *)x)[i];
}

__global__ void __launch_bounds__(THREADS)
router_gemm_kernel(const void *x, bool bf16, int64_t T, int32_t H, const float *gate, int32_t E,
                   float *logits) {
    __shared__ float xs[BK][BM + 4];
    __shared__ float gs[BK][BN + 4];
    const int tid = threadIdx.x, tx = tid % 16, ty = tid / 16;
    const int64_t m0 = (int64_t)blockIdx.x * BM;
    const int32_t n0 = blockIdx.y * BN;
    float acc[4][4] = {};
    for (int32_t k0 = 0; k0 < H; k0 += BK) {
        /* each thread loads 8 of the 64x32 x tile and 8 of the gate tile,
         * consecutive threads along K (coalesced), stored transposed */
        for (int p = 0; p < BM * BK / THREADS; p++) {
            int i = tid + p * THREADS, kk = i % BK, r = i / BK;
            int64_t m = m0 + r;
            int32_t k = k0 + kk, n = n0 + r;
            xs[kk][r] = (m < T && k < H) ? load_x(x, bf16, (size_t)m * H + k) : 0.0f;
            gs[kk][r] = (n < E && k < H) ? gate[(size_t)n * H + k] : 0.0f;
        }
        __syncthreads();
#pragma unroll 8
        for (int kk = 0; kk < BK; kk++) {
            float a[4], b[4];
            for (int i = 0; i < 4; i++) a[i] = xs[kk][ty * 4 + i];
            for (int j = 0; j < 4; j++) b[j] = gs[kk][tx * 4 + j];
            for (int i = 0; i < 4; i++)
                for (int j = 0; j < 4; j++) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
        }
        __syncthreads();
    }
    for (int i = 0; i < 4; i++) {
        int64_t m = m0 + ty * 4 + i;
        if (m >= T) continue;
        for (int j = 0; j < 4; j++) {
            int32_t n = n0 + tx * 4 + j;
            if (n < E) logits[(size_t)m * E + n] = acc[i][j];
        }
    }
}

} // namespace

extern "C" int moep__cuda_router_logits(const void *x, int x_bf16, int64_t T, int32_t H,
                                        const float *gate, int32_t E, float *logits,
                                        moep_stream_t stream) {
    if (T == 0 || E == 0) return cudaSuccess;
    dim3 grid((unsigned)((T + BM - 1) / BM), (unsigned)((E + BN - 1) / BN));
    router_gemm_kernel<<<grid, THREADS, 0, (cudaStream_t)stream>>>(x, x_bf16 != 0, T, H, gate, E,
                                                                   logits);
    return cudaGetLastError();
}
