/*
 * Routing on the GPU for what route_warp.cu does not take (HASH, E > 256,
 * more than 64 groups or ranks): one thread per token running the CPU algorithm of
 * routing/ step by step (same heap top-k, same tie rule: higher score, then
 * lower index; same float/double arithmetic, exp evaluated in double and
 * rounded so that it matches the host's correctly rounded expf), so ids are
 * identical and weights agree to the last bit or two.
 */
#include <cuda_runtime.h>
#include <math.h>

#include "cuda_kernels.h"
#include "route_common.cuh"
#include "route_warp.h"

namespace {

enum { SOFTMAX_TOPK = MOEP__SOFTMAX_TOPK, TOPK_SOFTMAX = MOEP__TOPK_SOFTMAX,
       SIGMOID_GROUPED = MOEP__SIGMOID_GROUPED, HASH = MOEP__HASH };


/* Strided views: thread-private rows interleaved so that neighbours coalesce. */
struct row_f {
    float *p;
    int64_t stride;
    __device__ float &operator[](int64_t i) const { return p[i * stride]; }
};
struct row_i {
    int32_t *p;
    int64_t stride;
    __device__ int32_t &operator[](int64_t i) const { return p[i * stride]; }
};

__device__ inline bool beats(row_f s, int32_t a, int32_t b) { return moep__beats(s[a], a, s[b], b); }

__device__ void sift_down(row_f s, row_i heap, int32_t size, int32_t pos) {
    for (;;) {
        int32_t weakest = pos, l = 2 * pos + 1, r = l + 1;
        if (l < size && beats(s, heap[weakest], heap[l])) weakest = l;
        if (r < size && beats(s, heap[weakest], heap[r])) weakest = r;
        if (weakest == pos) return;
        int32_t tmp = heap[pos];
        heap[pos] = heap[weakest];
        heap[weakest] = tmp;
        pos = weakest;
    }
}

__device__ void sift_up(row_f s, row_i heap, int32_t pos) {
    while (pos > 0) {
        int32_t parent = (pos - 1) / 2;
        if (!beats(s, heap[parent], heap[pos])) return;
        int32_t tmp = heap[pos];
        heap[pos] = heap[parent];
        heap[parent] = tmp;
        pos = parent;
    }
}

/* allowed: bit mask row (NULL stride = all allowed) */
__device__ void topk(row_f s, const row_i *allowed, int32_t n, int32_t k, row_i heap, int32_t *idx) {
    int32_t size = 0;
    for (int32_t i = 0; i < n; i++) {
        if (allowed != NULL && !(*allowed)[i]) continue;
        if (size < k) {
            heap[size] = i;
            sift_up(s, heap, size++);
        } else if (beats(s, i, heap[0])) {
            heap[0] = i;
            sift_down(s, heap, size, 0);
        }
    }
    for (int32_t out = size - 1; out >= 0; out--) {
        idx[out] = heap[0];
        heap[0] = heap[--size];
        sift_down(s, heap, size, 0);
    }
}

__device__ float sum_of_top(row_f x, int32_t off, int32_t n, int32_t top_n) {
    float best = x[off], second = 0;
    int have_second = 0;
    for (int32_t i = 1; i < n; i++) {
        float v = x[off + i];
        if (v > best) {
            second = best;
            best = v;
            have_second = 1;
        } else if (!have_second || v > second) {
            second = v;
            have_second = 1;
        }
    }
    return top_n >= 2 && have_second ? best + second : best;
}

__device__ void block_mask(row_f score, int32_t n, int32_t n_blocks, int32_t keep, int32_t top_n,
                           row_f block_score, row_i block_idx, row_i heap, row_i allowed) {
    int32_t size = n / n_blocks;
    for (int32_t b = 0; b < n_blocks; b++) block_score[b] = sum_of_top(score, b * size, size, top_n);
    if (keep > n_blocks) keep = n_blocks;
    int32_t kept[64];
    /* keep <= n_blocks; more than 64 kept blocks fall back to the row itself */
    int32_t *out = keep <= 64 ? kept : &block_idx[0];
    topk(block_score, NULL, n_blocks, keep, heap, out);
    for (int32_t e = 0; e < n; e++) allowed[e] = 0;
    for (int32_t i = 0; i < keep; i++) {
        int32_t b = keep <= 64 ? kept[i] : block_idx[i];
        for (int32_t e = 0; e < size; e++) allowed[b * size + e] = 1;
    }
}

__device__ void sort_by_score(row_f s, int32_t *idx, int32_t k) {
    for (int32_t i = 1; i < k; i++) {
        int32_t cur = idx[i], j = i;
        for (; j > 0 && beats(s, cur, idx[j - 1]); j--) idx[j] = idx[j - 1];
        idx[j] = cur;
    }
}

/* Softmax over norm (all n when norm == NULL) evaluated at `at`. */
__device__ void softmax_at(row_f x, const int32_t *norm, int32_t n, const int32_t *at, int32_t k,
                           float *w) {
    float mx = -INFINITY;
    for (int32_t i = 0; i < n; i++) mx = fmaxf(mx, x[norm ? norm[i] : i]);
    if (isinf(mx)) {
        int32_t ties = 0;
        for (int32_t i = 0; i < n; i++) ties += x[norm ? norm[i] : i] == mx;
        for (int32_t i = 0; i < k; i++) w[i] = x[at[i]] == mx ? 1.0f / (float)ties : 0.0f;
        return;
    }
    double sum = 0;
    for (int32_t i = 0; i < n; i++) sum += moep__expf_rn(x[norm ? norm[i] : i] - mx);
    for (int32_t i = 0; i < k; i++) w[i] = (float)(moep__expf_rn(x[at[i]] - mx) / sum);
}


__device__ inline uint64_t mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

#define MAXK MOEP__ROUTE_MAXK
#define ROUTE_MAX_SMEM (192 * 1024) /* E <= 256 routes from shared memory */

/* Token t's scores into logit. With a.first_nan, a row holding a NaN is
 * flagged instead: ids E (outside the experts, so a dispatch refuses them),
 * weights 0; returns true then. */
__device__ bool load_row(const moep__cuda_route_args_t &a, int64_t t, row_f logit) {
    const int32_t E = a.num_experts;
    bool nan = false;
    for (int32_t e = 0; e < E; e++) {
        float v = moep__load_score(a.scores, a.scores_bf16, (size_t)t * E + e);
        nan |= isnan(v);
        logit[e] = v;
    }
    if (!nan || a.first_nan == NULL) return false;
    for (int32_t i = 0; i < a.top_k; i++) {
        a.topk_idx[t * a.top_k + i] = E;
        a.topk_w[t * a.top_k + i] = 0.0f;
    }
    atomicMin(a.first_nan, (unsigned long long)t);
    return true;
}

/*
 * Scratch: three float and three int rows of E per token. SHARED: in the
 * block's shared memory (one warp per block, rows interleaved by thread),
 * where the heap's dependent loads and stores cost ~30 cycles instead of a
 * trip to L2 (global stores do not stay in L1): ~10x faster. Otherwise in
 * global memory (scratch_f / scratch_i, rows interleaved by token), for E
 * too large for shared memory.
 */
template <bool SHARED>
__global__ void route_kernel(moep__cuda_route_args_t a, float *scratch_f, int32_t *scratch_i) {
    extern __shared__ float route_smem[];
    int64_t T = a.num_tokens;
    int64_t t = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= T) return;
    const int32_t E = a.num_experts, k = a.top_k;
    const int64_t stride = SHARED ? (int64_t)blockDim.x : T;
    float *sf = SHARED ? route_smem + threadIdx.x : scratch_f + t;
    int32_t *si = SHARED ? (int32_t *)(route_smem + 3 * (int64_t)E * blockDim.x) + threadIdx.x
                         : scratch_i + t;
    row_f logit = {sf, stride}, sel = {sf + (int64_t)E * stride, stride};
    row_f bscore = {sf + 2 * (int64_t)E * stride, stride};
    row_i bidx = {si, stride}, heap = {si + (int64_t)E * stride, stride};
    row_i allowed = {si + 2 * (int64_t)E * stride, stride};
    int32_t idx[MAXK];
    float w[MAXK];
    if (a.kind == HASH) {
        row_i perm = heap;
        uint64_t state = mix64((uint64_t)(uint32_t)a.layer_id + 0x9e3779b97f4a7c15ull);
        state = mix64(state ^ (uint64_t)a.token_ids[t]);
        state = mix64(state ^ a.hash_seed);
        for (int32_t e = 0; e < E; e++) perm[e] = e;
        for (int32_t i = 0; i < k; i++) {
            state += 0x9e3779b97f4a7c15ull;
            uint64_t left = (uint64_t)(E - i);
            int32_t j = i + (int32_t)(mix64(state) % left);
            int32_t tmp = perm[i];
            perm[i] = perm[j];
            perm[j] = tmp;
            idx[i] = perm[i];
        }
        if (a.scores != NULL) {
            if (load_row(a, t, logit)) return;
            softmax_at(logit, NULL, E, idx, k, w);
            moep__finish_weights(w, k, a.renormalize, a.scale);
        } else {
            for (int32_t i = 0; i < k; i++) w[i] = 1.0f / (float)k;
            moep__finish_weights(w, k, 0, a.scale);
        }
    } else {
        if (load_row(a, t, logit)) return;
        row_f s = logit;
        if (a.kind == SIGMOID_GROUPED) {
            for (int32_t e = 0; e < E; e++)
                sel[e] = __fadd_rn(moep__sigmoid(logit[e]), a.bias ? a.bias[e] : 0.0f);
            s = sel;
        }
        const row_i *mask = NULL;
        if (a.max_ranks_per_token > 0) {
            block_mask(s, E, a.num_ranks, a.max_ranks_per_token, 1, bscore, bidx, heap, allowed);
            mask = &allowed;
        } else if (a.kind == SIGMOID_GROUPED && a.n_group > 1) {
            block_mask(s, E, a.n_group, a.topk_group, 2, bscore, bidx, heap, allowed);
            mask = &allowed;
        }
        topk(s, mask, E, k, heap, idx);
        if (a.kind == SOFTMAX_TOPK) {
            softmax_at(logit, NULL, E, idx, k, w);
        } else if (a.kind == TOPK_SOFTMAX) {
            softmax_at(logit, idx, k, idx, k, w);
        } else {
            sort_by_score(logit, idx, k);
            for (int32_t i = 0; i < k; i++) w[i] = moep__sigmoid(logit[idx[i]]);
        }
        moep__finish_weights(w, k, a.renormalize, a.scale);
    }
    for (int32_t i = 0; i < k; i++) {
        a.topk_idx[t * k + i] = idx[i];
        a.topk_w[t * k + i] = w[i];
    }
}

