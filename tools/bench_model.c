#include "bench_model.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* xorshift64*: fast, deterministic; uniform in [-a, a). */
static uint64_t rng_next(uint64_t *s) {
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 2685821657736338717ull;
}
static void fill_uniform(float *x, int64_t n, float a, uint64_t seed) {
    uint64_t s = seed * 0x9e3779b97f4a7c15ull + 1;
    for (int64_t i = 0; i < n; i++)
        x[i] = a * (float)((double)(rng_next(&s) >> 11) * 0x1p-52 - 1.0);
}

static void *xcalloc(size_t n) { return calloc(n ? n : 1, 1); }

/* Quantize the E-stack `master` [E, rows, cols] into `st` and overwrite
 * `master` with what the storage decodes to (the reference's weights). */
static moep_status_t store_stack(moep_weight_format_t f, int32_t E, int32_t rows, int32_t cols,
                                 float *master, bench_stack_t *st) {
    int64_t n = (int64_t)E * rows * cols;
    moep_tensor_t src = moep_tensor_3d(master, MOEP_DTYPE_F32, E, rows, cols);
    if (f == MOEP_WEIGHTS_F32 || f == MOEP_WEIGHTS_BF16) {
        size_t es = f == MOEP_WEIGHTS_F32 ? 4 : 2;
        st->data_bytes = (size_t)n * es;
        st->data = xcalloc(st->data_bytes);
        if (st->data == NULL) return MOEP_ERR_NO_MEMORY;
        if (f == MOEP_WEIGHTS_F32) {
            memcpy(st->data, master, st->data_bytes);
        } else {
            uint16_t *d = st->data;
            for (int64_t i = 0; i < n; i++) {
                d[i] = moep_f32_to_bf16(master[i]);
                master[i] = moep_bf16_to_f32(d[i]);
            }
        }
        return MOEP_OK;
    }
    BENCH_TRY(moep_weight_stack_bytes(f, E, rows, cols, &st->data_bytes, &st->scale_bytes));
    st->data = xcalloc(st->data_bytes);
    st->scales = xcalloc(st->scale_bytes);
    st->global_scale = calloc((size_t)E, sizeof(float));
    if (!st->data || !st->scales || !st->global_scale) return MOEP_ERR_NO_MEMORY;
    BENCH_TRY(moep_quantize_weights(f, &src, st->data, st->scales, st->global_scale));
    return moep_dequantize_weights(f, E, rows, cols, st->data, st->scales, st->global_scale, &src);
}

/* This rank's slice of a stack (experts are contiguous per rank). */
static moep_weight_stack_t local_slice(const bench_stack_t *st, int32_t E, int32_t first) {
    moep_weight_stack_t w = {
        (const uint8_t *)st->data + st->data_bytes / (size_t)E * (size_t)first,
        st->scales ? (const uint8_t *)st->scales + st->scale_bytes / (size_t)E * (size_t)first : NULL,
        st->global_scale ? st->global_scale + first : NULL,
    };
    return w;
}

/* --device cuda: the shared expert in FP8 (the GPU layer's formats). */
static moep_status_t make_shared_fp8(bench_model_t *m) {
    const bench_options_t *o = &m->opt;
    int32_t H = o->hidden, Is = o->shared_intermediate;
    float **refs[3] = {&m->ref_s1, &m->ref_s3, &m->ref_s2};
    bench_stack_t *st[3] = {&m->sh1, &m->sh3, &m->sh2};
    for (int i = 0; i < 3; i++) {
        *refs[i] = calloc((size_t)Is * H, sizeof(float));
        if (*refs[i] == NULL) return MOEP_ERR_NO_MEMORY;
        fill_uniform(*refs[i], (int64_t)Is * H, sqrtf(3.0f / (i == 2 ? Is : H)), o->seed * 31 + 1000 + i);
        BENCH_TRY(store_stack(MOEP_WEIGHTS_FP8_E4M3, 1, i == 2 ? H : Is, i == 2 ? Is : H, *refs[i], st[i]));
    }
    moep_expert_weights_init(&m->shared);
    m->shared.format = MOEP_WEIGHTS_FP8_E4M3;
    m->shared.num_experts = 1;
    m->shared.hidden = H;
    m->shared.intermediate = Is;
    m->shared.w1 = local_slice(&m->sh1, 1, 0);
    m->shared.w3 = local_slice(&m->sh3, 1, 0);
    m->shared.w2 = local_slice(&m->sh2, 1, 0);
    return MOEP_OK;
}

