/*
 * moep transport interface, for transport authors (not needed by users).
 * Kept apart from moep.h as NCCL keeps nccl_net.h apart from nccl.h.
 *
 * A transport moves tagged byte messages between the ranks of one
 * communicator. It is host-progressed: nothing happens outside its calls,
 * and it must not start threads of its own for moep (the libraries beneath
 * it may). The core (transports/core) handles selection, address exchange
 * over the bootstrap, timeouts and error messages; a backend only
 * translates these ops to its library.
 *
 * Versioning: moep_transport_v1_t is frozen. A new op means a _v2 struct
 * next to it; the core checks optional ops with MOEP_HAS_OP.
 */
#ifndef MOEP_TRANSPORT_H
#define MOEP_TRANSPORT_H

#include "moep_comm.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Capability bits (moep_transport_props_t.caps). */
#define MOEP_CAP_HOST_MEM (1ull << 0)       /* host buffers */
#define MOEP_CAP_CUDA_MEM (1ull << 1)       /* device buffers */
#define MOEP_CAP_TAGGED (1ull << 2)         /* isend/irecv with tags */
#define MOEP_CAP_STREAM_ORDERED (1ull << 3) /* alltoallv on a stream (NCCL) */
#define MOEP_CAP_MULTI_PROCESS (1ull << 4)  /* ranks may be separate processes */
/* Every peer is reached through shared memory and a large message moves with
 * one copy (valid after connect_all): many messages per peer then cost little
 * more than one, so a cached dispatch sends rows straight from x. */
#define MOEP_CAP_SINGLE_COPY (1ull << 5)

/* Longest address get_addr may return. */
#define MOEP_TRANSPORT_ADDR_MAX 8192

typedef struct moep_transport_init_args {
    int32_t rank;
    int32_t world_size;
    int32_t timeout_ms;
    moep_device_t device;
    int32_t device_id;
    /* Out-of-band channel; transports that need more than the address
     * exchange done by the core (e.g. NCCL's unique id) may use it in init. */
    const moep_bootstrap_t *bootstrap;
} moep_transport_init_args_t;

typedef struct moep_transport_props {
    uint64_t caps;
    char detail[128]; /* e.g. "ucx 1.13 tls=tcp,sm" or "libfabric 1.17 prov=shm" */
} moep_transport_props_t;

typedef struct moep_transport_v1 {
    const char *name; /* "ucx", lower case */
    uint32_t version; /* 1 */
    size_t size;      /* sizeof(moep_transport_v1_t) */

    /* --- discovery --- */
    /* Can this transport run here? MOEP_OK, or an error with a reason in `why`
     * (shown by `moep info`). Must be cheap and side-effect free. */
    moep_status_t (*probe)(char *why, size_t why_len);

    /* --- lifecycle --- */
    moep_status_t (*init)(const moep_transport_init_args_t *args, void **tctx_p);
    /* Local and bounded: never waits for peers; frees requests still open. */
    moep_status_t (*finalize)(void *tctx);
    moep_status_t (*get_props)(void *tctx, moep_transport_props_t *props);

    /* --- wire-up: the core allgathers the addresses over the bootstrap --- */
    moep_status_t (*get_addr)(void *tctx, void *addr, size_t *len /* in: capacity, out: used */);
    moep_status_t (*connect_all)(void *tctx, const void *addrs /* [world_size][addr_len] */,
                                 size_t addr_len);

    /* --- memory (optional: NULL means no registration needed) --- */
    moep_status_t (*reg_mr)(void *tctx, void *ptr, size_t len, moep_device_t kind, int device,
                            void **mr_p);
    moep_status_t (*dereg_mr)(void *tctx, void *mr);

    /* --- data ---
     * Messages match on (peer, tag), in posting order for equal (peer, tag);
     * tags have at most 48 bits (the wire tag is (tag << 16) | src_rank, so
     * tag-matching backends allow at most 65536 ranks). A receive buffer must
     * be at least as long as the message; a longer message fails the receive
     * with MOEP_ERR_PROTOCOL. Requests complete through test(); a completed
     * or failed request is freed by test(). On success an isend's *req_p may
     * be NULL when it completed at once; irecv always returns a request, so
     * that test() can report the length. Neither op blocks.
     * A completed send means the buffer may be reused, not that the peer has
     * the data: do not finalize before the peers have received (ucx flushes
     * for up to 1 s in finalize; libfabric asks for FI_DELIVERY_COMPLETE). */
    moep_status_t (*isend)(void *tctx, int32_t peer, uint64_t tag, const void *buf, size_t len,
                           void *mr, void **req_p);
    moep_status_t (*irecv)(void *tctx, int32_t peer, uint64_t tag, void *buf, size_t len,
                           void *mr, void **req_p);
    /* *done_p = 1 when finished (then *len_p, if len_p != NULL, = bytes
     * received for a receive, 0 for a send).
     * A request that failed returns its error (MOEP_ERR_REMOTE for a dead peer). */
    moep_status_t (*test)(void *tctx, void *req, int *done_p, size_t *len_p);
    /* Cancel and free an unfinished request (after a timeout). */
    moep_status_t (*cancel)(void *tctx, void *req);
    moep_status_t (*progress)(void *tctx);

    /* --- optional fast path (appended; check with MOEP_HAS_OP) ---
     * Stream-ordered all-to-all-v of device bytes: send send_bytes[r] from
     * send_buf + send_off[r] to every rank r (self included) and receive
     * recv_bytes[r] into recv_buf + recv_off[r], enqueued on `stream`; returns
     * once enqueued. Only with props.caps & MOEP_CAP_STREAM_ORDERED (NCCL). */
    moep_status_t (*alltoallv)(void *tctx, const void *send_buf, const size_t *send_bytes,
                               const size_t *send_off, void *recv_buf, const size_t *recv_bytes,
                               const size_t *recv_off, moep_stream_t stream);
    /* Optional, with alltoallv: begin (1) / end (0) a group of alltoallv
     * calls that the transport may launch as one (NCCL: ncclGroupStart /
     * ncclGroupEnd around them: one kernel for several buffers). */
    moep_status_t (*group)(void *tctx, int begin);
} moep_transport_v1_t;

typedef moep_transport_v1_t moep_transport_t;

#define MOEP_HAS_OP(vt, op)                                                         \
    ((vt)->size > offsetof(moep_transport_v1_t, op) && (vt)->op != NULL)

#ifdef __cplusplus
}
#endif
#endif /* MOEP_TRANSPORT_H */
