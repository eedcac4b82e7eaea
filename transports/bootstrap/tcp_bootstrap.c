/*
 * TCP bootstrap: creation and the collectives. Star topology: every rank
 * sends its block to rank 0, which checks that all lengths agree,
 * concatenates and sends the result back (or an ERROR frame to everyone).
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "transports/bootstrap/bootstrap_internal.h"
#include "transports/bootstrap/tcp_bootstrap.h"

#define AG "moep_bootstrap_tcp allgather"

static void tcp_destroy(void *ctx) {
    moep__tcp_ctx_t *c = ctx;
    int n = c->cfg.rank == 0 ? c->cfg.world_size : 1;
    for (int i = 0; c->fds != NULL && i < n; i++)
        if (c->fds[i] >= 0) close(c->fds[i]);
    free(c->fds);
    free(c->rx);
    free(c);
}

/* Record a failure that leaves the streams out of step: later collectives fail fast. */
static moep_status_t break_ctx(moep__tcp_ctx_t *c, moep_status_t st) {
    c->broken = st;
    return st;
}

/* Tell every peer that the collective failed (best effort, never waits). */
static void root_broadcast_error(moep__tcp_ctx_t *c, moep_status_t st) {
    for (int32_t r = 1; r < c->cfg.world_size; r++)
        if (c->fds[r] >= 0) moep__tcp_send_error_nowait(c, c->fds[r], st, moep_last_error());
}

/* Rank 0 received rank r's header: check it and pick where the payload goes. */
static moep_status_t root_accept_header(moep__tcp_ctx_t *c, int32_t r, void *recv, size_t bytes,
                                        bool *mismatch) {
    moep__frame_rx_t *rx = &c->rx[r];
    const moep__wire_hdr_t *h = &rx->hdr;
    if (h->op != MOEP__OP_DATA || h->seq != c->seq || h->sender != r ||
        h->job_hash != c->cfg.job_hash)
        return moep__fail(MOEP_ERR_PROTOCOL,
                          AG ": unexpected frame from rank %d (op %u, seq %u, expected seq %u)",
                          r, h->op, h->seq, c->seq);
    if (h->length == bytes) {
        moep__frame_rx_accept(rx, (uint8_t *)recv + (size_t)r * bytes);
    } else {
        /* Drain it to keep the stream in step; the mismatch is reported to all. */
        if (!*mismatch)
            moep__fail(MOEP_ERR_MISMATCH, AG ": rank %d contributes %llu bytes but rank 0 %zu", r,
                       (unsigned long long)h->length, bytes);
        *mismatch = true;
        moep__frame_rx_accept(rx, NULL);
    }
    return MOEP_OK;
}

/* Rank 0: read every peer's frame from one poll loop until all are in. */
static moep_status_t root_gather(moep__tcp_ctx_t *c, void *recv, size_t bytes, bool *mismatch) {
    int32_t n = c->cfg.world_size, left = n - 1;
    struct pollfd *pfd = moep__calloc(AG, (size_t)n, sizeof *pfd);
    if (pfd == NULL) return MOEP_ERR_NO_MEMORY;
    for (int32_t r = 1; r < n; r++) moep__frame_rx_reset(&c->rx[r]);
    double deadline = moep__now_ms() + c->cfg.timeout_ms;
    moep_status_t st = MOEP_OK;
    while (st == MOEP_OK && left > 0) {
        int np = 0;
        for (int32_t r = 1; r < n; r++)
            if (c->rx[r].stage != MOEP__FRAME_DONE)
                pfd[np++] = (struct pollfd){.fd = c->fds[r], .events = POLLIN};
        int rc = poll(pfd, (nfds_t)np, moep__sock_ms_left(deadline));
        if (rc < 0 && errno != EINTR) {
            st = moep__fail(MOEP_ERR_SYSTEM, AG ": poll: %s", strerror(errno));
        } else if (rc == 0) {
            char who[256] = "";
            size_t used = 0;
            for (int32_t r = 1; r < n && used + 16 < sizeof who; r++)
                if (c->rx[r].stage != MOEP__FRAME_DONE)
                    used += (size_t)snprintf(who + used, sizeof who - used, "%s%d",
                                             used ? "," : "", r);
            st = moep__fail(MOEP_ERR_TIMEOUT, AG ": rank 0 timed out after %d ms waiting for "
                            "rank(s) %s", c->cfg.timeout_ms, who);
        }
        for (int32_t r = 1; st == MOEP_OK && rc > 0 && r < n; r++) {
            moep__frame_rx_t *rx = &c->rx[r];
            char why[128];
            while (st == MOEP_OK && rx->stage != MOEP__FRAME_DONE) {
                moep_status_t s = moep__frame_rx_step(c->fds[r], rx, why, sizeof why);
                if (s == MOEP_INPROGRESS) break;
                if (s != MOEP_OK)
                    st = moep__fail(s, AG ": rank %d failed: %s", r, why);
                else if (rx->stage == MOEP__FRAME_HEADER_READY)
                    st = root_accept_header(c, r, recv, bytes, mismatch);
                else if (rx->stage == MOEP__FRAME_DONE)
                    left--;
            }
        }
    }
    free(pfd);
    return st;
}

