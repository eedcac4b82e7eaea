/* Check suites of the GPU expert FFN: correctness on the device, argument errors anywhere. */
#include <cuda_runtime_api.h>

#include "gpu_ffn_case.h"
#include "gpu_ffn_suites.h"
#include "test_util.h"

static uint64_t base_seed;

static const moep_weight_format_t fmts[3] = {MOEP_WEIGHTS_FP8_E4M3, MOEP_WEIGHTS_MXFP4,
                                             MOEP_WEIGHTS_NVFP4};

static void run(const gpu_ffn_case_t *c, int salt) {
    const char *err = gpu_ffn_run_case(c, base_seed + (uint64_t)salt * 7919u);
    ck_assert_msg(err == NULL, "%s", err ? err : "");
}

/* Ragged experts, one empty, padding gaps; H, I not multiples of 128. */
START_TEST(contiguous_ragged) {
    gpu_ffn_case_t c = {.fmt = fmts[_i], .E = 4, .H = 416, .I = 224,
                        .counts = {37, 0, 130, 5}, .pad = 11};
    run(&c, 1 + _i);
}
END_TEST

/* All tokens on one expert, the others empty; unpadded. */
START_TEST(contiguous_one_expert) {
    gpu_ffn_case_t c = {.fmt = fmts[_i], .E = 4, .H = 416, .I = 224, .counts = {0, 0, 200, 0}};
    run(&c, 11 + _i);
}
END_TEST

START_TEST(masked_ragged) {
    gpu_ffn_case_t c = {.fmt = fmts[_i], .masked = 1, .E = 4, .H = 416, .I = 224,
                        .counts = {37, 0, 130, 5}, .max_tokens = 150};
    run(&c, 21 + _i);
}
END_TEST

/* Decode-like: <= 64 tokens per expert, tile-multiple shapes. */
START_TEST(masked_decode) {
    gpu_ffn_case_t c = {.fmt = fmts[_i], .masked = 1, .E = 3, .H = 512, .I = 256,
                        .counts = {64, 1, 0}, .max_tokens = 64};
    run(&c, 31 + _i);
}
END_TEST

/* Few tokens per expert (T = 16, 9, 3: the mma body with 2 and 1 n-tiles),
 * an odd number of 128-channel segments in I (5), a caller workspace. */
START_TEST(masked_small) {
    gpu_ffn_case_t c = {.fmt = fmts[_i], .masked = 1, .E = 3, .H = 512, .I = 640,
                        .counts = {16, 9, 3}, .max_tokens = 16, .caller_ws = 1};
    run(&c, 61 + _i);
}
END_TEST

/* FP8 activations + 1x128 scales given by the caller (FP8 dispatch). */
START_TEST(fp8_input) {
    gpu_ffn_case_t c = {.fmt = MOEP_WEIGHTS_FP8_E4M3, .masked = _i, .fp8_input = 1,
                        .E = 4, .H = 416, .I = 224, .counts = {37, 0, 130, 5}, .max_tokens = 150, .pad = 3};
    run(&c, 41 + _i);
}
END_TEST

/* Several 128-blocks in every dimension and more than one n-tile. */
START_TEST(larger) {
    gpu_ffn_case_t c = {.fmt = fmts[_i], .E = 2, .H = 1024, .I = 544,
                        .counts = {300, 70}, .pad = 5};
    run(&c, 51 + _i);
}
END_TEST

/* The caller's workspace (the _ws variants): contiguous FP8 with bf16 x
 * (quantized into the workspace), masked FP4. */
START_TEST(caller_workspace) {
    gpu_ffn_case_t c = {.fmt = fmts[_i], .masked = _i > 0, .E = 4, .H = 416, .I = 224,
                        .counts = {37, 0, 130, 5}, .max_tokens = 150, .caller_ws = 1};
    run(&c, 61 + _i);
}
END_TEST

/* Packed FP4 weights (moep_expert_weights_pack_cuda), _i = 1 MXFP4, 2 NVFP4:
 * ragged contiguous rows with H = 416 (a last segment of 32 channels, zero-
 * padded by the packer), decode tiles of 64 tokens (wgmma body), few tokens
 * (mma body) with I = 640 through a caller workspace. */
START_TEST(packed_contiguous_ragged) {
    gpu_ffn_case_t c = {.fmt = fmts[_i], .E = 4, .H = 416, .I = 224,
                        .counts = {37, 0, 130, 5}, .pad = 11, .packed = 1};
    run(&c, 71 + _i);
}
END_TEST

