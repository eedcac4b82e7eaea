/*
 * The `local` transport: ranks are threads of one process. init allgathers
 * each rank's mailbox pointer and pid over the bootstrap; data moves with one
 * memcpy from the sender's buffer into the receiver's, under the receiver's
 * mailbox lock. Nothing blocks: test() only looks at a flag.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "local_mailbox.h"
#include "transport_util.h"

typedef struct local_ctx {
    int32_t rank, world_size;
    local_mailbox_t **boxes; /* [world_size], one reference held on each */
    local_req_t *live;       /* requests not yet freed by test/cancel */
} local_ctx_t;

/* What each rank publishes in init. */
typedef struct local_card {
    uint64_t box; /* local_mailbox_t *, 0 if this rank failed to create it */
    int64_t pid;
} local_card_t;

static moep_status_t local_probe(char *why, size_t why_len) {
    moep__why(why, why_len, "ranks as threads of one process");
    return MOEP_OK;
}

static moep_status_t local_init(const moep_transport_init_args_t *args, void **tctx_p) {
    static const char *fn = "local init";
    MOEP_TRY(moep__init_args_check(fn, args, tctx_p, INT32_MAX));
    *tctx_p = NULL;
    int32_t world = args->world_size;
    local_ctx_t *ctx = calloc(1, sizeof *ctx);
    local_card_t *cards = calloc((size_t)world, sizeof *cards);
    local_mailbox_t *mine = local_mailbox_create(world, world);
    if (ctx != NULL) ctx->boxes = calloc((size_t)world, sizeof *ctx->boxes);
    /* Take part in the allgather even after a failed allocation, so the
     * other ranks see the failure instead of waiting for us. */
    local_card_t card = {ctx && ctx->boxes && cards ? (uint64_t)(uintptr_t)mine : 0,
                         (int64_t)getpid()};
    moep_status_t st = MOEP_OK;
    if (cards == NULL) {
        st = moep__fail(MOEP_ERR_NO_MEMORY, "%s: out of memory", fn);
        goto fail;
    }
    st = args->bootstrap->allgather(args->bootstrap->ctx, &card, cards, sizeof card);
    if (st != MOEP_OK) {
        /* Some peers may hold our mailbox now: leak it rather than risk a
         * use after free. This only happens when the bootstrap broke. */
        mine = NULL;
        st = moep__fail(st, "%s: bootstrap allgather failed", fn);
        goto fail;
    }
    for (int32_t r = 0; r < world; r++) {
        if (cards[r].pid != cards[0].pid) {
            st = moep__fail(MOEP_ERR_UNSUPPORTED,
                            "%s: ranks 0 and %d are different processes (pid %lld, %lld); "
                            "local needs every rank in one process",
                            fn, (int)r, (long long)cards[0].pid, (long long)cards[r].pid);
            goto fail;
        }
        if (cards[r].box == 0) {
            st = moep__fail(MOEP_ERR_NO_MEMORY, "%s: rank %d ran out of memory", fn, (int)r);
            goto fail;
        }
    }
    ctx->rank = args->rank;
    ctx->world_size = world;
    for (int32_t r = 0; r < world; r++) ctx->boxes[r] = (local_mailbox_t *)(uintptr_t)cards[r].box;
    free(cards);
    *tctx_p = ctx;
    return MOEP_OK;
fail:
    /* Every rank saw the same cards and failed too, so nobody uses `mine`. */
    if (mine != NULL) {
        atomic_store(&mine->refs, 1);
        local_mailbox_unref(mine);
    }
    if (ctx != NULL) free(ctx->boxes);
    free(ctx);
    free(cards);
    return st;
}

static void live_remove(local_ctx_t *ctx, local_req_t *q) {
    if (q->lprev != NULL)
        q->lprev->lnext = q->lnext;
    else
        ctx->live = q->lnext;
    if (q->lnext != NULL) q->lnext->lprev = q->lprev;
}

/* Withdraw q from its mailbox if still queued, then free it. */
static void drop_req(local_ctx_t *ctx, local_req_t *q) {
    if (!atomic_load_explicit(&q->done, memory_order_acquire))
        local_mailbox_withdraw(ctx->boxes[q->is_send ? q->peer : ctx->rank], q);
    live_remove(ctx, q);
    free(q);
}

static moep_status_t local_finalize(void *tctx) {
    MOEP_CHECK_ARG("local finalize", tctx);
    local_ctx_t *ctx = tctx;
    while (ctx->live != NULL) drop_req(ctx, ctx->live);
    for (int32_t r = 0; r < ctx->world_size; r++)
        if (r != ctx->rank) local_mailbox_peer_closed(ctx->boxes[r], ctx->rank);
    local_mailbox_close(ctx->boxes[ctx->rank], ctx->rank);
    for (int32_t r = 0; r < ctx->world_size; r++) local_mailbox_unref(ctx->boxes[r]);
    free(ctx->boxes);
    free(ctx);
    return MOEP_OK;
}

