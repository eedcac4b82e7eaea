/*
 * The `nccl` transport (CUDA build): one process per GPU, device buffers,
 * stream-ordered all-to-all-v (the vtable's alltoallv op) over ncclSend /
 * ncclRecv. init makes the communicators from the caller's bootstrap: rank 0
 * creates the ncclUniqueIds and every rank allgathers them.
 *
 * Two communicators, because NCCL makes every group of a non-blocking
 * communicator run on a freshly spawned host thread (ncclGroupEnd returns
 * ncclInProgress and the caller must poll until the launch is done): tens of
 * microseconds per group, more than a decode-sized all-to-all takes.
 *  - the gate (non-blocking) is created first: its init is polled with
 *    ncclCommGetAsyncError until the comm's timeout, so a rank that fails or
 *    dies during init gives MOEP_ERR_TIMEOUT / its error and ncclCommAbort,
 *    never a hang. It is aborted (locally) once the data comm is up.
 *  - the data communicator (blocking) is created right after, when the gate
 *    has shown every rank alive, and a warm-up exchange with every peer
 *    (polled to the same deadline) connects its p2p channels. From then on
 *    a group only enqueues kernels: ncclGroupEnd returns without waiting
 *    for peers and alltoallv launches and returns, no polling. NCCL's
 *    asynchronous errors are read once per call (no spin) and by progress(),
 *    which the comm calls while it waits for GPU events with a deadline: a
 *    peer that dies mid-transfer stalls the stream, the wait times out and
 *    cancel() aborts the communicator (ncclCommAbort), after which every op
 *    fails. (A blocking init could still hang if a rank died in the short
 *    window between the gate and the data init.)
 * alltoallv inside group(1) / group(0) adds its sends and receives to the
 * open group (no nested ncclGroupStart). Tagged host messages (isend/irecv)
 * are not offered: MOEP_ERR_UNSUPPORTED.
 */
#include <cuda_runtime.h>
#include <nccl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "transport_util.h"

typedef struct nccl_ctx {
    ncclComm_t comm; /* data: blocking */
    ncclComm_t gate; /* init only: non-blocking; NULL once the data comm is up */
    int32_t rank, world_size, device, timeout_ms;
    int aborted;
    int group_depth;   /* open group(1) calls: alltoallv joins that group */
    int abort_pending; /* an op failed inside the open group: abort at group(0) */
} nccl_ctx_t;

/* The one translation of NCCL results (STYLE: one static function per backend). */
static moep_status_t nccl_status(ncclResult_t r, const char *fn, const char *what) {
    if (r == ncclSuccess || r == ncclInProgress) return MOEP_OK;
    moep_status_t s = r == ncclRemoteError        ? MOEP_ERR_REMOTE
                      : r == ncclSystemError      ? MOEP_ERR_SYSTEM
                      : r == ncclInvalidArgument  ? MOEP_ERR_INVALID_ARG
                      : r == ncclInvalidUsage     ? MOEP_ERR_INVALID_USAGE
                      : r == ncclInternalError    ? MOEP_ERR_INTERNAL
                                                  : MOEP_ERR_CUDA;
    return moep__fail(s, "%s: %s: %s (%s)", fn, what, ncclGetErrorString(r), ncclGetLastError(NULL));
}

static void abort_one(ncclComm_t *comm) {
    if (*comm != NULL) ncclCommAbort(*comm);
    *comm = NULL;
}

static moep_status_t abort_comm(nccl_ctx_t *c) {
    if (!c->aborted) {
        abort_one(&c->comm);
        abort_one(&c->gate);
    }
    c->aborted = 1;
    return MOEP_OK;
}

static moep_status_t timed_out(nccl_ctx_t *c, const char *fn, const char *what) {
    abort_comm(c);
    return moep__fail(MOEP_ERR_TIMEOUT, "%s: %s timed out after %d ms (a peer is dead or stalled); "
                      "communicator aborted", fn, what, (int)c->timeout_ms);
}

/* NCCL's asynchronous state of `comm`, read once: MOEP_OK when there is no
 * error (*busy: a non-blocking call is still running); else the error, and
 * the communicators are aborted. */
