/* Device communicators: placement tables on the GPU, the stream, and the
 * helpers the GPU dispatch and combine share. */
#include <stdlib.h>
#include <string.h>

#include "gpu_internal.h"

moep_status_t moep__cuda_check(moep_comm_t *c, const char *fn, int err, const char *what) {
    if (err == cudaSuccess) return MOEP_OK;
    return moep__comm_fail(c, MOEP_ERR_CUDA, "%s: %s: %s", fn, what,
                           cudaGetErrorString((cudaError_t)err));
}

/* Stream-ordered on the comm's stream (cuda_buf.h): cudaFree would wait for
 * the whole device, so a transfer stuck on a dead peer would hang the host
 * here instead of reaching the deadline below. */
moep_status_t moep__dbuf_reserve(moep_comm_t *c, const char *fn, moep__cuda_buf_t *b, size_t need) {
    cudaError_t e = moep__cuda_buf_grow(b, need, (cudaStream_t)c->gpu->stream);
    if (e == cudaSuccess) return MOEP_OK;
    return moep__comm_fail(c, e == cudaErrorMemoryAllocation ? MOEP_ERR_NO_MEMORY : MOEP_ERR_CUDA,
                           "%s: device buffer of %zu bytes: %s", fn, need, cudaGetErrorString(e));
}

moep_status_t moep__gpu_wait_event(moep_comm_t *c, const char *fn, cudaEvent_t ev, const char *what) {
    double deadline = moep__now_ms() + c->timeout_ms;
    for (;;) {
        cudaError_t e = cudaEventQuery(ev);
        if (e != cudaSuccess && e != cudaErrorNotReady) {
            c->broken = true;
            return moep__cuda_check(c, fn, e, what);
        }
        /* a signal kernel that gave up on a peer lets the work after it run
         * on what never arrived: that is a timeout, done or not */
        moep_status_t st = moep__gpu_peer_check(c, fn);
        if (st != MOEP_OK)
            c->vt->cancel(c->tctx, NULL); /* a peer is gone: so are the transport's ops */
        else if (e == cudaSuccess)
            return MOEP_OK;
        else
            st = c->vt->progress(c->tctx);
        if (st != MOEP_OK) {
            c->broken = true;
            return moep__comm_fail(c, st, "%s: %s: %s", fn, what, moep_last_error());
        }
        if (moep__now_ms() > deadline) {
            c->vt->cancel(c->tctx, NULL); /* nccl: ncclCommAbort */
            c->broken = true;
            return moep__comm_fail(c, MOEP_ERR_TIMEOUT,
                                   "%s (rank %d): timed out after %d ms waiting for %s (a peer is "
                                   "dead or stalled); the transport was aborted",
                                   fn, c->rank, (int)c->timeout_ms, what);
        }
    }
}

moep_status_t moep__check_cuda_tensor(const moep_comm_t *c, const char *fn, const char *name,
                                      const moep_tensor_t *t, int ndim, int dtype,
                                      const int64_t *shape) {
    if (t != NULL && moep_tensor_numel(t) > 0 &&
        (t->device != MOEP_DEVICE_CUDA || t->device_id != c->device_id))
        return moep__fail(MOEP_ERR_INVALID_ARG, "%s: %s must be on CUDA device %d (comm's device)",
                          fn, name, (int)c->device_id);
    if (t == NULL) return moep__fail(MOEP_ERR_INVALID_ARG, "%s: %s is NULL", fn, name);
    /* the host checker does the rest on a host-labelled view */
    moep_tensor_t v = *t;
    v.device = MOEP_DEVICE_CPU;
    return moep__check_tensor(fn, name, &v, ndim, dtype, shape);
}

moep_status_t moep__gpu_alltoallv_rows(moep_comm_t *c, const char *fn, const void *send,
                                       const int64_t *send_count, const int64_t *send_off,
                                       void *recv, const int64_t *recv_count,
                                       const int64_t *recv_off, size_t row_bytes, uint64_t *wire_p) {
    int32_t R = c->world_size;
    size_t *v = c->gpu->a2a_bytes;
    size_t *sb = v, *so = v + R, *rb = v + 2 * R, *ro = v + 3 * R;
    for (int32_t r = 0; r < R; r++) {
        sb[r] = (size_t)send_count[r] * row_bytes;
        so[r] = (size_t)send_off[r] * row_bytes;
        rb[r] = (size_t)recv_count[r] * row_bytes;
        ro[r] = (size_t)recv_off[r] * row_bytes;
        if (r != c->rank && wire_p != NULL) *wire_p += sb[r];
    }
    sb[c->rank] = rb[c->rank] = 0; /* the caller writes its own block in place */
    moep_stream_t s = c->gpu->stream;
    moep_status_t st = c->vt->alltoallv(c->tctx, send, sb, so, recv, rb, ro, s);
    if (st != MOEP_OK) {
        c->broken = true;
        return moep__comm_fail(c, st, "%s (rank %d): %s", fn, c->rank, moep_last_error());
    }
    return MOEP_OK;
}

