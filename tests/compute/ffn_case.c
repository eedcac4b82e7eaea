#include "ffn_case.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static void *xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    ck_assert_ptr_nonnull(p);
    return p;
}

/* Random f32 weights [E, rows, cols] stored as `fmt` (moep_quantize_weights);
 * `values` gets them back as the library must read them. */
static void *make_weights(test_rng_t *rng, moep_weight_format_t fmt, int32_t E, int32_t rows,
                          int32_t cols, float scale, float **values, void **scales,
                          float **global) {
    const size_t n = (size_t)E * rows * cols;
    float *v = xmalloc(n * sizeof(float));
    test_fill_normal(rng, v, (int64_t)n, scale);
    size_t data_bytes = 0, scale_bytes = 0;
    ck_assert_ok(moep_weight_stack_bytes(fmt, E, rows, cols, &data_bytes, &scale_bytes));
    void *data = xmalloc(data_bytes);
    *scales = xmalloc(scale_bytes);
    *global = xmalloc((size_t)E * sizeof(float));
    moep_tensor_t src = moep_tensor_3d(v, MOEP_DTYPE_F32, E, rows, cols);
    ck_assert_ok(moep_quantize_weights(fmt, &src, data, *scales, *global));
    ck_assert_ok(moep_dequantize_weights(fmt, E, rows, cols, data, *scales, *global, &src));
    *values = v;
    return data;
}

static void *make_rows(test_rng_t *rng, moep_dtype_t t, size_t n, float **values) {
    float *v = xmalloc(n * sizeof(float));
    test_fill_normal(rng, v, (int64_t)n, 1.0f);
    *values = v;
    if (t == MOEP_DTYPE_F32) {
        float *s = xmalloc(n * sizeof(float));
        memcpy(s, v, n * sizeof(float));
        return s;
    }
    uint16_t *s = xmalloc(n * sizeof(uint16_t));
    for (size_t i = 0; i < n; i++) {
        s[i] = moep_f32_to_bf16(v[i]);
        v[i] = moep_bf16_to_f32(s[i]);
    }
    return s;
}

static void fill_sentinel(moep_dtype_t t, size_t n, void *y) {
    for (size_t i = 0; i < n; i++) {
        if (t == MOEP_DTYPE_F32) ((float *)y)[i] = FFN_SENTINEL;
        else ((uint16_t *)y)[i] = moep_f32_to_bf16(FFN_SENTINEL);
    }
}

void ffn_case_make(ffn_case_t *c, test_rng_t *rng, int32_t E, int32_t H, int32_t I,
                   const int64_t *counts, int64_t pad_front, int64_t pad_back,
                   moep_weight_format_t format, moep_dtype_t x_dtype, moep_dtype_t y_dtype) {
    memset(c, 0, sizeof *c);
    c->E = E;
    c->H = H;
    c->I = I;
    c->format = format;
    c->x_dtype = x_dtype;
    c->y_dtype = y_dtype;
    c->offset = xmalloc((size_t)(E + 1) * sizeof(int64_t));
    c->offset[0] = pad_front;
    for (int32_t e = 0; e < E; e++) c->offset[e + 1] = c->offset[e] + counts[e];
    c->N = c->offset[E] + pad_back;
    /* Scales keep g, u and y near 1 so relative errors mean something. */
    c->w1 = make_weights(rng, format, E, I, H, 1.0f / sqrtf((float)H), &c->v1, &c->s1, &c->g1);
    c->w3 = make_weights(rng, format, E, I, H, 1.0f / sqrtf((float)H), &c->v3, &c->s3, &c->g3);
    c->w2 = make_weights(rng, format, E, H, I, 1.0f / sqrtf((float)I), &c->v2, &c->s2, &c->g2);
    c->x = make_rows(rng, x_dtype, (size_t)c->N * H, &c->xv);
    c->y = xmalloc((size_t)c->N * H * sizeof(float));
    fill_sentinel(y_dtype, (size_t)c->N * H, c->y);
}

