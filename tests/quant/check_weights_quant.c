/* Weight stack quantize / dequantize: sizes, pinned vectors, random round
 * trips (codes bit-exact against the scalar conversions, stated error
 * bounds), and every error path. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "quant_suites.h"

#define NFMT MOEP_WEIGHTS_FORMAT_COUNT_

START_TEST(stack_bytes_sizes) {
    static const struct {
        int32_t fmt, E, rows, cols;
        size_t data, scales;
    } cases[] = {
        {MOEP_WEIGHTS_F32, 2, 3, 5, 120, 0},
        {MOEP_WEIGHTS_BF16, 2, 3, 5, 60, 0},
        {MOEP_WEIGHTS_FP8_E4M3, 2, 200, 300, 120000, 2 * 2 * 3 * 4}, /* partial blocks */
        {MOEP_WEIGHTS_FP8_E4M3, 1, 128, 128, 16384, 4},
        {MOEP_WEIGHTS_MXFP4, 3, 4, 64, 384, 24},
        {MOEP_WEIGHTS_NVFP4, 1, 2, 32, 32, 4},
        {MOEP_WEIGHTS_NVFP4, 0, 2, 32, 0, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t d = 1, s = 1;
        ck_assert_ok(moep_weight_stack_bytes(cases[i].fmt, cases[i].E, cases[i].rows,
                                             cases[i].cols, &d, &s));
        ck_assert_uint_eq(d, cases[i].data);
        ck_assert_uint_eq(s, cases[i].scales);
    }
}
END_TEST

START_TEST(stack_bytes_errors) {
    size_t d, s;
    ck_assert_status(moep_weight_stack_bytes(MOEP_WEIGHTS_F32, 1, 1, 1, NULL, &s),
                     MOEP_ERR_INVALID_ARG);
    ck_assert_status(moep_weight_stack_bytes(MOEP_WEIGHTS_F32, 1, 1, 1, &d, NULL),
                     MOEP_ERR_INVALID_ARG);
    ck_assert_status(moep_weight_stack_bytes(-1, 1, 1, 1, &d, &s), MOEP_ERR_INVALID_ARG);
    ck_assert_status(moep_weight_stack_bytes(NFMT, 1, 1, 1, &d, &s), MOEP_ERR_INVALID_ARG);
    ck_assert(strstr(moep_last_error(), "moep_weight_stack_bytes") == moep_last_error());
    ck_assert_status(moep_weight_stack_bytes(MOEP_WEIGHTS_MXFP4, 1, 1, 48, &d, &s), MOEP_ERR_SHAPE);
    ck_assert_status(moep_weight_stack_bytes(MOEP_WEIGHTS_NVFP4, 1, 1, 24, &d, &s), MOEP_ERR_SHAPE);
    ck_assert_status(moep_weight_stack_bytes(MOEP_WEIGHTS_F32, -1, 1, 1, &d, &s), MOEP_ERR_SHAPE);
    ck_assert_status(moep_weight_stack_bytes(MOEP_WEIGHTS_F32, 1, -1, 1, &d, &s), MOEP_ERR_SHAPE);
    ck_assert_status(moep_weight_stack_bytes(MOEP_WEIGHTS_F32, 1, 1, -1, &d, &s), MOEP_ERR_SHAPE);
}
END_TEST

/* Pinned FP8: one 2x3 matrix (amax 448: scale 1) and one all-zero matrix (scale 1). */
START_TEST(fp8_pinned) {
    float x[12] = {448, -224, 1, 0.5f, 0, 3.5f, 0, 0, 0, 0, 0, 0};
    static const uint8_t want[12] = {0x7E, 0xF6, 0x38, 0x30, 0x00, 0x46};
    uint8_t q[12];
    float sc[2] = {-1, -1}, back[12];
    moep_tensor_t src = moep_tensor_3d(x, MOEP_DTYPE_F32, 2, 2, 3);
    ck_assert_ok(moep_quantize_weights(MOEP_WEIGHTS_FP8_E4M3, &src, q, sc, NULL));
    ck_assert_mem_eq(q, want, 12);
    ck_assert(sc[0] == 1.0f && sc[1] == 1.0f);
    moep_tensor_t dst = moep_tensor_3d(back, MOEP_DTYPE_F32, 2, 2, 3);
    ck_assert_ok(moep_dequantize_weights(MOEP_WEIGHTS_FP8_E4M3, 2, 2, 3, q, sc, NULL, &dst));
    ck_assert_mem_eq(back, x, sizeof x);
}
END_TEST

