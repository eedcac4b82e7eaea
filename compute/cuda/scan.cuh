/* One block's deterministic exclusive scan over n items: each thread takes
 * a contiguous chunk, counts it, the block scans the chunk totals, and each
 * thread walks its chunk again calling emit(i, items before i). */
#ifndef MOEP_CUDA_SCAN_CUH
#define MOEP_CUDA_SCAN_CUH

#include <stdint.h>

#define MOEP_SCAN_THREADS 1024

template <typename Value, typename Emit>
__device__ void moep__block_chunk_scan(int64_t n, Value value, Emit emit) {
    __shared__ int64_t part[MOEP_SCAN_THREADS];
    int tid = threadIdx.x;
    int64_t chunk = (n + MOEP_SCAN_THREADS - 1) / MOEP_SCAN_THREADS;
    int64_t lo = tid * chunk, hi = lo + chunk < n ? lo + chunk : n;
    int64_t mine = 0;
    for (int64_t i = lo; i < hi; i++) mine += value(i);
    part[tid] = mine;
    __syncthreads();
    /* Hillis-Steele inclusive scan of the totals */
    for (int off = 1; off < MOEP_SCAN_THREADS; off <<= 1) {
        int64_t add = tid >= off ? part[tid - off] : 0;
        __syncthreads();
        part[tid] += add;
        __syncthreads();
    }
    int64_t before = part[tid] - mine;
    for (int64_t i = lo; i < hi; i++) {
        int64_t v = value(i);
        emit(i, before);
        before += v;
    }
}

#endif
