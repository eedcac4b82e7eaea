/*
 * Dispatch layout on the GPU: which ranks each token goes to, per-rank and
 * per-expert counts, and the slot numbering of routing/layout.c (slots
 * grouped by destination rank, tokens ascending), by one deterministic scan.
 */
#include <cuda_runtime.h>
#include <string.h>

#include "count_msg.cuh"
#include "cuda_kernels.h"
#include "scan.cuh"

namespace {

struct count_args {
    const int32_t *topk_idx;
    int64_t T;
    int32_t k, E, R;
    const int32_t *expert_rank;
    uint8_t *flags;
    unsigned long long *rank_count, *expert_count;
    int32_t *bad;
    unsigned int *ticket;     /* blocks done; the last one resets it to 0 */
    unsigned int *block_hist; /* [grid][E + R + 1] with local_hist */
    bool local_hist;
    moep__cuda_msg_out_t out; /* out.a.msg_bytes == 0: no messages */
};

/* One thread per token; each thread owns its token's R flags (zeroes them
 * first: no memset). With local_hist (E + R small enough) the counts go to
 * a shared-memory histogram, which each block stores whole into its own
 * row of block_hist, and the last block to finish adds the rows up and
 * writes the final counts: no global atomics on the counters and no
 * zeroing launches before the kernel (one launch instead of five).
 * Otherwise (very large E) global atomics on counters the host zeroed.
 * Either way the last block then writes the count messages. */
__global__ void count_kernel(count_args a) {
    extern __shared__ unsigned int hist[]; /* [E + R + 1] when local_hist: experts, ranks, bad */
    const int32_t nbins = a.E + a.R + 1;
    if (a.local_hist) {
        for (int32_t i = threadIdx.x; i < nbins; i += blockDim.x) hist[i] = 0;
        __syncthreads();
    }
    int64_t t = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (t < a.T) {
        for (int32_t r = 0; r < a.R; r++) a.flags[(int64_t)r * a.T + t] = 0;
        for (int32_t j = 0; j < a.k; j++) {
            int32_t e = a.topk_idx[t * a.k + j];
            if (e == -1) continue;
            if (e < -1 || e >= a.E) {
                if (a.local_hist)
                    atomicAdd(&hist[nbins - 1], 1u);
                else
                    atomicAdd(a.bad, 1);
                continue;
            }
            int32_t r = a.expert_rank[e];
            uint8_t *f = &a.flags[(int64_t)r * a.T + t];
            bool first = *f == 0; /* a token's ids are walked by one thread: no race */
            *f = 1;
            if (a.local_hist) {
                atomicAdd(&hist[e], 1u);
                if (first) atomicAdd(&hist[a.E + r], 1u);
            } else {
                atomicAdd(&a.expert_count[e], 1ull);
                if (first) atomicAdd(&a.rank_count[r], 1ull);
            }
        }
    }
    __syncthreads();
    if (a.local_hist)
        for (int32_t i = threadIdx.x; i < nbins; i += blockDim.x)
            a.block_hist[(size_t)blockIdx.x * nbins + i] = hist[i];
    __shared__ bool last;
    __threadfence(); /* our row (or atomics) before the ticket */
    __syncthreads();
    if (threadIdx.x == 0) last = atomicAdd(a.ticket, 1u) == gridDim.x - 1;
    __syncthreads();
    if (!last) return;
    __threadfence();
    if (a.local_hist) {
        for (int32_t i = threadIdx.x; i < nbins; i += blockDim.x) {
            unsigned long long n = 0;
            for (unsigned b = 0; b < gridDim.x; b++) n += __ldcg(&a.block_hist[(size_t)b * nbins + i]);
            if (i < a.E)
                a.expert_count[i] = n;
            else if (i < a.E + a.R)
                a.rank_count[i - a.E] = n;
            else
                *a.bad = (int32_t)n;
        }
        __syncthreads();
    }
    if (threadIdx.x == 0) *a.ticket = 0;
    if (a.out.a.msg_bytes == 0) return;
    bool bad = __ldcg(a.bad) != 0;
    for (int32_t r = 0; r < a.R; r++) {
        uint8_t *m = a.out.mapped ? (uint8_t *)a.out.to.base[r] : a.out.msgs + (size_t)r * a.out.a.msg_bytes;
        moep__count_msg_write(a.out.a, (int64_t)__ldcg(&a.rank_count[r]), (const int64_t *)a.expert_count,
                              bad, m);
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

#define MOEP_COUNT_THREADS 512
#define MOEP_COUNT_HIST_MAX 8192 /* E + R + 1 bins in shared memory (32 KB) */

static unsigned count_blocks(int64_t T) {
    return T > 0 ? (unsigned)((T + MOEP_COUNT_THREADS - 1) / MOEP_COUNT_THREADS) : 1;
}

extern "C" size_t moep__cuda_layout_count_scratch(int64_t T, int32_t E, int32_t R) {
    size_t bins = (size_t)E + (size_t)R + 1;
    return 256 + (bins <= MOEP_COUNT_HIST_MAX ? (size_t)count_blocks(T) * bins * 4 : 0);
}

extern "C" int moep__cuda_layout_count(const int32_t *topk_idx, int64_t T, int32_t k, int32_t E,
                                       int32_t R, const int32_t *expert_rank, uint8_t *flags,
                                       int64_t *rank_count, int64_t *expert_count, int32_t *bad,
                                       void *scratch, const moep__cuda_msg_out_t *out,
                                       moep_stream_t stream) {
    cudaStream_t s = (cudaStream_t)stream;
    count_args a;
    memset(&a, 0, sizeof a);
    a.topk_idx = topk_idx;
    a.T = T;
    a.k = k;
    a.E = E;
    a.R = R;
    a.expert_rank = expert_rank;
    a.flags = flags;
    a.rank_count = (unsigned long long *)rank_count;
    a.expert_count = (unsigned long long *)expert_count;
    a.bad = bad;
    a.ticket = (unsigned int *)scratch;
    a.block_hist = (unsigned int *)((uint8_t *)scratch + 256);
    size_t bins = (size_t)E + (size_t)R + 1;
    a.local_hist = bins <= MOEP_COUNT_HIST_MAX;
    if (out != NULL) a.out = *out;
    if (!a.local_hist) { /* the global counters start from zero */
        cudaError_t e = cudaMemsetAsync(rank_count, 0, (size_t)R * sizeof(int64_t), s);
        if (e == cudaSuccess) e = cudaMemsetAsync(expert_count, 0, (size_t)E * sizeof(int64_t), s);
        if (e == cudaSuccess) e = cudaMemsetAsync(bad, 0, sizeof(int32_t), s);
        if (e != cudaSuccess) return e;
    }
    count_kernel<<<count_blocks(T), MOEP_COUNT_THREADS, a.local_hist ? bins * 4 : 0, s>>>(a);
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
