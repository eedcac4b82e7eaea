/*
 * Dispatch layout on the GPU: which ranks each token goes to, per-rank and
 * per-expert counts, and the slot numbering of routing/layout.c (slots
 * grouped by destination rank, tokens ascending), by one deterministic scan.
 */
#include <cuda_runtime.h>

#include "cuda_kernels.h"
#include "scan.cuh"

namespace {

/* One thread per token. Counts go to a shared-memory histogram first (E
 * experts then R ranks) when it fits, one global atomic per non-zero bin
 * per block: 32K global atomics on 256 counters took 14 us at T = 4096. */
__global__ void count_kernel(const int32_t *topk_idx, int64_t T, int32_t k, int32_t E, int32_t R,
                             const int32_t *expert_rank, uint8_t *flags, unsigned long long *rank_count,
                             unsigned long long *expert_count, int32_t *bad, bool local_hist) {
    extern __shared__ unsigned int hist[]; /* [E + R] when local_hist */
    if (local_hist) {
        for (int32_t i = threadIdx.x; i < E + R; i += blockDim.x) hist[i] = 0;
        __syncthreads();
    }
    int64_t t = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    for (int32_t j = 0; t < T && j < k; j++) {
        int32_t e = topk_idx[t * k + j];
        if (e == -1) continue;
        if (e < -1 || e >= E) {
            atomicAdd(bad, 1);
            continue;
        }
        int32_t r = expert_rank[e];
        uint8_t *f = &flags[(int64_t)r * T + t];
        bool first = *f == 0; /* a token's ids are walked by one thread: no race */
        *f = 1;
        if (local_hist) {
            atomicAdd(&hist[e], 1u);
            if (first) atomicAdd(&hist[E + r], 1u);
        } else {
            atomicAdd(&expert_count[e], 1ull);
            if (first) atomicAdd(&rank_count[r], 1ull);
        }
    }
    if (!local_hist) return;
    __syncthreads();
    for (int32_t i = threadIdx.x; i < E + R; i += blockDim.x) {
        if (hist[i] == 0) continue;
        if (i < E)
            atomicAdd(&expert_count[i], (unsigned long long)hist[i]);
        else
            atomicAdd(&rank_count[i - E], (unsigned long long)hist[i]);
    }
}

__global__ void slots_kernel(const uint8_t *flags, int64_t T, int32_t R, int32_t *token_rank_slot,
                             int32_t *slot_token) {
    int64_t n = T * R;
    moep__block_chunk_scan(n, [&](int64_t i) { return (int64_t)flags[i]; },
                           [&](int64_t i, int64_t before) {
                               int64_t r = i / T, t = i % T;
                               if (flags[i]) {
                                   if (token_rank_slot) token_rank_slot[t * R + r] = (int32_t)before;
                                   if (slot_token) slot_token[before] = (int32_t)t;
                               } else if (token_rank_slot) {
                                   token_rank_slot[t * R + r] = -1;
                               }
                           });
}

/* One block per destination rank r: token t's slot for r is r * blk + (its
 * index among r's tokens), by a block scan of flags[r * T, r * T + T). */
__global__ void slots_padded_kernel(const uint8_t *flags, int64_t T, int32_t R, int64_t blk,
                                    int32_t *token_rank_slot) {
    int64_t r = blockIdx.x;
    const uint8_t *f = flags + r * T;
    moep__block_chunk_scan(T, [&](int64_t t) { return (int64_t)f[t]; },
                           [&](int64_t t, int64_t before) {
                               token_rank_slot[t * R + r] = f[t] ? (int32_t)(r * blk + before) : -1;
                           });
}

} // namespace

extern "C" int moep__cuda_layout_slots_padded(const uint8_t *flags, int64_t T, int32_t R, int64_t blk,
                                              int32_t *token_rank_slot, moep_stream_t stream) {
    if (T == 0) return cudaSuccess;
    slots_padded_kernel<<<(unsigned)R, MOEP_SCAN_THREADS, 0, (cudaStream_t)stream>>>(flags, T, R, blk,
                                                                                   token_rank_slot);
    return cudaGetLastError();
}

extern "C" int moep__cuda_layout_count(const int32_t *topk_idx, int64_t T, int32_t k, int32_t E,
                                       int32_t R, const int32_t *expert_rank, uint8_t *flags,
                                       int64_t *rank_count, int64_t *expert_count, int32_t *bad,
                                       moep_stream_t stream) {
    cudaStream_t s = (cudaStream_t)stream;
    cudaError_t e = cudaMemsetAsync(rank_count, 0, (size_t)R * sizeof(int64_t), s);
    if (e == cudaSuccess) e = cudaMemsetAsync(expert_count, 0, (size_t)E * sizeof(int64_t), s);
    if (e == cudaSuccess) e = cudaMemsetAsync(bad, 0, sizeof(int32_t), s);
    if (e == cudaSuccess && T > 0) e = cudaMemsetAsync(flags, 0, (size_t)T * (size_t)R, s);
    if (e != cudaSuccess || T == 0) return e;
    size_t hist = (size_t)(E + R) * sizeof(unsigned int);
    bool local_hist = hist <= 32768;
    count_kernel<<<(unsigned)((T + 127) / 128), 128, local_hist ? hist : 0, s>>>(
        topk_idx, T, k, E, R, expert_rank, flags, (unsigned long long *)rank_count,
        (unsigned long long *)expert_count, bad, local_hist);
    return cudaGetLastError();
}

extern "C" int moep__cuda_layout_slots(const uint8_t *flags, int64_t T, int32_t R,
                                       int32_t *token_rank_slot, int32_t *slot_token,
                                       moep_stream_t stream) {
    if (T == 0) return cudaSuccess;
    slots_kernel<<<1, MOEP_SCAN_THREADS, 0, (cudaStream_t)stream>>>(flags, T, R, token_rank_slot,
                                                                    slot_token);
    return cudaGetLastError();
}
