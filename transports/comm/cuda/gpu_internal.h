/* GPU dispatch / combine (CUDA build): state of a device communicator and
 * of a GPU dispatch handle, device buffer and wait helpers. */
#ifndef MOEP_GPU_INTERNAL_H
#define MOEP_GPU_INTERNAL_H

#include <cuda_runtime.h>

#include "transports/comm/comm_internal.h"
#include "cuda_buf.h"
#include "cuda_kernels.h"

#define MOEP__GPU_CHUNKS_MAX 8

/* Peer-mapped combine (gpu_peer.c): receive buffers and signal areas that
 * the ranks of one node map from each other. */
enum { MOEP__PEER_ARRIVED = 0, /* slot p: the op (seq) whose stores p has finished here */
       MOEP__PEER_FREED = 1,   /* slot p: the op (seq) whose data p has finished reading */
       MOEP__PEER_COUNTS = 2,  /* slot p: the fresh dispatch (seq) whose count message p has
                                * written here (its rows may still be on the way) */
       MOEP__PEER_KINDS = 3 };
typedef struct moep__gpu_peer {
    bool on;                              /* the same on every rank */
    uint64_t *area;                       /* ours: [MOEP__PEER_KINDS * R] signal slots (exported) */
    uint64_t *areas[MOEP_CUDA_PEER_MAX];  /* every rank's, mapped here */
    void *buf;                            /* ours: receive buffer (exported) */
    void *bufs[MOEP_CUDA_PEER_MAX];       /* every rank's, mapped here */
    size_t bytes;                         /* of every rank's buffer */
    int32_t *error_host, *error_dev;      /* 1 + the peer a signal kernel gave up on */
    uint64_t last_op;                     /* seq of the previous peer-mapped dispatch / combine, 0 = none */
    moep__cuda_buf_t scratch;             /* device staging of the handle exchange */
    cudaEvent_t ready;
} moep__gpu_peer_t;

struct moep__gpu_comm {
    moep_stream_t stream;     /* caller's (moep_comm_set_stream_cuda), NULL = legacy */
    int32_t *expert_rank;     /* [E] device */
    int32_t *global_to_local; /* [E] device */
    /* this rank's own rows skip the transport: they are copied / reduced on
     * a side stream while the transport moves the peers' rows */
    cudaStream_t side;
    cudaEvent_t fork, join;
    int32_t *local_experts; /* [L] device: global ids */
    /* rows per peer block of the next fresh dispatch's single round, the
     * same on every rank (the largest T of the last fresh dispatch, see
     * moep__gpu_next_cap); 0 = a count round, then the payload */
    int64_t cap_rows;
    /* host scratch, sized once for R ranks: no allocation per call */
    size_t *a2a_bytes; /* [4R] moep__gpu_alltoallv_rows' byte counts / offsets */
    int64_t *row_tmp;  /* [7R] row counts / offsets: [0, 5R) the one-round
                        * transfer or a pipelined exchange's chunk, [5R, 7R)
                        * the count messages */
    /* pipelined exchanges (moep__gpu_pair_chunks): a peer block of more
     * than chunk_bytes goes in up to MOEP__GPU_CHUNKS_MAX pieces, each sent
     * as soon as the side stream has produced it; 0 = never split */
    size_t chunk_bytes;
    cudaEvent_t chunk_ready[MOEP__GPU_CHUNKS_MAX];
    moep__gpu_peer_t peer;
};