static moep_status_t async_state(nccl_ctx_t *c, ncclComm_t comm, const char *fn, const char *what,
                                 int *busy) {
    ncclResult_t state = ncclSuccess;
    ncclResult_t r = ncclCommGetAsyncError(comm, &state);
    if (r == ncclSuccess) r = state;
    if (busy != NULL) *busy = r == ncclInProgress;
    moep_status_t st = nccl_status(r, fn, what);
    if (st != MOEP_OK) abort_comm(c);
    return st;
}

/* Wait until the last non-blocking call on `comm` has finished, or the
 * deadline (then the communicators are aborted). */
static moep_status_t wait_ready(nccl_ctx_t *c, ncclComm_t comm, double deadline, const char *fn,
                                const char *what) {
    for (;;) {
        int busy = 0;
        MOEP_TRY(async_state(c, comm, fn, what, &busy));
        if (!busy) return MOEP_OK;
        if (moep__now_ms() > deadline) return timed_out(c, fn, what);
    }
}

static moep_status_t nccl_probe(char *why, size_t why_len) {
    int n = 0, v = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess || n == 0) {
        moep__why(why, why_len, "no CUDA device (%s)",
                  e != cudaSuccess ? cudaGetErrorString(e) : "0 devices");
        return MOEP_ERR_UNSUPPORTED;
    }
    ncclGetVersion(&v);
    moep__why(why, why_len, "NCCL %d.%d.%d, %d GPU(s)", v / 10000, v / 100 % 100, v % 100, n);
    return MOEP_OK;
}

typedef struct nccl_card {
    int32_t status;
    int32_t device;
    ncclUniqueId gate_id, data_id; /* rank 0's are used */
} nccl_card_t;

static moep_status_t local_setup(const moep_transport_init_args_t *args, const char *fn) {
    if (args->device != MOEP_DEVICE_CUDA)
        return moep__fail(MOEP_ERR_UNSUPPORTED,
                          "%s: nccl moves device buffers: create the comm with params.device = "
                          "MOEP_DEVICE_CUDA", fn);
    cudaError_t e = cudaSetDevice(args->device_id);
    if (e != cudaSuccess)
        return moep__fail(MOEP_ERR_CUDA, "%s: cudaSetDevice(%d): %s", fn, (int)args->device_id,
                          cudaGetErrorString(e));
    return MOEP_OK;
}

static moep_status_t nccl_alltoallv(void *tctx, const void *send_buf, const size_t *send_bytes,
                                    const size_t *send_off, void *recv_buf, const size_t *recv_bytes,
                                    const size_t *recv_off, moep_stream_t stream);

/* Wait for `ev` on the GPU, reading the data comm's errors, until the deadline. */
static moep_status_t wait_event(nccl_ctx_t *c, cudaEvent_t ev, double deadline, const char *fn,
                                const char *what) {
    for (;;) {
        cudaError_t e = cudaEventQuery(ev);
        if (e == cudaSuccess) return MOEP_OK;
        if (e != cudaErrorNotReady) {
            abort_comm(c);
            return moep__fail(MOEP_ERR_CUDA, "%s: %s: %s", fn, what, cudaGetErrorString(e));
        }
        MOEP_TRY(async_state(c, c->comm, fn, what, NULL));
        if (moep__now_ms() > deadline) return timed_out(c, fn, what);
    }
}

/* One byte to and from every peer on the data comm, waited for until the
 * deadline: connects its p2p channels while every rank is in init (not in
 * the first dispatch, where a blocking comm would wait for the peer on the
 * host). */
