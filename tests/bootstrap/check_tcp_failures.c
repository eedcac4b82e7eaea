/* TCP bootstrap failures: wrong job key, missing rank, a rank that dies. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "suites.h"
#include "tcp_ranks.h"
#include "test_util.h"

/* Create only; exit with the status, MP_BAD_MESSAGE if a failure does not
 * name rank 2 when the job asks for it. */
static int create_rank(int rank, void *arg) {
    const tcp_job_t *j = arg;
    moep_bootstrap_t *bs = NULL;
    moep_status_t st = tcp_job_create(j, rank, &bs);
    if (st == MOEP_OK) st = bs->barrier(bs->ctx);
    moep_bootstrap_destroy(bs);
    if (st != MOEP_OK) fprintf(stderr, "rank %d: %s\n", rank, moep_last_error());
    if (st != MOEP_OK && j->expect_rank2_in_msg && !mp_names_rank(moep_last_error(), 2))
        return MP_BAD_MESSAGE;
    return mp_code(st);
}

START_TEST(tcp_job_key_match_and_mismatch) {
    tcp_job_t j = tcp_job(2);
    int codes[2];
    mp_run(2, create_rank, &j, 10000, codes);
    ck_assert_int_eq(codes[0], 0);
    ck_assert_int_eq(codes[1], 0);

    j = tcp_job(2);
    j.timeout_ms = 1000;
    j.bad_key = "someone-else";
    j.bad_key_rank = 1;
    mp_run(2, create_rank, &j, 10000, codes);
    ck_assert_int_eq(codes[0], mp_code(MOEP_ERR_TIMEOUT)); /* still waiting for a real rank 1 */
    ck_assert_int_eq(codes[1], mp_code(MOEP_ERR_PROTOCOL));
}
END_TEST

START_TEST(tcp_missing_rank_times_out) {
    tcp_job_t j = tcp_job(3);
    j.timeout_ms = 1000;
    j.expect_rank2_in_msg = 1;
    int codes[2];
    mp_run(2, create_rank, &j, 10000, codes); /* rank 2 never starts */
    ck_assert_int_eq(codes[0], mp_code(MOEP_ERR_TIMEOUT));
    ck_assert_int_eq(codes[1], mp_code(MOEP_ERR_TIMEOUT));
}
END_TEST

START_TEST(tcp_rank_zero_never_starts) {
    tcp_job_t j = tcp_job(2);
    j.timeout_ms = 500;
    pid_t pid = mp_spawn(create_rank, 1, &j);
    ck_assert_int_eq(mp_wait(pid, mp_deadline(20000)), mp_code(MOEP_ERR_TIMEOUT));
}
END_TEST

/* The victim leaves after the rendezvous; the others run an allgather. */
static int victim_rank(int rank, void *arg) {
    const tcp_job_t *j = arg;
    moep_bootstrap_t *bs = NULL;
    moep_status_t st = tcp_job_create(j, rank, &bs);
    if (st != MOEP_OK) return mp_code(st);
    if (rank == j->victim) _exit(0); /* dies without a word */
    size_t n = 65536;
    uint8_t *send = calloc(1, n), *recv = malloc(n * (size_t)j->world_size);
    st = bs->allgather(bs->ctx, send, recv, n);
    if (st != MOEP_OK) fprintf(stderr, "rank %d: %s\n", rank, moep_last_error());
    /* Once broken, the bootstrap fails fast rather than hanging. */
    moep_status_t again = st != MOEP_OK ? bs->barrier(bs->ctx) : MOEP_OK;
    free(send);
    free(recv);
    moep_bootstrap_destroy(bs);
    if (again == MOEP_OK && st != MOEP_OK) return MP_BAD_OTHER;
    return mp_code(st);
}

START_TEST(tcp_rank_dies_mid_allgather) {
    tcp_job_t j = tcp_job(3);
    j.timeout_ms = 1500;
    j.victim = _i == 0 ? 2 : 0;
    int codes[3];
    mp_run(3, victim_rank, &j, 15000, codes);
    for (int r = 0; r < 3; r++) {
        if (r == j.victim) continue;
        ck_assert_msg(codes[r] == mp_code(MOEP_ERR_REMOTE) || codes[r] == mp_code(MOEP_ERR_TIMEOUT),
                      "rank %d exited %d", r, codes[r]);
    }
}
END_TEST

Suite *moep_check_tcp_failures_suite(void) {
    Suite *s = suite_create("tcp_failures");
    TCase *tc = tcase_create("loopback");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, tcp_job_key_match_and_mismatch);
    tcase_add_test(tc, tcp_missing_rank_times_out);
    tcase_add_test(tc, tcp_rank_zero_never_starts);
    tcase_add_loop_test(tc, tcp_rank_dies_mid_allgather, 0, 2);
    suite_add_tcase(s, tc);
    return s;
}
