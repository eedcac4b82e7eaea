/*
 * Expert FFN benchmark: moep_expert_ffn against the way a C user would do it
 * with OpenBLAS (per expert: cblas_sgemm for gate and up, a silu*mul loop,
 * cblas_sgemm for down), on the same inputs, plus the machine's ceilings
 * measured in the same run (FMA throughput, STREAM-like copy bandwidth).
 *
 * Work: FLOPs = 6 * rows * H * I (three GEMMs of 2*rows*H*I each).
 * Shapes: 64 experts, top-8, H=2048, I=1024; prefill 4096 tokens (32768
 * rows), decode 64 tokens (512 rows). Threads: OMP_NUM_THREADS for moep,
 * OPENBLAS_NUM_THREADS for OpenBLAS (set both to the same value).
 *
 * Usage: ffn_bench [--quick | --prefill] [--reps=N]
 *   --quick: decode shape only; --prefill: prefill shape only (no format table).
 */
#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "moep.h"

enum { NEXP = 64, TOPK = 8, HID = 2048, INTER = 1024 };

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint64_t rng_next(void) {
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
static float rng_sym(float scale) { /* uniform in [-scale, scale) */
    return scale * (2.0f * (float)(rng_next() >> 40) / (float)(1u << 24) - 1.0f);
}

static void *xalloc(size_t bytes) {
    void *p = aligned_alloc(64, (bytes + 63) / 64 * 64);
    if (p == NULL) {
        fprintf(stderr, "ffn_bench: out of memory (%zu bytes)\n", bytes);
        exit(1);
    }
    memset(p, 0, bytes); /* touch every page before timing */
    return p;
}

static void fill(float *p, size_t n, float scale) {
    for (size_t i = 0; i < n; i++) p[i] = rng_sym(scale);
}

/* ---- ceilings ---------------------------------------------------------- */

#if defined(__x86_64__)
#include <immintrin.h>
/* 12 independent FMA chains: enough to cover FMA latency on any AVX2 core. */
__attribute__((target("avx2,fma"))) static float fma_chains(long iters) {
    /* Distinct starting values: equal chains would be merged by the compiler. */
    __m256 a0 = _mm256_set1_ps(0.10f), a1 = _mm256_set1_ps(0.11f), a2 = _mm256_set1_ps(0.12f),
           a3 = _mm256_set1_ps(0.13f), a4 = _mm256_set1_ps(0.14f), a5 = _mm256_set1_ps(0.15f),
           a6 = _mm256_set1_ps(0.16f), a7 = _mm256_set1_ps(0.17f), a8 = _mm256_set1_ps(0.18f),
           a9 = _mm256_set1_ps(0.19f), a10 = _mm256_set1_ps(0.20f), a11 = _mm256_set1_ps(0.21f);
    const __m256 m = _mm256_set1_ps(0.999f), c = _mm256_set1_ps(1e-3f);
    for (long i = 0; i < iters; i++) {
        a0 = _mm256_fmadd_ps(a0, m, c); a1 = _mm256_fmadd_ps(a1, m, c);
        a2 = _mm256_fmadd_ps(a2, m, c); a3 = _mm256_fmadd_ps(a3, m, c);
        a4 = _mm256_fmadd_ps(a4, m, c); a5 = _mm256_fmadd_ps(a5, m, c);
        a6 = _mm256_fmadd_ps(a6, m, c); a7 = _mm256_fmadd_ps(a7, m, c);
        a8 = _mm256_fmadd_ps(a8, m, c); a9 = _mm256_fmadd_ps(a9, m, c);
        a10 = _mm256_fmadd_ps(a10, m, c); a11 = _mm256_fmadd_ps(a11, m, c);
    }
    __m256 s = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)),
                             _mm256_add_ps(_mm256_add_ps(a4, a5), _mm256_add_ps(a6, a7)));
    s = _mm256_add_ps(s, _mm256_add_ps(_mm256_add_ps(a8, a9), _mm256_add_ps(a10, a11)));
    float out[8];
    _mm256_storeu_ps(out, s);
    return out[0];
}
#endif

/* Peak f32 FMA throughput of the OpenMP team, GFLOP/s (0 if no AVX2). */
static double measure_fma_peak(void) {
#if defined(__x86_64__)
    if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma")) return 0;
    /* Best of 5 short runs: other load on the machine only ever slows it down. */
    const long iters = 20 * 1000 * 1000;
    volatile float sink = 0;
    double best = 0;
    for (int rep = 0; rep < 5; rep++) {
        int nthr = 1;
        double t = now_s();
#pragma omp parallel
        {
            float v = fma_chains(iters);
#pragma omp atomic
            sink += v;
#pragma omp single
            nthr = omp_get_num_threads();
        }
        t = now_s() - t;
        best = fmax(best, (double)nthr * (double)iters * 12 * 8 * 2 / t / 1e9);
    }
    return best;
#else
    return 0;
#endif
}

