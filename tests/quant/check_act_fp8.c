/* FP8 activations (1x128 blocks): pinned vectors, random round trip with its
 * error bound, and every error path. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "quant_suites.h"

/* T = 2, H = 130: blocks of 128 and 2 per token. Token 0: amax 896 in block
 * 0 (scale 2), block 1 = {1.5, -0.75} (scale 1.5/448). Token 1 all zero (scale 1). */
START_TEST(act_pinned) {
    float x[260] = {0};
    x[0] = 896, x[1] = -2, x[2] = 929; /* 929/2 = 464.5 -> saturates to 448 */
    x[128] = 1.5f, x[129] = -0.75f;
    x[2] = 896; /* keep amax at 896 so 464.5 cannot occur; edge saturation is in check_fp8 */
    uint8_t q[260];
    float sc[4];
    moep_tensor_t t = moep_tensor_2d(x, MOEP_DTYPE_F32, 2, 130);
    ck_assert_ok(moep_quantize_act_fp8(&t, q, sc));
    ck_assert(sc[0] == 2.0f && sc[1] == 1.5f / 448 && sc[2] == 1.0f && sc[3] == 1.0f);
    ck_assert_uint_eq(q[0], 0x7E);
    ck_assert_uint_eq(q[1], 0xB8); /* -1 */
    ck_assert_uint_eq(q[3], 0x00);
    ck_assert_uint_eq(q[128], moep_f32_to_e4m3(448.0f));
    ck_assert_uint_eq(q[129], moep_f32_to_e4m3(-0.75f / (1.5f / 448)));
    for (int i = 130; i < 260; i++) ck_assert_uint_eq(q[i], 0);
    float back[260];
    moep_tensor_t b = moep_tensor_2d(back, MOEP_DTYPE_F32, 2, 130);
    ck_assert_ok(moep_dequantize_act_fp8(q, sc, 2, 130, &b));
    ck_assert(back[0] == 896 && back[1] == -2 && back[128] == 1.5f && back[129] == -0.75f);
}
END_TEST

/* Random T x H (H = 300: a partial last block), f32 (_i = 0) or bf16 source:
 * scale = amax/448 (1 if 0), code = e4m3(x / scale),
 * |x - x'| <= max(2^-4 |x|, 2^-10 scale) * (1 + 2^-20). */
START_TEST(act_random) {
    enum { T = 37, H = 300, NB = 3 };
    test_rng_t r;
    test_rng_init(&r, test_seed("act_fp8_random"));
    TEST_FIRST_BAD;
    float *x = malloc(T * H * sizeof(float)), *back = malloc(T * H * sizeof(float));
    uint16_t *xb = malloc(T * H * sizeof(uint16_t)), *back16 = malloc(T * H * sizeof(uint16_t));
    uint8_t *q = malloc(T * H);
    float sc[T * NB];
    for (int t = 0; t < T; t++)
        test_fill_normal(&r, x + t * H, H, t % 7 == 0 ? 0.0f : ldexpf(1, test_rng_int(&r, 30) - 15));
    if (_i)
        for (int i = 0; i < T * H; i++) xb[i] = moep_f32_to_bf16(x[i]), x[i] = moep_bf16_to_f32(xb[i]);
    moep_tensor_t src = moep_tensor_2d(_i ? (void *)xb : (void *)x, _i ? MOEP_DTYPE_BF16 : MOEP_DTYPE_F32, T, H);
    ck_assert_ok(moep_quantize_act_fp8(&src, q, sc));
    moep_tensor_t d32 = moep_tensor_2d(back, MOEP_DTYPE_F32, T, H);
    moep_tensor_t d16 = moep_tensor_2d(back16, MOEP_DTYPE_BF16, T, H);
    ck_assert_ok(moep_dequantize_act_fp8(q, sc, T, H, &d32));
    ck_assert_ok(moep_dequantize_act_fp8(q, sc, T, H, &d16));
    for (int t = 0; t < T; t++)
        for (int blk = 0; blk < NB; blk++) {
            int c0 = blk * 128, n = blk == NB - 1 ? H - c0 : 128;
            float amax = 0;
            for (int c = c0; c < c0 + n; c++) amax = fmaxf(amax, fabsf(x[t * H + c]));
            float scale = sc[t * NB + blk];
            TEST_EXPECT(scale == (amax > 0 ? amax / 448 : 1.0f), t * H + c0);
            for (int i = t * H + c0; i < t * H + c0 + n; i++) {
                TEST_EXPECT(q[i] == moep_f32_to_e4m3(x[i] / scale), i);
                TEST_EXPECT(back[i] == moep_e4m3_to_f32(q[i]) * scale, i);
                TEST_EXPECT(back16[i] == moep_f32_to_bf16(back[i]), i);
                double err = fabs((double)back[i] - x[i]);
                TEST_EXPECT(err <= fmax(0x1p-4 * fabs(x[i]), 0x1p-10 * scale) * (1 + 0x1p-20), i);
            }
        }
    TEST_EXPECT_DONE();
    free(x), free(back), free(xb), free(back16), free(q);
}
END_TEST

