/* Float64 reference router and the comparison harness for moep_route. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "routing_test.h"

#define NEAR_TIE 1e-5
#define MAX_E 1024 /* the tests route at most this many experts */

/* Best allowed, not yet taken entry of v (ties: lower index); -1 if none. */
static int best_of(const double *v, const uint8_t *ok, int n) {
    int best = -1;
    for (int i = 0; i < n; i++)
        if (ok[i] && (best < 0 || v[i] > v[best])) best = i;
    return best;
}

/* Take the `keep` best entries of v among ok[], clearing ok[] for them and
 * writing them to out (may be NULL). Returns 1 on a near-tie at the cut. */
static int take_best(const double *v, uint8_t *ok, int n, int keep, int *out) {
    double last = 0;
    for (int i = 0; i < keep; i++) {
        int b = best_of(v, ok, n);
        ok[b] = 0;
        last = v[b];
        if (out) out[i] = b;
    }
    int next = best_of(v, ok, n);
    if (next < 0) return 0;
    double gap = last - v[next];
    return gap > 0 && gap < NEAR_TIE;
}

/* Keep the best `keep` of n_blocks contiguous blocks (score = sum of the top
 * `top_n` of the block) in allowed[]. */
static int restrict_blocks(const double *sel, int E, int n_blocks, int keep, int top_n,
                           uint8_t *allowed) {
    int size = E / n_blocks, amb = 0;
    double bscore[MAX_E] = {0};
    uint8_t ok[MAX_E];
    int kept[MAX_E];
    for (int b = 0; b < n_blocks; b++) {
        memset(ok, 1, (size_t)size);
        int top[2];
        int n = top_n < size ? top_n : size;
        take_best(sel + b * size, ok, size, n, top);
        for (int i = 0; i < n; i++) bscore[b] += sel[b * size + top[i]];
    }
    if (keep > n_blocks) keep = n_blocks;
    memset(ok, 1, (size_t)n_blocks);
    amb = take_best(bscore, ok, n_blocks, keep, kept);
    memset(allowed, 0, (size_t)E);
    for (int i = 0; i < keep; i++) memset(allowed + kept[i] * size, 1, (size_t)size);
    return amb;
}

int ref_route_token(const moep_router_config_t *c, const double *x, int32_t *idx, double *w) {
    const int E = c->num_experts, k = c->top_k;
    double sel[MAX_E];
    uint8_t allowed[MAX_E];
    int amb = 0;
    int chosen[MAX_E];
    memset(allowed, 1, (size_t)E);
    for (int e = 0; e < E; e++) {
        sel[e] = x[e];
        if (c->kind == MOEP_ROUTE_SIGMOID_GROUPED)
            sel[e] = 1.0 / (1.0 + exp(-x[e])) + (c->expert_bias ? c->expert_bias[e] : 0.0);
    }
    if (c->max_ranks_per_token > 0)
        amb |= restrict_blocks(sel, E, c->num_ranks, c->max_ranks_per_token, 1, allowed);
    else if (c->kind == MOEP_ROUTE_SIGMOID_GROUPED && c->n_group > 1)
        amb |= restrict_blocks(sel, E, c->n_group, c->topk_group, 2, allowed);
    amb |= take_best(sel, allowed, E, k, chosen);

    double max = -INFINITY, sum = 0, wsum = 0;
    if (c->kind == MOEP_ROUTE_SOFTMAX_TOPK) {
        for (int e = 0; e < E; e++) max = fmax(max, x[e]);
        for (int e = 0; e < E; e++) sum += exp(x[e] - max);
    } else if (c->kind == MOEP_ROUTE_TOPK_SOFTMAX) {
        for (int i = 0; i < k; i++) max = fmax(max, x[chosen[i]]);
        for (int i = 0; i < k; i++) sum += exp(x[chosen[i]] - max);
    }
    for (int i = 0; i < k; i++) {
        idx[i] = chosen[i];
        w[i] = c->kind == MOEP_ROUTE_SIGMOID_GROUPED ? 1.0 / (1.0 + exp(-x[chosen[i]]))
                                                     : exp(x[chosen[i]] - max) / sum;
        wsum += w[i];
    }
    for (int i = 0; i < k; i++)
        w[i] = (c->renormalize ? w[i] / wsum : w[i]) * c->routed_scaling_factor;
    return amb;
}

