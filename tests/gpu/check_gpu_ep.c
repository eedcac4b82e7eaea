/*
 * GPU dispatch + combine, 2 ranks and, on machines with 4 GPUs, 4 ranks (one
 * process per GPU): the results are checked against what the CPU path must
 * produce (tests/comm/ep_workload.h, the same checks as the CPU suites):
 * random and skewed (Zipf) routing, bf16, T from 0 to 8192, then the cached
 * layout; an out-of-range expert id on one rank (what moep_route_cuda_async
 * makes of NaN scores): that rank MOEP_ERR_OUT_OF_RANGE, the others
 * MOEP_ERR_REMOTE, and the same comm then works; combine in pieces on the
 * transport; a stalled peer. Where the node has GPU peer access the
 * exchanges run on peer-mapped buffers, else (and with MOEP_GPU_PEER=0) on
 * NCCL.
 */
#include <check.h>
#include <cuda_runtime.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ep_workload.h"
#include "gpu_probe.h"
#include "moep.h"
#include "rank_harness.h"

static const harness_config_t nccl_cfg = {"nccl", "nccl", {"NCCL_NVLS_ENABLE=0", NULL}, 1};

#define RANK_FAIL(...)                   \
    do {                                 \
        snprintf(err, len, __VA_ARGS__); \
        rc = 1;                          \
        goto out;                        \
    } while (0)

static void *dcopy(const void *h, size_t bytes) {
    void *d = NULL;
    if (cudaMalloc(&d, bytes + 16) != cudaSuccess) return NULL;
    if (h && bytes) cudaMemcpy(d, h, bytes, cudaMemcpyHostToDevice);
    return d;
}
static void *hcopy(const void *d, size_t bytes) {
    void *h = calloc(bytes + 16, 1);
    if (d && bytes) cudaMemcpy(h, d, bytes, cudaMemcpyDeviceToHost);
    return h;
}
static moep_tensor_t dev2d(void *p, moep_dtype_t t, int64_t a, int64_t b, int id) {
    moep_tensor_t x = moep_tensor_2d(p, t, a, b);
    x.device = MOEP_DEVICE_CUDA;
    x.device_id = id;
    return x;
}

/* A rank's tokens on its GPU, as dispatch parameters (dp points at x / idx / w). */
typedef struct {
    void *dx, *didx, *dw;
    moep_tensor_t x, idx, w;
    moep_dispatch_params_t dp;
} dev_tokens_t;

static void dev_tokens_upload(const ep_spec_t *s, const ep_tokens_t *t, int rank, dev_tokens_t *d) {
    size_t es = s->dtype == MOEP_DTYPE_BF16 ? 2 : 4;
    d->dx = dcopy(t->x, (size_t)t->T * s->hidden * es);
    d->didx = dcopy(t->topk_idx, (size_t)t->T * s->top_k * 4);
    d->dw = dcopy(t->topk_w, (size_t)t->T * s->top_k * 4);
    d->x = dev2d(d->dx, s->dtype, t->T, s->hidden, rank);
    d->idx = dev2d(d->didx, MOEP_DTYPE_I32, t->T, s->top_k, rank);
    d->w = dev2d(d->dw, MOEP_DTYPE_F32, t->T, s->top_k, rank);
    moep_dispatch_params_init(&d->dp);
    d->dp.x = &d->x;
    d->dp.topk_idx = &d->idx;
    d->dp.topk_weights = &d->w;
}

static void dev_tokens_free(dev_tokens_t *d) {
    cudaFree(d->dx), cudaFree(d->didx), cudaFree(d->dw);
    d->dx = d->didx = d->dw = NULL;
}

/* A combine's device tensors on GPU `rank`: expert_y (num_expert_rows rows
 * of r, uploaded from ey, or left unset when ey is NULL) and out (T rows),
 * as combine parameters (cp points at eyt / out). */
typedef struct {
    void *dy, *dout;
    moep_tensor_t eyt, out;
    moep_combine_params_t cp;
} dev_combine_t;

