/* The one exchange pattern dispatch and combine use: an all-to-all-v of
 * byte blocks over the transport (one or more parts posted together, each
 * with its own tag), self blocks copied, bounded by the timeout. */
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

/* Post the receives then the sends of every part; staggered peer order
 * spreads the load. reqs/peers: [nparts][2R], receives first. */
static moep_status_t post_all(moep_comm_t *c, const moep_a2a_part_t *parts, int nparts, void **reqs,
                              int32_t *peers, uint64_t *wire) {
    int32_t R = c->world_size, me = c->rank;
    for (int p = 0; p < nparts; p++) {
        const moep_a2a_part_t *pt = &parts[p];
        void **rq = reqs + (size_t)p * 2 * R;
        int32_t *pr = peers + (size_t)p * 2 * R;
        for (int32_t i = 1; i < R; i++) {
            int32_t peer = (me + R - i) % R;
            pr[peer] = peer;
            MOEP_TRY(c->vt->irecv(c->tctx, peer, pt->tag, pt->recv_buf + pt->recv_off[peer],
                                  pt->recv_bytes[peer], NULL, &rq[peer]));
        }
    }
    for (int p = 0; p < nparts; p++) {
        const moep_a2a_part_t *pt = &parts[p];
        void **rq = reqs + (size_t)p * 2 * R;
        int32_t *pr = peers + (size_t)p * 2 * R;
        for (int32_t i = 1; i < R; i++) {
            int32_t peer = (me + i) % R;
            pr[R + peer] = peer;
            MOEP_TRY(c->vt->isend(c->tctx, peer, pt->tag, pt->send_buf + pt->send_off[peer],
                                  pt->send_bytes[peer], NULL, &rq[R + peer]));
            *wire += pt->send_bytes[peer];
        }
    }
    return MOEP_OK;
}

static moep_status_t copy_self(moep_comm_t *c, const char *fn, const moep_a2a_part_t *parts,
                               int nparts) {
    int32_t me = c->rank;
    for (int p = 0; p < nparts; p++) {
        const moep_a2a_part_t *pt = &parts[p];
        if (pt->send_bytes[me] != pt->recv_bytes[me])
            return moep__comm_fail(c, MOEP_ERR_INTERNAL, "%s: self block size mismatch", fn);
        if (pt->send_bytes[me] > 0 && pt->recv_buf + pt->recv_off[me] != pt->send_buf + pt->send_off[me])
            memcpy(pt->recv_buf + pt->recv_off[me], pt->send_buf + pt->send_off[me], pt->send_bytes[me]);
    }
    return MOEP_OK;
}

static moep_status_t check_lengths(moep_comm_t *c, const char *fn, const moep_a2a_part_t *parts,
                                   int nparts, const size_t *lens) {
    int32_t R = c->world_size;
    for (int p = 0; p < nparts; p++)
        for (int32_t r = 0; r < R; r++)
            if (r != c->rank && lens[(size_t)p * 2 * R + r] != parts[p].recv_bytes[r])
                return moep__comm_fail(c, MOEP_ERR_PROTOCOL, "%s: rank %d sent %zu bytes, expected %zu",
                                       fn, r, lens[(size_t)p * 2 * R + r], parts[p].recv_bytes[r]);
    return MOEP_OK;
}

moep_status_t moep__alltoallv(moep_comm_t *c, const char *fn, const moep_a2a_part_t *parts,
                              int nparts, uint64_t *wire_bytes_p) {
    size_t n = (size_t)nparts * 2 * (size_t)c->world_size;
    void **reqs = calloc(n, sizeof(void *));
    int32_t *peers = calloc(n, sizeof(int32_t));
    size_t *lens = calloc(n, sizeof(size_t));
    if (reqs == NULL || peers == NULL || lens == NULL) {
        free(reqs);
        free(peers);
        free(lens);
        return moep__comm_fail(c, MOEP_ERR_NO_MEMORY, "%s: out of memory", fn);
    }
    double deadline = moep__now_ms() + c->timeout_ms;
    uint64_t wire = 0;
    moep_status_t st = post_all(c, parts, nparts, reqs, peers, &wire);
    if (st != MOEP_OK) {
        moep__comm_fail(c, st, "%s: posting transfers failed: %s", fn, moep_last_error());
    } else {
        st = copy_self(c, fn, parts, nparts); /* overlaps with the transfers */
        char err[256] = "";
        moep_status_t wst = moep__transport_wait(c->vt, c->tctx, reqs, peers, (int)n, deadline, lens,
                                                 err, sizeof err);
        if (wst != MOEP_OK)
            st = moep__comm_fail(c, wst, "%s (rank %d): %s", fn, c->rank, err);
        else if (st == MOEP_OK)
            st = check_lengths(c, fn, parts, nparts, lens);
    }
    if (st != MOEP_OK) {
        /* Requests may still be in flight: the comm cannot be trusted any more. */
        for (size_t i = 0; i < n; i++)
            if (reqs[i] != NULL) c->vt->cancel(c->tctx, reqs[i]);
        c->broken = true;
    }
    if (wire_bytes_p) *wire_bytes_p = wire;
    free(reqs);
    free(peers);
    free(lens);
    return st;
}