moep_status_t moep__gpu_group(moep_comm_t *c, const char *fn, int begin) {
    if (!MOEP_HAS_OP(c->vt, group)) return MOEP_OK;
    moep_status_t st = c->vt->group(c->tctx, begin);
    if (st != MOEP_OK) {
        c->broken = true;
        return moep__comm_fail(c, st, "%s (rank %d): %s", fn, c->rank, moep_last_error());
    }
    return MOEP_OK;
}

moep_status_t moep__gpu_group_end(moep_comm_t *c, const char *fn, moep_status_t st) {
    if (st == MOEP_OK) return moep__gpu_group(c, fn, 0);
    if (!MOEP_HAS_OP(c->vt, group)) return st;
    char first[sizeof c->last_error];
    memcpy(first, c->last_error, sizeof first);
    (void)c->vt->group(c->tctx, 0); /* its own failure would hide the first one */
    return moep__comm_fail(c, st, "%s", first);
}

moep_status_t moep__gpu_fork(moep_comm_t *c, const char *fn) {
    cudaError_t e = cudaEventRecord(c->gpu->fork, (cudaStream_t)c->gpu->stream);
    if (e == cudaSuccess) e = cudaStreamWaitEvent(c->gpu->side, c->gpu->fork, 0);
    return moep__cuda_check(c, fn, e, "fork to the side stream");
}

moep_status_t moep__gpu_join(moep_comm_t *c, const char *fn) {
    cudaError_t e = cudaEventRecord(c->gpu->join, c->gpu->side);
    if (e == cudaSuccess) e = cudaStreamWaitEvent((cudaStream_t)c->gpu->stream, c->gpu->join, 0);
    return moep__cuda_check(c, fn, e, "join of the side stream");
}

int32_t moep__gpu_pair_chunks(const moep_comm_t *c, int64_t rows, size_t row_bytes) {
    size_t piece = c->gpu->chunk_bytes, bytes = (size_t)rows * row_bytes;
    if (piece == 0 || bytes <= piece) return 1;
    size_t n = (bytes + piece - 1) / piece;
    return n > MOEP__GPU_CHUNKS_MAX ? MOEP__GPU_CHUNKS_MAX : (int32_t)n;
}

moep_status_t moep__gpu_comm_init(moep_comm_t *c) {
    static const char *fn = "moep_comm_create";
    moep_transport_props_t props;
    memset(&props, 0, sizeof props);
    if (c->vt->get_props != NULL) c->vt->get_props(c->tctx, &props);
    if (!MOEP_HAS_OP(c->vt, alltoallv) || !(props.caps & MOEP_CAP_STREAM_ORDERED) ||
        !(props.caps & MOEP_CAP_CUDA_MEM))
        return moep__fail(MOEP_ERR_UNSUPPORTED,
                          "%s: transport %s cannot move device buffers on a stream; device "
                          "communicators need nccl", fn, c->vt->name);
    MOEP_TRY(moep__cuda_check(c, fn, cudaSetDevice(c->device_id), "cudaSetDevice"));
    c->gpu = moep__calloc(fn, 1, sizeof *c->gpu);
    if (c->gpu == NULL) return MOEP_ERR_NO_MEMORY;
    c->gpu->a2a_bytes = moep__calloc(fn, (size_t)c->world_size * 4, sizeof(size_t));
    c->gpu->row_tmp = moep__calloc(fn, (size_t)c->world_size * 7, sizeof(int64_t));
    if (c->gpu->a2a_bytes == NULL || c->gpu->row_tmp == NULL) return MOEP_ERR_NO_MEMORY;
    /* Placement tables: plain cudaMalloc, once, before any transfer of this
     * comm (nothing can be stuck yet), and valid on every stream, which the
     * synchronous copies below and the caller's later stream need. */
    size_t bytes = (size_t)c->num_experts * sizeof(int32_t);
    moep_status_t st =
        moep__cuda_check(c, fn, cudaMalloc((void **)&c->gpu->expert_rank, bytes), "cudaMalloc");
    if (st == MOEP_OK)
        st = moep__cuda_check(c, fn, cudaMalloc((void **)&c->gpu->global_to_local, bytes), "cudaMalloc");
    if (st == MOEP_OK)
        st = moep__cuda_check(c, fn, cudaMemcpy(c->gpu->expert_rank, c->expert_rank, bytes,
                                                cudaMemcpyHostToDevice), "cudaMemcpy");
    if (st == MOEP_OK)
        st = moep__cuda_check(c, fn, cudaMemcpy(c->gpu->global_to_local, c->global_to_local, bytes,
                                                cudaMemcpyHostToDevice), "cudaMemcpy");
    size_t lbytes = (size_t)(c->num_local_experts > 0 ? c->num_local_experts : 1) * sizeof(int32_t);
    if (st == MOEP_OK)
        st = moep__cuda_check(c, fn, cudaMalloc((void **)&c->gpu->local_experts, lbytes), "cudaMalloc");
    if (st == MOEP_OK && c->num_local_experts > 0)
        st = moep__cuda_check(c, fn, cudaMemcpy(c->gpu->local_experts, c->local_experts,
                                                (size_t)c->num_local_experts * sizeof(int32_t),
                                                cudaMemcpyHostToDevice), "cudaMemcpy");
    if (st == MOEP_OK)
        st = moep__cuda_check(c, fn, cudaStreamCreateWithFlags(&c->gpu->side, cudaStreamNonBlocking),
                              "cudaStreamCreate");
    if (st == MOEP_OK)
        st = moep__cuda_check(c, fn, cudaEventCreateWithFlags(&c->gpu->fork, cudaEventDisableTiming),
                              "cudaEventCreate");
    if (st == MOEP_OK)
        st = moep__cuda_check(c, fn, cudaEventCreateWithFlags(&c->gpu->join, cudaEventDisableTiming),
                              "cudaEventCreate");
    for (int i = 0; i < MOEP__GPU_CHUNKS_MAX && st == MOEP_OK; i++)
        st = moep__cuda_check(c, fn, cudaEventCreateWithFlags(&c->gpu->chunk_ready[i],
                                                              cudaEventDisableTiming),
                              "cudaEventCreate");
    /* the same on every rank (sender and receiver split a block alike) */
    long mb = moep__env_long("MOEP_GPU_CHUNK_MB", 32);
    c->gpu->chunk_bytes = mb > 0 && mb < (1L << 20) ? (size_t)mb << 20 : 0;
    if (st == MOEP_OK) st = moep__gpu_peer_init(c);
    return st;
}