static void dev_combine_setup(const ep_spec_t *s, const moep_dispatch_result_t *r, int64_t T,
                              const void *ey, int rank, dev_combine_t *d) {
    size_t es = s->dtype == MOEP_DTYPE_BF16 ? 2 : 4;
    d->dy = dcopy(ey, (size_t)r->num_expert_rows * s->hidden * es);
    d->dout = dcopy(NULL, (size_t)T * s->hidden * es);
    d->eyt = dev2d(d->dy, s->dtype, r->num_expert_rows, s->hidden, rank);
    d->out = dev2d(d->dout, s->dtype, T, s->hidden, rank);
    moep_combine_params_init(&d->cp);
    d->cp.expert_y = &d->eyt;
    d->cp.out = &d->out;
}

static void dev_combine_free(dev_combine_t *d) {
    cudaFree(d->dy), cudaFree(d->dout);
    d->dy = d->dout = NULL;
}

/* The device result copied to the host, in the CPU result's shape. */
static void to_host(const moep_dispatch_result_t *d, const ep_spec_t *s, moep_dispatch_result_t *h) {
    size_t es = s->dtype == MOEP_DTYPE_BF16 ? 2 : 4, n = (size_t)d->num_recv, k = (size_t)s->top_k;
    *h = *d;
    h->recv_x.data = hcopy(d->recv_x.data, n * s->hidden * es);
    h->recv_topk_idx.data = hcopy(d->recv_topk_idx.data, n * k * 4);
    h->recv_topk_weights.data = hcopy(d->recv_topk_weights.data, n * k * 4);
    h->recv_src_rank = hcopy(d->recv_src_rank, n * 4);
    h->expert_x.data = hcopy(d->expert_x.data, (size_t)d->num_expert_rows * s->hidden * es);
}
static void free_host(moep_dispatch_result_t *h) {
    free(h->recv_x.data);
    free(h->recv_topk_idx.data);
    free(h->recv_topk_weights.data);
    free((void *)h->recv_src_rank);
    free(h->expert_x.data);
}

typedef struct {
    ep_spec_t spec;
    /* 1: rank 0 first dispatches one id out of range; 2: after a good fresh
     * dispatch (the comm then sends counts and payload in one round) */
    int bad_id_first;
} gpu_case_t;

/* A fresh dispatch, with one id out of range on rank 0 if poison; 0 when
 * both ranks got what they should. */
static int bad_id_dispatch(moep_comm_t *comm, const ep_spec_t *s, int32_t rank, int poison,
                           char *err, size_t len) {
    ep_tokens_t t = {0};
    ep_tokens_make(s, rank, 0, &t);
    if (poison && rank == 0 && t.T > 5) t.topk_idx[5 * s->top_k + 1] = s->num_experts;
    dev_tokens_t d;
    dev_tokens_upload(s, &t, rank, &d);
    moep_handle_t *h = NULL;
    moep_dispatch_result_t r;
    moep_status_t st = moep_dispatch(comm, &d.dp, &h, &r);
    moep_status_t want = !poison ? MOEP_OK : rank == 0 ? MOEP_ERR_OUT_OF_RANGE : MOEP_ERR_REMOTE;
    int rc = st != want;
    if (rc)
        snprintf(err, len, "dispatch (bad id: %d): %s (%s), expected %s", poison, moep_status_name(st),
                 moep_last_error(), moep_status_name(want));
    moep_handle_destroy(h);
    dev_tokens_free(&d);
    ep_tokens_free(&t);
    return rc;
}

/* A device communicator over nccl on GPU `rank` for the spec's experts. */
static moep_status_t gpu_comm_create(const moep_bootstrap_t *bs, const ep_spec_t *s, int32_t timeout_ms,
                                     moep_comm_t **comm) {
    moep_comm_params_t cp;
    moep_comm_params_init(&cp);
    cp.transport = "nccl";
    cp.num_experts = s->num_experts;
    cp.timeout_ms = timeout_ms;
    cp.device = MOEP_DEVICE_CUDA;
    cp.device_id = bs->rank;
    return moep_comm_create(&cp, bs, comm);
}