__global__ void find_nan_kernel(const void *scores, int bf16, int64_t T, int32_t E,
                                unsigned long long *first) {
    int64_t n = T * E;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x) {
        bool nan = bf16 ? ((((const uint16_t *)scores)[i] & 0x7fffu) > 0x7f80u)
                        : isnan(((const float *)scores)[i]);
        if (nan) atomicMin(first, (unsigned long long)(i / E));
    }
}

} // namespace

extern "C" int moep__cuda_find_nan(const void *scores, int bf16, int64_t T, int32_t E,
                                   int64_t *first, moep_stream_t stream) {
    if (T * E == 0) return cudaSuccess;
    int64_t n = T * E;
    int blocks = (int)((n + 255) / 256 < 1024 ? (n + 255) / 256 : 1024);
    find_nan_kernel<<<blocks, 256, 0, (cudaStream_t)stream>>>(scores, bf16, T, E,
                                                               (unsigned long long *)first);
    return cudaGetLastError();
}

extern "C" int moep__cuda_route(const moep__cuda_route_args_t *a, moep_stream_t stream) {
    if (a->num_tokens == 0) return cudaSuccess;
    if (a->top_k > MAXK) return cudaErrorInvalidValue;
    cudaStream_t s = (cudaStream_t)stream;
    if (moep__route_warp_fits(a)) return moep__route_warp(a, s);
    /* one warp per block, its scratch in shared memory, when E allows */
    const int warp = 32;
    const size_t smem = (size_t)6 * a->num_experts * warp * sizeof(float);
    if (smem <= ROUTE_MAX_SMEM) {
        static bool attr = false;
        if (!attr) {
            cudaError_t e = cudaFuncSetAttribute(route_kernel<true>,
                                                 cudaFuncAttributeMaxDynamicSharedMemorySize,
                                                 (int)ROUTE_MAX_SMEM);
            if (e != cudaSuccess) return e;
            attr = true;
        }
        unsigned blocks = (unsigned)((a->num_tokens + warp - 1) / warp);
        route_kernel<true><<<blocks, warp, smem, s>>>(*a, NULL, NULL);
        return cudaGetLastError();
    }
    size_t n = (size_t)a->num_tokens * (size_t)a->num_experts * 3;
    void *f = NULL, *i = NULL;
    cudaError_t e = cudaMallocAsync(&f, n * sizeof(float), s);
    if (e == cudaSuccess) e = cudaMallocAsync(&i, n * sizeof(int32_t), s);
    if (e == cudaSuccess) {
        int threads = 128;
        int blocks = (int)((a->num_tokens + threads - 1) / threads);
        route_kernel<false><<<blocks, threads, 0, s>>>(*a, (float *)f, (int32_t *)i);
        e = cudaGetLastError();
    }
    if (f) cudaFreeAsync(f, s);
    if (i) cudaFreeAsync(i, s);
    return e;
}
