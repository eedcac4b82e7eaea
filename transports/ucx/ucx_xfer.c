/*
 * UCX data path: ucp_tag_send_nbx / ucp_tag_recv_nbx with the full tag mask
 * on (user_tag << 16) | src_rank, completion flags in the request space.
 */
#include <stdio.h>

#include "ucx_internal.h"

static moep_status_t peer_gone(const ucx_ctx_t *ctx, int32_t peer, const char *op) {
    return moep__fail(MOEP_ERR_REMOTE, "ucx %s: rank %d failed earlier: %s", op, (int)peer,
                      ucs_status_string(ctx->peers[peer].failed));
}

/* Label a request UCX returned. Completion is read back with
 * ucp_request_check_status / ucp_tag_recv_request_test rather than flags
 * set by callbacks: UCX may complete a request before *_nbx returns, and
 * recycles requests without clearing their user space. */
static void *track(ucs_status_ptr_t sp, int is_send, int32_t peer) {
    ucx_req_t *r = sp;
    r->is_send = is_send;
    r->peer = peer;
    r->length = 0;
    r->flush = NULL;
    return r;
}

moep_status_t ucx_isend(void *tctx, int32_t peer, uint64_t tag, const void *buf, size_t len,
                        void *mr, void **req_p) {
    (void)mr;
    ucx_ctx_t *ctx = tctx;
    MOEP_TRY(moep__xfer_check("ucx isend", tctx, peer, ctx ? ctx->world_size : 0, tag, buf, len,
                              req_p));
    *req_p = NULL;
    if (ctx->peers[peer].ep == NULL)
        return moep__fail(MOEP_ERR_INVALID_USAGE, "ucx isend: not connected");
    if (ctx->peers[peer].failed != UCS_OK) return peer_gone(ctx, peer, "isend");
    ucp_request_param_t p = {.op_attr_mask = 0};
    ucs_status_ptr_t sp =
        ucp_tag_send_nbx(ctx->peers[peer].ep, buf, len, moep__tag_pack(tag, ctx->rank), &p);
    if (sp == NULL) return MOEP_OK; /* completed in place */
    if (UCS_PTR_IS_ERR(sp)) {
        char what[48];
        snprintf(what, sizeof what, "isend to rank %d", (int)peer);
        return ucx_status(UCS_PTR_STATUS(sp), what);
    }
    *req_p = track(sp, 1, peer);
    return MOEP_OK;
}

moep_status_t ucx_irecv(void *tctx, int32_t peer, uint64_t tag, void *buf, size_t len, void *mr,
                        void **req_p) {
    (void)mr;
    ucx_ctx_t *ctx = tctx;
    MOEP_TRY(moep__xfer_check("ucx irecv", tctx, peer, ctx ? ctx->world_size : 0, tag, buf, len,
                              req_p));
    *req_p = NULL;
    if (ctx->peers[peer].failed != UCS_OK) return peer_gone(ctx, peer, "irecv");
    /* NO_IMM_CMPL: always a request, so test() reports the received length. */
    ucp_request_param_t p = {.op_attr_mask = UCP_OP_ATTR_FLAG_NO_IMM_CMPL};
    ucs_status_ptr_t sp =
        ucp_tag_recv_nbx(ctx->worker, buf, len, moep__tag_pack(tag, peer), UINT64_MAX, &p);
    if (UCS_PTR_IS_ERR(sp)) {
        char what[48];
        snprintf(what, sizeof what, "irecv from rank %d", (int)peer);
        return ucx_status(UCS_PTR_STATUS(sp), what);
    }
    if (sp == NULL) return moep__fail(MOEP_ERR_INTERNAL, "ucx irecv: no request returned");
    *req_p = track(sp, 0, peer);
    return MOEP_OK;
}

moep_status_t ucx_cancel(void *tctx, void *req) {
    MOEP_CHECK_ARG("ucx cancel", tctx);
    MOEP_CHECK_ARG("ucx cancel", req);
    ucx_ctx_t *ctx = tctx;
    ucx_req_t *r = req;
    if (r->flush != NULL) ucp_request_free(r->flush); /* released once complete */
    if (ucp_request_check_status(req) == UCS_INPROGRESS) ucp_request_cancel(ctx->worker, req);
    ucp_request_free(req); /* UCX releases it when the cancellation completes */
    return MOEP_OK;
}