/* STREAM "copy" bandwidth (bytes read + bytes written per second), GB/s. */
static double measure_copy_bw(void) {
    const size_t n = (size_t)64 << 20; /* 256 MiB per array */
    float *a = xalloc(n * sizeof(float)), *b = xalloc(n * sizeof(float));
    fill(a, 1024, 1.0f);
    double best = 1e30;
    for (int rep = 0; rep < 4; rep++) {
        double t = now_s();
#pragma omp parallel for schedule(static)
        for (size_t i = 0; i < n; i++) b[i] = a[i];
        best = fmin(best, now_s() - t);
    }
    free(a);
    free(b);
    return 2.0 * (double)n * sizeof(float) / best / 1e9;
}

/* ---- problem setup ----------------------------------------------------- */

typedef struct problem {
    int64_t tokens, rows;
    int64_t offset[NEXP + 1];
    float *x, *y_moep, *y_blas;
} problem_t;

/* Each token picks TOPK distinct experts uniformly at random. */
static void make_problem(problem_t *p, int64_t tokens) {
    int64_t count[NEXP] = {0};
    for (int64_t t = 0; t < tokens; t++) {
        int chosen[NEXP] = {0};
        for (int k = 0; k < TOPK; k++) {
            int e;
            do e = (int)(rng_next() % NEXP);
            while (chosen[e]);
            chosen[e] = 1;
            count[e]++;
        }
    }
    p->tokens = tokens;
    p->offset[0] = 0;
    for (int e = 0; e < NEXP; e++) p->offset[e + 1] = p->offset[e] + count[e];
    p->rows = p->offset[NEXP];
    p->x = xalloc((size_t)p->rows * HID * sizeof(float));
    p->y_moep = xalloc((size_t)p->rows * HID * sizeof(float));
    p->y_blas = xalloc((size_t)p->rows * HID * sizeof(float));
    fill(p->x, (size_t)p->rows * HID, 1.0f);
}

static void free_problem(problem_t *p) {
    free(p->x);
    free(p->y_moep);
    free(p->y_blas);
}

/* ---- the two implementations -------------------------------------------- */

typedef struct blas_scratch {
    float *g, *u;
} blas_scratch_t;

static void run_openblas(const problem_t *p, const float *w1, const float *w3, const float *w2,
                         blas_scratch_t *s) {
    for (int e = 0; e < NEXP; e++) {
        const int n = (int)(p->offset[e + 1] - p->offset[e]);
        if (n == 0) continue;
        const float *xe = p->x + p->offset[e] * HID;
        const size_t wsz = (size_t)HID * INTER;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, INTER, HID, 1.0f, xe, HID, w1 + e * wsz, HID,
                    0.0f, s->g, INTER);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, INTER, HID, 1.0f, xe, HID, w3 + e * wsz, HID,
                    0.0f, s->u, INTER);
        for (size_t i = 0; i < (size_t)n * INTER; i++) s->g[i] = s->g[i] / (1.0f + expf(-s->g[i])) * s->u[i];
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, HID, INTER, 1.0f, s->g, INTER, w2 + e * wsz, INTER,
                    0.0f, p->y_blas + p->offset[e] * HID, HID);
    }
}

static void run_moep(const problem_t *p, const moep_expert_weights_t *w, float *y,
                     moep_dtype_t xdt, const void *x) {
    moep_tensor_t xt = moep_tensor_2d((void *)x, xdt, p->rows, HID);
    moep_tensor_t yt = moep_tensor_2d(y, MOEP_DTYPE_F32, p->rows, HID);
    moep_status_t st = moep_expert_ffn(w, &xt, p->offset, &yt, 0);
    if (st != MOEP_OK) {
        fprintf(stderr, "ffn_bench: moep_expert_ffn: %s\n", moep_last_error());
        exit(1);
    }
}

static double max_rel_diff(const float *a, const float *b, size_t n) {
    double num = 0, den = 1e-30;
    for (size_t i = 0; i < n; i++) {
        num = fmax(num, fabs((double)a[i] - (double)b[i]));
        den = fmax(den, fabs((double)b[i]));
    }
    return num / den;
}

/* ---- weights ---------------------------------------------------------- */

typedef struct weights_set {
    float *w1, *w3, *w2;            /* f32 [NEXP,INTER,HID], [NEXP,INTER,HID], [NEXP,HID,INTER] */
    uint16_t *b1, *b3, *b2;         /* the same rounded to bf16 */
} weights_set_t;

