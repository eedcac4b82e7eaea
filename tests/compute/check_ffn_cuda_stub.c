/* The GPU expert FFN in a build without CUDA (the stub): every entry point
 * answers MOEP_ERR_UNSUPPORTED with a message, and the workspace size is 0. */
#include <string.h>

#include "moep_cuda_ffn.h"
#include "test_util.h"

START_TEST(ffn_cuda_stub_unsupported) {
    static uint16_t buf[4 * 256];
    int64_t off[3] = {0, 2, 4};
    moep_expert_weights_t w;
    memset(&w, 0, sizeof w);
    w.format = MOEP_WEIGHTS_FP8_E4M3;
    w.num_experts = 2, w.hidden = 256, w.intermediate = 128;
    moep_tensor_t x = moep_tensor_2d(buf, MOEP_DTYPE_BF16, 4, 256);
    moep_tensor_t y = moep_tensor_2d(buf, MOEP_DTYPE_BF16, 4, 256);
    ck_assert_status(moep_expert_ffn_cuda(&w, &x, NULL, off, &y, NULL), MOEP_ERR_UNSUPPORTED);
    ck_assert_msg(strstr(moep_last_error(), "without CUDA") != NULL, "%s", moep_last_error());
    ck_assert_status(moep_expert_ffn_masked_cuda(&w, &x, NULL, off, &y, NULL), MOEP_ERR_UNSUPPORTED);
    ck_assert_status(moep_expert_ffn_cuda_ws(&w, &x, NULL, off, &y, buf, sizeof buf, NULL),
                     MOEP_ERR_UNSUPPORTED);
    ck_assert_status(moep_expert_ffn_masked_cuda_ws(&w, &x, NULL, off, &y, NULL, 0, NULL),
                     MOEP_ERR_UNSUPPORTED);
    size_t bytes = 12345;
    ck_assert_status(moep_expert_ffn_cuda_workspace_size(&w, &x, 0, &bytes), MOEP_ERR_UNSUPPORTED);
    ck_assert_uint_eq(bytes, 0);
    ck_assert_status(moep_expert_ffn_cuda_workspace_size(&w, &x, 0, NULL), MOEP_ERR_UNSUPPORTED);
    moep_expert_weights_t packed;
    w.format = MOEP_WEIGHTS_MXFP4;
    bytes = 12345;
    ck_assert_status(moep_expert_weights_pack_cuda_size(&w, &bytes), MOEP_ERR_UNSUPPORTED);
    ck_assert_uint_eq(bytes, 0);
    ck_assert_status(moep_expert_weights_pack_cuda(&w, buf, sizeof buf, &packed, NULL), MOEP_ERR_UNSUPPORTED);
    ck_assert_msg(strstr(moep_last_error(), "without CUDA") != NULL, "%s", moep_last_error());
}
END_TEST

Suite *moep_check_ffn_cuda_stub_suite(void) {
    Suite *s = suite_create("ffn_cuda_stub");
    TCase *t = tcase_create("stub");
    tcase_add_test(t, ffn_cuda_stub_unsupported);
    suite_add_tcase(s, t);
    return s;
}
