/* The exchange patterns dispatch and combine use: a list of tagged messages
 * posted together and waited for within the timeout, and on top of it an
 * all-to-all-v of byte blocks (one or more parts, each with its own tag,
 * self blocks copied while the transfers run). */
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

/* Post the receives, then the sends. */
static moep_status_t post_msgs(moep_comm_t *c, const moep_msg_t *msgs, int nrecv, int nsend,
                               void **reqs, int32_t *peers, uint64_t *wire) {
    for (int i = 0; i < nrecv + nsend; i++) {
        const moep_msg_t *m = &msgs[i];
        peers[i] = m->peer;
        if (i < nrecv) {
            MOEP_TRY(c->vt->irecv(c->tctx, m->peer, m->tag, m->buf, m->bytes, NULL, &reqs[i]));
        } else {
            MOEP_TRY(c->vt->isend(c->tctx, m->peer, m->tag, m->buf, m->bytes, NULL, &reqs[i]));
            *wire += m->bytes;
        }
    }
    return MOEP_OK;
}

static moep_status_t check_lengths(moep_comm_t *c, const char *fn, const moep_msg_t *msgs,
                                   int nrecv, const size_t *lens) {
    for (int i = 0; i < nrecv; i++)
        if (lens[i] != msgs[i].bytes)
            return moep__comm_fail(c, MOEP_ERR_PROTOCOL, "%s: rank %d sent %zu bytes, expected %zu",
                                   fn, msgs[i].peer, lens[i], msgs[i].bytes);
    return MOEP_OK;
}

moep_status_t moep__exchange(moep_comm_t *c, const char *fn, const moep_msg_t *msgs, int nrecv,
                             int nsend, moep_overlap_fn overlap, void *overlap_arg,
                             uint64_t *wire_bytes_p) {
    size_t n = (size_t)(nrecv + nsend);
    void **reqs = calloc(n + 1, sizeof(void *));
    int32_t *peers = calloc(n + 1, sizeof(int32_t));
    size_t *lens = calloc(n + 1, sizeof(size_t));
    if (reqs == NULL || peers == NULL || lens == NULL) {
        free(reqs);
        free(peers);
        free(lens);
        return moep__comm_fail(c, MOEP_ERR_NO_MEMORY, "%s: out of memory", fn);
    }
    double deadline = moep__now_ms() + c->timeout_ms;
    uint64_t wire = 0;
    moep_status_t st = post_msgs(c, msgs, nrecv, nsend, reqs, peers, &wire);
    if (st != MOEP_OK) {
        moep__comm_fail(c, st, "%s: posting transfers failed: %s", fn, moep_last_error());
    } else {
        if (overlap != NULL) st = overlap(c, fn, overlap_arg); /* while the transfers run */
        char err[256] = "";
        moep_status_t wst = moep__transport_wait(c->vt, c->tctx, reqs, peers, (int)n, deadline, lens,
                                                 err, sizeof err);
        if (wst != MOEP_OK)
            st = moep__comm_fail(c, wst, "%s (rank %d): %s", fn, c->rank, err);
        else if (st == MOEP_OK)
            st = check_lengths(c, fn, msgs, nrecv, lens);
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

typedef struct self_copy {
    const moep_a2a_part_t *parts;
    int nparts;
} self_copy_t;

static moep_status_t copy_self_cb(moep_comm_t *c, const char *fn, void *arg) {
    const self_copy_t *sc = arg;
    return copy_self(c, fn, sc->parts, sc->nparts);
}

/* Every part's receives, then every part's sends; staggered peer order
 * spreads the load. */
static int parts_to_msgs(const moep_comm_t *c, const moep_a2a_part_t *parts, int nparts,
                         moep_msg_t *msgs) {
    int32_t R = c->world_size, me = c->rank;
    int n = 0;
    for (int p = 0; p < nparts; p++)
        for (int32_t i = 1; i < R; i++) {
            int32_t peer = (me + R - i) % R;
            msgs[n++] = (moep_msg_t){peer, parts[p].tag, parts[p].recv_buf + parts[p].recv_off[peer],
                                     parts[p].recv_bytes[peer]};
        }
    for (int p = 0; p < nparts; p++)
        for (int32_t i = 1; i < R; i++) {
            int32_t peer = (me + i) % R;
            msgs[n++] = (moep_msg_t){peer, parts[p].tag,
                                     (uint8_t *)parts[p].send_buf + parts[p].send_off[peer],
                                     parts[p].send_bytes[peer]};
        }
    return n;
}

moep_status_t moep__alltoallv(moep_comm_t *c, const char *fn, const moep_a2a_part_t *parts,
                              int nparts, uint64_t *wire_bytes_p) {
    int per_side = nparts * (c->world_size - 1);
    moep_msg_t *msgs = calloc((size_t)(2 * per_side) + 1, sizeof *msgs);
    if (msgs == NULL) return moep__comm_fail(c, MOEP_ERR_NO_MEMORY, "%s: out of memory", fn);
    parts_to_msgs(c, parts, nparts, msgs);
    self_copy_t sc = {parts, nparts};
    moep_status_t st = moep__exchange(c, fn, msgs, per_side, per_side, copy_self_cb, &sc, wire_bytes_p);
    free(msgs);
    return st;
}
