/*
 * GPU expert FFN benchmark (issue 6), one H200/H100:
 *   prefill: 8 experts x 4096 tokens, H 7168, I 2048, FP8 weights -> TFLOP/s
 *   decode:  8 experts x T tokens (masked layout), MXFP4 / NVFP4 / FP8 weights
 *            -> weight bytes read per second.
 * Random (non-zero) data generated on the GPU; median of timed calls after
 * warm-up, CUDA events. Prints "RESULT name value unit" lines.
 *   gpu_ffn_bench [iters] [decode|prefill]   (only that part)
 * MOEP_BENCH_ORDER=1: prefill also times the pool path again after the
 * caller-workspace path, and the workspace path once more (order effects).
 * FP4 decode is timed on row-major weights (through the pool, _us, and a
 * caller workspace, _ws_us) and on the same weights packed (_pk_us, caller
 * workspace); TB/s counts the row-major bytes. _pk_gpu_us: the packed path's
 * GPU time (L2 flushed before each call, no host latency inside the timed
 * span: median_gpu_ms), what the torch peer's CUDA-graph replay is timed as.
 * MOEP_BENCH_FMT=mxfp4|nvfp4|fp8_e4m3 and MOEP_BENCH_T=1|16|64 keep one decode
 * format / token count (short runs under a profiler). MOEP_BENCH_ZERO_FP8=1:
 * every FP8 operand is zero (a power probe, see rand_u8).
 */
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <algorithm>
#include <vector>

#include "moep_cuda_ffn.h"
#include "moep_quant.h"

#define CK(x)                                                                              \
    do {                                                                                   \
        cudaError_t e_ = (x);                                                              \
        if (e_ != cudaSuccess) {                                                           \
            fprintf(stderr, "%s:%d %s: %s\n", __FILE__, __LINE__, #x, cudaGetErrorString(e_)); \
            exit(1);                                                                       \
        }                                                                                  \
    } while (0)

__device__ uint32_t hash32(uint64_t i, uint32_t seed) {
    uint64_t z = i * 0x9E3779B97F4A7C15ull + seed;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return (uint32_t)(z ^ (z >> 31));
}

/* kind 0: random bytes; 1: E4M3 in +-[2^-6, 2); 2: E8M0 around 2^-4; 3: E4M3 scale ~[0.5, 2) */
__global__ void fill_u8(uint8_t *p, size_t n, uint32_t seed, int kind) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        uint32_t r = hash32(i, seed);
        uint8_t b = (uint8_t)r;
        if (kind == 1) b = (uint8_t)((r & 0x80) | ((1 + (r >> 8) % 8) << 3) | ((r >> 16) & 7));
        if (kind == 2) b = (uint8_t)(127 - 6 + (r % 5));
        if (kind == 3) b = (uint8_t)(0x30 + (r % 16));
        p[i] = b;
    }
}
__global__ void fill_f32(float *p, size_t n, uint32_t seed, float lo, float hi) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        p[i] = lo + (hi - lo) * (hash32(i, seed) >> 8) * (1.0f / 16777216.0f);
}
__global__ void fill_bf16(__nv_bfloat16 *p, size_t n, uint32_t seed) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        p[i] = __float2bfloat16(((hash32(i, seed) >> 8) * (1.0f / 8388608.0f)) - 1.0f);
}

static void *dalloc(size_t b) {
    void *p;
    CK(cudaMalloc(&p, b));
    return p;
}

static uint32_t seed_ctr = 1;
static void *rand_u8(size_t n, int kind) {
    uint8_t *p = (uint8_t *)dalloc(n);
    fill_u8<<<1024, 256>>>(p, n, seed_ctr++, kind);
    /* MOEP_BENCH_ZERO_FP8=1: FP8 operands all zero (a power probe: the prefill
     * runs at the board's power cap, and zeros toggle no multiplier bits) */
    if (kind == 1 && getenv("MOEP_BENCH_ZERO_FP8")) CK(cudaMemset(p, 0, n));
    return p;
}
static float *rand_f32(size_t n, float lo, float hi) {
    float *p = (float *)dalloc(n * 4);
    fill_f32<<<1024, 256>>>(p, n, seed_ctr++, lo, hi);
    return p;
}

static moep_weight_stack_t make_stack(moep_weight_format_t f, int E, int rows, int cols, size_t *bytes) {
    size_t db, sb;
    moep_weight_stack_bytes(f, E, rows, cols, &db, &sb);
    moep_weight_stack_t s;
    s.data = rand_u8(db, f == MOEP_WEIGHTS_FP8_E4M3 ? 1 : 0);
    if (f == MOEP_WEIGHTS_FP8_E4M3)
        s.scales = rand_f32(sb / 4, 1e-3f, 2e-3f);
    else
        s.scales = rand_u8(sb, f == MOEP_WEIGHTS_MXFP4 ? 2 : 3);
    s.global_scale = rand_f32(E, 1e-2f, 2e-2f);
    *bytes += db + sb;
    return s;
}

