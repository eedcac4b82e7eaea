/* moep_expert_ffn and helpers: every rejected input, with the right status,
 * a message naming the function, and y left untouched. */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "ffn_case.h"

typedef struct fixture {
    ffn_case_t c;
    moep_expert_weights_t w;
    moep_tensor_t x, y;
    int64_t off[4];
    float scales[64];
    uint8_t bytes[64];
} fixture_t;

static void setup(fixture_t *f) {
    test_rng_t rng;
    test_rng_init(&rng, test_seed("ffn_errors"));
    int64_t counts[3] = {2, 0, 3};
    ffn_case_make(&f->c, &rng, 3, 72, 40, counts, 1, 1, MOEP_WEIGHTS_F32, MOEP_DTYPE_F32,
                  MOEP_DTYPE_F32);
    f->w = ffn_case_weights(&f->c);
    f->x = ffn_case_x(&f->c);
    f->y = ffn_case_y(&f->c);
    memcpy(f->off, f->c.offset, sizeof f->off);
}

/* Runs the call, expects `want`, a "moep_expert_ffn:" message, y untouched. */
static void expect(fixture_t *f, moep_status_t want, const char *what) {
    moep_status_t got = moep_expert_ffn(&f->w, &f->x, f->off, &f->y, 1);
    ck_assert_msg(got == want, "%s: got %s (%s), want %s", what, moep_status_name(got),
                  moep_last_error(), moep_status_name(want));
    ck_assert_msg(strncmp(moep_last_error(), "moep_expert_ffn: ", 17) == 0, "%s: message '%s'",
                  what, moep_last_error());
    ck_assert_msg(ffn_case_padding_intact(&f->c), "%s: y written", what);
    float y0;
    memcpy(&y0, (const char *)f->c.y + (size_t)f->c.offset[0] * f->c.H * 4, 4);
    ck_assert_msg(y0 == FFN_SENTINEL, "%s: y written", what);
}

START_TEST(test_null_pointers) {
    fixture_t f;
    setup(&f);
    ck_assert_status(moep_expert_ffn(NULL, &f.x, f.off, &f.y, 1), MOEP_ERR_INVALID_ARG);
    ck_assert_status(moep_expert_ffn(&f.w, NULL, f.off, &f.y, 1), MOEP_ERR_INVALID_ARG);
    ck_assert_status(moep_expert_ffn(&f.w, &f.x, NULL, &f.y, 1), MOEP_ERR_INVALID_ARG);
    ck_assert_status(moep_expert_ffn(&f.w, &f.x, f.off, NULL, 1), MOEP_ERR_INVALID_ARG);
    f.w.w1.data = NULL;
    expect(&f, MOEP_ERR_INVALID_ARG, "w1.data NULL");
    f.w.w1.data = f.c.w1;
    f.w.w3.data = NULL;
    expect(&f, MOEP_ERR_INVALID_ARG, "w3.data NULL");
    f.w.w3.data = f.c.w3;
    f.w.w2.data = NULL;
    expect(&f, MOEP_ERR_INVALID_ARG, "w2.data NULL");
    f.w.w2.data = f.c.w2;
    f.x.data = NULL;
    expect(&f, MOEP_ERR_INVALID_ARG, "x.data NULL");
    ffn_case_free(&f.c);
}
END_TEST

