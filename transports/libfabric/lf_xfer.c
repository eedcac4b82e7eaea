/*
 * libfabric data path: fi_tsend / fi_trecv on (user_tag << 16) | src_rank
 * with no ignore bits and FI_ADDR_UNSPEC sources (so FI_DIRECTED_RECV is
 * not needed), completions read from the tagged CQ.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lf_internal.h"

static lf_req_t *req_new(lf_ctx_t *ctx, int is_send, int32_t peer) {
    lf_req_t *r = calloc(1, sizeof *r);
    if (r == NULL) return NULL;
    r->is_send = is_send;
    r->peer = peer;
    r->next = ctx->live;
    if (ctx->live != NULL) ctx->live->prev = r;
    ctx->live = r;
    return r;
}

void lf_req_free(lf_ctx_t *ctx, lf_req_t *r) {
    if (r->prev != NULL)
        r->prev->next = r->next;
    else
        ctx->live = r->next;
    if (r->next != NULL) r->next->prev = r->prev;
    free(r);
}

static void complete(lf_ctx_t *ctx, lf_req_t *r, moep_status_t st, size_t len) {
    if (r->orphan) {
        lf_req_free(ctx, r);
        return;
    }
    r->done = 1;
    r->status = st;
    r->len = len;
}

static void complete_error(lf_ctx_t *ctx) {
    struct fi_cq_err_entry e;
    memset(&e, 0, sizeof e);
    if (fi_cq_readerr(ctx->cq, &e, 0) != 1 || e.op_context == NULL) return;
    lf_req_t *r = e.op_context;
    if (r->orphan) { /* typically FI_ECANCELED for a request we gave up on */
        lf_req_free(ctx, r);
        return;
    }
    moep_status_t st = lf_status(-e.err, "completion");
    if (e.err == FI_ETRUNC)
        snprintf(r->why, sizeof r->why, "message truncated: %zu bytes did not fit", e.olen);
    else
        snprintf(r->why, sizeof r->why, "%s (%s)", fi_strerror(e.err),
                 fi_cq_strerror(ctx->cq, e.prov_errno, e.err_data, NULL, 0));
    complete(ctx, r, st, 0);
}

moep_status_t lf_poll(lf_ctx_t *ctx) {
    struct fi_cq_tagged_entry ent[16];
    for (int rounds = 0; rounds < 64; rounds++) {
        ssize_t n = fi_cq_read(ctx->cq, ent, 16);
        if (n == -FI_EAGAIN) return MOEP_OK;
        if (n == -FI_EAVAIL) {
            complete_error(ctx);
            continue;
        }
        if (n < 0) return lf_status((int)n, "progress: fi_cq_read");
        for (ssize_t i = 0; i < n; i++)
            if (ent[i].op_context != NULL) complete(ctx, ent[i].op_context, MOEP_OK, ent[i].len);
    }
    return MOEP_OK;
}

/* Hand r to the provider: 0, -FI_EAGAIN or another error. */
static ssize_t submit(lf_ctx_t *ctx, lf_req_t *r) {
    ssize_t rc = r->is_send ? fi_tsend(ctx->ep, r->buf, r->len, NULL, ctx->addrs[r->peer],
                                       r->wire_tag, &r->fctx)
                            : fi_trecv(ctx->ep, r->buf, r->len, NULL, FI_ADDR_UNSPEC, r->wire_tag,
                                       0, &r->fctx);
    if (rc == 0) r->posted = 1;
    return rc;
}

static moep_status_t submit_failed(lf_req_t *r, ssize_t rc) {
    char what[48];
    snprintf(what, sizeof what, "%s rank %d", r->is_send ? "send to" : "receive from",
             (int)r->peer);
    return lf_status((int)rc, what);
}

/* Retry the backlog in order until the provider pushes back again. A post
 * that fails for good completes its request with the error. */
static void drain_backlog(lf_ctx_t *ctx) {
    lf_req_t *r;
    while ((r = ctx->backlog_head) != NULL) {
        ssize_t rc = submit(ctx, r);
        if (rc == -FI_EAGAIN) return;
        ctx->backlog_head = r->bnext;
        if (ctx->backlog_head == NULL) ctx->backlog_tail = NULL;
        r->bnext = NULL;
        if (rc != 0) {
            moep_status_t st = submit_failed(r, rc);
            snprintf(r->why, sizeof r->why, "%s", moep_last_error());
            r->posted = 1; /* not in the backlog any more */
            complete(ctx, r, st, 0);
        }
    }
}

