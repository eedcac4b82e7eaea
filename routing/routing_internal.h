/*
 * Building blocks shared by the routing files (not part of the public API).
 * Every helper works on one token's row of E scores held as f32; the caller
 * (route.c) owns scratch memory and parallelism.
 *
 * Ordering rule used everywhere: a higher score wins; equal scores go to the
 * lower index (expert, group or rank id), so results are deterministic.
 */
#ifndef MOEP_ROUTING_INTERNAL_H
#define MOEP_ROUTING_INTERNAL_H

#include <stdint.h>

#include "moep_internal.h"

/*
 * The k best of score[0..n) among entries with allowed[i] != 0 (all when
 * allowed is NULL), best first, into idx[0..k). At least k entries must be
 * allowed. O(n log k) with a k-entry heap; `heap` is scratch of k ints.
 */
void moep__topk(const float *score, const uint8_t *allowed, int32_t n, int32_t k, int32_t *heap,
                int32_t *idx);

/* Reorder idx[0..k) best first by score[idx[i]] (ties: lower index first). */
void moep__sort_by_score(const float *score, int32_t *idx, int32_t k);

/*
 * Softmax of x over the set `norm[0..n)` (all of x[0..n) when norm is NULL),
 * evaluated at the entries at[0..k), into w[0..k). Infinite logits follow the
 * limit: with +Inf entries they share the mass equally; when every entry is
 * -Inf the distribution is uniform.
 */
void moep__softmax_at(const float *x, const int32_t *norm, int32_t n, const int32_t *at, int32_t k,
                      float *w);

/* Divide w by its sum when `renormalize` (left as is if the sum is 0, as
 * DeepSeek's eps does), then multiply by `scale`. */
void moep__finish_weights(float *w, int32_t k, int32_t renormalize, float scale);

/*
 * Restrict selection to the best `keep` of `n_blocks` contiguous, equal
 * blocks of experts. A block's score is the sum of its `top_n` best scores
 * (1 = max: device-limited ranks; 2: DeepSeek-V3 groups). Sets allowed[e] to
 * 1 for experts in kept blocks, 0 elsewhere. Scratch: block_score[n_blocks],
 * block_idx[n_blocks], heap[n_blocks].
 */
void moep__block_mask(const float *score, int32_t n, int32_t n_blocks, int32_t keep, int32_t top_n,
                      float *block_score, int32_t *block_idx, int32_t *heap, uint8_t *allowed);

/* DeepSeek-V3 selection scores: sel[e] = sigmoid(logit[e]) + bias[e] (bias NULL = 0). */
void moep__sigmoid_biased(const float *logit, const float *bias, int32_t n, float *sel);
/* Unbiased weights of the chosen experts: w[i] = sigmoid(logit[idx[i]]). */
void moep__sigmoid_at(const float *logit, const int32_t *idx, int32_t k, float *w);

/*
 * Hash routing: k distinct experts of E drawn from a 64-bit stream seeded by
 * (token_id, layer_id, seed), in draw order. `perm` is scratch of E ints.
 */
void moep__hash_experts(int64_t token_id, int32_t layer_id, uint64_t seed, int32_t num_experts,
                        int32_t k, int32_t *perm, int32_t *idx);

#endif /* MOEP_ROUTING_INTERNAL_H */
