/*
 * GPU dispatch / combine benchmark (CUDA build): one process per GPU over
 * the TCP bootstrap, moep's NCCL path against a raw NCCL all-to-all moving
 * the same deduplicated bytes (each token once per destination rank: the
 * floor of an NCCL-based design). bench/torch_ep_peer.py times the PyTorch
 * dispatcher on the same shape.
 *   gpu_ep_bench [--ranks R] [--tokens T] [--hidden H] [--experts E] [--topk K]
 *                [--iters N] [--warmup N]
 * Prints one line per measurement: median over iterations of the slowest
 * rank, and GB/s as DeepEP reports it (bytes received per rank / time).
 */
#include <arpa/inet.h>
#include <cuda_runtime.h>
#include <nccl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "moep.h"

enum { M_FRESH, M_FRESH_NOX, M_CACHED, M_COMBINE, M_RAW, M_COUNT };
static const char *mode_name[M_COUNT] = {"dispatch (fresh, + expert-major copy)",
                                         "dispatch (fresh, recv_x only)",
                                         "dispatch (cached layout, recv_x only)", "combine",
                                         "raw NCCL all-to-all (same bytes)"};

typedef struct opts {
    int ranks, tokens, hidden, experts, topk, iters, warmup;
} opts_t;

typedef struct rank_out {
    int rank, ok;
    char err[200];
    double ms[M_COUNT];
    double recv_bytes, send_bytes_peers; /* dispatch x bytes received (all), sent to peers */
} rank_out_t;

static uint64_t rs;
static double unif(void) {
    rs = rs * 6364136223846793005ull + 1442695040888963407ull;
    return (double)(rs >> 11) * 0x1p-53;
}

static int cmpd(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}
static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmpd);
    return v[n / 2];
}