struct moep__gpu_handle {
    bool ready; /* a fresh dispatch completed: the layout below is valid */
    moep__cuda_buf_t flags, trs, expert_count;
    moep__cuda_buf_t send_hdr, recv_hdr;
    moep__cuda_buf_t send_x, send_meta, recv_x, recv_meta;
    moep__cuda_buf_t local_idx, weight, src, slot_row, row_src, expert_x;
    moep__cuda_buf_t recv_offset, expert_offset;
    moep__cuda_buf_t partial_send, partial_recv;
    moep__cuda_buf_t recv_pad; /* one-round dispatch: peer blocks of cap rows */
    moep__cuda_buf_t rows_scratch; /* moep__cuda_expert_rows' counting sort */
    moep__cuda_buf_t count_scratch; /* moep__cuda_layout_count's (its first word zeroed when new) */
    /* pinned host staging: received headers, our rank counts, bad, offsets */
    void *host;
    size_t host_cap;
    cudaEvent_t counts_ready;
    size_t msg_bytes;
    int64_t blk;       /* send slots of rank r start at r * blk (blk >= every rank count) */
    int64_t num_slots; /* R * blk */
    int64_t *rank_offset; /* [R+1] host: slot ranges per destination */
    int64_t *peer_blk;    /* [R] host: rank r's slot block (its rank_offset step) */
    int64_t peer_rows;    /* the largest T of the fresh dispatch: rows per source block
                           * of a peer-mapped cached dispatch */
};

/* A CUDA failure as MOEP_ERR_CUDA naming the call; OK for cudaSuccess. */
moep_status_t moep__cuda_check(moep_comm_t *c, const char *fn, int err, const char *what);
/* Grow b to `need` bytes on the comm's stream (moep__cuda_buf_grow: stream-
 * ordered; the old contents are dropped). Freed with moep__cuda_buf_free. */
moep_status_t moep__dbuf_reserve(moep_comm_t *c, const char *fn, moep__cuda_buf_t *b, size_t need);
/* Wait for `ev`, polling the transport's async errors, until the comm's
 * deadline: then the transport is aborted and MOEP_ERR_TIMEOUT returned. */
moep_status_t moep__gpu_wait_event(moep_comm_t *c, const char *fn, cudaEvent_t ev, const char *what);
/* Check a device tensor like moep__check_tensor checks a host one. */
moep_status_t moep__check_cuda_tensor(const moep_comm_t *c, const char *fn, const char *name,
                                      const moep_tensor_t *t, int ndim, int dtype,
                                      const int64_t *shape);
/* The transport's stream-ordered all-to-all-v on rows of row_bytes:
 * send counts/offsets and receive counts/offsets in rows. This rank's own
 * block is NOT moved (callers write it in place). Adds the bytes sent to
 * other ranks to *wire_p. */
moep_status_t moep__gpu_alltoallv_rows(moep_comm_t *c, const char *fn, const void *send,
                                       const int64_t *send_count, const int64_t *send_off,
                                       void *recv, const int64_t *recv_count,
                                       const int64_t *recv_off, size_t row_bytes, uint64_t *wire_p);

/* Begin (1) / end (0) a group of alltoallv calls launched together (a
 * no-op for transports without the group op). */
moep_status_t moep__gpu_group(moep_comm_t *c, const char *fn, int begin);
/* End the group begun by moep__gpu_group(1) after its ops returned st:
 * closed in every case (NCCL's group state is per thread); when st failed,
 * st and its message are returned. */
moep_status_t moep__gpu_group_end(moep_comm_t *c, const char *fn, moep_status_t st);
/* The side stream waits for the work enqueued so far on the comm's stream
 * (fork); the comm's stream waits for the side stream's work (join). */
moep_status_t moep__gpu_fork(moep_comm_t *c, const char *fn);
moep_status_t moep__gpu_join(moep_comm_t *c, const char *fn);

/* Pieces of a pipelined exchange between this rank and one peer for a
 * block of `rows` rows: a function of the block alone, so that sender and
 * receiver (who both know the block's size) agree without a message. */
int32_t moep__gpu_pair_chunks(const moep_comm_t *c, int64_t rows, size_t row_bytes);
/* First row of piece `i` of `chunks` over n rows (n for i >= chunks). */
static inline int64_t moep__gpu_chunk_lo(int64_t n, int32_t i, int32_t chunks) {
    return i >= chunks ? n : n * i / chunks;
}

/* Peer-mapped combine (gpu_peer.c). init decides c->gpu->peer.on, the
 * same on every rank (never fails for a node without peer access: then
 * the path is off). reserve grows every rank's buffer to at least `need`
 * bytes; collective, `need` must be the same on every rank. sync launches
 * the signal kernel (kind, value) on the comm's stream. check turns a
 * signal kernel's timeout into MOEP_ERR_TIMEOUT (the comm is broken). */