START_TEST(test_bad_weights) {
    fixture_t f;
    setup(&f);
    f.w.struct_size = 0;
    expect(&f, MOEP_ERR_INVALID_ARG, "struct_size 0 (not initialised)");
    f.w.struct_size = sizeof f.w;
    f.w.format = (moep_weight_format_t)99;
    expect(&f, MOEP_ERR_INVALID_ARG, "unknown format");
    f.w.format = (moep_weight_format_t)-1;
    expect(&f, MOEP_ERR_INVALID_ARG, "negative format");
    f.w.format = MOEP_WEIGHTS_F32;
    f.w.num_experts = 0;
    expect(&f, MOEP_ERR_INVALID_ARG, "num_experts 0");
    f.w.num_experts = 3;
    f.w.hidden = -72;
    expect(&f, MOEP_ERR_INVALID_ARG, "hidden < 0");
    f.w.hidden = 72;
    f.w.intermediate = 0;
    expect(&f, MOEP_ERR_INVALID_ARG, "intermediate 0");
    f.w.intermediate = 40;
    f.w.layout = MOEP_WEIGHT_LAYOUT_FP4_PACKED; /* the GPU's layout */
    expect(&f, MOEP_ERR_UNSUPPORTED, "packed layout");
    f.w.layout = MOEP_WEIGHT_LAYOUT_ROWS;
    /* a struct from before the layout field: read as row-major */
    f.w.struct_size = (uint32_t)offsetof(moep_expert_weights_t, layout);
    f.w.layout = MOEP_WEIGHT_LAYOUT_FP4_PACKED;
    ck_assert_status(moep_expert_ffn(&f.w, &f.x, f.off, &f.y, 1), MOEP_OK);
    f.w.struct_size = sizeof f.w;
    f.w.layout = MOEP_WEIGHT_LAYOUT_ROWS;
    ck_assert_status(moep_expert_ffn(&f.w, &f.x, f.off, &f.y, -1), MOEP_ERR_INVALID_ARG);
    ffn_case_free(&f.c);
}
END_TEST

/* Scaled formats: missing scales, block-size mismatches, not compiled in. */
START_TEST(test_scaled_formats) {
    fixture_t f;
    setup(&f);
    f.w.format = MOEP_WEIGHTS_FP8_E4M3;
    f.w.w1.scales = f.w.w3.scales = f.w.w2.scales = NULL;
    f.w.w1.global_scale = f.w.w3.global_scale = f.w.w2.global_scale = NULL;
    expect(&f, MOEP_ERR_INVALID_ARG, "fp8 without scales");
    f.w.w1.scales = f.c.s1;
    expect(&f, MOEP_ERR_INVALID_ARG, "fp8 without w3 scales");
    f.w.w1.scales = f.w.w3.scales = f.w.w2.scales = f.scales;
    f.w.format = MOEP_WEIGHTS_NVFP4;
    expect(&f, MOEP_ERR_INVALID_ARG, "nvfp4 without global_scale");
    f.w.w1.global_scale = f.w.w3.global_scale = f.w.w2.global_scale = f.scales;
    f.w.format = MOEP_WEIGHTS_MXFP4; /* hidden 72 is not a multiple of 32 */
    expect(&f, MOEP_ERR_SHAPE, "mxfp4 with hidden 72");
    f.w.format = MOEP_WEIGHTS_NVFP4; /* intermediate 40 is not a multiple of 16 */
    expect(&f, MOEP_ERR_SHAPE, "nvfp4 with intermediate 40");
    ffn_case_free(&f.c);
}
END_TEST

START_TEST(test_bad_tensors) {
    fixture_t f;
    setup(&f);
    moep_tensor_t x0 = f.x, y0 = f.y;
    f.x.dtype = MOEP_DTYPE_I32;
    expect(&f, MOEP_ERR_SHAPE, "x dtype i32");
    f.x = x0;
    f.y.dtype = MOEP_DTYPE_F16;
    expect(&f, MOEP_ERR_SHAPE, "y dtype f16");
    f.y = y0;
    f.x.shape[1] = 71;
    expect(&f, MOEP_ERR_SHAPE, "x columns != hidden");
    f.x = x0;
    f.y.shape[1] = 73;
    expect(&f, MOEP_ERR_SHAPE, "y columns != hidden");
    f.y = y0;
    f.y.shape[0] -= 1;
    expect(&f, MOEP_ERR_SHAPE, "y rows != x rows");
    f.y = y0;
    f.x = moep_tensor_3d(f.c.x, MOEP_DTYPE_F32, 1, f.c.N, f.c.H);
    expect(&f, MOEP_ERR_SHAPE, "x is 3-D");
    f.x = x0;
    f.x.device = MOEP_DEVICE_CUDA;
    expect(&f, MOEP_ERR_UNSUPPORTED, "x on a GPU");
    f.x = x0;
    f.w.hidden = 40; /* H/I mismatch: x has 72 columns */
    expect(&f, MOEP_ERR_SHAPE, "hidden != x columns");
    f.w.hidden = 72;
    f.y.data = (char *)f.x.data + 4; /* y overlaps x */
    f.y.dtype = MOEP_DTYPE_F32;
    moep_status_t st = moep_expert_ffn(&f.w, &f.x, f.off, &f.y, 1);
    ck_assert_int_eq(st, MOEP_ERR_INVALID_ARG);
    f.y = y0;
    ffn_case_free(&f.c);
}
END_TEST

