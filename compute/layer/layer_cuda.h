/* The GPU MoE layer (CUDA build): a layer over a device communicator runs
 * its forward on the comm's GPU and stream (api/moep_cuda.h says how it
 * differs from the CPU layer). layer.c / layer_forward.c hand over to these
 * when layer->gpu is set; the CPU path is unchanged. */
#ifndef MOEP_LAYER_CUDA_H
#define MOEP_LAYER_CUDA_H

#include <cuda_runtime.h>

#include "cuda_buf.h"
#include "layer_internal.h"

enum { MOEP__LAYER_EVENTS = 6 }; /* start, routed, dispatched, experts, shared, combined */

struct moep__layer_gpu {
    int32_t device;
    float *gate;                      /* [E, H] device */
    moep__cuda_buf_t logits;          /* [T, E] f32 */
    moep__cuda_buf_t router_part;     /* split-K partial logits of the router GEMM */
    moep__cuda_buf_t topk_idx;        /* [T, k] i32 */
    moep__cuda_buf_t topk_w;          /* [T, k] f32 */
    moep__cuda_buf_t first_nan;       /* one i64: moep_route_cuda_async's NaN report */
    moep__cuda_buf_t expert_y;        /* [rows, H] bf16 */
    moep__cuda_buf_t offsets;         /* [L+1] routed expert offsets, then [2] shared {0, T} */
    moep__cuda_buf_t ffn_ws;          /* the expert FFNs' workspace (routed, then shared: in
                                       * stream order, so one serves both) */
    int64_t *offsets_host;            /* pinned staging of the above */
    size_t offsets_host_cap;          /* in int64 */
    int32_t *idx_host;                /* topk_idx copied home for the load statistics */
    size_t idx_host_cap;              /* in int32 */
    cudaEvent_t ev[MOEP__LAYER_EVENTS];
};

/* After the comm is known to be a device one: checks act_dtype, allocates. */
moep_status_t moep__layer_cuda_init(moep_layer_t *l);
void moep__layer_cuda_free(moep_layer_t *l);
moep_status_t moep__layer_cuda_set_gate(moep_layer_t *l, const moep_tensor_t *gate);
/* FP8 / MXFP4 / NVFP4 only (the GPU FFN's formats). */
moep_status_t moep__layer_cuda_check_format(const char *fn, const moep_expert_weights_t *w);
moep_status_t moep__layer_cuda_last_routing(const moep_layer_t *l, moep_tensor_t *topk_idx,
                                            moep_tensor_t *topk_weights);
moep_status_t moep__layer_cuda_forward(moep_layer_t *l, const moep_tensor_t *x,
                                       const moep_tensor_t *token_ids, moep_tensor_t *y,
                                       moep_layer_timings_t *timings);

/* CUDA failure as MOEP_ERR_CUDA (MOEP_ERR_NO_MEMORY for an allocation). */
moep_status_t moep__layer_cuda_check(const char *fn, cudaError_t e, const char *what);
/* Grow b to `need` bytes on the forward's stream s (moep__cuda_buf_grow:
 * stream-ordered, as a collective of an earlier forward may be stuck on a
 * dead peer; contents dropped). */
moep_status_t moep__layer_dbuf_reserve(const char *fn, moep__cuda_buf_t *b, size_t need,
                                       moep_stream_t s);

#endif
