/*
 * Peer-mapped buffers for the device communicators of one node: when every
 * rank is a separate process on the same host and every GPU can map every
 * other's memory (NVLink or PCIe peer access), combine writes its partial
 * sums straight into the home rank's receive buffer (the reduction IS the
 * transfer) instead of reducing into a send buffer and handing it to NCCL,
 * and dispatch's pack stores x rows, ids and counts straight into the
 * receiver's padded blocks (gpu_dispatch.c).
 *
 * One op at a time uses the buffer (dispatch and combine are ordered on the
 * comm's stream): begin waits for every peer's "freed" signal of the
 * previous op (it has finished reading its buffer), end sends "arrived"
 * (our stores into the peers are done) and waits for every peer's.
 *
 * What each rank exports (cudaIpcGetMemHandle, handles moved over the
 * transport's own alltoallv, so no extra channel is needed):
 *  - a signal area of MOEP__PEER_KINDS * R u64, fixed for the comm's life:
 *    slot kind * R + p is written only by rank p (kinds in gpu_internal.h);
 *  - a receive buffer, the same size on every rank, grown collectively:
 *    every rank computes the same need from what the last fresh dispatch
 *    told all of them (every rank's T and the block capacity).
 * Whether the path is on is decided once, at comm creation, the same on
 * every rank: every rank must be able to export and to open every other's
 * area, on one host (hostname + boot id), with MOEP_GPU_PEER unset or 1.
 * Otherwise combine stays on the transport.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gpu_internal.h"

/* 64-bit FNV-1a of the host name and the boot id: equal only on one host. */
static uint64_t host_identity(void) {
    char buf[512] = {0};
    gethostname(buf, 255);
    FILE *f = fopen("/proc/sys/kernel/random/boot_id", "r");
    if (f != NULL) {
        size_t n = strlen(buf);
        if (fgets(buf + n, (int)(sizeof buf - n), f) == NULL) buf[n] = '\0';
        fclose(f);
    }
    uint64_t h = 14695981039346656037ull;
    for (const char *p = buf; *p; p++) h = (h ^ (uint8_t)*p) * 1099511628211ull;
    return h;
}

/* Every rank's `bytes`-record into all[R], over the transport, on the comm's
 * stream (so a peer's record arrives after all its earlier work there). */
static moep_status_t exchange(moep_comm_t *c, const char *fn, const void *mine, size_t bytes,
                              void *all) {
    moep__gpu_peer_t *pm = &c->gpu->peer;
    int32_t R = c->world_size;
    /* stream-ordered: the buffers' collective growth comes through here */
    MOEP_TRY(moep__dbuf_reserve(c, fn, &pm->scratch, bytes * (size_t)(R + 1)));
    uint8_t *send = pm->scratch.p, *recv = send + bytes;
    cudaStream_t s = (cudaStream_t)c->gpu->stream;
    int64_t *v = c->gpu->row_tmp; /* [0, 4R): one row to and from every peer */
    for (int32_t r = 0; r < R; r++) {
        v[r] = v[2 * R + r] = 1;
        v[R + r] = 0;
        v[3 * R + r] = r;
    }
    MOEP_TRY(moep__cuda_check(c, fn, cudaMemcpyAsync(send, mine, bytes, cudaMemcpyHostToDevice, s),
                              "copy of the peer record"));
    MOEP_TRY(moep__gpu_alltoallv_rows(c, fn, send, v, v + R, recv, v + 2 * R, v + 3 * R, bytes, NULL));
    MOEP_TRY(moep__cuda_check(c, fn, cudaEventRecord(pm->ready, s), "cudaEventRecord"));
    MOEP_TRY(moep__gpu_wait_event(c, fn, pm->ready, "the peer-buffer handles"));
    MOEP_TRY(moep__cuda_check(c, fn, cudaMemcpy(all, recv, bytes * (size_t)R, cudaMemcpyDeviceToHost),
                              "copy of the peer records"));
    memcpy((uint8_t *)all + (size_t)c->rank * bytes, mine, bytes);
    return MOEP_OK;
}

/* Every rank's verdict: true iff all of them say yes. */
static moep_status_t all_agree(moep_comm_t *c, const char *fn, int32_t yes, bool *all_p) {
    int32_t *v = moep__calloc(fn, (size_t)c->world_size, sizeof(int32_t));
    if (v == NULL) return MOEP_ERR_NO_MEMORY;
    moep_status_t st = exchange(c, fn, &yes, sizeof yes, v);
    bool all = st == MOEP_OK;
    for (int32_t r = 0; all && r < c->world_size; r++) all = v[r] != 0;
    free(v);
    *all_p = all;
    return st;
}

