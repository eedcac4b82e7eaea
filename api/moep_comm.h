/*
 * moep communicator: bootstrap, expert-parallel dispatch and combine.
 * Included by moep.h.
 *
 * Threading and resources: moep starts no threads and has no global state
 * to initialise. All progress happens inside the calls below, on the calling
 * thread. Every blocking call gives up after the communicator's timeout
 * (params.timeout_ms, else MOEP_TIMEOUT_MS, else 30000 ms) with
 * MOEP_ERR_TIMEOUT and a message naming the peer(s) it waited for.
 */
#ifndef MOEP_COMM_H
#define MOEP_COMM_H

#include "moep_core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------ */
/* Bootstrap: the out-of-band channel used while creating a communicator. */

/*
 * Bring your own bootstrap: fill this struct with callbacks over your own
 * channel (an MPI or torch process group, a scheduler's KV store...).
 * allgather: collective; every rank contributes `bytes` from `send`; `recv`
 *   receives world_size * bytes, rank r's contribution at offset r * bytes.
 * barrier: collective.
 * destroy: optional, called by moep_bootstrap_destroy().
 * The callbacks must return MOEP_OK or an error status (e.g. MOEP_ERR_TIMEOUT).
 */
typedef struct moep_bootstrap {
    uint32_t struct_size;
    int32_t rank;
    int32_t world_size;
    void *ctx;
    moep_status_t (*allgather)(void *ctx, const void *send, void *recv, size_t bytes);
    moep_status_t (*barrier)(void *ctx);
    void (*destroy)(void *ctx);
} moep_bootstrap_t;

/*
 * Built-in TCP rendezvous (like torch's env://). Rank 0 listens on `addr`
 * (host:port), the others connect. Every message carries a magic, the
 * protocol version, its length and a hash of the job key; a peer that fails
 * any check is dropped with MOEP_ERR_PROTOCOL logged and never trusted.
 * Fields left at their init defaults come from the environment:
 *   rank        <- MOEP_RANK           world_size <- MOEP_WORLD_SIZE
 *   addr        <- MOEP_ADDR (host:port)   job_key <- MOEP_JOB_KEY (optional)
 *   timeout_ms  <- MOEP_TIMEOUT_MS (default 30000)
 */
typedef struct moep_tcp_bootstrap_params {
    uint32_t struct_size;
    int32_t rank;       /* -1: from MOEP_RANK */
    int32_t world_size; /* -1: from MOEP_WORLD_SIZE */
    const char *addr;   /* NULL: from MOEP_ADDR */
    const char *job_key;/* NULL: from MOEP_JOB_KEY, else none */
    int32_t timeout_ms; /* <= 0: from MOEP_TIMEOUT_MS, else 30000 */
} moep_tcp_bootstrap_params_t;

MOEP_API moep_status_t moep_tcp_bootstrap_params_init(moep_tcp_bootstrap_params_t *p);
/* Errors: MOEP_ERR_INVALID_ARG (bad/missing rank, size or address), MOEP_ERR_SYSTEM
 * (socket errors), MOEP_ERR_TIMEOUT, MOEP_ERR_PROTOCOL, MOEP_ERR_NO_MEMORY. */
MOEP_API moep_status_t moep_bootstrap_tcp_create(const moep_tcp_bootstrap_params_t *p,
                                                 moep_bootstrap_t **bs_p);

/* A TCP port on 127.0.0.1 that is free right now, for launching ranks on
 * one machine (MOEP_ADDR=127.0.0.1:port): the kernel picks it, moep closes
 * it again, so another process may take it before rank 0 binds it.
 * Errors: MOEP_ERR_INVALID_ARG (NULL), MOEP_ERR_SYSTEM (socket errors). */
MOEP_API moep_status_t moep_tcp_free_loopback_port(int32_t *port_p);

/* Rank `rank` of `world_size` over the TCP rendezvous at 127.0.0.1:port
 * (the other fields as moep_tcp_bootstrap_params_init leaves them; timeout_ms
 * <= 0: MOEP_TIMEOUT_MS, else 30 s). For launching ranks on one machine.
 * Errors: as moep_bootstrap_tcp_create; MOEP_ERR_INVALID_ARG for a port
 * outside 1..65535. */
MOEP_API moep_status_t moep_bootstrap_tcp_loopback(int32_t rank, int32_t world_size, int32_t port,
                                                   int32_t timeout_ms, moep_bootstrap_t **bs_p);

/* MPI bootstrap over `mpi_comm` (a pointer to an MPI_Comm; NULL = MPI_COMM_WORLD).
 * MPI must be initialised by the caller. MOEP_ERR_UNSUPPORTED if built without MPI. */
MOEP_API moep_status_t moep_bootstrap_mpi_create(void *mpi_comm, moep_bootstrap_t **bs_p);

/*
 * In-process bootstrap for ranks that are threads of one process (the `local`
 * transport, embedding tests). Create one world, then one bootstrap per
 * rank thread; destroy the world after every bootstrap.
 */