static int gpu_rank(const harness_config_t *cfg, const moep_bootstrap_t *bs, void *arg, char *err,
                    size_t len) {
    (void)cfg;
    const gpu_case_t *gc = arg;
    const ep_spec_t *s = &gc->spec;
    int32_t rank = bs->rank, rc = 0;
    moep_comm_t *comm = NULL;
    moep_handle_t *h = NULL;
    ep_tokens_t t = {0};
    dev_tokens_t d = {0};
    dev_combine_t dc = {0};
    void *ey = NULL, *out = NULL;
    moep_dispatch_result_t hr = {0};
    size_t es = s->dtype == MOEP_DTYPE_BF16 ? 2 : 4;
    moep_status_t st = gpu_comm_create(bs, s, 60000, &comm);
    if (st != MOEP_OK) RANK_FAIL("comm: %s %s", moep_status_name(st), moep_last_error());
    if (gc->bad_id_first && ((gc->bad_id_first == 2 && bad_id_dispatch(comm, s, rank, 0, err, len)) ||
                             bad_id_dispatch(comm, s, rank, 1, err, len))) {
        rc = 1;
        goto out;
    }
    int32_t expert_rank[512];
    for (int32_t e = 0; e < s->num_experts; e++) expert_rank[e] = e / (s->num_experts / s->world);
    /* v0: the comm's first fresh dispatch (count round, then payload);
     * v1: the cached layout; v2: fresh again, now in one round (on the
     * peer-mapped path with blocks >= 8 MB: counts first, own rows straight
     * into recv_x) */
    for (int version = 0; version < 3; version++) {
        ep_tokens_free(&t);
        ep_tokens_make(s, rank, version, &t);
        dev_tokens_free(&d);
        dev_tokens_upload(s, &t, rank, &d);
        d.dp.expert_alignment = s->alignment > 0 ? s->alignment : 1;
        if (version == 1) d.dp.flags = MOEP_DISPATCH_REUSE_LAYOUT;
        moep_dispatch_result_t r;
        st = moep_dispatch(comm, &d.dp, &h, &r);
        if (st != MOEP_OK) RANK_FAIL("dispatch v%d: %s %s", version, moep_status_name(st), moep_last_error());
        free_host(&hr);
        to_host(&r, s, &hr);
        if (ep_check_dispatch(s, rank, version, expert_rank, &hr, err, len)) { rc = 1; goto out; }
        free(ey);
        ey = calloc((size_t)r.num_expert_rows * s->hidden + 1, es);
        ep_expert_apply(s, &hr, moep_comm_local_experts(comm), ey);
        dev_combine_free(&dc);
        dev_combine_setup(s, &r, t.T, ey, rank, &dc);
        st = moep_combine(comm, &dc.cp, h);
        if (st != MOEP_OK) RANK_FAIL("combine v%d: %s %s", version, moep_status_name(st), moep_last_error());
        free(out);
        out = hcopy(dc.dout, (size_t)t.T * s->hidden * es);
        if (ep_check_combine(s, rank, version, out, err, len)) { rc = 1; goto out; }
    }
out:
    free_host(&hr);
    ep_tokens_free(&t);
    free(ey);
    free(out);
    dev_tokens_free(&d);
    dev_combine_free(&dc);
    moep_handle_destroy(h);
    moep_comm_destroy(comm);
    return rc;
}

/* On 2 GPUs, and on 4 where the machine has them (ranks 2 and 3 get rank
 * 1's and rank 0's token counts). */
