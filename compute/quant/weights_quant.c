/* Weight stacks [E, rows, cols]: buffer sizes, quantize and dequantize entry points. */
#include <omp.h>
#include <stdlib.h>

#include "quant_internal.h"

/* Per-expert sizes of the data and scale buffers for `fmt`; validates the
 * format and the shape for it. */
static moep_status_t expert_bytes(const char *fn, int32_t fmt, int64_t rows, int64_t cols,
                                  size_t *data_b, size_t *scale_b) {
    if (rows < 0 || cols < 0)
        return moep__fail(MOEP_ERR_SHAPE, "%s: negative shape rows %lld cols %lld", fn,
                          (long long)rows, (long long)cols);
    const uint64_t n = (uint64_t)rows * (uint64_t)cols; /* < 2^62: both fit in int32 */
    switch (fmt) {
    case MOEP_WEIGHTS_F32:
    case MOEP_WEIGHTS_BF16:
        *data_b = (size_t)n * (fmt == MOEP_WEIGHTS_F32 ? 4 : 2);
        *scale_b = 0;
        return MOEP_OK;
    case MOEP_WEIGHTS_FP8_E4M3: {
        const uint64_t nbr = ((uint64_t)rows + MOEP__FP8_BLOCK - 1) / MOEP__FP8_BLOCK;
        const uint64_t nbc = ((uint64_t)cols + MOEP__FP8_BLOCK - 1) / MOEP__FP8_BLOCK;
        *data_b = (size_t)n;
        *scale_b = (size_t)(nbr * nbc * sizeof(float));
        return MOEP_OK;
    }
    case MOEP_WEIGHTS_MXFP4:
    case MOEP_WEIGHTS_NVFP4: {
        const int64_t block = fmt == MOEP_WEIGHTS_MXFP4 ? MOEP__MX_BLOCK : MOEP__NV_BLOCK;
        if (cols % block != 0)
            return moep__fail(MOEP_ERR_SHAPE, "%s: cols %lld is not a multiple of %lld (%s)", fn,
                              (long long)cols, (long long)block,
                              fmt == MOEP_WEIGHTS_MXFP4 ? "MXFP4" : "NVFP4");
        *data_b = (size_t)(n / 2);
        *scale_b = (size_t)(n / (uint64_t)block);
        return MOEP_OK;
    }
    default:
        return moep__fail(MOEP_ERR_INVALID_ARG, "%s: unknown weight format %d", fn, (int)fmt);
    }
}

/* Whole-stack sizes: per expert times E, checking E and overflow. */
static moep_status_t stack_bytes(const char *fn, int32_t fmt, int64_t E, int64_t rows,
                                 int64_t cols, size_t *data_b, size_t *scale_b) {
    size_t d = 0, s = 0;
    MOEP_TRY(expert_bytes(fn, fmt, rows, cols, &d, &s));
    if (E < 0) return moep__fail(MOEP_ERR_SHAPE, "%s: num_experts %lld < 0", fn, (long long)E);
    if (__builtin_mul_overflow(d, (size_t)E, data_b) ||
        __builtin_mul_overflow(s, (size_t)E, scale_b))
        return moep__fail(MOEP_ERR_SHAPE, "%s: stack of %lld x %lld x %lld overflows size_t", fn,
                          (long long)E, (long long)rows, (long long)cols);
    return MOEP_OK;
}

moep_status_t moep_weight_stack_bytes(int32_t fmt, int32_t num_experts, int32_t rows,
                                      int32_t cols, size_t *data_bytes, size_t *scale_bytes) {
    static const char fn[] = "moep_weight_stack_bytes";
    MOEP_CHECK_ARG(fn, data_bytes);
    MOEP_CHECK_ARG(fn, scale_bytes);
    return stack_bytes(fn, fmt, num_experts, rows, cols, data_bytes, scale_bytes);
}

/* Pointer checks shared by quantize and dequantize: a buffer may be NULL
 * only when it is empty; global_scale is needed by NVFP4 alone. */
