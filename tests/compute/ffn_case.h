/*
 * A random expert-FFN problem for the tests: weights in a given storage
 * format, activations, expert offsets with padding rows around them, and the
 * float64 reference computed from the exact values the library sees (inputs
 * after their bf16 rounding; quantized weights as moep_dequantize_weights
 * gives them back).
 */
#ifndef MOEP_TESTS_FFN_CASE_H
#define MOEP_TESTS_FFN_CASE_H

#include "moep.h"
#include "test_util.h"

typedef struct ffn_case {
    int32_t E, H, I;
    int64_t N;
    int64_t *offset;           /* [E+1] */
    moep_weight_format_t format;
    void *w1, *w3, *w2;        /* stored weights */
    void *s1, *s3, *s2;        /* their scales (block-scaled formats) */
    float *g1, *g3, *g2;       /* NVFP4 global scales [E] */
    float *v1, *v3, *v2;       /* their values as the library must see them */
    moep_dtype_t x_dtype, y_dtype;
    void *x, *y;               /* [N, H] */
    float *xv;                 /* x values */
} ffn_case_t;

#define FFN_SENTINEL 12345.0f /* y is pre-filled with it: padding rows must keep it */

/* counts[e] rows per expert; pad_front / pad_back padding rows around them. */
void ffn_case_make(ffn_case_t *c, test_rng_t *rng, int32_t E, int32_t H, int32_t I,
                   const int64_t *counts, int64_t pad_front, int64_t pad_back,
                   moep_weight_format_t format, moep_dtype_t x_dtype, moep_dtype_t y_dtype);
void ffn_case_free(ffn_case_t *c);

moep_expert_weights_t ffn_case_weights(const ffn_case_t *c);
moep_tensor_t ffn_case_x(const ffn_case_t *c);
moep_tensor_t ffn_case_y(const ffn_case_t *c);

/* y as f32 (whatever its dtype). `out` has N*H floats. */
void ffn_case_y_f32(const ffn_case_t *c, float *out);
/* float64 reference for the rows of every expert ([N, H]; padding rows unset). */
void ffn_case_reference(const ffn_case_t *c, double *ref);
/* test_max_rel_err of y against the reference over the expert rows. */
double ffn_case_error(const ffn_case_t *c);
/* 1 if every padding row of y still holds FFN_SENTINEL, bit for bit. */
int ffn_case_padding_intact(const ffn_case_t *c);

/* Tolerance on test_max_rel_err: f32 output 1e-5; bf16 output adds its
 * rounding (half an ulp = 2^-9 relative), bounded here by 2^-8. */
double ffn_case_tolerance(const ffn_case_t *c);

#endif
