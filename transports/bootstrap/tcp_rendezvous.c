/*
 * TCP rendezvous. Rank 0 listens and accepts until every other rank has sent
 * a valid HELLO; each connection is untrusted until then. A connection with
 * a bad header, the wrong job key or world size, a rank out of range or
 * already taken, or that stalls, is rejected (warning logged, closed) and
 * rank 0 keeps waiting for the legitimate ranks. One poll() loop serves the
 * listener and every pending connection, so no client can block the others.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "transports/bootstrap/tcp_bootstrap.h"

/* Connections waiting for their HELLO at once; more are refused. */
#define MAX_PENDING 64
/* A connection must deliver its HELLO within this long (or timeout / 4). */
#define HELLO_MS_MAX 2000

typedef struct pending {
    int fd;
    double hello_deadline;
    char peer[80];
    moep__frame_rx_t rx;
} pending_t;

typedef struct root_state {
    const char *fn;
    moep__tcp_ctx_t *c;
    int listen_fd;
    pending_t pend[MAX_PENDING];
    int n_pend;
    int32_t joined;
} root_state_t;

void moep__tcp_send_error_nowait(const moep__tcp_ctx_t *c, int fd, moep_status_t st,
                                 const char *msg) {
    uint8_t buf[MOEP__WIRE_HDR_BYTES + MOEP__WIRE_MAX_ERROR];
    size_t n = moep__wire_error_payload(st, msg, buf + MOEP__WIRE_HDR_BYTES);
    moep__wire_hdr_t h = moep__tcp_hdr(c, MOEP__OP_ERROR, n);
    moep__wire_encode(&h, buf);
    moep__sock_send_nowait(fd, buf, MOEP__WIRE_HDR_BYTES + n);
}

static void drop_pending(root_state_t *s, int i) {
    s->pend[i] = s->pend[--s->n_pend];
}

/* Reject pending connection i: tell it why (best effort), log, close. */
static void reject(root_state_t *s, int i, const char *why) {
    pending_t *p = &s->pend[i];
    char msg[256];
    snprintf(msg, sizeof msg, "rank 0 rejected the connection from %s: %s", p->peer, why);
    moep__tcp_send_error_nowait(s->c, p->fd, MOEP_ERR_PROTOCOL, msg);
    MOEP_LOG_AT(MOEP_LOG_WARN, "%s: %s (MOEP_ERR_PROTOCOL)", s->fn, msg);
    close(p->fd);
    drop_pending(s, i);
}

/* Check a complete HELLO; on success the connection becomes rank r's link. */
static void admit_hello(root_state_t *s, int i) {
    pending_t *p = &s->pend[i];
    const moep__tcp_config_t *cfg = &s->c->cfg;
    int32_t rank = (int32_t)moep__wire_get_u32(p->rx.small);
    int32_t world = (int32_t)moep__wire_get_u32(p->rx.small + 4);
    char why[128];
    if (p->rx.hdr.job_hash != cfg->job_hash) {
        reject(s, i, "job key mismatch");
        return;
    }
    if (world != cfg->world_size) {
        snprintf(why, sizeof why, "world size %d, expected %d", world, cfg->world_size);
        reject(s, i, why);
        return;
    }
    if (rank < 1 || rank >= cfg->world_size || rank != p->rx.hdr.sender) {
        snprintf(why, sizeof why, "rank %d out of range [1, %d)", rank, cfg->world_size);
        reject(s, i, why);
        return;
    }
    if (s->c->fds[rank] >= 0) {
        snprintf(why, sizeof why, "duplicate rank %d", rank);
        reject(s, i, why);
        return;
    }
    s->c->fds[rank] = p->fd;
    s->joined++;
    MOEP_LOG_AT(MOEP_LOG_INFO, "%s: rank %d joined from %s", s->fn, rank, p->peer);
    drop_pending(s, i);
}