/* Pinned MXFP4, one row of 96: block 0 holds the 16 E2M1 values twice (amax 6:
 * X = 0, code 127); block 1 is zero (code 127); block 2 is block 0 times
 * 2^-10 with 7 * 2^-10 in place of 6 * 2^-10 (X = -10, code 117, 7 clips to 6). */
START_TEST(mxfp4_pinned) {
    static const float v[16] = {0, 0.5f, 1, 1.5f, 2, 3, 4, 6, -0.0f, -0.5f, -1, -1.5f, -2, -3, -4, -6};
    float x[96] = {0};
    for (int i = 0; i < 32; i++) x[i] = v[i % 16], x[64 + i] = ldexpf(v[i % 16], -10);
    x[64 + 7] = 7 * 0x1p-10f;
    uint8_t q[48], sc[3], want[48] = {0};
    for (int j = 0; j < 16; j++) want[j] = want[32 + j] = (uint8_t)((2 * j) % 16 | ((2 * j + 1) % 16) << 4);
    moep_tensor_t src = moep_tensor_3d(x, MOEP_DTYPE_F32, 1, 1, 96);
    ck_assert_ok(moep_quantize_weights(MOEP_WEIGHTS_MXFP4, &src, q, sc, NULL));
    ck_assert_uint_eq(sc[0], 127);
    ck_assert_uint_eq(sc[1], 127);
    ck_assert_uint_eq(sc[2], 117);
    ck_assert_mem_eq(q, want, 48);
    float back[96];
    moep_tensor_t dst = moep_tensor_3d(back, MOEP_DTYPE_F32, 1, 1, 96);
    ck_assert_ok(moep_dequantize_weights(MOEP_WEIGHTS_MXFP4, 1, 1, 96, q, sc, NULL, &dst));
    x[64 + 7] = 6 * 0x1p-10f;
    for (int i = 0; i < 96; i++) ck_assert_msg(back[i] == x[i], "element %d: %g", i, (double)back[i]);
}
END_TEST

/* Pinned NVFP4, one row of 48, amax 2688: global 1.
 * Block 0, amax 2688: scale e4m3(448) = 0x7E, S = 448.
 * Block 1, amax 12: scale e4m3(2) = 0x40, S = 2; 5 -> 2.5 ties to 2, 0.5 -> 0.25 ties to 0.
 * Block 2, amax 1e-3: 1e-3 / 6 < 2^-10 rounds to scale 0 -> all codes 0. */
START_TEST(nvfp4_pinned) {
    float x[48] = {0};
    x[0] = 2688, x[1] = 1344, x[2] = -672, x[3] = 448;
    x[16] = 12, x[17] = 5, x[18] = -1, x[19] = 0.5f;
    x[32] = 1e-3f, x[33] = -5e-4f;
    uint8_t q[24], sc[3], want[24] = {0};
    want[0] = 0x7 | 0x5 << 4, want[1] = 0xB | 0x2 << 4;
    want[8] = 0x7 | 0x4 << 4, want[9] = 0x9 | 0x0 << 4;
    float g = -1;
    moep_tensor_t src = moep_tensor_3d(x, MOEP_DTYPE_F32, 1, 1, 48);
    ck_assert_ok(moep_quantize_weights(MOEP_WEIGHTS_NVFP4, &src, q, sc, &g));
    ck_assert(g == 1.0f);
    ck_assert_uint_eq(sc[0], 0x7E);
    ck_assert_uint_eq(sc[1], 0x40);
    ck_assert_uint_eq(sc[2], 0x00);
    ck_assert_mem_eq(q, want, 24);
    float back[48], expect[48] = {2688, 1344, -672, 448};
    expect[16] = 12, expect[17] = 4, expect[18] = -1, expect[19] = 0;
    moep_tensor_t dst = moep_tensor_3d(back, MOEP_DTYPE_F32, 1, 1, 48);
    ck_assert_ok(moep_dequantize_weights(MOEP_WEIGHTS_NVFP4, 1, 1, 48, q, sc, &g, &dst));
    for (int i = 0; i < 48; i++) ck_assert_msg(back[i] == expect[i], "element %d: %g", i, (double)back[i]);
    /* All-zero matrix: global 1, scales 0, codes 0. */
    memset(x, 0, sizeof x);
    ck_assert_ok(moep_quantize_weights(MOEP_WEIGHTS_NVFP4, &src, q, sc, &g));
    ck_assert(g == 1.0f && sc[0] == 0 && sc[1] == 0 && sc[2] == 0 && q[0] == 0);
}
END_TEST

