/*
 * moep MoE layer: route -> dispatch -> local experts -> combine -> + shared
 * expert. Single rank (comm = NULL) or over a communicator.
 * Included by moep.h.
 */
#ifndef MOEP_LAYER_H
#define MOEP_LAYER_H

#include "moep_comm.h"
#include "moep_compute.h"
#include "moep_routing.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct moep_layer moep_layer_t;

typedef struct moep_layer_config {
    uint32_t struct_size;
    moep_router_config_t router; /* num_experts, top_k, kind... (init it too) */
    int32_t hidden;              /* H */
    int32_t intermediate;        /* I of a routed expert */
    moep_dtype_t act_dtype;      /* f32 or bf16 activations (default f32) */
    int32_t num_threads;         /* OpenMP threads for the experts; 0 = default */
    int32_t expert_alignment;    /* rows per expert padded to this (default 1) */
    moep_dtype_t wire_dtype;     /* dispatch wire format, 0 = act_dtype (see moep_dispatch) */
} moep_layer_config_t;

MOEP_API moep_status_t moep_layer_config_init(moep_layer_config_t *cfg);

/*
 * Create a layer. comm NULL: single rank, all experts local. Otherwise the
 * comm's num_experts must equal router.num_experts; the layer holds only the
 * comm's local experts. The comm must outlive the layer.
 * Errors: MOEP_ERR_INVALID_ARG, MOEP_ERR_MISMATCH, MOEP_ERR_NO_MEMORY.
 */
MOEP_API moep_status_t moep_layer_create(const moep_layer_config_t *cfg, moep_comm_t *comm,
                                         moep_layer_t **layer_p);
MOEP_API void moep_layer_destroy(moep_layer_t *layer);

/* Router weight [E, H] f32 (logits = x · gateᵀ). Copied. Not needed for HASH. */
MOEP_API moep_status_t moep_layer_set_gate(moep_layer_t *layer, const moep_tensor_t *gate);
/* This rank's routed experts (num_experts = local count, H, I as configured).
 * Referenced, not copied. */
MOEP_API moep_status_t moep_layer_set_experts(moep_layer_t *layer, const moep_expert_weights_t *w);
/* Shared expert (num_experts = 1, any intermediate size); NULL removes it. Referenced. */
MOEP_API moep_status_t moep_layer_set_shared(moep_layer_t *layer, const moep_expert_weights_t *w);
/* Selection bias [E] for SIGMOID_GROUPED (copied); NULL clears. */
MOEP_API moep_status_t moep_layer_set_bias(moep_layer_t *layer, const float *bias);

typedef struct moep_layer_timings {
    double route_ms;    /* router GEMM + top-k */
    double dispatch_ms; /* layout + dispatch (single rank: local permutation) */
    double experts_ms;  /* grouped expert FFN */
    double combine_ms;  /* combine */
    double shared_ms;   /* shared expert */
    double total_ms;
    int64_t expert_counts_max;  /* load of the busiest global expert this call */
    double expert_imbalance;    /* max / mean over global experts */
    uint64_t bytes_sent;        /* dispatch + combine wire bytes of this rank */
    int64_t expert_rows;        /* (token, expert) pairs this rank's experts computed */
} moep_layer_timings_t;

/*
 * Forward T tokens (collective when over a comm: every rank calls it).
 *   x [T, H] act_dtype; token_ids [T] i64 (HASH routing only, else may be NULL);
 *   y [T, H] act_dtype out; timings may be NULL.
 * Errors: MOEP_ERR_INVALID_USAGE (weights not set), MOEP_ERR_SHAPE, and those of
 * moep_route, moep_dispatch, moep_expert_ffn, moep_combine. A routing
 * failure on one rank (NaN router scores: MOEP_ERR_NUMERIC naming the token)
 * still takes part in the dispatch's count exchange, so the other ranks
 * return MOEP_ERR_REMOTE at once rather than time out, and the layer and its
 * communicator stay usable for the next forward.
 */
MOEP_API moep_status_t moep_layer_forward(moep_layer_t *layer, const moep_tensor_t *x,
                                          const moep_tensor_t *token_ids, moep_tensor_t *y,
                                          moep_layer_timings_t *timings);

/* Routing of the last forward on this rank: topk_idx [T, k] i32 (global
 * expert ids) and topk_weights [T, k] f32, views valid until the next
 * forward. For checking a layer against a reference, and for load statistics. */
MOEP_API moep_status_t moep_layer_last_routing(const moep_layer_t *layer, moep_tensor_t *topk_idx,
                                               moep_tensor_t *topk_weights);

#ifdef __cplusplus
}
#endif
#endif /* MOEP_LAYER_H */
