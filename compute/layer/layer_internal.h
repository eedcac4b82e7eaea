/* State of a MoE layer. */
#ifndef MOEP_LAYER_INTERNAL_H
#define MOEP_LAYER_INTERNAL_H

#include <stdbool.h>

#include "moep_internal.h"

struct moep_layer {
    moep_layer_config_t cfg;
    float *bias;               /* [E] selection bias, or NULL */
    moep_comm_t *comm;         /* the caller's, or owned_comm */
    moep_comm_t *owned_comm;   /* single-rank layers run over a 1-rank comm */
    moep_local_world_t *owned_world;
    float *gate;               /* [E, H] */
    bool have_experts, have_shared;
    moep_expert_weights_t experts, shared;
    moep_handle_t *handle;     /* reused across forwards */
    /* per-forward buffers, grown on demand */
    float *logits;             /* [T, E] */
    int32_t *topk_idx;         /* [T, k] */
    float *topk_weights;       /* [T, k] */
    int64_t last_tokens;
    void *expert_y;            /* [rows, H] act dtype */
    size_t logits_cap, idx_cap, w_cap, expert_y_cap;
    int64_t *expert_counts;    /* [E] */
    struct moep__layer_gpu *gpu; /* GPU layer over a device comm (CUDA build, layer_cuda.h) */
};

/* logits [T, E] = x [T, H] · gateᵀ, f32 accumulation. */
/* Dispatch x with the routing in idx / w, as the layer is configured
 * (alignment, wire format), reusing the layer's handle. */
moep_status_t moep__layer_dispatch(moep_layer_t *l, const moep_tensor_t *x, const moep_tensor_t *idx,
                                   const moep_tensor_t *w, moep_dispatch_result_t *res);

moep_status_t moep__router_logits(const moep_tensor_t *x, const float *gate, int32_t num_experts,
                                  float *logits);

#endif