/* Read what pending connection i has sent. Returns false if it was removed. */
static bool serve_pending(root_state_t *s, int i) {
    pending_t *p = &s->pend[i];
    char why[128];
    for (;;) {
        moep_status_t st = moep__frame_rx_step(p->fd, &p->rx, why, sizeof why);
        if (st == MOEP_INPROGRESS) return true;
        if (st != MOEP_OK) {
            reject(s, i, why);
            return false;
        }
        if (p->rx.stage == MOEP__FRAME_DONE) {
            admit_hello(s, i);
            return false;
        }
        if (p->rx.hdr.op != MOEP__OP_HELLO || p->rx.hdr.length != MOEP__WIRE_HELLO_BYTES) {
            snprintf(why, sizeof why, "expected HELLO of %d bytes, got op %u length %llu",
                     MOEP__WIRE_HELLO_BYTES, p->rx.hdr.op, (unsigned long long)p->rx.hdr.length);
            reject(s, i, why);
            return false;
        }
        moep__frame_rx_accept(&p->rx, MOEP__FRAME_SMALL);
    }
}

static void accept_new(root_state_t *s, int hello_ms) {
    for (;;) {
        char peer[80];
        int fd = moep__sock_accept(s->listen_fd, peer, sizeof peer);
        if (fd < 0) return;
        if (s->n_pend == MAX_PENDING) {
            MOEP_LOG_AT(MOEP_LOG_WARN, "%s: too many pending connections, refusing %s", s->fn,
                        peer);
            close(fd);
            continue;
        }
        pending_t *p = &s->pend[s->n_pend++];
        p->fd = fd;
        p->hello_deadline = moep__now_ms() + hello_ms;
        snprintf(p->peer, sizeof p->peer, "%s", peer);
        moep__frame_rx_reset(&p->rx);
    }
}

/* Ranks that have not joined, as "2,3", into buf. */
static void missing_ranks(const moep__tcp_ctx_t *c, char *buf, size_t len) {
    size_t used = 0;
    buf[0] = '\0';
    for (int32_t r = 1; r < c->cfg.world_size && used + 16 < len; r++)
        if (c->fds[r] < 0) used += (size_t)snprintf(buf + used, len - used, "%s%d", used ? "," : "", r);
}

static moep_status_t root_timeout(root_state_t *s) {
    char who[256], msg[400];
    missing_ranks(s->c, who, sizeof who);
    snprintf(msg, sizeof msg, "%s: rank 0 timed out after %d ms waiting for rank(s) %s to join",
             s->fn, s->c->cfg.timeout_ms, who);
    for (int32_t r = 1; r < s->c->cfg.world_size; r++)
        if (s->c->fds[r] >= 0) moep__tcp_send_error_nowait(s->c, s->c->fds[r], MOEP_ERR_TIMEOUT, msg);
    return moep__fail(MOEP_ERR_TIMEOUT, "%s", msg);
}

/* One round of the accept loop: poll, accept, read, expire stalled clients. */
static moep_status_t root_round(root_state_t *s, double deadline, int hello_ms) {
    struct pollfd pfd[MAX_PENDING + 1];
    double wake = deadline;
    pfd[0] = (struct pollfd){.fd = s->listen_fd, .events = POLLIN};
    for (int i = 0; i < s->n_pend; i++) {
        pfd[i + 1] = (struct pollfd){.fd = s->pend[i].fd, .events = POLLIN};
        if (s->pend[i].hello_deadline < wake) wake = s->pend[i].hello_deadline;
    }
    int n = s->n_pend;
    int rc = poll(pfd, (nfds_t)n + 1, moep__sock_ms_left(wake));
    if (rc < 0 && errno != EINTR)
        return moep__fail(MOEP_ERR_SYSTEM, "%s: poll: %s", s->fn, strerror(errno));
    /* Serve in reverse: removing entry i moves the last one into its place. */
    for (int i = n - 1; i >= 0; i--)
        if (rc > 0 && pfd[i + 1].revents != 0) serve_pending(s, i);
    double now = moep__now_ms();
    for (int i = s->n_pend - 1; i >= 0; i--)
        if (now >= s->pend[i].hello_deadline) reject(s, i, "no HELLO in time (stalled)");
    if (rc > 0 && pfd[0].revents != 0) accept_new(s, hello_ms);
    return MOEP_OK;
}

