/* moep_tcp_free_loopback_port: let the kernel pick a free loopback port. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
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
