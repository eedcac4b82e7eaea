/*
 * Hostile connections to rank 0 while the real ranks join: garbage, wrong
 * magic or version, a 4 GiB length, half a header then silence, a duplicate
 * and an out-of-range rank. Rank 0 must reject each, stay up and complete
 * with the legitimate ranks. Frames are encoded here independently of the
 * library, from the wire format in the spec.
 */
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "suites.h"
#include "tcp_ranks.h"
#include "test_util.h"

#define HDR 32

static uint64_t fnv1a(const char *s) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (; *s; s++) h = (h ^ (uint8_t)*s) * 0x100000001b3ull;
    return h;
}

static void put_be(uint8_t *p, uint64_t v, int n) {
    for (int i = n - 1; i >= 0; i--, v >>= 8) p[i] = (uint8_t)v;
}

/* A HELLO frame (header + {rank, world}); returns its length (40). */
static size_t hello(uint8_t *out, const char *magic, int version, uint64_t length, int rank,
                    int world, const char *key) {
    memcpy(out, magic, 4);
    put_be(out + 4, (uint64_t)version, 2);
    put_be(out + 6, 1, 2); /* HELLO */
    put_be(out + 8, 0, 4);
    put_be(out + 12, (uint32_t)rank, 4);
    put_be(out + 16, length, 8);
    put_be(out + 24, fnv1a(key), 8);
    put_be(out + 32, (uint32_t)rank, 4);
    put_be(out + 36, (uint32_t)world, 4);
    return 40;
}

/* Connect, send `len` bytes, expect rank 0 to hang up (maybe after an ERROR
 * frame). Returns the number of reply bytes, -1 if rank 0 never closed. */
static long send_expect_close(int port, const uint8_t *buf, size_t len, uint8_t *reply,
                              size_t cap) {
    int fd = mp_raw_connect(port);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(send(fd, buf, len, MSG_NOSIGNAL), (ssize_t)len);
    long got = mp_read_to_eof(fd, reply, cap);
    close(fd);
    return got;
}

/* The reply is an ERROR frame carrying MOEP_ERR_PROTOCOL. */
static void assert_protocol_error(const uint8_t *reply, long got) {
    ck_assert_int_ge(got, HDR + 4);
    ck_assert(memcmp(reply, "MOEP", 4) == 0);
    ck_assert_int_eq(reply[7], 4); /* ERROR */
    int32_t st = (int32_t)((uint32_t)reply[32] << 24 | (uint32_t)reply[33] << 16 |
                           (uint32_t)reply[34] << 8 | reply[35]);
    ck_assert_int_eq(st, MOEP_ERR_PROTOCOL);
}

typedef struct root_job {
    tcp_job_t tcp;
    int log_fd;      /* rank 0's log lines go here */
    int rejections;  /* WARN lines about rejected connections */
    int min_rejections;
} root_job_t;

static void log_to_pipe(void *user, moep_log_level_t level, const char *msg) {
    root_job_t *j = user;
    if (level == MOEP_LOG_WARN && strstr(msg, "rejected") != NULL) j->rejections++;
    dprintf(j->log_fd, "%s\n", msg);
}

static int hostile_root(int rank, void *arg) {
    root_job_t *j = arg;
    moep_log_set_level(MOEP_LOG_INFO);
    moep_log_set_handler(log_to_pipe, j);
    int rc = tcp_rank_collectives(rank, &j->tcp);
    if (rc == 0 && j->rejections < j->min_rejections) rc = MP_BAD_OTHER;
    return rc;
}

/* Read rank 0's log until a line contains `what` (10 s at most). */
static int wait_for_log(int fd, const char *what) {
    char buf[8192];
    size_t used = 0;
    while (used + 1 < sizeof buf) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 10000) <= 0) return 0;
        ssize_t n = read(fd, buf + used, sizeof buf - 1 - used);
        if (n <= 0) return 0;
        used += (size_t)n;
        buf[used] = '\0';
        if (strstr(buf, what) != NULL) return 1;
    }
    return 0;
}

