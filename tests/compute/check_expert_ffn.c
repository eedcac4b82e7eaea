/* moep_expert_ffn numerics: float64 reference on fresh random data. */
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "ffn_case.h"

/* Both kernels: the one picked for this CPU, and the portable one. */
static const char *const KERNELS[] = {"auto", "generic"};

static void use_kernel(int i) {
    if (strcmp(KERNELS[i], "auto") == 0) unsetenv("MOEP_FFN_KERNEL");
    else setenv("MOEP_FFN_KERNEL", KERNELS[i], 1);
}

/* Random counts summing to `rows`, some experts left empty. */
static void random_counts(test_rng_t *rng, int32_t E, int64_t rows, int64_t *counts) {
    memset(counts, 0, (size_t)E * sizeof *counts);
    for (int64_t r = 0; r < rows; r++) counts[test_rng_int(rng, E > 1 ? E - 1 : 1)]++;
}

static void run_and_check(ffn_case_t *c, int32_t threads, const char *what) {
    moep_expert_weights_t w = ffn_case_weights(c);
    moep_tensor_t x = ffn_case_x(c), y = ffn_case_y(c);
    ck_assert_ok(moep_expert_ffn(&w, &x, c->offset, &y, threads));
    double err = ffn_case_error(c), tol = ffn_case_tolerance(c);
    ck_assert_msg(err < tol, "%s: rel err %.3g >= %.3g (w %s, x %s, y %s, E=%d H=%d I=%d N=%lld)",
                  what, err, tol, moep_weight_format_name(c->format), moep_dtype_name(c->x_dtype),
                  moep_dtype_name(c->y_dtype), c->E, c->H, c->I, (long long)c->N);
    ck_assert_msg(ffn_case_padding_intact(c), "%s: padding rows were written", what);
}

/* Every weight format x activation dtype x output dtype, odd sizes, padding. */
START_TEST(test_dtype_combos) {
    use_kernel(_i);
    test_rng_t rng;
    test_rng_init(&rng, test_seed("expert_ffn.dtype_combos"));
    const moep_weight_format_t fmts[] = {MOEP_WEIGHTS_F32, MOEP_WEIGHTS_BF16};
    const moep_dtype_t dts[] = {MOEP_DTYPE_F32, MOEP_DTYPE_BF16};
    for (int f = 0; f < 2; f++)
        for (int xi = 0; xi < 2; xi++)
            for (int yi = 0; yi < 2; yi++) {
                int64_t counts[5];
                random_counts(&rng, 5, 37, counts);
                ffn_case_t c;
                ffn_case_make(&c, &rng, 5, 72, 40, counts, 3, 2, fmts[f], dts[xi], dts[yi]);
                run_and_check(&c, 2, KERNELS[_i]);
                ffn_case_free(&c);
            }
}
END_TEST

/* Block-scaled weights, decoded tile by tile inside the kernel loop: checked
 * against the float64 reference of the dequantized weights (f32 rounding).
 * Shapes cross scale blocks, and H = 1088 crosses the 1024-wide k block. */
START_TEST(test_quantized_formats) {
    use_kernel(_i);
    test_rng_t rng;
    test_rng_init(&rng, test_seed("expert_ffn.quantized"));
    const struct {
        moep_weight_format_t f;
        int32_t H, I;
    } cases[] = {{MOEP_WEIGHTS_FP8_E4M3, 200, 136}, {MOEP_WEIGHTS_FP8_E4M3, 1100, 40},
                 {MOEP_WEIGHTS_FP8_E4M3, 72, 7},    {MOEP_WEIGHTS_MXFP4, 96, 64},
                 {MOEP_WEIGHTS_MXFP4, 1088, 32},    {MOEP_WEIGHTS_NVFP4, 48, 32},
                 {MOEP_WEIGHTS_NVFP4, 1040, 16}};
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        int64_t counts[3] = {1 + test_rng_int(&rng, 5), 0, 1 + test_rng_int(&rng, 7)};
        ffn_case_t c;
        ffn_case_make(&c, &rng, 3, cases[k].H, cases[k].I, counts, 1, 2, cases[k].f,
                      k % 2 ? MOEP_DTYPE_BF16 : MOEP_DTYPE_F32, MOEP_DTYPE_F32);
        run_and_check(&c, 2, KERNELS[_i]);
        ffn_case_free(&c);
    }
}
END_TEST

/* Sizes that are not multiples of any tile: k tails, odd I (half-filled
 * gate/up pair), H > the k block, row counts not multiples of 3. */
START_TEST(test_ragged_shapes) {
    use_kernel(_i);
    test_rng_t rng;
    test_rng_init(&rng, test_seed("expert_ffn.ragged_shapes"));
    const int32_t shapes[][2] = {{72, 40}, {13, 7}, {530, 37}, {8, 600}, {1, 1}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int64_t counts[3] = {1 + test_rng_int(&rng, 4), 0, 2 + 3 * test_rng_int(&rng, 3)};
        ffn_case_t c;
        ffn_case_make(&c, &rng, 3, shapes[s][0], shapes[s][1], counts, 1, 1, MOEP_WEIGHTS_F32,
                      MOEP_DTYPE_F32, MOEP_DTYPE_F32);
        run_and_check(&c, 2, KERNELS[_i]);
        ffn_case_free(&c);
    }
}
END_TEST

