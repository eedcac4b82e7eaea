/* Internals of the libfabric transport (FI_EP_RDM, tagged messages). */
#ifndef MOEP_LF_INTERNAL_H
#define MOEP_LF_INTERNAL_H

#include <rdma/fabric.h>
#include <rdma/fi_cm.h>
#include <rdma/fi_domain.h>
#include <rdma/fi_endpoint.h>
#include <rdma/fi_errno.h>
#include <rdma/fi_tagged.h>

#include "transport_util.h"

/* API version we ask for (libfabric 1.9 has everything we use). */
#define LF_FI_VERSION FI_VERSION(1, 9)

typedef struct lf_req {
    /* Handed to the provider as the operation context: it must come first,
     * and FI_CONTEXT / FI_CONTEXT2 modes let the provider scribble on it. */
    struct fi_context2 fctx;
    struct lf_req *next, *prev; /* the context's live list */
    int is_send;
    int32_t peer;
    int done;   /* a completion (or error completion) arrived */
    int orphan; /* cancelled by the caller: free when its completion arrives */
    int posted; /* handed to the provider (else waiting in the backlog) */
    struct lf_req *bnext; /* backlog FIFO */
    void *buf;
    uint64_t wire_tag;
    size_t len; /* posted length; bytes received once done */
    moep_status_t status;
    char why[160];
} lf_req_t;

typedef struct lf_ctx {
    int32_t rank, world_size;
    struct fi_info *info;
    struct fid_fabric *fabric;
    struct fid_domain *domain;
    struct fid_av *av;
    struct fid_cq *cq;
    struct fid_ep *ep;
    fi_addr_t *addrs; /* [world_size] */
    lf_req_t *live;   /* every request not yet freed */
    /* Posts the provider refused with -FI_EAGAIN, retried in order by
     * progress; while it is non-empty new posts queue behind it, so that
     * messages between a pair stay in order and isend never blocks. */
    lf_req_t *backlog_head, *backlog_tail;
    int delivery_complete;
} lf_ctx_t;

/* The one place that maps libfabric return codes (negative fi_errno) to
 * moep_status_t, recording "libfabric <what>: <fi_strerror>". */
moep_status_t lf_status(int rc, const char *what);

/* Provider choice (lf_provider.c): FI_PROVIDER if set, else the first of
 * efa, verbs, tcp, shm that fi_getinfo offers with our hints. Fills *info_p
 * (free with fi_freeinfo) and says whether FI_DELIVERY_COMPLETE was granted. */
moep_status_t lf_find_provider(struct fi_info **info_p, int *delivery_complete_p, char *why,
                               size_t why_len);

/* Drain the completion queue into the requests (lf_xfer.c). */
moep_status_t lf_poll(lf_ctx_t *ctx);
void lf_req_free(lf_ctx_t *ctx, lf_req_t *r);

#endif /* MOEP_LF_INTERNAL_H */
