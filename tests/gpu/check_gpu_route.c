/*
 * GPU routing and layout counts against the CPU implementation: same
 * inputs, ids identical, weights within 1e-6, counts identical.
 */
#include <check.h>
#include <cuda_runtime.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_kernels.h"
#include "gpu_probe.h"
#include "moep.h"

static uint64_t rng = 12345;
static double unif(void) {
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    return (double)(rng >> 11) * 0x1p-53;
}

static moep_tensor_t dev(void *p, moep_dtype_t t, int64_t a, int64_t b, int nd) {
    moep_tensor_t x = nd == 1 ? moep_tensor_1d(p, t, a) : moep_tensor_2d(p, t, a, b);
    x.device = MOEP_DEVICE_CUDA;
    return x;
}

static void *to_dev(const void *h, size_t bytes) {
    void *d = NULL;
    cudaError_t e = cudaMalloc(&d, bytes ? bytes : 1);
    ck_assert_msg(e == cudaSuccess, "cudaMalloc(%zu): %s", bytes, cudaGetErrorString(e));
    if (bytes && h != NULL) {
        e = cudaMemcpy(d, h, bytes, cudaMemcpyHostToDevice);
        int dev = -1;
        cudaGetDevice(&dev);
        ck_assert_msg(e == cudaSuccess, "cudaMemcpy(%p <- %p, %zu) on device %d: %s", d, h, bytes,
                      dev, cudaGetErrorString(e));
    }
    return d;
}

