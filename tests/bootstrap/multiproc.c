#include "multiproc.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <netinet/in.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "test_util.h"

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

static void nap_ms(int ms) {
    struct timespec ts = {0, (long)ms * 1000000L};
    nanosleep(&ts, NULL);
}

double mp_deadline(int ms) { return now_ms() + ms; }

pid_t mp_spawn(mp_rank_fn fn, int rank, void *arg) {
    pid_t pid = fork();
    if (pid == 0) _exit(fn(rank, arg));
    return pid;
}

int mp_wait(pid_t pid, double deadline_ms) {
    int status;
    for (;;) {
        pid_t got = waitpid(pid, &status, WNOHANG);
        if (got == pid) break;
        if (got < 0) return MP_KILLED;
        if (now_ms() > deadline_ms) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            return MP_KILLED;
        }
        nap_ms(5);
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : MP_KILLED;
}

void mp_run(int n, mp_rank_fn fn, void *arg, int limit_ms, int *codes) {
    pid_t pids[64];
    for (int r = 0; r < n; r++) pids[r] = mp_spawn(fn, r, arg);
    double deadline = now_ms() + limit_ms;
    for (int r = 0; r < n; r++) codes[r] = mp_wait(pids[r], deadline);
}

int mp_free_port(void) {
    int32_t port = -1;
    return moep_tcp_free_loopback_port(&port) == MOEP_OK ? port : -1;
}

int mp_code(moep_status_t st) { return st == MOEP_OK ? 0 : -(int)st; }

void mp_fill(uint64_t seed, int rank, int round, uint8_t *buf, size_t n) {
    test_rng_t rng;
    test_rng_init(&rng, seed ^ ((uint64_t)rank << 32) ^ ((uint64_t)round << 48));
    for (size_t i = 0; i < n; i++) buf[i] = (uint8_t)test_rng_u64(&rng);
}

int mp_check_gather(uint64_t seed, int world, int round, const uint8_t *recv, size_t bytes) {
    uint8_t *want = malloc(bytes ? bytes : 1);
    int bad = 0;
    for (int r = 0; r < world && !bad; r++) {
        mp_fill(seed, r, round, want, bytes);
        bad = bytes > 0 && memcmp(want, recv + (size_t)r * bytes, bytes) != 0;
    }
    free(want);
    return bad ? MP_BAD_DATA : 0;
}

int mp_raw_connect(int port) {
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    for (int i = 0; i < 1000; i++) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0) return -1;
        if (connect(fd, (struct sockaddr *)&a, sizeof a) == 0) {
            struct timeval tv = {5, 0};
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
            return fd;
        }
        close(fd);
        nap_ms(10);
    }
    return -1;
}

long mp_read_to_eof(int fd, uint8_t *buf, size_t cap) {
    size_t got = 0;
    for (;;) {
        uint8_t sink[256];
        uint8_t *dst = got < cap ? buf + got : sink;
        size_t room = got < cap ? cap - got : sizeof sink;
        ssize_t n = recv(fd, dst, room, 0);
        if (n == 0) return (long)got;
        if (n < 0) return errno == EAGAIN || errno == EWOULDBLOCK ? -1 : (long)got; /* reset = closed */
        got += (size_t)n;
    }
}

int mp_names_rank(const char *msg, int rank) {
    const char *p = strstr(msg, "rank(s) ");
    if (p == NULL) return 0;
    p += 8;
    for (;;) {
        char *end;
        long r = strtol(p, &end, 10);
        if (end == p) return 0;
        if (r == rank) return 1;
        if (*end != ',') return 0;
        p = end + 1;
    }
}
