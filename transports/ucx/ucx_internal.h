/* Internals of the UCX transport (ucp tag API, one worker per rank). */
#ifndef MOEP_UCX_INTERNAL_H
#define MOEP_UCX_INTERNAL_H

#include <ucp/api/ucp.h>

#include "transport_util.h"

typedef struct ucx_ctx ucx_ctx_t;

/* Per peer: the endpoint and what its error handler saw. */
typedef struct ucx_peer {
    ucx_ctx_t *ctx;
    int32_t rank;
    ucp_ep_h ep;
    ucs_status_t failed; /* UCS_OK until the error handler fires */
    int shm_fifo;        /* active messages go through a shared-memory FIFO (see recv_test) */
} ucx_peer_t;

struct ucx_ctx {
    int32_t rank, world_size;
    ucp_context_h context;
    ucp_worker_h worker;
    ucx_peer_t *peers; /* [world_size] */
    char tls[64];      /* UCX_TLS at init, for props */
    int no_peer_errors; /* some endpoint was made without a peer error handler */
};

/* Lives in the space UCX reserves in each request (ucp_params.request_size);
 * written by us only, right after the *_nbx call returns the request. */
typedef struct ucx_req {
    int is_send;
    int32_t peer;
    size_t length;   /* a completed receive's length, kept while flush runs */
    void *flush;     /* a completed receive's endpoint flush, NULL until started */
} ucx_req_t;

/* The one place that maps ucs_status_t to moep_status_t, recording the
 * native text: "ucx <what>: <ucs_status_string>". */
moep_status_t ucx_status(ucs_status_t s, const char *what);

#endif /* MOEP_UCX_INTERNAL_H */