static void close_mapped(moep_comm_t *c, void **mapped) {
    for (int32_t r = 0; r < c->world_size && r < MOEP_CUDA_PEER_MAX; r++) {
        if (r != c->rank && mapped[r] != NULL) cudaIpcCloseMemHandle(mapped[r]);
        mapped[r] = NULL;
    }
}

/* Open every peer's handle into mapped[]; false if any fails (all closed). */
static bool open_mapped(moep_comm_t *c, const cudaIpcMemHandle_t *handles, size_t stride, void *own,
                        void **mapped) {
    bool ok = true;
    for (int32_t r = 0; r < c->world_size; r++) {
        if (r == c->rank) {
            mapped[r] = own;
            continue;
        }
        const cudaIpcMemHandle_t *h = (const cudaIpcMemHandle_t *)((const uint8_t *)handles + r * stride);
        if (ok && cudaIpcOpenMemHandle(&mapped[r], *h, cudaIpcMemLazyEnablePeerAccess) != cudaSuccess) {
            cudaGetLastError();
            mapped[r] = NULL;
            ok = false;
        }
    }
    if (!ok) close_mapped(c, mapped);
    return ok;
}

typedef struct hello {
    uint64_t host;
    int32_t can, pad;
    cudaIpcMemHandle_t area;
} hello_t;

moep_status_t moep__gpu_peer_init(moep_comm_t *c) {
    static const char *fn = "moep_comm_create";
    moep__gpu_peer_t *pm = &c->gpu->peer;
    int32_t R = c->world_size;
    if (R < 2) return MOEP_OK;
    MOEP_TRY(moep__cuda_check(c, fn, cudaEventCreateWithFlags(&pm->ready, cudaEventDisableTiming),
                              "cudaEventCreate"));
    hello_t mine;
    memset(&mine, 0, sizeof mine);
    mine.host = host_identity();
    mine.can = R <= MOEP_CUDA_PEER_MAX && moep__env_long("MOEP_GPU_PEER", 1) != 0;
    size_t area_bytes = (size_t)MOEP__PEER_KINDS * R * sizeof(uint64_t);
    /* exported (cudaIpcGetMemHandle takes cudaMalloc memory only), once, at
     * creation */
    if (mine.can && cudaMalloc((void **)&pm->area, area_bytes) != cudaSuccess) mine.can = 0;
    if (mine.can && (cudaMemset(pm->area, 0, area_bytes) != cudaSuccess ||
                     cudaIpcGetMemHandle(&mine.area, pm->area) != cudaSuccess))
        mine.can = 0;
    if (mine.can &&
        cudaHostAlloc((void **)&pm->error_host, sizeof(int32_t), cudaHostAllocMapped) != cudaSuccess)
        mine.can = 0;
    if (mine.can && cudaHostGetDevicePointer((void **)&pm->error_dev, pm->error_host, 0) != cudaSuccess)
        mine.can = 0;
    cudaGetLastError(); /* a refusal above is an answer, not an error */
    hello_t *all = moep__calloc(fn, (size_t)R, sizeof *all);
    if (all == NULL) return MOEP_ERR_NO_MEMORY;
    moep_status_t st = exchange(c, fn, &mine, sizeof mine, all);
    bool can = st == MOEP_OK;
    for (int32_t r = 0; can && r < R; r++) can = all[r].can && all[r].host == mine.host;
    bool opened = can && open_mapped(c, &all[0].area, sizeof *all, pm->area, (void **)pm->areas);
    free(all);
    if (st == MOEP_OK && can) st = all_agree(c, fn, opened, &pm->on);
    if (pm->error_host != NULL) *pm->error_host = 0;
    if (!pm->on) close_mapped(c, (void **)pm->areas);
    MOEP_LOG_AT(MOEP_LOG_INFO, "rank %d: peer-mapped combine %s", c->rank, pm->on ? "on" : "off");
    return st;
}

void moep__gpu_peer_free(moep_comm_t *c) {
    moep__gpu_peer_t *pm = &c->gpu->peer;
    close_mapped(c, pm->bufs);
    close_mapped(c, (void **)pm->areas);
    if (pm->buf != NULL) cudaFree(pm->buf);
    if (pm->area != NULL) cudaFree(pm->area);
    moep__cuda_buf_free(&pm->scratch);
    if (pm->error_host != NULL) cudaFreeHost(pm->error_host);
    if (pm->ready != NULL) cudaEventDestroy(pm->ready);
    memset(pm, 0, sizeof *pm);
}

