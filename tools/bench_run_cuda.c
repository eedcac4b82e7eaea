/* One rank of `moep bench --device cuda` (CUDA build): the model's weights
 * (FP4 ones then packed for the kernels) and tokens copied to GPU `rank`, the
 * GPU layer over an nccl device communicator on a stream of its own, y and
 * the routing copied home and verified against the float64 reference. */
#include <cuda_runtime.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_model.h"
#include "moep_cuda_ffn.h"
#include "bench_run.h"

/* Device copies of everything the rank allocates, freed together. */
typedef struct dev_allocs {
    void *p[32];
    int n;
} dev_allocs_t;

static moep_status_t cuda_ok(bench_result_t *r, cudaError_t e, const char *what) {
    if (e == cudaSuccess) return MOEP_OK;
    r->status = e == cudaErrorMemoryAllocation ? MOEP_ERR_NO_MEMORY : MOEP_ERR_CUDA;
    snprintf(r->error, sizeof r->error, "%s: %s", what, cudaGetErrorString(e));
    return (moep_status_t)r->status;
}

static moep_status_t upload(dev_allocs_t *d, bench_result_t *r, const void *src, size_t bytes, void **dst) {
    *dst = NULL;
    if (src == NULL || bytes == 0) return MOEP_OK;
    if (d->n == (int)(sizeof d->p / sizeof d->p[0])) return bench_fail(r, MOEP_ERR_INTERNAL, "upload table full");
    BENCH_TRY(cuda_ok(r, cudaMalloc(dst, bytes), "cudaMalloc"));
    d->p[d->n++] = *dst;
    return cuda_ok(r, cudaMemcpy(*dst, src, bytes, cudaMemcpyHostToDevice), "copy to the GPU");
}

/* The part of `st` that `w` (a slice of it, num_experts long) views, to the GPU. */
static moep_status_t upload_stack(dev_allocs_t *d, bench_result_t *r, const bench_stack_t *st,
                                  int32_t stack_experts, int32_t n, moep_weight_stack_t *w) {
    size_t db = st->data_bytes / (size_t)stack_experts * (size_t)n;
    size_t sb = st->scale_bytes / (size_t)stack_experts * (size_t)n;
    void *data, *scales, *gs;
    BENCH_TRY(upload(d, r, w->data, db, &data));
    BENCH_TRY(upload(d, r, w->scales, sb, &scales));
    BENCH_TRY(upload(d, r, w->global_scale, (size_t)n * sizeof(float), &gs));
    w->data = data;
    w->scales = scales;
    w->global_scale = gs;
    return MOEP_OK;
}

/* FP4 weights into the kernels' packed layout (the row-major copy stays
 * allocated until the run ends; a server would free it). */
static moep_status_t pack_fp4(dev_allocs_t *d, bench_result_t *r, moep_expert_weights_t *w) {
    if (w->format != MOEP_WEIGHTS_MXFP4 && w->format != MOEP_WEIGHTS_NVFP4) return MOEP_OK;
    if (d->n == (int)(sizeof d->p / sizeof d->p[0])) return bench_fail(r, MOEP_ERR_INTERNAL, "upload table full");
    size_t bytes = 0;
    moep_status_t st = moep_expert_weights_pack_cuda_size(w, &bytes);
    if (st != MOEP_OK) return bench_fail(r, st, moep_last_error());
    void *buf = NULL;
    BENCH_TRY(cuda_ok(r, cudaMalloc(&buf, bytes), "cudaMalloc"));
    d->p[d->n++] = buf;
    st = moep_expert_weights_pack_cuda(w, buf, bytes, w, NULL);
    if (st != MOEP_OK) return bench_fail(r, st, moep_last_error());
    return cuda_ok(r, cudaDeviceSynchronize(), "weight packing");
}

static moep_status_t upload_weights(dev_allocs_t *d, bench_result_t *r, const bench_model_t *m,
                                    moep_expert_weights_t *local, moep_expert_weights_t *shared) {
    int32_t E = m->opt.experts, L = m->num_local;
    *local = m->local;
    *shared = m->shared;
    BENCH_TRY(upload_stack(d, r, &m->w1, E, L, &local->w1));
    BENCH_TRY(upload_stack(d, r, &m->w3, E, L, &local->w3));
    BENCH_TRY(upload_stack(d, r, &m->w2, E, L, &local->w2));
    BENCH_TRY(pack_fp4(d, r, local));
    if (m->opt.shared_intermediate <= 0) return MOEP_OK;
    BENCH_TRY(upload_stack(d, r, &m->sh1, 1, 1, &shared->w1));
    BENCH_TRY(upload_stack(d, r, &m->sh3, 1, 1, &shared->w3));
    BENCH_TRY(upload_stack(d, r, &m->sh2, 1, 1, &shared->w2));
    return pack_fp4(d, r, shared);
}

static moep_tensor_t dev2d(void *p, moep_dtype_t t, int64_t a, int64_t b, int32_t id) {
    moep_tensor_t x = moep_tensor_2d(p, t, a, b);
    x.device = MOEP_DEVICE_CUDA;
    x.device_id = id;
    return x;
}