/* Free a finished request and report how it went. */
static moep_status_t finish(void *req, ucs_status_t s, size_t len, int *done_p, size_t *len_p) {
    ucx_req_t *r = req;
    int32_t peer = r->peer;
    int is_send = r->is_send;
    ucp_request_free(req);
    if (s != UCS_OK) {
        char what[48];
        snprintf(what, sizeof what, "%s rank %d", is_send ? "send to" : "receive from", (int)peer);
        return ucx_status(s, what);
    }
    *done_p = 1;
    if (len_p != NULL) *len_p = len;
    return MOEP_OK;
}

/*
 * A receive from a peer behind a shared-memory FIFO is done once the
 * rendezvous acknowledgement it owes the sender has left as well. When the
 * sender's FIFO (64 entries) is full, the acknowledgement waits in this
 * rank's pending queue; without the flush the receive completes, this rank
 * leaves the collective (say for an MPI barrier) and the sender's send waits
 * until this rank next drives UCX: a deadlock, seen with a cached dispatch
 * of many run messages. Flushing the endpoint pushes the pending queue out
 * first (usually it is empty and the flush completes at once). Not done over
 * TCP, where the kernel buffers the acknowledgement and a flush to a peer
 * that has already finished fails its endpoint.
 */
static moep_status_t recv_test(ucx_ctx_t *ctx, ucx_req_t *r, int *done_p, size_t *len_p) {
    if (r->flush != NULL) {
        ucs_status_t fs = ucp_request_check_status(r->flush);
        if (fs == UCS_INPROGRESS) return MOEP_OK;
        ucp_request_free(r->flush);
        r->flush = NULL;
        (void)fs; /* the data is here; a failed flush means that peer is gone */
        return finish(r, UCS_OK, r->length, done_p, len_p);
    }
    ucp_tag_recv_info_t info = {0, 0};
    ucs_status_t s = ucp_tag_recv_request_test(r, &info);
    if (s == UCS_INPROGRESS) {
        /* A receive is not tied to an endpoint, so a dead sender never fails
         * it: check the error handler's verdict ourselves. */
        if (ctx->peers[r->peer].failed != UCS_OK) {
            int32_t peer = r->peer;
            ucx_cancel(ctx, r);
            return peer_gone(ctx, peer, "receive");
        }
        return MOEP_OK;
    }
    if (s != UCS_OK) return finish(r, s, 0, done_p, len_p);
    if (!ctx->peers[r->peer].shm_fifo) return finish(r, UCS_OK, info.length, done_p, len_p);
    ucp_request_param_t p = {.op_attr_mask = 0};
    ucs_status_ptr_t f = ucp_ep_flush_nbx(ctx->peers[r->peer].ep, &p);
    if (f == NULL) return finish(r, UCS_OK, info.length, done_p, len_p);
    if (UCS_PTR_IS_ERR(f)) return finish(r, UCS_OK, info.length, done_p, len_p); /* as above */
    r->length = info.length;
    r->flush = f;
    return MOEP_OK;
}

moep_status_t ucx_test(void *tctx, void *req, int *done_p, size_t *len_p) {
    MOEP_CHECK_ARG("ucx test", tctx);
    MOEP_CHECK_ARG("ucx test", req);
    MOEP_CHECK_ARG("ucx test", done_p);
    ucx_ctx_t *ctx = tctx;
    ucx_req_t *r = req;
    *done_p = 0;
    if (!r->is_send) return recv_test(ctx, r, done_p, len_p);
    ucs_status_t s = ucp_request_check_status(req);
    if (s == UCS_INPROGRESS) return MOEP_OK;
    return finish(req, s, 0, done_p, len_p);
}

moep_status_t ucx_progress(void *tctx) {
    MOEP_CHECK_ARG("ucx progress", tctx);
    ucx_ctx_t *ctx = tctx;
    while (ucp_worker_progress(ctx->worker) != 0) {
    }
    return MOEP_OK;
}
