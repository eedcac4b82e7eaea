/*
 * Expert-major rows of the received slots: slot s (token s / k, choice
 * s % k) with local expert l gets row expert_offset[l] + (number of earlier
 * slots of l), in slot order, as routing/layout.c numbers them on the CPU.
 *
 * A counting sort over all slots at once, in three small kernels:
 *  1. count: block b counts the local ids of its CHUNK slots (shared-memory
 *     histogram) into counts[b][l];
 *  2. bases: per expert (a warp), an exclusive scan of counts[.][l] over the blocks
 *     from expert_offset[l]: the first row of l in block b; the rows after
 *     the last one up to expert_offset[l + 1] are padding (row_src -1);
 *  3. assign: block b again, each warp a run of CHUNK / WARPS slots with its
 *     own running row per expert (block base + earlier warps' counts), 32
 *     slots at a time: lanes with the same id rank themselves by
 *     __match_any_sync and the lowest lane below them.
 * Coalesced reads of local_idx and no serial pass: the previous one-block-
 * per-expert scan read every slot once per local expert (99 us for 8192
 * tokens x top-8 over 128 local experts on an H200; this is a few us).
 * Ids >= MOEP_EXPERT_ROWS_MAX_L local experts take that older kernel.
 */
#include <cuda_runtime.h>

#include "cuda_kernels.h"
#include "scan.cuh"

namespace {

constexpr int THREADS = 256;
constexpr int WARPS = THREADS / 32;
constexpr int PER_THREAD = 4;
constexpr int CHUNK = THREADS * PER_THREAD; /* slots per block */
constexpr int PER_WARP = CHUNK / WARPS;     /* a warp's run: PER_THREAD groups of 32 */

__device__ inline int64_t slot_count(const int64_t *n_p, int64_t n_max, int32_t k) {
    return n_p != NULL && *n_p * k < n_max ? *n_p * k : n_max;
}

__global__ void count_kernel(const int32_t *local_idx, const int64_t *n_p, int64_t n_max, int32_t k,
                             int32_t L, int32_t *counts) {
    extern __shared__ int32_t hist[]; /* [L] */
    for (int32_t l = threadIdx.x; l < L; l += THREADS) hist[l] = 0;
    __syncthreads();
    int64_t n = slot_count(n_p, n_max, k), s0 = (int64_t)blockIdx.x * CHUNK;
    for (int i = 0; i < PER_THREAD; i++) {
        int64_t s = s0 + i * THREADS + threadIdx.x;
        if (s >= n) break;
        int32_t l = local_idx[s];
        if (l >= 0 && l < L) atomicAdd(&hist[l], 1);
    }
    __syncthreads();
    for (int32_t l = threadIdx.x; l < L; l += THREADS) counts[(int64_t)blockIdx.x * L + l] = hist[l];
}

/* One warp per expert: counts[b][l] becomes the first row of l in block b
 * (a warp scan over the blocks, 32 at a time). */
__global__ void bases_kernel(int32_t *counts, int32_t blocks, int32_t L, const int64_t *expert_offset,
                             int64_t rows_cap, int32_t *row_src) {
    int32_t l = (blockIdx.x * blockDim.x + threadIdx.x) / 32, lane = threadIdx.x % 32;
    if (l >= L) return;
    int64_t row = expert_offset[l];
    for (int32_t b0 = 0; b0 < blocks; b0 += 32) {
        int32_t b = b0 + lane;
        int32_t c = b < blocks ? counts[(int64_t)b * L + l] : 0, incl = c;
        for (int off = 1; off < 32; off <<= 1) {
            int32_t v = __shfl_up_sync(0xffffffffu, incl, off);
            if (lane >= off) incl += v;
        }
        if (b < blocks) counts[(int64_t)b * L + l] = (int32_t)(row + incl - c);
        row += __shfl_sync(0xffffffffu, incl, 31);
    }
    int64_t end = expert_offset[l + 1] < rows_cap ? expert_offset[l + 1] : rows_cap;
    for (row += lane; row < end; row += 32) row_src[row] = -1;
}

__global__ void assign_kernel(const int32_t *local_idx, const int64_t *n_p, int64_t n_max, int32_t k,
                              int32_t L, const int32_t *bases, int64_t rows_cap, int32_t *slot_row,
                              int32_t *row_src) {
    extern __shared__ int32_t next[]; /* [WARPS][L]: each warp's next row per expert */
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int64_t n = slot_count(n_p, n_max, k);
    const int64_t s0 = (int64_t)blockIdx.x * CHUNK + (int64_t)warp * PER_WARP;
    for (int32_t i = threadIdx.x; i < WARPS * L; i += THREADS) next[i] = 0;
    __syncthreads();
    for (int g = 0; g < PER_THREAD; g++) { /* this warp's counts */
        int64_t s = s0 + g * 32 + lane;
        int32_t l = s < n ? local_idx[s] : -1;
        if (l >= 0 && l < L) atomicAdd(&next[warp * L + l], 1);
    }
    __syncthreads();
    for (int32_t l = threadIdx.x; l < L; l += THREADS) { /* exclusive scan over the warps */
        int32_t row = bases[(int64_t)blockIdx.x * L + l];
        for (int w = 0; w < WARPS; w++) {
            int32_t c = next[w * L + l];
            next[w * L + l] = row;
            row += c;
        }
    }
    __syncthreads();
    int32_t *mine = next + warp * L;
    const unsigned below = (1u << lane) - 1;
    for (int g = 0; g < PER_THREAD; g++) {
        int64_t s = s0 + g * 32 + lane;
        if (s0 + g * 32 >= n) break; /* uniform over the warp */
        int32_t l = s < n ? local_idx[s] : -1;
        bool ours = l >= 0 && l < L;
        unsigned same = __match_any_sync(0xffffffffu, ours ? l : -1);
        if (ours) {
            int32_t row = mine[l] + __popc(same & below);
            slot_row[s] = row;
            if (row < rows_cap) row_src[row] = (int32_t)(s / k); /* only a bad plan exceeds it */
        } else if (s < n) {
            slot_row[s] = -1;
        }
        __syncwarp();
        if (ours && (same & below) == 0) mine[l] += __popc(same); /* the group's lowest lane */
        __syncwarp();
    }
}

} // namespace

