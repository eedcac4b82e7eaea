/*
 * libfabric transport lifecycle and wire-up: fabric, domain, AV (table),
 * tagged CQ and one RDM endpoint per rank. init checks over the bootstrap
 * that every rank chose the same provider (their addresses would not mix).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lf_internal.h"

#define PROV_WIRE_LEN 32

static moep_status_t lf_probe(char *why, size_t why_len) {
    struct fi_info *info;
    int dc;
    moep_status_t st = lf_find_provider(&info, &dc, why, why_len);
    if (st != MOEP_OK) return st;
    moep__why(why, why_len, "libfabric %u.%u, provider %s", FI_MAJOR(fi_version()),
              FI_MINOR(fi_version()), info->fabric_attr->prov_name);
    fi_freeinfo(info);
    return MOEP_OK;
}

static moep_status_t lf_finalize(void *tctx);

/* Open the fabric objects for ctx->info. */
static moep_status_t open_endpoint(lf_ctx_t *ctx) {
    int rc = fi_fabric(ctx->info->fabric_attr, &ctx->fabric, NULL);
    if (rc) return lf_status(rc, "init: fi_fabric");
    rc = fi_domain(ctx->fabric, ctx->info, &ctx->domain, NULL);
    if (rc) return lf_status(rc, "init: fi_domain");
    struct fi_av_attr av = {.type = FI_AV_TABLE, .count = (size_t)ctx->world_size};
    rc = fi_av_open(ctx->domain, &av, &ctx->av, NULL);
    if (rc) return lf_status(rc, "init: fi_av_open");
    struct fi_cq_attr cq = {.format = FI_CQ_FORMAT_TAGGED, .wait_obj = FI_WAIT_NONE};
    rc = fi_cq_open(ctx->domain, &cq, &ctx->cq, NULL);
    if (rc) return lf_status(rc, "init: fi_cq_open");
    rc = fi_endpoint(ctx->domain, ctx->info, &ctx->ep, NULL);
    if (rc) return lf_status(rc, "init: fi_endpoint");
    if (strcmp(ctx->info->fabric_attr->prov_name, "shm") == 0) {
        /* shm names its /dev/shm region "<pid>:<n>:<n>" by default. A killed
         * process leaves it behind, and in a PID namespace (containers,
         * sandboxes) a later process with the same pid then fails with
         * EBUSY. A name with the time in it does not collide. */
        char name[64];
        snprintf(name, sizeof name, "moep_%ld_%d_%.0f", (long)getpid(), (int)ctx->rank,
                 moep__now_ms() * 1000.0);
        rc = fi_setname(&ctx->ep->fid, name, strlen(name) + 1);
        if (rc) return lf_status(rc, "init: fi_setname");
    }
    rc = fi_ep_bind(ctx->ep, &ctx->av->fid, 0);
    if (rc) return lf_status(rc, "init: bind av");
    rc = fi_ep_bind(ctx->ep, &ctx->cq->fid, FI_TRANSMIT | FI_RECV);
    if (rc) return lf_status(rc, "init: bind cq");
    rc = fi_enable(ctx->ep);
    if (rc) return lf_status(rc, "init: fi_enable");
    return MOEP_OK;
}

/* Every rank must use the same provider; one allgather, done even after a
 * local failure so that the peers are not left waiting. */
static moep_status_t agree_provider(const moep_transport_init_args_t *args, const char *mine) {
    char name[PROV_WIRE_LEN] = {0};
    snprintf(name, sizeof name, "%s", mine);
    char *all = calloc((size_t)args->world_size, PROV_WIRE_LEN);
    if (all == NULL) return moep__fail(MOEP_ERR_NO_MEMORY, "libfabric init: out of memory");
    const moep_bootstrap_t *bs = args->bootstrap;
    moep_status_t st = bs->allgather(bs->ctx, name, all, PROV_WIRE_LEN);
    if (st != MOEP_OK) st = moep__fail(st, "libfabric init: bootstrap allgather failed");
    for (int32_t r = 0; st == MOEP_OK && r < args->world_size; r++) {
        const char *theirs = all + (size_t)r * PROV_WIRE_LEN;
        if (theirs[0] == '\0' && mine[0] != '\0')
            st = moep__fail(MOEP_ERR_UNSUPPORTED, "libfabric init: rank %d found no provider",
                            (int)r);
        else if (strncmp(theirs, name, PROV_WIRE_LEN) != 0 && mine[0] != '\0')
            st = moep__fail(MOEP_ERR_MISMATCH,
                            "libfabric init: rank %d uses provider '%s', rank %d '%.*s' "
                            "(set FI_PROVIDER alike on every rank)",
                            (int)args->rank, name, (int)r, PROV_WIRE_LEN, theirs);
    }
    free(all);
    return st;
}

