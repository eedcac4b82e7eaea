/* FP8 E4M3 / E5M2 scalar conversions against hand-computed codes. */
#include <math.h>

#include "quant_suites.h"

typedef struct {
    float x;
    uint8_t code;
} case_t;

#define CHECK_ENCODE(fn, cases)                                                            \
    for (size_t i_ = 0; i_ < sizeof(cases) / sizeof(cases[0]); i_++)                       \
        ck_assert_msg(fn(cases[i_].x) == cases[i_].code, #fn "(%a) = 0x%02x, expected 0x%02x", \
                      (double)cases[i_].x, fn(cases[i_].x), cases[i_].code)

START_TEST(e4m3_encode_edges) {
    static const case_t cases[] = {
        {0.0f, 0x00},         {-0.0f, 0x80},        {0x1p-9f, 0x01},   /* min subnormal */
        {7 * 0x1p-9f, 0x07},  /* max subnormal */   {0x1p-6f, 0x08},   /* min normal */
        {1.0f, 0x38},         {-1.0f, 0xB8},        {448.0f, 0x7E},    {-448.0f, 0xFE},
        {464.0f, 0x7E},       /* tie 448|480: RNE */ {480.0f, 0x7E},    /* saturate */
        {1e9f, 0x7E},         {-1e9f, 0xFE},        {INFINITY, 0x7E},  {-INFINITY, 0xFE},
        {NAN, 0x7F},          {-NAN, 0xFF},
        /* halfway ties go to the even code */
        {0x1p-10f, 0x00},     {3 * 0x1p-10f, 0x02}, {5 * 0x1p-10f, 0x02},
        {15 * 0x1p-10f, 0x08}, /* max subnormal | min normal */
        {1.0625f, 0x38},      {1.1875f, 0x3A},      {17.0f, 0x58},     {1.9375f, 0x40},
        {-1.9375f, 0xC0},
        /* just off the ties, and below half the min subnormal */
        {0x1.00002p-10f, 0x01}, {0x1p-11f, 0x00},   {-0x1p-11f, 0x80}, {1.07f, 0x39},
        {1e-30f, 0x00},       {0x1p-140f, 0x00},    /* f32 subnormal input */
    };
    CHECK_ENCODE(moep_f32_to_e4m3, cases);
}
END_TEST

START_TEST(e5m2_encode_edges) {
    static const case_t cases[] = {
        {0.0f, 0x00},          {-0.0f, 0x80},        {0x1p-16f, 0x01},  /* min subnormal */
        {3 * 0x1p-16f, 0x03},  /* max subnormal */   {0x1p-14f, 0x04},  /* min normal */
        {1.0f, 0x3C},          {57344.0f, 0x7B},     {-57344.0f, 0xFB},
        {61440.0f, 0x7B},      /* tie 57344|65536, saturates */ {65536.0f, 0x7B},
        {1e9f, 0x7B},          {INFINITY, 0x7B},     {-INFINITY, 0xFB}, {NAN, 0x7F},
        {-NAN, 0xFF},          {0x1p-17f, 0x00},     {3 * 0x1p-17f, 0x02},
        {7 * 0x1p-17f, 0x04},  /* max subnormal | min normal */
        {1.125f, 0x3C},        {1.375f, 0x3E},       {-1.375f, 0xBE},   {1.13f, 0x3D},
    };
    CHECK_ENCODE(moep_f32_to_e5m2, cases);
}
END_TEST

START_TEST(fp8_decode_edges) {
    ck_assert(moep_e4m3_to_f32(0x00) == 0.0f && !signbit(moep_e4m3_to_f32(0x00)));
    ck_assert(moep_e4m3_to_f32(0x80) == 0.0f && signbit(moep_e4m3_to_f32(0x80)));
    ck_assert(moep_e4m3_to_f32(0x01) == 0x1p-9f);
    ck_assert(moep_e4m3_to_f32(0x07) == 7 * 0x1p-9f);
    ck_assert(moep_e4m3_to_f32(0x08) == 0x1p-6f);
    ck_assert(moep_e4m3_to_f32(0x38) == 1.0f);
    ck_assert(moep_e4m3_to_f32(0x7E) == 448.0f);
    ck_assert(moep_e4m3_to_f32(0xFE) == -448.0f);
    ck_assert(isnan(moep_e4m3_to_f32(0x7F)) && isnan(moep_e4m3_to_f32(0xFF)));
    ck_assert(moep_e4m3_to_f32(0x78) == 256.0f); /* E4M3 "fn": exponent 15 is finite */
    ck_assert(moep_e5m2_to_f32(0x01) == 0x1p-16f);
    ck_assert(moep_e5m2_to_f32(0x04) == 0x1p-14f);
    ck_assert(moep_e5m2_to_f32(0x7B) == 57344.0f);
    ck_assert(moep_e5m2_to_f32(0x7C) == INFINITY && moep_e5m2_to_f32(0xFC) == -INFINITY);
    for (int c = 0x7D; c <= 0x7F; c++)
        ck_assert(isnan(moep_e5m2_to_f32((uint8_t)c)) && isnan(moep_e5m2_to_f32((uint8_t)(c | 0x80))));
}
END_TEST