static moep_status_t make_shared(bench_model_t *m) {
    const bench_options_t *o = &m->opt;
    if (o->device == MOEP_DEVICE_CUDA) return make_shared_fp8(m);
    int32_t H = o->hidden, Is = o->shared_intermediate;
    size_t n = (size_t)Is * H, es = (o->dtype == MOEP_DTYPE_BF16 ? 2u : 4u);
    float *refs[3];
    void **stores[3] = {&m->s1, &m->s3, &m->s2};
    for (int i = 0; i < 3; i++) {
        refs[i] = calloc(n, sizeof(float));
        *stores[i] = xcalloc(n * es);
        if (!refs[i] || !*stores[i]) return MOEP_ERR_NO_MEMORY;
        fill_uniform(refs[i], (int64_t)n, sqrtf(3.0f / (i == 2 ? Is : H)), o->seed * 31 + 1000 + i);
        for (size_t j = 0; j < n; j++) {
            if (o->dtype == MOEP_DTYPE_BF16) {
                uint16_t b = moep_f32_to_bf16(refs[i][j]);
                ((uint16_t *)*stores[i])[j] = b;
                refs[i][j] = moep_bf16_to_f32(b);
            } else {
                ((float *)*stores[i])[j] = refs[i][j];
            }
        }
    }
    m->ref_s1 = refs[0];
    m->ref_s3 = refs[1];
    m->ref_s2 = refs[2];
    moep_expert_weights_init(&m->shared);
    m->shared.format = o->dtype == MOEP_DTYPE_BF16 ? MOEP_WEIGHTS_BF16 : MOEP_WEIGHTS_F32;
    m->shared.num_experts = 1;
    m->shared.hidden = H;
    m->shared.intermediate = Is;
    m->shared.w1.data = m->s1;
    m->shared.w3.data = m->s3;
    m->shared.w2.data = m->s2;
    return MOEP_OK;
}

moep_status_t bench_model_create(const bench_options_t *o, int32_t rank, int32_t world,
                                 bench_model_t **m_p) {
    bench_model_t *m = calloc(1, sizeof *m);
    if (m == NULL) return MOEP_ERR_NO_MEMORY;
    *m_p = m;
    m->opt = *o;
    m->rank = rank;
    m->world = world;
    int32_t E = o->experts, H = o->hidden, I = o->intermediate;
    m->num_local = E / world;
    m->first_local = rank * m->num_local;
    size_t ne = (size_t)E * I * H;
    m->gate = calloc((size_t)E * H, sizeof(float));
    m->bias = calloc((size_t)E, sizeof(float));
    m->ref_w1 = calloc(ne, sizeof(float));
    m->ref_w3 = calloc(ne, sizeof(float));
    m->ref_w2 = calloc(ne, sizeof(float));
    if (!m->gate || !m->bias || !m->ref_w1 || !m->ref_w3 || !m->ref_w2) return MOEP_ERR_NO_MEMORY;
    fill_uniform(m->gate, (int64_t)E * H, sqrtf(3.0f / H), o->seed * 31 + 1);
    fill_uniform(m->bias, E, 0.05f, o->seed * 31 + 2);
    fill_uniform(m->ref_w1, (int64_t)ne, sqrtf(3.0f / H), o->seed * 31 + 3);
    fill_uniform(m->ref_w3, (int64_t)ne, sqrtf(3.0f / H), o->seed * 31 + 4);
    fill_uniform(m->ref_w2, (int64_t)ne, sqrtf(3.0f / I), o->seed * 31 + 5);
    if (o->weights != MOEP_WEIGHTS_F32) { /* keep the originals for bench_model_verify_original */
        m->orig_w1 = malloc(ne * sizeof(float));
        m->orig_w3 = malloc(ne * sizeof(float));
        m->orig_w2 = malloc(ne * sizeof(float));
        if (!m->orig_w1 || !m->orig_w3 || !m->orig_w2) return MOEP_ERR_NO_MEMORY;
        memcpy(m->orig_w1, m->ref_w1, ne * sizeof(float));
        memcpy(m->orig_w3, m->ref_w3, ne * sizeof(float));
        memcpy(m->orig_w2, m->ref_w2, ne * sizeof(float));
    }
    BENCH_TRY(store_stack(o->weights, E, I, H, m->ref_w1, &m->w1));
    BENCH_TRY(store_stack(o->weights, E, I, H, m->ref_w3, &m->w3));
    BENCH_TRY(store_stack(o->weights, E, H, I, m->ref_w2, &m->w2));
    moep_expert_weights_init(&m->local);
    m->local.format = o->weights;
    m->local.num_experts = m->num_local;
    m->local.hidden = H;
    m->local.intermediate = I;
    m->local.w1 = local_slice(&m->w1, E, m->first_local);
    m->local.w3 = local_slice(&m->w3, E, m->first_local);
    m->local.w2 = local_slice(&m->w2, E, m->first_local);
    if (o->shared_intermediate > 0) BENCH_TRY(make_shared(m));
    return MOEP_OK;
}