/* One routing case on CPU and GPU; returns mismatching ids. */
static void route_case(moep_route_kind_t kind, moep_dtype_t dt, int32_t E, int32_t k, int64_t T,
                       int grouped, int limited) {
    moep_router_config_t cfg;
    moep_router_config_init(&cfg);
    cfg.kind = kind;
    cfg.num_experts = E;
    cfg.top_k = k;
    float *bias = calloc((size_t)E, sizeof(float));
    for (int32_t e = 0; e < E; e++) bias[e] = (float)(unif() - 0.5) * 0.1f;
    if (kind == MOEP_ROUTE_SIGMOID_GROUPED) {
        cfg.n_group = grouped ? 8 : 1;
        cfg.topk_group = grouped ? 4 : 1;
        cfg.routed_scaling_factor = 2.5f;
        cfg.expert_bias = bias;
    }
    if (limited) {
        cfg.num_ranks = 4;
        cfg.max_ranks_per_token = 2;
    }
    cfg.hash_seed = 7;
    cfg.layer_id = 3;
    size_t es = dt == MOEP_DTYPE_BF16 ? 2 : 4, n = (size_t)(T * E);
    void *sc = malloc(n * es + 4);
    for (size_t i = 0; i < n; i++) {
        float v = (float)(unif() * 8 - 4);
        if (i % 97 == 5) v = 1.0f; /* exact ties between experts */
        if (dt == MOEP_DTYPE_BF16) ((uint16_t *)sc)[i] = moep_f32_to_bf16(v);
        else ((float *)sc)[i] = v;
    }
    int64_t *ids = malloc((size_t)T * 8 + 8);
    for (int64_t t = 0; t < T; t++) ids[t] = t * 31 + 5;
    int32_t *ci = malloc((size_t)T * k * 4 + 4), *gi = malloc((size_t)T * k * 4 + 4);
    float *cw = malloc((size_t)T * k * 4 + 4), *gw = malloc((size_t)T * k * 4 + 4);
    moep_tensor_t hs = moep_tensor_2d(sc, dt, T, E), hid = moep_tensor_1d(ids, MOEP_DTYPE_I64, T);
    moep_tensor_t hi = moep_tensor_2d(ci, MOEP_DTYPE_I32, T, k), hw = moep_tensor_2d(cw, MOEP_DTYPE_F32, T, k);
    ck_assert_msg(moep_route(&cfg, &hs, &hid, &hi, &hw) == MOEP_OK, "cpu route: %s", moep_last_error());
    void *dsc = to_dev(sc, n * es), *dids = to_dev(ids, (size_t)T * 8);
    void *di = to_dev(NULL, (size_t)T * k * 4), *dw = to_dev(NULL, (size_t)T * k * 4);
    moep_tensor_t ds = dev(dsc, dt, T, E, 2), did = dev(dids, MOEP_DTYPE_I64, T, 0, 1);
    moep_tensor_t dti = dev(di, MOEP_DTYPE_I32, T, k, 2), dtw = dev(dw, MOEP_DTYPE_F32, T, k, 2);
    moep_status_t st = moep_route_cuda(&cfg, &ds, &did, &dti, &dtw, NULL);
    ck_assert_msg(st == MOEP_OK, "gpu route: %s", moep_last_error());
    ck_assert_int_eq(cudaMemcpy(gi, di, (size_t)T * k * 4, cudaMemcpyDeviceToHost), cudaSuccess);
    ck_assert_int_eq(cudaMemcpy(gw, dw, (size_t)T * k * 4, cudaMemcpyDeviceToHost), cudaSuccess);
    for (int64_t i = 0; i < T * k; i++) {
        ck_assert_msg(ci[i] == gi[i], "%s %s: id [%lld,%lld] cpu %d gpu %d",
                      moep_route_kind_name(kind), moep_dtype_name(dt), (long long)(i / k),
                      (long long)(i % k), ci[i], gi[i]);
        ck_assert_msg(fabsf(cw[i] - gw[i]) <= 1e-6f, "%s: weight [%lld] cpu %.9g gpu %.9g",
                      moep_route_kind_name(kind), (long long)i, cw[i], gw[i]);
    }
    /* layout counts of the same ids */
    if (!limited) {
        int32_t R = 4;
        moep_layout_t *lay = NULL;
        ck_assert_int_eq(moep_layout_create(&hi, E, R, NULL, &lay), MOEP_OK);
        void *dr = to_dev(NULL, (size_t)R * 8), *de = to_dev(NULL, (size_t)E * 8);
        void *dslot = to_dev(NULL, (size_t)(T * R) * 4);
        moep_tensor_t tr = dev(dr, MOEP_DTYPE_I64, R, 0, 1), te = dev(de, MOEP_DTYPE_I64, E, 0, 1);
        moep_tensor_t ts = dev(dslot, MOEP_DTYPE_I32, T, R, 2);
        ck_assert_msg(moep_layout_counts_cuda(&dti, E, R, NULL, &tr, &te, &ts, NULL, NULL) == MOEP_OK,
                      "layout: %s", moep_last_error());
        int64_t hr[4], *he = malloc((size_t)E * 8);
        int32_t *hslot = malloc((size_t)(T * R) * 4 + 4);
        cudaMemcpy(hr, dr, (size_t)R * 8, cudaMemcpyDeviceToHost);
        cudaMemcpy(he, de, (size_t)E * 8, cudaMemcpyDeviceToHost);
        cudaMemcpy(hslot, dslot, (size_t)(T * R) * 4, cudaMemcpyDeviceToHost);
        for (int32_t r = 0; r < R; r++) ck_assert_int_eq(hr[r], lay->tokens_per_rank[r]);
        for (int32_t e = 0; e < E; e++) ck_assert_int_eq(he[e], lay->tokens_per_expert[e]);
        for (int64_t i = 0; i < T * R; i++) ck_assert_int_eq(hslot[i], lay->token_rank_slot[i]);
        moep_layout_destroy(lay);
        free(he);
        free(hslot);
        cudaFree(dr);
        cudaFree(de);
        cudaFree(dslot);
    }
    cudaFree(dsc); cudaFree(dids); cudaFree(di); cudaFree(dw);
    free(sc); free(ids); free(ci); free(gi); free(cw); free(gw); free(bias);
}

START_TEST(route_kinds_match_cpu) {
    if (gpu_skip(1, "route_kinds_match_cpu")) return;
    ck_assert_int_eq(cudaSetDevice(0), cudaSuccess);
    for (int dt = 0; dt < 2; dt++) {
        moep_dtype_t t = dt ? MOEP_DTYPE_BF16 : MOEP_DTYPE_F32;
        route_case(MOEP_ROUTE_SOFTMAX_TOPK, t, 64, 6, 2048, 0, 0);
        route_case(MOEP_ROUTE_TOPK_SOFTMAX, t, 128, 4, 2048, 0, 0);
        route_case(MOEP_ROUTE_SIGMOID_GROUPED, t, 256, 8, 4096, 1, 0);
        route_case(MOEP_ROUTE_SIGMOID_GROUPED, t, 64, 8, 1024, 0, 0);
        route_case(MOEP_ROUTE_HASH, t, 256, 8, 2048, 0, 0);
        route_case(MOEP_ROUTE_SOFTMAX_TOPK, t, 64, 4, 1024, 0, 1);
        route_case(MOEP_ROUTE_SOFTMAX_TOPK, t, 64, 4, 0, 0, 0);
        /* E not a multiple of the warp; T = 1; E beyond the warp kernel
         * (320: thread per token, global scratch) */
        route_case(MOEP_ROUTE_SIGMOID_GROUPED, t, 72, 6, 700, 1, 0);
        route_case(MOEP_ROUTE_SOFTMAX_TOPK, t, 72, 5, 700, 0, 1);
        route_case(MOEP_ROUTE_TOPK_SOFTMAX, t, 40, 3, 1, 0, 0);
        route_case(MOEP_ROUTE_SOFTMAX_TOPK, t, 320, 8, 300, 0, 0);
    }
}
END_TEST