START_TEST(test_bad_offsets) {
    fixture_t f;
    setup(&f);
    const int64_t good[4] = {f.off[0], f.off[1], f.off[2], f.off[3]};
    f.off[0] = -1;
    expect(&f, MOEP_ERR_OUT_OF_RANGE, "offset[0] < 0");
    memcpy(f.off, good, sizeof good);
    f.off[1] = f.off[2] + 1; /* offset[2] < offset[1] */
    expect(&f, MOEP_ERR_OUT_OF_RANGE, "non-monotone offsets");
    memcpy(f.off, good, sizeof good);
    f.off[3] = f.c.N + 1;
    expect(&f, MOEP_ERR_OUT_OF_RANGE, "offset[E] > N");
    memcpy(f.off, good, sizeof good);
    ck_assert_ok(moep_expert_ffn(&f.w, &f.x, f.off, &f.y, 1));
    ffn_case_free(&f.c);
}
END_TEST

START_TEST(test_weight_helpers) {
    ck_assert_status(moep_expert_weights_init(NULL), MOEP_ERR_INVALID_ARG);
    moep_expert_weights_t w;
    memset(&w, 0xAB, sizeof w);
    ck_assert_ok(moep_expert_weights_init(&w));
    ck_assert_uint_eq(w.struct_size, sizeof w);
    ck_assert_int_eq(w.format, MOEP_WEIGHTS_F32);
    ck_assert_ptr_null(w.w1.data);
    ck_assert_str_eq(moep_weight_format_name(MOEP_WEIGHTS_F32), "f32");
    ck_assert_str_eq(moep_weight_format_name(MOEP_WEIGHTS_BF16), "bf16");
    ck_assert_str_eq(moep_weight_format_name(MOEP_WEIGHTS_FP8_E4M3), "fp8_e4m3");
    ck_assert_str_eq(moep_weight_format_name(MOEP_WEIGHTS_MXFP4), "mxfp4");
    ck_assert_str_eq(moep_weight_format_name(MOEP_WEIGHTS_NVFP4), "nvfp4");
    ck_assert_str_eq(moep_weight_format_name(MOEP_WEIGHTS_FORMAT_COUNT_), "?");
    ck_assert_str_eq(moep_weight_format_name((moep_weight_format_t)-3), "?");
}
END_TEST

/* Zero rows: valid, nothing to do, x may even have no data. */
START_TEST(test_empty_input) {
    fixture_t f;
    setup(&f);
    int64_t off[4] = {0, 0, 0, 0};
    moep_tensor_t x = moep_tensor_2d(NULL, MOEP_DTYPE_F32, 0, 72);
    moep_tensor_t y = moep_tensor_2d(NULL, MOEP_DTYPE_BF16, 0, 72);
    ck_assert_ok(moep_expert_ffn(&f.w, &x, off, &y, 0));
    ffn_case_free(&f.c);
}
END_TEST

Suite *moep_check_ffn_errors_suite(void) {
    Suite *s = suite_create("ffn_errors");
    TCase *tc = tcase_create("errors");
    tcase_add_test(tc, test_null_pointers);
    tcase_add_test(tc, test_bad_weights);
    tcase_add_test(tc, test_scaled_formats);
    tcase_add_test(tc, test_bad_tensors);
    tcase_add_test(tc, test_bad_offsets);
    tcase_add_test(tc, test_weight_helpers);
    tcase_add_test(tc, test_empty_input);
    suite_add_tcase(s, tc);
    return s;
}