moep_status_t moep__gpu_peer_reserve(moep_comm_t *c, const char *fn, size_t need) {
    moep__gpu_peer_t *pm = &c->gpu->peer;
    if (need <= pm->bytes) return MOEP_OK;
    size_t bytes = need + need / 4;
    struct {
        int32_t ok, pad;
        cudaIpcMemHandle_t h;
    } mine, *all = moep__calloc(fn, (size_t)c->world_size, sizeof mine);
    if (all == NULL) return MOEP_ERR_NO_MEMORY;
    memset(&mine, 0, sizeof mine);
    /* plain cudaMalloc / cudaFree, not moep__cuda_buf_grow: cudaIpcGetMemHandle
     * exports cudaMalloc memory only, not the stream-ordered pool's. The old
     * buffer is freed after the exchange below, when every rank (so every
     * transfer into it) is known to be past its last use. */
    void *fresh = NULL;
    mine.ok = cudaMalloc(&fresh, bytes) == cudaSuccess && cudaIpcGetMemHandle(&mine.h, fresh) == cudaSuccess;
    cudaGetLastError();
    moep_status_t st = exchange(c, fn, &mine, sizeof mine, all);
    bool ok = st == MOEP_OK;
    for (int32_t r = 0; ok && r < c->world_size; r++) ok = all[r].ok != 0;
    if (!ok) { /* every rank saw the same records: all stop here, the old buffers stay */
        free(all);
        if (fresh != NULL) cudaFree(fresh);
        if (st != MOEP_OK) return st;
        return moep__comm_fail(c, MOEP_ERR_NO_MEMORY, "%s: a rank could not allocate the %zu-byte "
                               "peer-mapped combine buffer", fn, bytes);
    }
    /* every peer has passed its last combine (its record came after it on
     * its stream), and so have we: the old buffers are unused now */
    close_mapped(c, pm->bufs);
    if (pm->buf != NULL) cudaFree(pm->buf);
    pm->buf = fresh;
    pm->bytes = bytes;
    bool opened = open_mapped(c, &all[0].h, sizeof mine, fresh, pm->bufs);
    free(all);
    if (!opened) {
        c->broken = true; /* the peers may have opened ours and go on */
        return moep__comm_fail(c, MOEP_ERR_CUDA, "%s (rank %d): cannot map a peer's combine buffer",
                               fn, c->rank);
    }
    return MOEP_OK;
}

moep_status_t moep__gpu_peer_sync(moep_comm_t *c, const char *fn, int kind, uint64_t value) {
    moep__gpu_peer_t *pm = &c->gpu->peer;
    moep__cuda_peer_sync_t a;
    memset(&a, 0, sizeof a);
    for (int32_t r = 0; r < c->world_size; r++) a.area[r] = pm->areas[r];
    a.ranks = c->world_size;
    a.me = c->rank;
    a.kind = kind;
    a.value = value;
    a.timeout_ns = (uint64_t)c->timeout_ms * 1000000ull;
    a.error = pm->error_dev;
    return moep__cuda_check(c, fn, moep__cuda_peer_sync(&a, c->gpu->stream), "peer signal kernel");
}

moep_status_t moep__gpu_peer_check(moep_comm_t *c, const char *fn) {
    moep__gpu_peer_t *pm = &c->gpu->peer;
    if (!pm->on || *(volatile int32_t *)pm->error_host == 0) return MOEP_OK;
    int32_t q = *(volatile int32_t *)pm->error_host - 1;
    c->broken = true;
    return moep__comm_fail(c, MOEP_ERR_TIMEOUT,
                           "%s (rank %d): rank %d did not signal a peer-mapped combine within %d ms "
                           "(dead or stalled); the results of that combine are not valid",
                           fn, c->rank, (int)q, (int)c->timeout_ms);
}

moep_status_t moep__gpu_peer_begin(moep_comm_t *c, const char *fn, size_t need) {
    moep__gpu_peer_t *pm = &c->gpu->peer;
    MOEP_TRY(moep__gpu_peer_reserve(c, fn, need));
    return pm->last_op != 0 ? moep__gpu_peer_sync(c, fn, MOEP__PEER_FREED, pm->last_op) : MOEP_OK;
}

moep_status_t moep__gpu_peer_end(moep_comm_t *c, const char *fn) {
    MOEP_TRY(moep__gpu_peer_sync(c, fn, MOEP__PEER_ARRIVED, c->seq));
    c->gpu->peer.last_op = c->seq;
    return MOEP_OK;
}
