/* The one exchange pattern dispatch and combine use: an all-to-all-v of
 * byte blocks over the transport, self block copied, bounded by the timeout. */
#include <stdlib.h>
#include <string.h>

#include "comm_internal.h"
#include "transport_core.h"

moep_status_t moep__buf_reserve(const char *fn, void **buf, size_t *cap, size_t need) {
    if (need <= *cap && *buf != NULL) return MOEP_OK;
    size_t grown = need + need / 4 + 64;
    void *p = moep__aligned_alloc(fn, grown);
    if (p == NULL) return MOEP_ERR_NO_MEMORY;
    free(*buf);
    *buf = p;
    *cap = grown;
    return MOEP_OK;
}

moep_status_t moep__alltoallv(moep_comm_t *c, const char *fn, uint64_t tag,
                              const uint8_t *send_buf, const size_t *send_off,
                              const size_t *send_bytes, uint8_t *recv_buf, const size_t *recv_off,
                              const size_t *recv_bytes, uint64_t *wire_bytes_p) {
    int32_t R = c->world_size, me = c->rank;
    /* reqs[0..R) receives, reqs[R..2R) sends */
    void **reqs = calloc((size_t)(2 * R), sizeof(void *));
    int32_t *peers = calloc((size_t)(2 * R), sizeof(int32_t));
    if (reqs == NULL || peers == NULL) {
        free(reqs);
        free(peers);
        return moep__comm_fail(c, MOEP_ERR_NO_MEMORY, "%s: out of memory", fn);
    }
    double deadline = moep__now_ms() + c->timeout_ms;
    moep_status_t st = MOEP_OK;
    uint64_t wire = 0;
    for (int32_t i = 1; i < R && st == MOEP_OK; i++) {
        int32_t peer = (me + R - i) % R; /* staggered order spreads the load */
        peers[peer] = peer;
        st = c->vt->irecv(c->tctx, peer, tag, recv_buf + recv_off[peer], recv_bytes[peer], NULL,
                          &reqs[peer]);
    }
    for (int32_t i = 1; i < R && st == MOEP_OK; i++) {
        int32_t peer = (me + i) % R;
        peers[R + peer] = peer;
        st = c->vt->isend(c->tctx, peer, tag, send_buf + send_off[peer], send_bytes[peer], NULL,
                          &reqs[R + peer]);
        wire += send_bytes[peer];
    }
    if (st != MOEP_OK) {
        moep__comm_fail(c, st, "%s: posting transfers failed: %s", fn, moep_last_error());
    } else {
        if (send_bytes[me] != recv_bytes[me]) {
            st = moep__comm_fail(c, MOEP_ERR_INTERNAL, "%s: self block size mismatch", fn);
        } else if (send_bytes[me] > 0) {
            memcpy(recv_buf + recv_off[me], send_buf + send_off[me], send_bytes[me]);
        }
        size_t *lens = calloc((size_t)(2 * R), sizeof(size_t));
        char err[256] = "";
        moep_status_t wst = lens ? moep__transport_wait(c->vt, c->tctx, reqs, peers, 2 * R,
                                                        deadline, lens, err, sizeof err)
                                 : MOEP_ERR_NO_MEMORY;
        if (wst != MOEP_OK) {
            st = moep__comm_fail(c, wst, "%s (rank %d): %s", fn, me, err);
        } else if (st == MOEP_OK) {
            for (int32_t r = 0; r < R; r++)
                if (r != me && lens[r] != recv_bytes[r]) {
                    st = moep__comm_fail(c, MOEP_ERR_PROTOCOL,
                                         "%s: rank %d sent %zu bytes, expected %zu", fn, r,
                                         lens[r], recv_bytes[r]);
                    break;
                }
        }
        free(lens);
    }
    if (st != MOEP_OK) {
        /* Requests may still be in flight: the comm cannot be trusted any more. */
        for (int32_t i = 0; i < 2 * R; i++)
            if (reqs[i] != NULL) c->vt->cancel(c->tctx, reqs[i]);
        c->broken = true;
    }
    if (wire_bytes_p) *wire_bytes_p = wire;
    free(reqs);
    free(peers);
    return st;
}
