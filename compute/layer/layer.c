/* Layer lifecycle and weights. */
#include <stdlib.h>
#include <string.h>

#include "layer_internal.h"
#ifdef MOEP_HAVE_CUDA
#include "layer_cuda.h"
#endif

static const char *const FN = "moep_layer_create";

moep_status_t moep_layer_config_init(moep_layer_config_t *cfg) {
    MOEP_CHECK_ARG("moep_layer_config_init", cfg);
    memset(cfg, 0, sizeof *cfg);
    cfg->struct_size = sizeof *cfg;
    moep_router_config_init(&cfg->router);
    cfg->act_dtype = MOEP_DTYPE_F32;
    cfg->expert_alignment = 1;
    return MOEP_OK;
}

static moep_status_t check_config(const moep_layer_config_t *c) {
    if (c->hidden <= 0 || c->intermediate <= 0)
        return moep__fail(MOEP_ERR_INVALID_ARG, "%s: hidden %d and intermediate %d must be > 0", FN,
                          c->hidden, c->intermediate);
    if (c->act_dtype != MOEP_DTYPE_F32 && c->act_dtype != MOEP_DTYPE_BF16)
        return moep__fail(MOEP_ERR_SHAPE, "%s: act_dtype must be f32 or bf16, got %s", FN,
                          moep_dtype_name(c->act_dtype));
    if (c->num_threads < 0)
        return moep__fail(MOEP_ERR_INVALID_ARG, "%s: num_threads %d < 0", FN, c->num_threads);
    /* Validate the router config the cheap way: route zero tokens. */
    moep_tensor_t scores = moep_tensor_2d(NULL, MOEP_DTYPE_F32, 0, c->router.num_experts);
    moep_tensor_t ids = moep_tensor_1d(NULL, MOEP_DTYPE_I64, 0);
    moep_tensor_t idx = moep_tensor_2d(NULL, MOEP_DTYPE_I32, 0, c->router.top_k);
    moep_tensor_t w = moep_tensor_2d(NULL, MOEP_DTYPE_F32, 0, c->router.top_k);
    return moep_route(&c->router, &scores, &ids, &idx, &w);
}

/* A single-rank layer runs over its own 1-rank communicator, so that it takes
 * exactly the code path of the multi-rank one. */
static moep_status_t make_solo_comm(moep_layer_t *l) {
    moep_bootstrap_t *bs = NULL;
    MOEP_TRY(moep_local_world_create(1, 0, &l->owned_world));
    MOEP_TRY(moep_bootstrap_local_create(l->owned_world, 0, &bs));
    moep_comm_params_t p;
    moep_comm_params_init(&p);
    p.transport = "local";
    p.num_experts = l->cfg.router.num_experts;
    moep_status_t st = moep_comm_create(&p, bs, &l->owned_comm);
    moep_bootstrap_destroy(bs);
    l->comm = l->owned_comm;
    return st;
}

moep_status_t moep_layer_create(const moep_layer_config_t *cfg, moep_comm_t *comm,
                                moep_layer_t **layer_p) {
    MOEP_CHECK_ARG(FN, layer_p);
    *layer_p = NULL;
    moep_layer_config_t c;
    moep_layer_config_init(&c);
    MOEP_TRY(moep__load_versioned(FN, &c, sizeof c, cfg));
    MOEP_TRY(moep__load_versioned(FN, &c.router, sizeof c.router, &cfg->router));
    MOEP_TRY(check_config(&c));
    if (comm != NULL && moep_comm_num_experts(comm) != c.router.num_experts)
        return moep__fail(MOEP_ERR_MISMATCH, "%s: router has %d experts, the communicator %d", FN,
                          c.router.num_experts, moep_comm_num_experts(comm));
    moep_layer_t *l = moep__calloc(FN, 1, sizeof *l);
    if (l == NULL) return MOEP_ERR_NO_MEMORY;
    l->cfg = c;
    int32_t E = c.router.num_experts;
    l->gate = moep__calloc(FN, (size_t)E * c.hidden, sizeof(float));
    l->expert_counts = moep__calloc(FN, (size_t)E, sizeof(int64_t));
    moep_status_t st = (l->gate && l->expert_counts) ? MOEP_OK : MOEP_ERR_NO_MEMORY;
    if (st == MOEP_OK && c.router.expert_bias != NULL) st = moep_layer_set_bias(l, c.router.expert_bias);
    if (st == MOEP_OK) {
        if (comm != NULL)
            l->comm = comm;
        else
            st = make_solo_comm(l);
    }
#ifdef MOEP_HAVE_CUDA
    if (st == MOEP_OK && moep_comm_device_cuda(l->comm) >= 0) st = moep__layer_cuda_init(l);
#endif
    if (st != MOEP_OK) {
        moep_layer_destroy(l);
        return st;
    }
    *layer_p = l;
    return MOEP_OK;
}

void moep_layer_destroy(moep_layer_t *l) {
    if (l == NULL) return;
    moep_handle_destroy(l->handle);
#ifdef MOEP_HAVE_CUDA
    moep__layer_cuda_free(l);
#endif
    moep_comm_destroy(l->owned_comm);
    moep_local_world_destroy(l->owned_world);
    free(l->bias);
    free(l->gate);
    free(l->logits);
    free(l->topk_idx);
    free(l->topk_weights);
    free(l->expert_y);
    free(l->expert_counts);
    free(l);
}

