/*
 * moep routing: expert selection per token, aux-loss-free balancing, load
 * statistics and the dispatch layout shared by dispatch and combine.
 * Pure functions on host memory; no communicator needed. Included by moep.h.
 */
#ifndef MOEP_ROUTING_H
#define MOEP_ROUTING_H

#include "moep_core.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum moep_route_kind {
    /* softmax over all experts, then top-k; `renormalize` rescales the k
     * weights to sum to 1 (Mixtral, Qwen3-MoE norm_topk_prob). */
    MOEP_ROUTE_SOFTMAX_TOPK = 0,
    /* top-k of the logits, then softmax over those k (gpt-oss). */
    MOEP_ROUTE_TOPK_SOFTMAX = 1,
    /* DeepSeek-V3: sigmoid scores; `expert_bias` added for selection only;
     * group-limited top-k (keep `topk_group` of `n_group` groups ranked by the
     * sum of their top-2 biased scores); weights are the unbiased scores of
     * the chosen experts, normalised to sum 1 (if `renormalize`), times
     * `routed_scaling_factor`. */
    MOEP_ROUTE_SIGMOID_GROUPED = 2,
    /* Hash MoE (DeepSeek-V4 style): k distinct experts chosen by a
     * deterministic hash of (token id, layer id, seed). No router GEMM: the
     * scores tensor is optional. Weights: if scores are given, the softmax of
     * the scores (over all E) at the chosen experts, renormalised over the k
     * if `renormalize`; otherwise 1/k. Both times `routed_scaling_factor`. */
    MOEP_ROUTE_HASH = 3,
    MOEP_ROUTE_KIND_COUNT_
} moep_route_kind_t;

/* Name ("softmax_topk", "topk_softmax", "sigmoid_grouped", "hash"); "?" if unknown. */
MOEP_API const char *moep_route_kind_name(moep_route_kind_t k);
/* Parse a name as above (case-insensitive). MOEP_ERR_INVALID_ARG if unknown. */
MOEP_API moep_status_t moep_route_kind_parse(const char *name, moep_route_kind_t *kind_p);

/*
 * Router configuration. Versioned: always start from moep_router_config_init(),
 * which sets struct_size and the defaults; fields may be appended in later
 * versions and the library only reads the first struct_size bytes.
 */
typedef struct moep_router_config {
    uint32_t struct_size;
    moep_route_kind_t kind;      /* default MOEP_ROUTE_SOFTMAX_TOPK */
    int32_t num_experts;         /* E, > 0 (required) */
    int32_t top_k;               /* k, 1..E (required) */
    int32_t renormalize;         /* default 1 */
    int32_t n_group;             /* SIGMOID_GROUPED: groups, divides E; default 1 */
    int32_t topk_group;          /* SIGMOID_GROUPED: groups kept, 1..n_group, and
                                  * topk_group * (E / n_group) >= k; default 1 */
    float routed_scaling_factor; /* finite; multiplies the weights of every kind; default 1.0 */
    const float *expert_bias;    /* [E] finite selection-only bias (SIGMOID_GROUPED only,
                                  * ignored by the other kinds); NULL = 0 */
    /* Device-limited routing (DeepSeek-V2): experts are split contiguously
     * over `num_ranks` ranks (E % num_ranks == 0); a token's experts come
     * from at most `max_ranks_per_token` ranks, the ranks with the highest
     * per-rank maximum (biased) score. 0 = unlimited (default). Applies to
     * every score-based kind (HASH: MOEP_ERR_INVALID_ARG). With
     * SIGMOID_GROUPED it needs n_group == 1 (MOEP_ERR_UNSUPPORTED otherwise:
     * groups and rank limits together may leave fewer than k experts; limit
     * through n_group / topk_group instead, as DeepSeek-V3 does). */
    int32_t num_ranks;           /* default 1 */
    int32_t max_ranks_per_token; /* default 0 */
    /* HASH */
    uint64_t hash_seed;          /* default 0 */
    int32_t layer_id;            /* default 0 */
} moep_router_config_t;

/* Fill `cfg` with struct_size and defaults. Returns MOEP_ERR_INVALID_ARG if cfg is NULL. */
MOEP_API moep_status_t moep_router_config_init(moep_router_config_t *cfg);