#define CK(x)                                                                                   \
    do {                                                                                        \
        moep_status_t s_ = (x);                                                                 \
        if (s_ != MOEP_OK) {                                                                    \
            snprintf(o->err, sizeof o->err, "%s: %s %s", #x, moep_status_name(s_), moep_last_error()); \
            return;                                                                             \
        }                                                                                       \
    } while (0)

static moep_tensor_t dev2d(void *p, moep_dtype_t t, int64_t a, int64_t b, int id) {
    moep_tensor_t x = moep_tensor_2d(p, t, a, b);
    x.device = MOEP_DEVICE_CUDA;
    x.device_id = id;
    return x;
}

/* Time `iters` runs of one step with events on stream s (ranks aligned by a barrier). */
#define TIMED(mode, ...)                                                                   \
    do {                                                                                    \
        for (int it = 0; it < op->warmup + op->iters; it++) {                              \
            cudaStreamSynchronize(s);                                                       \
            bs->barrier(bs->ctx);                                                           \
            cudaEventRecord(e0, s);                                                         \
            __VA_ARGS__;                                                                    \
            cudaEventRecord(e1, s);                                                         \
            cudaEventSynchronize(e1);                                                       \
            float ms_ = 0;                                                                  \
            cudaEventElapsedTime(&ms_, e0, e1);                                             \
            if (it >= op->warmup) t[it - op->warmup] = ms_;                                 \
        }                                                                                   \
        o->ms[mode] = median(t, op->iters);                                                 \
    } while (0)

static void raw_a2a(ncclComm_t nc, cudaStream_t s, const int64_t *all, int R, int me, size_t row,
                    void *raw_s, void *raw_r) {
    size_t so = 0, ro = 0;
    ncclGroupStart();
    for (int q = 0; q < R; q++) {
        size_t sb = (size_t)all[me * R + q] * row, rb = (size_t)all[q * R + me] * row;
        if (sb) ncclSend((char *)raw_s + so, sb, ncclUint8, q, nc, s);
        if (rb) ncclRecv((char *)raw_r + ro, rb, ncclUint8, q, nc, s);
        so += sb;
        ro += rb;
    }
    ncclGroupEnd();
}

static void run_rank(const opts_t *op, const moep_bootstrap_t *bs, rank_out_t *o) {
    int R = op->ranks, me = bs->rank, T = op->tokens, H = op->hidden, E = op->experts, k = op->topk;
    cudaSetDevice(me);
    rs = 0x9e3779b97f4a7c15ull * (uint64_t)(me + 1);
    /* uniform random routing: k distinct experts per token (DeepEP's test) */
    int32_t *idx = malloc((size_t)T * k * 4);
    float *w = malloc((size_t)T * k * 4);
    uint16_t *x = malloc((size_t)T * H * 2);
    for (int t = 0; t < T; t++)
        for (int j = 0; j < k; j++) {
            int32_t e;
            int dup;
            do {
                e = (int32_t)(unif() * E);
                dup = 0;
                for (int q = 0; q < j; q++) dup |= idx[t * k + q] == e;
            } while (dup);
            idx[t * k + j] = e;
            w[t * k + j] = (float)unif();
        }
    for (size_t i = 0; i < (size_t)T * H; i++) x[i] = moep_f32_to_bf16((float)(unif() - 0.5));
    /* the deduplicated per-rank counts, for the raw all-to-all */
    moep_tensor_t hidx = moep_tensor_2d(idx, MOEP_DTYPE_I32, T, k);
    moep_layout_t *lay = NULL;
    CK(moep_layout_create(&hidx, E, R, NULL, &lay));
    int64_t *all = calloc((size_t)R * R, sizeof(int64_t));
    CK(bs->allgather(bs->ctx, lay->tokens_per_rank, all, (size_t)R * sizeof(int64_t)));
    void *dx, *didx, *dw, *dout, *raw_s, *raw_r;
    size_t row = (size_t)H * 2;
    cudaMalloc(&dx, (size_t)T * row);
    cudaMalloc(&didx, (size_t)T * k * 4);
    cudaMalloc(&dw, (size_t)T * k * 4);
    cudaMalloc(&dout, (size_t)T * row);
    cudaMemcpy(dx, x, (size_t)T * row, cudaMemcpyHostToDevice);
    cudaMemcpy(didx, idx, (size_t)T * k * 4, cudaMemcpyHostToDevice);
    cudaMemcpy(dw, w, (size_t)T * k * 4, cudaMemcpyHostToDevice);
    cudaStream_t s;
    cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking);
    cudaEvent_t e0, e1;
    cudaEventCreate(&e0);
    cudaEventCreate(&e1);
    moep_comm_params_t cp;
    moep_comm_params_init(&cp);
    cp.transport = "nccl";
    cp.num_experts = E;
    cp.device = MOEP_DEVICE_CUDA;
    cp.device_id = me;
    moep_comm_t *comm = NULL;
    CK(moep_comm_create(&cp, bs, &comm));
    CK(moep_comm_set_stream_cuda(comm, (moep_stream_t)s));
    moep_tensor_t tx = dev2d(dx, MOEP_DTYPE_BF16, T, H, me), ti = dev2d(didx, MOEP_DTYPE_I32, T, k, me);
    moep_tensor_t tw = dev2d(dw, MOEP_DTYPE_F32, T, k, me), to = dev2d(dout, MOEP_DTYPE_BF16, T, H, me);
    moep_dispatch_params_t dp;
    moep_dispatch_params_init(&dp);
    dp.x = &tx;
    dp.topk_idx = &ti;
    dp.topk_weights = &tw;
    moep_handle_t *h = NULL;
    moep_dispatch_result_t r;
    double *t = calloc((size_t)op->iters, sizeof(double));
    moep_status_t st = MOEP_OK;
    dp.flags = 0;
    TIMED(M_FRESH, st = st ? st : moep_dispatch(comm, &dp, &h, &r));
    CK(st);
    dp.flags = MOEP_DISPATCH_NO_EXPERT_X;
    TIMED(M_FRESH_NOX, st = st ? st : moep_dispatch(comm, &dp, &h, &r));
    CK(st);
    dp.flags = MOEP_DISPATCH_REUSE_LAYOUT | MOEP_DISPATCH_NO_EXPERT_X;
    TIMED(M_CACHED, st = st ? st : moep_dispatch(comm, &dp, &h, &r));
    CK(st);
    /* combine: expert outputs in the expert-major layout (any values) */
    void *dy;
    cudaMalloc(&dy, (size_t)r.num_expert_rows * row + 16);
    cudaMemset(dy, 0, (size_t)r.num_expert_rows * row + 16);
    moep_tensor_t ty = dev2d(dy, MOEP_DTYPE_BF16, r.num_expert_rows, H, me);
    moep_combine_params_t cbp;
    moep_combine_params_init(&cbp);
    cbp.expert_y = &ty;
    cbp.out = &to;
    TIMED(M_COMBINE, st = st ? st : moep_combine(comm, &cbp, h));
    CK(st);
    o->recv_bytes = (double)r.num_recv * (double)row;
    /* raw NCCL all-to-all of the same rows */
    ncclUniqueId id;
    if (me == 0) ncclGetUniqueId(&id);
    ncclUniqueId *ids = calloc((size_t)R, sizeof id);
    CK(bs->allgather(bs->ctx, &id, ids, sizeof id));
    ncclComm_t nc;
    if (ncclCommInitRank(&nc, R, ids[0], me) != ncclSuccess) {
        snprintf(o->err, sizeof o->err, "ncclCommInitRank failed");
        return;
    }
    size_t sbytes = 0, rbytes = 0;
    for (int q = 0; q < R; q++) {
        sbytes += (size_t)all[me * R + q] * row;
        rbytes += (size_t)all[q * R + me] * row;
        if (q != me) o->send_bytes_peers += (double)all[me * R + q] * row;
    }
    cudaMalloc(&raw_s, sbytes + 16);
    cudaMalloc(&raw_r, rbytes + 16);
    TIMED(M_RAW, raw_a2a(nc, s, all, R, me, row, raw_s, raw_r));
    ncclCommDestroy(nc);
    moep_handle_destroy(h);
    moep_comm_destroy(comm);
    o->ok = 1;
}