static moep_status_t check_buffers(const char *fn, int32_t fmt, int64_t E, size_t data_b,
                                   size_t scale_b, const void *data, const void *scales,
                                   const float *global_scale) {
    if (data == NULL && data_b > 0)
        return moep__fail(MOEP_ERR_INVALID_ARG, "%s: data is NULL", fn);
    if (scales == NULL && scale_b > 0)
        return moep__fail(MOEP_ERR_INVALID_ARG, "%s: scales is NULL", fn);
    if (global_scale == NULL && fmt == MOEP_WEIGHTS_NVFP4 && E > 0)
        return moep__fail(MOEP_ERR_INVALID_ARG, "%s: global_scale is NULL (needed by NVFP4)", fn);
    return MOEP_OK;
}

/* F32/BF16 "quantization" is a conversion (RNE to bf16). */
static void convert_matrix(const void *src, moep_dtype_t t, int64_t n, void *dst,
                           moep_dtype_t to) {
#pragma omp parallel for schedule(static) if (n >= MOEP__QUANT_PAR_MIN)
    for (int64_t c0 = 0; c0 < n; c0 += MOEP__FP8_BLOCK) {
        const int64_t m = n - c0 < MOEP__FP8_BLOCK ? n - c0 : MOEP__FP8_BLOCK;
        float tmp[MOEP__FP8_BLOCK];
        const float *x = moep__load_f32(src, t, c0, m, tmp);
        moep__row_from_f32(x, m, to, (char *)dst + (size_t)c0 * moep__dtype_size(to));
    }
}

moep_status_t moep_quantize_weights(int32_t fmt, const moep_tensor_t *src, void *data,
                                    void *scales, float *global_scale) {
    static const char fn[] = "moep_quantize_weights";
    MOEP_TRY(moep__check_tensor(fn, "src", src, 3, MOEP_ANY, NULL));
    const int64_t E = src->shape[0], rows = src->shape[1], cols = src->shape[2];
    if (rows > INT32_MAX || cols > INT32_MAX || E > INT32_MAX)
        return moep__fail(MOEP_ERR_SHAPE, "%s: src dims exceed int32", fn);
    size_t data_b, scale_b;
    MOEP_TRY(stack_bytes(fn, fmt, E, rows, cols, &data_b, &scale_b));
    MOEP_TRY(check_buffers(fn, fmt, E, data_b, scale_b, data, scales, global_scale));
    MOEP_TRY(moep__check_quant_src(fn, "src", src)); /* before any output is written */

    const size_t data_e = data_b / (size_t)(E ? E : 1), scale_e = scale_b / (size_t)(E ? E : 1);
    const size_t src_e = (size_t)(rows * cols) * moep__dtype_size(src->dtype);
    for (int64_t e = 0; e < E; e++) {
        const void *x = (const char *)src->data + (size_t)e * src_e;
        uint8_t *q = (uint8_t *)data + (size_t)e * data_e;
        uint8_t *s = (uint8_t *)scales + (size_t)e * scale_e;
        switch (fmt) {
        case MOEP_WEIGHTS_F32:
            convert_matrix(x, src->dtype, rows * cols, q, MOEP_DTYPE_F32);
            break;
        case MOEP_WEIGHTS_BF16:
            convert_matrix(x, src->dtype, rows * cols, q, MOEP_DTYPE_BF16);
            break;
        case MOEP_WEIGHTS_FP8_E4M3:
            moep__quant_fp8_weights(x, src->dtype, rows, cols, q, (float *)(void *)s);
            break;
        case MOEP_WEIGHTS_MXFP4:
            moep__quant_mxfp4_weights(x, src->dtype, rows, cols, q, s);
            break;
        default: /* NVFP4; expert_bytes rejected the rest */
            moep__quant_nvfp4_weights(x, src->dtype, rows, cols, q, s, &global_scale[e]);
            break;
        }
    }
    return MOEP_OK;
}

