/* Public entry points of the FP4 weight packer: checks, buffer layout, launches (fp4_pack.cu). */
#include <cuda_runtime_api.h>

#include "ffn_cuda.h"
#include "ffn_cuda_check.h"
#include "moep_internal.h"

/* Byte offsets of each stack's pieces in the packed buffer (w1, w3, w2). */
typedef struct pack_layout {
    size_t data[3], scales[3], global[3], bias[3], bytes;
    int32_t rows[3], cols[3];
} pack_layout_t;

static pack_layout_t pack_layout(const moep_expert_weights_t *w) {
    const int nv = w->format == MOEP_WEIGHTS_NVFP4;
    const int64_t E = w->num_experts;
    pack_layout_t l;
    size_t at = 0;
    for (int i = 0; i < 3; ++i) {
        l.rows[i] = i < 2 ? w->intermediate : w->hidden;
        l.cols[i] = i < 2 ? w->hidden : w->intermediate;
        const size_t segs = (size_t)E * (size_t)(l.rows[i] / 8) * (size_t)((l.cols[i] + 127) / 128);
        l.data[i] = at;
        at += moep__align256(segs * MOEP__FP4_PACK_CODE_BYTES);
        l.scales[i] = at;
        at += moep__align256(segs * MOEP__FP4_PACK_SCALE_BYTES(nv));
        l.global[i] = at;
        at += nv ? 0 : moep__align256((size_t)E * 4);
        l.bias[i] = at;
        at += nv ? 0 : moep__align256((size_t)E * 4);
    }
    l.bytes = at;
    return l;
}

/* The source weights: row-major FP4 that the GPU FFN would take. */
static moep_status_t check_source(const char *fn, const moep_expert_weights_t *w, moep_expert_weights_t *c) {
    MOEP_TRY(moep__ffn_cuda_check_weights(fn, w, c));
    if (c->format != MOEP_WEIGHTS_MXFP4 && c->format != MOEP_WEIGHTS_NVFP4)
        return moep__fail(MOEP_ERR_UNSUPPORTED, "%s: only MXFP4 and NVFP4 weights are packed, not %s", fn,
                          moep_weight_format_name(c->format));
    if (c->layout != MOEP_WEIGHT_LAYOUT_ROWS)
        return moep__fail(MOEP_ERR_INVALID_ARG, "%s: the weights are packed already", fn);
    return MOEP_OK;
}

moep_status_t moep_expert_weights_pack_cuda_size(const moep_expert_weights_t *w, size_t *bytes) {
    static const char fn[] = "moep_expert_weights_pack_cuda_size";
    MOEP_CHECK_ARG(fn, bytes);
    *bytes = 0;
    moep_expert_weights_t c;
    MOEP_TRY(check_source(fn, w, &c));
    *bytes = pack_layout(&c).bytes;
    return MOEP_OK;
}

moep_status_t moep_expert_weights_pack_cuda(const moep_expert_weights_t *w, void *buffer, size_t bytes,
                                            moep_expert_weights_t *packed, moep_stream_t stream) {
    static const char fn[] = "moep_expert_weights_pack_cuda";
    MOEP_CHECK_ARG(fn, buffer);
    MOEP_CHECK_ARG(fn, packed);
    moep_expert_weights_t c;
    MOEP_TRY(check_source(fn, w, &c));
    if ((uintptr_t)buffer % 256 != 0)
        return moep__fail(MOEP_ERR_INVALID_ARG, "%s: buffer is not 256-byte aligned", fn);
    const pack_layout_t l = pack_layout(&c);
    if (bytes < l.bytes)
        return moep__fail(MOEP_ERR_SHAPE, "%s: buffer of %zu bytes, the packed weights need %zu", fn, bytes,
                          l.bytes);
    const int nv = c.format == MOEP_WEIGHTS_NVFP4;
    moep_expert_weights_t out = c;
    moep_weight_stack_t *dst[3] = {&out.w1, &out.w3, &out.w2};
    const moep_weight_stack_t *src[3] = {&c.w1, &c.w3, &c.w2};
    char *b = (char *)buffer;
    for (int i = 0; i < 3; ++i) {
        float *global = nv ? NULL : (float *)(b + l.global[i]);
        cudaError_t e = moep__fp4_pack_stack(nv, src[i], c.num_experts, l.rows[i], l.cols[i],
                                             (uint8_t *)(b + l.data[i]), (uint8_t *)(b + l.scales[i]),
                                             global, (int32_t *)(b + l.bias[i]), (cudaStream_t)stream);
        if (e != cudaSuccess)
            return moep__fail(MOEP_ERR_CUDA, "%s: packing kernels: %s", fn, cudaGetErrorString(e));
        dst[i]->data = b + l.data[i];
        dst[i]->scales = b + l.scales[i];
        if (!nv) dst[i]->global_scale = global; /* NVFP4 keeps the source's */
    }
    out.layout = MOEP_WEIGHT_LAYOUT_FP4_PACKED;
    *packed = out;
    return MOEP_OK;
}
