#include "ep_workload.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t mix(uint64_t z) {
    z += 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
static double unif(uint64_t *s) { return (double)(mix((*s)++) >> 11) * 0x1p-53; }

static size_t esize(moep_dtype_t t) { return t == MOEP_DTYPE_BF16 ? 2 : 4; }

static float load(const void *x, moep_dtype_t t, int64_t i) {
    return t == MOEP_DTYPE_F32 ? ((const float *)x)[i] : moep_bf16_to_f32(((const uint16_t *)x)[i]);
}
static void store(void *x, moep_dtype_t t, int64_t i, float v) {
    if (t == MOEP_DTYPE_F32)
        ((float *)x)[i] = v;
    else
        ((uint16_t *)x)[i] = moep_f32_to_bf16(v);
}

static int32_t pick_expert(const ep_spec_t *s, uint64_t *st) {
    if (s->pattern == ROUTE_ZIPF) { /* p(e) ~ 1/(e+1)^1.2 by inversion over the table */
        double total = 0, u;
        for (int32_t e = 0; e < s->num_experts; e++) total += pow(e + 1, -1.2);
        u = unif(st) * total;
        for (int32_t e = 0; e < s->num_experts; e++) {
            u -= pow(e + 1, -1.2);
            if (u <= 0) return e;
        }
        return s->num_experts - 1;
    }
    return (int32_t)(unif(st) * s->num_experts);
}

int ep_tokens_make(const ep_spec_t *s, int32_t rank, int version, ep_tokens_t *t) {
    int32_t T = s->tokens[rank], k = s->top_k, H = s->hidden;
    t->T = T;
    t->x = calloc((size_t)T * H + 1, esize(s->dtype));
    t->topk_idx = calloc((size_t)T * k + 1, sizeof(int32_t));
    t->topk_w = calloc((size_t)T * k + 1, sizeof(float));
    if (!t->x || !t->topk_idx || !t->topk_w) return -1;
    uint64_t st = s->seed * 1000003u + (uint64_t)rank * 7919u;
    for (int32_t i = 0; i < T; i++) {
        for (int32_t j = 0; j < k; j++) {
            int32_t e;
            int dup;
            do { /* distinct experts per token */
                e = s->pattern == ROUTE_ONE_EXPERT ? (j == 0 ? 3 % s->num_experts : -1)
                                                   : pick_expert(s, &st);
                dup = 0;
                for (int32_t q = 0; q < j && e >= 0; q++) dup |= t->topk_idx[i * k + q] == e;
            } while (dup);
            if (s->pattern == ROUTE_ALL_MASKED || (s->pattern == ROUTE_RANDOM && unif(&st) < 0.05))
                e = -1; /* masked slot */
            t->topk_idx[i * k + j] = e;
            t->topk_w[i * k + j] = (float)(0.1 + unif(&st));
        }
    }
    uint64_t xs = s->seed * 31 + (uint64_t)rank * 101 + (uint64_t)version * 100003u;
    for (int64_t i = 0; i < (int64_t)T * H; i++) store(t->x, s->dtype, i, (float)(2 * unif(&xs) - 1));
    return 0;
}

void ep_tokens_free(ep_tokens_t *t) {
    free(t->x);
    free(t->topk_idx);
    free(t->topk_w);
}

void ep_expert_apply(const ep_spec_t *s, const moep_dispatch_result_t *r, const int32_t *local_experts,
                     void *expert_y) {
    int32_t H = s->hidden;
    for (int32_t l = 0; l < r->num_local_experts; l++) {
        float scale = 1.0f + 0.01f * (float)local_experts[l];
        for (int64_t row = r->expert_offset[l]; row < r->expert_offset[l + 1]; row++)
            for (int32_t d = 0; d < H; d++)
                store(expert_y, s->dtype, row * H + d,
                      scale * load(r->expert_x.data, s->dtype, row * H + d));
    }
}

/* What the wire does to an activation row: FP8 round trip, or bf16 rounding. */
static void wire_row(const ep_spec_t *s, const void *x, int64_t row, float *out) {
    int32_t H = s->hidden;
    for (int32_t d = 0; d < H; d++) out[d] = load(x, s->dtype, row * H + d);
    if (s->wire == MOEP_DTYPE_FP8_E4M3) {
        uint8_t q[H];
        float sc[(H + 127) / 128];
        moep_tensor_t t = moep_tensor_2d(out, MOEP_DTYPE_F32, 1, H);
        moep_quantize_act_fp8(&t, q, sc);
        moep_dequantize_act_fp8(q, sc, 1, H, &t);
    } else if (s->wire == MOEP_DTYPE_BF16 && s->dtype == MOEP_DTYPE_F32) {
        for (int32_t d = 0; d < H; d++) out[d] = moep_bf16_to_f32(moep_f32_to_bf16(out[d]));
    }
}

/* Record a failure and leave through the function's cleanup label. */
#define FAIL(...)                              \
    do {                                       \
        snprintf(err, len, __VA_ARGS__);       \
        rc = 1;                                \
        goto out;                              \
    } while (0)

