/* Argument validation for moep_expert_ffn. */
#include <string.h>

#include "ffn_plan.h"
#include "moep_internal.h"

static const char *const FN = "moep_expert_ffn";

static moep_status_t check_stack(const char *name, const moep_weight_stack_t *s,
                                 moep_weight_format_t f) {
    if (s->data == NULL) return moep__fail(MOEP_ERR_INVALID_ARG, "%s: %s.data is NULL", FN, name);
    int scaled = f != MOEP_WEIGHTS_F32 && f != MOEP_WEIGHTS_BF16;
    if (scaled && s->scales == NULL)
        return moep__fail(MOEP_ERR_INVALID_ARG, "%s: %s.scales is NULL (format %s)", FN, name,
                          moep_weight_format_name(f));
    if (f == MOEP_WEIGHTS_NVFP4 && s->global_scale == NULL)
        return moep__fail(MOEP_ERR_INVALID_ARG, "%s: %s.global_scale is NULL (format nvfp4)", FN,
                          name);
    return MOEP_OK;
}

static moep_status_t check_weights(const moep_expert_weights_t *w) {
    if ((int)w->format < 0 || w->format >= MOEP_WEIGHTS_FORMAT_COUNT_)
        return moep__fail(MOEP_ERR_INVALID_ARG, "%s: unknown weight format %d", FN, (int)w->format);
    if (w->layout != MOEP_WEIGHT_LAYOUT_ROWS)
        return moep__fail(MOEP_ERR_UNSUPPORTED,
                          "%s: weight layout %d is the GPU's packed one; the CPU FFN takes row-major weights",
                          FN, (int)w->layout);
    if (w->num_experts <= 0 || w->hidden <= 0 || w->intermediate <= 0)
        return moep__fail(MOEP_ERR_INVALID_ARG,
                          "%s: num_experts %d, hidden %d, intermediate %d must all be > 0", FN,
                          w->num_experts, w->hidden, w->intermediate);
    MOEP_TRY(check_stack("w1", &w->w1, w->format));
    MOEP_TRY(check_stack("w3", &w->w3, w->format));
    MOEP_TRY(check_stack("w2", &w->w2, w->format));
    /* Block-scaled FP4 needs whole blocks along each row (cols = H for w1/w3, I for w2). */
    int block = w->format == MOEP_WEIGHTS_MXFP4 ? 32 : w->format == MOEP_WEIGHTS_NVFP4 ? 16 : 1;
    if (w->hidden % block != 0 || w->intermediate % block != 0)
        return moep__fail(MOEP_ERR_SHAPE, "%s: %s needs hidden (%d) and intermediate (%d) to be multiples of %d",
                          FN, moep_weight_format_name(w->format), w->hidden, w->intermediate, block);
    return MOEP_OK;
}

static moep_status_t check_activation(const char *name, const moep_tensor_t *t, int64_t H) {
    const int64_t shape[2] = {MOEP_ANY, H};
    MOEP_TRY(moep__check_tensor(FN, name, t, 2, MOEP_ANY, shape));
    if (t->dtype != MOEP_DTYPE_F32 && t->dtype != MOEP_DTYPE_BF16)
        return moep__fail(MOEP_ERR_SHAPE, "%s: %s has dtype %s, expected f32 or bf16", FN, name,
                          moep_dtype_name(t->dtype));
    return MOEP_OK;
}

static int ranges_overlap(const moep_tensor_t *a, const moep_tensor_t *b) {
    uintptr_t a0 = (uintptr_t)a->data, b0 = (uintptr_t)b->data;
    uintptr_t a1 = a0 + (uintptr_t)moep_tensor_numel(a) * moep__dtype_size(a->dtype);
    uintptr_t b1 = b0 + (uintptr_t)moep_tensor_numel(b) * moep__dtype_size(b->dtype);
    return a0 < b1 && b0 < a1;
}

static moep_status_t check_offsets(const int64_t *off, int64_t E, int64_t N) {
    if (off[0] < 0)
        return moep__fail(MOEP_ERR_OUT_OF_RANGE, "%s: expert_offset[0] = %lld is negative", FN,
                          (long long)off[0]);
    for (int64_t e = 0; e < E; e++)
        if (off[e + 1] < off[e])
            return moep__fail(MOEP_ERR_OUT_OF_RANGE,
                              "%s: expert_offset[%lld] = %lld < expert_offset[%lld] = %lld (must be non-decreasing)",
                              FN, (long long)e + 1, (long long)off[e + 1], (long long)e,
                              (long long)off[e]);
    if (off[E] > N)
        return moep__fail(MOEP_ERR_OUT_OF_RANGE, "%s: expert_offset[%lld] = %lld exceeds %lld rows",
                          FN, (long long)E, (long long)off[E], (long long)N);
    return MOEP_OK;
}

static void set_stack(moep__wsrc_t *d, const moep_weight_stack_t *s, moep_weight_format_t f,
                      int64_t rows, int64_t cols) {
    d->format = f;
    d->stack = *s;
    d->rows = rows;
    d->cols = cols;
}

moep_status_t moep__ffn_plan_make(const moep_expert_weights_t *w_in, const moep_tensor_t *x,
                                  const int64_t *expert_offset, moep_tensor_t *y,
                                  int32_t num_threads, moep__ffn_plan_t *plan) {
    MOEP_CHECK_ARG(FN, w_in);
    MOEP_CHECK_ARG(FN, x);
    MOEP_CHECK_ARG(FN, expert_offset);
    MOEP_CHECK_ARG(FN, y);
    moep_expert_weights_t w;
    moep_expert_weights_init(&w);
    MOEP_TRY(moep__load_versioned(FN, &w, sizeof w, w_in));
    MOEP_TRY(check_weights(&w));
    if (num_threads < 0)
        return moep__fail(MOEP_ERR_INVALID_ARG, "%s: num_threads %d is negative", FN, num_threads);

    const int64_t H = w.hidden, I = w.intermediate, E = w.num_experts;
    MOEP_TRY(check_activation("x", x, H));
    MOEP_TRY(check_activation("y", y, H));
    if (y->shape[0] != x->shape[0])
        return moep__fail(MOEP_ERR_SHAPE, "%s: y has %lld rows, x has %lld", FN,
                          (long long)y->shape[0], (long long)x->shape[0]);
    if (moep_tensor_numel(x) > 0 && ranges_overlap(x, y))
        return moep__fail(MOEP_ERR_INVALID_ARG, "%s: y overlaps x (in-place is not supported)", FN);
    MOEP_TRY(check_offsets(expert_offset, E, x->shape[0]));

    memset(plan, 0, sizeof *plan);
    set_stack(&plan->w1, &w.w1, w.format, I, H);
    set_stack(&plan->w3, &w.w3, w.format, I, H);
    set_stack(&plan->w2, &w.w2, w.format, H, I);
    plan->E = E;
    plan->H = H;
    plan->I = I;
    plan->N = x->shape[0];
    plan->x = x->data;
    plan->x_dtype = x->dtype;
    plan->y = y->data;
    plan->y_dtype = y->dtype;
    plan->offset = expert_offset;
    plan->num_threads = num_threads;
    return MOEP_OK;
}