static moep_status_t local_get_props(void *tctx, moep_transport_props_t *props) {
    MOEP_CHECK_ARG("local get_props", tctx);
    MOEP_CHECK_ARG("local get_props", props);
    props->caps = MOEP_CAP_HOST_MEM | MOEP_CAP_TAGGED | MOEP_CAP_SINGLE_COPY; /* one memcpy */
    snprintf(props->detail, sizeof props->detail, "threads of pid %ld", (long)getpid());
    return MOEP_OK;
}

/* The mailbox pointers came through init's bootstrap: no address needed. */
static moep_status_t local_get_addr(void *tctx, void *addr, size_t *len) {
    MOEP_CHECK_ARG("local get_addr", tctx);
    MOEP_CHECK_ARG("local get_addr", addr);
    MOEP_CHECK_ARG("local get_addr", len);
    *len = 0;
    return MOEP_OK;
}

static moep_status_t local_connect_all(void *tctx, const void *addrs, size_t addr_len) {
    (void)addr_len;
    MOEP_CHECK_ARG("local connect_all", tctx);
    MOEP_CHECK_ARG("local connect_all", addrs);
    return MOEP_OK;
}

static moep_status_t post(local_ctx_t *ctx, int is_send, int32_t peer, uint64_t tag, void *buf,
                          size_t len, void **req_p) {
    local_req_t *q = calloc(1, sizeof *q);
    if (q == NULL)
        return moep__fail(MOEP_ERR_NO_MEMORY, "local %s: out of memory", is_send ? "isend" : "irecv");
    q->is_send = is_send;
    q->peer = peer;
    q->src = is_send ? ctx->rank : peer;
    q->tag = tag;
    q->buf = buf;
    q->len = len;
    atomic_init(&q->done, 0);
    q->lnext = ctx->live;
    if (ctx->live != NULL) ctx->live->lprev = q;
    ctx->live = q;
    if (is_send)
        local_mailbox_send(ctx->boxes[peer], q);
    else
        local_mailbox_recv(ctx->boxes[ctx->rank], q);
    *req_p = q;
    return MOEP_OK;
}

static moep_status_t local_isend(void *tctx, int32_t peer, uint64_t tag, const void *buf,
                                 size_t len, void *mr, void **req_p) {
    (void)mr;
    local_ctx_t *ctx = tctx;
    MOEP_TRY(moep__xfer_check("local isend", tctx, peer, ctx ? ctx->world_size : 0, tag, buf, len,
                              req_p));
    return post(ctx, 1, peer, tag, (void *)buf, len, req_p);
}

static moep_status_t local_irecv(void *tctx, int32_t peer, uint64_t tag, void *buf, size_t len,
                                 void *mr, void **req_p) {
    (void)mr;
    local_ctx_t *ctx = tctx;
    MOEP_TRY(moep__xfer_check("local irecv", tctx, peer, ctx ? ctx->world_size : 0, tag, buf, len,
                              req_p));
    return post(ctx, 0, peer, tag, buf, len, req_p);
}

static moep_status_t local_test(void *tctx, void *req, int *done_p, size_t *len_p) {
    MOEP_CHECK_ARG("local test", tctx);
    MOEP_CHECK_ARG("local test", req);
    MOEP_CHECK_ARG("local test", done_p);
    local_req_t *q = req;
    *done_p = 0;
    if (!atomic_load_explicit(&q->done, memory_order_acquire)) return MOEP_OK;
    moep_status_t st = q->status;
    if (st != MOEP_OK)
        moep__fail(st, "local %s %s rank %d: %s", q->is_send ? "send" : "receive",
                   q->is_send ? "to" : "from", (int)q->peer, q->why);
    else {
        *done_p = 1;
        if (len_p != NULL) *len_p = q->is_send ? 0 : q->got;
    }
    live_remove(tctx, q);
    free(q);
    return st;
}

static moep_status_t local_cancel(void *tctx, void *req) {
    MOEP_CHECK_ARG("local cancel", tctx);
    MOEP_CHECK_ARG("local cancel", req);
    drop_req(tctx, req);
    return MOEP_OK;
}

static moep_status_t local_progress(void *tctx) {
    MOEP_CHECK_ARG("local progress", tctx);
    return MOEP_OK; /* the peer thread does the copy */
}

const moep_transport_t moep__transport_local = {
    .name = "local",
    .version = 1,
    .size = sizeof(moep_transport_v1_t),
    .probe = local_probe,
    .init = local_init,
    .finalize = local_finalize,
    .get_props = local_get_props,
    .get_addr = local_get_addr,
    .connect_all = local_connect_all,
    .reg_mr = NULL,
    .dereg_mr = NULL,
    .isend = local_isend,
    .irecv = local_irecv,
    .test = local_test,
    .cancel = local_cancel,
    .progress = local_progress,
};
