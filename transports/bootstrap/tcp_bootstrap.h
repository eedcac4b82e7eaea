/* Internals of the TCP bootstrap, shared by its files (params, rendezvous, collectives). */
#ifndef MOEP_TCP_BOOTSTRAP_H
#define MOEP_TCP_BOOTSTRAP_H

#include "transports/bootstrap/tcp_frame_rx.h"

#define MOEP__TCP_MAX_WORLD 65536

/* Parameters after defaults and the environment are applied. */
typedef struct moep__tcp_config {
    int32_t rank;
    int32_t world_size;
    char host[256];
    char port[8];
    uint64_t job_hash;
    int32_t timeout_ms;
} moep__tcp_config_t;

typedef struct moep__tcp_ctx {
    moep_bootstrap_t bs; /* first: handed to the caller */
    moep__tcp_config_t cfg;
    /* Rank 0: fds[r] is the link to rank r (fds[0] unused). Others: fds[0] is
     * the link to rank 0. -1 when closed. */
    int *fds;
    moep__frame_rx_t *rx; /* rank 0: one receiver per peer */
    uint32_t seq;         /* collectives done so far */
    /* After a failure that leaves the streams out of step, every later
     * collective fails fast with this status. */
    moep_status_t broken;
} moep__tcp_ctx_t;

/* Fill cfg from params, then the environment. MOEP_ERR_INVALID_ARG on bad values. */
moep_status_t moep__tcp_config_resolve(const char *fn, const moep_tcp_bootstrap_params_t *p,
                                       moep__tcp_config_t *cfg);

/* Rendezvous: rank 0 accepts all ranks; the others join. Fill c->fds. */
moep_status_t moep__tcp_rendezvous_root(const char *fn, moep__tcp_ctx_t *c);
moep_status_t moep__tcp_rendezvous_peer(const char *fn, moep__tcp_ctx_t *c);

/* Extra time a non-root rank waits for rank 0, so that rank 0's own timeout
 * fires first and its message, naming the missing rank, reaches everyone. */
static inline int32_t moep__tcp_grace_ms(int32_t timeout_ms) {
    int32_t g = timeout_ms / 4;
    return g < 1000 ? g : 1000;
}

/* Header of a frame from `c`'s rank. */
static inline moep__wire_hdr_t moep__tcp_hdr(const moep__tcp_ctx_t *c, moep__wire_op_t op,
                                             uint64_t length) {
    moep__wire_hdr_t h = {.version = MOEP__WIRE_VERSION,
                          .op = (uint16_t)op,
                          .seq = c->seq,
                          .sender = c->cfg.rank,
                          .length = length,
                          .job_hash = c->cfg.job_hash};
    return h;
}

/* Send an ERROR frame without waiting (best effort). */
void moep__tcp_send_error_nowait(const moep__tcp_ctx_t *c, int fd, moep_status_t st,
                                 const char *msg);

#endif /* MOEP_TCP_BOOTSTRAP_H */