START_TEST(tcp_root_survives_hostile_clients) {
    root_job_t j = {.tcp = tcp_job(3), .min_rejections = 8};
    j.tcp.seed ^= test_seed("tcp_hostile");
    int port = j.tcp.port, pipefd[2];
    ck_assert_int_eq(pipe(pipefd), 0);
    j.log_fd = pipefd[1];
    pid_t pids[3];
    pids[0] = mp_spawn(hostile_root, 0, &j);
    close(pipefd[1]);

    uint8_t frame[64], reply[2048];
    /* Two clients trickle in their frames; the first is rejected while the
     * second is half read, then the second (wrong job key) must still be
     * parsed correctly: a receiver moved inside rank 0 keeps its bytes. */
    int x = mp_raw_connect(port), y = mp_raw_connect(port);
    uint8_t wrong_key[64];
    size_t wk = hello(wrong_key, "MOEP", 1, 8, 2, 3, "not-the-key");
    memset(frame, 0xee, sizeof frame);
    ck_assert_int_eq(send(x, frame, 8, MSG_NOSIGNAL), 8);
    ck_assert_int_eq(send(y, wrong_key, 20, MSG_NOSIGNAL), 20);
    usleep(50 * 1000); /* lets rank 0 read both halves; the outcome does not depend on it */
    ck_assert_int_eq(send(x, frame, 56, MSG_NOSIGNAL), 56);
    ck_assert_int_ge(mp_read_to_eof(x, reply, sizeof reply), 0);
    ck_assert_int_eq(send(y, wrong_key + 20, wk - 20, MSG_NOSIGNAL), (ssize_t)(wk - 20));
    long got = mp_read_to_eof(y, reply, sizeof reply);
    assert_protocol_error(reply, got);
    ck_assert_msg(memmem(reply, (size_t)got, "job key", 7) != NULL, "%.*s", (int)got - 36,
                  reply + 36);
    close(x);
    close(y);

    test_rng_t rng;
    test_rng_init(&rng, j.tcp.seed);
    for (int i = 0; i < 64; i++) frame[i] = (uint8_t)test_rng_u64(&rng);
    frame[0] = 'X'; /* never the magic by chance */
    ck_assert_int_ge(send_expect_close(port, frame, 64, reply, sizeof reply), 0);

    size_t n = hello(frame, "MOEX", 1, 8, 1, 3, "moep-test");
    ck_assert_int_ge(send_expect_close(port, frame, n, reply, sizeof reply), 0);
    n = hello(frame, "MOEP", 99, 8, 1, 3, "moep-test");
    ck_assert_int_ge(send_expect_close(port, frame, n, reply, sizeof reply), 0);
    n = hello(frame, "MOEP", 1, 1ull << 32, 1, 3, "moep-test");
    ck_assert_int_ge(send_expect_close(port, frame, n, reply, sizeof reply), 0);

    /* Half a header, then silence: must not hold up anyone. */
    int stall = mp_raw_connect(port);
    ck_assert_int_eq(send(stall, frame, 16, MSG_NOSIGNAL), 16);

    pids[1] = mp_spawn(tcp_rank_collectives, 1, &j.tcp);
    ck_assert_msg(wait_for_log(pipefd[0], "rank 1 joined"), "rank 1 never joined");
    n = hello(frame, "MOEP", 1, 8, 1, 3, "moep-test"); /* rank 1 again */
    got = send_expect_close(port, frame, n, reply, sizeof reply);
    assert_protocol_error(reply, got);
    n = hello(frame, "MOEP", 1, 8, 7, 3, "moep-test"); /* rank out of range */
    got = send_expect_close(port, frame, n, reply, sizeof reply);
    assert_protocol_error(reply, got);

    pids[2] = mp_spawn(tcp_rank_collectives, 2, &j.tcp);
    for (int r = 0; r < 3; r++)
        ck_assert_msg(mp_wait(pids[r], mp_deadline(20000)) == 0, "rank %d failed", r);
    /* Rank 0 is done with the rendezvous: the staller is gone too. */
    ck_assert_int_ge(mp_read_to_eof(stall, reply, sizeof reply), 0);
    close(stall);
    close(pipefd[0]);
}
END_TEST

/* A lone staller is dropped at its HELLO deadline, before anyone else comes. */
START_TEST(tcp_staller_is_dropped) {
    root_job_t j = {.tcp = tcp_job(2), .min_rejections = 1};
    j.tcp.timeout_ms = 2000; /* HELLO deadline: 500 ms */
    int pipefd[2];
    ck_assert_int_eq(pipe(pipefd), 0);
    j.log_fd = pipefd[1];
    pid_t root = mp_spawn(hostile_root, 0, &j);
    close(pipefd[1]);
    int stall = mp_raw_connect(j.tcp.port);
    uint8_t frame[64], reply[2048];
    hello(frame, "MOEP", 1, 8, 1, 2, "moep-test");
    ck_assert_int_eq(send(stall, frame, 16, MSG_NOSIGNAL), 16);
    long got = mp_read_to_eof(stall, reply, sizeof reply);
    assert_protocol_error(reply, got);
    close(stall);
    pid_t peer = mp_spawn(tcp_rank_collectives, 1, &j.tcp);
    ck_assert_int_eq(mp_wait(root, mp_deadline(20000)), 0);
    ck_assert_int_eq(mp_wait(peer, mp_deadline(20000)), 0);
    close(pipefd[0]);
}
END_TEST

Suite *moep_check_tcp_hostile_suite(void) {
    Suite *s = suite_create("tcp_hostile");
    TCase *tc = tcase_create("loopback");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, tcp_root_survives_hostile_clients);
    tcase_add_test(tc, tcp_staller_is_dropped);
    suite_add_tcase(s, tc);
    return s;
}
