/* TCP bootstrap parameters: init, the MOEP_* environment, bad values. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <unistd.h>

#include "suites.h"
#include "tcp_ranks.h"
#include "test_util.h"

static void clear_env(void) {
    unsetenv("MOEP_RANK");
    unsetenv("MOEP_WORLD_SIZE");
    unsetenv("MOEP_ADDR");
    unsetenv("MOEP_JOB_KEY");
    unsetenv("MOEP_TIMEOUT_MS");
}

/* Create from the environment only (params at their defaults). */
static moep_status_t create_from_env(const char *rank, const char *world, const char *addr) {
    clear_env();
    if (rank) setenv("MOEP_RANK", rank, 1);
    if (world) setenv("MOEP_WORLD_SIZE", world, 1);
    if (addr) setenv("MOEP_ADDR", addr, 1);
    moep_tcp_bootstrap_params_t p;
    moep_tcp_bootstrap_params_init(&p);
    moep_bootstrap_t *bs = (moep_bootstrap_t *)&p; /* must be reset to NULL on failure */
    moep_status_t st = moep_bootstrap_tcp_create(&p, &bs);
    if (st != MOEP_OK) ck_assert_ptr_null(bs);
    if (st != MOEP_OK)
        ck_assert_msg(strncmp(moep_last_error(), "moep_bootstrap_tcp_create:", 26) == 0, "%s",
                      moep_last_error());
    moep_bootstrap_destroy(bs);
    clear_env();
    return st;
}

START_TEST(tcp_params_init_defaults) {
    moep_tcp_bootstrap_params_t p;
    memset(&p, 0x5a, sizeof p);
    ck_assert_ok(moep_tcp_bootstrap_params_init(&p));
    ck_assert_uint_eq(p.struct_size, sizeof p);
    ck_assert_int_eq(p.rank, -1);
    ck_assert_int_eq(p.world_size, -1);
    ck_assert_ptr_null(p.addr);
    ck_assert_ptr_null(p.job_key);
    ck_assert_int_eq(p.timeout_ms, 0);
    ck_assert_status(moep_tcp_bootstrap_params_init(NULL), MOEP_ERR_INVALID_ARG);
}
END_TEST

START_TEST(tcp_bad_env_values) {
    ck_assert_status(create_from_env("0", "2", "127.0.0.1"), MOEP_ERR_INVALID_ARG); /* no port */
    ck_assert_status(create_from_env("0", "2", "127.0.0.1:"), MOEP_ERR_INVALID_ARG);
    ck_assert_status(create_from_env("0", "2", "127.0.0.1:0"), MOEP_ERR_INVALID_ARG);
    ck_assert_status(create_from_env("0", "2", "127.0.0.1:70000"), MOEP_ERR_INVALID_ARG);
    ck_assert_status(create_from_env("0", "2", "127.0.0.1:12x"), MOEP_ERR_INVALID_ARG);
    ck_assert_status(create_from_env("0", "2", ":1234"), MOEP_ERR_INVALID_ARG);
    ck_assert_status(create_from_env("2", "2", "127.0.0.1:1234"), MOEP_ERR_INVALID_ARG);
    ck_assert_status(create_from_env("abc", "2", "127.0.0.1:1234"), MOEP_ERR_INVALID_ARG);
    ck_assert_status(create_from_env("-3", "2", "127.0.0.1:1234"), MOEP_ERR_INVALID_ARG);
    ck_assert_status(create_from_env("0", "0", "127.0.0.1:1234"), MOEP_ERR_INVALID_ARG);
    ck_assert_status(create_from_env(NULL, "2", "127.0.0.1:1234"), MOEP_ERR_INVALID_ARG);
    ck_assert_status(create_from_env("0", NULL, "127.0.0.1:1234"), MOEP_ERR_INVALID_ARG);
    ck_assert_status(create_from_env("0", "2", NULL), MOEP_ERR_INVALID_ARG);
}
END_TEST

START_TEST(tcp_bad_params) {
    moep_tcp_bootstrap_params_t p;
    moep_bootstrap_t *bs = NULL;
    clear_env();
    moep_tcp_bootstrap_params_init(&p);
    p.world_size = 2;
    p.addr = "127.0.0.1:1234";
    ck_assert_status(moep_bootstrap_tcp_create(NULL, &bs), MOEP_ERR_INVALID_ARG);
    ck_assert_status(moep_bootstrap_tcp_create(&p, NULL), MOEP_ERR_INVALID_ARG);
    p.rank = -2;
    ck_assert_status(moep_bootstrap_tcp_create(&p, &bs), MOEP_ERR_INVALID_ARG);
    p.rank = 5;
    ck_assert_status(moep_bootstrap_tcp_create(&p, &bs), MOEP_ERR_INVALID_ARG);
    p.rank = 0;
    p.world_size = -7;
    ck_assert_status(moep_bootstrap_tcp_create(&p, &bs), MOEP_ERR_INVALID_ARG);
    p.world_size = 2;
    p.struct_size = 0; /* not initialised */
    ck_assert_status(moep_bootstrap_tcp_create(&p, &bs), MOEP_ERR_INVALID_ARG);
    ck_assert_ptr_null(bs);
}
END_TEST

