/* TCP bootstrap over loopback with 2-4 forked ranks: allgather and barrier. */
#include <string.h>

#include "suites.h"
#include "tcp_ranks.h"
#include "test_util.h"

static void assert_all(const int *codes, int n, int want) {
    for (int r = 0; r < n; r++) ck_assert_msg(codes[r] == want, "rank %d exited %d", r, codes[r]);
}

START_TEST(tcp_allgather_and_barrier) {
    int n = 2 + _i; /* 2, 3, 4 ranks */
    tcp_job_t j = tcp_job(n);
    j.seed ^= test_seed("tcp_collectives");
    if (n == 3) j.host = "localhost"; /* name resolution through getaddrinfo */
    int codes[4];
    mp_run(n, tcp_rank_collectives, &j, 20000, codes);
    assert_all(codes, n, 0);
}
END_TEST

START_TEST(tcp_world_of_one) {
    tcp_job_t j = tcp_job(1);
    int codes[1];
    mp_run(1, tcp_rank_collectives, &j, 10000, codes);
    assert_all(codes, 1, 0);
}
END_TEST

/* Rank 2 contributes more bytes: MOEP_ERR_MISMATCH on every rank, and the
 * streams stay in step for the next allgather. */
static int mismatch_rank(int rank, void *arg) {
    const tcp_job_t *j = arg;
    moep_bootstrap_t *bs = NULL;
    moep_status_t st = tcp_job_create(j, rank, &bs);
    if (st != MOEP_OK) return mp_code(st);
    uint8_t send[64] = {0}, recv[64 * 3];
    st = bs->allgather(bs->ctx, send, recv, rank == 2 ? 64 : 8);
    int rc = st == MOEP_ERR_MISMATCH ? 0 : st == MOEP_OK ? MP_BAD_OTHER : mp_code(st);
    if (rc == 0 && strstr(moep_last_error(), "rank 2") == NULL) rc = MP_BAD_MESSAGE;
    if (rc == 0) {
        mp_fill(j->seed, rank, 5, send, 8);
        st = bs->allgather(bs->ctx, send, recv, 8);
        rc = st != MOEP_OK ? mp_code(st) : mp_check_gather(j->seed, 3, 5, recv, 8);
    }
    moep_bootstrap_destroy(bs);
    return rc;
}

START_TEST(tcp_mismatch_reported_to_all) {
    tcp_job_t j = tcp_job(3);
    int codes[3];
    mp_run(3, mismatch_rank, &j, 20000, codes);
    assert_all(codes, 3, 0);
}
END_TEST

Suite *moep_check_tcp_collectives_suite(void) {
    Suite *s = suite_create("tcp_collectives");
    TCase *tc = tcase_create("loopback");
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, tcp_allgather_and_barrier, 0, 3);
    tcase_add_test(tc, tcp_world_of_one);
    tcase_add_test(tc, tcp_mismatch_reported_to_all);
    suite_add_tcase(s, tc);
    return s;
}