static void free_stack(bench_stack_t *s) {
    free(s->data);
    free(s->scales);
    free(s->global_scale);
}

void bench_model_destroy(bench_model_t *m) {
    if (m == NULL) return;
    free(m->gate);
    free(m->bias);
    free(m->ref_w1);
    free(m->ref_w3);
    free(m->ref_w2);
    free(m->orig_w1);
    free(m->orig_w3);
    free(m->orig_w2);
    free(m->ref_s1);
    free(m->ref_s3);
    free(m->ref_s2);
    free(m->s1);
    free(m->s3);
    free(m->s2);
    free_stack(&m->w1);
    free_stack(&m->w3);
    free_stack(&m->w2);
    free_stack(&m->sh1);
    free_stack(&m->sh3);
    free_stack(&m->sh2);
    free(m);
}

moep_status_t bench_model_tokens(const bench_model_t *m, void **x_p, int64_t **ids_p) {
    int64_t T = m->opt.tokens, H = m->opt.hidden;
    float *xf = calloc((size_t)(T * H) + 1, sizeof(float));
    int64_t *ids = calloc((size_t)T + 1, sizeof(int64_t));
    if (xf == NULL || ids == NULL) {
        free(xf);
        free(ids);
        return MOEP_ERR_NO_MEMORY;
    }
    fill_uniform(xf, T * H, 1.0f, m->opt.seed * 977 + 7919u * (uint64_t)(m->rank + 1));
    for (int64_t t = 0; t < T; t++) ids[t] = (int64_t)m->rank * T + t; /* global token ids */
    if (m->opt.dtype == MOEP_DTYPE_BF16) {
        uint16_t *xb = (uint16_t *)xf; /* in place: bf16 rows are half as long */
        for (int64_t i = 0; i < T * H; i++) xb[i] = moep_f32_to_bf16(xf[i]);
    }
    *x_p = xf;
    *ids_p = ids;
    return MOEP_OK;
}

/* A row through FP8 1x128 quantization and back (what an FP8 wire or the GPU
 * FFN's activation quantization delivers). */
static void fp8_round_trip(float *row, int32_t n) {
    uint8_t q[n];
    float sc[(n + 127) / 128];
    moep_tensor_t in = moep_tensor_2d(row, MOEP_DTYPE_F32, 1, n);
    moep_quantize_act_fp8(&in, q, sc);
    moep_dequantize_act_fp8(q, sc, 1, n, &in);
}

/* SwiGLU of one token in float64: out += scale * W2 (silu(W1 x) * (W3 x));
 * fp8_h: h goes through FP8 1x128 first (the GPU FFN's FP8 path). */
static void ffn_ref(const float *w1, const float *w3, const float *w2, int32_t H, int32_t I,
                    const double *x, double scale, double *out, double *h, int fp8_h) {
    for (int32_t i = 0; i < I; i++) {
        double g = 0, u = 0;
        for (int32_t d = 0; d < H; d++) {
            g += (double)w1[(size_t)i * H + d] * x[d];
            u += (double)w3[(size_t)i * H + d] * x[d];
        }
        h[i] = g / (1.0 + exp(-g)) * u;
    }
    if (fp8_h) {
        float hf[I];
        for (int32_t i = 0; i < I; i++) hf[i] = (float)h[i];
        fp8_round_trip(hf, I);
        for (int32_t i = 0; i < I; i++) h[i] = hf[i];
    }
    for (int32_t d = 0; d < H; d++) {
        double acc = 0;
        for (int32_t i = 0; i < I; i++) acc += (double)w2[(size_t)d * I + i] * h[i];
        out[d] += scale * acc;
    }
}

static void load_row(const bench_model_t *m, const void *x, int64_t t, double *row, int fp8) {
    int32_t H = m->opt.hidden;
    float tmp[H];
    if (m->opt.dtype == MOEP_DTYPE_F32)
        memcpy(tmp, (const float *)x + t * H, sizeof tmp);
    else
        for (int32_t d = 0; d < H; d++) tmp[d] = moep_bf16_to_f32(((const uint16_t *)x)[t * H + d]);
    if (fp8) fp8_round_trip(tmp, H); /* an FP8 wire, or the GPU FFN's FP8 x */
    for (int32_t d = 0; d < H; d++) row[d] = tmp[d];
}

/* original = 0: the reference of the layer as stored (dequantized weights,
 * the wire's and GPU FFN's quantization applied); 1: the original layer. */