int main(int argc, char **argv) {
    opts_t op = {2, 4096, 7168, 256, 8, 20, 5};
    for (int i = 1; i + 1 < argc; i += 2) {
        int v = atoi(argv[i + 1]);
        if (!strcmp(argv[i], "--ranks")) op.ranks = v;
        else if (!strcmp(argv[i], "--tokens")) op.tokens = v;
        else if (!strcmp(argv[i], "--hidden")) op.hidden = v;
        else if (!strcmp(argv[i], "--experts")) op.experts = v;
        else if (!strcmp(argv[i], "--topk")) op.topk = v;
        else if (!strcmp(argv[i], "--iters")) op.iters = v;
        else if (!strcmp(argv[i], "--warmup")) op.warmup = v;
        else {
            fprintf(stderr, "gpu_ep_bench: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    setenv("NCCL_NVLS_ENABLE", "0", 1);
    int32_t port = -1;
    int fds[2];
    if (moep_tcp_free_loopback_port(&port) != MOEP_OK || pipe(fds) != 0) return 1;
    for (int r = 0; r < op.ranks; r++) {
        if (fork() == 0) {
            close(fds[0]);
            rank_out_t o;
            memset(&o, 0, sizeof o);
            o.rank = r;
            moep_bootstrap_t *bs = NULL;
            if (moep_bootstrap_tcp_loopback(r, op.ranks, port, 0, &bs) == MOEP_OK) run_rank(&op, bs, &o);
            else snprintf(o.err, sizeof o.err, "bootstrap: %s", moep_last_error());
            ssize_t n = write(fds[1], &o, sizeof o);
            moep_bootstrap_destroy(bs);
            _exit(n == (ssize_t)sizeof o ? 0 : 1);
        }
    }
    close(fds[1]);
    rank_out_t res[16], one;
    int got = 0, failed = 0;
    memset(res, 0, sizeof res);
    while (read(fds[0], &one, sizeof one) == (ssize_t)sizeof one)
        if (one.rank >= 0 && one.rank < 16) res[one.rank] = one, got++;
    while (wait(NULL) > 0) {
    }
    for (int r = 0; r < op.ranks; r++)
        if (!res[r].ok) {
            printf("rank %d FAILED: %s\n", r, res[r].err[0] ? res[r].err : "no result");
            failed = 1;
        }
    if (failed || got != op.ranks) return 1;
    printf("gpu_ep_bench: %d ranks, %d tokens/rank, hidden %d, top-%d of %d experts, bf16\n",
           op.ranks, op.tokens, op.hidden, op.topk, op.experts);
    double recv = 0;
    for (int r = 0; r < op.ranks; r++) recv = res[r].recv_bytes > recv ? res[r].recv_bytes : recv;
    printf("  bytes received per rank (max): %.1f MB\n", recv * 1e-6);
    printf("  %-40s %10s %10s\n", "step", "ms", "GB/s");
    for (int m = 0; m < M_COUNT; m++) {
        double ms = 0;
        for (int r = 0; r < op.ranks; r++) ms = res[r].ms[m] > ms ? res[r].ms[m] : ms;
        printf("  %-40s %10.4f %10.1f\n", mode_name[m], ms, recv / (ms * 1e-3) * 1e-9);
    }
    return 0;
}