moep_status_t moep__gpu_peer_init(moep_comm_t *c);
void moep__gpu_peer_free(moep_comm_t *c);
moep_status_t moep__gpu_peer_reserve(moep_comm_t *c, const char *fn, size_t need);
moep_status_t moep__gpu_peer_sync(moep_comm_t *c, const char *fn, int kind, uint64_t value);
/* A peer-mapped op (the comm's seq) on the comm's stream: begin waits until
 * every peer has finished reading its buffer in the previous op (growing
 * the buffers to `need` first); end, after our writes into the peers,
 * signals them and waits for their writes into ours. */
moep_status_t moep__gpu_peer_begin(moep_comm_t *c, const char *fn, size_t need);
moep_status_t moep__gpu_peer_end(moep_comm_t *c, const char *fn);
moep_status_t moep__gpu_peer_check(moep_comm_t *c, const char *fn);

/* Bytes per element of a dispatch / combine row (bf16 or f32). */
static inline size_t moep__gpu_esize(moep_dtype_t t) { return t == MOEP_DTYPE_BF16 ? 2 : 4; }

/* Dispatch on peer-mapped buffers (gpu_dispatch_peer.c, c->gpu->peer.on).
 * round_begin: before the layout kernels of the fresh dispatch's one round
 * (cap > 0): the op's begin, and where the count kernel writes the count
 * messages (every rank's area). round: after them: meta and x into every
 * rank's padded blocks, the copy home of the messages and our rank counts
 * + bad (host_msgs, host_rank_count: pinned) and the receive-side kernels.
 * cached: a MOEP_DISPATCH_REUSE_LAYOUT dispatch into recv_x. */
moep_status_t moep__gpu_peer_round_begin(moep_comm_t *c, moep_handle_t *h, int64_t cap,
                                         moep__cuda_msg_out_t *out);
moep_status_t moep__gpu_peer_round(moep_comm_t *c, moep_handle_t *h, const moep_dispatch_params_t *p,
                                   int64_t cap, const int64_t *rank_count, void *host_msgs,
                                   int64_t *host_rank_count);
moep_status_t moep__gpu_peer_cached(moep_comm_t *c, moep_handle_t *h, const moep_dispatch_params_t *p);

/* One-round fresh dispatch (gpu_round.c). cap rows per peer block. */
/* Rows per peer block for the next fresh dispatch from every rank's T
 * (max_t): the same on every rank; 0 = two rounds. */
int64_t moep__gpu_next_cap(int32_t R, int32_t k, int64_t max_t, bool peer);
/* Worst-case receive buffers of a one-round dispatch. */
moep_status_t moep__gpu_round_reserve(moep_comm_t *c, moep_handle_t *h, int64_t cap, size_t row,
                                      bool padded);
/* The meta and x transfers of the round (inside the caller's group):
 * sends cap rows of each peer block (send slots r * blk), receives rank 0's
 * block straight into recv_x (when it is a peer), the others into padded
 * blocks (q * cap). */
moep_status_t moep__gpu_round_transfer(moep_comm_t *c, moep_handle_t *h, int64_t cap, size_t row);
/* After the round, on the GPU: receive and expert offsets from the received
 * messages, compaction of blocks 1.. into recv_x, ids/weights, expert rows. */
typedef struct moep__gpu_round_in {
    const uint8_t *msgs;   /* R count messages */
    const void *meta, *x;  /* padded blocks of cap rows per source rank */
    int32_t skip;          /* block already in place in recv_x (-1: none) */
    bool planned;          /* recv_offset / expert_offset already computed on the GPU */
} moep__gpu_round_in_t;
moep_status_t moep__gpu_round_finish(moep_comm_t *c, moep_handle_t *h, int64_t cap, size_t row,
                                     const moep__gpu_round_in_t *in);
/* Upper bound of expert-major rows for n received tokens. */
int64_t moep__gpu_rows_bound(const moep_comm_t *c, const moep_handle_t *h, int64_t n);

#endif