double score_at(const void *scores, moep_dtype_t dtype, int64_t i) {
    if (dtype == MOEP_DTYPE_F32) return ((const float *)scores)[i];
    return moep_bf16_to_f32(((const uint16_t *)scores)[i]);
}

void *random_scores(test_rng_t *r, moep_dtype_t dtype, int64_t T, int32_t E, float scale) {
    float *f = malloc((size_t)(T * E + 1) * sizeof *f);
    test_fill_normal(r, f, T * E, scale);
    if (dtype == MOEP_DTYPE_F32) return f;
    uint16_t *b = malloc((size_t)(T * E + 1) * sizeof *b);
    for (int64_t i = 0; i < T * E; i++) b[i] = moep_f32_to_bf16(f[i]);
    free(f);
    return b;
}

/* Checks that hold for every token, near-tie or not. */
static void check_invariants(const moep_router_config_t *c, int64_t t, const int32_t *idx,
                             const float *w) {
    const int E = c->num_experts, k = c->top_k;
    uint8_t seen[MAX_E] = {0}, rank_used[MAX_E] = {0};
    int ranks = 0;
    for (int i = 0; i < k; i++) {
        require(idx[i] >= 0 && idx[i] < E, "token %lld: expert %d out of range",
                      (long long)t, idx[i]);
        require(!seen[idx[i]], "token %lld: expert %d chosen twice", (long long)t, idx[i]);
        seen[idx[i]] = 1;
        if (i > 0 && c->routed_scaling_factor > 0)
            require(w[i] <= w[i - 1], "token %lld: weights not descending", (long long)t);
        if (c->max_ranks_per_token > 0) {
            int r = idx[i] / (E / c->num_ranks);
            ranks += !rank_used[r];
            rank_used[r] = 1;
        }
    }
    if (c->max_ranks_per_token > 0)
        require(ranks <= c->max_ranks_per_token, "token %lld uses %d ranks > %d",
                      (long long)t, ranks, c->max_ranks_per_token);
}

int64_t check_route_vs_ref(const moep_router_config_t *c, const void *scores, moep_dtype_t dtype,
                           int64_t T) {
    const int E = c->num_experts, k = c->top_k;
    ck_assert_int_le(E, MAX_E);
    int32_t *idx = malloc((size_t)(T * k + 1) * sizeof *idx);
    float *w = malloc((size_t)(T * k + 1) * sizeof *w);
    double *ref_w = malloc((size_t)(T * k + 1) * sizeof *ref_w);
    double *x = malloc((size_t)E * sizeof *x);
    int32_t ridx[MAX_E];
    double rw[MAX_E];
    moep_tensor_t ts = moep_tensor_2d((void *)scores, dtype, T, E);
    moep_tensor_t ti = moep_tensor_2d(idx, MOEP_DTYPE_I32, T, k);
    moep_tensor_t tw = moep_tensor_2d(w, MOEP_DTYPE_F32, T, k);
    ck_assert_ok(moep_route(c, &ts, NULL, &ti, &tw));

    int64_t skipped = 0;
    for (int64_t t = 0; t < T; t++) {
        const int32_t *gi = idx + t * k;
        check_invariants(c, t, gi, w + t * k);
        for (int e = 0; e < E; e++) x[e] = score_at(scores, dtype, t * E + e);
        int amb = ref_route_token(c, x, ridx, rw);
        for (int i = 0; i < k; i++) {
            ref_w[t * k + i] = w[t * k + i]; /* near-tie tokens compare with themselves */
            if (amb) continue;
            int j = 0;
            while (j < k && ridx[j] != gi[i]) j++;
            require(j < k, "token %lld: expert %d chosen, not in the reference's top-%d",
                          (long long)t, gi[i], k);
            ref_w[t * k + i] = rw[j];
        }
        skipped += amb;
    }
    double err = test_max_rel_err(w, ref_w, T * k);
    ck_assert_msg(err < 1e-5, "%s E=%d k=%d: weight rel. error %g", moep_route_kind_name(c->kind),
                  E, k, err);
    ck_assert_msg(skipped * 50 <= T, "%lld of %lld tokens were near-ties", (long long)skipped,
                  (long long)T);
    free(idx);
    free(w);
    free(ref_w);
    free(x);
    return skipped;
}