/* Random stack: per-row magnitudes spread over 2^-20 .. 2^20, some zero rows,
 * stored as f32 or bf16 (loop index _i: 0 f32, 1 bf16). */
typedef struct {
    int64_t E, rows, cols;
    float *x; /* f32 values (bf16-rounded when the source is bf16) */
    void *src_data;
    moep_tensor_t src;
} wstack_t;

static void stack_make(wstack_t *s, test_rng_t *r, int64_t E, int64_t rows, int64_t cols, int bf16) {
    int64_t n = E * rows * cols;
    s->E = E, s->rows = rows, s->cols = cols;
    s->x = malloc((size_t)n * sizeof(float));
    s->src_data = malloc((size_t)n * sizeof(float));
    for (int64_t row = 0; row < E * rows; row++) {
        float mag = test_rng_int(r, 10) == 0 ? 0.0f : ldexpf(1.0f, test_rng_int(r, 41) - 20);
        test_fill_normal(r, s->x + row * cols, cols, mag);
    }
    if (bf16) {
        uint16_t *b = s->src_data;
        for (int64_t i = 0; i < n; i++) b[i] = moep_f32_to_bf16(s->x[i]), s->x[i] = moep_bf16_to_f32(b[i]);
    } else {
        memcpy(s->src_data, s->x, (size_t)n * sizeof(float));
    }
    s->src = moep_tensor_3d(s->src_data, bf16 ? MOEP_DTYPE_BF16 : MOEP_DTYPE_F32, E, rows, cols);
}

static void stack_free(wstack_t *s) {
    free(s->x);
    free(s->src_data);
}

/* Quantize, dequantize to f32 and bf16 (bf16 must be the RNE of the f32 result). */
static float *round_trip(int32_t fmt, wstack_t *s, uint8_t **q, void **sc, float **g) {
    size_t db, sb;
    ck_assert_ok(moep_weight_stack_bytes(fmt, (int32_t)s->E, (int32_t)s->rows, (int32_t)s->cols, &db, &sb));
    *q = malloc(db ? db : 1), *sc = malloc(sb ? sb : 1), *g = malloc((size_t)s->E * sizeof(float));
    ck_assert_ok(moep_quantize_weights(fmt, &s->src, *q, *sc, *g));
    int64_t n = s->E * s->rows * s->cols;
    float *back = malloc((size_t)n * sizeof(float));
    uint16_t *back16 = malloc((size_t)n * sizeof(uint16_t));
    moep_tensor_t d32 = moep_tensor_3d(back, MOEP_DTYPE_F32, s->E, s->rows, s->cols);
    moep_tensor_t d16 = moep_tensor_3d(back16, MOEP_DTYPE_BF16, s->E, s->rows, s->cols);
    ck_assert_ok(moep_dequantize_weights(fmt, (int32_t)s->E, (int32_t)s->rows, (int32_t)s->cols, *q, *sc, *g, &d32));
    ck_assert_ok(moep_dequantize_weights(fmt, (int32_t)s->E, (int32_t)s->rows, (int32_t)s->cols, *q, *sc, *g, &d16));
    TEST_FIRST_BAD;
    for (int64_t i = 0; i < n; i++) TEST_EXPECT(back16[i] == moep_f32_to_bf16(back[i]), i);
    TEST_EXPECT_DONE();
    free(back16);
    return back;
}

