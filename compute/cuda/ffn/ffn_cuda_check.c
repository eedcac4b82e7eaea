/* Argument checks of the GPU expert FFN (no CUDA calls): status code per failure. */
#include "ffn_cuda_check.h"

#include "moep_internal.h"

static moep_status_t check_stack(const char *fn, const char *name, const moep_weight_stack_t *s,
                                 int nv) {
    if (!s->data || !s->scales)
        return moep__fail(MOEP_ERR_INVALID_ARG, "%s: %s data or scales is NULL", fn, name);
    if (nv && !s->global_scale)
        return moep__fail(MOEP_ERR_INVALID_ARG, "%s: %s global_scale is NULL (NVFP4 or packed)", fn, name);
    if (((uintptr_t)s->data & 15) != 0)
        return moep__fail(MOEP_ERR_SHAPE, "%s: %s data is not 16-byte aligned", fn, name);
    return MOEP_OK;
}

moep_status_t moep__ffn_cuda_check_weights(const char *fn, const moep_expert_weights_t *w_in,
                                           moep_expert_weights_t *out) {
    MOEP_CHECK_ARG(fn, w_in);
    moep_expert_weights_init(out);
    MOEP_TRY(moep__load_versioned(fn, out, sizeof *out, w_in));
    const moep_expert_weights_t *w = out;
    const int fmt = w->format;
    if (fmt != MOEP_WEIGHTS_FP8_E4M3 && fmt != MOEP_WEIGHTS_MXFP4 && fmt != MOEP_WEIGHTS_NVFP4)
        return moep__fail(MOEP_ERR_UNSUPPORTED, "%s: weight format %s has no GPU kernel", fn,
                          moep_weight_format_name(w->format));
    if (w->layout != MOEP_WEIGHT_LAYOUT_ROWS &&
        (w->layout != MOEP_WEIGHT_LAYOUT_FP4_PACKED || fmt == MOEP_WEIGHTS_FP8_E4M3))
        return moep__fail(MOEP_ERR_INVALID_ARG, "%s: weight layout %d does not apply to %s", fn,
                          (int)w->layout, moep_weight_format_name(w->format));
    const int32_t E = w->num_experts, H = w->hidden, I = w->intermediate;
    if (E <= 0 || E > 1024 || H <= 0 || I <= 0)
        return moep__fail(E > 1024 ? MOEP_ERR_UNSUPPORTED : MOEP_ERR_SHAPE,
                          "%s: E=%d H=%d I=%d (need E in 1..1024, H, I > 0)", fn, E, H, I);
    const int align = fmt == MOEP_WEIGHTS_FP8_E4M3 ? 16 : 32;
    if (H % align || I % align)
        return moep__fail(MOEP_ERR_SHAPE, "%s: H=%d and I=%d must be multiples of %d for %s", fn,
                          H, I, align, moep_weight_format_name(w->format));
    /* packed MX carries per-expert powers of 2 in global_scale */
    const int gs = fmt == MOEP_WEIGHTS_NVFP4 || w->layout == MOEP_WEIGHT_LAYOUT_FP4_PACKED;
    MOEP_TRY(check_stack(fn, "w1", &w->w1, gs));
    MOEP_TRY(check_stack(fn, "w3", &w->w3, gs));
    return check_stack(fn, "w2", &w->w2, gs);
}

moep_status_t moep__ffn_cuda_check(const char *fn, const moep_expert_weights_t *w_in,
                                   const moep_tensor_t *x, const moep_tensor_t *x_scales,
                                   const void *rows, const moep_tensor_t *y, int masked,
                                   moep__ffn_cuda_shape_t *out) {
    MOEP_CHECK_ARG(fn, w_in);
    MOEP_CHECK_ARG(fn, x);
    MOEP_CHECK_ARG(fn, y);
    MOEP_CHECK_ARG(fn, rows);
    MOEP_TRY(moep__ffn_cuda_check_weights(fn, w_in, &out->w));
    const moep_expert_weights_t *w = &out->w;
    const int32_t E = w->num_experts, H = w->hidden, I = w->intermediate;
    const int want_nd = masked ? 3 : 2;
    if (x->ndim != want_nd || y->ndim != want_nd)
        return moep__fail(MOEP_ERR_SHAPE, "%s: x and y must be %d-D", fn, want_nd);
    if (x->device != MOEP_DEVICE_CUDA || y->device != MOEP_DEVICE_CUDA)
        return moep__fail(MOEP_ERR_INVALID_ARG, "%s: x and y must be CUDA device tensors", fn);
    int64_t n = x->shape[0], mt = 0;
    if (masked) {
        if (x->shape[0] != E)
            return moep__fail(MOEP_ERR_SHAPE, "%s: x has %lld experts, weights %d", fn,
                              (long long)x->shape[0], E);
        mt = x->shape[1];
        n = (int64_t)E * mt;
    }
    for (int d = 0; d < want_nd; ++d)
        if (y->shape[d] != x->shape[d])
            return moep__fail(MOEP_ERR_SHAPE, "%s: y shape differs from x in dim %d", fn, d);
    if (x->shape[want_nd - 1] != H)
        return moep__fail(MOEP_ERR_SHAPE, "%s: x has %lld channels, hidden is %d", fn,
                          (long long)x->shape[want_nd - 1], H);
    if (y->dtype != MOEP_DTYPE_BF16)
        return moep__fail(MOEP_ERR_SHAPE, "%s: y must be bf16", fn);
    if (n > 0 && (!x->data || !y->data))
        return moep__fail(MOEP_ERR_INVALID_ARG, "%s: x or y data is NULL", fn);
    if (n >= ((int64_t)1 << 31) || (int64_t)E * (H > I ? H : I) >= ((int64_t)1 << 31))
        return moep__fail(MOEP_ERR_UNSUPPORTED, "%s: more than 2^31 rows", fn);
    if (x->dtype == MOEP_DTYPE_BF16) {
        if (x_scales)
            return moep__fail(MOEP_ERR_INVALID_ARG, "%s: x_scales given for bf16 x", fn);
    } else if (x->dtype == MOEP_DTYPE_FP8_E4M3) {
        if (!x_scales || (n > 0 && !x_scales->data))
            return moep__fail(MOEP_ERR_INVALID_ARG, "%s: FP8 x needs x_scales", fn);
        const int64_t nb = (H + 127) / 128;
        if (x_scales->dtype != MOEP_DTYPE_F32 || moep_tensor_numel(x_scales) != n * nb)
            return moep__fail(MOEP_ERR_SHAPE, "%s: x_scales must be f32 with %lld x %lld elements",
                              fn, (long long)n, (long long)nb);
    } else {
        return moep__fail(MOEP_ERR_SHAPE, "%s: x must be bf16 or FP8 E4M3, not %s", fn,
                          moep_dtype_name(x->dtype));
    }
    if ((((uintptr_t)x->data | (uintptr_t)y->data) & 15) != 0)
        return moep__fail(MOEP_ERR_SHAPE, "%s: x and y must be 16-byte aligned", fn);
    out->n = n;
    out->max_tokens = mt;
    return MOEP_OK;
}