moep_status_t moep_layer_set_gate(moep_layer_t *l, const moep_tensor_t *gate) {
    const char *fn = "moep_layer_set_gate";
    MOEP_CHECK_ARG(fn, l);
#ifdef MOEP_HAVE_CUDA
    if (l->gpu != NULL) return moep__layer_cuda_set_gate(l, gate);
#endif
    const int64_t shape[2] = {l->cfg.router.num_experts, l->cfg.hidden};
    MOEP_TRY(moep__check_tensor(fn, "gate", gate, 2, MOEP_DTYPE_F32, shape));
    memcpy(l->gate, gate->data, (size_t)shape[0] * shape[1] * sizeof(float));
    return MOEP_OK;
}

moep_status_t moep_layer_set_bias(moep_layer_t *l, const float *bias) {
    MOEP_CHECK_ARG("moep_layer_set_bias", l);
    int32_t E = l->cfg.router.num_experts;
    if (bias == NULL) {
        free(l->bias);
        l->bias = NULL;
        return MOEP_OK;
    }
    if (l->bias == NULL) l->bias = moep__calloc("moep_layer_set_bias", (size_t)E, sizeof(float));
    if (l->bias == NULL) return MOEP_ERR_NO_MEMORY;
    memcpy(l->bias, bias, (size_t)E * sizeof(float));
    return MOEP_OK;
}

static moep_status_t check_weights(const char *fn, const moep_expert_weights_t *w, int32_t E,
                                   int32_t H, int32_t I) {
    if (w->struct_size == 0)
        return moep__fail(MOEP_ERR_INVALID_ARG, "%s: weights not initialised (moep_expert_weights_init)", fn);
    if (w->num_experts != E || w->hidden != H || (I > 0 && w->intermediate != I))
        return moep__fail(MOEP_ERR_SHAPE,
                          "%s: weights are [%d experts, H=%d, I=%d], expected [%d, %d, %d]", fn,
                          w->num_experts, w->hidden, w->intermediate, E, H, I);
    if (w->intermediate <= 0)
        return moep__fail(MOEP_ERR_SHAPE, "%s: intermediate %d must be > 0", fn, w->intermediate);
    if (E > 0 && (w->w1.data == NULL || w->w2.data == NULL || w->w3.data == NULL))
        return moep__fail(MOEP_ERR_INVALID_ARG, "%s: a weight pointer is NULL", fn);
    return MOEP_OK;
}

/* The caller's struct as this version reads it (older ones: row-major). */
static moep_status_t copy_weights(const char *fn, const moep_layer_t *l, const moep_expert_weights_t *w,
                                  moep_expert_weights_t *dst) {
    moep_expert_weights_t c;
    moep_expert_weights_init(&c);
    MOEP_TRY(moep__load_versioned(fn, &c, sizeof c, w));
    if (c.layout != MOEP_WEIGHT_LAYOUT_ROWS && l->gpu == NULL)
        return moep__fail(MOEP_ERR_UNSUPPORTED, "%s: packed weights are for the GPU layer only", fn);
    *dst = c;
    return MOEP_OK;
}

moep_status_t moep_layer_set_experts(moep_layer_t *l, const moep_expert_weights_t *w) {
    const char *fn = "moep_layer_set_experts";
    MOEP_CHECK_ARG(fn, l);
    MOEP_CHECK_ARG(fn, w);
    MOEP_TRY(check_weights(fn, w, moep_comm_num_local_experts(l->comm), l->cfg.hidden,
                           l->cfg.intermediate));
#ifdef MOEP_HAVE_CUDA
    if (l->gpu != NULL) MOEP_TRY(moep__layer_cuda_check_format(fn, w));
#endif
    MOEP_TRY(copy_weights(fn, l, w, &l->experts));
    l->have_experts = true;
    return MOEP_OK;
}

moep_status_t moep_layer_set_shared(moep_layer_t *l, const moep_expert_weights_t *w) {
    const char *fn = "moep_layer_set_shared";
    MOEP_CHECK_ARG(fn, l);
    if (w == NULL) {
        l->have_shared = false;
        return MOEP_OK;
    }
    MOEP_TRY(check_weights(fn, w, 1, l->cfg.hidden, 0));
#ifdef MOEP_HAVE_CUDA
    if (l->gpu != NULL) MOEP_TRY(moep__layer_cuda_check_format(fn, w));
#endif
    MOEP_TRY(copy_weights(fn, l, w, &l->shared));
    l->have_shared = true;
    return MOEP_OK;
}

moep_status_t moep_layer_last_routing(const moep_layer_t *l, moep_tensor_t *topk_idx,
                                      moep_tensor_t *topk_weights) {
    const char *fn = "moep_layer_last_routing";
    MOEP_CHECK_ARG(fn, l);
    MOEP_CHECK_ARG(fn, topk_idx);
    MOEP_CHECK_ARG(fn, topk_weights);
#ifdef MOEP_HAVE_CUDA
    if (l->gpu != NULL) return moep__layer_cuda_last_routing(l, topk_idx, topk_weights);
#endif
    int32_t k = l->cfg.router.top_k;
    *topk_idx = moep_tensor_2d(l->topk_idx, MOEP_DTYPE_I32, l->last_tokens, k);
    *topk_weights = moep_tensor_2d(l->topk_weights, MOEP_DTYPE_F32, l->last_tokens, k);
    return MOEP_OK;
}