START_TEST(packed_masked_decode) {
    gpu_ffn_case_t c = {.fmt = fmts[_i], .masked = 1, .E = 3, .H = 512, .I = 256,
                        .counts = {64, 1, 0}, .max_tokens = 64, .packed = 1};
    run(&c, 81 + _i);
}
END_TEST

START_TEST(packed_masked_small) {
    gpu_ffn_case_t c = {.fmt = fmts[_i], .masked = 1, .E = 3, .H = 512, .I = 640,
                        .counts = {16, 9, 3}, .max_tokens = 16, .caller_ws = 1, .packed = 1};
    run(&c, 91 + _i);
}
END_TEST

/* W2 rows over 2^-16 .. 2^16: MX block scales beyond the row-major kernels'
 * 2^13, and blocks more than 2^29 below the largest, which the packer flushes
 * (too small to move the error); 64 and 9 tokens (both bodies). */
START_TEST(packed_wide_scales) {
    gpu_ffn_case_t c = {.fmt = fmts[_i], .masked = 1, .E = 2, .H = 256, .I = 512,
                        .counts = {64, 9}, .max_tokens = 64, .packed = 1, .wide_scales = 1};
    run(&c, 101 + _i);
}
END_TEST

/* At most 8 tokens per expert (masked max_tokens <= 8, or contiguous rows
 * <= 8 per expert): NVFP4 then streams packed weights through shared memory
 * (cp.async rings). K of 1024 / 640 channels (8 / 5 segments: whole and
 * partial bursts, ring wrap-around), 416 / 224 (a zero-padded last segment,
 * fewer segments than the ring holds), and wide W2 scales. */
START_TEST(packed_masked_narrow) {
    gpu_ffn_case_t c = {.fmt = fmts[_i], .masked = 1, .E = 3, .H = 1024, .I = 640,
                        .counts = {8, 1, 0}, .max_tokens = 8, .packed = 1};
    run(&c, 111 + _i);
}
END_TEST

START_TEST(packed_contiguous_narrow) {
    gpu_ffn_case_t c = {.fmt = fmts[_i], .E = 4, .H = 416, .I = 224,
                        .counts = {3, 0, 8, 1}, .caller_ws = 1, .packed = 1};
    run(&c, 121 + _i);
}
END_TEST

/* Long K on both projections with tiles of 20 and 40 tokens (wgmma body, N = 32
 * and 64): x and h go through the shared-memory buffers in 3-6 chunks, so the
 * refills by the last warp out of a buffer are exercised; row-major and
 * packed, both FP4 formats. */
START_TEST(wide_long_k) {
    gpu_ffn_case_t c = {.fmt = fmts[1 + (_i & 1)], .masked = 1, .E = 3, .H = 4096, .I = 1536,
                        .counts = {40, 20, 0}, .max_tokens = 64, .packed = _i >> 1};
    run(&c, 141 + _i);
}
END_TEST

/* One caller workspace used twice, the first time on other x: two calls
 * (_i < 4), or the call captured in a CUDA graph and replayed (_i >= 4). The
 * blocked x, flags and epoch the first leaves there must not pass for the
 * second's; row-major and packed, both FP4 formats, tiles of 64, 40 and 17
 * tokens. */
START_TEST(wide_workspace_reused) {
    gpu_ffn_case_t c = {.fmt = fmts[1 + (_i & 1)], .masked = 1, .E = 3, .H = 1024, .I = 640,
                        .counts = {64, 40, 17}, .max_tokens = 64, .caller_ws = 1, .reuse_ws = _i < 4,
                        .graph = _i >= 4, .packed = (_i >> 1) & 1};
    run(&c, 151 + _i);
}
END_TEST

/* More gate/up CTAs than an H100 / H200 has SMs (9 tiles x 16): blocked x
 * comes from moep__fp4_prep before gate/up, not from the gate/up CTAs. */
START_TEST(wide_many_tiles) {
    gpu_ffn_case_t c = {.fmt = fmts[1 + _i], .masked = 1, .E = 3, .H = 256, .I = 2048,
                        .counts = {192, 100, 30}, .max_tokens = 192, .packed = 1};
    run(&c, 161 + _i);
}
END_TEST

START_TEST(packed_narrow_wide_scales) {
    gpu_ffn_case_t c = {.fmt = fmts[_i], .masked = 1, .E = 2, .H = 256, .I = 512,
                        .counts = {5, 1}, .max_tokens = 8, .packed = 1, .wide_scales = 1};
    run(&c, 131 + _i);
}
END_TEST