static void run_case(route_pattern_t pat, int32_t T0, int32_t T1, int32_t H, int32_t align,
                     int bad_id_first) {
    for (int world = 2; world <= 4; world += 2) {
        if (world > 2 && gpu_count() < world) break;
        gpu_case_t c = {{.world = world, .num_experts = 256, .top_k = 8, .hidden = H,
                         .dtype = MOEP_DTYPE_BF16, .pattern = pat, .tokens = {T0, T1, T1, T0},
                         .seed = 99 + (uint64_t)T0, .alignment = align},
                        bad_id_first};
        char report[2048] = "";
        int failed = harness_run(&nccl_cfg, world, gpu_rank, &c, 240, report, sizeof report);
        ck_assert_msg(failed == 0, "%d GPUs, pattern %d T=%d/%d H=%d: %s", world, (int)pat, T0, T1, H,
                      report);
    }
}

static void run(route_pattern_t pat, int32_t T0, int32_t T1, int32_t H, int32_t align) {
    run_case(pat, T0, T1, H, align, 0);
}

START_TEST(ep_random) {
    if (gpu_skip(2, "ep_random")) return;
    run(ROUTE_RANDOM, 0, 0, 512, 1);
    run(ROUTE_RANDOM, 1, 0, 512, 1);
    run(ROUTE_RANDOM, 128, 77, 7168, 1);
    run(ROUTE_RANDOM, 8192, 8192, 512, 128);
}
END_TEST

START_TEST(ep_skewed) {
    if (gpu_skip(2, "ep_skewed")) return;
    run(ROUTE_ZIPF, 1000, 3000, 512, 1);
    run(ROUTE_ZIPF, 8192, 4096, 256, 64);
    run(ROUTE_ZIPF, 3000, 6000, 2048, 1); /* uneven 24 MB blocks: rank 1's rows after rank 0's */
    run(ROUTE_ONE_EXPERT, 512, 512, 512, 1);
    run(ROUTE_ALL_MASKED, 64, 64, 512, 1);
}
END_TEST

START_TEST(ep_bad_id_then_ok) {
    if (gpu_skip(2, "ep_bad_id_then_ok")) return;
    run_case(ROUTE_RANDOM, 64, 48, 512, 1, 1);   /* fresh dispatch, first of the comm */
    run_case(ROUTE_RANDOM, 300, 300, 1024, 1, 2);
}
END_TEST

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}

/* A stalled peer: both ranks dispatch and combine once, then rank 1 sleeps
 * past rank 0's timeout instead of combining again. Rank 0's second
 * combine and its next dispatch: one of them must report MOEP_ERR_TIMEOUT
 * within a few timeouts (a combine may only enqueue and return OK), on the
 * peer-mapped path (the signal kernel gives up) and on the transport path
 * (the wait for the dispatch's counts gives up and aborts NCCL). */
static int stalled_peer_rank(const harness_config_t *cfg, const moep_bootstrap_t *bs, void *arg,
                             char *err, size_t len) {
    (void)cfg;
    const ep_spec_t *s = arg;
    int32_t rank = bs->rank, rc = 0;
    moep_comm_t *comm = NULL;
    moep_handle_t *h = NULL;
    ep_tokens_t t = {0};
    dev_tokens_t d = {0};
    dev_combine_t dc = {0};
    moep_status_t st = gpu_comm_create(bs, s, 2000, &comm);
    if (st != MOEP_OK) RANK_FAIL("comm: %s %s", moep_status_name(st), moep_last_error());
    ep_tokens_make(s, rank, 0, &t);
    dev_tokens_upload(s, &t, rank, &d);
    moep_dispatch_result_t r;
    st = moep_dispatch(comm, &d.dp, &h, &r);
    if (st != MOEP_OK) RANK_FAIL("dispatch: %s %s", moep_status_name(st), moep_last_error());
    dev_combine_setup(s, &r, t.T, NULL, rank, &dc);
    st = moep_combine(comm, &dc.cp, h);
    if (st == MOEP_OK && cudaDeviceSynchronize() != cudaSuccess) st = MOEP_ERR_CUDA;
    if (st != MOEP_OK) RANK_FAIL("first combine: %s %s", moep_status_name(st), moep_last_error());
    if (rank == 1) {
        sleep(7);
        goto out;
    }
    double t0 = now_ms();
    st = moep_combine(comm, &dc.cp, h);
    fprintf(stderr, "stalled peer: rank 0 combine -> %s after %.0f ms\n", moep_status_name(st),
            now_ms() - t0);
    if (st == MOEP_OK) st = moep_dispatch(comm, &d.dp, &h, &r);
    double waited = now_ms() - t0;
    fprintf(stderr, "stalled peer: rank 0 dispatch -> %s after %.0f ms\n", moep_status_name(st), waited);
    if (st != MOEP_ERR_TIMEOUT || waited > 5000)
        RANK_FAIL("combine + dispatch with a stalled peer: %s after %.0f ms (%s), expected "
                  "MOEP_ERR_TIMEOUT within 5000 ms", moep_status_name(st), waited, moep_last_error());
out:
    fprintf(stderr, "stalled peer: rank %d cleaning up at %.0f ms\n", (int)rank, now_ms());
    ep_tokens_free(&t);
    dev_tokens_free(&d);
    dev_combine_free(&dc);
    moep_handle_destroy(h);
    moep_comm_destroy(comm);
    fprintf(stderr, "stalled peer: rank %d done at %.0f ms\n", (int)rank, now_ms());
    return rc;
}

