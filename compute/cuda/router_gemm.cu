/*
 * The router GEMM of the GPU MoE layer: logits [T, E] f32 = x [T, H] (bf16
 * or f32) · gate [E, H]ᵀ (f32), f32 accumulation. E is tens to hundreds, so
 * a plain shared-memory tiled SGEMM (64 tokens x 64 experts per block, K in
 * steps of 32, 4x4 outputs per thread) is enough and needs no cuBLAS; it runs
 * at CUDA-core f32 rate (the router is a few % of the layer's FLOPs). With
 * few tokens there are few tiles (8 at T = 512, E = 64), so K is split over
 * blocks until about two waves of them run; the partial sums are added in a
 * fixed order by a second kernel (71 us -> a few us at T = 512, H = 1024).
 */
#include <cuda_runtime.h>

#include "cuda_kernels.h"

namespace {

constexpr int BM = 64, BN = 64, BK = 32, THREADS = 256;

__device__ inline float load_x(const void *x, bool bf16, size_t i) {
    if (bf16) return __uint_as_float((uint32_t)((const uint16_t *)x)[i] << 16);
    return ((const float *)x)[i];
}

/* Block (m, n, z): tokens m, experts n, K range z; out = logits or partial z. */
__global__ void __launch_bounds__(THREADS)
router_gemm_kernel(const void *x, bool bf16, int64_t T, int32_t H, const float *gate, int32_t E,
                   int32_t k_chunk, float *out) {
    __shared__ float xs[BK][BM + 4];
    __shared__ float gs[BK][BN + 4];
    const int tid = threadIdx.x, tx = tid % 16, ty = tid / 16;
    const int64_t m0 = (int64_t)blockIdx.x * BM;
    const int32_t n0 = blockIdx.y * BN;
    float acc[4][4] = {};
    const int32_t k_begin = blockIdx.z * k_chunk;
    const int32_t k_end = k_begin + k_chunk < H ? k_begin + k_chunk : H;
    out += (size_t)blockIdx.z * (size_t)T * E;
    for (int32_t k0 = k_begin; k0 < k_end; k0 += BK) {
        /* each thread loads 8 of the 64x32 x tile and 8 of the gate tile,
         * consecutive threads along K (coalesced), stored transposed */
        for (int p = 0; p < BM * BK / THREADS; p++) {
            int i = tid + p * THREADS, kk = i % BK, r = i / BK;
            int64_t m = m0 + r;
            int32_t k = k0 + kk, n = n0 + r;
            xs[kk][r] = (m < T && k < k_end) ? load_x(x, bf16, (size_t)m * H + k) : 0.0f;
            gs[kk][r] = (n < E && k < k_end) ? gate[(size_t)n * H + k] : 0.0f;
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
            if (n < E) out[(size_t)m * E + n] = acc[i][j];
        }
    }
}

/* logits = sum over z of partial z, z in order. */
__global__ void router_sum_kernel(const float *partials, int splits, size_t n, float *logits) {
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        float v = partials[i];
        for (int z = 1; z < splits; z++) v += partials[(size_t)z * n + i];
        logits[i] = v;
    }
}

/* K splits: enough blocks for ~2 waves on an H100/H200, each >= 4 K steps. */
int router_splits(int64_t T, int32_t H, int32_t E) {
    int64_t tiles = ((T + BM - 1) / BM) * ((E + BN - 1) / BN);
    int64_t want = (264 + tiles - 1) / tiles, most = H / (4 * BK);
    int64_t z = want < most ? want : most;
    return z < 1 ? 1 : (int)z;
}

} // namespace

extern "C" size_t moep__cuda_router_partials(int64_t T, int32_t H, int32_t E) {
    int z = router_splits(T, H, E);
    return z > 1 ? (size_t)z * (size_t)T * (size_t)E : 0;
}

extern "C" int moep__cuda_router_logits(const void *x, int x_bf16, int64_t T, int32_t H,
                                        const float *gate, int32_t E, float *partials,
                                        float *logits, moep_stream_t stream) {
    if (T == 0 || E == 0) return cudaSuccess;
    cudaStream_t s = (cudaStream_t)stream;
    int z = partials != NULL ? router_splits(T, H, E) : 1;
    int32_t k_chunk = (int32_t)((((int64_t)H + z - 1) / z + BK - 1) / BK * BK);
    z = (int)(((int64_t)H + k_chunk - 1) / k_chunk);
    dim3 grid((unsigned)((T + BM - 1) / BM), (unsigned)((E + BN - 1) / BN), (unsigned)z);
    router_gemm_kernel<<<grid, THREADS, 0, s>>>(x, x_bf16 != 0, T, H, gate, E, k_chunk,
                                                z > 1 ? partials : logits);
    if (z > 1) {
        size_t n = (size_t)T * E;
        unsigned blocks = (unsigned)((n + 255) / 256 < 1024 ? (n + 255) / 256 : 1024);
        router_sum_kernel<<<blocks, 256, 0, s>>>(partials, z, n, logits);
    }
    return cudaGetLastError();
}
