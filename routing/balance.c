/* Aux-loss-free balancing (DeepSeek-V3) and per-expert load statistics. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "routing_internal.h"

moep_status_t moep_bias_update(float *bias, const int64_t *expert_counts, int32_t num_experts,
                               float gamma) {
    MOEP_CHECK_ARG("moep_bias_update", bias);
    MOEP_CHECK_ARG("moep_bias_update", expert_counts);
    if (num_experts <= 0)
        return moep__fail(MOEP_ERR_INVALID_ARG, "moep_bias_update: num_experts %d <= 0",
                          num_experts);
    if (!isfinite(gamma))
        return moep__fail(MOEP_ERR_INVALID_ARG, "moep_bias_update: gamma %g is not finite",
                          (double)gamma);
    double total = 0;
    for (int32_t e = 0; e < num_experts; e++) total += (double)expert_counts[e];
    double mean = total / num_experts;
    for (int32_t e = 0; e < num_experts; e++) {
        double gap = mean - (double)expert_counts[e];
        bias[e] += gap > 0 ? gamma : gap < 0 ? -gamma : 0.0f; /* underloaded experts gain */
    }
    return MOEP_OK;
}

#define FN "moep_load_stats"

static void summarise(const int64_t *counts, int32_t E, moep_load_stats_t *s) {
    memset(s, 0, sizeof *s);
    s->min = counts[0];
    for (int32_t e = 0; e < E; e++) {
        s->total += counts[e];
        if (counts[e] > s->max) s->max = counts[e];
        if (counts[e] < s->min) s->min = counts[e];
    }
    s->mean = (double)s->total / E;
    if (s->total == 0) return; /* imbalance and cv stay 0 */
    double var = 0;
    for (int32_t e = 0; e < E; e++) var += ((double)counts[e] - s->mean) * ((double)counts[e] - s->mean);
    s->imbalance = (double)s->max / s->mean;
    s->cv = sqrt(var / E) / s->mean; /* population standard deviation */
}

moep_status_t moep_load_stats(const moep_tensor_t *topk_idx, int32_t num_experts, int64_t *counts,
                              moep_load_stats_t *stats) {
    MOEP_TRY(moep__check_tensor(FN, "topk_idx", topk_idx, 2, MOEP_DTYPE_I32, NULL));
    if (num_experts <= 0)
        return moep__fail(MOEP_ERR_INVALID_ARG, FN ": num_experts %d <= 0", num_experts);
    const int32_t *ids = topk_idx->data;
    const int64_t k = topk_idx->shape[1], n = moep_tensor_numel(topk_idx);
    /* Count into our own buffer so that `counts` is untouched on error. */
    int64_t *local = moep__calloc(FN, (size_t)num_experts, sizeof *local);
    if (local == NULL) return MOEP_ERR_NO_MEMORY;
    for (int64_t i = 0; i < n; i++) {
        int32_t e = ids[i];
        if (e < -1 || e >= num_experts) {
            free(local);
            return moep__fail(MOEP_ERR_OUT_OF_RANGE,
                              FN ": topk_idx[%lld, %lld] = %d out of range [-1, %d)",
                              (long long)(i / k), (long long)(i % k), e, num_experts);
        }
        if (e >= 0) local[e]++;
    }
    if (counts != NULL) memcpy(counts, local, (size_t)num_experts * sizeof *local);
    if (stats != NULL) summarise(local, num_experts, stats);
    free(local);
    return MOEP_OK;
}