Suite *gpu_ffn_device_suite(void) {
    base_seed = test_seed("gpu_ffn");
    Suite *s = suite_create("gpu_ffn_device");
    TCase *t = tcase_create("kernels");
    tcase_set_timeout(t, 300);
    tcase_add_loop_test(t, contiguous_ragged, 0, 3);
    tcase_add_loop_test(t, wide_workspace_reused, 0, 8);
    tcase_add_loop_test(t, wide_many_tiles, 0, 2);
    tcase_add_loop_test(t, contiguous_one_expert, 0, 3);
    tcase_add_loop_test(t, masked_ragged, 0, 3);
    tcase_add_loop_test(t, masked_decode, 0, 3);
    tcase_add_loop_test(t, masked_small, 0, 3);
    tcase_add_loop_test(t, fp8_input, 0, 2);
    tcase_add_loop_test(t, larger, 0, 3);
    tcase_add_loop_test(t, caller_workspace, 0, 3);
    tcase_add_loop_test(t, packed_contiguous_ragged, 1, 3);
    tcase_add_loop_test(t, packed_masked_decode, 1, 3);
    tcase_add_loop_test(t, packed_masked_small, 1, 3);
    tcase_add_loop_test(t, packed_wide_scales, 1, 3);
    tcase_add_loop_test(t, packed_masked_narrow, 1, 3);
    tcase_add_loop_test(t, packed_contiguous_narrow, 1, 3);
    tcase_add_loop_test(t, packed_narrow_wide_scales, 1, 3);
    tcase_add_loop_test(t, wide_long_k, 0, 4);
    suite_add_tcase(s, t);
    return s;
}

static moep_expert_weights_t fake_weights(moep_weight_format_t f) {
    static char buf[64] __attribute__((aligned(16)));
    static float gs[4];
    moep_expert_weights_t w;
    moep_expert_weights_init(&w);
    w.format = f;
    w.num_experts = 2, w.hidden = 256, w.intermediate = 128;
    moep_weight_stack_t s = {buf, buf, gs};
    w.w1 = w.w3 = w.w2 = s;
    return w;
}

START_TEST(bad_args) {
    static char xb[64] __attribute__((aligned(16)));
    int64_t off[3] = {0, 0, 0};
    moep_tensor_t x = moep_tensor_2d(xb, MOEP_DTYPE_BF16, 4, 256);
    moep_tensor_t y = moep_tensor_2d(xb, MOEP_DTYPE_BF16, 4, 256);
    x.device = y.device = MOEP_DEVICE_CUDA;
    moep_expert_weights_t w = fake_weights(MOEP_WEIGHTS_FP8_E4M3);
    ck_assert_status(moep_expert_ffn_cuda(NULL, &x, NULL, off, &y, NULL), MOEP_ERR_INVALID_ARG);
    ck_assert_status(moep_expert_ffn_cuda(&w, &x, NULL, NULL, &y, NULL), MOEP_ERR_INVALID_ARG);
    ck_assert_status(moep_expert_ffn_cuda(&w, &x, &x, off, &y, NULL), MOEP_ERR_INVALID_ARG);
    moep_expert_weights_t wb = fake_weights(MOEP_WEIGHTS_BF16);
    ck_assert_status(moep_expert_ffn_cuda(&wb, &x, NULL, off, &y, NULL), MOEP_ERR_UNSUPPORTED);
    moep_expert_weights_t wh = fake_weights(MOEP_WEIGHTS_MXFP4);
    wh.intermediate = 144; /* % 32 != 0 */
    ck_assert_status(moep_expert_ffn_cuda(&wh, &x, NULL, off, &y, NULL), MOEP_ERR_SHAPE);
    moep_expert_weights_t wn = fake_weights(MOEP_WEIGHTS_NVFP4);
    wn.w2.global_scale = NULL;
    ck_assert_status(moep_expert_ffn_cuda(&wn, &x, NULL, off, &y, NULL), MOEP_ERR_INVALID_ARG);
    moep_tensor_t x3 = moep_tensor_2d(xb, MOEP_DTYPE_BF16, 4, 128); /* H mismatch */
    x3.device = MOEP_DEVICE_CUDA;
    ck_assert_status(moep_expert_ffn_cuda(&w, &x3, NULL, off, &y, NULL), MOEP_ERR_SHAPE);
    moep_tensor_t xh = x;
    xh.device = MOEP_DEVICE_CPU;
    ck_assert_status(moep_expert_ffn_cuda(&w, &xh, NULL, off, &y, NULL), MOEP_ERR_INVALID_ARG);
    moep_tensor_t x8 = x;
    x8.dtype = MOEP_DTYPE_FP8_E4M3; /* FP8 x without scales */
    ck_assert_status(moep_expert_ffn_cuda(&w, &x8, NULL, off, &y, NULL), MOEP_ERR_INVALID_ARG);
    /* masked: x must be [E, max_tokens, H] with E = num_experts */
    ck_assert_status(moep_expert_ffn_masked_cuda(&w, &x, NULL, off, &y, NULL), MOEP_ERR_SHAPE);
    moep_tensor_t xm = moep_tensor_3d(xb, MOEP_DTYPE_BF16, 3, 1, 256);
    moep_tensor_t ym = moep_tensor_3d(xb, MOEP_DTYPE_BF16, 3, 1, 256);
    xm.device = ym.device = MOEP_DEVICE_CUDA;
    ck_assert_status(moep_expert_ffn_masked_cuda(&w, &xm, NULL, off, &ym, NULL), MOEP_ERR_SHAPE);
    /* layouts: packed is for FP4 only, unknown values are refused */
    moep_expert_weights_t wl = fake_weights(MOEP_WEIGHTS_FP8_E4M3);
    wl.layout = MOEP_WEIGHT_LAYOUT_FP4_PACKED;
    ck_assert_status(moep_expert_ffn_cuda(&wl, &x, NULL, off, &y, NULL), MOEP_ERR_INVALID_ARG);
    wl = fake_weights(MOEP_WEIGHTS_MXFP4);
    wl.layout = (moep_weight_layout_t)7;
    ck_assert_status(moep_expert_ffn_cuda(&wl, &x, NULL, off, &y, NULL), MOEP_ERR_INVALID_ARG);
    wl.layout = MOEP_WEIGHT_LAYOUT_FP4_PACKED; /* packed MX needs its global scales */
    wl.w3.global_scale = NULL;
    ck_assert_status(moep_expert_ffn_cuda(&wl, &x, NULL, off, &y, NULL), MOEP_ERR_INVALID_ARG);
}
END_TEST