static float block_amax(const float *x, int64_t stride, int64_t nr, int64_t nc) {
    float m = 0;
    for (int64_t r = 0; r < nr; r++)
        for (int64_t c = 0; c < nc; c++) m = fmaxf(m, fabsf(x[r * stride + c]));
    return m;
}

/* FP8: scale = amax/448 (1 if 0); code = e4m3(x / scale);
 * |x - x'| <= max(2^-4 |x|, 2^-10 scale) * (1 + 2^-20). */
START_TEST(fp8_random) {
    test_rng_t r;
    test_rng_init(&r, test_seed("fp8_weights_random"));
    TEST_FIRST_BAD;
    wstack_t s;
    stack_make(&s, &r, 2, 200, 300, _i);
    uint8_t *q;
    void *scv;
    float *g;
    float *back = round_trip(MOEP_WEIGHTS_FP8_E4M3, &s, &q, &scv, &g);
    const float *sc = scv;
    for (int64_t e = 0; e < 2; e++)
        for (int64_t rr = 0; rr < 200; rr++)
            for (int64_t c = 0; c < 300; c++) {
                int64_t i = (e * 200 + rr) * 300 + c, b = e * 6 + rr / 128 * 3 + c / 128;
                float scale = sc[b];
                if (rr % 128 == 0 && c % 128 == 0) {
                    float amax = block_amax(s.x + (e * 200 + rr) * 300 + c, 300,
                                            rr + 128 > 200 ? 200 - rr : 128, c + 128 > 300 ? 300 - c : 128);
                    TEST_EXPECT(scale == (amax > 0 ? amax / 448.0f : 1.0f), i);
                }
                TEST_EXPECT(q[i] == moep_f32_to_e4m3(s.x[i] / scale), i);
                TEST_EXPECT(back[i] == moep_e4m3_to_f32(q[i]) * scale, i);
                double err = fabs((double)back[i] - s.x[i]);
                TEST_EXPECT(err <= fmax(0x1p-4 * fabs(s.x[i]), 0x1p-10 * scale) * (1 + 0x1p-20), i);
            }
    TEST_EXPECT_DONE();
    free(back), free(q), free(scv), free(g);
    stack_free(&s);
}
END_TEST

/* MXFP4: scale 2^X, X = floor(log2 amax) - 2; code = e2m1(x / 2^X);
 * |x - x'| <= 2^X when |x| <= 6 * 2^X, else < 2 * 2^X. */
START_TEST(mxfp4_random) {
    test_rng_t r;
    test_rng_init(&r, test_seed("mxfp4_random"));
    TEST_FIRST_BAD;
    wstack_t s;
    stack_make(&s, &r, 3, 17, 96, _i);
    uint8_t *q, *sc;
    void *scv;
    float *g;
    float *back = round_trip(MOEP_WEIGHTS_MXFP4, &s, &q, &scv, &g);
    sc = scv;
    for (int64_t i = 0; i < 3 * 17 * 96; i++) {
        int64_t b = i / 32;
        float amax = block_amax(s.x + b * 32, 0, 1, 32);
        int ex;
        frexpf(amax, &ex); /* amax = m * 2^ex, m in [0.5, 1): floor(log2 amax) = ex - 1 */
        if (i % 32 == 0) TEST_EXPECT(sc[b] == (amax > 0 ? ex - 1 - 2 + 127 : 127), i);
        float scale = moep_e8m0_to_f32(sc[b]);
        uint8_t code = (q[i / 2] >> (4 * (i % 2))) & 15;
        TEST_EXPECT(code == moep_f32_to_e2m1(s.x[i] / scale), i);
        TEST_EXPECT(back[i] == moep_e2m1_to_f32(code) * scale, i);
        double err = fabs((double)back[i] - s.x[i]);
        TEST_EXPECT(err <= (fabsf(s.x[i]) <= 6 * scale ? scale : 2 * scale), i);
    }
    TEST_EXPECT_DONE();
    free(back), free(q), free(scv), free(g);
    stack_free(&s);
}
END_TEST