START_TEST(tcp_system_errors) {
    moep_tcp_bootstrap_params_t p;
    moep_bootstrap_t *bs = NULL;
    clear_env();
    moep_tcp_bootstrap_params_init(&p);
    p.world_size = 2;
    p.rank = 1;
    p.timeout_ms = 300;
    p.addr = "no-such-host.invalid:1234";
    ck_assert_status(moep_bootstrap_tcp_create(&p, &bs), MOEP_ERR_SYSTEM);
    /* The port is held by another listener: rank 0 cannot bind it. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    ck_assert_int_eq(listen(fd, 1), 0);
    getsockname(fd, (struct sockaddr *)&a, &len);
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", ntohs(a.sin_port));
    p.addr = addr;
    p.rank = 0;
    ck_assert_status(moep_bootstrap_tcp_create(&p, &bs), MOEP_ERR_SYSTEM);
    close(fd);
}
END_TEST

START_TEST(tcp_world_of_one_arguments) {
    moep_tcp_bootstrap_params_t p;
    moep_bootstrap_t *bs = NULL;
    moep_tcp_bootstrap_params_init(&p);
    p.rank = 0;
    p.world_size = 1;
    p.addr = "127.0.0.1:1";
    ck_assert_ok(moep_bootstrap_tcp_create(&p, &bs));
    uint8_t buf[4];
    ck_assert_status(bs->allgather(bs->ctx, NULL, buf, 4), MOEP_ERR_INVALID_ARG);
    ck_assert_status(bs->allgather(bs->ctx, buf, NULL, 4), MOEP_ERR_INVALID_ARG);
    ck_assert_status(bs->allgather(bs->ctx, buf, buf, (size_t)2 << 30), MOEP_ERR_INVALID_ARG);
    ck_assert_ok(bs->barrier(bs->ctx));
    moep_bootstrap_destroy(bs);
}
END_TEST

/* Two ranks configured only through MOEP_RANK, MOEP_WORLD_SIZE, MOEP_ADDR,
 * MOEP_JOB_KEY and MOEP_TIMEOUT_MS. */
static int env_rank(int rank, void *arg) {
    const tcp_job_t *j = arg;
    char addr[64], r[8];
    snprintf(addr, sizeof addr, "localhost:%d", j->port);
    snprintf(r, sizeof r, "%d", rank);
    setenv("MOEP_RANK", r, 1);
    setenv("MOEP_WORLD_SIZE", "2", 1);
    setenv("MOEP_ADDR", addr, 1);
    setenv("MOEP_JOB_KEY", "env-key", 1);
    setenv("MOEP_TIMEOUT_MS", "10000", 1);
    moep_tcp_bootstrap_params_t p;
    moep_tcp_bootstrap_params_init(&p);
    moep_bootstrap_t *bs = NULL;
    moep_status_t st = moep_bootstrap_tcp_create(&p, &bs);
    if (st != MOEP_OK) return mp_code(st);
    uint64_t mine = 1000u + (uint64_t)rank, all[2] = {0, 0};
    st = bs->allgather(bs->ctx, &mine, all, sizeof mine);
    moep_bootstrap_destroy(bs);
    if (st != MOEP_OK) return mp_code(st);
    return all[0] == 1000 && all[1] == 1001 ? 0 : MP_BAD_DATA;
}

START_TEST(tcp_env_path) {
    tcp_job_t j = tcp_job(2);
    int codes[2];
    mp_run(2, env_rank, &j, 20000, codes);
    ck_assert_int_eq(codes[0], 0);
    ck_assert_int_eq(codes[1], 0);
}
END_TEST

Suite *moep_check_tcp_params_suite(void) {
    Suite *s = suite_create("tcp_params");
    TCase *tc = tcase_create("params");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, tcp_params_init_defaults);
    tcase_add_test(tc, tcp_bad_env_values);
    tcase_add_test(tc, tcp_bad_params);
    tcase_add_test(tc, tcp_system_errors);
    tcase_add_test(tc, tcp_world_of_one_arguments);
    tcase_add_test(tc, tcp_env_path);
    suite_add_tcase(s, tc);
    return s;
}
