/* Argument checks of the GPU expert FFN entry points. */
#ifndef MOEP_FFN_CUDA_CHECK_H
#define MOEP_FFN_CUDA_CHECK_H

#include "moep_cuda_ffn.h"

typedef struct moep__ffn_cuda_shape {
    int64_t n;               /* rows of x / y */
    int64_t max_tokens;      /* masked layout */
    moep_expert_weights_t w; /* the caller's weights as this version reads them */
} moep__ffn_cuda_shape_t;

/* The weight checks alone (also the packer's); *out: w as this version reads it. */
moep_status_t moep__ffn_cuda_check_weights(const char *fn, const moep_expert_weights_t *w,
                                           moep_expert_weights_t *out);

moep_status_t moep__ffn_cuda_check(const char *fn, const moep_expert_weights_t *w,
                                   const moep_tensor_t *x, const moep_tensor_t *x_scales,
                                   const void *rows, const moep_tensor_t *y, int masked,
                                   moep__ffn_cuda_shape_t *out);

#endif /* MOEP_FFN_CUDA_CHECK_H */
