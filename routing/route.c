/* moep_route: argument checks, the NaN scan, and the per-token pipeline
 * (scores -> selection scores -> rank/group mask -> top-k -> weights),
 * parallel over tokens. */
#include <math.h>
#include <omp.h>
#include <stdlib.h>

#include "router_config.h"

#define FN "moep_route"

/* Below this many score elements the OpenMP fork costs more than it saves. */
#define PARALLEL_MIN_ELEMS (1 << 15)

typedef struct route_job {
    moep_router_config_t cfg;
    const void *scores; /* [T, E] f32 or bf16, NULL for HASH without scores */
    moep_dtype_t dtype;
    const int64_t *token_ids;
    int32_t *idx;   /* [T, k] */
    float *weights; /* [T, k] */
} route_job_t;

/* One thread's working rows, all of length E (k, groups and ranks are <= E). */
typedef struct route_scratch {
    float *logit;
    float *sel;
    float *block_score;
    int32_t *block_idx;
    int32_t *heap;
    int32_t *perm;
    uint8_t *allowed;
} route_scratch_t;

static int is_nan_at(const void *scores, moep_dtype_t dtype, int64_t i) {
    if (dtype == MOEP_DTYPE_F32) return isnan(((const float *)scores)[i]);
    return (((const uint16_t *)scores)[i] & 0x7fffu) > 0x7f80u;
}

/* Scan the scores before writing anything: on NaN the outputs stay untouched
 * and the error names the first bad token (and expert). */
static moep_status_t check_no_nan(const void *scores, moep_dtype_t dtype, int64_t T, int32_t E) {
    int64_t first_bad = T;
#pragma omp parallel for reduction(min : first_bad) if (T * E >= PARALLEL_MIN_ELEMS)
    for (int64_t t = 0; t < T; t++) {
        for (int32_t e = 0; e < E; e++) {
            if (is_nan_at(scores, dtype, t * E + e)) {
                if (t < first_bad) first_bad = t;
                break;
            }
        }
    }
    if (first_bad == T) return MOEP_OK;
    int32_t e = 0;
    while (!is_nan_at(scores, dtype, first_bad * E + e)) e++;
    return moep__fail(MOEP_ERR_NUMERIC, FN ": scores[%lld, %d] of token %lld is NaN",
                      (long long)first_bad, e, (long long)first_bad);
}

static void route_scored_token(const route_job_t *job, int64_t t, route_scratch_t *ws) {
    const moep_router_config_t *c = &job->cfg;
    const int32_t E = c->num_experts, k = c->top_k;
    int32_t *idx = job->idx + t * k;
    float *w = job->weights + t * k;
    size_t elem = moep__dtype_size(job->dtype);
    moep__row_to_f32((const char *)job->scores + (size_t)t * (size_t)E * elem, job->dtype, E,
                     ws->logit);

    /* Softmax is monotone, so the softmax kinds select on the logits. */
    const float *sel = ws->logit;
    if (c->kind == MOEP_ROUTE_SIGMOID_GROUPED) {
        moep__sigmoid_biased(ws->logit, c->expert_bias, E, ws->sel);
        sel = ws->sel;
    }
    const uint8_t *allowed = NULL;
    if (c->max_ranks_per_token > 0) {
        moep__block_mask(sel, E, c->num_ranks, c->max_ranks_per_token, 1, ws->block_score,
                         ws->block_idx, ws->heap, ws->allowed);
        allowed = ws->allowed;
    } else if (c->kind == MOEP_ROUTE_SIGMOID_GROUPED && c->n_group > 1) {
        moep__block_mask(sel, E, c->n_group, c->topk_group, 2, ws->block_score, ws->block_idx,
                         ws->heap, ws->allowed);
        allowed = ws->allowed;
    }
    moep__topk(sel, allowed, E, k, ws->heap, idx);

    switch (c->kind) {
    case MOEP_ROUTE_SOFTMAX_TOPK: /* normalised over all E, masked or not (DeepSeek-V2) */
        moep__softmax_at(ws->logit, NULL, E, idx, k, w);
        break;
    case MOEP_ROUTE_TOPK_SOFTMAX:
        moep__softmax_at(ws->logit, idx, k, idx, k, w);
        break;
    default: /* SIGMOID_GROUPED: chosen by biased score, reported by weight */
        moep__sort_by_score(ws->logit, idx, k);
        moep__sigmoid_at(ws->logit, idx, k, w);
        break;
    }
    moep__finish_weights(w, k, c->renormalize, c->routed_scaling_factor);
}