/* NVFP4: global = amax / 2688; s = e4m3(amax_b / 6 / global); S = e4m3(s) * global;
 * code = e2m1(x / S); |x - x'| <= max(S, 6 * 2^-10 * global): S bounds rounding and
 * the clipping after a normal scale rounded down (x / S < 6.4); a subnormal
 * (or zero) scale can be off by 2^-10, so clipped elements lose up to
 * 6 * 2^-10 * global = amax_matrix * 2^-10 / 448. */
START_TEST(nvfp4_random) {
    test_rng_t r;
    test_rng_init(&r, test_seed("nvfp4_random"));
    TEST_FIRST_BAD;
    wstack_t s;
    stack_make(&s, &r, 3, 9, 80, _i);
    uint8_t *q, *sc;
    void *scv;
    float *g;
    float *back = round_trip(MOEP_WEIGHTS_NVFP4, &s, &q, &scv, &g);
    sc = scv;
    for (int64_t e = 0; e < 3; e++) {
        float amax = block_amax(s.x + e * 9 * 80, 0, 1, 9 * 80);
        TEST_EXPECT(g[e] == (amax > 0 ? amax / 2688.0f : 1.0f), e);
    }
    for (int64_t i = 0; i < 3 * 9 * 80; i++) {
        int64_t b = i / 16, e = i / (9 * 80);
        float amax_b = block_amax(s.x + b * 16, 0, 1, 16);
        TEST_EXPECT(sc[b] == moep_f32_to_e4m3(amax_b / 6.0f / g[e]), i);
        float S = moep_e4m3_to_f32(sc[b]) * g[e];
        uint8_t code = (q[i / 2] >> (4 * (i % 2))) & 15;
        TEST_EXPECT(code == (S > 0 ? moep_f32_to_e2m1(s.x[i] / S) : 0), i);
        TEST_EXPECT(back[i] == moep_e2m1_to_f32(code) * S, i);
        double err = fabs((double)back[i] - s.x[i]);
        TEST_EXPECT(err <= fmax(S, 6 * 0x1p-10 * g[e]) * (1 + 0x1p-20), i);
    }
    TEST_EXPECT_DONE();
    free(back), free(q), free(scv), free(g);
    stack_free(&s);
}
END_TEST

/* F32 / BF16 formats are conversions: exact, or the RNE bf16. */
START_TEST(plain_formats) {
    test_rng_t r;
    test_rng_init(&r, test_seed("plain_formats"));
    wstack_t s;
    stack_make(&s, &r, 2, 3, 7, _i);
    for (int32_t fmt = MOEP_WEIGHTS_F32; fmt <= MOEP_WEIGHTS_BF16; fmt++) {
        uint8_t *q;
        void *sc;
        float *g;
        float *back = round_trip(fmt, &s, &q, &sc, &g);
        TEST_FIRST_BAD;
        for (int i = 0; i < 42; i++)
            TEST_EXPECT(back[i] == (fmt == MOEP_WEIGHTS_F32 ? s.x[i] : moep_bf16_to_f32(moep_f32_to_bf16(s.x[i]))), i);
        TEST_EXPECT_DONE();
        free(back), free(q), free(sc), free(g);
    }
    /* scales and global may be NULL for the plain formats */
    float out[42];
    ck_assert_ok(moep_quantize_weights(MOEP_WEIGHTS_F32, &s.src, out, NULL, NULL));
    stack_free(&s);
}
END_TEST

