/*
 * The `nccl` transport (CUDA build): one process per GPU, device buffers,
 * stream-ordered all-to-all-v (the vtable's alltoallv op) over ncclSend /
 * ncclRecv. init makes the communicator from the caller's bootstrap: rank 0
 * creates the ncclUniqueId and every rank allgathers it.
 *
 * The communicator is non-blocking (ncclConfig_t.blocking = 0): every NCCL
 * call is followed by a poll of ncclCommGetAsyncError bounded by the comm's
 * timeout, so a dead peer gives MOEP_ERR_TIMEOUT and ncclCommAbort, never a
 * hang. progress() reports NCCL's asynchronous errors; cancel() (any request,
 * or NULL) aborts the communicator, after which every op fails.
 * Tagged host messages (isend/irecv) are not offered: MOEP_ERR_UNSUPPORTED.
 */
#include <cuda_runtime.h>
#include <nccl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "transport_util.h"

typedef struct nccl_ctx {
    ncclComm_t comm;
    int32_t rank, world_size, device, timeout_ms;
    int aborted;
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

static moep_status_t abort_comm(nccl_ctx_t *c) {
    if (!c->aborted && c->comm != NULL) ncclCommAbort(c->comm);
    c->aborted = 1;
    return MOEP_OK;
}

/* Wait until the last non-blocking NCCL call has finished, or the deadline. */
static moep_status_t wait_ready(nccl_ctx_t *c, const char *fn, const char *what) {
    double deadline = moep__now_ms() + c->timeout_ms;
    for (;;) {
        ncclResult_t state = ncclSuccess;
        ncclResult_t r = ncclCommGetAsyncError(c->comm, &state);
        if (r != ncclSuccess) return nccl_status(r, fn, what);
        if (state != ncclInProgress) {
            moep_status_t st = nccl_status(state, fn, what);
            if (st != MOEP_OK) abort_comm(c);
            return st;
        }
        if (moep__now_ms() > deadline) {
            abort_comm(c);
            return moep__fail(MOEP_ERR_TIMEOUT, "%s: %s timed out after %d ms (a peer is dead or "
                              "stalled); communicator aborted", fn, what, (int)c->timeout_ms);
        }
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
    ncclUniqueId id; /* rank 0's is used */
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
        mine.status = nccl_status(ncclGetUniqueId(&mine.id), fn, "ncclGetUniqueId");
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
        ncclConfig_t cfg = NCCL_CONFIG_INITIALIZER;
        cfg.blocking = 0;
        ncclResult_t r = ncclCommInitRankConfig(&c->comm, R, cards[0].id, args->rank, &cfg);
        st = nccl_status(r, fn, "ncclCommInitRankConfig");
        if (st == MOEP_OK) st = wait_ready(c, fn, "ncclCommInitRankConfig");
        else if (c->comm != NULL) abort_comm(c);
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
    ncclResult_t state = ncclSuccess;
    ncclResult_t r = ncclCommGetAsyncError(c->comm, &state);
    if (r == ncclSuccess) r = state;
    moep_status_t st = nccl_status(r, "nccl", "asynchronous error");
    if (st != MOEP_OK) abort_comm(c);
    return st;
}

static moep_status_t nccl_alltoallv(void *tctx, const void *send_buf, const size_t *send_bytes,
                                    const size_t *send_off, void *recv_buf, const size_t *recv_bytes,
                                    const size_t *recv_off, moep_stream_t stream) {
    static const char *fn = "nccl alltoallv";
    nccl_ctx_t *c = tctx;
    MOEP_CHECK_ARG(fn, c);
    if (c->aborted) return moep__fail(MOEP_ERR_INVALID_USAGE, "%s: communicator was aborted", fn);
    int32_t R = c->world_size, me = c->rank;
    cudaStream_t s = (cudaStream_t)stream;
    ncclResult_t r = ncclGroupStart();
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
    ncclResult_t g = ncclGroupEnd();
    if (r == ncclSuccess || r == ncclInProgress) r = g;
    moep_status_t st = nccl_status(r, fn, "ncclSend/ncclRecv");
    if (st != MOEP_OK) {
        abort_comm(c);
        return st;
    }
    return r == ncclInProgress ? wait_ready(c, fn, "ncclGroupEnd") : MOEP_OK;
}

static moep_status_t nccl_group(void *tctx, int begin) {
    static const char *fn = "nccl group";
    nccl_ctx_t *c = tctx;
    MOEP_CHECK_ARG(fn, c);
    if (c->aborted) return moep__fail(MOEP_ERR_INVALID_USAGE, "%s: communicator was aborted", fn);
    ncclResult_t r = begin ? ncclGroupStart() : ncclGroupEnd();
    moep_status_t st = nccl_status(r, fn, begin ? "ncclGroupStart" : "ncclGroupEnd");
    if (st != MOEP_OK) {
        abort_comm(c);
        return st;
    }
    return r == ncclInProgress ? wait_ready(c, fn, "ncclGroupEnd") : MOEP_OK;
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
