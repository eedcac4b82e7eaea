/* Non-blocking TCP sockets with deadlines (see tcp_socket.h). */
#include "transports/bootstrap/tcp_socket.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* Largest single read when discarding (buf == NULL). */
#define DISCARD_CHUNK 4096

int moep__sock_ms_left(double deadline_ms) {
    double left = deadline_ms - moep__now_ms();
    if (left <= 0) return 0;
    if (left > 2147483647.0) return 2147483647;
    return (int)(left + 0.999); /* round up: never spin on a 0 ms poll */
}

static int make_socket(const struct addrinfo *ai) {
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                    ai->ai_protocol);
    if (fd < 0) return -1;
    int one = 1;
    /* Bootstrap messages are small and latency-bound. */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

static moep_status_t resolve(const char *fn, const char *host, const char *port, bool passive,
                             struct addrinfo **res) {
    struct addrinfo hints;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV | (passive ? AI_PASSIVE : 0);
    int rc = getaddrinfo(host, port, &hints, res);
    if (rc != 0)
        return moep__fail(MOEP_ERR_SYSTEM, "%s: cannot resolve %s:%s: %s", fn, host, port,
                          gai_strerror(rc));
    return MOEP_OK;
}

moep_status_t moep__sock_listen(const char *fn, const char *host, const char *port, int *fd_p) {
    struct addrinfo *res;
    MOEP_TRY(resolve(fn, host, port, true, &res));
    int err = 0;
    *fd_p = -1;
    for (struct addrinfo *ai = res; ai != NULL && *fd_p < 0; ai = ai->ai_next) {
        int fd = make_socket(ai);
        if (fd < 0) {
            err = errno;
            continue;
        }
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, 128) == 0) {
            *fd_p = fd;
        } else {
            err = errno;
            close(fd);
        }
    }
    freeaddrinfo(res);
    if (*fd_p < 0)
        return moep__fail(MOEP_ERR_SYSTEM, "%s: cannot listen on %s:%s: %s", fn, host, port,
                          strerror(err));
    return MOEP_OK;
}

/* One non-blocking connect attempt, waiting for completion until the deadline.
 * Returns the fd, or -1 with errno set. */
static int connect_once(const struct addrinfo *ai, double deadline_ms) {
    int fd = make_socket(ai);
    if (fd < 0) return -1;
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) return fd;
    if (errno != EINPROGRESS) goto fail;
    struct pollfd pfd = {.fd = fd, .events = POLLOUT};
    int rc;
    do {
        rc = poll(&pfd, 1, moep__sock_ms_left(deadline_ms));
    } while (rc < 0 && errno == EINTR);
    if (rc == 0) {
        errno = ETIMEDOUT;
        goto fail;
    }
    if (rc < 0) goto fail;
    int soerr = 0;
    socklen_t sl = sizeof soerr;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0) goto fail;
    if (soerr == 0) return fd;
    errno = soerr;
fail:;
    int saved = errno;
    close(fd);
    errno = saved;
    return -1;
}

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

moep_status_t moep__sock_connect(const char *fn, const char *host, const char *port,
                                 double deadline_ms, int *fd_p) {
    struct addrinfo *res;
    MOEP_TRY(resolve(fn, host, port, false, &res));
    int backoff_ms = 10, err = 0;
    *fd_p = -1;
    for (;;) {
        for (struct addrinfo *ai = res; ai != NULL && *fd_p < 0; ai = ai->ai_next) {
            *fd_p = connect_once(ai, deadline_ms);
            if (*fd_p < 0) err = errno;
        }
        if (*fd_p >= 0) break;
        int left = moep__sock_ms_left(deadline_ms);
        if (left <= 0) break;
        sleep_ms(backoff_ms < left ? backoff_ms : left);
        if (backoff_ms < 500) backoff_ms *= 2;
    }
    freeaddrinfo(res);
    if (*fd_p < 0)
        return moep__fail(MOEP_ERR_TIMEOUT, "%s: cannot connect to rank 0 at %s:%s before the "
                          "deadline (last error: %s)", fn, host, port, strerror(err));
    return MOEP_OK;
}

int moep__sock_accept(int listen_fd, char *peer, size_t peer_len) {
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    int fd = accept4(listen_fd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) return -1;
    char host[NI_MAXHOST] = "?", serv[NI_MAXSERV] = "?";
    getnameinfo((struct sockaddr *)&ss, sl, host, sizeof host, serv, sizeof serv,
                NI_NUMERICHOST | NI_NUMERICSERV);
    snprintf(peer, peer_len, "%s:%s", host, serv);
    return fd;
}

/* Wait until fd is ready for `events` or the deadline passes. */
static moep_status_t wait_fd(int fd, short events, double deadline_ms) {
    struct pollfd pfd = {.fd = fd, .events = events};
    for (;;) {
        int rc = poll(&pfd, 1, moep__sock_ms_left(deadline_ms));
        if (rc > 0) return MOEP_OK; /* errors/hangups surface in the next send/recv */
        if (rc == 0) return MOEP_ERR_TIMEOUT;
        if (errno != EINTR) return MOEP_ERR_SYSTEM;
    }
}

static moep_status_t io_error(int err) {
    errno = err;
    return err == EPIPE || err == ECONNRESET || err == ENOTCONN ? MOEP_ERR_REMOTE
                                                                : MOEP_ERR_SYSTEM;
}

moep_status_t moep__sock_send_all(int fd, const void *buf, size_t len, double deadline_ms) {
    const char *p = buf;
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n > 0) {
            p += n;
            len -= (size_t)n;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            MOEP_TRY(wait_fd(fd, POLLOUT, deadline_ms));
        } else if (n < 0 && errno != EINTR) {
            return io_error(errno);
        }
    }
    return MOEP_OK;
}

moep_status_t moep__sock_recv_span(int fd, moep__rx_span_t *s) {
    uint8_t scratch[DISCARD_CHUNK];
    while (s->got < s->len) {
        uint64_t want = s->len - s->got;
        uint8_t *dst = s->buf != NULL ? s->buf + s->got : scratch;
        if (s->buf == NULL && want > sizeof scratch) want = sizeof scratch;
        if (want > (1u << 30)) want = 1u << 30;
        ssize_t n = recv(fd, dst, (size_t)want, 0);
        if (n > 0) {
            s->got += (uint64_t)n;
        } else if (n == 0) {
            errno = ECONNRESET;
            return MOEP_ERR_REMOTE;
        } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
            return MOEP_INPROGRESS;
        } else if (errno != EINTR) {
            return io_error(errno);
        }
    }
    return MOEP_OK;
}

moep_status_t moep__sock_recv_all(int fd, void *buf, size_t len, double deadline_ms) {
    moep__rx_span_t span = {.buf = buf, .len = len, .got = 0};
    for (;;) {
        moep_status_t st = moep__sock_recv_span(fd, &span);
        if (st != MOEP_INPROGRESS) return st;
        MOEP_TRY(wait_fd(fd, POLLIN, deadline_ms));
    }
}

void moep__sock_send_nowait(int fd, const void *buf, size_t len) {
    ssize_t n = send(fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);
    (void)n; /* best effort: the peer is being dropped anyway */
}