static moep_expert_weights_t make_weights(moep_weight_format_t f, int E, int H, int I, size_t *bytes) {
    moep_expert_weights_t w;
    moep_expert_weights_init(&w);
    w.format = f;
    w.num_experts = E, w.hidden = H, w.intermediate = I;
    *bytes = 0;
    w.w1 = make_stack(f, E, I, H, bytes);
    w.w3 = make_stack(f, E, I, H, bytes);
    w.w2 = make_stack(f, E, H, I, bytes);
    return w;
}

template <class F>
static double median_ms(F &&f, int iters) {
    cudaEvent_t a, b;
    CK(cudaEventCreate(&a));
    CK(cudaEventCreate(&b));
    for (int i = 0; i < 3; ++i) f();
    CK(cudaDeviceSynchronize());
    std::vector<float> t;
    for (int i = 0; i < iters; ++i) {
        CK(cudaEventRecord(a));
        f();
        CK(cudaEventRecord(b));
        CK(cudaEventSynchronize(b));
        float ms;
        CK(cudaEventElapsedTime(&ms, a, b));
        t.push_back(ms);
    }
    std::sort(t.begin(), t.end());
    return t[t.size() / 2];
}

/* Reads n words (and writes one, so that the reads stay): evicts L2 with clean lines. */
__global__ void flush_read(const uint4 *p, size_t n, uint32_t *sink) {
    uint32_t acc = 0;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        const uint4 v = p[i];
        acc ^= v.x ^ v.y ^ v.z ^ v.w;
    }
    if (acc == 0x12345678u) *sink = acc;
}

/*
 * GPU time per call, the way a decode step sees it: before each call L2 is
 * evicted (MOEP_BENCH_FLUSH=read, the default: a kernel reads 256 MB, which
 * leaves clean lines; =memset: a 256 MB memset, which leaves dirty lines whose
 * write-back then competes with the call's reads), and the host never waits
 * inside the loop, so it enqueues the call while the flush runs and no host
 * (API, launch) latency falls between the events. median_ms above
 * synchronizes every call: its times hold the host's submission latency and
 * whatever of the weights the previous call left in L2.
 */
template <class F>
static double median_gpu_ms(F &&f, int iters) {
    static void *flush = NULL;
    static uint32_t *sink = NULL;
    const size_t fb = (size_t)256 << 20;
    if (flush == NULL) {
        CK(cudaMalloc(&flush, fb));
        CK(cudaMemset(flush, 1, fb));
        CK(cudaMalloc(&sink, 4));
    }
    const char *fm = getenv("MOEP_BENCH_FLUSH");
    const bool memset_flush = fm != NULL && strcmp(fm, "memset") == 0;
    for (int i = 0; i < 3; ++i) f();
    std::vector<cudaEvent_t> ev(2 * iters);
    for (auto &e : ev) CK(cudaEventCreate(&e));
    for (int i = 0; i < iters; ++i) {
        if (memset_flush)
            CK(cudaMemsetAsync(flush, i & 0xFF, fb));
        else
            flush_read<<<1056, 512>>>((const uint4 *)flush, fb / 16, sink);
        CK(cudaEventRecord(ev[2 * i]));
        f();
        CK(cudaEventRecord(ev[2 * i + 1]));
    }
    CK(cudaDeviceSynchronize());
    std::vector<float> t(iters);
    for (int i = 0; i < iters; ++i) CK(cudaEventElapsedTime(&t[i], ev[2 * i], ev[2 * i + 1]));
    for (auto &e : ev) cudaEventDestroy(e);
    std::sort(t.begin(), t.end());
    return t[t.size() / 2];
}

static void must(moep_status_t s, const char *what) {
    if (s != MOEP_OK) {
        fprintf(stderr, "%s: %s: %s\n", what, moep_status_name(s), moep_last_error());
        exit(1);
    }
}