/* Forwards, then y and the routing home and the check against the reference. */
static moep_status_t run_and_verify(const bench_options_t *o, const bench_model_t *m, moep_layer_t *l,
                                    dev_allocs_t *d, bench_result_t *r, int32_t dev) {
    int64_t T = o->tokens, H = o->hidden, k = o->top_k;
    void *x = NULL, *dx, *dids, *dy = NULL;
    int64_t *ids = NULL;
    moep_status_t st = bench_model_tokens(m, &x, &ids);
    if (st != MOEP_OK) return bench_fail(r, st, "making the tokens");
    uint16_t *y = calloc((size_t)(T * H) + 1, 2);
    int32_t *idx = calloc((size_t)(T * k) + 1, 4);
    float *w = calloc((size_t)(T * k) + 1, 4);
    if (y == NULL || idx == NULL || w == NULL) st = bench_fail(r, MOEP_ERR_NO_MEMORY, "host buffers");
    if (st == MOEP_OK) st = upload(d, r, x, (size_t)(T * H) * 2, &dx);
    if (st == MOEP_OK) st = upload(d, r, ids, (size_t)T * 8, &dids);
    if (st == MOEP_OK) st = upload(d, r, y, (size_t)(T * H) * 2, &dy); /* zeros */
    if (st == MOEP_OK) {
        moep_tensor_t xt = dev2d(dx, MOEP_DTYPE_BF16, T, H, dev), yt = dev2d(dy, MOEP_DTYPE_BF16, T, H, dev);
        moep_tensor_t it = moep_tensor_1d(dids, MOEP_DTYPE_I64, T);
        it.device = MOEP_DEVICE_CUDA;
        it.device_id = dev;
        bench_timed_loop(o, l, &xt, &it, &yt, r);
        st = (moep_status_t)r->status;
    }
    if (st == MOEP_OK) {
        moep_tensor_t ti, tw;
        moep_layer_last_routing(l, &ti, &tw);
        st = cuda_ok(r, cudaDeviceSynchronize(), "the forwards");
        if (st == MOEP_OK && T > 0) st = cuda_ok(r, cudaMemcpy(y, dy, (size_t)(T * H) * 2, cudaMemcpyDeviceToHost), "copy of y");
        if (st == MOEP_OK && T > 0) st = cuda_ok(r, cudaMemcpy(idx, ti.data, (size_t)(T * k) * 4, cudaMemcpyDeviceToHost), "copy of topk_idx");
        if (st == MOEP_OK && T > 0) st = cuda_ok(r, cudaMemcpy(w, tw.data, (size_t)(T * k) * 4, cudaMemcpyDeviceToHost), "copy of topk_weights");
    }
    if (st == MOEP_OK) {
        moep_tensor_t hi = moep_tensor_2d(idx, MOEP_DTYPE_I32, T, k), hw = moep_tensor_2d(w, MOEP_DTYPE_F32, T, k);
        st = bench_model_verify(m, x, &hi, &hw, y, &r->rel_err);
        if (st == MOEP_OK) st = bench_model_verify_original(m, x, &hi, &hw, y, &r->rel_err_original);
        if (st != MOEP_OK) bench_fail(r, st, "verification");
    }
    free(x);
    free(ids);
    free(y);
    free(idx);
    free(w);
    return st;
}

void bench_run_rank_cuda(const bench_options_t *o, const moep_bootstrap_t *bs, bench_result_t *r) {
    memset(r, 0, sizeof *r);
    r->rank = bs ? bs->rank : 0;
    int32_t world = bs ? bs->world_size : 1;
    int ndev = 0;
    if (cuda_ok(r, cudaGetDeviceCount(&ndev), "cudaGetDeviceCount") != MOEP_OK) return;
    if (r->rank >= ndev) {
        r->status = MOEP_ERR_UNSUPPORTED;
        snprintf(r->error, sizeof r->error, "rank %d needs GPU %d, %d visible", r->rank, r->rank, ndev);
        return;
    }
    if (cuda_ok(r, cudaSetDevice(r->rank), "cudaSetDevice") != MOEP_OK) return;
    dev_allocs_t d = {{0}, 0};
    bench_model_t *m = NULL;
    moep_comm_t *comm = NULL;
    moep_layer_t *l = NULL;
    cudaStream_t s = NULL;
    moep_expert_weights_t local, shared;
    moep_status_t st = bench_model_create(o, r->rank, world, &m);
    if (st != MOEP_OK) bench_fail(r, st, "building the model");
    if (st == MOEP_OK) st = cuda_ok(r, cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), "cudaStreamCreate");
    if (st == MOEP_OK) {
        moep_comm_params_t cp;
        moep_comm_params_init(&cp);
        cp.transport = o->transport;
        cp.num_experts = o->experts;
        cp.device = MOEP_DEVICE_CUDA;
        cp.device_id = r->rank;
        st = moep_comm_create(&cp, bs, &comm);
        if (st != MOEP_OK) bench_fail(r, st, "moep_comm_create");
    }
    if (st == MOEP_OK && (st = moep_comm_set_stream_cuda(comm, (moep_stream_t)s)) != MOEP_OK)
        bench_fail(r, st, "moep_comm_set_stream_cuda");
    if (st == MOEP_OK) st = upload_weights(&d, r, m, &local, &shared);
    if (st == MOEP_OK && (st = bench_make_layer(o, m, comm, &local, &shared, &l)) != MOEP_OK)
        bench_fail(r, st, "creating the layer");
    if (st == MOEP_OK) {
        snprintf(r->transport, sizeof r->transport, "%s", moep_comm_transport(comm));
        run_and_verify(o, m, l, &d, r, r->rank);
    }
    moep_layer_destroy(l);
    moep_comm_destroy(comm);
    if (s != NULL) cudaStreamDestroy(s);
    for (int i = 0; i < d.n; i++) cudaFree(d.p[i]);
    bench_model_destroy(m);
}
