/*
 * Dispatch + combine over every CPU transport configuration, 2-4 ranks:
 * received tokens, expert-major layout and combined outputs are checked
 * against what each rank can compute on its own (ep_workload.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ep_workload.h"
#include "rank_harness.h"
#include "test_util.h"

static uint64_t suite_seed;

#define RANK_FAIL(...)                      \
    do {                                    \
        snprintf(err, len, __VA_ARGS__);    \
        rc = 1;                             \
        goto out;                           \
    } while (0)

/* One rank: dispatch, check, expert, combine, check; then again with the
 * cached layout and new activations. */
static int dispatch_combine_rank(const harness_config_t *cfg, const moep_bootstrap_t *bs, void *arg,
                                 char *err, size_t len) {
    const ep_spec_t *s = arg;
    int32_t rank = bs->rank, rc = 0;
    moep_comm_t *comm = NULL;
    moep_handle_t *h = NULL;
    ep_tokens_t t = {0};
    void *ey = NULL, *out = NULL;
    int32_t *expert_rank = malloc((size_t)s->num_experts * sizeof(int32_t));
    for (int32_t e = 0; e < s->num_experts; e++) expert_rank[e] = e / (s->num_experts / s->world);
    moep_status_t st = harness_comm(cfg, bs, s->num_experts, 10000, &comm);
    if (st != MOEP_OK) RANK_FAIL("comm: %s %s", moep_status_name(st), moep_last_error());
    for (int version = 0; version < 2; version++) {
        ep_tokens_free(&t);
        ep_tokens_make(s, rank, version, &t);
        moep_tensor_t x = moep_tensor_2d(t.x, s->dtype, t.T, s->hidden);
        moep_tensor_t idx = moep_tensor_2d(t.topk_idx, MOEP_DTYPE_I32, t.T, s->top_k);
        moep_tensor_t w = moep_tensor_2d(t.topk_w, MOEP_DTYPE_F32, t.T, s->top_k);
        moep_dispatch_params_t dp;
        moep_dispatch_params_init(&dp);
        dp.x = &x;
        dp.topk_idx = &idx;
        dp.topk_weights = &w;
        dp.wire_dtype = s->wire;
        dp.expert_alignment = s->alignment > 0 ? s->alignment : 1;
        if (version == 1) dp.flags = MOEP_DISPATCH_REUSE_LAYOUT;
        moep_dispatch_result_t r;
        st = moep_dispatch(comm, &dp, &h, &r);
        if (st != MOEP_OK) RANK_FAIL("dispatch v%d: %s %s", version, moep_status_name(st), moep_last_error());
        if (ep_check_dispatch(s, rank, version, expert_rank, &r, err, len)) { rc = 1; goto out; }
        size_t es = s->dtype == MOEP_DTYPE_BF16 ? 2 : 4;
        free(ey);
        ey = calloc((size_t)r.num_expert_rows * s->hidden + 1, es);
        ep_expert_apply(s, &r, moep_comm_local_experts(comm), ey);
        free(out);
        out = calloc((size_t)t.T * s->hidden + 1, es);
        moep_tensor_t eyt = moep_tensor_2d(ey, s->dtype, r.num_expert_rows, s->hidden);
        moep_tensor_t ot = moep_tensor_2d(out, s->dtype, t.T, s->hidden);
        moep_combine_params_t cp;
        moep_combine_params_init(&cp);
        cp.expert_y = &eyt;
        cp.out = &ot;
        st = moep_combine(comm, &cp, h);
        if (st != MOEP_OK) RANK_FAIL("combine v%d: %s %s", version, moep_status_name(st), moep_last_error());
        if (ep_check_combine(s, rank, version, out, err, len)) { rc = 1; goto out; }
    }
out:
    free(expert_rank);
    ep_tokens_free(&t);
    free(ey);
    free(out);
    moep_handle_destroy(h);
    moep_comm_destroy(comm);
    return rc;
}

