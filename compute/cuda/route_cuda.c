/*
 * Public GPU routing and layout entry points (api/moep_cuda.h): argument
 * checks, then the kernels of route_kernels.cu / layout_kernels.cu on the
 * caller's stream. The router config is validated by the CPU moep_route on
 * an empty batch, so both paths accept and reject exactly the same configs
 * with the same messages.
 */
#include <cuda_runtime.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_kernels.h"
#include "moep_internal.h"

#define FN "moep_route_cuda"

static moep_status_t cuda_fail(const char *fn, cudaError_t e, const char *what) {
    return moep__fail(MOEP_ERR_CUDA, "%s: %s: %s", fn, what, cudaGetErrorString(e));
}

/* Device tensor check: the host checker on a host-labelled view. */
static moep_status_t check_dev(const char *fn, const char *name, const moep_tensor_t *t, int ndim,
                               int dtype, const int64_t *shape) {
    if (t == NULL) return moep__fail(MOEP_ERR_INVALID_ARG, "%s: %s is NULL", fn, name);
    if (t->device != MOEP_DEVICE_CUDA && moep_tensor_numel(t) > 0)
        return moep__fail(MOEP_ERR_INVALID_ARG, "%s: %s must be a CUDA tensor", fn, name);
    moep_tensor_t v = *t;
    v.device = MOEP_DEVICE_CPU;
    return moep__check_tensor(fn, name, &v, ndim, dtype, shape);
}

/* Validate cfg exactly as moep_route does, on zero tokens. */
static moep_status_t validate_config(const moep_router_config_t *cfg, const moep_tensor_t *scores,
                                     moep_router_config_t *full) {
    moep_router_config_init(full);
    MOEP_TRY(moep__load_versioned(FN, full, sizeof *full, cfg));
    float s0 = 0;
    int32_t i0 = 0;
    float w0 = 0;
    int64_t id0 = 0;
    moep_tensor_t sc = moep_tensor_2d(&s0, scores ? scores->dtype : MOEP_DTYPE_F32, 0, full->num_experts);
    moep_tensor_t ids = moep_tensor_1d(&id0, MOEP_DTYPE_I64, 0);
    moep_tensor_t ti = moep_tensor_2d(&i0, MOEP_DTYPE_I32, 0, full->top_k);
    moep_tensor_t tw = moep_tensor_2d(&w0, MOEP_DTYPE_F32, 0, full->top_k);
    return moep_route(cfg, scores || full->kind != MOEP_ROUTE_HASH ? &sc : NULL, &ids, &ti, &tw);
}

static moep_status_t find_nan(const moep_tensor_t *scores, int64_t T, int32_t E, cudaStream_t s) {
    int64_t *d = NULL, first = T;
    int64_t *h = NULL;
    cudaError_t e = cudaMallocAsync((void **)&d, sizeof *d, s);
    if (e == cudaSuccess) e = cudaMallocHost((void **)&h, sizeof *h);
    if (e == cudaSuccess) {
        *h = T;
        e = cudaMemcpyAsync(d, h, sizeof *d, cudaMemcpyHostToDevice, s);
    }
    if (e == cudaSuccess)
        e = (cudaError_t)moep__cuda_find_nan(scores->data, scores->dtype == MOEP_DTYPE_BF16, T, E, d,
                                             (moep_stream_t)s);
    if (e == cudaSuccess) e = cudaMemcpyAsync(h, d, sizeof *d, cudaMemcpyDeviceToHost, s);
    if (e == cudaSuccess) e = cudaStreamSynchronize(s);
    if (e == cudaSuccess) first = *h;
    if (d != NULL) cudaFreeAsync(d, s);
    if (h != NULL) cudaFreeHost(h);
    if (e != cudaSuccess) return cuda_fail(FN, e, "NaN scan");
    if (first < T)
        return moep__fail(MOEP_ERR_NUMERIC, FN ": scores of token %lld hold a NaN", (long long)first);
    return MOEP_OK;
}

/* first_nan NULL: check for NaN with a host wait first (moep_route_cuda);
 * else flag NaN rows in the kernel (moep_route_cuda_async). */