START_TEST(route_nan_is_numeric) {
    if (gpu_skip(1, "route_nan_is_numeric")) return;
    ck_assert_int_eq(cudaSetDevice(0), cudaSuccess);
    moep_router_config_t cfg;
    moep_router_config_init(&cfg);
    cfg.num_experts = 8;
    cfg.top_k = 2;
    float s[4 * 8] = {0};
    s[2 * 8 + 3] = NAN;
    void *d = to_dev(s, sizeof s), *di = to_dev(NULL, 32), *dw = to_dev(NULL, 32);
    moep_tensor_t ds = dev(d, MOEP_DTYPE_F32, 4, 8, 2), ti = dev(di, MOEP_DTYPE_I32, 4, 2, 2);
    moep_tensor_t tw = dev(dw, MOEP_DTYPE_F32, 4, 2, 2);
    ck_assert_int_eq(moep_route_cuda(&cfg, &ds, NULL, &ti, &tw, NULL), MOEP_ERR_NUMERIC);
    ck_assert_ptr_nonnull(strstr(moep_last_error(), "token 2"));
    cudaFree(d); cudaFree(di); cudaFree(dw);
}
END_TEST

/* No host wait: NaN rows get ids E and weights 0, first_nan the first of them
 * (-1 without NaN), every other row what moep_route_cuda gives. */
START_TEST(route_async_flags_nan_rows) {
    if (gpu_skip(1, "route_async_flags_nan_rows")) return;
    ck_assert_int_eq(cudaSetDevice(0), cudaSuccess);
    moep_router_config_t cfg;
    moep_router_config_init(&cfg);
    cfg.kind = MOEP_ROUTE_SIGMOID_GROUPED;
    cfg.num_experts = 16;
    cfg.top_k = 4;
    cfg.n_group = 4;
    cfg.topk_group = 2;
    enum { T = 300, E = 16, K = 4 };
    float *s = malloc(sizeof(float) * T * E);
    for (int i = 0; i < T * E; i++) s[i] = (float)(unif() * 4 - 2);
    void *d = to_dev(s, sizeof(float) * T * E), *di = to_dev(NULL, 4 * T * K), *dw = to_dev(NULL, 4 * T * K);
    void *ri = to_dev(NULL, 4 * T * K), *rw = to_dev(NULL, 4 * T * K), *dn = to_dev(NULL, 8);
    moep_tensor_t ds = dev(d, MOEP_DTYPE_F32, T, E, 2), ti = dev(di, MOEP_DTYPE_I32, T, K, 2);
    moep_tensor_t tw = dev(dw, MOEP_DTYPE_F32, T, K, 2), rti = dev(ri, MOEP_DTYPE_I32, T, K, 2);
    moep_tensor_t rtw = dev(rw, MOEP_DTYPE_F32, T, K, 2);
    ck_assert_int_eq(moep_route_cuda(&cfg, &ds, NULL, &rti, &rtw, NULL), MOEP_OK);
    int64_t first = 0;
    ck_assert_int_eq(moep_route_cuda_async(&cfg, &ds, NULL, &ti, &tw, dn, NULL), MOEP_OK);
    cudaMemcpy(&first, dn, 8, cudaMemcpyDeviceToHost);
    ck_assert_int_eq(first, -1);
    s[250 * E + 7] = NAN;
    s[17 * E + 0] = NAN;
    cudaMemcpy(d, s, sizeof(float) * T * E, cudaMemcpyHostToDevice);
    ck_assert_int_eq(moep_route_cuda_async(&cfg, &ds, NULL, &ti, &tw, dn, NULL), MOEP_OK);
    int32_t *hi = malloc(4 * T * K), *ref_i = malloc(4 * T * K);
    float *hw = malloc(4 * T * K), *ref_w = malloc(4 * T * K);
    cudaMemcpy(&first, dn, 8, cudaMemcpyDeviceToHost);
    cudaMemcpy(hi, di, 4 * T * K, cudaMemcpyDeviceToHost);
    cudaMemcpy(hw, dw, 4 * T * K, cudaMemcpyDeviceToHost);
    cudaMemcpy(ref_i, ri, 4 * T * K, cudaMemcpyDeviceToHost);
    cudaMemcpy(ref_w, rw, 4 * T * K, cudaMemcpyDeviceToHost);
    ck_assert_int_eq(first, 17);
    for (int t = 0; t < T; t++)
        for (int j = 0; j < K; j++) {
            int nan_row = t == 17 || t == 250;
            ck_assert_int_eq(hi[t * K + j], nan_row ? E : ref_i[t * K + j]);
            ck_assert_float_eq(hw[t * K + j], nan_row ? 0.0f : ref_w[t * K + j]);
        }
    ck_assert_int_eq(moep_route_cuda_async(&cfg, &ds, NULL, &ti, &tw, NULL, NULL), MOEP_ERR_INVALID_ARG);
    free(s), free(hi), free(hw), free(ref_i), free(ref_w);
    cudaFree(d), cudaFree(di), cudaFree(dw), cudaFree(ri), cudaFree(rw), cudaFree(dn);
}
END_TEST

