/*
 * UCX transport lifecycle and wire-up: one ucp context + worker per rank
 * (UCS_THREAD_MODE_SINGLE), endpoints to every rank (itself included) with
 * peer error handling, so a dead peer fails its requests instead of hanging.
 * UCX reads its own environment (UCX_TLS, UCX_NET_DEVICES...).
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ucx_internal.h"

/* How long finalize drives progress for flushes and closes. */
#define UCX_CLOSE_MS 1000.0

static ucs_status_t make_context(ucp_context_h *context_p) {
    ucp_config_t *config;
    ucs_status_t s = ucp_config_read(NULL, NULL, &config);
    if (s != UCS_OK) return s;
    ucp_params_t p = {
        .field_mask = UCP_PARAM_FIELD_FEATURES | UCP_PARAM_FIELD_REQUEST_SIZE,
        .features = UCP_FEATURE_TAG,
        .request_size = sizeof(ucx_req_t),
    };
    s = ucp_init(&p, config, context_p);
    ucp_config_release(config);
    return s;
}

/* A context with the tag feature can be made: some transport is usable. */
static moep_status_t ucx_probe(char *why, size_t why_len) {
    ucp_context_h context;
    ucs_status_t s = make_context(&context);
    if (s != UCS_OK) {
        moep__why(why, why_len, "ucp_init: %s", ucs_status_string(s));
        return MOEP_ERR_UNSUPPORTED;
    }
    ucp_cleanup(context);
    const char *tls = getenv("UCX_TLS");
    moep__why(why, why_len, "ucx %s, UCX_TLS=%s", ucp_get_version_string(), tls ? tls : "(all)");
    return MOEP_OK;
}

static moep_status_t ucx_finalize(void *tctx);

static moep_status_t ucx_init(const moep_transport_init_args_t *args, void **tctx_p) {
    MOEP_TRY(moep__init_args_check("ucx init", args, tctx_p, MOEP__TAG_MAX_RANKS));
    *tctx_p = NULL;
    ucx_ctx_t *ctx = calloc(1, sizeof *ctx);
    if (ctx != NULL) ctx->peers = calloc((size_t)args->world_size, sizeof *ctx->peers);
    if (ctx == NULL || ctx->peers == NULL) {
        free(ctx);
        return moep__fail(MOEP_ERR_NO_MEMORY, "ucx init: out of memory");
    }
    ctx->rank = args->rank;
    ctx->world_size = args->world_size;
    const char *tls = getenv("UCX_TLS");
    snprintf(ctx->tls, sizeof ctx->tls, "%s", tls ? tls : "all");
    ucs_status_t s = make_context(&ctx->context);
    moep_status_t st;
    if (s != UCS_OK) {
        st = ucx_status(s, "init: ucp_init");
        goto fail;
    }
    ucp_worker_params_t wp = {.field_mask = UCP_WORKER_PARAM_FIELD_THREAD_MODE,
                              .thread_mode = UCS_THREAD_MODE_SINGLE};
    s = ucp_worker_create(ctx->context, &wp, &ctx->worker);
    if (s != UCS_OK) {
        st = ucx_status(s, "init: ucp_worker_create");
        goto fail;
    }
    *tctx_p = ctx;
    return MOEP_OK;
fail:
    ucx_finalize(ctx);
    return st;
}

/* Connected, and every other rank behind a shared-memory FIFO (UCX then
 * moves large messages by CMA rendezvous, one copy). */
static int all_peers_shm(const ucx_ctx_t *ctx) {
    for (int32_t r = 0; r < ctx->world_size; r++)
        if (r != ctx->rank && (ctx->peers[r].ep == NULL || !ctx->peers[r].shm_fifo)) return 0;
    return 1;
}

static moep_status_t ucx_get_props(void *tctx, moep_transport_props_t *props) {
    MOEP_CHECK_ARG("ucx get_props", tctx);
    MOEP_CHECK_ARG("ucx get_props", props);
    ucx_ctx_t *ctx = tctx;
    props->caps = MOEP_CAP_HOST_MEM | MOEP_CAP_TAGGED | MOEP_CAP_MULTI_PROCESS;
    if (all_peers_shm(ctx)) props->caps |= MOEP_CAP_SINGLE_COPY;
    snprintf(props->detail, sizeof props->detail, "ucx %s tls=%s", ucp_get_version_string(),
             ctx->tls);
    return MOEP_OK;
}