static moep_status_t route(const moep_router_config_t *cfg, const moep_tensor_t *scores,
                           const moep_tensor_t *token_ids, moep_tensor_t *topk_idx,
                           moep_tensor_t *topk_weights, int64_t *first_nan, moep_stream_t stream) {
    MOEP_CHECK_ARG(FN, cfg);
    moep_router_config_t c;
    MOEP_TRY(validate_config(cfg, scores, &c));
    const int32_t E = c.num_experts, k = c.top_k;
    const int hashed = c.kind == MOEP_ROUTE_HASH;
    MOEP_TRY(check_dev(FN, "topk_idx", topk_idx, 2, MOEP_DTYPE_I32, (int64_t[]){MOEP_ANY, k}));
    const int64_t T = topk_idx->shape[0];
    MOEP_TRY(check_dev(FN, "topk_weights", topk_weights, 2, MOEP_DTYPE_F32, (int64_t[]){T, k}));
    if (k > 64) return moep__fail(MOEP_ERR_UNSUPPORTED, FN ": top_k %d > 64 on the GPU", k);
    if (scores != NULL || !hashed) {
        MOEP_TRY(check_dev(FN, "scores", scores, 2, MOEP_ANY, (int64_t[]){T, E}));
        if (scores->dtype != MOEP_DTYPE_F32 && scores->dtype != MOEP_DTYPE_BF16)
            return moep__fail(MOEP_ERR_SHAPE, FN ": scores dtype %s, expected f32 or bf16",
                              moep_dtype_name(scores->dtype));
    }
    if (hashed) MOEP_TRY(check_dev(FN, "token_ids", token_ids, 1, MOEP_DTYPE_I64, (int64_t[]){T}));
    cudaStream_t s = (cudaStream_t)stream;
    if (first_nan != NULL) {
        cudaError_t e = cudaMemsetAsync(first_nan, 0xff, sizeof *first_nan, s); /* -1: none */
        if (e != cudaSuccess) return cuda_fail(FN, e, "reset of first_nan");
    }
    if (T == 0) return MOEP_OK;
    if (scores != NULL && first_nan == NULL) MOEP_TRY(find_nan(scores, T, E, s));
    moep__cuda_route_args_t a = {
        .kind = c.kind, .num_experts = E, .top_k = k, .renormalize = c.renormalize,
        .n_group = c.n_group, .topk_group = c.topk_group, .scale = c.routed_scaling_factor,
        .num_ranks = c.num_ranks, .max_ranks_per_token = c.max_ranks_per_token,
        .hash_seed = c.hash_seed, .layer_id = c.layer_id,
        .scores = scores ? scores->data : NULL,
        .scores_bf16 = scores ? scores->dtype == MOEP_DTYPE_BF16 : 0,
        .token_ids = hashed ? token_ids->data : NULL, .num_tokens = T,
        .topk_idx = topk_idx->data, .topk_w = topk_weights->data,
        .first_nan = (unsigned long long *)first_nan,
    };
    float *bias = NULL;
    cudaError_t e = cudaSuccess;
    if (c.kind == MOEP_ROUTE_SIGMOID_GROUPED && c.expert_bias != NULL) {
        e = cudaMallocAsync((void **)&bias, (size_t)E * sizeof(float), s);
        if (e == cudaSuccess)
            e = cudaMemcpyAsync(bias, c.expert_bias, (size_t)E * sizeof(float), cudaMemcpyHostToDevice, s);
        a.bias = bias;
    }
    if (e == cudaSuccess) e = (cudaError_t)moep__cuda_route(&a, stream);
    if (bias != NULL) cudaFreeAsync(bias, s);
    return e == cudaSuccess ? MOEP_OK : cuda_fail(FN, e, "routing kernel");
}

moep_status_t moep_route_cuda(const moep_router_config_t *cfg, const moep_tensor_t *scores,
                              const moep_tensor_t *token_ids, moep_tensor_t *topk_idx,
                              moep_tensor_t *topk_weights, moep_stream_t stream) {
    return route(cfg, scores, token_ids, topk_idx, topk_weights, NULL, stream);
}

moep_status_t moep_route_cuda_async(const moep_router_config_t *cfg, const moep_tensor_t *scores,
                                    const moep_tensor_t *token_ids, moep_tensor_t *topk_idx,
                                    moep_tensor_t *topk_weights, int64_t *first_nan,
                                    moep_stream_t stream) {
    if (first_nan == NULL)
        return moep__fail(MOEP_ERR_INVALID_ARG, "moep_route_cuda_async: first_nan is NULL");
    return route(cfg, scores, token_ids, topk_idx, topk_weights, first_nan, stream);
}