void moep__gpu_comm_free(moep_comm_t *c) {
    if (c->gpu == NULL) return;
    moep__gpu_peer_free(c);
    cudaFree(c->gpu->expert_rank);
    cudaFree(c->gpu->global_to_local);
    cudaFree(c->gpu->local_experts);
    if (c->gpu->side != NULL) cudaStreamDestroy(c->gpu->side);
    if (c->gpu->fork != NULL) cudaEventDestroy(c->gpu->fork);
    if (c->gpu->join != NULL) cudaEventDestroy(c->gpu->join);
    for (int i = 0; i < MOEP__GPU_CHUNKS_MAX; i++)
        if (c->gpu->chunk_ready[i] != NULL) cudaEventDestroy(c->gpu->chunk_ready[i]);
    free(c->gpu->a2a_bytes);
    free(c->gpu->row_tmp);
    free(c->gpu);
    c->gpu = NULL;
}

moep_status_t moep_comm_set_stream_cuda(moep_comm_t *c, moep_stream_t stream) {
    MOEP_CHECK_ARG("moep_comm_set_stream_cuda", c);
    if (c->gpu == NULL)
        return moep__fail(MOEP_ERR_INVALID_USAGE,
                          "moep_comm_set_stream_cuda: not a device communicator");
    c->gpu->stream = stream;
    return MOEP_OK;
}

moep_status_t moep_comm_get_stream_cuda(const moep_comm_t *c, moep_stream_t *stream) {
    MOEP_CHECK_ARG("moep_comm_get_stream_cuda", c);
    MOEP_CHECK_ARG("moep_comm_get_stream_cuda", stream);
    if (c->gpu == NULL)
        return moep__fail(MOEP_ERR_INVALID_USAGE,
                          "moep_comm_get_stream_cuda: not a device communicator");
    *stream = c->gpu->stream;
    return MOEP_OK;
}

int32_t moep_comm_device_cuda(const moep_comm_t *c) {
    return c != NULL && c->gpu != NULL ? c->device_id : -1;
}

void moep__gpu_handle_free(moep_handle_t *h) {
    struct moep__gpu_handle *g = h->gpu;
    if (g == NULL) return;
    moep__cuda_buf_t *all[] = {&g->flags, &g->trs, &g->expert_count,
                               &g->send_hdr, &g->recv_hdr, &g->send_x, &g->send_meta, &g->recv_x,
                               &g->recv_meta, &g->local_idx, &g->weight, &g->src, &g->slot_row,
                               &g->row_src, &g->expert_x, &g->recv_offset, &g->expert_offset,
                               &g->partial_send, &g->partial_recv, &g->recv_pad,
                               &g->rows_scratch, &g->count_scratch};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) moep__cuda_buf_free(all[i]);
    if (g->host != NULL) cudaFreeHost(g->host);
    if (g->counts_ready != NULL) cudaEventDestroy(g->counts_ready);
    free(g->rank_offset);
    free(g->peer_blk);
    free(g);
    h->gpu = NULL;
}
