/*
 * moep low-precision formats: FP8 (E4M3, E5M2), FP4 E2M1 with MXFP4 / NVFP4
 * block scales. Bit-exact, round-to-nearest-even, saturating.
 * Included by moep.h.
 *
 * E4M3 (OCP "fn"): bias 7, max 448, no Inf, NaN = 0x7F / 0xFF. Values beyond
 *   448 saturate to +-448; NaN input gives 0x7F (sign kept).
 * E5M2: bias 15, max 57344, Inf and NaN as IEEE; finite values beyond max
 *   saturate to +-57344; Inf saturates too (saturating mode); NaN -> 0x7F/0xFF.
 * E2M1: {0, 0.5, 1, 1.5, 2, 3, 4, 6} with sign; saturates at +-6; NaN -> error
 *   in the block quantizers (MOEP_ERR_NUMERIC).
 */
#ifndef MOEP_QUANT_H
#define MOEP_QUANT_H

#include "moep_core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Scalar conversions (RNE, saturating). */
MOEP_API uint8_t moep_f32_to_e4m3(float f);
MOEP_API float moep_e4m3_to_f32(uint8_t v);
MOEP_API uint8_t moep_f32_to_e5m2(float f);
MOEP_API float moep_e5m2_to_f32(uint8_t v);
MOEP_API uint8_t moep_f32_to_e2m1(float f); /* 4-bit code in the low nibble */
MOEP_API float moep_e2m1_to_f32(uint8_t code);
MOEP_API uint8_t moep_f32_to_e8m0(float f); /* power-of-two scale, 0xFF = NaN */
MOEP_API float moep_e8m0_to_f32(uint8_t v);

/*
 * Quantize / dequantize a weight matrix stack [E, rows, cols] (f32 or bf16 in
 * `src`) into `fmt` (see moep_weight_stack_t for scale layouts). Output
 * buffers are caller-allocated; moep_weight_stack_bytes() gives their sizes.
 * Errors: MOEP_ERR_INVALID_ARG, MOEP_ERR_SHAPE (cols not a multiple of the
 * block), MOEP_ERR_NUMERIC (NaN/Inf in src), MOEP_ERR_UNSUPPORTED.
 */
MOEP_API moep_status_t moep_weight_stack_bytes(int32_t fmt /* moep_weight_format_t */,
                                               int32_t num_experts, int32_t rows, int32_t cols,
                                               size_t *data_bytes, size_t *scale_bytes);
MOEP_API moep_status_t moep_quantize_weights(int32_t fmt, const moep_tensor_t *src, void *data,
                                             void *scales, float *global_scale);
MOEP_API moep_status_t moep_dequantize_weights(int32_t fmt, int32_t num_experts, int32_t rows,
                                               int32_t cols, const void *data, const void *scales,
                                               const float *global_scale, moep_tensor_t *dst);

/*
 * Activations to FP8 E4M3 with one f32 scale per token per 128 channels
 * (1x128): x [T, H] f32/bf16 -> q [T, H] u8, scales [T, ceil(H/128)] f32.
 * scale = amax / 448 (1 if the block is all zero). NaN/Inf: MOEP_ERR_NUMERIC.
 */
MOEP_API moep_status_t moep_quantize_act_fp8(const moep_tensor_t *x, uint8_t *q, float *scales);
MOEP_API moep_status_t moep_dequantize_act_fp8(const uint8_t *q, const float *scales, int64_t T,
                                               int64_t H, moep_tensor_t *x);

#ifdef __cplusplus
}
#endif
#endif /* MOEP_QUANT_H */