/* One expert holds every row (more than one row segment), the others none. */
START_TEST(test_one_expert_all_rows) {
    use_kernel(_i);
    test_rng_t rng;
    test_rng_init(&rng, test_seed("expert_ffn.one_expert"));
    int64_t counts[4] = {0, 0, 301, 0};
    ffn_case_t c;
    ffn_case_make(&c, &rng, 4, 72, 40, counts, 0, 3, MOEP_WEIGHTS_BF16, MOEP_DTYPE_F32,
                  MOEP_DTYPE_F32);
    run_and_check(&c, 2, KERNELS[_i]);
    ffn_case_free(&c);
}
END_TEST

/* Decode-like: one row per expert, many experts. */
START_TEST(test_one_row_per_expert) {
    use_kernel(_i);
    test_rng_t rng;
    test_rng_init(&rng, test_seed("expert_ffn.one_row_per_expert"));
    int64_t counts[16];
    for (int e = 0; e < 16; e++) counts[e] = 1;
    ffn_case_t c;
    ffn_case_make(&c, &rng, 16, 64, 24, counts, 0, 0, MOEP_WEIGHTS_F32, MOEP_DTYPE_BF16,
                  MOEP_DTYPE_F32);
    run_and_check(&c, 2, KERNELS[_i]);
    ffn_case_free(&c);
}
END_TEST

/* No expert has rows: nothing is written, including with N > 0. */
START_TEST(test_all_experts_empty) {
    test_rng_t rng;
    test_rng_init(&rng, test_seed("expert_ffn.all_empty"));
    int64_t counts[3] = {0, 0, 0};
    ffn_case_t c;
    ffn_case_make(&c, &rng, 3, 16, 8, counts, 2, 3, MOEP_WEIGHTS_F32, MOEP_DTYPE_F32,
                  MOEP_DTYPE_BF16);
    run_and_check(&c, 0, "empty");
    ffn_case_free(&c);
}
END_TEST

/* The result does not depend on the team size: each output element is
 * summed in the same order whichever thread computes it, so bit-identical. */
START_TEST(test_threads_bitwise_equal) {
    use_kernel(_i);
    test_rng_t rng;
    test_rng_init(&rng, test_seed("expert_ffn.threads"));
    int64_t counts[6];
    random_counts(&rng, 6, 200, counts);
    ffn_case_t c;
    ffn_case_make(&c, &rng, 6, 72, 40, counts, 1, 1, MOEP_WEIGHTS_BF16, MOEP_DTYPE_BF16,
                  MOEP_DTYPE_F32);
    moep_expert_weights_t w = ffn_case_weights(&c);
    moep_tensor_t x = ffn_case_x(&c), y = ffn_case_y(&c);
    const size_t bytes = (size_t)c.N * c.H * sizeof(float);
    float *first = malloc(bytes);
    ck_assert_ptr_nonnull(first);
    const int32_t teams[] = {1, 2, 3, 0};
    for (int t = 0; t < 4; t++) {
        ck_assert_ok(moep_expert_ffn(&w, &x, c.offset, &y, teams[t]));
        if (t == 0) memcpy(first, c.y, bytes);
        else ck_assert_msg(memcmp(first, c.y, bytes) == 0, "num_threads %d differs from 1", teams[t]);
    }
    ck_assert(ffn_case_error(&c) < ffn_case_tolerance(&c));
    free(first);
    ffn_case_free(&c);
}
END_TEST

/* Called from inside the caller's own parallel region (as the MoE layer may):
 * no nested team, each caller thread gets a correct result. */
START_TEST(test_inside_parallel_region) {
    test_rng_t rng;
    test_rng_init(&rng, test_seed("expert_ffn.nested"));
    int64_t counts[2][4];
    ffn_case_t c[2];
    for (int i = 0; i < 2; i++) {
        random_counts(&rng, 4, 20, counts[i]);
        ffn_case_make(&c[i], &rng, 4, 24, 16, counts[i], 0, 1, MOEP_WEIGHTS_F32, MOEP_DTYPE_F32,
                      MOEP_DTYPE_F32);
    }
    moep_status_t st[2] = {MOEP_ERR_INTERNAL, MOEP_ERR_INTERNAL};
#pragma omp parallel for num_threads(2)
    for (int i = 0; i < 2; i++) {
        moep_expert_weights_t w = ffn_case_weights(&c[i]);
        moep_tensor_t x = ffn_case_x(&c[i]), y = ffn_case_y(&c[i]);
        st[i] = moep_expert_ffn(&w, &x, c[i].offset, &y, 2);
    }
    for (int i = 0; i < 2; i++) {
        ck_assert_int_eq(st[i], MOEP_OK);
        ck_assert(ffn_case_error(&c[i]) < ffn_case_tolerance(&c[i]));
        ck_assert(ffn_case_padding_intact(&c[i]));
        ffn_case_free(&c[i]);
    }
}
END_TEST

Suite *moep_check_expert_ffn_suite(void) {
    Suite *s = suite_create("expert_ffn");
    TCase *tc = tcase_create("numerics");
    tcase_set_timeout(tc, 60);
    const int nk = (int)(sizeof KERNELS / sizeof KERNELS[0]);
    tcase_add_loop_test(tc, test_dtype_combos, 0, nk);
    tcase_add_loop_test(tc, test_ragged_shapes, 0, nk);
    tcase_add_loop_test(tc, test_quantized_formats, 0, nk);
    tcase_add_loop_test(tc, test_one_expert_all_rows, 0, nk);
    tcase_add_loop_test(tc, test_one_row_per_expert, 0, nk);
    tcase_add_test(tc, test_all_experts_empty);
    tcase_add_loop_test(tc, test_threads_bitwise_equal, 0, nk);
    tcase_add_test(tc, test_inside_parallel_region);
    suite_add_tcase(s, tc);
    return s;
}