extern "C" size_t moep__cuda_expert_rows_scratch(int64_t n_max_tokens, int32_t k, int32_t L) {
    int64_t blocks = (n_max_tokens * k + CHUNK - 1) / CHUNK;
    return (size_t)(blocks > 0 ? blocks : 1) * (size_t)(L > 0 ? L : 1) * sizeof(int32_t);
}

extern "C" int moep__cuda_expert_rows_sorted(const int32_t *local_idx, const moep__cuda_recv_rows_t *n,
                                             int32_t k, int32_t L, const int64_t *expert_offset,
                                             int64_t rows_cap, int32_t *slot_row, int32_t *row_src,
                                             int32_t *scratch, moep_stream_t stream) {
    if (n->max == 0 || L == 0) return cudaSuccess;
    cudaStream_t s = (cudaStream_t)stream;
    int64_t n_max = n->max * k;
    unsigned blocks = (unsigned)((n_max + CHUNK - 1) / CHUNK);
    size_t hist = (size_t)L * sizeof(int32_t);
    count_kernel<<<blocks, THREADS, hist, s>>>(local_idx, n->dev, n_max, k, L, scratch);
    bases_kernel<<<(unsigned)((L + 7) / 8), 256, 0, s>>>(scratch, (int32_t)blocks, L, expert_offset,
                                                             rows_cap, row_src);
    assign_kernel<<<blocks, THREADS, WARPS * hist, s>>>(local_idx, n->dev, n_max, k, L, scratch,
                                                        rows_cap, slot_row, row_src);
    return cudaGetLastError();
}
