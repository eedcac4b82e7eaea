/*
 * Non-blocking TCP sockets with deadlines, for the TCP bootstrap.
 * Deadlines are absolute times on moep__now_ms()'s clock. Sockets are
 * non-blocking and close-on-exec; sends never raise SIGPIPE.
 * The setup calls (listen, connect) record a message starting with `fn`;
 * the I/O calls only return a status (errno kept) so that the caller can
 * name the peer in its own message.
 */
#ifndef MOEP_TCP_SOCKET_H
#define MOEP_TCP_SOCKET_H

#include <stdint.h>
#include <sys/types.h>

#include "moep_internal.h"

/* Bind and listen on host:port (SO_REUSEADDR). MOEP_ERR_SYSTEM on failure. */
moep_status_t moep__sock_listen(const char *fn, const char *host, const char *port, int *fd_p);

/*
 * Connect to host:port, retrying with exponential backoff until the deadline
 * (the listener may start later). MOEP_ERR_TIMEOUT when the deadline passes,
 * MOEP_ERR_SYSTEM for errors that retrying cannot fix (e.g. unknown host).
 */
moep_status_t moep__sock_connect(const char *fn, const char *host, const char *port,
                                 double deadline_ms, int *fd_p);

/* Accept one pending connection: its fd, or -1 if none is pending (or on error).
 * `peer` receives "ip:port" of the remote side. */
int moep__sock_accept(int listen_fd, char *peer, size_t peer_len);

/* Milliseconds left until `deadline_ms`, clamped to [0, INT32_MAX] for poll(). */
int moep__sock_ms_left(double deadline_ms);

/* Send or receive exactly `len` bytes before the deadline. MOEP_ERR_TIMEOUT,
 * MOEP_ERR_REMOTE (peer closed or reset), MOEP_ERR_SYSTEM. recv: buf may be
 * NULL to discard the bytes. */
moep_status_t moep__sock_send_all(int fd, const void *buf, size_t len, double deadline_ms);
moep_status_t moep__sock_recv_all(int fd, void *buf, size_t len, double deadline_ms);

/*
 * Incremental non-blocking receive of a span of `len` bytes (buf NULL: read
 * and discard). Each call reads what is available: MOEP_OK when the span is
 * complete, MOEP_INPROGRESS when more is needed, MOEP_ERR_REMOTE or
 * MOEP_ERR_SYSTEM on failure.
 */
typedef struct moep__rx_span {
    uint8_t *buf;
    uint64_t len;
    uint64_t got;
} moep__rx_span_t;

moep_status_t moep__sock_recv_span(int fd, moep__rx_span_t *span);

/* Best-effort send that never waits (for rejecting untrusted peers). */
void moep__sock_send_nowait(int fd, const void *buf, size_t len);

#endif /* MOEP_TCP_SOCKET_H */
