/* Launching ranks on one machine over the TCP rendezvous: a free loopback
 * port, and a rank's bootstrap on it. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "moep_internal.h"

moep_status_t moep_tcp_free_loopback_port(int32_t *port_p) {
    const char *fn = "moep_tcp_free_loopback_port";
    MOEP_CHECK_ARG(fn, port_p);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return moep__fail(MOEP_ERR_SYSTEM, "%s: socket: %s", fn, strerror(errno));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    moep_status_t st = MOEP_OK;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) != 0)
        st = moep__fail(MOEP_ERR_SYSTEM, "%s: %s", fn, strerror(errno));
    else
        *port_p = ntohs(a.sin_port);
    close(fd);
    return st;
}

moep_status_t moep_bootstrap_tcp_loopback(int32_t rank, int32_t world_size, int32_t port,
                                          int32_t timeout_ms, moep_bootstrap_t **bs_p) {
    if (port <= 0 || port > 65535)
        return moep__fail(MOEP_ERR_INVALID_ARG, "moep_bootstrap_tcp_loopback: port %d", (int)port);
    char addr[32];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", (int)port);
    moep_tcp_bootstrap_params_t bp;
    moep_tcp_bootstrap_params_init(&bp);
    bp.rank = rank;
    bp.world_size = world_size;
    bp.addr = addr;
    bp.timeout_ms = timeout_ms;
    return moep_bootstrap_tcp_create(&bp, bs_p);
}