static moep_status_t root_allgather(moep__tcp_ctx_t *c, const void *send, void *recv,
                                    size_t bytes) {
    int32_t n = c->cfg.world_size;
    if (bytes > 0) memcpy(recv, send, bytes);
    bool mismatch = false;
    moep_status_t st = root_gather(c, recv, bytes, &mismatch);
    if (st != MOEP_OK) {
        root_broadcast_error(c, st);
        return break_ctx(c, st);
    }
    if (mismatch) { /* message already recorded by root_accept_header */
        root_broadcast_error(c, MOEP_ERR_MISMATCH);
        return MOEP_ERR_MISMATCH;
    }
    double deadline = moep__now_ms() + c->cfg.timeout_ms;
    moep__wire_hdr_t h = moep__tcp_hdr(c, MOEP__OP_DATA, (uint64_t)n * bytes);
    for (int32_t r = 1; r < n; r++) {
        st = moep__wire_send(c->fds[r], &h, recv, deadline);
        if (st != MOEP_OK) {
            moep__fail(st == MOEP_ERR_TIMEOUT ? st : MOEP_ERR_REMOTE,
                       AG ": cannot send the result to rank %d (%s)", r,
                       st == MOEP_ERR_TIMEOUT ? "timed out" : "connection closed");
            root_broadcast_error(c, MOEP_ERR_REMOTE);
            return break_ctx(c, st == MOEP_ERR_TIMEOUT ? st : MOEP_ERR_REMOTE);
        }
    }
    return MOEP_OK;
}

/* Non-root: wait for rank 0's reply (result or ERROR). */
static moep_status_t peer_receive(moep__tcp_ctx_t *c, void *recv, size_t total) {
    int fd = c->fds[0];
    double deadline = moep__now_ms() + c->cfg.timeout_ms + moep__tcp_grace_ms(c->cfg.timeout_ms);
    uint8_t raw[MOEP__WIRE_HDR_BYTES];
    moep__wire_hdr_t h;
    char why[128];
    moep_status_t st = moep__sock_recv_all(fd, raw, sizeof raw, deadline);
    if (st == MOEP_ERR_TIMEOUT)
        return moep__fail(st, AG ": rank %d timed out after %d ms waiting for rank 0",
                          c->cfg.rank, c->cfg.timeout_ms);
    if (st != MOEP_OK)
        return moep__fail(MOEP_ERR_REMOTE, AG ": rank 0 closed the connection (rank %d)",
                          c->cfg.rank);
    if (moep__wire_decode(raw, &h, why, sizeof why) != MOEP_OK || h.job_hash != c->cfg.job_hash ||
        h.sender != 0 || h.seq != c->seq)
        return moep__fail(MOEP_ERR_PROTOCOL, AG ": bad frame from rank 0 (%s)", why);
    if (h.op == MOEP__OP_ERROR) {
        uint8_t payload[MOEP__WIRE_MAX_ERROR];
        char msg[MOEP__WIRE_MAX_ERROR];
        if (moep__sock_recv_all(fd, payload, (size_t)h.length, deadline) != MOEP_OK)
            return moep__fail(MOEP_ERR_REMOTE, AG ": rank 0 sent a truncated error");
        st = moep__wire_parse_error(payload, (size_t)h.length, msg, sizeof msg);
        return moep__fail(st, AG ": rank %d: rank 0 reports: %s", c->cfg.rank, msg);
    }
    if (h.op != MOEP__OP_DATA || h.length != total)
        return moep__fail(MOEP_ERR_PROTOCOL, AG ": rank 0 sent op %u with %llu bytes, expected "
                          "%zu", h.op, (unsigned long long)h.length, total);
    st = moep__sock_recv_all(fd, recv, total, deadline);
    if (st != MOEP_OK)
        return moep__fail(st == MOEP_ERR_TIMEOUT ? st : MOEP_ERR_REMOTE,
                          AG ": rank %d lost rank 0 while receiving the result", c->cfg.rank);
    return MOEP_OK;
}

