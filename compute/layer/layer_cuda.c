/* GPU layer lifecycle: device state, the gate on the GPU, weight formats,
 * the routing views. */
#include <stdlib.h>
#include <string.h>

#include "layer_cuda.h"

moep_status_t moep__layer_cuda_check(const char *fn, cudaError_t e, const char *what) {
    if (e == cudaSuccess) return MOEP_OK;
    cudaGetLastError(); /* clear a non-sticky error */
    return moep__fail(e == cudaErrorMemoryAllocation ? MOEP_ERR_NO_MEMORY : MOEP_ERR_CUDA,
                      "%s: %s: %s", fn, what, cudaGetErrorString(e));
}

moep_status_t moep__layer_dbuf_reserve(const char *fn, moep__cuda_buf_t *b, size_t need,
                                       moep_stream_t s) {
    return moep__layer_cuda_check(fn, moep__cuda_buf_grow(b, need, (cudaStream_t)s),
                                  "device buffer allocation");
}

moep_status_t moep__layer_cuda_init(moep_layer_t *l) {
    static const char *fn = "moep_layer_create";
    if (l->cfg.act_dtype != MOEP_DTYPE_BF16)
        return moep__fail(MOEP_ERR_UNSUPPORTED,
                          "%s: a layer on a device communicator needs act_dtype bf16 (the GPU "
                          "expert FFN takes and writes bf16 rows), got %s", fn,
                          moep_dtype_name(l->cfg.act_dtype));
    struct moep__layer_gpu *g = moep__calloc(fn, 1, sizeof *g);
    if (g == NULL) return MOEP_ERR_NO_MEMORY;
    l->gpu = g;
    g->device = moep_comm_device_cuda(l->comm);
    MOEP_TRY(moep__layer_cuda_check(fn, cudaSetDevice(g->device), "cudaSetDevice"));
    /* The gate: plain cudaMalloc, once, at creation (before any forward of
     * this layer), and valid on every stream, which the synchronous copy of
     * moep_layer_set_gate needs. */
    size_t gate_bytes = (size_t)l->cfg.router.num_experts * l->cfg.hidden * sizeof(float);
    MOEP_TRY(moep__layer_cuda_check(fn, cudaMalloc((void **)&g->gate, gate_bytes), "cudaMalloc"));
    MOEP_TRY(moep__layer_cuda_check(fn, cudaMemset(g->gate, 0, gate_bytes), "cudaMemset"));
    for (int i = 0; i < MOEP__LAYER_EVENTS; i++)
        MOEP_TRY(moep__layer_cuda_check(fn, cudaEventCreate(&g->ev[i]), "cudaEventCreate"));
    return MOEP_OK;
}

void moep__layer_cuda_free(moep_layer_t *l) {
    struct moep__layer_gpu *g = l->gpu;
    if (g == NULL) return;
    cudaSetDevice(g->device);
    cudaFree(g->gate); /* end of life, like moep__cuda_buf_free */
    moep__cuda_buf_t *all[] = {&g->logits,    &g->router_part, &g->topk_idx, &g->topk_w,
                               &g->first_nan, &g->expert_y,    &g->offsets,  &g->ffn_ws};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) moep__cuda_buf_free(all[i]);
    if (g->offsets_host != NULL) cudaFreeHost(g->offsets_host);
    free(g->idx_host);
    for (int i = 0; i < MOEP__LAYER_EVENTS; i++)
        if (g->ev[i] != NULL) cudaEventDestroy(g->ev[i]);
    free(g);
    l->gpu = NULL;
}

moep_status_t moep__layer_cuda_set_gate(moep_layer_t *l, const moep_tensor_t *gate) {
    static const char *fn = "moep_layer_set_gate";
    const int64_t shape[2] = {l->cfg.router.num_experts, l->cfg.hidden};
    MOEP_CHECK_ARG(fn, gate);
    moep_tensor_t host_view = *gate; /* shape / dtype checks of the host checker */
    host_view.device = MOEP_DEVICE_CPU;
    MOEP_TRY(moep__check_tensor(fn, "gate", &host_view, 2, MOEP_DTYPE_F32, shape));
    if (gate->device != MOEP_DEVICE_CPU && gate->device != MOEP_DEVICE_CUDA)
        return moep__fail(MOEP_ERR_INVALID_ARG, "%s: gate has unknown device %d", fn, (int)gate->device);
    size_t bytes = (size_t)shape[0] * shape[1] * sizeof(float);
    MOEP_TRY(moep__layer_cuda_check(fn, cudaSetDevice(l->gpu->device), "cudaSetDevice"));
    return moep__layer_cuda_check(fn, cudaMemcpy(l->gpu->gate, gate->data, bytes, cudaMemcpyDefault),
                                  "copy of the gate");
}

moep_status_t moep__layer_cuda_check_format(const char *fn, const moep_expert_weights_t *w) {
    if (w->format == MOEP_WEIGHTS_FP8_E4M3 || w->format == MOEP_WEIGHTS_MXFP4 ||
        w->format == MOEP_WEIGHTS_NVFP4)
        return MOEP_OK;
    return moep__fail(MOEP_ERR_UNSUPPORTED,
                      "%s: the GPU layer takes FP8 E4M3, MXFP4 or NVFP4 weights (the GPU expert "
                      "FFN has no %s-weight path)", fn, moep_weight_format_name(w->format));
}

static moep_tensor_t dev2d(const struct moep__layer_gpu *g, void *p, moep_dtype_t t, int64_t a,
                           int64_t b) {
    moep_tensor_t x = moep_tensor_2d(p, t, a, b);
    x.device = MOEP_DEVICE_CUDA;
    x.device_id = g->device;
    return x;
}

moep_status_t moep__layer_cuda_last_routing(const moep_layer_t *l, moep_tensor_t *topk_idx,
                                            moep_tensor_t *topk_weights) {
    int32_t k = l->cfg.router.top_k;
    *topk_idx = dev2d(l->gpu, l->gpu->topk_idx.p, MOEP_DTYPE_I32, l->last_tokens, k);
    *topk_weights = dev2d(l->gpu, l->gpu->topk_w.p, MOEP_DTYPE_F32, l->last_tokens, k);
    return MOEP_OK;
}
