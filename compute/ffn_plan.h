/*
 * A validated moep_expert_ffn call: every argument checked once, up front,
 * so the compute code (ffn_run.c) can trust its inputs. Internal (moep__).
 */
#ifndef MOEP_COMPUTE_FFN_PLAN_H
#define MOEP_COMPUTE_FFN_PLAN_H

#include "ffn_weights.h"
#include "moep.h"

typedef struct moep__ffn_plan {
    moep__wsrc_t w1, w3, w2; /* gate [E,I,H], up [E,I,H], down [E,H,I] */
    int64_t E, H, I, N;
    const void *x;
    moep_dtype_t x_dtype;
    void *y;
    moep_dtype_t y_dtype;
    const int64_t *offset; /* [E+1] */
    int32_t num_threads;   /* as requested, 0 = OpenMP default */
} moep__ffn_plan_t;

/* Checks the arguments of moep_expert_ffn (messages name that function). */
moep_status_t moep__ffn_plan_make(const moep_expert_weights_t *w, const moep_tensor_t *x,
                                  const int64_t *expert_offset, moep_tensor_t *y,
                                  int32_t num_threads, moep__ffn_plan_t *plan);

#endif /* MOEP_COMPUTE_FFN_PLAN_H */