moep_status_t moep__tcp_rendezvous_root(const char *fn, moep__tcp_ctx_t *c) {
    root_state_t *s = moep__calloc(fn, 1, sizeof *s);
    if (s == NULL) return MOEP_ERR_NO_MEMORY;
    s->fn = fn;
    s->c = c;
    moep_status_t st = moep__sock_listen(fn, c->cfg.host, c->cfg.port, &s->listen_fd);
    if (st != MOEP_OK) {
        free(s);
        return st;
    }
    double deadline = moep__now_ms() + c->cfg.timeout_ms;
    int hello_ms = c->cfg.timeout_ms / 4 < HELLO_MS_MAX ? c->cfg.timeout_ms / 4 : HELLO_MS_MAX;
    if (hello_ms < 1) hello_ms = 1;
    while (st == MOEP_OK && s->joined < c->cfg.world_size - 1) {
        if (moep__now_ms() >= deadline)
            st = root_timeout(s);
        else
            st = root_round(s, deadline, hello_ms);
    }
    close(s->listen_fd);
    for (int i = 0; i < s->n_pend; i++) close(s->pend[i].fd); /* late extras: not part of the world */
    free(s);
    for (int32_t r = 1; r < c->cfg.world_size && st == MOEP_OK; r++) {
        moep__wire_hdr_t h = moep__tcp_hdr(c, MOEP__OP_WELCOME, 0);
        if (moep__wire_send(c->fds[r], &h, NULL, deadline + c->cfg.timeout_ms) != MOEP_OK) {
            st = moep__fail(MOEP_ERR_REMOTE, "%s: rank %d left during the rendezvous", fn, r);
            /* Ranks not yet welcomed learn it now rather than at their timeout. */
            for (int32_t q = r + 1; q < c->cfg.world_size; q++)
                moep__tcp_send_error_nowait(c, c->fds[q], st, moep_last_error());
        }
    }
    return st;
}

moep_status_t moep__tcp_rendezvous_peer(const char *fn, moep__tcp_ctx_t *c) {
    const moep__tcp_config_t *cfg = &c->cfg;
    double deadline = moep__now_ms() + cfg->timeout_ms;
    MOEP_TRY(moep__sock_connect(fn, cfg->host, cfg->port, deadline, &c->fds[0]));
    int fd = c->fds[0];
    uint8_t hello[MOEP__WIRE_HELLO_BYTES];
    moep__wire_put_u32(hello, (uint32_t)cfg->rank);
    moep__wire_put_u32(hello + 4, (uint32_t)cfg->world_size);
    moep__wire_hdr_t h = moep__tcp_hdr(c, MOEP__OP_HELLO, sizeof hello);
    if (moep__wire_send(fd, &h, hello, deadline) != MOEP_OK)
        return moep__fail(MOEP_ERR_REMOTE, "%s: rank %d cannot send its HELLO to rank 0 at %s:%s",
                          fn, cfg->rank, cfg->host, cfg->port);
    deadline += moep__tcp_grace_ms(cfg->timeout_ms);
    uint8_t raw[MOEP__WIRE_HDR_BYTES];
    moep_status_t st = moep__sock_recv_all(fd, raw, sizeof raw, deadline);
    if (st == MOEP_ERR_TIMEOUT)
        return moep__fail(st, "%s: rank %d timed out after %d ms waiting for rank 0 to complete "
                          "the rendezvous", fn, cfg->rank, cfg->timeout_ms);
    if (st != MOEP_OK)
        return moep__fail(MOEP_ERR_REMOTE, "%s: rank 0 closed the connection during the "
                          "rendezvous (rank %d)", fn, cfg->rank);
    char why[128];
    if (moep__wire_decode(raw, &h, why, sizeof why) != MOEP_OK)
        return moep__fail(MOEP_ERR_PROTOCOL, "%s: bad reply from rank 0: %s", fn, why);
    if (h.op == MOEP__OP_ERROR) {
        uint8_t payload[MOEP__WIRE_MAX_ERROR];
        char msg[MOEP__WIRE_MAX_ERROR];
        if (moep__sock_recv_all(fd, payload, (size_t)h.length, deadline) != MOEP_OK)
            return moep__fail(MOEP_ERR_REMOTE, "%s: rank 0 sent a truncated error", fn);
        st = moep__wire_parse_error(payload, (size_t)h.length, msg, sizeof msg);
        return moep__fail(st, "%s: rank %d: rank 0 reports: %s", fn, cfg->rank, msg);
    }
    if (h.op != MOEP__OP_WELCOME || h.length != 0 || h.job_hash != cfg->job_hash || h.sender != 0)
        return moep__fail(MOEP_ERR_PROTOCOL, "%s: unexpected reply from rank 0 (op %u)", fn, h.op);
    return MOEP_OK;
}