typedef struct moep_local_world moep_local_world_t;
MOEP_API moep_status_t moep_local_world_create(int32_t world_size, int32_t timeout_ms,
                                               moep_local_world_t **world_p);
MOEP_API void moep_local_world_destroy(moep_local_world_t *world);
MOEP_API moep_status_t moep_bootstrap_local_create(moep_local_world_t *world, int32_t rank,
                                                   moep_bootstrap_t **bs_p);

/* Destroy a built-in bootstrap (calls bs->destroy). NULL is a no-op. For a
 * caller-filled struct without destroy this does nothing. */
MOEP_API void moep_bootstrap_destroy(moep_bootstrap_t *bs);

/* ------------------------------------------------------------------ */
/* Communicator */

typedef struct moep_comm moep_comm_t;

typedef struct moep_comm_params {
    uint32_t struct_size;
    /* Transport by name ("local", "ucx", "libfabric", "nccl"), case-insensitive.
     * NULL: MOEP_TRANSPORT (comma list, "^name" excludes), else probe in
     * priority order nccl, ucx, libfabric, local. An explicit choice that
     * fails is an error, never a silent fallback. */
    const char *transport;
    int32_t num_experts;        /* E, global (required) */
    const int32_t *expert_rank; /* [E] expert -> rank; NULL = contiguous blocks (E % R == 0) */
    int32_t timeout_ms;         /* <= 0: MOEP_TIMEOUT_MS, else 30000 */
    moep_device_t device;       /* where dispatch/combine buffers live; default CPU */
    int32_t device_id;
} moep_comm_params_t;

MOEP_API moep_status_t moep_comm_params_init(moep_comm_params_t *p);

/*
 * Create a communicator over the bootstrap's ranks (collective). The bootstrap
 * is used only during this call and may be destroyed afterwards.
 * All ranks must pass the same num_experts and expert_rank: checked here,
 * MOEP_ERR_MISMATCH on every rank otherwise.
 * Errors: MOEP_ERR_INVALID_ARG, MOEP_ERR_MISMATCH, MOEP_ERR_UNSUPPORTED (transport
 * not compiled in / cannot run here), MOEP_ERR_SYSTEM, MOEP_ERR_TIMEOUT.
 */
MOEP_API moep_status_t moep_comm_create(const moep_comm_params_t *p, const moep_bootstrap_t *bs,
                                        moep_comm_t **comm_p);
/* Destroy (local, never blocks on peers). NULL is a no-op. */
MOEP_API void moep_comm_destroy(moep_comm_t *comm);

MOEP_API int32_t moep_comm_rank(const moep_comm_t *comm);
MOEP_API int32_t moep_comm_world_size(const moep_comm_t *comm);
MOEP_API const char *moep_comm_transport(const moep_comm_t *comm);
MOEP_API int32_t moep_comm_num_experts(const moep_comm_t *comm);
/* Experts held by this rank, in ascending global id; their local ids are 0..n-1. */
MOEP_API int32_t moep_comm_num_local_experts(const moep_comm_t *comm);
MOEP_API const int32_t *moep_comm_local_experts(const moep_comm_t *comm);
/* Detailed message of the last failure on this communicator ("" if none). */
MOEP_API const char *moep_comm_last_error(const moep_comm_t *comm);

/* ------------------------------------------------------------------ */
/* Dispatch and combine (semantics of DeepEP's normal mode). */

typedef struct moep_handle moep_handle_t;

enum {
    /* Reuse the layout in *handle_p (cached path, decode): topk_idx and
     * topk_weights are not read and no counts are exchanged. */
    MOEP_DISPATCH_REUSE_LAYOUT = 1u << 0,
    /* Do not build expert_x (expert_offset and the counts are still filled):
     * for callers that run their experts straight from recv_x, as DeepEP's
     * normal-mode dispatch returns it. Saves one copy of every (token,
     * local expert) row. combine works the same. */
    MOEP_DISPATCH_NO_EXPERT_X = 1u << 1,
};

typedef struct moep_dispatch_params {
    uint32_t struct_size;
    uint32_t flags;                    /* MOEP_DISPATCH_* */
    const moep_tensor_t *x;            /* [T, H] f32 or bf16; T may be 0 */
    const moep_tensor_t *topk_idx;     /* [T, k] i32 global expert ids, -1 = masked */
    const moep_tensor_t *topk_weights; /* [T, k] f32 */
    int32_t expert_alignment;          /* pad each local expert's rows to a multiple (default 1) */
    /* Wire format of x: 0 = x's dtype; MOEP_DTYPE_BF16 (for f32 x) halves the
     * bytes; MOEP_DTYPE_FP8_E4M3 = FP8 with one f32 scale per token per 128
     * channels (the last block may be partial), about 0.52x the bytes of
     * bf16, dequantized on receipt into x's dtype (CPU path; the GPU path
     * returns MOEP_ERR_UNSUPPORTED for FP8 for now). x must be finite for
     * FP8 (MOEP_ERR_NUMERIC, announced to every rank). */
    moep_dtype_t wire_dtype;
} moep_dispatch_params_t;

