/* Case runner of the GPU expert FFN tests (host C, CUDA runtime API). */
#include "gpu_ffn_case.h"

#include <cuda_runtime_api.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test_util.h"

static char msg[512];

typedef struct host_stack {
    void *data, *scales;
    float *global;
    float *deq; /* dequantized f32 [E, rows, cols] */
} host_stack_t;

static uint16_t f32_to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    u += 0x7FFF + ((u >> 16) & 1);
    return (uint16_t)(u >> 16);
}
static float bf16_to_f32(uint16_t b) {
    uint32_t u = (uint32_t)b << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* Random weights with per-row magnitudes spread over 2^-spread..2^spread,
 * quantized then dequantized. */
static int make_stack(test_rng_t *r, int fmt, int32_t E, int32_t rows, int32_t cols, double spread,
                      host_stack_t *s) {
    int64_t n = (int64_t)E * rows * cols;
    float *w = malloc((size_t)n * 4);
    for (int64_t i = 0; i < (int64_t)E * rows; ++i) {
        float sc = 0.05f * exp2f((float)((test_rng_uniform(r) * 2.0 - 1.0) * spread));
        test_fill_normal(r, w + i * cols, cols, sc);
    }
    size_t db, sb;
    if (moep_weight_stack_bytes(fmt, E, rows, cols, &db, &sb) != MOEP_OK) return -1;
    s->data = malloc(db);
    s->scales = malloc(sb);
    s->global = malloc((size_t)E * 4);
    s->deq = malloc((size_t)n * 4);
    moep_tensor_t src = moep_tensor_3d(w, MOEP_DTYPE_F32, E, rows, cols);
    moep_tensor_t dst = moep_tensor_3d(s->deq, MOEP_DTYPE_F32, E, rows, cols);
    int bad = moep_quantize_weights(fmt, &src, s->data, s->scales, s->global) != MOEP_OK ||
              moep_dequantize_weights(fmt, E, rows, cols, s->data, s->scales, s->global, &dst) !=
                  MOEP_OK;
    free(w);
    return bad ? -1 : 0;
}

static void *upload(const void *h, size_t b) {
    void *d = NULL;
    if (cudaMalloc(&d, b ? b : 1) != cudaSuccess) return NULL;
    if (b) cudaMemcpy(d, h, b, cudaMemcpyHostToDevice);
    return d;
}

static void free_stack(host_stack_t *s) {
    free(s->data), free(s->scales), free(s->global), free(s->deq);
}

/* Dequantized FP8 1x128 round trip of one f32 row (what the GPU feeds the next GEMM). */
static void fp8_round_trip(float *v, int64_t n) {
    int64_t nb = (n + 127) / 128;
    uint8_t *q = malloc((size_t)n);
    float *s = malloc((size_t)nb * 4);
    moep_tensor_t t = moep_tensor_2d(v, MOEP_DTYPE_F32, 1, n);
    moep_quantize_act_fp8(&t, q, s);
    moep_dequantize_act_fp8(q, s, 1, n, &t);
    free(q), free(s);
}

/*
 * Replaces the device weights *w by their packed copy in *buf, after checking
 * that the packer refuses a misaligned and a one-byte-short buffer and an
 * already packed source. Returns 0, or -1 with a message.
 */
static int pack_weights(moep_expert_weights_t *w, void **buf, char *err, size_t errn) {
    size_t bytes = 0;
    moep_expert_weights_t p;
    moep_status_t st = moep_expert_weights_pack_cuda_size(w, &bytes);
    if (st != MOEP_OK || cudaMalloc(buf, bytes + 256) != cudaSuccess) {
        snprintf(err, errn, "pack size: %s %s", moep_status_name(st), moep_last_error());
        return -1;
    }
    moep_status_t misaligned = moep_expert_weights_pack_cuda(w, (char *)*buf + 16, bytes, &p, NULL);
    moep_status_t short_buf = moep_expert_weights_pack_cuda(w, *buf, bytes - 1, &p, NULL);
    st = moep_expert_weights_pack_cuda(w, *buf, bytes, &p, NULL);
    moep_status_t again = st == MOEP_OK ? moep_expert_weights_pack_cuda(&p, *buf, bytes, &p, NULL)
                                        : MOEP_ERR_INVALID_ARG;
    if (misaligned != MOEP_ERR_INVALID_ARG || short_buf != MOEP_ERR_SHAPE || st != MOEP_OK ||
        again != MOEP_ERR_INVALID_ARG || p.layout != MOEP_WEIGHT_LAYOUT_FP4_PACKED) {
        snprintf(err, errn, "pack: misaligned %s, short %s, pack %s (%s), packed again %s",
                 moep_status_name(misaligned), moep_status_name(short_buf), moep_status_name(st),
                 moep_last_error(), moep_status_name(again));
        return -1;
    }
    *w = p;
    return 0;
}

/* The _ws call of the case's layout. */
static moep_status_t ffn_ws(const gpu_ffn_case_t *c, const moep_expert_weights_t *w, const moep_tensor_t *x,
                            const moep_tensor_t *xs, const void *drows, moep_tensor_t *y, void *ws, size_t ws_bytes,
                            cudaStream_t s) {
    return c->masked ? moep_expert_ffn_masked_cuda_ws(w, x, xs, drows, y, ws, ws_bytes, (moep_stream_t)s)
                     : moep_expert_ffn_cuda_ws(w, x, xs, drows, y, ws, ws_bytes, (moep_stream_t)s);
}

/* bf16 x with every sign flipped (other x for a first call on a workspace). */
static uint16_t *sign_flipped(const uint16_t *xb, size_t count) {
    uint16_t *f = malloc(count * 2);
    for (size_t i = 0; i < count; ++i) f[i] = xb[i] ^ 0x8000u;
    return f;
}

/* The _ws call captured once in a CUDA graph on its own stream, replayed on x
 * with every sign flipped, then on x itself (y keeps the second replay's). */
static moep_status_t run_graph_twice(const gpu_ffn_case_t *c, const moep_expert_weights_t *w, moep_tensor_t *tx,
                                     void *drows, moep_tensor_t *ty, void *dws, size_t ws_bytes, const uint16_t *xb,
                                     size_t count) {
    cudaStream_t s;
    cudaGraph_t g = NULL;
    cudaGraphExec_t ge = NULL;
    if (cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking) != cudaSuccess) return MOEP_ERR_INTERNAL;
    moep_status_t st = MOEP_ERR_INTERNAL;
    uint16_t *flipped = sign_flipped(xb, count);
    if (cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal) == cudaSuccess) {
        st = ffn_ws(c, w, tx, NULL, drows, ty, dws, ws_bytes, s);
        if (cudaStreamEndCapture(s, &g) != cudaSuccess && st == MOEP_OK) st = MOEP_ERR_INTERNAL;
    }
    if (st == MOEP_OK && cudaGraphInstantiate(&ge, g, 0) != cudaSuccess) st = MOEP_ERR_INTERNAL;
    /* x goes in on s itself: a cudaMemcpy from pageable memory may return before its
     * DMA lands, and s (non-blocking) would not wait for it (a replay then read part
     * of the other x: 4 of 6 runs failed on an H200) */
    for (int replay = 0; replay < 2 && st == MOEP_OK; ++replay)
        if (cudaMemcpyAsync(tx->data, replay == 0 ? flipped : xb, count * 2, cudaMemcpyHostToDevice, s) !=
                cudaSuccess ||
            cudaGraphLaunch(ge, s) != cudaSuccess || cudaStreamSynchronize(s) != cudaSuccess)
            st = MOEP_ERR_INTERNAL;
    free(flipped);
    if (ge) cudaGraphExecDestroy(ge);
    if (g) cudaGraphDestroy(g);
    cudaStreamDestroy(s);
    return st;
}