static moep_status_t warm_up(nccl_ctx_t *c, double deadline, const char *fn) {
    int32_t R = c->world_size;
    uint8_t *buf = NULL;
    cudaStream_t s = NULL;
    cudaEvent_t done = NULL;
    size_t *v = calloc((size_t)R * 4, sizeof(size_t));
    if (v == NULL) return moep__fail(MOEP_ERR_NO_MEMORY, "%s: out of memory", fn);
    for (int32_t r = 0; r < R; r++) {
        v[r] = v[2 * R + r] = r != c->rank; /* bytes to / from r */
        v[R + r] = v[3 * R + r] = (size_t)r; /* offsets */
    }
    cudaError_t e = cudaMalloc((void **)&buf, (size_t)R * 2);
    if (e == cudaSuccess) e = cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking);
    if (e == cudaSuccess) e = cudaEventCreateWithFlags(&done, cudaEventDisableTiming);
    moep_status_t st = MOEP_OK;
    if (e != cudaSuccess) {
        abort_comm(c);
        st = moep__fail(MOEP_ERR_CUDA, "%s: warm-up buffers: %s", fn, cudaGetErrorString(e));
    }
    if (st == MOEP_OK) st = nccl_alltoallv(c, buf, v, v + R, buf + R, v + 2 * R, v + 3 * R, s);
    if (st == MOEP_OK) {
        e = cudaEventRecord(done, s);
        st = e == cudaSuccess ? wait_event(c, done, deadline, fn, "the warm-up exchange")
                              : moep__fail(MOEP_ERR_CUDA, "%s: cudaEventRecord: %s", fn,
                                           cudaGetErrorString(e));
    }
    if (done != NULL) cudaEventDestroy(done);
    if (s != NULL) cudaStreamDestroy(s);
    if (buf != NULL) cudaFree(buf);
    free(v);
    return st;
}

/* The gate (non-blocking, init polled to the deadline), then the data
 * comm (blocking) and its warm-up; the gate is aborted when done. */
static moep_status_t make_comms(nccl_ctx_t *c, const nccl_card_t *root, const char *fn) {
    double deadline = moep__now_ms() + c->timeout_ms;
    ncclConfig_t cfg = NCCL_CONFIG_INITIALIZER;
    cfg.blocking = 0;
    ncclResult_t r = ncclCommInitRankConfig(&c->gate, c->world_size, root->gate_id, c->rank, &cfg);
    moep_status_t st = nccl_status(r, fn, "ncclCommInitRankConfig (gate)");
    if (st == MOEP_OK) st = wait_ready(c, c->gate, deadline, fn, "ncclCommInitRankConfig (gate)");
    if (st == MOEP_OK) {
        ncclConfig_t data_cfg = NCCL_CONFIG_INITIALIZER;
        data_cfg.blocking = 1;
        r = ncclCommInitRankConfig(&c->comm, c->world_size, root->data_id, c->rank, &data_cfg);
        st = nccl_status(r, fn, "ncclCommInitRankConfig");
    }
    if (st == MOEP_OK) st = wait_ready(c, c->comm, deadline, fn, "ncclCommInitRankConfig");
    if (st == MOEP_OK) st = warm_up(c, deadline, fn);
    if (st != MOEP_OK) {
        abort_comm(c);
        return st;
    }
    abort_one(&c->gate); /* every rank is past its gate init: it is in the warm-up */
    return MOEP_OK;
}

static moep_status_t nccl_init(const moep_transport_init_args_t *args, void **tctx_p) {
    static const char *fn = "nccl init";
    MOEP_TRY(moep__init_args_check(fn, args, tctx_p, INT32_MAX));
    *tctx_p = NULL;
    int32_t R = args->world_size;
    nccl_card_t mine;
    memset(&mine, 0, sizeof mine);
    mine.status = local_setup(args, fn);
    mine.device = args->device_id;
    if (mine.status == MOEP_OK && args->rank == 0)
        mine.status = nccl_status(ncclGetUniqueId(&mine.gate_id), fn, "ncclGetUniqueId");
    if (mine.status == MOEP_OK && args->rank == 0)
        mine.status = nccl_status(ncclGetUniqueId(&mine.data_id), fn, "ncclGetUniqueId");
    nccl_card_t *cards = calloc((size_t)R, sizeof *cards);
    nccl_ctx_t *c = calloc(1, sizeof *c);
    if (cards == NULL || c == NULL) mine.status = MOEP_ERR_NO_MEMORY;
    /* everyone takes part in the allgather, failed or not */
    moep_status_t st = cards ? args->bootstrap->allgather(args->bootstrap->ctx, &mine, cards, sizeof mine)
                             : MOEP_ERR_NO_MEMORY;
    if (st != MOEP_OK) {
        st = moep__fail(st, "%s: bootstrap allgather of the unique id failed", fn);
    } else if (mine.status != MOEP_OK) {
        st = (moep_status_t)mine.status; /* message already recorded */
    } else {
        for (int32_t r = 0; r < R; r++)
            if (cards[r].status != MOEP_OK) {
                st = moep__fail(MOEP_ERR_REMOTE, "%s: rank %d could not set up NCCL (%s)", fn,
                                (int)r, moep_status_name((moep_status_t)cards[r].status));
                break;
            }
    }
    if (st == MOEP_OK) {
        c->rank = args->rank;
        c->world_size = R;
        c->device = args->device_id;
        c->timeout_ms = args->timeout_ms > 0 ? args->timeout_ms : moep__timeout_ms(0);
        st = make_comms(c, &cards[0], fn);
    }
    free(cards);
    if (st != MOEP_OK) {
        free(c);
        return st;
    }
    *tctx_p = c;
    return MOEP_OK;
}

