/*
 * moep low-precision formats: FP8 (E4M3, E5M2), FP4 E2M1 with MXFP4 / NVFP4
 * block scales. Bit-exact, round-to-nearest-even (RNE), saturating.
 * Included by moep.h.
 *
 * Scalars (the scalar functions never fail; they saturate as listed):
 * E4M3 (OCP "fn"): bias 7, max 448, subnormals down to 2^-9, no Inf,
 *   NaN = 0x7F / 0xFF. |x| > 448 (Inf included) saturates to +-448 (0x7E /
 *   0xFE), so 464, the tie between 448 and 480, gives 448 as RNE does too.
 *   NaN input -> 0x7F | sign. -0 -> 0x80.
 * E5M2: bias 15, max 57344, subnormals down to 2^-16, Inf = 0x7C / 0xFC and
 *   NaN = 0x7D..0x7F (| 0x80) as IEEE. Encoding saturates: finite overflow
 *   and +-Inf give +-57344 (0x7B / 0xFB); NaN -> 0x7F | sign. Decoding gives
 *   Inf / NaN for those codes.
 * E2M1: {0, 0.5, 1, 1.5, 2, 3, 4, 6}, sign in bit 3, in the low nibble.
 *   RNE with ties to the even code (0.25 -> 0, 0.75 -> 1, 2.5 -> 2, 5 -> 4);
 *   |x| > 5 (Inf included) -> +-6. NaN -> +-0 (sign kept): E2M1 has no NaN.
 *   moep_e2m1_to_f32 reads only the low nibble of `code`.
 * E8M0: 2^(v-127), v = 0..254 (v = 0 is 2^-127), v = 0xFF is NaN.
 *   moep_f32_to_e8m0(f) = floor(log2 f) + 127 (toward zero, as the MX shared
 *   exponent), clamped to [0, 254]: +Inf -> 254, +-0 and f < 2^-126 -> 0;
 *   NaN and negative f -> 0xFF.
 *
 * Block formats (layouts in moep_weight_stack_t, api/moep_compute.h). All
 * arithmetic is f32, in the order written; decoders that want bit-identical
 * results use compute/quant/quant_tables.h.
 * FP8_E4M3 weights (DeepSeek-V3): one f32 scale per 128x128 block (partial at
 *   the right / bottom edges): scale = amax / 448, 1 if that is 0 (all-zero
 *   block); q = e4m3(x / scale); decode q * scale.
 *   Error: |x - x'| <= max(2^-4 |x|, 2^-10 scale) (+ f32 rounding).
 * MXFP4 (OCP MX v1.0): per 32 elements of a row, X = floor(log2 amax) - 2
 *   clamped to [-127, 127] (amax < 2^-126 gives -127), scale code X + 127;
 *   an all-zero block stores 127 (scale 1), like the "1 if zero" of the other
 *   formats. q = e2m1(x * 2^-X) (exact scaling), decode e2m1 * 2^X.
 *   x * 2^-X < 8, so values in (6, 8) * 2^X are clipped to 6 * 2^X.
 *   Error: |x - x'| <= 2^X when |x| <= 6 * 2^X, else < 2 * 2^X <= amax / 2.
 * NVFP4: global = amax_matrix / (448 * 6) per expert matrix, 1 if that is 0;
 *   block scale s = e4m3(amax_block / 6 / global) per 16 elements of a row;
 *   S = e4m3_to_f32(s) * global; q = e2m1(x / S), all codes 0 when S is 0
 *   (block amax below ~2^-10 * 6 * global). Decode e2m1 * S.
 *   Error: |x - x'| <= max(S, 6 * 2^-10 * global) (+ f32 rounding): S covers
 *   rounding and the clipping when a normal scale rounded down; a subnormal
 *   or zero scale may be 2^-10 short, so clipping then costs up to
 *   6 * 2^-10 * global = amax_matrix * 2^-10 / 448.
 * FP8 activations (1x128): as FP8 weights with 1x128 blocks along H; the
 *   last block of a row is partial when H % 128 != 0. Same error bound.
 *
 * Quantizers reject NaN/Inf anywhere in their input with MOEP_ERR_NUMERIC
 * (naming the element) before writing any output.
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
