/* Dispatch layout: which tokens go to which rank, and in which send slot. */
#include <stdlib.h>
#include <string.h>

#include "routing_internal.h"

#define FN "moep_layout_create"

void moep_layout_destroy(moep_layout_t *layout) {
    if (layout == NULL) return;
    free(layout->tokens_per_rank);
    free(layout->tokens_per_expert);
    free(layout->rank_offset);
    free(layout->slot_token);
    free(layout->token_rank_slot);
    free((void *)layout->expert_rank);
    free(layout);
}

static moep_status_t check_args(const moep_tensor_t *topk_idx, int32_t E, int32_t R,
                                const int32_t *expert_rank) {
    MOEP_TRY(moep__check_tensor(FN, "topk_idx", topk_idx, 2, MOEP_DTYPE_I32, NULL));
    if (topk_idx->shape[0] > INT32_MAX || topk_idx->shape[1] > INT32_MAX)
        return moep__fail(MOEP_ERR_SHAPE, FN ": topk_idx [%lld, %lld] exceeds int32 sizes",
                          (long long)topk_idx->shape[0], (long long)topk_idx->shape[1]);
    if (E <= 0) return moep__fail(MOEP_ERR_INVALID_ARG, FN ": num_experts %d <= 0", E);
    if (R <= 0) return moep__fail(MOEP_ERR_INVALID_ARG, FN ": num_ranks %d <= 0", R);
    if (expert_rank == NULL && E % R != 0)
        return moep__fail(MOEP_ERR_INVALID_ARG,
                          FN ": num_ranks %d does not divide num_experts %d (pass expert_rank)",
                          R, E);
    for (int32_t e = 0; expert_rank != NULL && e < E; e++) {
        if (expert_rank[e] < 0 || expert_rank[e] >= R)
            return moep__fail(MOEP_ERR_OUT_OF_RANGE, FN ": expert_rank[%d] = %d out of range [0, %d)",
                              e, expert_rank[e], R);
    }
    const int32_t *ids = topk_idx->data;
    const int64_t k = topk_idx->shape[1], n = moep_tensor_numel(topk_idx);
    for (int64_t i = 0; i < n; i++) {
        if (ids[i] < -1 || ids[i] >= E)
            return moep__fail(MOEP_ERR_OUT_OF_RANGE,
                              FN ": topk_idx[%lld, %lld] = %d out of range [-1, %d)",
                              (long long)(i / k), (long long)(i % k), ids[i], E);
    }
    return MOEP_OK;
}

static moep_layout_t *layout_alloc(int32_t T, int32_t E, int32_t R) {
    moep_layout_t *l = moep__calloc(FN, 1, sizeof *l);
    if (l == NULL) return NULL;
    l->tokens_per_rank = moep__calloc(FN, (size_t)R, sizeof(int64_t));
    l->tokens_per_expert = moep__calloc(FN, (size_t)E, sizeof(int64_t));
    l->rank_offset = moep__calloc(FN, (size_t)R + 1, sizeof(int64_t));
    l->token_rank_slot = moep__calloc(FN, (size_t)T * (size_t)R, sizeof(int32_t));
    l->expert_rank = moep__calloc(FN, (size_t)E, sizeof(int32_t));
    if (!l->tokens_per_rank || !l->tokens_per_expert || !l->rank_offset || !l->token_rank_slot ||
        !l->expert_rank) {
        moep_layout_destroy(l);
        return NULL;
    }
    return l;
}

/* Mark token_rank_slot[t, r] = 0 for every rank t goes to (-1 elsewhere) and
 * count tokens per rank and per expert. */
static void count_sends(moep_layout_t *l, const int32_t *ids) {
    const int32_t T = l->num_tokens, k = l->top_k, R = l->num_ranks;
    for (int64_t i = 0; i < (int64_t)T * R; i++) l->token_rank_slot[i] = -1;
    for (int32_t t = 0; t < T; t++) {
        int32_t *sent = l->token_rank_slot + (int64_t)t * R;
        for (int32_t j = 0; j < k; j++) {
            int32_t e = ids[(int64_t)t * k + j];
            if (e < 0) continue;
            l->tokens_per_expert[e]++;
            int32_t r = l->expert_rank[e];
            if (sent[r] < 0) {
                sent[r] = 0;
                l->tokens_per_rank[r]++;
            }
        }
    }
}

/* Give each (token, rank) pair its slot: rank-major, ascending tokens. */
static void assign_slots(moep_layout_t *l, int64_t *cursor) {
    const int32_t T = l->num_tokens, R = l->num_ranks;
    for (int32_t r = 0; r < R; r++) l->rank_offset[r + 1] = l->rank_offset[r] + l->tokens_per_rank[r];
    l->num_slots = l->rank_offset[R];
    memcpy(cursor, l->rank_offset, (size_t)R * sizeof *cursor);
    for (int32_t t = 0; t < T; t++) {
        int32_t *slot = l->token_rank_slot + (int64_t)t * R;
        for (int32_t r = 0; r < R; r++) {
            if (slot[r] < 0) continue;
            slot[r] = (int32_t)cursor[r];
            l->slot_token[cursor[r]++] = t;
        }
    }
}

moep_status_t moep_layout_create(const moep_tensor_t *topk_idx, int32_t num_experts,
                                 int32_t num_ranks, const int32_t *expert_rank,
                                 moep_layout_t **layout_p) {
    MOEP_CHECK_ARG(FN, layout_p);
    *layout_p = NULL;
    MOEP_TRY(check_args(topk_idx, num_experts, num_ranks, expert_rank));
    const int32_t T = (int32_t)topk_idx->shape[0], R = num_ranks;
    moep_layout_t *l = layout_alloc(T, num_experts, R);
    int64_t *cursor = moep__calloc(FN, (size_t)R, sizeof *cursor);
    if (l == NULL || cursor == NULL) {
        moep_layout_destroy(l);
        free(cursor);
        return MOEP_ERR_NO_MEMORY;
    }
    l->num_tokens = T;
    l->top_k = (int32_t)topk_idx->shape[1];
    l->num_experts = num_experts;
    l->num_ranks = R;
    int32_t *map = (int32_t *)l->expert_rank;
    for (int32_t e = 0; e < num_experts; e++)
        map[e] = expert_rank ? expert_rank[e] : e / (num_experts / R);

    count_sends(l, topk_idx->data);
    /* Slot count is only known now: at most T * R, at least one entry. */
    int64_t slots = 0;
    for (int32_t r = 0; r < R; r++) slots += l->tokens_per_rank[r];
    l->slot_token = moep__calloc(FN, (size_t)slots, sizeof(int32_t));
    if (l->slot_token == NULL) {
        moep_layout_destroy(l);
        free(cursor);
        return MOEP_ERR_NO_MEMORY;
    }
    assign_slots(l, cursor);
    free(cursor);
    *layout_p = l;
    return MOEP_OK;
}