static moep_status_t nccl_finalize(void *tctx) {
    nccl_ctx_t *c = tctx;
    if (c == NULL) return MOEP_OK;
    abort_comm(c); /* local: never waits for peers (ncclCommDestroy may) */
    free(c);
    return MOEP_OK;
}

static moep_status_t nccl_get_props(void *tctx, moep_transport_props_t *props) {
    nccl_ctx_t *c = tctx;
    MOEP_CHECK_ARG("nccl get_props", props);
    int v = 0;
    ncclGetVersion(&v);
    props->caps = MOEP_CAP_CUDA_MEM | MOEP_CAP_STREAM_ORDERED | MOEP_CAP_MULTI_PROCESS;
    snprintf(props->detail, sizeof props->detail, "nccl %d.%d.%d gpu %d", v / 10000, v / 100 % 100,
             v % 100, c ? (int)c->device : -1);
    return MOEP_OK;
}

/* NCCL has its own wire-up (init); the core's address exchange carries the rank only. */
static moep_status_t nccl_get_addr(void *tctx, void *addr, size_t *len) {
    nccl_ctx_t *c = tctx;
    MOEP_CHECK_ARG("nccl get_addr", c);
    MOEP_CHECK_ARG("nccl get_addr", addr);
    MOEP_CHECK_ARG("nccl get_addr", len);
    if (*len < sizeof(int32_t)) return moep__fail(MOEP_ERR_INVALID_ARG, "nccl get_addr: buffer too small");
    memcpy(addr, &c->rank, sizeof(int32_t));
    *len = sizeof(int32_t);
    return MOEP_OK;
}

static moep_status_t nccl_connect_all(void *tctx, const void *addrs, size_t addr_len) {
    MOEP_CHECK_ARG("nccl connect_all", tctx);
    MOEP_CHECK_ARG("nccl connect_all", addrs);
    (void)addr_len;
    return MOEP_OK;
}

static moep_status_t nccl_no_tagged(const char *op) {
    return moep__fail(MOEP_ERR_UNSUPPORTED, "nccl %s: no tagged host messages; use alltoallv", op);
}
static moep_status_t nccl_isend(void *tctx, int32_t peer, uint64_t tag, const void *buf, size_t len,
                                void *mr, void **req_p) {
    (void)tctx, (void)peer, (void)tag, (void)buf, (void)len, (void)mr, (void)req_p;
    return nccl_no_tagged("isend");
}
static moep_status_t nccl_irecv(void *tctx, int32_t peer, uint64_t tag, void *buf, size_t len,
                                void *mr, void **req_p) {
    (void)tctx, (void)peer, (void)tag, (void)buf, (void)len, (void)mr, (void)req_p;
    return nccl_no_tagged("irecv");
}
static moep_status_t nccl_test(void *tctx, void *req, int *done_p, size_t *len_p) {
    (void)tctx, (void)req, (void)done_p, (void)len_p;
    return nccl_no_tagged("test");
}

static moep_status_t nccl_cancel(void *tctx, void *req) {
    (void)req;
    MOEP_CHECK_ARG("nccl cancel", tctx);
    return abort_comm(tctx);
}

static moep_status_t nccl_progress(void *tctx) {
    nccl_ctx_t *c = tctx;
    MOEP_CHECK_ARG("nccl progress", c);
    if (c->aborted) return moep__fail(MOEP_ERR_INVALID_USAGE, "nccl: communicator was aborted");
    return async_state(c, c->comm, "nccl", "asynchronous error", NULL);
}

/* A failed NCCL call: abort now, or at group(0) when a group is open (the
 * group still holds the communicator). */
static moep_status_t op_failed(nccl_ctx_t *c, moep_status_t st) {
    if (c->group_depth > 0) c->abort_pending = 1;
    else abort_comm(c);
    return st;
}