/*
 * Route T tokens.
 *   scores       [T, E] f32 or bf16 router logits (required except for HASH).
 *   token_ids    [T] i64 (HASH only, required there; ignored otherwise).
 *   topk_idx     [T, k] i32, out: expert ids, distinct per token, ordered by
 *                descending weight (HASH: draw order of the hash).
 *   topk_weights [T, k] f32, out.
 * Equal scores go to the lower expert id (also for ranks and groups), so the
 * result is deterministic; it does not depend on T or the thread count.
 * NaN in scores: MOEP_ERR_NUMERIC naming the token (a NaN logit is a bug
 * upstream; routing on it silently would hide it). +-Inf logits are allowed:
 * softmax weights follow the limit (+Inf entries share the mass equally; a
 * row of only -Inf is uniform). On any error the outputs are left untouched.
 * Errors: MOEP_ERR_INVALID_ARG (NULLs, k > E, k <= 0, n_group not dividing E,
 * topk_group out of range, bad device-limited setup: num_ranks < 1 or not
 * dividing E, max_ranks_per_token < 0 or * (E / num_ranks) < k),
 * MOEP_ERR_SHAPE (dtype/shape mismatch), MOEP_ERR_NUMERIC (NaN score,
 * non-finite expert_bias), MOEP_ERR_UNSUPPORTED (see max_ranks_per_token).
 */
MOEP_API moep_status_t moep_route(const moep_router_config_t *cfg, const moep_tensor_t *scores,
                                  const moep_tensor_t *token_ids, moep_tensor_t *topk_idx,
                                  moep_tensor_t *topk_weights);

/*
 * Aux-loss-free balancing (DeepSeek-V3): bias[e] += gamma * sign(mean - load[e]),
 * where mean is the average of `expert_counts` over the E experts.
 * Errors: MOEP_ERR_INVALID_ARG on NULL, E <= 0, gamma not finite.
 */
MOEP_API moep_status_t moep_bias_update(float *bias, const int64_t *expert_counts,
                                        int32_t num_experts, float gamma);

typedef struct moep_load_stats {
    int64_t total;    /* routed (token, expert) pairs, masked slots excluded */
    int64_t max;      /* max over experts */
    int64_t min;      /* min over experts */
    double mean;      /* total / E */
    double imbalance; /* max / mean (1.0 = perfect; 0 if total == 0) */
    double cv;        /* population std. deviation / mean of the counts (0 if total == 0) */
} moep_load_stats_t;

/*
 * Per-expert counts of topk_idx [T, k] i32 (-1 = masked slot, skipped) and
 * their statistics. counts [E] out (may be NULL), stats out (may be NULL).
 * Errors: MOEP_ERR_INVALID_ARG, MOEP_ERR_SHAPE, MOEP_ERR_OUT_OF_RANGE (id >= E or < -1).
 */
MOEP_API moep_status_t moep_load_stats(const moep_tensor_t *topk_idx, int32_t num_experts,
                                       int64_t *counts, moep_load_stats_t *stats);

/*
 * Dispatch layout: everything dispatch and combine need to move T tokens of
 * one rank to the R ranks that hold their experts, computed once from
 * topk_idx. Owned by the library, released by moep_layout_destroy().
 *
 * A "send slot" is one (token, destination rank) pair: a token goes once to
 * every rank that holds at least one of its experts, however many of its k
 * experts live there. Slots are grouped by destination rank, tokens in
 * ascending order within a rank.
 */
typedef struct moep_layout {
    int32_t num_tokens;  /* T */
    int32_t top_k;       /* k */
    int32_t num_experts; /* E */
    int32_t num_ranks;   /* R */
    int64_t num_slots;   /* sum(tokens_per_rank) */
    int64_t *tokens_per_rank;   /* [R] tokens sent to each rank (each token once per rank) */
    int64_t *tokens_per_expert; /* [E] (token, expert) pairs per expert */
    int64_t *rank_offset;       /* [R+1] prefix sum of tokens_per_rank: slot ranges */
    int32_t *slot_token;        /* [num_slots] slot -> source token */
    int32_t *token_rank_slot;   /* [T, R] (token, rank) -> slot, -1 if not sent there */
    const int32_t *expert_rank; /* [E] expert -> rank map used (owned by the layout) */
} moep_layout_t;

/*
 * Compute the layout.
 *   topk_idx    [T, k] i32, -1 = masked slot (ignored); T may be 0.
 *   expert_rank [E] i32 expert -> owning rank, or NULL for contiguous blocks
 *               (expert e on rank e / (E / R); E % R must be 0).
 * Errors: MOEP_ERR_INVALID_ARG, MOEP_ERR_SHAPE, MOEP_ERR_OUT_OF_RANGE (an id
 * >= E or < -1, or an expert_rank entry outside [0, R)), MOEP_ERR_NO_MEMORY.
 */
MOEP_API moep_status_t moep_layout_create(const moep_tensor_t *topk_idx, int32_t num_experts,
                                          int32_t num_ranks, const int32_t *expert_rank,
                                          moep_layout_t **layout_p);
/* Release a layout; NULL is a no-op. */
MOEP_API void moep_layout_destroy(moep_layout_t *layout);

#ifdef __cplusplus
}
#endif
#endif /* MOEP_ROUTING_H */
