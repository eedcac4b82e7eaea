/*
 * Routing with a warp per token: lane l holds experts l, l + 32, ... (up to
 * 256), so the group / rank mask and each of the k top-k rounds are warp
 * arg-max reductions instead of one thread's heap walk (route_kernels.cu):
 * that thread-per-token kernel is a ~75 us latency chain at any T. The
 * selection uses the CPU's total order (higher score, then lower index), so
 * the ids are the CPU's; weights are computed as the CPU does, sums in
 * index order (the E-wide softmax sum walks the experts with shuffles).
 */
#include <limits.h>

#include "route_common.cuh"
#include "route_warp.h"

namespace {

constexpr int WJ = 8;          /* experts per lane: E <= 32 * WJ */
constexpr int MAX_BLOCKS = 64; /* groups or ranks to mask by */
constexpr int WARPS = 4;       /* tokens per CTA */
constexpr unsigned FULL = 0xffffffffu;

/* (s, i) := the best of the warp's (s, i) by the tie rule, on every lane. */
__device__ inline void warp_best(float &s, int32_t &i) {
    for (int o = 16; o > 0; o >>= 1) {
        float so = __shfl_xor_sync(FULL, s, o);
        int32_t io = __shfl_xor_sync(FULL, i, o);
        if (moep__beats(so, io, s, i)) {
            s = so;
            i = io;
        }
    }
}

/* v of expert e (e the same on every lane): slot e / 32 of lane e % 32. */
__device__ inline float value_of(const float (&v)[WJ], int32_t e) {
    float mine = v[0];
#pragma unroll
    for (int j = 1; j < WJ; j++)
        if (j == (e >> 5)) mine = v[j];
    return __shfl_sync(FULL, mine, e & 31);
}

/* The two largest values of a multiset (the CPU's sum_of_top). */
struct top2 {
    float a, b;
    int n;
};

__device__ inline void top2_add(top2 &t, float v) {
    if (t.n == 0) {
        t.a = v;
        t.n = 1;
    } else if (t.n == 1) {
        if (v > t.a) {
            t.b = t.a;
            t.a = v;
        } else {
            t.b = v;
        }
        t.n = 2;
    } else if (v > t.a) {
        t.b = t.a;
        t.a = v;
    } else if (v > t.b) {
        t.b = v;
    }
}

/*
 * The experts of the `keep` best blocks (groups or ranks) as a block mask:
 * a block's score is its best score (top_n 1) or the sum of its best two
 * (top_n 2); blocks are ranked by the tie rule.
 */
__device__ uint64_t kept_blocks(const float (&sc)[WJ], int32_t E, int32_t n_blocks, int32_t keep,
                                int top_n) {
    const int lane = threadIdx.x & 31;
    const int32_t size = E / n_blocks;
    float score[MAX_BLOCKS];
    for (int32_t b = 0; b < n_blocks; b++) {
        top2 t = {0.f, 0.f, 0};
#pragma unroll
        for (int j = 0; j < WJ; j++) {
            int32_t e = lane + 32 * j;
            if (e < E && e / size == b) top2_add(t, sc[j]);
        }
        for (int o = 16; o > 0; o >>= 1) {
            top2 u = {__shfl_xor_sync(FULL, t.a, o), __shfl_xor_sync(FULL, t.b, o),
                      __shfl_xor_sync(FULL, t.n, o)};
            if (u.n >= 1) top2_add(t, u.a);
            if (u.n >= 2) top2_add(t, u.b);
        }
        score[b] = top_n >= 2 && t.n == 2 ? t.a + t.b : t.a;
    }
    if (keep > n_blocks) keep = n_blocks;
    uint64_t kept = 0;
    for (int32_t r = 0; r < keep; r++) {
        float best = -INFINITY;
        int32_t bi = INT_MAX;
        for (int32_t b = 0; b < n_blocks; b++)
            if (!((kept >> b) & 1) && moep__beats(score[b], b, best, bi)) {
                best = score[b];
                bi = b;
            }
        kept |= 1ull << bi;
    }
    return kept;
}

/* Softmax over the k values x (in order) evaluated at each: the CPU's softmax_at. */
__device__ void softmax_small(const float *x, int32_t k, float *w) {
    float mx = -INFINITY;
    for (int32_t i = 0; i < k; i++) mx = fmaxf(mx, x[i]);
    if (isinf(mx)) {
        int32_t ties = 0;
        for (int32_t i = 0; i < k; i++) ties += x[i] == mx;
        for (int32_t i = 0; i < k; i++) w[i] = x[i] == mx ? 1.0f / (float)ties : 0.0f;
        return;
    }
    double sum = 0;
    for (int32_t i = 0; i < k; i++) sum += moep__expf_rn(x[i] - mx);
    for (int32_t i = 0; i < k; i++) w[i] = (float)(moep__expf_rn(x[i] - mx) / sum);
}

/* Softmax over all E logits evaluated at idx: the CPU's softmax_at(x, NULL, E, ...). */
__device__ void softmax_all(const float (&lg)[WJ], int32_t E, const int32_t *idx, int32_t k,
                            float *w) {
    const int lane = threadIdx.x & 31;
    float mx = -INFINITY;
#pragma unroll
    for (int j = 0; j < WJ; j++)
        if (lane + 32 * j < E) mx = fmaxf(mx, lg[j]);
    for (int o = 16; o > 0; o >>= 1) mx = fmaxf(mx, __shfl_xor_sync(FULL, mx, o));
    if (isinf(mx)) {
        int32_t ties = 0;
#pragma unroll
        for (int j = 0; j < WJ; j++) ties += lane + 32 * j < E && lg[j] == mx;
        for (int o = 16; o > 0; o >>= 1) ties += __shfl_xor_sync(FULL, ties, o);
        for (int32_t i = 0; i < k; i++) w[i] = value_of(lg, idx[i]) == mx ? 1.0f / (float)ties : 0.0f;
        return;
    }
    float ex[WJ];
#pragma unroll
    for (int j = 0; j < WJ; j++) ex[j] = lane + 32 * j < E ? moep__expf_rn(lg[j] - mx) : 0.0f;
    double sum = 0; /* expert order, as on the CPU */
#pragma unroll
    for (int j = 0; j < WJ; j++)
        for (int l = 0; l < 32 && 32 * j + l < E; l++) sum += __shfl_sync(FULL, ex[j], l);
    for (int32_t i = 0; i < k; i++)
        w[i] = (float)(moep__expf_rn(value_of(lg, idx[i]) - mx) / sum);
}

__global__ void __launch_bounds__(WARPS * 32) route_warp_kernel(moep__cuda_route_args_t a) {
    const int lane = threadIdx.x & 31;
    const int64_t t = (int64_t)blockIdx.x * WARPS + (threadIdx.x >> 5);
    if (t >= a.num_tokens) return; /* the whole warp */
    const int32_t E = a.num_experts, k = a.top_k;

    float lg[WJ], sc[WJ];
    bool nan = false;
#pragma unroll
    for (int j = 0; j < WJ; j++) {
        int32_t e = lane + 32 * j;
        lg[j] = e < E ? moep__load_score(a.scores, a.scores_bf16, (size_t)t * E + e) : 0.0f;
        nan |= e < E && isnan(lg[j]);
        sc[j] = lg[j];
        if (a.kind == MOEP__SIGMOID_GROUPED && e < E)
            sc[j] = __fadd_rn(moep__sigmoid(lg[j]), a.bias ? a.bias[e] : 0.0f);
    }
    if (__any_sync(FULL, nan) && a.first_nan != NULL) { /* as load_row in route_kernels.cu */
        for (int32_t i = lane; i < k; i += 32) {
            a.topk_idx[t * k + i] = E;
            a.topk_w[t * k + i] = 0.0f;
        }
        if (lane == 0) atomicMin(a.first_nan, (unsigned long long)t);
        return;
    }

    uint64_t kept = ~0ull;
    int32_t block_size = E;
    if (a.max_ranks_per_token > 0) {
        kept = kept_blocks(sc, E, a.num_ranks, a.max_ranks_per_token, 1);
        block_size = E / a.num_ranks;
    } else if (a.kind == MOEP__SIGMOID_GROUPED && a.n_group > 1) {
        kept = kept_blocks(sc, E, a.n_group, a.topk_group, 2);
        block_size = E / a.n_group;
    }
    bool open[WJ]; /* allowed and not chosen yet */
#pragma unroll
    for (int j = 0; j < WJ; j++) {
        int32_t e = lane + 32 * j;
        open[j] = e < E && ((kept >> (e / block_size)) & 1);
    }

    int32_t idx[MOEP__ROUTE_MAXK];
    float w[MOEP__ROUTE_MAXK];
    int32_t found = 0;
    for (; found < k; found++) { /* best first, as the CPU's top-k */
        float best = -INFINITY;
        int32_t bi = INT_MAX;
#pragma unroll
        for (int j = 0; j < WJ; j++)
            if (open[j] && moep__beats(sc[j], lane + 32 * j, best, bi)) {
                best = sc[j];
                bi = lane + 32 * j;
            }
        warp_best(best, bi);
        if (bi == INT_MAX) break; /* fewer open experts than k: configs rule it out */
        idx[found] = bi;
#pragma unroll
        for (int j = 0; j < WJ; j++)
            if (lane + 32 * j == bi) open[j] = false;
    }

    if (a.kind == MOEP__SOFTMAX_TOPK) {
        softmax_all(lg, E, idx, found, w);
    } else {
        float x[MOEP__ROUTE_MAXK];
        for (int32_t i = 0; i < found; i++) x[i] = value_of(lg, idx[i]);
        if (a.kind == MOEP__TOPK_SOFTMAX) {
            softmax_small(x, found, w);
        } else { /* sigmoid grouped: ids ordered by raw logit, weights from it */
            for (int32_t i = 1; i < found; i++) {
                int32_t ci = idx[i], j = i;
                float cx = x[i];
                for (; j > 0 && moep__beats(cx, ci, x[j - 1], idx[j - 1]); j--) {
                    idx[j] = idx[j - 1];
                    x[j] = x[j - 1];
                }
                idx[j] = ci;
                x[j] = cx;
            }
            for (int32_t i = 0; i < found; i++) w[i] = moep__sigmoid(x[i]);
        }
    }
    moep__finish_weights(w, found, a.renormalize, a.scale);
    for (int32_t i = lane; i < found; i += 32) {
        a.topk_idx[t * k + i] = idx[i];
        a.topk_w[t * k + i] = w[i];
    }
}

} // namespace

bool moep__route_warp_fits(const moep__cuda_route_args_t *a) {
    if (a->kind == MOEP__HASH || a->scores == NULL) return false;
    if (a->num_experts > 32 * WJ || a->top_k > MOEP__ROUTE_MAXK) return false;
    if (a->max_ranks_per_token > 0) return a->num_ranks <= MAX_BLOCKS;
    if (a->kind == MOEP__SIGMOID_GROUPED && a->n_group > 1) return a->n_group <= MAX_BLOCKS;
    return true;
}

cudaError_t moep__route_warp(const moep__cuda_route_args_t *a, cudaStream_t s) {
    unsigned blocks = (unsigned)((a->num_tokens + WARPS - 1) / WARPS);
    route_warp_kernel<<<blocks, WARPS * 32, 0, s>>>(*a);
    return cudaGetLastError();
}