static void backlog_remove(lf_ctx_t *ctx, lf_req_t *r) {
    lf_req_t **pp = &ctx->backlog_head, *prev = NULL;
    while (*pp != NULL && *pp != r) {
        prev = *pp;
        pp = &(*pp)->bnext;
    }
    if (*pp == NULL) return;
    *pp = r->bnext;
    if (ctx->backlog_tail == r) ctx->backlog_tail = prev;
}

static moep_status_t post(lf_ctx_t *ctx, int is_send, int32_t peer, uint64_t tag, void *buf,
                          size_t len, void **req_p) {
    const char *op = is_send ? "isend" : "irecv";
    *req_p = NULL;
    if (ctx->ep == NULL)
        return moep__fail(MOEP_ERR_INVALID_USAGE, "libfabric %s: not connected", op);
    lf_req_t *r = req_new(ctx, is_send, peer);
    if (r == NULL) return moep__fail(MOEP_ERR_NO_MEMORY, "libfabric %s: out of memory", op);
    static char empty;
    r->buf = buf != NULL ? buf : &empty; /* zero-length message */
    r->len = len;
    r->wire_tag = moep__tag_pack(tag, is_send ? ctx->rank : peer);
    if (ctx->backlog_head == NULL) {
        ssize_t rc = submit(ctx, r);
        if (rc != 0 && rc != -FI_EAGAIN) {
            moep_status_t st = submit_failed(r, rc);
            lf_req_free(ctx, r);
            return st;
        }
        if (rc == 0) {
            *req_p = r;
            return MOEP_OK;
        }
    }
    if (ctx->backlog_tail != NULL)
        ctx->backlog_tail->bnext = r;
    else
        ctx->backlog_head = r;
    ctx->backlog_tail = r;
    *req_p = r;
    return MOEP_OK;
}

moep_status_t lf_isend(void *tctx, int32_t peer, uint64_t tag, const void *buf, size_t len,
                       void *mr, void **req_p) {
    (void)mr;
    lf_ctx_t *ctx = tctx;
    MOEP_TRY(moep__xfer_check("libfabric isend", tctx, peer, ctx ? ctx->world_size : 0, tag, buf,
                              len, req_p));
    return post(ctx, 1, peer, tag, (void *)buf, len, req_p);
}

moep_status_t lf_irecv(void *tctx, int32_t peer, uint64_t tag, void *buf, size_t len, void *mr,
                       void **req_p) {
    (void)mr;
    lf_ctx_t *ctx = tctx;
    MOEP_TRY(moep__xfer_check("libfabric irecv", tctx, peer, ctx ? ctx->world_size : 0, tag, buf,
                              len, req_p));
    return post(ctx, 0, peer, tag, buf, len, req_p);
}

moep_status_t lf_test(void *tctx, void *req, int *done_p, size_t *len_p) {
    MOEP_CHECK_ARG("libfabric test", tctx);
    MOEP_CHECK_ARG("libfabric test", req);
    MOEP_CHECK_ARG("libfabric test", done_p);
    lf_req_t *r = req;
    *done_p = 0;
    if (!r->done) return MOEP_OK;
    moep_status_t st = r->status;
    if (st != MOEP_OK)
        moep__fail(st, "libfabric %s rank %d: %s", r->is_send ? "send to" : "receive from",
                   (int)r->peer, r->why);
    else {
        *done_p = 1;
        if (len_p != NULL) *len_p = r->is_send ? 0 : r->len;
    }
    lf_req_free(tctx, r);
    return st;
}

moep_status_t lf_cancel(void *tctx, void *req) {
    MOEP_CHECK_ARG("libfabric cancel", tctx);
    MOEP_CHECK_ARG("libfabric cancel", req);
    lf_ctx_t *ctx = tctx;
    lf_req_t *r = req;
    if (r->done || !r->posted) {
        if (!r->posted) backlog_remove(ctx, r);
        lf_req_free(ctx, r);
        return MOEP_OK;
    }
    /* The provider still owns the context until it reports the request
     * (usually with FI_ECANCELED): free it then, or at finalize. */
    r->orphan = 1;
    fi_cancel(&ctx->ep->fid, &r->fctx);
    return MOEP_OK;
}

moep_status_t lf_progress(void *tctx) {
    MOEP_CHECK_ARG("libfabric progress", tctx);
    moep_status_t st = lf_poll(tctx);
    drain_backlog(tctx);
    return st;
}
