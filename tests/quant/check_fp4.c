/* FP4 E2M1 and E8M0 scalar conversions against hand-computed codes. */
#include <math.h>

#include "quant_suites.h"

static const float e2m1_values[16] = {0, 0.5f, 1, 1.5f, 2, 3, 4, 6,
                                      -0.0f, -0.5f, -1, -1.5f, -2, -3, -4, -6};

START_TEST(e2m1_all_codes) {
    for (int c = 0; c < 16; c++) {
        float v = moep_e2m1_to_f32((uint8_t)c);
        ck_assert_msg(v == e2m1_values[c] && signbit(v) == signbit(e2m1_values[c]),
                      "decode 0x%x = %g", c, (double)v);
        ck_assert_msg(moep_f32_to_e2m1(e2m1_values[c]) == c, "encode %g = 0x%x",
                      (double)e2m1_values[c], moep_f32_to_e2m1(e2m1_values[c]));
    }
    ck_assert(moep_e2m1_to_f32(0xF7) == 6.0f); /* high nibble ignored */
}
END_TEST

START_TEST(e2m1_rounding) {
    static const struct {
        float x;
        uint8_t code;
    } cases[] = {
        /* ties to the even code */
        {0.25f, 0x0}, {0.75f, 0x2}, {1.25f, 0x2}, {1.75f, 0x4}, {2.5f, 0x4}, {3.5f, 0x6},
        {5.0f, 0x6}, {-0.25f, 0x8}, {-5.0f, 0xE},
        /* off the ties */
        {0.2f, 0x0}, {0.26f, 0x1}, {0.74f, 0x1}, {1.3f, 0x3}, {2.4f, 0x4}, {2.6f, 0x5},
        {3.4f, 0x5}, {5.01f, 0x7}, {-5.01f, 0xF},
        /* saturation, zero, non-finite */
        {6.5f, 0x7}, {1e9f, 0x7}, {INFINITY, 0x7}, {-INFINITY, 0xF}, {-0.0f, 0x8},
        {NAN, 0x0}, {-NAN, 0x8}, {1e-40f, 0x0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        ck_assert_msg(moep_f32_to_e2m1(cases[i].x) == cases[i].code, "e2m1(%a) = 0x%x, expected 0x%x",
                      (double)cases[i].x, moep_f32_to_e2m1(cases[i].x), cases[i].code);
}
END_TEST

/* Against a brute-force nearest search (ties to the even code, saturating),
 * on random values and on every midpoint between neighbouring codes. */
static uint8_t e2m1_reference(float x) {
    double a = fabs((double)x), best_d = INFINITY;
    int best = 0;
    for (int c = 0; c < 8; c++) {
        double d = fabs(a - e2m1_values[c]);
        if (d < best_d || (d == best_d && (c & 1) == 0)) best_d = d, best = c;
    }
    return (uint8_t)(best | (signbit(x) ? 8 : 0));
}

START_TEST(e2m1_reference_search) {
    test_rng_t r;
    test_rng_init(&r, test_seed("e2m1_reference"));
    TEST_FIRST_BAD;
    for (int i = 0; i < 20000; i++) {
        float x = i < 14 ? (e2m1_values[i % 7] + e2m1_values[i % 7 + 1]) / 2 * (i < 7 ? 1 : -1)
                         : (float)((test_rng_uniform(&r) * 2 - 1) * 8);
        TEST_EXPECT(moep_f32_to_e2m1(x) == e2m1_reference(x), i);
    }
    TEST_EXPECT_DONE();
}
END_TEST

START_TEST(e8m0_conversions) {
    static const struct {
        float x;
        uint8_t code;
    } cases[] = {
        {1.0f, 127},    {2.0f, 128},      {3.0f, 128} /* floor */, {0.5f, 126},
        {0.75f, 126},   {0x1p-127f, 0},   {0x1p-126f, 1},  {0x1p-140f, 0}, {0.0f, 0},
        {-0.0f, 0},     {0x1p127f, 254},  {0x1.8p127f, 254}, {INFINITY, 254},
        {NAN, 0xFF},    {-1.0f, 0xFF},    {-INFINITY, 0xFF},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        ck_assert_msg(moep_f32_to_e8m0(cases[i].x) == cases[i].code, "e8m0(%a) = %u, expected %u",
                      (double)cases[i].x, moep_f32_to_e8m0(cases[i].x), cases[i].code);
    ck_assert(moep_e8m0_to_f32(127) == 1.0f);
    ck_assert(moep_e8m0_to_f32(0) == 0x1p-127f);
    ck_assert(moep_e8m0_to_f32(1) == 0x1p-126f);
    ck_assert(moep_e8m0_to_f32(254) == 0x1p127f);
    ck_assert(isnan(moep_e8m0_to_f32(255)));
    for (int v = 0; v < 255; v++) {
        ck_assert(moep_e8m0_to_f32((uint8_t)v) == (float)ldexp(1.0, v - 127));
        ck_assert(moep_f32_to_e8m0(moep_e8m0_to_f32((uint8_t)v)) == v);
    }
}
END_TEST

Suite *moep_check_fp4_suite(void) {
    Suite *s = suite_create("fp4");
    TCase *tc = tcase_create("scalar");
    tcase_add_test(tc, e2m1_all_codes);
    tcase_add_test(tc, e2m1_rounding);
    tcase_add_test(tc, e2m1_reference_search);
    tcase_add_test(tc, e8m0_conversions);
    suite_add_tcase(s, tc);
    return s;
}