void ffn_case_free(ffn_case_t *c) {
    free(c->offset);
    free(c->w1);
    free(c->w3);
    free(c->w2);
    free(c->v1);
    free(c->v3);
    free(c->v2);
    free(c->s1);
    free(c->s3);
    free(c->s2);
    free(c->g1);
    free(c->g3);
    free(c->g2);
    free(c->x);
    free(c->xv);
    free(c->y);
}

moep_expert_weights_t ffn_case_weights(const ffn_case_t *c) {
    moep_expert_weights_t w;
    ck_assert_ok(moep_expert_weights_init(&w));
    w.format = c->format;
    w.num_experts = c->E;
    w.hidden = c->H;
    w.intermediate = c->I;
    w.w1.data = c->w1;
    w.w3.data = c->w3;
    w.w2.data = c->w2;
    w.w1.scales = c->s1;
    w.w3.scales = c->s3;
    w.w2.scales = c->s2;
    w.w1.global_scale = c->g1;
    w.w3.global_scale = c->g3;
    w.w2.global_scale = c->g2;
    return w;
}

moep_tensor_t ffn_case_x(const ffn_case_t *c) { return moep_tensor_2d(c->x, c->x_dtype, c->N, c->H); }
moep_tensor_t ffn_case_y(const ffn_case_t *c) { return moep_tensor_2d(c->y, c->y_dtype, c->N, c->H); }

void ffn_case_y_f32(const ffn_case_t *c, float *out) {
    for (int64_t i = 0; i < c->N * c->H; i++)
        out[i] = c->y_dtype == MOEP_DTYPE_F32 ? ((const float *)c->y)[i]
                                              : moep_bf16_to_f32(((const uint16_t *)c->y)[i]);
}

void ffn_case_reference(const ffn_case_t *c, double *ref) {
    const int64_t H = c->H, I = c->I;
    double *a = xmalloc((size_t)I * sizeof(double));
    for (int32_t e = 0; e < c->E; e++) {
        const float *w1 = c->v1 + (size_t)e * I * H, *w3 = c->v3 + (size_t)e * I * H;
        const float *w2 = c->v2 + (size_t)e * H * I;
        for (int64_t r = c->offset[e]; r < c->offset[e + 1]; r++) {
            const float *x = c->xv + r * H;
            for (int64_t n = 0; n < I; n++) {
                double g = 0, u = 0;
                for (int64_t k = 0; k < H; k++) {
                    g += (double)w1[n * H + k] * x[k];
                    u += (double)w3[n * H + k] * x[k];
                }
                a[n] = g / (1.0 + exp(-g)) * u;
            }
            for (int64_t n = 0; n < H; n++) {
                double s = 0;
                for (int64_t k = 0; k < I; k++) s += (double)w2[n * I + k] * a[k];
                ref[r * H + n] = s;
            }
        }
    }
    free(a);
}

double ffn_case_tolerance(const ffn_case_t *c) {
    return c->y_dtype == MOEP_DTYPE_F32 ? 1e-5 : 0x1p-8;
}

double ffn_case_error(const ffn_case_t *c) {
    const int64_t n = c->N * c->H, r0 = c->offset[0], r1 = c->offset[c->E];
    double *ref = xmalloc((size_t)n * sizeof(double));
    float *got = xmalloc((size_t)n * sizeof(float));
    ffn_case_reference(c, ref);
    ffn_case_y_f32(c, got);
    double err = r1 > r0 ? test_max_rel_err(got + r0 * c->H, ref + r0 * c->H, (r1 - r0) * c->H) : 0;
    free(ref);
    free(got);
    return err;
}

int ffn_case_padding_intact(const ffn_case_t *c) {
    const size_t esize = c->y_dtype == MOEP_DTYPE_F32 ? 4 : 2, row = (size_t)c->H * esize;
    unsigned char *want = xmalloc(row);
    fill_sentinel(c->y_dtype, (size_t)c->H, want);
    int ok = 1;
    for (int64_t r = 0; r < c->N; r++)
        if (r < c->offset[0] || r >= c->offset[c->E])
            ok &= memcmp((const unsigned char *)c->y + (size_t)r * row, want, row) == 0;
    free(want);
    return ok;
}
