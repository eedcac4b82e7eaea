/* Internal state of a communicator and of a dispatch handle. */
#ifndef MOEP_COMM_INTERNAL_H
#define MOEP_COMM_INTERNAL_H

#include <stdbool.h>

#include "moep_internal.h"
#include "moep_transport.h"

struct moep_comm {
    int32_t rank;
    int32_t world_size;
    int32_t num_experts;
    int32_t *expert_rank;      /* [E] */
    int32_t *global_to_local;  /* [E] local id on this rank, -1 elsewhere */
    int32_t num_local_experts;
    int32_t *local_experts;    /* [L] global ids */
    int32_t timeout_ms;
    const moep_transport_t *vt;
    void *tctx;
    uint64_t seq;              /* collective-call counter, equal on every rank */
    bool broken;               /* a collective failed half-way: only destroy is valid */
    bool single_copy;          /* the transport has MOEP_CAP_SINGLE_COPY */
    char last_error[512];
    moep_device_t device;      /* where dispatch/combine buffers live */
    int32_t device_id;
    struct moep__gpu_comm *gpu; /* CUDA build, device comms only (cuda/gpu_internal.h) */
};

/* Record an error on the comm (and the thread); returns s. */
moep_status_t moep__comm_fail(moep_comm_t *c, moep_status_t s, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Refuse to run a collective on a communicator that failed earlier. */
moep_status_t moep__comm_check_usable(moep_comm_t *c, const char *fn);

/* Below this many elements a copy loop runs on the calling thread: an
 * OpenMP team costs more than it saves, and ranks sharing cores suffer. */
#define MOEP_OMP_MIN_WORK (1 << 16)

/* Tags: one sequence number per collective call, a kind in the low byte. */
enum { MOEP_TAG_COUNTS = 1, MOEP_TAG_DISPATCH = 2, MOEP_TAG_COMBINE = 3, MOEP_TAG_DISPATCH_META = 4,
       MOEP_TAG_DISPATCH_RUN = 5 };

/* A cached dispatch sends a peer's rows straight from x, one message per
 * run of consecutive tokens, as long as a rank posts at most this many run
 * messages per side: MOEP_DIRECT_MAX_MSGS / (R - 1) runs per peer, else
 * that peer's rows go packed in one message. Many runs are fine (on 2
 * cores, ~160 runs of ~11 rows per peer still beat the pack copy by a
 * quarter), but libfabric's shm provider refused ~960 sends posted at once
 * (its queue depth) and took ~480. */
#define MOEP_DIRECT_MAX_MSGS 384
static inline uint64_t moep__tag(uint64_t seq, int kind) {
    return ((seq & 0xffffffffffull) << 8) | (uint64_t)kind;
}
/* Run j of a cached dispatch: 24 bits of the sequence number are plenty,
 * as only consecutive calls can have messages in flight together. */
static inline uint64_t moep__run_tag(uint64_t seq, int64_t j) {
    return ((seq & 0xffffffull) << 24) | ((uint64_t)j << 8) | MOEP_TAG_DISPATCH_RUN;
}

/*
 * One all-to-all-v step of one or more parts posted together: for each part,
 * send send_bytes[r] from send_buf + send_off[r] to every peer r != rank and
 * receive recv_bytes[r] into recv_buf + recv_off[r]; the self block is
 * copied (unless it is already in place). Waits for completion or the comm's
 * timeout. *wire_bytes_p (may be NULL) gets the bytes sent to other ranks.
 */
typedef struct moep_a2a_part {
    uint64_t tag;
    const uint8_t *send_buf;
    const size_t *send_off, *send_bytes;
    uint8_t *recv_buf;
    const size_t *recv_off, *recv_bytes;
} moep_a2a_part_t;

moep_status_t moep__alltoallv(moep_comm_t *c, const char *fn, const moep_a2a_part_t *parts,
                              int nparts, uint64_t *wire_bytes_p);

/* One message of an exchange: `bytes` to or from `peer` under `tag`. */
typedef struct moep_msg {
    int32_t peer;
    uint64_t tag;
    uint8_t *buf;
    size_t bytes;
} moep_msg_t;

/* Local work run after posting, while the transfers are in flight. */
typedef moep_status_t (*moep_overlap_fn)(moep_comm_t *c, const char *fn, void *arg);

/*
 * Post msgs[0, nrecv) as receives and the next nsend as sends, run
 * `overlap` (may be NULL), then wait for all of them or the comm's timeout;
 * every receive must get exactly its `bytes`. On failure the rest is
 * cancelled and the comm marked broken. *wire_bytes_p (may be NULL) gets
 * the bytes sent.
 */
moep_status_t moep__exchange(moep_comm_t *c, const char *fn, const moep_msg_t *msgs, int nrecv,
                             int nsend, moep_overlap_fn overlap, void *overlap_arg,
                             uint64_t *wire_bytes_p);

/* Grow a 64-byte-aligned buffer to at least `need` bytes (contents dropped). */
moep_status_t moep__buf_reserve(const char *fn, void **buf, size_t *cap, size_t need);

/* Per-peer header sent before every fresh dispatch: lets every rank check
 * that all ranks agree on the call's shape, and learn its receive counts. */
typedef struct moep_dispatch_header {
    uint32_t magic;
    uint32_t version;
    int32_t hidden;
    int32_t top_k;
    int32_t dtype;
    int32_t wire_dtype;
    int32_t status;     /* the sender's local result: non-OK stops every rank */
    int32_t aux;        /* CPU path: MOEP_DISPATCH_HEADER_* flags; GPU path: the sender's T */
    int64_t num_tokens; /* tokens the sender sends to the receiver */
} moep_dispatch_header_t;

/* Runs of consecutive tokens in each peer's block of rows. */
typedef struct moep_row_runs {
    int64_t *first;       /* first row of each run: token in x (sends) or row of recv_x (receives) */
    int64_t *rows;        /* rows of each run */
    int64_t *peer_offset; /* [R+1] peer r's runs are [peer_offset[r], peer_offset[r+1]) */
    size_t cap;           /* bytes of first and of rows */
} moep_row_runs_t;

#define MOEP_DISPATCH_MAGIC 0x4d4f4550u /* "MOEP" */
/* The sender's transport has MOEP_CAP_SINGLE_COPY: a pair of ranks uses
 * run messages (dispatch_direct.c) only when both ends say so. */
#define MOEP_DISPATCH_HEADER_DIRECT_RUNS 1
#define MOEP_DISPATCH_VERSION 1u

struct moep_handle {
    moep_comm_t *comm;
    moep_layout_t *layout;
    int64_t num_tokens;
    int32_t hidden, top_k;
    moep_dtype_t dtype, wire_dtype;
    int32_t alignment;
    size_t wire_row_bytes; /* x row on the wire (FP8: values + scales) */
    size_t meta_row_bytes; /* ids + weights + source token, sent with fresh dispatches only */
    size_t id_bytes;       /* 2 (int16) when every expert id fits, else 4 */
    /* per peer, in tokens */
    int64_t *send_count, *recv_count, *recv_offset; /* [R], [R], [R+1] */
    int64_t num_recv;
    /* received tokens */
    void *recv_x;
    size_t recv_x_cap;
    int32_t *recv_local_idx; /* [num_recv, k] */
    float *recv_weight;      /* [num_recv, k] */
    int32_t *recv_src;       /* [num_recv] */
    int32_t *recv_src_token; /* [num_recv] the token's index on its home rank */
    size_t recv_meta_cap;
    /* runs of the x rows sent to / received from each peer (cached dispatches) */
    moep_row_runs_t send_runs, recv_runs;
    bool *peer_direct; /* [R] both ends of the pair with this peer take run messages */
    /* expert-major */
    int64_t *tokens_per_local_expert; /* [L] */
    int64_t *expert_offset;           /* [L+1] */
    int64_t num_expert_rows;
    void *expert_x;
    size_t expert_x_cap;
    int64_t *slot_expert_row; /* [num_recv, k] -> expert-major row, -1 = not ours */
    size_t slot_row_cap;
    /* staging buffers */
    void *send_buf, *recv_buf;   /* x rows on the wire (recv_buf unused when the wire is x's dtype) */
    size_t send_cap, recv_cap;
    void *send_meta, *recv_meta; /* ids + weights per slot, fresh dispatches */
    size_t send_meta_cap, recv_meta_bytes_cap;
    float *scratch; /* per-thread f32 rows */
    size_t scratch_cap;
    uint64_t dispatch_wire_bytes, combine_wire_bytes;
    struct moep__gpu_handle *gpu; /* device buffers of a GPU dispatch (CUDA build) */
};

/* dispatch_direct.c: cached dispatches without the pack copy. */
moep_status_t moep__runs_find(moep_comm_t *c, moep_handle_t *h);
bool moep__runs_direct(const moep_handle_t *h, const moep_row_runs_t *runs, int32_t peer);
void moep__runs_free(moep_row_runs_t *runs);
/* The x rows of a cached dispatch with the wire in x's dtype: runs straight
 * from x (read only) to recv_x, other peers' blocks from send_buf. */
moep_status_t moep__dispatch_cached_exchange(moep_comm_t *c, moep_handle_t *h, const uint8_t *x,
                                             moep_overlap_fn overlap, void *overlap_arg);

#ifdef MOEP_HAVE_CUDA
/* GPU path (transports/comm/cuda/): device comms route here. */
moep_status_t moep__gpu_comm_init(moep_comm_t *c);
void moep__gpu_comm_free(moep_comm_t *c);
moep_status_t moep__gpu_dispatch(moep_comm_t *c, const moep_dispatch_params_t *p,
                                 moep_handle_t **handle_p, moep_dispatch_result_t *res);
moep_status_t moep__gpu_combine(moep_comm_t *c, const moep_combine_params_t *p, moep_handle_t *h);
void moep__gpu_handle_free(moep_handle_t *h);
#endif

#endif
