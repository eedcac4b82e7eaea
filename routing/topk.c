/* Partial top-k selection and the softmax / weight finishing steps that the
 * softmax-based router kinds share. */
#include <math.h>

#include "routing_internal.h"

/* a beats b: higher score, or equal score and lower index. */
static inline int beats(const float *score, int32_t a, int32_t b) {
    return score[a] > score[b] || (score[a] == score[b] && a < b);
}

/* Restore the heap below `pos`: the root holds the weakest kept entry. */
static void sift_down(const float *score, int32_t *heap, int32_t size, int32_t pos) {
    for (;;) {
        int32_t weakest = pos, l = 2 * pos + 1, r = l + 1;
        if (l < size && beats(score, heap[weakest], heap[l])) weakest = l;
        if (r < size && beats(score, heap[weakest], heap[r])) weakest = r;
        if (weakest == pos) return;
        int32_t tmp = heap[pos];
        heap[pos] = heap[weakest];
        heap[weakest] = tmp;
        pos = weakest;
    }
}

static void sift_up(const float *score, int32_t *heap, int32_t pos) {
    while (pos > 0) {
        int32_t parent = (pos - 1) / 2;
        if (!beats(score, heap[parent], heap[pos])) return;
        int32_t tmp = heap[pos];
        heap[pos] = heap[parent];
        heap[parent] = tmp;
        pos = parent;
    }
}

void moep__topk(const float *score, const uint8_t *allowed, int32_t n, int32_t k, int32_t *heap,
                int32_t *idx) {
    int32_t size = 0, i = 0;
    for (; i < n && size < k; i++) {
        if (allowed != NULL && !allowed[i]) continue;
        heap[size] = i;
        sift_up(score, heap, size++);
    }
    /* Once full, most candidates lose to the weakest kept score: test that
     * with one float compare (a later index never wins a tie). */
    float weakest = size > 0 ? score[heap[0]] : 0.0f;
    for (; i < n; i++) {
        if (score[i] <= weakest || (allowed != NULL && !allowed[i])) continue;
        heap[0] = i;
        sift_down(score, heap, size, 0);
        weakest = score[heap[0]];
    }
    /* Pop the weakest into the last free output slot: best ends up first. */
    for (int32_t out = size - 1; out >= 0; out--) {
        idx[out] = heap[0];
        heap[0] = heap[--size];
        sift_down(score, heap, size, 0);
    }
}

void moep__sort_by_score(const float *score, int32_t *idx, int32_t k) {
    /* Insertion sort: k is small and this runs on k entries, never on E. */
    for (int32_t i = 1; i < k; i++) {
        int32_t cur = idx[i], j = i;
        for (; j > 0 && beats(score, cur, idx[j - 1]); j--) idx[j] = idx[j - 1];
        idx[j] = cur;
    }
}

void moep__softmax_at(const float *x, const int32_t *norm, int32_t n, const int32_t *at, int32_t k,
                      float *w) {
    float max = -INFINITY;
    for (int32_t i = 0; i < n; i++) {
        float v = x[norm ? norm[i] : i];
        max = v > max ? v : max; /* no NaN here: fmaxf's NaN handling costs a call */
    }
    if (isinf(max)) {
        /* The limits exp(x - max) cannot express: mass on the +Inf entries,
         * or uniform when every entry is -Inf. */
        int32_t ties = 0;
        for (int32_t i = 0; i < n; i++) ties += x[norm ? norm[i] : i] == max;
        for (int32_t i = 0; i < k; i++) w[i] = x[at[i]] == max ? 1.0f / (float)ties : 0.0f;
        return;
    }
    double sum = 0;
    for (int32_t i = 0; i < n; i++) sum += expf(x[norm ? norm[i] : i] - max);
    for (int32_t i = 0; i < k; i++) w[i] = (float)(expf(x[at[i]] - max) / sum);
}

void moep__finish_weights(float *w, int32_t k, int32_t renormalize, float scale) {
    double sum = 0;
    if (renormalize) {
        for (int32_t i = 0; i < k; i++) sum += w[i];
    }
    float mult = renormalize && sum > 0 ? (float)(scale / sum) : scale;
    for (int32_t i = 0; i < k; i++) w[i] *= mult;
}