static void run_stalled(const char *peer_path) {
    ep_spec_t s = {.world = 2, .num_experts = 256, .top_k = 8, .hidden = 512,
                   .dtype = MOEP_DTYPE_BF16, .pattern = ROUTE_RANDOM, .tokens = {256, 256},
                   .seed = 7, .alignment = 1};
    setenv("MOEP_GPU_PEER", peer_path, 1);
    char report[2048] = "";
    int failed = harness_run(&nccl_cfg, 2, stalled_peer_rank, &s, 30, report, sizeof report);
    unsetenv("MOEP_GPU_PEER");
    ck_assert_msg(failed == 0, "stalled peer (MOEP_GPU_PEER=%s): %s", peer_path, report);
}

START_TEST(ep_stalled_peer) {
    if (gpu_skip(2, "ep_stalled_peer")) return;
    run_stalled("1");
    run_stalled("0");
}
END_TEST

/* Blocks of more than 1 MB in pieces (MOEP_GPU_CHUNK_MB is read when the
 * comm is made, in the rank processes the harness forks), combine on the
 * transport (the other tests run the peer-mapped combine where the node
 * has it): the pipelined exchanges, with blocks of different sizes in the two directions (Zipf,
 * 8192 vs 4096 tokens) so that a pair's piece counts differ. */
START_TEST(ep_pipelined) {
    if (gpu_skip(2, "ep_pipelined")) return;
    setenv("MOEP_GPU_CHUNK_MB", "1", 1);
    setenv("MOEP_GPU_PEER", "0", 1); /* combine on the transport: the pipeline */
    run(ROUTE_RANDOM, 8192, 8192, 512, 128);
    run(ROUTE_ZIPF, 8192, 4096, 256, 64);
    run(ROUTE_RANDOM, 3000, 5000, 1024, 1);
    unsetenv("MOEP_GPU_PEER");
    unsetenv("MOEP_GPU_CHUNK_MB");
}
END_TEST

Suite *moep_check_gpu_ep_suite(void) {
    Suite *s = suite_create("gpu_ep");
    TCase *tc = tcase_create("nccl");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, ep_random);
    tcase_add_test(tc, ep_skewed);
    tcase_add_test(tc, ep_bad_id_then_ok);
    tcase_add_test(tc, ep_pipelined);
    suite_add_tcase(s, tc);
    /* its own case, so that CK_RUN_CASE can take it alone */
    TCase *stalled = tcase_create("stalled");
    tcase_set_timeout(stalled, 300);
    tcase_add_test(stalled, ep_stalled_peer);
    suite_add_tcase(s, stalled);
    return s;
}