static moep_status_t peer_allgather(moep__tcp_ctx_t *c, const void *send, void *recv,
                                    size_t bytes) {
    double deadline = moep__now_ms() + c->cfg.timeout_ms;
    moep__wire_hdr_t h = moep__tcp_hdr(c, MOEP__OP_DATA, bytes);
    moep_status_t st = moep__wire_send(c->fds[0], &h, send, deadline);
    if (st != MOEP_OK)
        return break_ctx(c, moep__fail(st == MOEP_ERR_TIMEOUT ? st : MOEP_ERR_REMOTE,
                                       AG ": rank %d cannot send to rank 0 (%s)", c->cfg.rank,
                                       st == MOEP_ERR_TIMEOUT ? "timed out" : "connection closed"));
    st = peer_receive(c, recv, (size_t)c->cfg.world_size * bytes);
    return st == MOEP_OK || st == MOEP_ERR_MISMATCH ? st : break_ctx(c, st);
}

static moep_status_t tcp_allgather(void *ctx, const void *send, void *recv, size_t bytes) {
    moep__tcp_ctx_t *c = ctx;
    MOEP_TRY(moep__bootstrap_check_allgather(AG, c->cfg.world_size, send, recv, bytes));
    if (bytes > MOEP__WIRE_MAX_PAYLOAD || (uint64_t)c->cfg.world_size * bytes > MOEP__WIRE_MAX_PAYLOAD)
        return moep__fail(MOEP_ERR_INVALID_ARG, AG ": %zu bytes per rank exceeds the %llu-byte "
                          "frame bound", bytes, (unsigned long long)MOEP__WIRE_MAX_PAYLOAD);
    if (c->broken != MOEP_OK)
        return moep__fail(c->broken, AG ": an earlier collective failed (%s); this bootstrap is "
                          "unusable", moep_status_name(c->broken));
    c->seq++;
    if (c->cfg.world_size == 1) {
        if (bytes > 0) memcpy(recv, send, bytes);
        return MOEP_OK;
    }
    return c->cfg.rank == 0 ? root_allgather(c, send, recv, bytes)
                            : peer_allgather(c, send, recv, bytes);
}

/* An empty allgather: returns once every rank has sent its (empty) frame. */
static moep_status_t tcp_barrier(void *ctx) { return tcp_allgather(ctx, NULL, NULL, 0); }

moep_status_t moep_bootstrap_tcp_create(const moep_tcp_bootstrap_params_t *p,
                                        moep_bootstrap_t **bs_p) {
    static const char fn[] = "moep_bootstrap_tcp_create";
    MOEP_CHECK_ARG(fn, bs_p);
    *bs_p = NULL;
    MOEP_CHECK_ARG(fn, p);
    moep__tcp_config_t cfg;
    MOEP_TRY(moep__tcp_config_resolve(fn, p, &cfg));
    moep__tcp_ctx_t *c = moep__calloc(fn, 1, sizeof *c);
    if (c == NULL) return MOEP_ERR_NO_MEMORY;
    c->cfg = cfg;
    int nfd = cfg.rank == 0 ? cfg.world_size : 1;
    c->fds = moep__calloc(fn, (size_t)nfd, sizeof *c->fds);
    if (cfg.rank == 0) c->rx = moep__calloc(fn, (size_t)cfg.world_size, sizeof *c->rx);
    if (c->fds == NULL || (cfg.rank == 0 && c->rx == NULL)) {
        tcp_destroy(c);
        return MOEP_ERR_NO_MEMORY;
    }
    for (int i = 0; i < nfd; i++) c->fds[i] = -1;
    moep_status_t st = MOEP_OK;
    if (cfg.world_size > 1)
        st = cfg.rank == 0 ? moep__tcp_rendezvous_root(fn, c) : moep__tcp_rendezvous_peer(fn, c);
    if (st != MOEP_OK) {
        tcp_destroy(c);
        return st;
    }
    moep__bootstrap_fill(&c->bs, cfg.rank, cfg.world_size, c, tcp_allgather, tcp_barrier,
                         tcp_destroy);
    *bs_p = &c->bs;
    return MOEP_OK;
}
