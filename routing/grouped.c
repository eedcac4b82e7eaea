/* DeepSeek-V3 scoring: sigmoid affinities, plus a selection-only bias. The
 * group-limited selection itself is moep__block_mask (top_n = 2). */
#include <math.h>

#include "routing_internal.h"

static inline float sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }

void moep__sigmoid_biased(const float *logit, const float *bias, int32_t n, float *sel) {
    for (int32_t e = 0; e < n; e++) sel[e] = sigmoid(logit[e]) + (bias ? bias[e] : 0.0f);
}

void moep__sigmoid_at(const float *logit, const int32_t *idx, int32_t k, float *w) {
    for (int32_t i = 0; i < k; i++) w[i] = sigmoid(logit[idx[i]]);
}