static void run_spec(int cfg_i, ep_spec_t *s) {
    const harness_config_t *cfg = &harness_configs[cfg_i];
    if (!harness_available(cfg)) return;
    char report[4096];
    s->seed = suite_seed + (uint64_t)cfg_i;
    int failed = harness_run(cfg, s->world, dispatch_combine_rank, s, 60, report, sizeof report);
    ck_assert_msg(failed == 0, "%s, %d ranks: %d rank(s) failed:\n%s", cfg->label, s->world, failed,
                  report);
}

static ep_spec_t spec(int world, moep_dtype_t dt, route_pattern_t pat, int base_tokens) {
    ep_spec_t s = {.world = world, .num_experts = 12 * world, .top_k = 4, .hidden = 40, .dtype = dt,
                   .pattern = pat, .alignment = 1};
    for (int r = 0; r < world; r++) s.tokens[r] = base_tokens + 37 * r;
    return s;
}

START_TEST(random_f32_2_3_4_ranks) {
    for (int world = 2; world <= 4; world++) {
        ep_spec_t s = spec(world, MOEP_DTYPE_F32, ROUTE_RANDOM, 150);
        s.tokens[world - 1] = 0; /* a rank with no tokens at all */
        run_spec(_i, &s);
    }
}
END_TEST

START_TEST(zipf_bf16_3_ranks_aligned) {
    ep_spec_t s = spec(3, MOEP_DTYPE_BF16, ROUTE_ZIPF, 200);
    s.alignment = 8;
    s.top_k = 6;
    run_spec(_i, &s);
}
END_TEST

START_TEST(large_t_4096) {
    ep_spec_t s = spec(2, MOEP_DTYPE_BF16, ROUTE_RANDOM, 4096);
    s.tokens[1] = 4096;
    s.hidden = 128;
    s.top_k = 8;
    s.num_experts = 64;
    run_spec(_i, &s);
}
END_TEST

START_TEST(one_expert_and_all_masked) {
    ep_spec_t s = spec(3, MOEP_DTYPE_F32, ROUTE_ONE_EXPERT, 64);
    run_spec(_i, &s);
    s = spec(3, MOEP_DTYPE_F32, ROUTE_ALL_MASKED, 64);
    run_spec(_i, &s);
}
END_TEST

START_TEST(wire_bf16_and_fp8) {
    ep_spec_t s = spec(2, MOEP_DTYPE_F32, ROUTE_RANDOM, 100);
    s.hidden = 256;
    s.wire = MOEP_DTYPE_BF16;
    run_spec(_i, &s);
    s.wire = MOEP_DTYPE_FP8_E4M3;
    s.hidden = 200; /* a partial 128-block at the end */
    run_spec(_i, &s);
}
END_TEST

START_TEST(wide_expert_ids_over_int16) {
    /* E > 32767: ids travel as int32 instead of int16 */
    ep_spec_t s = spec(2, MOEP_DTYPE_F32, ROUTE_RANDOM, 60);
    s.num_experts = 40000;
    run_spec(_i, &s);
}
END_TEST

Suite *dispatch_suite(void) {
    suite_seed = test_seed("dispatch");
    Suite *s = suite_create("dispatch");
    TCase *tc = tcase_create("transports");
    tcase_set_timeout(tc, 300);
    tcase_add_loop_test(tc, random_f32_2_3_4_ranks, 0, harness_num_configs);
    tcase_add_loop_test(tc, zipf_bf16_3_ranks_aligned, 0, harness_num_configs);
    tcase_add_loop_test(tc, one_expert_and_all_masked, 0, harness_num_configs);
    tcase_add_loop_test(tc, wire_bf16_and_fp8, 0, harness_num_configs);
    tcase_add_loop_test(tc, large_t_4096, 0, harness_num_configs);
    tcase_add_test(tc, wide_expert_ids_over_int16); /* local only: _i = 0 */
    suite_add_tcase(s, tc);
    return s;
}