static void make_weights(weights_set_t *ws) {
    const size_t n = (size_t)NEXP * HID * INTER;
    ws->w1 = xalloc(n * 4);
    ws->w3 = xalloc(n * 4);
    ws->w2 = xalloc(n * 4);
    fill(ws->w1, n, 1.0f / sqrtf((float)HID));
    fill(ws->w3, n, 1.0f / sqrtf((float)HID));
    fill(ws->w2, n, 1.0f / sqrtf((float)INTER));
    ws->b1 = xalloc(n * 2);
    ws->b3 = xalloc(n * 2);
    ws->b2 = xalloc(n * 2);
    for (size_t i = 0; i < n; i++) {
        ws->b1[i] = moep_f32_to_bf16(ws->w1[i]);
        ws->b3[i] = moep_f32_to_bf16(ws->w3[i]);
        ws->b2[i] = moep_f32_to_bf16(ws->w2[i]);
    }
}

static moep_expert_weights_t weights_view(const weights_set_t *ws, moep_weight_format_t f) {
    moep_expert_weights_t w;
    moep_expert_weights_init(&w);
    w.format = f;
    w.num_experts = NEXP;
    w.hidden = HID;
    w.intermediate = INTER;
    int bf = f == MOEP_WEIGHTS_BF16;
    w.w1.data = bf ? (const void *)ws->b1 : ws->w1;
    w.w3.data = bf ? (const void *)ws->b3 : ws->w3;
    w.w2.data = bf ? (const void *)ws->b2 : ws->w2;
    return w;
}

/* Block-scaled copies of the f32 weights (moep_quantize_weights). */
typedef struct quant_set {
    void *data[3], *scales[3];
    float *global[3];
    size_t bytes; /* data + scales, all three stacks */
} quant_set_t;

static moep_expert_weights_t quantize_view(const weights_set_t *ws, moep_weight_format_t f,
                                           quant_set_t *q) {
    const float *src[3] = {ws->w1, ws->w3, ws->w2};
    const int32_t rows[3] = {INTER, INTER, HID}, cols[3] = {HID, HID, INTER};
    moep_expert_weights_t w = weights_view(ws, MOEP_WEIGHTS_F32);
    moep_weight_stack_t *st[3] = {&w.w1, &w.w3, &w.w2};
    w.format = f;
    q->bytes = 0;
    for (int m = 0; m < 3; m++) {
        size_t db = 0, sb = 0;
        moep_tensor_t t = moep_tensor_3d((void *)src[m], MOEP_DTYPE_F32, NEXP, rows[m], cols[m]);
        if (moep_weight_stack_bytes(f, NEXP, rows[m], cols[m], &db, &sb) != MOEP_OK) exit(1);
        q->data[m] = xalloc(db);
        q->scales[m] = xalloc(sb);
        q->global[m] = xalloc(NEXP * sizeof(float));
        if (moep_quantize_weights(f, &t, q->data[m], q->scales[m], q->global[m]) != MOEP_OK) {
            fprintf(stderr, "ffn_bench: moep_quantize_weights: %s\n", moep_last_error());
            exit(1);
        }
        st[m]->data = q->data[m];
        st[m]->scales = q->scales[m];
        st[m]->global_scale = q->global[m];
        q->bytes += db + sb;
    }
    return w;
}

static void free_quant(quant_set_t *q) {
    for (int m = 0; m < 3; m++) {
        free(q->data[m]);
        free(q->scales[m]);
        free(q->global[m]);
    }
}

/* ---- main --------------------------------------------------------------- */