static moep_status_t verify(const bench_model_t *m, const void *x, const moep_tensor_t *topk_idx,
                            const moep_tensor_t *topk_w, const void *y, int original,
                            double *rel_err) {
    const bench_options_t *o = &m->opt;
    int32_t H = o->hidden, I = o->intermediate, k = o->top_k, Is = o->shared_intermediate;
    int64_t T = o->tokens;
    double max_ref = 1e-30, max_diff = 0;
    int gpu = o->device == MOEP_DEVICE_CUDA;
    int fp8 = !original && (o->wire == MOEP_DTYPE_FP8_E4M3 || (gpu && o->weights == MOEP_WEIGHTS_FP8_E4M3));
    const float *w1 = original && m->orig_w1 ? m->orig_w1 : m->ref_w1;
    const float *w3 = original && m->orig_w3 ? m->orig_w3 : m->ref_w3;
    const float *w2 = original && m->orig_w2 ? m->orig_w2 : m->ref_w2;
    int gpu_q = gpu && !original; /* the GPU FFN's own FP8 rounding of x and h */
#pragma omp parallel reduction(max : max_ref, max_diff)
    {
        double *xr = malloc(sizeof(double) * H), *xq = malloc(sizeof(double) * H);
        double *xs = malloc(sizeof(double) * H); /* the shared expert's x */
        double *out = malloc(sizeof(double) * H);
        double *h = malloc(sizeof(double) * (size_t)(I > Is ? I : Is));
#pragma omp for schedule(dynamic, 4)
        for (int64_t t = 0; t < T; t++) {
            load_row(m, x, t, xr, 0);
            load_row(m, x, t, xq, fp8);
            load_row(m, x, t, xs, gpu_q);
            memset(out, 0, sizeof(double) * H);
            if (Is > 0) ffn_ref(m->ref_s1, m->ref_s3, m->ref_s2, H, Is, xs, 1.0, out, h, gpu_q);
            for (int32_t j = 0; j < k; j++) {
                int32_t e = ((const int32_t *)topk_idx->data)[t * k + j];
                double w = ((const float *)topk_w->data)[t * k + j];
                if (e < 0) continue;
                size_t off = (size_t)e * I * H;
                ffn_ref(w1 + off, w3 + off, w2 + off, H, I, xq, w, out, h,
                        gpu_q && o->weights == MOEP_WEIGHTS_FP8_E4M3);
            }
            for (int32_t d = 0; d < H; d++) {
                double got = o->dtype == MOEP_DTYPE_F32
                                 ? ((const float *)y)[t * H + d]
                                 : moep_bf16_to_f32(((const uint16_t *)y)[t * H + d]);
                double diff = fabs(got - out[d]);
                if (diff != diff) diff = INFINITY;
                if (fabs(out[d]) > max_ref) max_ref = fabs(out[d]);
                if (diff > max_diff) max_diff = diff;
            }
        }
        free(xr);
        free(xq);
        free(xs);
        free(out);
        free(h);
    }
    *rel_err = max_diff / max_ref;
    return MOEP_OK;
}

moep_status_t bench_model_verify(const bench_model_t *m, const void *x, const moep_tensor_t *topk_idx,
                                 const moep_tensor_t *topk_w, const void *y, double *rel_err) {
    return verify(m, x, topk_idx, topk_w, y, 0, rel_err);
}

moep_status_t bench_model_verify_original(const bench_model_t *m, const void *x,
                                          const moep_tensor_t *topk_idx, const moep_tensor_t *topk_w,
                                          const void *y, double *rel_err) {
    return verify(m, x, topk_idx, topk_w, y, 1, rel_err);
}

double bench_model_tolerance(const bench_options_t *o) {
    /* f32 end to end: accumulation-order differences only (an FP8 wire is in
     * the reference too). bf16: activations,
     * expert outputs and combine partials are each rounded to 8 bits.
     * --device cuda (bf16): the same bound. The reference applies the GPU
     * FFN's FP8 quantization of x and h (bench_model_verify), so what is left
     * is bf16 rounding of the expert outputs, partials and y (2^-9 relative
     * each), f32 accumulation order, and the rare FP8 rounding flips where the
     * GPU's f32 h and the reference's float64 h straddle a rounding boundary
     * (one element of h off by one FP8 step, 1 of I terms). Unmodelled, the
     * FP8 rounding of h alone (relative step 2^-3, so up to 2^-4 per element)
     * would put the max error near 2e-2 of max|y| (gpu_ffn's FP8 tests allow
     * 1e-2 RMS and 8e-2 per row for it), too close to the bound. */
    int exact_wire = o->wire == 0 || o->wire == MOEP_DTYPE_F32 || o->wire == MOEP_DTYPE_FP8_E4M3;
    return o->dtype == MOEP_DTYPE_F32 && exact_wire ? 1e-5 : 3e-2;
}