static void route_hashed_token(const route_job_t *job, int64_t t, route_scratch_t *ws) {
    const moep_router_config_t *c = &job->cfg;
    const int32_t E = c->num_experts, k = c->top_k;
    int32_t *idx = job->idx + t * k;
    float *w = job->weights + t * k;
    moep__hash_experts(job->token_ids[t], c->layer_id, c->hash_seed, E, k, ws->perm, idx);
    if (job->scores != NULL) {
        size_t elem = moep__dtype_size(job->dtype);
        moep__row_to_f32((const char *)job->scores + (size_t)t * (size_t)E * elem, job->dtype, E,
                         ws->logit);
        moep__softmax_at(ws->logit, NULL, E, idx, k, w);
        moep__finish_weights(w, k, c->renormalize, c->routed_scaling_factor);
    } else {
        for (int32_t i = 0; i < k; i++) w[i] = 1.0f / (float)k;
        moep__finish_weights(w, k, 0, c->routed_scaling_factor);
    }
}

/* Carve one thread's rows out of the block: six 4-byte rows and one byte row,
 * each E entries long (E a multiple of 4 keeps every row 4-byte aligned). */
static route_scratch_t scratch_at(void *block, int32_t E, int thread) {
    char *p = (char *)block + (size_t)thread * (size_t)E * (6 * sizeof(float) + 1);
    route_scratch_t ws;
    ws.logit = (float *)p;
    ws.sel = ws.logit + E;
    ws.block_score = ws.sel + E;
    ws.block_idx = (int32_t *)(ws.block_score + E);
    ws.heap = ws.block_idx + E;
    ws.perm = ws.heap + E;
    ws.allowed = (uint8_t *)(ws.perm + E);
    return ws;
}

static moep_status_t run_job(const route_job_t *job, int64_t T) {
    const int32_t E = job->cfg.num_experts;
    int threads = T * E >= PARALLEL_MIN_ELEMS ? omp_get_max_threads() : 1;
    if (threads > T) threads = T > 0 ? (int)T : 1;
    int32_t E4 = (E + 3) / 4 * 4;
    void *block = moep__calloc(FN, (size_t)threads, (size_t)E4 * (6 * sizeof(float) + 1));
    if (block == NULL) return MOEP_ERR_NO_MEMORY;
    const int hashed = job->cfg.kind == MOEP_ROUTE_HASH;
#pragma omp parallel num_threads(threads) if (threads > 1)
    {
        route_scratch_t ws = scratch_at(block, E4, omp_get_thread_num());
#pragma omp for schedule(static)
        for (int64_t t = 0; t < T; t++) {
            if (hashed)
                route_hashed_token(job, t, &ws);
            else
                route_scored_token(job, t, &ws);
        }
    }
    free(block);
    return MOEP_OK;
}

moep_status_t moep_route(const moep_router_config_t *cfg, const moep_tensor_t *scores,
                         const moep_tensor_t *token_ids, moep_tensor_t *topk_idx,
                         moep_tensor_t *topk_weights) {
    MOEP_CHECK_ARG(FN, cfg);
    route_job_t job = {0};
    MOEP_TRY(moep__router_config_load(cfg, &job.cfg));
    const int32_t E = job.cfg.num_experts, k = job.cfg.top_k;
    const int hashed = job.cfg.kind == MOEP_ROUTE_HASH;

    MOEP_TRY(moep__check_tensor(FN, "topk_idx", topk_idx, 2, MOEP_DTYPE_I32,
                                (int64_t[]){MOEP_ANY, k}));
    const int64_t T = topk_idx->shape[0];
    MOEP_TRY(moep__check_tensor(FN, "topk_weights", topk_weights, 2, MOEP_DTYPE_F32,
                                (int64_t[]){T, k}));
    if (scores != NULL || !hashed) {
        MOEP_TRY(moep__check_tensor(FN, "scores", scores, 2, MOEP_ANY, (int64_t[]){T, E}));
        if (scores->dtype != MOEP_DTYPE_F32 && scores->dtype != MOEP_DTYPE_BF16)
            return moep__fail(MOEP_ERR_SHAPE, FN ": scores dtype %s, expected f32 or bf16",
                              moep_dtype_name(scores->dtype));
        MOEP_TRY(check_no_nan(scores->data, scores->dtype, T, E));
        job.scores = scores->data;
        job.dtype = scores->dtype;
    }
    if (hashed) {
        MOEP_TRY(moep__check_tensor(FN, "token_ids", token_ids, 1, MOEP_DTYPE_I64,
                                    (int64_t[]){T}));
        job.token_ids = token_ids->data;
    }
    job.idx = topk_idx->data;
    job.weights = topk_weights->data;
    return run_job(&job, T);
}