/* The GPU layer's router GEMM (bf16 x, f32 gate) against a float64 product,
 * with and without the split-K workspace, within the f32 summation bound. */
static void router_case(int64_t T, int32_t H, int32_t E, int split) {
    uint16_t *x = malloc((size_t)T * H * 2 + 2);
    float *g = malloc((size_t)E * H * 4 + 4), *out = malloc((size_t)T * E * 4 + 4);
    for (int64_t i = 0; i < T * H; i++) {
        float v = (float)(unif() * 2 - 1);
        uint32_t b;
        memcpy(&b, &v, 4);
        x[i] = (uint16_t)(b >> 16);
    }
    for (int64_t i = 0; i < (int64_t)E * H; i++) g[i] = (float)(unif() * 0.2 - 0.1);
    size_t parts = split ? moep__cuda_router_partials(T, H, E) : 0;
    void *dx = to_dev(x, (size_t)T * H * 2), *dg = to_dev(g, (size_t)E * H * 4);
    void *dl = to_dev(NULL, (size_t)T * E * 4), *dp = parts ? to_dev(NULL, parts * 4) : NULL;
    ck_assert_int_eq(moep__cuda_router_logits(dx, 1, T, H, dg, E, dp, dl, NULL), 0);
    ck_assert_int_eq(cudaMemcpy(out, dl, (size_t)T * E * 4, cudaMemcpyDeviceToHost), cudaSuccess);
    for (int64_t t = 0; t < T; t++)
        for (int32_t e = 0; e < E; e++) {
            double ref = 0, mag = 0;
            for (int32_t h = 0; h < H; h++) {
                uint32_t b = (uint32_t)x[t * H + h] << 16;
                float xv;
                memcpy(&xv, &b, 4);
                ref += (double)xv * g[(size_t)e * H + h];
                mag += fabs((double)xv * g[(size_t)e * H + h]);
            }
            /* any summation order: |error| <= (H + 1) u sum|terms| */
            ck_assert_msg(fabs(out[t * E + e] - ref) <= (H + 1) * 0x1p-24 * mag + 1e-30,
                          "T=%lld H=%d E=%d split=%d: logit[%lld][%d] %.9g vs %.9g", (long long)T, H,
                          E, split, (long long)t, e, out[t * E + e], ref);
        }
    cudaFree(dx), cudaFree(dg), cudaFree(dl), cudaFree(dp);
    free(x), free(g), free(out);
}

START_TEST(router_logits_match_float64) {
    if (gpu_skip(1, "router_logits_match_float64")) return;
    ck_assert_int_eq(cudaSetDevice(0), cudaSuccess);
    router_case(1, 1024, 64, 1);
    router_case(130, 1000, 72, 1); /* H and E not multiples of the tiles */
    router_case(600, 2048, 256, 1);
    router_case(600, 2048, 256, 0);
    router_case(5000, 256, 8, 1);
}
END_TEST

Suite *moep_check_gpu_route_suite(void) {
    Suite *s = suite_create("gpu_route");
    TCase *tc = tcase_create("route");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, route_kinds_match_cpu);
    tcase_add_test(tc, route_async_flags_nan_rows);
    tcase_add_test(tc, router_logits_match_float64);
    tcase_add_test(tc, route_nan_is_numeric);
    suite_add_tcase(s, tc);
    return s;
}