static moep_status_t ucx_get_addr(void *tctx, void *addr, size_t *len) {
    MOEP_CHECK_ARG("ucx get_addr", tctx);
    MOEP_CHECK_ARG("ucx get_addr", addr);
    MOEP_CHECK_ARG("ucx get_addr", len);
    ucx_ctx_t *ctx = tctx;
    ucp_address_t *a;
    size_t n;
    ucs_status_t s = ucp_worker_get_address(ctx->worker, &a, &n);
    if (s != UCS_OK) return ucx_status(s, "get_addr: ucp_worker_get_address");
    moep_status_t st = MOEP_OK;
    if (n > *len)
        st = moep__fail(MOEP_ERR_INVALID_ARG, "ucx get_addr: address of %zu bytes > capacity %zu",
                        n, *len);
    else
        memcpy(addr, a, n);
    *len = n;
    ucp_worker_release_address(ctx->worker, a);
    return st;
}

static void on_peer_error(void *arg, ucp_ep_h ep, ucs_status_t status) {
    (void)ep;
    ucx_peer_t *p = arg;
    p->failed = status;
    MOEP_LOG_AT(MOEP_LOG_INFO, "ucx: rank %d lost rank %d: %s", (int)p->ctx->rank, (int)p->rank,
                ucs_status_string(status));
}

/* Whether the endpoint's active messages go through one of UCX's shared-
 * memory FIFOs (posix, sysv, xpmem). ucp_ep_print_info is the only public
 * view of an endpoint's lanes; if its text is not understood the answer is
 * no, which only gives up the flush that recv_test does for such peers. */
static int ep_uses_shm_fifo(ucp_ep_h ep) {
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (f == NULL) return 0;
    ucp_ep_print_info(ep, f);
    fclose(f);
    int shm = text != NULL && (strstr(text, "posix/") != NULL || strstr(text, "sysv/") != NULL ||
                               strstr(text, "xpmem/") != NULL);
    free(text);
    return shm;
}

static moep_status_t ucx_connect_all(void *tctx, const void *addrs, size_t addr_len) {
    MOEP_CHECK_ARG("ucx connect_all", tctx);
    MOEP_CHECK_ARG("ucx connect_all", addrs);
    ucx_ctx_t *ctx = tctx;
    /* Peer failure handling is opt-in (MOEP_UCX_PEER_FAILURE=1): UCX then
     * keeps only transports that can report a dead peer, which on one node
     * means TCP instead of shared memory, several times slower; moep's own
     * timeouts already turn a dead peer into an error. */
    bool want_peer_errors = moep__env_long("MOEP_UCX_PEER_FAILURE", 0) == 1;
    for (int32_t r = 0; r < ctx->world_size; r++) {
        ucx_peer_t *p = &ctx->peers[r];
        if (p->ep != NULL)
            return moep__fail(MOEP_ERR_INVALID_USAGE, "ucx connect_all: already connected");
        p->ctx = ctx;
        p->rank = r;
        ucp_ep_params_t ep = {
            .field_mask = UCP_EP_PARAM_FIELD_REMOTE_ADDRESS | UCP_EP_PARAM_FIELD_ERR_HANDLING_MODE |
                          UCP_EP_PARAM_FIELD_ERR_HANDLER,
            .address = (const ucp_address_t *)((const char *)addrs + (size_t)r * addr_len),
            .err_mode = UCP_ERR_HANDLING_MODE_PEER,
            .err_handler = {.cb = on_peer_error, .arg = p},
        };
        ucs_status_t s = UCS_ERR_UNREACHABLE;
        /* Once peer error handling failed, skip it for the other endpoints:
         * each failed attempt makes UCX log errors. */
        if (want_peer_errors && !ctx->no_peer_errors) s = ucp_ep_create(ctx->worker, &ep, &p->ep);
        if (s == UCS_ERR_UNREACHABLE) {
            /* Without peer error handling (the default, or UCX 1.13's shared
             * memory transports, which have no peer failure handler), a dead
             * peer is a timeout. */
            ep.err_mode = UCP_ERR_HANDLING_MODE_NONE;
            ep.field_mask &= ~(uint64_t)UCP_EP_PARAM_FIELD_ERR_HANDLER;
            s = ucp_ep_create(ctx->worker, &ep, &p->ep);
            if (s == UCS_OK && want_peer_errors && !ctx->no_peer_errors)
                MOEP_LOG_AT(MOEP_LOG_INFO, "ucx: rank %d: no peer failure detection with "
                            "UCX_TLS=%s; a dead peer shows as a timeout", (int)ctx->rank, ctx->tls);
            ctx->no_peer_errors = 1;
        }
        if (s != UCS_OK) {
            p->ep = NULL;
            char what[64];
            snprintf(what, sizeof what, "connect_all: endpoint to rank %d", (int)r);
            return ucx_status(s, what);
        }
        p->shm_fifo = ep_uses_shm_fifo(p->ep);
        MOEP_LOG_AT(MOEP_LOG_DEBUG, "ucx: rank %d -> rank %d: shared-memory FIFO %s", (int)ctx->rank,
                    (int)r, p->shm_fifo ? "yes" : "no");
    }
    return MOEP_OK;
}