int main(int argc, char **argv) {
    const int iters = argc > 1 ? atoi(argv[1]) : 20;
    const int decode_only = argc > 2 && strcmp(argv[2], "decode") == 0;
    const int prefill_only = argc > 2 && strcmp(argv[2], "prefill") == 0;
    const int E = 8, H = 7168, I = 2048;
    /* prefill */
    if (!decode_only) {
        const int64_t T = 4096, N = E * T;
        size_t wb;
        moep_expert_weights_t w = make_weights(MOEP_WEIGHTS_FP8_E4M3, E, H, I, &wb);
        __nv_bfloat16 *x = (__nv_bfloat16 *)dalloc(N * H * 2);
        fill_bf16<<<1024, 256>>>(x, N * H, 99);
        uint8_t *xq = (uint8_t *)rand_u8(N * H, 1);
        float *xs = rand_f32(N * (H / 128), 0.5f / 448, 1.0f / 448);
        __nv_bfloat16 *y = (__nv_bfloat16 *)dalloc(N * H * 2);
        std::vector<int64_t> off(E + 1);
        for (int e = 0; e <= E; ++e) off[e] = e * T;
        int64_t *doff = (int64_t *)dalloc((E + 1) * 8);
        CK(cudaMemcpy(doff, off.data(), (E + 1) * 8, cudaMemcpyHostToDevice));
        moep_tensor_t tx = moep_tensor_2d(x, MOEP_DTYPE_BF16, N, H);
        moep_tensor_t tq = moep_tensor_2d(xq, MOEP_DTYPE_FP8_E4M3, N, H);
        moep_tensor_t ts = moep_tensor_2d(xs, MOEP_DTYPE_F32, N, H / 128);
        moep_tensor_t ty = moep_tensor_2d(y, MOEP_DTYPE_BF16, N, H);
        tx.device = tq.device = ts.device = ty.device = MOEP_DEVICE_CUDA;
        const double flop = 6.0 * N * H * I;
        double ms8 = median_ms([&] { must(moep_expert_ffn_cuda(&w, &tq, &ts, doff, &ty, NULL), "ffn"); }, iters);
        double msb = median_ms([&] { must(moep_expert_ffn_cuda(&w, &tx, NULL, doff, &ty, NULL), "ffn"); }, iters);
        size_t wsb = 0;
        must(moep_expert_ffn_cuda_workspace_size(&w, &tq, 0, &wsb), "workspace size");
        void *ws = dalloc(wsb);
        double ms8w = median_ms([&] { must(moep_expert_ffn_cuda_ws(&w, &tq, &ts, doff, &ty, ws, wsb, NULL), "ffn"); }, iters);
        if (getenv("MOEP_BENCH_ORDER")) { /* the pool path again, after the workspace one */
            double again = median_ms([&] { must(moep_expert_ffn_cuda(&w, &tq, &ts, doff, &ty, NULL), "ffn"); }, iters);
            double ws2 = median_ms([&] { must(moep_expert_ffn_cuda_ws(&w, &tq, &ts, doff, &ty, ws, wsb, NULL), "ffn"); }, iters);
            printf("RESULT prefill_fp8in_again_tflops %.1f TFLOP/s\nRESULT prefill_fp8in_ws2_tflops %.1f TFLOP/s\n",
                   flop / again / 1e9, flop / ws2 / 1e9);
        }
        cudaFree(ws);
        printf("RESULT prefill_fp8in_ms %.4f ms\nRESULT prefill_fp8in_tflops %.1f TFLOP/s\n", ms8, flop / ms8 / 1e9);
        printf("RESULT prefill_fp8in_ws_tflops %.1f TFLOP/s\n", flop / ms8w / 1e9);
        printf("RESULT prefill_bf16in_ms %.4f ms\nRESULT prefill_bf16in_tflops %.1f TFLOP/s\n", msb, flop / msb / 1e9);
        /* masked layout, same shape */
        int64_t *dcnt = (int64_t *)dalloc(E * 8);
        std::vector<int64_t> cnt(E, T);
        CK(cudaMemcpy(dcnt, cnt.data(), E * 8, cudaMemcpyHostToDevice));
        moep_tensor_t mq = moep_tensor_3d(xq, MOEP_DTYPE_FP8_E4M3, E, T, H);
        moep_tensor_t ms = moep_tensor_3d(xs, MOEP_DTYPE_F32, E, T, H / 128);
        moep_tensor_t my = moep_tensor_3d(y, MOEP_DTYPE_BF16, E, T, H);
        mq.device = ms.device = my.device = MOEP_DEVICE_CUDA;
        double msm = median_ms([&] { must(moep_expert_ffn_masked_cuda(&w, &mq, &ms, dcnt, &my, NULL), "ffn"); }, iters);
        printf("RESULT prefill_masked_fp8in_tflops %.1f TFLOP/s\n", flop / msm / 1e9);
        cudaFree((void *)x), cudaFree(xq), cudaFree(xs), cudaFree(y);
    }
    if (prefill_only) return 0;
    /* decode */
    const moep_weight_format_t fmts[3] = {MOEP_WEIGHTS_MXFP4, MOEP_WEIGHTS_NVFP4, MOEP_WEIGHTS_FP8_E4M3};
    const int toks[3] = {1, 16, 64};
    const char *only_fmt = getenv("MOEP_BENCH_FMT"), *only_t = getenv("MOEP_BENCH_T");
    for (int fi = 0; fi < 3; ++fi) {
        if (only_fmt && strcmp(only_fmt, moep_weight_format_name(fmts[fi])) != 0) continue;
        size_t wb;
        moep_expert_weights_t w = make_weights(fmts[fi], E, H, I, &wb);
        const int64_t MT = 64;
        __nv_bfloat16 *x = (__nv_bfloat16 *)dalloc(E * MT * H * 2);
        fill_bf16<<<1024, 256>>>(x, E * MT * H, 7);
        __nv_bfloat16 *y = (__nv_bfloat16 *)dalloc(E * MT * H * 2);
        int64_t *dcnt = (int64_t *)dalloc(E * 8);
        moep_tensor_t tx = moep_tensor_3d(x, MOEP_DTYPE_BF16, E, MT, H);
        moep_tensor_t ty = moep_tensor_3d(y, MOEP_DTYPE_BF16, E, MT, H);
        tx.device = ty.device = MOEP_DEVICE_CUDA;
        size_t wsb = 0; /* the caller's workspace: no per-call allocation (the pool's default
                         * release threshold 0 maps fresh memory on every call) */
        must(moep_expert_ffn_cuda_workspace_size(&w, &tx, 1, &wsb), "workspace size");
        void *ws = dalloc(wsb);
        /* FP4: the same weights packed for the kernels (moep_expert_weights_pack_cuda) */
        const bool fp4 = fmts[fi] != MOEP_WEIGHTS_FP8_E4M3;
        moep_expert_weights_t wp = w;
        void *pbuf = NULL;
        if (fp4) {
            size_t pb = 0;
            must(moep_expert_weights_pack_cuda_size(&w, &pb), "pack size");
            pbuf = dalloc(pb);
            must(moep_expert_weights_pack_cuda(&w, pbuf, pb, &wp, NULL), "pack");
            CK(cudaDeviceSynchronize());
        }
        for (int ti = 0; ti < 3; ++ti) {
            if (only_t && atoi(only_t) != toks[ti]) continue;
            std::vector<int64_t> cnt(E, toks[ti]);
            CK(cudaMemcpy(dcnt, cnt.data(), E * 8, cudaMemcpyHostToDevice));
            double ms = median_ms([&] { must(moep_expert_ffn_masked_cuda(&w, &tx, NULL, dcnt, &ty, NULL), "ffn"); }, iters);
            double msw = median_ms([&] { must(moep_expert_ffn_masked_cuda_ws(&w, &tx, NULL, dcnt, &ty, ws, wsb, NULL), "ffn"); }, iters);
            const char *f = moep_weight_format_name(fmts[fi]);
            printf("RESULT decode_%s_T%d_us %.1f us\nRESULT decode_%s_T%d_weight_TBps %.3f TB/s\n", f,
                   toks[ti], ms * 1e3, f, toks[ti], wb / ms / 1e9);
            printf("RESULT decode_%s_T%d_ws_us %.1f us\nRESULT decode_%s_T%d_ws_weight_TBps %.3f TB/s\n", f,
                   toks[ti], msw * 1e3, f, toks[ti], wb / msw / 1e9);
            if (fp4) {
                double msp = median_ms([&] { must(moep_expert_ffn_masked_cuda_ws(&wp, &tx, NULL, dcnt, &ty, ws, wsb, NULL), "ffn"); }, iters);
                printf("RESULT decode_%s_T%d_pk_us %.1f us\nRESULT decode_%s_T%d_pk_weight_TBps %.3f TB/s\n", f,
                       toks[ti], msp * 1e3, f, toks[ti], wb / msp / 1e9);
                double msg = median_gpu_ms([&] { must(moep_expert_ffn_masked_cuda_ws(&wp, &tx, NULL, dcnt, &ty, ws, wsb, NULL), "ffn"); }, iters);
                printf("RESULT decode_%s_T%d_pk_gpu_us %.1f us\nRESULT decode_%s_T%d_pk_gpu_weight_TBps %.3f TB/s\n", f,
                       toks[ti], msg * 1e3, f, toks[ti], wb / msg / 1e9);
            }
        }
        cudaFree(ws);
        cudaFree(pbuf);
        printf("RESULT decode_%s_weight_MB %.1f MB\n", moep_weight_format_name(fmts[fi]), wb / 1e6);
        cudaFree(x), cudaFree(y), cudaFree(dcnt);
    }
    return 0;
}