START_TEST(quantize_errors) {
    float x[2 * 2 * 32] = {0}, g[2];
    uint8_t q[256], sc[64];
    moep_tensor_t src = moep_tensor_3d(x, MOEP_DTYPE_F32, 2, 2, 32);
    ck_assert_status(moep_quantize_weights(MOEP_WEIGHTS_MXFP4, NULL, q, sc, g), MOEP_ERR_INVALID_ARG);
    ck_assert(strstr(moep_last_error(), "moep_quantize_weights") == moep_last_error());
    ck_assert_status(moep_quantize_weights(MOEP_WEIGHTS_MXFP4, &src, NULL, sc, g), MOEP_ERR_INVALID_ARG);
    ck_assert_status(moep_quantize_weights(MOEP_WEIGHTS_MXFP4, &src, q, NULL, g), MOEP_ERR_INVALID_ARG);
    ck_assert_status(moep_quantize_weights(MOEP_WEIGHTS_FP8_E4M3, &src, q, NULL, g), MOEP_ERR_INVALID_ARG);
    ck_assert_status(moep_quantize_weights(MOEP_WEIGHTS_NVFP4, &src, q, sc, NULL), MOEP_ERR_INVALID_ARG);
    ck_assert_status(moep_quantize_weights(-3, &src, q, sc, g), MOEP_ERR_INVALID_ARG);
    ck_assert_status(moep_quantize_weights(NFMT, &src, q, sc, g), MOEP_ERR_INVALID_ARG);
    moep_tensor_t bad = moep_tensor_2d(x, MOEP_DTYPE_F32, 4, 32);
    ck_assert_status(moep_quantize_weights(MOEP_WEIGHTS_MXFP4, &bad, q, sc, g), MOEP_ERR_SHAPE);
    bad = moep_tensor_3d(x, MOEP_DTYPE_F16, 2, 2, 32);
    ck_assert_status(moep_quantize_weights(MOEP_WEIGHTS_MXFP4, &bad, q, sc, g), MOEP_ERR_SHAPE);
    bad = moep_tensor_3d(x, MOEP_DTYPE_F32, 2, 2, -32);
    ck_assert_status(moep_quantize_weights(MOEP_WEIGHTS_MXFP4, &bad, q, sc, g), MOEP_ERR_SHAPE);
    bad = moep_tensor_3d(x, MOEP_DTYPE_F32, 2, 4, 16);
    ck_assert_status(moep_quantize_weights(MOEP_WEIGHTS_MXFP4, &bad, q, sc, g), MOEP_ERR_SHAPE);
    ck_assert_ok(moep_quantize_weights(MOEP_WEIGHTS_NVFP4, &bad, q, sc, g));
    bad = moep_tensor_3d(x, MOEP_DTYPE_F32, 2, 8, 8);
    ck_assert_status(moep_quantize_weights(MOEP_WEIGHTS_NVFP4, &bad, q, sc, g), MOEP_ERR_SHAPE);
    bad = src, bad.device = MOEP_DEVICE_CUDA;
    ck_assert_status(moep_quantize_weights(MOEP_WEIGHTS_MXFP4, &bad, q, sc, g), MOEP_ERR_UNSUPPORTED);
    bad = src, bad.data = NULL;
    ck_assert_status(moep_quantize_weights(MOEP_WEIGHTS_MXFP4, &bad, q, sc, g), MOEP_ERR_INVALID_ARG);
    /* empty stack: nothing to write, NULL buffers fine */
    bad = moep_tensor_3d(NULL, MOEP_DTYPE_F32, 0, 2, 32);
    ck_assert_ok(moep_quantize_weights(MOEP_WEIGHTS_NVFP4, &bad, NULL, NULL, NULL));

    /* NaN / Inf: MOEP_ERR_NUMERIC naming the element, nothing written */
    x[1 * 64 + 1 * 32 + 5] = NAN;
    memset(q, 0xAB, sizeof q);
    ck_assert_status(moep_quantize_weights(MOEP_WEIGHTS_MXFP4, &src, q, sc, g), MOEP_ERR_NUMERIC);
    ck_assert_msg(strstr(moep_last_error(), "src[1][1][5]") != NULL, "%s", moep_last_error());
    for (size_t i = 0; i < sizeof q; i++) ck_assert_uint_eq(q[i], 0xAB);
    x[1 * 64 + 1 * 32 + 5] = 0;
    uint16_t xb[2 * 2 * 32] = {0};
    xb[100] = moep_f32_to_bf16(-INFINITY);
    moep_tensor_t srcb = moep_tensor_3d(xb, MOEP_DTYPE_BF16, 2, 2, 32);
    for (int32_t fmt = 0; fmt < NFMT; fmt++)
        ck_assert_status(moep_quantize_weights(fmt, &srcb, q, sc, g), MOEP_ERR_NUMERIC);
    ck_assert_msg(strstr(moep_last_error(), "src[1][1][4]") != NULL, "%s", moep_last_error());
}
END_TEST