static moep_status_t lf_init(const moep_transport_init_args_t *args, void **tctx_p) {
    MOEP_TRY(moep__init_args_check("libfabric init", args, tctx_p, MOEP__TAG_MAX_RANKS));
    *tctx_p = NULL;
    lf_ctx_t *ctx = calloc(1, sizeof *ctx);
    if (ctx != NULL) ctx->addrs = calloc((size_t)args->world_size, sizeof *ctx->addrs);
    char why[200] = "";
    moep_status_t st = MOEP_OK;
    if (ctx == NULL || ctx->addrs == NULL)
        st = moep__fail(MOEP_ERR_NO_MEMORY, "libfabric init: out of memory");
    else if ((st = lf_find_provider(&ctx->info, &ctx->delivery_complete, why, sizeof why)) !=
             MOEP_OK)
        st = moep__fail(st, "libfabric init: %s", why);
    char msg[512] = "";
    if (st != MOEP_OK) snprintf(msg, sizeof msg, "%s", moep_last_error());
    moep_status_t ast = agree_provider(args, st == MOEP_OK ? ctx->info->fabric_attr->prov_name : "");
    if (st == MOEP_OK) st = ast;
    if (ctx == NULL) return st;
    if (st == MOEP_OK) {
        ctx->rank = args->rank;
        ctx->world_size = args->world_size;
        st = open_endpoint(ctx);
    }
    if (st != MOEP_OK) {
        if (msg[0] == '\0') snprintf(msg, sizeof msg, "%s", moep_last_error());
        lf_finalize(ctx);
        return moep__fail(st, "%s", msg);
    }
    *tctx_p = ctx;
    return MOEP_OK;
}

static moep_status_t lf_finalize(void *tctx) {
    MOEP_CHECK_ARG("libfabric finalize", tctx);
    lf_ctx_t *ctx = tctx;
    /* Endpoint first: after it is closed no completion can name a request. */
    if (ctx->ep != NULL) fi_close(&ctx->ep->fid);
    if (ctx->av != NULL) fi_close(&ctx->av->fid);
    if (ctx->cq != NULL) fi_close(&ctx->cq->fid);
    if (ctx->domain != NULL) fi_close(&ctx->domain->fid);
    if (ctx->fabric != NULL) fi_close(&ctx->fabric->fid);
    while (ctx->live != NULL) lf_req_free(ctx, ctx->live);
    if (ctx->info != NULL) fi_freeinfo(ctx->info);
    free(ctx->addrs);
    free(ctx);
    return MOEP_OK;
}

static moep_status_t lf_get_props(void *tctx, moep_transport_props_t *props) {
    MOEP_CHECK_ARG("libfabric get_props", tctx);
    MOEP_CHECK_ARG("libfabric get_props", props);
    lf_ctx_t *ctx = tctx;
    props->caps = MOEP_CAP_HOST_MEM | MOEP_CAP_TAGGED | MOEP_CAP_MULTI_PROCESS;
    if (strcmp(ctx->info->fabric_attr->prov_name, "shm") == 0) /* CMA for large messages */
        props->caps |= MOEP_CAP_SINGLE_COPY;
    snprintf(props->detail, sizeof props->detail, "libfabric %u.%u prov=%s%s",
             FI_MAJOR(fi_version()), FI_MINOR(fi_version()), ctx->info->fabric_attr->prov_name,
             ctx->delivery_complete ? " delivery_complete" : "");
    return MOEP_OK;
}

static moep_status_t lf_get_addr(void *tctx, void *addr, size_t *len) {
    MOEP_CHECK_ARG("libfabric get_addr", tctx);
    MOEP_CHECK_ARG("libfabric get_addr", addr);
    MOEP_CHECK_ARG("libfabric get_addr", len);
    lf_ctx_t *ctx = tctx;
    size_t cap = *len;
    int rc = fi_getname(&ctx->ep->fid, addr, len);
    if (rc == -FI_ETOOSMALL)
        return moep__fail(MOEP_ERR_INVALID_ARG,
                          "libfabric get_addr: address of %zu bytes > capacity %zu", *len, cap);
    return lf_status(rc, "get_addr: fi_getname");
}

static moep_status_t lf_connect_all(void *tctx, const void *addrs, size_t addr_len) {
    MOEP_CHECK_ARG("libfabric connect_all", tctx);
    MOEP_CHECK_ARG("libfabric connect_all", addrs);
    lf_ctx_t *ctx = tctx;
    /* One at a time: the padded stride is ours, not the provider's addrlen. */
    for (int32_t r = 0; r < ctx->world_size; r++) {
        int n = fi_av_insert(ctx->av, (const char *)addrs + (size_t)r * addr_len, 1,
                             &ctx->addrs[r], 0, NULL);
        if (n != 1) {
            char what[64];
            snprintf(what, sizeof what, "connect_all: address of rank %d", (int)r);
            return lf_status(n < 0 ? n : -FI_EINVAL, what);
        }
    }
    return MOEP_OK;
}

moep_status_t lf_isend(void *tctx, int32_t peer, uint64_t tag, const void *buf, size_t len,
                       void *mr, void **req_p);
moep_status_t lf_irecv(void *tctx, int32_t peer, uint64_t tag, void *buf, size_t len, void *mr,
                       void **req_p);
moep_status_t lf_test(void *tctx, void *req, int *done_p, size_t *len_p);
moep_status_t lf_cancel(void *tctx, void *req);
moep_status_t lf_progress(void *tctx);

const moep_transport_t moep__transport_libfabric = {
    .name = "libfabric",
    .version = 1,
    .size = sizeof(moep_transport_v1_t),
    .probe = lf_probe,
    .init = lf_init,
    .finalize = lf_finalize,
    .get_props = lf_get_props,
    .get_addr = lf_get_addr,
    .connect_all = lf_connect_all,
    .reg_mr = NULL,
    .dereg_mr = NULL,
    .isend = lf_isend,
    .irecv = lf_irecv,
    .test = lf_test,
    .cancel = lf_cancel,
    .progress = lf_progress,
};