int main(int argc, char **argv) {
    int quick = 0, prefill_only = 0, reps = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0) quick = 1;
        else if (strcmp(argv[i], "--prefill") == 0) prefill_only = 1;
        else if (strncmp(argv[i], "--reps=", 7) == 0) reps = atoi(argv[i] + 7);
        else {
            fprintf(stderr, "usage: %s [--quick | --prefill] [--reps=N]\n", argv[0]);
            return 2;
        }
    }
    const char *ob = getenv("OPENBLAS_NUM_THREADS");
    printf("moep expert FFN benchmark: E=%d top-%d H=%d I=%d, FLOPs = 6*rows*H*I\n", NEXP, TOPK, HID, INTER);
    printf("threads: OpenMP %d, OPENBLAS_NUM_THREADS=%s\n", omp_get_max_threads(), ob ? ob : "(unset)");

    const double peak = measure_fma_peak(), copy_bw = measure_copy_bw();
    printf("ceilings: FMA peak %.1f GFLOP/s (in-run FMA loop), copy bandwidth %.1f GB/s (read+write)\n\n",
           peak, copy_bw);

    weights_set_t ws;
    make_weights(&ws);
    const moep_expert_weights_t wf32 = weights_view(&ws, MOEP_WEIGHTS_F32);

    printf("%-26s %7s %8s %10s %10s %10s %6s %7s\n", "shape", "rows", "GFLOP", "moep GF/s",
           "BLAS GF/s", "ratio", "check", "% peak");
    const int64_t shapes[2] = {64, 4096};
    const char *names[2] = {"decode  64 tok x top-8", "prefill 4096 tok x top-8"};
    for (int s = prefill_only ? 1 : 0; s < (quick ? 1 : 2); s++) {
        problem_t p;
        make_problem(&p, shapes[s]);
        blas_scratch_t bs = {xalloc((size_t)p.rows * INTER * 4), xalloc((size_t)p.rows * INTER * 4)};
        /* Best of n, moep and OpenBLAS alternating, so a burst of other load
         * on the machine does not land on one side only. */
        const int nrep = reps > 0 ? reps : (s == 0 ? 5 : 3);
        double t_moep = 1e30, t_blas = 1e30;
        if (s == 0) { /* warm-up (not timed); prefill keeps the best of its reps instead */
            run_moep(&p, &wf32, p.y_moep, MOEP_DTYPE_F32, p.x);
            run_openblas(&p, ws.w1, ws.w3, ws.w2, &bs);
        }
        for (int r = 0; r < nrep; r++) {
            double t = now_s();
            run_moep(&p, &wf32, p.y_moep, MOEP_DTYPE_F32, p.x);
            t_moep = fmin(t_moep, now_s() - t);
            t = now_s();
            run_openblas(&p, ws.w1, ws.w3, ws.w2, &bs);
            t_blas = fmin(t_blas, now_s() - t);
        }
        const double gflop = 6.0 * (double)p.rows * HID * INTER / 1e9;
        const double err = max_rel_diff(p.y_moep, p.y_blas, (size_t)p.rows * HID);
        printf("%-26s %7lld %8.1f %10.1f %10.1f %9.2fx %6s %6.0f%%\n", names[s], (long long)p.rows,
               gflop, gflop / t_moep, gflop / t_blas, t_blas / t_moep, err < 1e-4 ? "ok" : "FAIL",
               peak > 0 ? 100.0 * gflop / t_moep / peak : 0.0);
        if (err >= 1e-4) printf("  moep and OpenBLAS disagree: max rel diff %.3g\n", err);
        free(bs.g);
        free(bs.u);
        free_problem(&p);
    }

    if (prefill_only) return 0;
    /* Decode is a weight stream: bytes of weights read per second by format. */
    printf("\ndecode (64 tokens, 512 rows), weight streaming, moep only:\n");
    printf("%-10s %10s %9s %12s %10s %10s %8s\n", "weights", "MB", "ms", "weight GB/s", "% copy bw",
           "vs f32", "GFLOP/s");
    problem_t p;
    make_problem(&p, 64);
    const moep_weight_format_t fmts[] = {MOEP_WEIGHTS_F32, MOEP_WEIGHTS_BF16, MOEP_WEIGHTS_FP8_E4M3,
                                         MOEP_WEIGHTS_MXFP4, MOEP_WEIGHTS_NVFP4};
    double t_f32 = 0;
    for (size_t f = 0; f < sizeof fmts / sizeof fmts[0]; f++) {
        quant_set_t q = {{NULL, NULL, NULL}, {NULL, NULL, NULL}, {NULL, NULL, NULL}, 0};
        const int plain = fmts[f] == MOEP_WEIGHTS_F32 || fmts[f] == MOEP_WEIGHTS_BF16;
        const moep_expert_weights_t w = plain ? weights_view(&ws, fmts[f]) : quantize_view(&ws, fmts[f], &q);
        /* Weight bytes read per call, scales included. */
        const double bytes = plain ? 3.0 * NEXP * HID * INTER * (fmts[f] == MOEP_WEIGHTS_F32 ? 4 : 2)
                                   : (double)q.bytes;
        double best = 1e30;
        run_moep(&p, &w, p.y_moep, MOEP_DTYPE_F32, p.x);
        for (int r = 0; r < (reps > 0 ? reps : 3); r++) {
            double t = now_s();
            run_moep(&p, &w, p.y_moep, MOEP_DTYPE_F32, p.x);
            best = fmin(best, now_s() - t);
        }
        if (f == 0) t_f32 = best;
        printf("%-10s %10.1f %9.2f %12.2f %9.0f%% %9.2fx %8.1f\n", moep_weight_format_name(fmts[f]),
               bytes / 1e6, best * 1e3, bytes / best / 1e9, 100.0 * bytes / best / 1e9 / copy_bw,
               t_f32 / best, 6.0 * (double)p.rows * HID * INTER / best / 1e9);
        free_quant(&q);
    }
    free_problem(&p);
    return 0;
}