const char *gpu_ffn_run_case(const gpu_ffn_case_t *c, uint64_t seed) {
    test_rng_t r;
    test_rng_init(&r, seed);
    const int32_t E = c->E, H = c->H, I = c->I;
    const int fp8 = c->fmt == MOEP_WEIGHTS_FP8_E4M3;
    host_stack_t s1, s3, s2;
    if (make_stack(&r, c->fmt, E, I, H, 3.0, &s1) || make_stack(&r, c->fmt, E, I, H, 3.0, &s3) ||
        make_stack(&r, c->fmt, E, H, I, c->wide_scales ? 16.0 : 3.0, &s2))
        return "weight quantization failed";

    /* row ranges */
    int64_t start[8], end[8], n = 0;
    for (int e = 0; e < E; ++e) {
        if (c->masked) {
            start[e] = e * c->max_tokens;
            end[e] = start[e] + c->counts[e];
        } else {
            start[e] = n;
            end[e] = n + c->counts[e];
            n = end[e] + c->pad;
        }
    }
    if (c->masked) n = E * c->max_tokens;
    /* contiguous: an expert's range runs to the next expert's offset, so the
     * padding rows between experts are its rows too; only rows past
     * expert_offset[E] are outside every range */
    if (!c->masked)
        for (int e = 0; e + 1 < E; ++e) end[e] = start[e + 1];
    int64_t off[9];
    for (int e = 0; e < E; ++e) off[e] = start[e];
    off[E] = c->masked ? n : end[E - 1];

    /* x: random bf16 in expert rows, NaN elsewhere (must never leak into y) */
    uint16_t *xb = malloc((size_t)n * H * 2);
    float *xf = malloc((size_t)n * H * 4);
    for (int64_t i = 0; i < n * H; ++i) xb[i] = 0x7FC0;
    for (int e = 0; e < E; ++e)
        for (int64_t row = start[e]; row < end[e]; ++row)
            for (int32_t k = 0; k < H; ++k) xb[row * H + k] = f32_to_bf16((float)test_rng_normal(&r));
    for (int64_t i = 0; i < n * H; ++i) xf[i] = bf16_to_f32(xb[i]);
    uint8_t *xq = NULL;
    float *xs = NULL;
    const int64_t nbh = (H + 127) / 128;
    if (fp8) { /* what the kernels see: x through the FP8 1x128 quantizer */
        xq = malloc((size_t)n * H);
        xs = malloc((size_t)n * nbh * 4);
        for (int64_t row = 0; row < n; ++row) {
            int used = 0;
            for (int e = 0; e < E; ++e) used |= row >= start[e] && row < end[e];
            if (!used) { /* quantizer rejects NaN: give unused rows zeros in the FP8 input */
                memset(xq + row * H, 0, (size_t)H);
                for (int64_t b = 0; b < nbh; ++b) xs[row * nbh + b] = 1.f;
                continue;
            }
            moep_tensor_t t = moep_tensor_2d(xb + row * H, MOEP_DTYPE_BF16, 1, H);
            moep_quantize_act_fp8(&t, xq + row * H, xs + row * nbh);
            moep_tensor_t o = moep_tensor_2d(xf + row * H, MOEP_DTYPE_F32, 1, H);
            moep_dequantize_act_fp8(xq + row * H, xs + row * nbh, 1, H, &o);
        }
    }

    /* reference */
    double *ref = calloc((size_t)n * H, 8);
    double *g = malloc((size_t)I * 8);
    float *h = malloc((size_t)I * 4);
    for (int e = 0; e < E; ++e)
        for (int64_t row = start[e]; row < end[e]; ++row) {
            const float *xr = xf + row * H;
            for (int32_t i = 0; i < I; ++i) {
                const float *w1 = s1.deq + ((int64_t)e * I + i) * H;
                const float *w3 = s3.deq + ((int64_t)e * I + i) * H;
                double a = 0, b = 0;
                for (int32_t k = 0; k < H; ++k) a += (double)w1[k] * xr[k], b += (double)w3[k] * xr[k];
                g[i] = a / (1.0 + exp(-a)) * b;
                h[i] = (float)g[i];
            }
            if (fp8) fp8_round_trip(h, I);
            for (int32_t o = 0; o < H; ++o) {
                const float *w2 = s2.deq + ((int64_t)e * H + o) * I;
                double a = 0;
                for (int32_t i = 0; i < I; ++i) a += (double)w2[i] * (fp8 ? (double)h[i] : g[i]);
                ref[row * H + o] = a;
            }
        }

    /* GPU */
    size_t db1, sb1, db2, sb2;
    moep_weight_stack_bytes(c->fmt, E, I, H, &db1, &sb1);
    moep_weight_stack_bytes(c->fmt, E, H, I, &db2, &sb2);
    moep_expert_weights_t w;
    moep_expert_weights_init(&w);
    w.format = c->fmt;
    w.num_experts = E, w.hidden = H, w.intermediate = I;
    w.w1.data = upload(s1.data, db1), w.w1.scales = upload(s1.scales, sb1);
    w.w3.data = upload(s3.data, db1), w.w3.scales = upload(s3.scales, sb1);
    w.w2.data = upload(s2.data, db2), w.w2.scales = upload(s2.scales, sb2);
    w.w1.global_scale = upload(s1.global, (size_t)E * 4);
    w.w3.global_scale = upload(s3.global, (size_t)E * 4);
    w.w2.global_scale = upload(s2.global, (size_t)E * 4);
    static char pack_msg[256];
    pack_msg[0] = '\0';
    void *dpack = NULL;
    moep_expert_weights_t row_major = w;
    if (c->packed && pack_weights(&w, &dpack, pack_msg, sizeof pack_msg) != 0)
        return pack_msg; /* leaks this failed case's buffers: the test fails anyway */
    const int in8 = c->fp8_input && fp8;
    void *dx = in8 ? upload(xq, (size_t)n * H) : upload(xb, (size_t)n * H * 2);
    void *dxs = in8 ? upload(xs, (size_t)n * nbh * 4) : NULL;
    void *drows = c->masked ? upload(c->counts, (size_t)E * 8) : upload(off, (size_t)(E + 1) * 8);
    void *dy = NULL;
    cudaMalloc(&dy, (size_t)n * H * 2);
    cudaMemset(dy, 0xFF, (size_t)n * H * 2); /* poison: bf16 NaN */

    moep_tensor_t tx, ty, ts;
    if (c->masked) {
        tx = moep_tensor_3d(dx, in8 ? MOEP_DTYPE_FP8_E4M3 : MOEP_DTYPE_BF16, E, c->max_tokens, H);
        ty = moep_tensor_3d(dy, MOEP_DTYPE_BF16, E, c->max_tokens, H);
        ts = moep_tensor_3d(dxs, MOEP_DTYPE_F32, E, c->max_tokens, nbh);
    } else {
        tx = moep_tensor_2d(dx, in8 ? MOEP_DTYPE_FP8_E4M3 : MOEP_DTYPE_BF16, n, H);
        ty = moep_tensor_2d(dy, MOEP_DTYPE_BF16, n, H);
        ts = moep_tensor_2d(dxs, MOEP_DTYPE_F32, n, nbh);
    }
    tx.device = ty.device = ts.device = MOEP_DEVICE_CUDA;
    moep_status_t st = MOEP_OK;
    void *dws = NULL;
    size_t ws_bytes = 0;
    static char ws_msg[256];
    ws_msg[0] = '\0';
    if (c->caller_ws) {
        st = moep_expert_ffn_cuda_workspace_size(&w, &tx, c->masked, &ws_bytes);
        if (st == MOEP_OK && cudaMalloc(&dws, ws_bytes + 256) != cudaSuccess) st = MOEP_ERR_NO_MEMORY;
        /* refused: misaligned, one byte short */
        moep_status_t bad_align = st != MOEP_OK ? MOEP_ERR_INVALID_ARG
                                                : ffn_ws(c, &w, &tx, in8 ? &ts : NULL, drows, &ty, (char *)dws + 16,
                                                         ws_bytes, NULL);
        moep_status_t bad_size =
            st != MOEP_OK ? MOEP_ERR_SHAPE : ffn_ws(c, &w, &tx, in8 ? &ts : NULL, drows, &ty, dws, ws_bytes - 1, NULL);
        if (st == MOEP_OK && (bad_align != MOEP_ERR_INVALID_ARG || bad_size != MOEP_ERR_SHAPE)) {
            snprintf(ws_msg, sizeof ws_msg, "workspace checks: misaligned gave %s, one byte short %s",
                     moep_status_name(bad_align), moep_status_name(bad_size));
            st = MOEP_ERR_INTERNAL;
        }
    }
    void *dx2 = NULL, *dy2 = NULL;
    if (st == MOEP_OK && c->caller_ws && c->reuse_ws && !in8) {
        uint16_t *flipped = sign_flipped(xb, (size_t)n * H);
        dx2 = upload(flipped, (size_t)n * H * 2);
        free(flipped);
        cudaMalloc(&dy2, (size_t)n * H * 2);
        moep_tensor_t tx2 = tx, ty2 = ty;
        tx2.data = dx2, ty2.data = dy2;
        st = ffn_ws(c, &w, &tx2, NULL, drows, &ty2, dws, ws_bytes, NULL);
    }
    if (st == MOEP_OK && c->graph && c->caller_ws && !in8)
        st = run_graph_twice(c, &w, &tx, drows, &ty, dws, ws_bytes, xb, (size_t)n * H);
    else if (st == MOEP_OK)
        st = ffn_ws(c, &w, &tx, in8 ? &ts : NULL, drows, &ty, dws, ws_bytes, NULL);
    cudaError_t ce = cudaDeviceSynchronize();
    cudaFree(dws);
    cudaFree(dx2);
    cudaFree(dy2);
    uint16_t *yb = malloc((size_t)n * H * 2);
    cudaMemcpy(yb, dy, (size_t)n * H * 2, cudaMemcpyDeviceToHost);
    const char *res = NULL;
    if (ws_msg[0] != '\0') {
        res = ws_msg;
    } else if (st != MOEP_OK) {
        snprintf(msg, sizeof msg, "ffn returned %s: %s", moep_status_name(st), moep_last_error());
        res = msg;
    } else if (ce != cudaSuccess) {
        snprintf(msg, sizeof msg, "CUDA error: %s", cudaGetErrorString(ce));
        res = msg;
    }
    double num = 0, den = 0, worst_row = 0;
    for (int64_t row = 0; row < n && !res; ++row) {
        int used = 0;
        for (int e = 0; e < E; ++e) used |= row >= start[e] && row < end[e];
        double rn = 0, rd = 0;
        for (int32_t k = 0; k < H; ++k) {
            uint16_t b = yb[row * H + k];
            if (!used) {
                if (b != 0xFFFF) {
                    snprintf(msg, sizeof msg, "row %lld outside every expert was written",
                             (long long)row);
                    res = msg;
                }
                continue;
            }
            double d = bf16_to_f32(b) - ref[row * H + k];
            if (!isfinite(d)) {
                snprintf(msg, sizeof msg, "row %lld col %d not finite", (long long)row, k);
                res = msg;
                break;
            }
            rn += d * d, rd += ref[row * H + k] * ref[row * H + k];
        }
        if (used && rd > 0 && sqrt(rn / rd) > worst_row) worst_row = sqrt(rn / rd);
        num += rn, den += rd;
    }
    double all = den > 0 ? sqrt(num / den) : 0;
    const double tol_all = fp8 ? GPU_FFN_FP8_TOL_ALL : GPU_FFN_TOL_ALL;
    const double tol_row = fp8 ? GPU_FFN_FP8_TOL_ROW : GPU_FFN_TOL_ROW;
    if (!res && (all > tol_all || worst_row > tol_row)) {
        snprintf(msg, sizeof msg, "error too large: all %.3g (tol %.g), worst row %.3g (tol %.g)",
                 all, tol_all, worst_row, tol_row);
        res = msg;
    }
    fprintf(stderr, "  %-9s %-10s%s%s%s E=%d H=%d I=%d n=%lld: rel err %.2e, worst row %.2e %s\n",
            moep_weight_format_name(c->fmt), c->masked ? "masked" : "contiguous",
            in8 ? " fp8-in" : "", c->packed ? " packed" : "", c->wide_scales ? " wide" : "", E, H, I,
            (long long)n, all, worst_row, res ? "FAIL" : "ok");

    cudaFree(dpack);
    w = row_major;
    cudaFree((void *)w.w1.data), cudaFree((void *)w.w1.scales), cudaFree((void *)w.w3.data);
    cudaFree((void *)w.w3.scales), cudaFree((void *)w.w2.data), cudaFree((void *)w.w2.scales);
    cudaFree((void *)w.w1.global_scale), cudaFree((void *)w.w3.global_scale);
    cudaFree((void *)w.w2.global_scale), cudaFree(dx), cudaFree(dxs), cudaFree(drows), cudaFree(dy);
    free_stack(&s1), free_stack(&s3), free_stack(&s2);
    free(xb), free(xf), free(xq), free(xs), free(ref), free(g), free(h), free(yb);
    return res;
}