MOEP_API moep_status_t moep_dispatch_params_init(moep_dispatch_params_t *p);

/*
 * What this rank received. Views into memory owned by the handle, valid until
 * the handle's next dispatch or its destruction.
 */
typedef struct moep_dispatch_result {
    int64_t num_recv;                /* tokens received, each once per source (rank, token) */
    moep_tensor_t recv_x;            /* [num_recv, H], dtype of x */
    moep_tensor_t recv_topk_idx;     /* [num_recv, k] i32 local expert ids, -1 = not ours */
    moep_tensor_t recv_topk_weights; /* [num_recv, k] f32 */
    const int32_t *recv_src_rank;    /* [num_recv] home rank of each received token */
    int32_t num_local_experts;       /* L */
    const int64_t *tokens_per_local_expert; /* [L] unpadded */
    /* Expert-major copy, ready for moep_expert_ffn(): rows of local expert l
     * are expert_offset[l] .. expert_offset[l+1]-1; each segment is padded to
     * expert_alignment with zero rows. */
    moep_tensor_t expert_x;          /* [num_expert_rows, H]; data NULL with MOEP_DISPATCH_NO_EXPERT_X */
    const int64_t *expert_offset;    /* [L+1] */
    int64_t num_expert_rows;
} moep_dispatch_result_t;

/*
 * Dispatch (collective over the communicator).
 * handle_p: in/out. If *handle_p is NULL a handle is created; otherwise it is
 * reused (its buffers recycled; with MOEP_DISPATCH_REUSE_LAYOUT also its layout).
 * Every rank must use the same H, dtype, k and wire format: checked on the
 * wire, MOEP_ERR_MISMATCH naming the disagreeing peer.
 * Errors: MOEP_ERR_INVALID_ARG, MOEP_ERR_SHAPE, MOEP_ERR_OUT_OF_RANGE (expert id),
 * MOEP_ERR_INVALID_USAGE (REUSE_LAYOUT without a handle or with a different T),
 * MOEP_ERR_MISMATCH, MOEP_ERR_TIMEOUT, MOEP_ERR_REMOTE, MOEP_ERR_SYSTEM, MOEP_ERR_NO_MEMORY.
 */
MOEP_API moep_status_t moep_dispatch(moep_comm_t *comm, const moep_dispatch_params_t *p,
                                     moep_handle_t **handle_p, moep_dispatch_result_t *result);

typedef struct moep_combine_params {
    uint32_t struct_size;
    /* Expert outputs in the expert-major layout of the dispatch result
     * ([num_expert_rows, H], f32 or bf16; padding rows ignored). */
    const moep_tensor_t *expert_y;
    /* [T, H] f32 or bf16 on the home rank: out[t] = sum over t's experts of
     * weight * expert_y, accumulated in f32 (plus out[t] if accumulate). */
    moep_tensor_t *out;
    int32_t accumulate;
} moep_combine_params_t;

MOEP_API moep_status_t moep_combine_params_init(moep_combine_params_t *p);

/*
 * Combine (collective): the reverse of the dispatch that made `h`. May be
 * called several times on the same handle.
 * Errors: as moep_dispatch, plus MOEP_ERR_SHAPE when expert_y does not match
 * the handle's layout.
 */
MOEP_API moep_status_t moep_combine(moep_comm_t *comm, const moep_combine_params_t *p,
                                    moep_handle_t *h);

/* Bytes this rank put on the wire in the handle's last dispatch / combine
 * (payload and counts, excluding self-sends). Any pointer may be NULL. */
MOEP_API void moep_handle_bytes(const moep_handle_t *h, uint64_t *dispatch_sent,
                                uint64_t *combine_sent);
/* Release a handle; NULL is a no-op. */
MOEP_API void moep_handle_destroy(moep_handle_t *h);

/* ------------------------------------------------------------------ */
/* Transport discovery (for `moep info`). */

/* Number of transports moep knows, compiled in or not (nccl, ucx, libfabric, local). */
MOEP_API int32_t moep_transport_count(void);
/*
 * Describe transport i (0 <= i < moep_transport_count(), priority order):
 * its name, whether it is compiled in, and its probe result with the reason
 * in `why` (e.g. "not compiled in (build with --config=cuda)"). compiled_p,
 * probe_p and why may be NULL. Errors: MOEP_ERR_INVALID_ARG (name_p NULL),
 * MOEP_ERR_OUT_OF_RANGE (i).
 */
MOEP_API moep_status_t moep_transport_describe(int32_t i, const char **name_p, int *compiled_p,
                                               moep_status_t *probe_p, char *why,
                                               size_t why_len);

#ifdef __cplusplus
}
#endif
#endif /* MOEP_COMM_H */