/* Launch and return: a blocking comm's ncclGroupEnd only enqueues. The
 * async errors are read once, before a group of our own opens. */
static moep_status_t nccl_alltoallv(void *tctx, const void *send_buf, const size_t *send_bytes,
                                    const size_t *send_off, void *recv_buf, const size_t *recv_bytes,
                                    const size_t *recv_off, moep_stream_t stream) {
    static const char *fn = "nccl alltoallv";
    nccl_ctx_t *c = tctx;
    MOEP_CHECK_ARG(fn, c);
    if (c->aborted) return moep__fail(MOEP_ERR_INVALID_USAGE, "%s: communicator was aborted", fn);
    int own = c->group_depth == 0; /* else the ops join the caller's open group */
    if (own) MOEP_TRY(async_state(c, c->comm, fn, "asynchronous error", NULL));
    int32_t R = c->world_size, me = c->rank;
    cudaStream_t s = (cudaStream_t)stream;
    ncclResult_t r = own ? ncclGroupStart() : ncclSuccess;
    /* staggered peer order spreads the load, as the host path does */
    for (int32_t i = 0; i < R && (r == ncclSuccess || r == ncclInProgress); i++) {
        int32_t to = (me + i) % R, from = (me + R - i) % R;
        if (send_bytes[to] > 0)
            r = ncclSend((const uint8_t *)send_buf + send_off[to], send_bytes[to], ncclUint8, to,
                         c->comm, s);
        if ((r == ncclSuccess || r == ncclInProgress) && recv_bytes[from] > 0)
            r = ncclRecv((uint8_t *)recv_buf + recv_off[from], recv_bytes[from], ncclUint8, from,
                         c->comm, s);
    }
    ncclResult_t g = own ? ncclGroupEnd() : ncclSuccess;
    if (r == ncclSuccess || r == ncclInProgress) r = g;
    moep_status_t st = nccl_status(r, fn, "ncclSend/ncclRecv");
    if (st != MOEP_OK) return op_failed(c, st);
    if (r != ncclInProgress) return MOEP_OK;
    return wait_ready(c, c->comm, moep__now_ms() + c->timeout_ms, fn, "ncclGroupEnd");
}

static moep_status_t nccl_group(void *tctx, int begin) {
    static const char *fn = "nccl group";
    nccl_ctx_t *c = tctx;
    MOEP_CHECK_ARG(fn, c);
    if (begin) {
        if (c->aborted) return moep__fail(MOEP_ERR_INVALID_USAGE, "%s: communicator was aborted", fn);
        MOEP_TRY(async_state(c, c->comm, fn, "asynchronous error", NULL));
        MOEP_TRY(nccl_status(ncclGroupStart(), fn, "ncclGroupStart"));
        c->group_depth++;
        return MOEP_OK;
    }
    if (c->group_depth == 0)
        return moep__fail(MOEP_ERR_INVALID_USAGE, "%s: group end without a group begin", fn);
    c->group_depth--;
    /* closed even after a failed op: NCCL's group state is per thread */
    ncclResult_t r = ncclGroupEnd();
    moep_status_t st = nccl_status(r, fn, "ncclGroupEnd");
    if (st == MOEP_OK && c->abort_pending)
        st = moep__fail(MOEP_ERR_INVALID_USAGE, "%s: an op of this group failed; communicator aborted", fn);
    if (st != MOEP_OK) {
        c->abort_pending = 0;
        return op_failed(c, st);
    }
    if (r != ncclInProgress) return MOEP_OK;
    return wait_ready(c, c->comm, moep__now_ms() + c->timeout_ms, fn, "ncclGroupEnd");
}

const moep_transport_t moep__transport_nccl = {
    .name = "nccl",
    .version = 1,
    .size = sizeof(moep_transport_v1_t),
    .probe = nccl_probe,
    .init = nccl_init,
    .finalize = nccl_finalize,
    .get_props = nccl_get_props,
    .get_addr = nccl_get_addr,
    .connect_all = nccl_connect_all,
    .isend = nccl_isend,
    .irecv = nccl_irecv,
    .test = nccl_test,
    .cancel = nccl_cancel,
    .progress = nccl_progress,
    .alltoallv = nccl_alltoallv,
    .group = nccl_group,
};