/* Decode every code, re-encode: same code, except NaNs (checked to be NaN
 * codes) and E5M2 Inf, which saturates to the max finite code. Positive
 * codes must decode to strictly increasing values. */
static void exhaustive(float (*dec)(uint8_t), uint8_t (*enc)(float), int is_e5m2) {
    float prev = -1.0f;
    for (int c = 0; c < 256; c++) {
        float v = dec((uint8_t)c);
        if (isnan(v)) {
            ck_assert_msg(is_e5m2 ? (c & 0x7C) == 0x7C && (c & 3) : (c & 0x7F) == 0x7F,
                          "unexpected NaN code 0x%02x", c);
            continue;
        }
        if (isinf(v)) {
            ck_assert(is_e5m2 && (c & 0x7F) == 0x7C);
            ck_assert_uint_eq(enc(v), (unsigned)((c & 0x80) | 0x7B));
            continue;
        }
        ck_assert_msg(enc(v) == c, "code 0x%02x -> %a -> 0x%02x", c, (double)v, enc(v));
        if (c < 128) {
            ck_assert_msg(c == 0 || v > prev, "code 0x%02x not increasing", c);
            prev = v;
        }
    }
}

START_TEST(e4m3_exhaustive) { exhaustive(moep_e4m3_to_f32, moep_f32_to_e4m3, 0); }
END_TEST
START_TEST(e5m2_exhaustive) { exhaustive(moep_e5m2_to_f32, moep_f32_to_e5m2, 1); }
END_TEST

/* Reference encoder: nearest finite code by exhaustive search in double,
 * ties to the even code, saturating beyond max. */
static uint8_t ref_encode(float (*dec)(uint8_t), float x) {
    double a = fabs((double)x), best_d = INFINITY;
    int best = 0;
    for (int c = 0; c < 128; c++) {
        double v = dec((uint8_t)c);
        if (!isfinite(v)) continue;
        double d = fabs(a - v);
        if (d < best_d || (d == best_d && (c & 1) == 0)) best_d = d, best = c;
    }
    return (uint8_t)(best | (signbit(x) ? 0x80 : 0));
}

/* Random values over the whole range, plus exact midpoints between codes. */
static void against_reference(float (*dec)(uint8_t), uint8_t (*enc)(float), int max_e) {
    test_rng_t r;
    test_rng_init(&r, test_seed("fp8_reference"));
    TEST_FIRST_BAD;
    for (int i = 0; i < 20000; i++) {
        float x;
        if (i % 2) {
            x = (float)ldexp(test_rng_uniform(&r) * 2 - 1, test_rng_int(&r, max_e + 24) - 20);
        } else { /* midpoint of two neighbouring positive codes */
            int c = test_rng_int(&r, 0x7A);
            x = (dec((uint8_t)c) + dec((uint8_t)(c + 1))) / 2;
            if (test_rng_int(&r, 2)) x = -x;
        }
        TEST_EXPECT(enc(x) == ref_encode(dec, x), i);
    }
    TEST_EXPECT_DONE();
}

START_TEST(e4m3_reference) { against_reference(moep_e4m3_to_f32, moep_f32_to_e4m3, 9); }
END_TEST
START_TEST(e5m2_reference) { against_reference(moep_e5m2_to_f32, moep_f32_to_e5m2, 16); }
END_TEST

/* Round trip of normal-range values: |x - dec(enc(x))| <= 2^-4 |x| (half an
 * ulp with 3 mantissa bits); 2^-3 |x| for E5M2. */
START_TEST(fp8_rel_error) {
    test_rng_t r;
    test_rng_init(&r, test_seed("fp8_rel_error"));
    TEST_FIRST_BAD;
    for (int i = 0; i < 100000; i++) {
        float x = (float)(test_rng_normal(&r) * ldexp(1.0, test_rng_int(&r, 14) - 5));
        double a = fabs((double)x);
        if (a >= 0x1p-6 && a <= 448)
            TEST_EXPECT(fabs(moep_e4m3_to_f32(moep_f32_to_e4m3(x)) - (double)x) <= 0x1p-4 * a, i);
        if (a >= 0x1p-14 && a <= 57344)
            TEST_EXPECT(fabs(moep_e5m2_to_f32(moep_f32_to_e5m2(x)) - (double)x) <= 0x1p-3 * a, i);
    }
    TEST_EXPECT_DONE();
}
END_TEST

Suite *moep_check_fp8_suite(void) {
    Suite *s = suite_create("fp8");
    TCase *tc = tcase_create("scalar");
    tcase_add_test(tc, e4m3_encode_edges);
    tcase_add_test(tc, e5m2_encode_edges);
    tcase_add_test(tc, fp8_decode_edges);
    tcase_add_test(tc, e4m3_exhaustive);
    tcase_add_test(tc, e5m2_exhaustive);
    tcase_add_test(tc, e4m3_reference);
    tcase_add_test(tc, e5m2_reference);
    tcase_add_test(tc, fp8_rel_error);
    suite_add_tcase(s, tc);
    return s;
}