/* Does `rank` hold one of token `tok`'s experts? */
static int token_is_mine(const ep_spec_t *s, const ep_tokens_t *t, int32_t tok,
                         const int32_t *expert_rank, int32_t rank) {
    for (int32_t j = 0; j < s->top_k; j++) {
        int32_t e = t->topk_idx[tok * s->top_k + j];
        if (e >= 0 && expert_rank[e] == rank) return 1;
    }
    return 0;
}

int ep_check_dispatch(const ep_spec_t *s, int32_t rank, int version, const int32_t *expert_rank,
                      const moep_dispatch_result_t *r, char *err, size_t len) {
    int32_t H = s->hidden, k = s->top_k, L = r->num_local_experts;
    int rc = 0;
    float *row = calloc((size_t)H, sizeof(float));
    int64_t *per_expert = calloc((size_t)L + 1, sizeof(int64_t));
    ep_tokens_t t = {0};
    int64_t i = 0;
    for (int32_t src = 0; src < s->world; src++) {
        ep_tokens_free(&t);
        ep_tokens_make(s, src, version, &t);
        for (int32_t tok = 0; tok < t.T; tok++) {
            if (!token_is_mine(s, &t, tok, expert_rank, rank)) continue;
            if (i >= r->num_recv) FAIL("received %lld tokens, expected more", (long long)r->num_recv);
            if (r->recv_src_rank[i] != src)
                FAIL("recv row %lld from rank %d, expected %d", (long long)i, r->recv_src_rank[i], src);
            wire_row(s, t.x, tok, row);
            for (int32_t d = 0; d < H; d++) {
                float got = load(r->recv_x.data, s->dtype, i * H + d);
                float want = s->dtype == MOEP_DTYPE_BF16 ? moep_bf16_to_f32(moep_f32_to_bf16(row[d])) : row[d];
                if (got != want)
                    FAIL("recv_x[%lld,%d] = %g, expected %g (token %d of rank %d)", (long long)i, d,
                         got, want, tok, src);
            }
            for (int32_t j = 0; j < k; j++) {
                int32_t e = t.topk_idx[tok * k + j], want = -1;
                if (e >= 0 && expert_rank[e] == rank) {
                    want = 0;
                    for (int32_t q = 0; q < e; q++) want += expert_rank[q] == rank;
                    per_expert[want]++;
                }
                int32_t got = ((const int32_t *)r->recv_topk_idx.data)[i * k + j];
                float gw = ((const float *)r->recv_topk_weights.data)[i * k + j];
                if (got != want || gw != t.topk_w[tok * k + j])
                    FAIL("recv slot [%lld,%d]: local id %d weight %g, expected %d %g", (long long)i, j,
                         got, gw, want, t.topk_w[tok * k + j]);
            }
            i++;
        }
    }
    if (i != r->num_recv)
        FAIL("received %lld tokens, expected %lld", (long long)r->num_recv, (long long)i);
    int64_t a = s->alignment > 0 ? s->alignment : 1, off = 0;
    for (int32_t l = 0; l < L; l++) {
        if (r->tokens_per_local_expert[l] != per_expert[l] || r->expert_offset[l] != off)
            FAIL("local expert %d: %lld tokens at %lld, expected %lld at %lld", l,
                 (long long)r->tokens_per_local_expert[l], (long long)r->expert_offset[l],
                 (long long)per_expert[l], (long long)off);
        off += (per_expert[l] + a - 1) / a * a;
    }
    if (r->expert_offset[L] != off || r->num_expert_rows != off)
        FAIL("expert rows %lld, expected %lld", (long long)r->num_expert_rows, (long long)off);
out:
    ep_tokens_free(&t);
    free(per_expert);
    free(row);
    return rc;
}

int ep_check_combine(const ep_spec_t *s, int32_t rank, int version, const void *out, char *err,
                     size_t len) {
    int32_t H = s->hidden, k = s->top_k;
    int rc = 0;
    float *row = calloc((size_t)H, sizeof(float));
    ep_tokens_t t;
    ep_tokens_make(s, rank, version, &t);
    /* bf16 anywhere: expert outputs and partials are rounded to 8 bits */
    int lossy = s->dtype == MOEP_DTYPE_BF16;
    double tol = lossy ? 3e-2 : 1e-5, max_ref = 1e-30, max_diff = 0;
    for (int32_t tok = 0; tok < t.T; tok++) {
        wire_row(s, t.x, tok, row);
        for (int32_t d = 0; d < H; d++) {
            double ref = 0;
            for (int32_t j = 0; j < k; j++) {
                int32_t e = t.topk_idx[tok * k + j];
                if (e >= 0) ref += (double)t.topk_w[tok * k + j] * (1.0 + 0.01 * e) * row[d];
            }
            double diff = fabs(load(out, s->dtype, (int64_t)tok * H + d) - ref);
            if (diff != diff) diff = INFINITY;
            if (fabs(ref) > max_ref) max_ref = fabs(ref);
            if (diff > max_diff) max_diff = diff;
        }
    }
    if (max_diff / max_ref > tol) FAIL("combine max rel err %.3g > %.1g", max_diff / max_ref, tol);
out:
    ep_tokens_free(&t);
    free(row);
    return rc;
}
