/* moep_router_config_t: defaults and validation. */
#include <math.h>
#include <string.h>

#include "router_config.h"

moep_status_t moep_router_config_init(moep_router_config_t *cfg) {
    MOEP_CHECK_ARG("moep_router_config_init", cfg);
    memset(cfg, 0, sizeof *cfg);
    cfg->struct_size = (uint32_t)sizeof *cfg;
    cfg->kind = MOEP_ROUTE_SOFTMAX_TOPK;
    cfg->renormalize = 1;
    cfg->n_group = 1;
    cfg->topk_group = 1;
    cfg->routed_scaling_factor = 1.0f;
    cfg->num_ranks = 1;
    return MOEP_OK;
}

#define FN "moep_route"

static moep_status_t check_grouping(const moep_router_config_t *c) {
    if (c->n_group < 1 || c->num_experts % c->n_group != 0)
        return moep__fail(MOEP_ERR_INVALID_ARG, FN ": n_group %d does not divide num_experts %d",
                          c->n_group, c->num_experts);
    if (c->topk_group < 1 || c->topk_group > c->n_group)
        return moep__fail(MOEP_ERR_INVALID_ARG, FN ": topk_group %d out of range [1, %d]",
                          c->topk_group, c->n_group);
    int64_t reachable = (int64_t)c->topk_group * (c->num_experts / c->n_group);
    if (reachable < c->top_k)
        return moep__fail(MOEP_ERR_INVALID_ARG,
                          FN ": topk_group %d groups of %d experts hold fewer than top_k %d",
                          c->topk_group, c->num_experts / c->n_group, c->top_k);
    if (c->expert_bias != NULL) {
        for (int32_t e = 0; e < c->num_experts; e++) {
            if (!isfinite(c->expert_bias[e]))
                return moep__fail(MOEP_ERR_NUMERIC, FN ": expert_bias[%d] = %g is not finite", e,
                                  (double)c->expert_bias[e]);
        }
    }
    return MOEP_OK;
}

static moep_status_t check_device_limit(const moep_router_config_t *c) {
    if (c->num_ranks < 1)
        return moep__fail(MOEP_ERR_INVALID_ARG, FN ": num_ranks %d < 1", c->num_ranks);
    if (c->max_ranks_per_token < 0)
        return moep__fail(MOEP_ERR_INVALID_ARG, FN ": max_ranks_per_token %d < 0",
                          c->max_ranks_per_token);
    if (c->max_ranks_per_token == 0) return MOEP_OK;
    if (c->kind == MOEP_ROUTE_HASH)
        return moep__fail(MOEP_ERR_INVALID_ARG,
                          FN ": max_ranks_per_token does not apply to hash routing");
    if (c->num_experts % c->num_ranks != 0)
        return moep__fail(MOEP_ERR_INVALID_ARG, FN ": num_ranks %d does not divide num_experts %d",
                          c->num_ranks, c->num_experts);
    int32_t ranks = c->max_ranks_per_token < c->num_ranks ? c->max_ranks_per_token : c->num_ranks;
    if ((int64_t)ranks * (c->num_experts / c->num_ranks) < c->top_k)
        return moep__fail(MOEP_ERR_INVALID_ARG,
                          FN ": max_ranks_per_token %d x %d experts per rank < top_k %d",
                          c->max_ranks_per_token, c->num_experts / c->num_ranks, c->top_k);
    if (c->kind == MOEP_ROUTE_SIGMOID_GROUPED && c->n_group > 1)
        return moep__fail(MOEP_ERR_UNSUPPORTED,
                          FN ": max_ranks_per_token with n_group %d > 1: limit ranks through "
                          "n_group / topk_group instead",
                          c->n_group);
    return MOEP_OK;
}

moep_status_t moep__router_config_load(const moep_router_config_t *user, moep_router_config_t *c) {
    moep_router_config_init(c);
    MOEP_TRY(moep__load_versioned(FN, c, sizeof *c, user));
    if ((int)c->kind < 0 || c->kind >= MOEP_ROUTE_KIND_COUNT_)
        return moep__fail(MOEP_ERR_INVALID_ARG, FN ": unknown router kind %d", (int)c->kind);
    if (c->num_experts <= 0)
        return moep__fail(MOEP_ERR_INVALID_ARG, FN ": num_experts %d <= 0", c->num_experts);
    if (c->top_k <= 0 || c->top_k > c->num_experts)
        return moep__fail(MOEP_ERR_INVALID_ARG, FN ": top_k %d out of range [1, num_experts %d]",
                          c->top_k, c->num_experts);
    if (!isfinite(c->routed_scaling_factor))
        return moep__fail(MOEP_ERR_INVALID_ARG, FN ": routed_scaling_factor %g is not finite",
                          (double)c->routed_scaling_factor);
    if (c->kind == MOEP_ROUTE_SIGMOID_GROUPED) MOEP_TRY(check_grouping(c));
    return check_device_limit(c);
}