/* Progress until `req` completes or the deadline passes; then release it. */
static void drain(ucp_worker_h worker, ucs_status_ptr_t req, double deadline) {
    if (req == NULL || UCS_PTR_IS_ERR(req)) return;
    while (ucp_request_check_status(req) == UCS_INPROGRESS && moep__now_ms() < deadline)
        ucp_worker_progress(worker);
    ucp_request_free(req); /* released by UCX once complete if it is still running */
}

/* Local and bounded: flush what we sent to live peers for up to
 * UCX_CLOSE_MS (a send completes before the data has left), then close
 * every endpoint by force, which never waits on the peer. */
static moep_status_t ucx_finalize(void *tctx) {
    MOEP_CHECK_ARG("ucx finalize", tctx);
    ucx_ctx_t *ctx = tctx;
    if (ctx->worker != NULL) {
        double deadline = moep__now_ms() + UCX_CLOSE_MS;
        int any_failed = 0, connected = 0;
        for (int32_t r = 0; r < ctx->world_size; r++) {
            any_failed |= ctx->peers[r].failed != UCS_OK;
            connected |= ctx->peers[r].ep != NULL;
        }
        ucp_request_param_t none = {.op_attr_mask = 0};
        if (connected && !any_failed) drain(ctx->worker, ucp_worker_flush_nbx(ctx->worker, &none), deadline);
        ucp_request_param_t force = {.op_attr_mask = UCP_OP_ATTR_FIELD_FLAGS,
                                     .flags = UCP_EP_CLOSE_FLAG_FORCE};
        for (int32_t r = 0; r < ctx->world_size; r++)
            if (ctx->peers[r].ep != NULL)
                drain(ctx->worker, ucp_ep_close_nbx(ctx->peers[r].ep, &force), deadline);
        ucp_worker_destroy(ctx->worker);
    }
    if (ctx->context != NULL) ucp_cleanup(ctx->context);
    free(ctx->peers);
    free(ctx);
    return MOEP_OK;
}

moep_status_t ucx_isend(void *tctx, int32_t peer, uint64_t tag, const void *buf, size_t len,
                        void *mr, void **req_p);
moep_status_t ucx_irecv(void *tctx, int32_t peer, uint64_t tag, void *buf, size_t len, void *mr,
                        void **req_p);
moep_status_t ucx_test(void *tctx, void *req, int *done_p, size_t *len_p);
moep_status_t ucx_cancel(void *tctx, void *req);
moep_status_t ucx_progress(void *tctx);

const moep_transport_t moep__transport_ucx = {
    .name = "ucx",
    .version = 1,
    .size = sizeof(moep_transport_v1_t),
    .probe = ucx_probe,
    .init = ucx_init,
    .finalize = ucx_finalize,
    .get_props = ucx_get_props,
    .get_addr = ucx_get_addr,
    .connect_all = ucx_connect_all,
    .reg_mr = NULL,
    .dereg_mr = NULL,
    .isend = ucx_isend,
    .irecv = ucx_irecv,
    .test = ucx_test,
    .cancel = ucx_cancel,
    .progress = ucx_progress,
};
