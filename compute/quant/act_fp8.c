/* Activations to FP8 E4M3 with one f32 scale per token per 128 channels (1x128). */
#include "quant_internal.h"

moep_status_t moep_quantize_act_fp8(const moep_tensor_t *x, uint8_t *q, float *scales) {
    static const char fn[] = "moep_quantize_act_fp8";
    MOEP_TRY(moep__check_tensor(fn, "x", x, 2, MOEP_ANY, NULL));
    const int64_t T = x->shape[0], H = x->shape[1];
    if (T > 0 && H > 0) {
        MOEP_CHECK_ARG(fn, q);
        MOEP_CHECK_ARG(fn, scales);
    }
    MOEP_TRY(moep__check_quant_src(fn, "x", x)); /* before any output is written */
    const int64_t nb = (H + MOEP__FP8_BLOCK - 1) / MOEP__FP8_BLOCK;
#pragma omp parallel for schedule(static) if (T * H >= MOEP__QUANT_PAR_MIN)
    for (int64_t b = 0; b < T * nb; b++) {
        const int64_t off = b / nb * H + b % nb * MOEP__FP8_BLOCK; /* token b/nb, block b%nb */
        const int64_t n = b % nb == nb - 1 ? H - (nb - 1) * MOEP__FP8_BLOCK : MOEP__FP8_BLOCK;
        float tmp[MOEP__FP8_BLOCK];
        const float *v = moep__load_f32(x->data, x->dtype, off, n, tmp);
        const float scale = moep__fp8_block_scale(moep__amax(v, n));
        scales[b] = scale;
        moep__encode_e4m3_scaled(v, n, scale, q + off);
    }
    return MOEP_OK;
}

moep_status_t moep_dequantize_act_fp8(const uint8_t *q, const float *scales, int64_t T,
                                      int64_t H, moep_tensor_t *x) {
    static const char fn[] = "moep_dequantize_act_fp8";
    if (T < 0 || H < 0)
        return moep__fail(MOEP_ERR_SHAPE, "%s: negative shape T %lld H %lld", fn, (long long)T,
                          (long long)H);
    const int64_t shape[2] = {T, H};
    MOEP_TRY(moep__check_tensor(fn, "x", x, 2, MOEP_ANY, shape));
    if (x->dtype != MOEP_DTYPE_F32 && x->dtype != MOEP_DTYPE_BF16)
        return moep__fail(MOEP_ERR_SHAPE, "%s: x has dtype %s, expected f32 or bf16", fn,
                          moep_dtype_name(x->dtype));
    if (T > 0 && H > 0) {
        MOEP_CHECK_ARG(fn, q);
        MOEP_CHECK_ARG(fn, scales);
    }
    const int64_t nb = (H + MOEP__FP8_BLOCK - 1) / MOEP__FP8_BLOCK;
#pragma omp parallel for schedule(static) if (T * H >= MOEP__QUANT_PAR_MIN)
    for (int64_t b = 0; b < T * nb; b++) {
        const int64_t off = b / nb * H + b % nb * MOEP__FP8_BLOCK;
        const int64_t n = b % nb == nb - 1 ? H - (nb - 1) * MOEP__FP8_BLOCK : MOEP__FP8_BLOCK;
        float tmp[MOEP__FP8_BLOCK];
        float *out = moep__out_f32(x->data, x->dtype, off, tmp);
        moep__decode_e4m3_scaled(q + off, n, scales[b], out);
        moep__out_commit(out, n, x->dtype, x->data, off);
    }
    return MOEP_OK;
}
