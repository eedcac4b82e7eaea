/*
 * Cached dispatches without the pack copy. A fresh dispatch carries each
 * row's token index, so both ends of every (sender, receiver) pair know how
 * the sender's rows for that receiver split into runs of consecutive tokens.
 * A cached dispatch then sends each run straight from x into its place in
 * the receiver's recv_x, one message per run under its own tag: the
 * transport moves each byte once, as MPI_Alltoallv does. A pair with more
 * runs than its share of MOEP_DIRECT_MAX_MSGS keeps the packed single
 * message.
 */
#include <stdlib.h>
#include <string.h>

#include "comm_internal.h"

static const char *const FN = "moep_dispatch";

void moep__runs_free(moep_row_runs_t *runs) {
    free(runs->first);
    free(runs->rows);
    free(runs->peer_offset);
    memset(runs, 0, sizeof *runs);
}

static moep_status_t runs_reserve(moep_row_runs_t *runs, int32_t R, size_t n) {
    if (runs->peer_offset == NULL) {
        runs->peer_offset = moep__calloc(FN, (size_t)R + 1, sizeof(int64_t));
        if (runs->peer_offset == NULL) return MOEP_ERR_NO_MEMORY;
    }
    /* first and rows always grow together, so they share one capacity */
    size_t cap = runs->cap;
    MOEP_TRY(moep__buf_reserve(FN, (void **)&runs->first, &cap, n * sizeof(int64_t)));
    size_t rows_cap = runs->cap;
    MOEP_TRY(moep__buf_reserve(FN, (void **)&runs->rows, &rows_cap, n * sizeof(int64_t)));
    runs->cap = cap < rows_cap ? cap : rows_cap;
    return MOEP_OK;
}

/* Split every peer r's rows [offset[r], offset[r+1]) where token[i] !=
 * token[i - 1] + 1. A run starts at its first token (first_is_token, the
 * sender's view) or at its row index (the receiver's). */
static moep_status_t find_runs(moep_row_runs_t *runs, int32_t R, const int64_t *offset,
                               const int32_t *token, bool first_is_token) {
    MOEP_TRY(runs_reserve(runs, R, (size_t)offset[R]));
    int64_t n = 0;
    runs->peer_offset[0] = 0;
    for (int32_t r = 0; r < R; r++) {
        for (int64_t i = offset[r]; i < offset[r + 1]; i++) {
            if (i == offset[r] || token[i] != token[i - 1] + 1) {
                runs->first[n] = first_is_token ? token[i] : i;
                runs->rows[n++] = 0;
            }
            runs->rows[n - 1]++;
        }
        runs->peer_offset[r + 1] = n;
    }
    return MOEP_OK;
}

moep_status_t moep__runs_find(moep_comm_t *c, moep_handle_t *h) {
    int32_t R = c->world_size;
    moep_status_t st = find_runs(&h->send_runs, R, h->layout->rank_offset, h->layout->slot_token, true);
    if (st == MOEP_OK) st = find_runs(&h->recv_runs, R, h->recv_offset, h->recv_src_token, false);
    if (st != MOEP_OK) return moep__comm_fail(c, st, "%s: out of memory", FN);
    return MOEP_OK;
}

/* Both ends decide alike: the sender from its layout, the receiver from the
 * token indices that came with the fresh dispatch. */
bool moep__runs_direct(const moep_handle_t *h, const moep_row_runs_t *runs, int32_t peer) {
    if (peer == h->comm->rank || !h->peer_direct[peer] || h->wire_dtype != h->dtype ||
        runs->peer_offset == NULL)
        return false;
    int32_t peers = h->comm->world_size - 1; /* >= 1: peer is not this rank */
    return runs->peer_offset[peer + 1] - runs->peer_offset[peer] <= MOEP_DIRECT_MAX_MSGS / peers;
}

static int msgs_to(const moep_handle_t *h, const moep_row_runs_t *runs, int32_t peer) {
    return moep__runs_direct(h, runs, peer)
               ? (int)(runs->peer_offset[peer + 1] - runs->peer_offset[peer])
               : 1;
}

/* One message per run, or the peer's whole block of base + offset. */
static int add_msgs(const moep_handle_t *h, const moep_row_runs_t *runs, int32_t peer, uint64_t seq,
                    uint8_t *run_base, uint8_t *block, int64_t block_rows, moep_msg_t *out) {
    size_t row = h->wire_row_bytes;
    if (!moep__runs_direct(h, runs, peer)) {
        out[0] = (moep_msg_t){peer, moep__tag(seq, MOEP_TAG_DISPATCH), block, (size_t)block_rows * row};
        return 1;
    }
    int n = 0;
    for (int64_t j = runs->peer_offset[peer]; j < runs->peer_offset[peer + 1]; j++, n++)
        out[n] = (moep_msg_t){peer, moep__run_tag(seq, n),
                              run_base + (size_t)runs->first[j] * row, (size_t)runs->rows[j] * row};
    return n;
}

moep_status_t moep__dispatch_cached_exchange(moep_comm_t *c, moep_handle_t *h, const uint8_t *x,
                                             moep_overlap_fn overlap, void *overlap_arg) {
    int32_t R = c->world_size, me = c->rank;
    int nrecv = 0, nsend = 0;
    for (int32_t r = 0; r < R; r++) {
        if (r == me) continue;
        nrecv += msgs_to(h, &h->recv_runs, r);
        nsend += msgs_to(h, &h->send_runs, r);
    }
    moep_msg_t *msgs = calloc((size_t)(nrecv + nsend) + 1, sizeof *msgs);
    if (msgs == NULL) return moep__comm_fail(c, MOEP_ERR_NO_MEMORY, "%s: oom", FN);
    int n = 0;
    /* staggered peer order, as moep__alltoallv */
    for (int32_t i = 1; i < R; i++) {
        int32_t peer = (me + R - i) % R;
        uint8_t *block = (uint8_t *)h->recv_x + (size_t)h->recv_offset[peer] * h->wire_row_bytes;
        n += add_msgs(h, &h->recv_runs, peer, c->seq, h->recv_x, block, h->recv_count[peer], msgs + n);
    }
    for (int32_t i = 1; i < R; i++) {
        int32_t peer = (me + i) % R;
        uint8_t *block = (uint8_t *)h->send_buf + (size_t)h->layout->rank_offset[peer] * h->wire_row_bytes;
        n += add_msgs(h, &h->send_runs, peer, c->seq, (uint8_t *)x, block, h->send_count[peer], msgs + n);
    }
    moep_status_t st = moep__exchange(c, FN, msgs, nrecv, nsend, overlap, overlap_arg,
                                      &h->dispatch_wire_bytes);
    free(msgs);
    return st;
}