START_TEST(act_errors) {
    float x[2 * 130] = {0}, sc[4], back[260];
    uint8_t q[260];
    moep_tensor_t t = moep_tensor_2d(x, MOEP_DTYPE_F32, 2, 130);
    ck_assert_status(moep_quantize_act_fp8(NULL, q, sc), MOEP_ERR_INVALID_ARG);
    ck_assert(strstr(moep_last_error(), "moep_quantize_act_fp8") == moep_last_error());
    ck_assert_status(moep_quantize_act_fp8(&t, NULL, sc), MOEP_ERR_INVALID_ARG);
    ck_assert_status(moep_quantize_act_fp8(&t, q, NULL), MOEP_ERR_INVALID_ARG);
    moep_tensor_t bad = moep_tensor_3d(x, MOEP_DTYPE_F32, 1, 2, 130);
    ck_assert_status(moep_quantize_act_fp8(&bad, q, sc), MOEP_ERR_SHAPE);
    bad = moep_tensor_2d(x, MOEP_DTYPE_I32, 2, 130);
    ck_assert_status(moep_quantize_act_fp8(&bad, q, sc), MOEP_ERR_SHAPE);
    bad = moep_tensor_2d(x, MOEP_DTYPE_F32, -2, 130);
    ck_assert_status(moep_quantize_act_fp8(&bad, q, sc), MOEP_ERR_SHAPE);
    bad = t, bad.device = MOEP_DEVICE_CUDA;
    ck_assert_status(moep_quantize_act_fp8(&bad, q, sc), MOEP_ERR_UNSUPPORTED);
    bad = moep_tensor_2d(NULL, MOEP_DTYPE_F32, 0, 130);
    ck_assert_ok(moep_quantize_act_fp8(&bad, NULL, NULL));
    x[130 + 7] = INFINITY;
    memset(q, 0xCD, sizeof q);
    ck_assert_status(moep_quantize_act_fp8(&t, q, sc), MOEP_ERR_NUMERIC);
    ck_assert_msg(strstr(moep_last_error(), "x[1][7]") != NULL, "%s", moep_last_error());
    for (size_t i = 0; i < sizeof q; i++) ck_assert_uint_eq(q[i], 0xCD);
    x[130 + 7] = NAN;
    ck_assert_status(moep_quantize_act_fp8(&t, q, sc), MOEP_ERR_NUMERIC);

    moep_tensor_t d = moep_tensor_2d(back, MOEP_DTYPE_F32, 2, 130);
    ck_assert_status(moep_dequantize_act_fp8(q, sc, 2, 130, NULL), MOEP_ERR_INVALID_ARG);
    ck_assert(strstr(moep_last_error(), "moep_dequantize_act_fp8") == moep_last_error());
    ck_assert_status(moep_dequantize_act_fp8(NULL, sc, 2, 130, &d), MOEP_ERR_INVALID_ARG);
    ck_assert_status(moep_dequantize_act_fp8(q, NULL, 2, 130, &d), MOEP_ERR_INVALID_ARG);
    ck_assert_status(moep_dequantize_act_fp8(q, sc, -1, 130, &d), MOEP_ERR_SHAPE);
    ck_assert_status(moep_dequantize_act_fp8(q, sc, 2, -130, &d), MOEP_ERR_SHAPE);
    ck_assert_status(moep_dequantize_act_fp8(q, sc, 2, 129, &d), MOEP_ERR_SHAPE);
    bad = moep_tensor_2d(back, MOEP_DTYPE_U8, 2, 130);
    ck_assert_status(moep_dequantize_act_fp8(q, sc, 2, 130, &bad), MOEP_ERR_SHAPE);
    bad = moep_tensor_2d(NULL, MOEP_DTYPE_F32, 2, 0);
    ck_assert_ok(moep_dequantize_act_fp8(NULL, NULL, 2, 0, &bad));
}
END_TEST

Suite *moep_check_act_fp8_suite(void) {
    Suite *s = suite_create("act_fp8");
    TCase *tc = tcase_create("act");
    tcase_add_test(tc, act_pinned);
    tcase_add_loop_test(tc, act_random, 0, 2);
    tcase_add_test(tc, act_errors);
    suite_add_tcase(s, tc);
    return s;
}