/* The packer's argument errors (no kernel runs). */
START_TEST(pack_bad_args) {
    static char buf[1024] __attribute__((aligned(256)));
    size_t bytes = 1;
    moep_expert_weights_t p, w = fake_weights(MOEP_WEIGHTS_MXFP4);
    ck_assert_status(moep_expert_weights_pack_cuda_size(NULL, &bytes), MOEP_ERR_INVALID_ARG);
    ck_assert_status(moep_expert_weights_pack_cuda_size(&w, NULL), MOEP_ERR_INVALID_ARG);
    ck_assert_status(moep_expert_weights_pack_cuda_size(&w, &bytes), MOEP_OK);
    /* each stack (2 x 128 x 256, or 2 x 256 x 128): 64 (8-row block,
     * segment) pairs of 512 code bytes + 32 scale bytes, and 256-byte
     * slots for the MX global scales and shifts */
    ck_assert_uint_eq(bytes, 3 * (64 * 512 + 64 * 32 + 256 + 256));
    ck_assert_status(moep_expert_weights_pack_cuda(&w, NULL, bytes, &p, NULL), MOEP_ERR_INVALID_ARG);
    ck_assert_status(moep_expert_weights_pack_cuda(&w, buf, bytes, NULL, NULL), MOEP_ERR_INVALID_ARG);
    ck_assert_status(moep_expert_weights_pack_cuda(&w, buf, sizeof buf, &p, NULL), MOEP_ERR_SHAPE);
    ck_assert_status(moep_expert_weights_pack_cuda(&w, buf + 16, bytes, &p, NULL), MOEP_ERR_INVALID_ARG);
    moep_expert_weights_t w8 = fake_weights(MOEP_WEIGHTS_FP8_E4M3);
    ck_assert_status(moep_expert_weights_pack_cuda_size(&w8, &bytes), MOEP_ERR_UNSUPPORTED);
    ck_assert_uint_eq(bytes, 0);
    moep_expert_weights_t wp = fake_weights(MOEP_WEIGHTS_NVFP4);
    wp.layout = MOEP_WEIGHT_LAYOUT_FP4_PACKED;
    ck_assert_status(moep_expert_weights_pack_cuda_size(&wp, &bytes), MOEP_ERR_INVALID_ARG);
    moep_expert_weights_t wh = fake_weights(MOEP_WEIGHTS_NVFP4);
    wh.hidden = 272; /* % 32 != 0 */
    ck_assert_status(moep_expert_weights_pack_cuda_size(&wh, &bytes), MOEP_ERR_SHAPE);
}
END_TEST

Suite *gpu_ffn_args_suite(void) {
    Suite *s = suite_create("gpu_ffn_args");
    TCase *t = tcase_create("errors");
    tcase_add_test(t, bad_args);
    tcase_add_test(t, pack_bad_args);
    suite_add_tcase(s, t);
    return s;
}