moep_status_t moep_layout_counts_cuda(const moep_tensor_t *topk_idx, int32_t E, int32_t R,
                                      const int32_t *expert_rank, moep_tensor_t *tokens_per_rank,
                                      moep_tensor_t *tokens_per_expert,
                                      moep_tensor_t *token_rank_slot, int32_t *bad_ids,
                                      moep_stream_t stream) {
    static const char *fn = "moep_layout_counts_cuda";
    if (E <= 0 || R <= 0)
        return moep__fail(MOEP_ERR_INVALID_ARG, "%s: num_experts %d / num_ranks %d must be > 0", fn, E, R);
    if (expert_rank == NULL && E % R != 0)
        return moep__fail(MOEP_ERR_INVALID_ARG, "%s: num_experts %d not a multiple of %d ranks", fn, E, R);
    for (int32_t e = 0; expert_rank != NULL && e < E; e++)
        if (expert_rank[e] < 0 || expert_rank[e] >= R)
            return moep__fail(MOEP_ERR_OUT_OF_RANGE, "%s: expert_rank[%d] = %d outside [0, %d)", fn,
                              e, expert_rank[e], R);
    MOEP_TRY(check_dev(fn, "topk_idx", topk_idx, 2, MOEP_DTYPE_I32, NULL));
    int64_t T = topk_idx->shape[0];
    int32_t k = (int32_t)topk_idx->shape[1];
    MOEP_TRY(check_dev(fn, "tokens_per_rank", tokens_per_rank, 1, MOEP_DTYPE_I64, (int64_t[]){R}));
    MOEP_TRY(check_dev(fn, "tokens_per_expert", tokens_per_expert, 1, MOEP_DTYPE_I64, (int64_t[]){E}));
    if (token_rank_slot != NULL)
        MOEP_TRY(check_dev(fn, "token_rank_slot", token_rank_slot, 2, MOEP_DTYPE_I32, (int64_t[]){T, R}));
    cudaStream_t s = (cudaStream_t)stream;
    int32_t *map = NULL, *bad = NULL;
    uint8_t *flags = NULL;
    void *scratch = NULL;
    size_t scratch_bytes = moep__cuda_layout_count_scratch(T, E, R);
    cudaError_t e = cudaMallocAsync((void **)&map, (size_t)E * sizeof(int32_t), s);
    if (e == cudaSuccess) e = cudaMallocAsync((void **)&bad, sizeof(int32_t), s);
    if (e == cudaSuccess) e = cudaMallocAsync((void **)&flags, (size_t)(T * R > 0 ? T * R : 1), s);
    if (e == cudaSuccess) e = cudaMallocAsync(&scratch, scratch_bytes, s);
    if (e == cudaSuccess) e = cudaMemsetAsync(scratch, 0, 4, s); /* the count kernel's ticket */
    int32_t *host_map = NULL;
    /* pageable source: cudaMemcpyAsync returns once it is staged, no sync */
    if (e == cudaSuccess && (host_map = moep__calloc(fn, (size_t)E, sizeof(int32_t))) == NULL)
        e = cudaErrorMemoryAllocation;
    if (e == cudaSuccess) {
        for (int32_t x = 0; x < E; x++) host_map[x] = expert_rank ? expert_rank[x] : x / (E / R);
        e = cudaMemcpyAsync(map, host_map, (size_t)E * sizeof(int32_t), cudaMemcpyHostToDevice, s);
    }
    if (e == cudaSuccess)
        e = (cudaError_t)moep__cuda_layout_count(topk_idx->data, T, k, E, R, map, flags,
                                                 tokens_per_rank->data, tokens_per_expert->data,
                                                 bad, scratch, NULL, stream);
    if (e == cudaSuccess && token_rank_slot != NULL)
        e = (cudaError_t)moep__cuda_layout_slots(flags, T, R, token_rank_slot->data, NULL, stream);
    if (e == cudaSuccess && bad_ids != NULL)
        e = cudaMemcpyAsync(bad_ids, bad, sizeof(int32_t), cudaMemcpyDeviceToDevice, s);
    free(host_map);
    if (map) cudaFreeAsync(map, s);
    if (bad) cudaFreeAsync(bad, s);
    if (flags) cudaFreeAsync(flags, s);
    if (scratch) cudaFreeAsync(scratch, s);
    return e == cudaSuccess ? MOEP_OK : cuda_fail(fn, e, "layout kernels");
}