/* Decode row r of expert matrix e into out (cols floats). */
static void decode_row(int32_t fmt, const void *data, const void *scales,
                       const float *global_scale, int64_t e, int64_t r, int64_t rows,
                       int64_t cols, float *out) {
    const int64_t i = e * rows + r; /* row index in the whole stack */
    switch (fmt) {
    case MOEP_WEIGHTS_F32:
        memcpy(out, (const float *)data + i * cols, (size_t)cols * sizeof(float));
        break;
    case MOEP_WEIGHTS_BF16:
        moep__row_to_f32((const uint16_t *)data + i * cols, MOEP_DTYPE_BF16, cols, out);
        break;
    case MOEP_WEIGHTS_FP8_E4M3: {
        const int64_t nbr = (rows + MOEP__FP8_BLOCK - 1) / MOEP__FP8_BLOCK;
        const int64_t nbc = (cols + MOEP__FP8_BLOCK - 1) / MOEP__FP8_BLOCK;
        moep__decode_fp8_weight_row((const uint8_t *)data + i * cols,
                                    (const float *)scales + e * nbr * nbc, r, cols, out);
        break;
    }
    case MOEP_WEIGHTS_MXFP4:
        moep__decode_mxfp4_row((const uint8_t *)data + i * cols / 2,
                               (const uint8_t *)scales + i * (cols / MOEP__MX_BLOCK), cols, out);
        break;
    default: /* NVFP4 */
        moep__decode_nvfp4_row((const uint8_t *)data + i * cols / 2,
                               (const uint8_t *)scales + i * (cols / MOEP__NV_BLOCK), cols,
                               global_scale[e], out);
        break;
    }
}

moep_status_t moep_dequantize_weights(int32_t fmt, int32_t num_experts, int32_t rows,
                                      int32_t cols, const void *data, const void *scales,
                                      const float *global_scale, moep_tensor_t *dst) {
    static const char fn[] = "moep_dequantize_weights";
    size_t data_b, scale_b;
    MOEP_TRY(stack_bytes(fn, fmt, num_experts, rows, cols, &data_b, &scale_b));
    MOEP_TRY(check_buffers(fn, fmt, num_experts, data_b, scale_b, data, scales, global_scale));
    const int64_t shape[3] = {num_experts, rows, cols};
    MOEP_TRY(moep__check_tensor(fn, "dst", dst, 3, MOEP_ANY, shape));
    if (dst->dtype != MOEP_DTYPE_F32 && dst->dtype != MOEP_DTYPE_BF16)
        return moep__fail(MOEP_ERR_SHAPE, "%s: dst has dtype %s, expected f32 or bf16", fn,
                          moep_dtype_name(dst->dtype));
    const int64_t nrows = (int64_t)num_experts * rows;
    if (nrows == 0 || cols == 0) return MOEP_OK;

    /* bf16 output goes through one f32 row per thread. */
    float *rowbuf = NULL;
    const int nthreads = omp_get_max_threads();
    if (dst->dtype != MOEP_DTYPE_F32) {
        rowbuf = moep__aligned_alloc(fn, (size_t)nthreads * (size_t)cols * sizeof(float));
        if (rowbuf == NULL) return MOEP_ERR_NO_MEMORY;
    }
#pragma omp parallel for schedule(static) num_threads(nthreads) \
    if (nrows * cols >= MOEP__QUANT_PAR_MIN)
    for (int64_t i = 0; i < nrows; i++) {
        float *out = rowbuf == NULL ? (float *)dst->data + i * cols
                                    : rowbuf + (size_t)omp_get_thread_num() * (size_t)cols;
        decode_row(fmt, data, scales, global_scale, i / rows, i % rows, rows, cols, out);
        if (rowbuf != NULL)
            moep__row_from_f32(out, cols, dst->dtype, (uint16_t *)dst->data + i * cols);
    }
    free(rowbuf);
    return MOEP_OK;
}