START_TEST(dequantize_errors) {
    uint8_t q[64] = {0}, sc[8] = {0};
    float g[1] = {1}, out[64];
    moep_tensor_t dst = moep_tensor_3d(out, MOEP_DTYPE_F32, 1, 2, 32);
    ck_assert_ok(moep_dequantize_weights(MOEP_WEIGHTS_NVFP4, 1, 2, 32, q, sc, g, &dst));
    ck_assert_status(moep_dequantize_weights(MOEP_WEIGHTS_NVFP4, 1, 2, 32, q, sc, g, NULL), MOEP_ERR_INVALID_ARG);
    ck_assert(strstr(moep_last_error(), "moep_dequantize_weights") == moep_last_error());
    ck_assert_status(moep_dequantize_weights(MOEP_WEIGHTS_NVFP4, 1, 2, 32, NULL, sc, g, &dst), MOEP_ERR_INVALID_ARG);
    ck_assert_status(moep_dequantize_weights(MOEP_WEIGHTS_NVFP4, 1, 2, 32, q, NULL, g, &dst), MOEP_ERR_INVALID_ARG);
    ck_assert_status(moep_dequantize_weights(MOEP_WEIGHTS_NVFP4, 1, 2, 32, q, sc, NULL, &dst), MOEP_ERR_INVALID_ARG);
    ck_assert_status(moep_dequantize_weights(99, 1, 2, 32, q, sc, g, &dst), MOEP_ERR_INVALID_ARG);
    ck_assert_status(moep_dequantize_weights(MOEP_WEIGHTS_NVFP4, -1, 2, 32, q, sc, g, &dst), MOEP_ERR_SHAPE);
    ck_assert_status(moep_dequantize_weights(MOEP_WEIGHTS_NVFP4, 1, 4, 16, q, sc, g, &dst), MOEP_ERR_SHAPE);
    moep_tensor_t d2 = moep_tensor_3d(out, MOEP_DTYPE_F32, 1, 1, 64);
    ck_assert_status(moep_dequantize_weights(MOEP_WEIGHTS_MXFP4, 1, 1, 48, q, sc, g, &d2), MOEP_ERR_SHAPE);
    d2 = moep_tensor_3d(out, MOEP_DTYPE_U8, 1, 2, 32);
    ck_assert_status(moep_dequantize_weights(MOEP_WEIGHTS_NVFP4, 1, 2, 32, q, sc, g, &d2), MOEP_ERR_SHAPE);
    d2 = moep_tensor_2d(out, MOEP_DTYPE_F32, 2, 32);
    ck_assert_status(moep_dequantize_weights(MOEP_WEIGHTS_NVFP4, 1, 2, 32, q, sc, g, &d2), MOEP_ERR_SHAPE);
    d2 = dst, d2.data = NULL;
    ck_assert_status(moep_dequantize_weights(MOEP_WEIGHTS_NVFP4, 1, 2, 32, q, sc, g, &d2), MOEP_ERR_INVALID_ARG);
    /* F32 format needs no scales */
    ck_assert_ok(moep_dequantize_weights(MOEP_WEIGHTS_F32, 1, 2, 32, out, NULL, NULL, &dst));
}
END_TEST

Suite *moep_check_weights_quant_suite(void) {
    Suite *s = suite_create("weights_quant");
    TCase *tc = tcase_create("pinned");
    tcase_add_test(tc, stack_bytes_sizes);
    tcase_add_test(tc, stack_bytes_errors);
    tcase_add_test(tc, fp8_pinned);
    tcase_add_test(tc, mxfp4_pinned);
    tcase_add_test(tc, nvfp4_pinned);
    tcase_add_test(tc, quantize_errors);
    tcase_add_test(tc, dequantize_errors);
    suite_add_tcase(s, tc);
    tc = tcase_create("random");
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, fp8_random, 0, 2);
    tcase_add_loop_test(tc, mxfp4_random, 0, 2);
    tcase_add_loop_test(tc, nvfp4_random, 0, 2);
    tcase_add_loop_test(tc, plain_formats, 0, 2);
    suite_add_tcase(s, tc);
    return s;
}
