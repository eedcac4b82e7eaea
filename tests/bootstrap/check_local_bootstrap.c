/* Local (threads) bootstrap: collectives, timeout, mismatch, misuse. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "multiproc.h"
#include "suites.h"
#include "test_util.h"

#define MAX_THREADS 4

typedef struct rank_job {
    moep_local_world_t *world;
    int rank, world_size;
    uint64_t seed;
    int skip;             /* this rank never arrives (timeout tests) */
    size_t mismatch_bytes; /* 0: all ranks use the same sizes */
    moep_status_t st;     /* first failure, or MOEP_OK */
    int bad_data;
    char msg[512];
} rank_job_t;

static void record(rank_job_t *j, moep_status_t st) {
    if (j->st != MOEP_OK || st == MOEP_OK) return;
    j->st = st;
    snprintf(j->msg, sizeof j->msg, "%s", moep_last_error());
}

/* Allgather of 0, 1, 64 KiB and a barrier, checked byte for byte. */
static void *collectives_thread(void *arg) {
    rank_job_t *j = arg;
    moep_bootstrap_t *bs = NULL;
    record(j, moep_bootstrap_local_create(j->world, j->rank, &bs));
    static const size_t sizes[] = {0, 1, 65536, 7};
    for (int round = 0; bs != NULL && round < 4 && j->st == MOEP_OK; round++) {
        size_t n = sizes[round];
        uint8_t *send = malloc(n + 1), *recv = malloc(n * (size_t)j->world_size + 1);
        mp_fill(j->seed, j->rank, round, send, n);
        record(j, bs->allgather(bs->ctx, send, recv, n));
        if (j->st == MOEP_OK) j->bad_data |= mp_check_gather(j->seed, j->world_size, round, recv, n);
        free(send);
        free(recv);
        record(j, bs->barrier(bs->ctx));
    }
    moep_bootstrap_destroy(bs);
    return NULL;
}

/* Run fn on world_size threads; jobs[] gets their outcome. */
static void run_threads(rank_job_t *jobs, int world_size, int timeout_ms, void *(*fn)(void *)) {
    moep_local_world_t *w = NULL;
    ck_assert_ok(moep_local_world_create(world_size, timeout_ms, &w));
    pthread_t th[MAX_THREADS];
    uint64_t seed = test_seed("local_bootstrap");
    for (int r = 0; r < world_size; r++) {
        jobs[r].world = w;
        jobs[r].rank = r;
        jobs[r].world_size = world_size;
        jobs[r].seed = seed;
        pthread_create(&th[r], NULL, fn, &jobs[r]);
    }
    for (int r = 0; r < world_size; r++) pthread_join(th[r], NULL);
    moep_local_world_destroy(w);
}

START_TEST(local_allgather_and_barrier) {
    int n = 2 + _i; /* 2, 3, 4 threads */
    rank_job_t jobs[MAX_THREADS];
    memset(jobs, 0, sizeof jobs);
    run_threads(jobs, n, 10000, collectives_thread);
    for (int r = 0; r < n; r++) {
        ck_assert_msg(jobs[r].st == MOEP_OK, "rank %d: %s", r, jobs[r].msg);
        ck_assert_int_eq(jobs[r].bad_data, 0);
    }
}
END_TEST

static void *barrier_or_skip_thread(void *arg) {
    rank_job_t *j = arg;
    moep_bootstrap_t *bs = NULL;
    record(j, moep_bootstrap_local_create(j->world, j->rank, &bs));
    if (bs != NULL && !j->skip) record(j, bs->barrier(bs->ctx));
    moep_bootstrap_destroy(bs);
    return NULL;
}

START_TEST(local_timeout_names_missing_rank) {
    rank_job_t jobs[3];
    memset(jobs, 0, sizeof jobs);
    jobs[2].skip = 1;
    run_threads(jobs, 3, 200, barrier_or_skip_thread);
    for (int r = 0; r < 2; r++) {
        ck_assert_msg(jobs[r].st == MOEP_ERR_TIMEOUT, "rank %d: %s", r, jobs[r].msg);
        /* The list may hold other ranks too (a peer can give up first). */
        ck_assert_msg(mp_names_rank(jobs[r].msg, 2), "%s", jobs[r].msg);
        ck_assert(strncmp(jobs[r].msg, "moep_bootstrap_local", 20) == 0);
    }
    ck_assert_int_eq(jobs[2].st, MOEP_OK);
}
END_TEST

/* Rank 2 contributes more bytes: every rank gets MOEP_ERR_MISMATCH, and the
 * world stays usable for a well-formed collective afterwards. */
static void *mismatch_thread(void *arg) {
    rank_job_t *j = arg;
    moep_bootstrap_t *bs = NULL;
    record(j, moep_bootstrap_local_create(j->world, j->rank, &bs));
    if (bs == NULL) return NULL;
    uint8_t send[8] = {0}, recv[8 * MAX_THREADS];
    size_t n = j->rank == 2 ? 8 : 4;
    record(j, bs->allgather(bs->ctx, send, recv, n));
    mp_fill(j->seed, j->rank, 9, send, 4);
    moep_status_t again = bs->allgather(bs->ctx, send, recv, 4);
    if (again != MOEP_OK) j->bad_data = 1;
    else j->bad_data = mp_check_gather(j->seed, j->world_size, 9, recv, 4);
    moep_bootstrap_destroy(bs);
    return NULL;
}

START_TEST(local_mismatch_on_all_ranks) {
    rank_job_t jobs[3];
    memset(jobs, 0, sizeof jobs);
    run_threads(jobs, 3, 5000, mismatch_thread);
    for (int r = 0; r < 3; r++) {
        ck_assert_msg(jobs[r].st == MOEP_ERR_MISMATCH, "rank %d: %s", r, jobs[r].msg);
        ck_assert_msg(strstr(jobs[r].msg, "rank 2") != NULL, "%s", jobs[r].msg);
        ck_assert_int_eq(jobs[r].bad_data, 0);
    }
}
END_TEST

START_TEST(local_bad_arguments) {
    moep_local_world_t *w = NULL;
    moep_bootstrap_t *bs = NULL, *dup = NULL;
    ck_assert_status(moep_local_world_create(2, 100, NULL), MOEP_ERR_INVALID_ARG);
    ck_assert_status(moep_local_world_create(0, 100, &w), MOEP_ERR_INVALID_ARG);
    ck_assert(strncmp(moep_last_error(), "moep_local_world_create:", 24) == 0);
    ck_assert_status(moep_local_world_create(-3, 100, &w), MOEP_ERR_INVALID_ARG);
    ck_assert_ptr_null(w);
    ck_assert_ok(moep_local_world_create(2, 100, &w));
    ck_assert_status(moep_bootstrap_local_create(NULL, 0, &bs), MOEP_ERR_INVALID_ARG);
    ck_assert_status(moep_bootstrap_local_create(w, 0, NULL), MOEP_ERR_INVALID_ARG);
    ck_assert_status(moep_bootstrap_local_create(w, 2, &bs), MOEP_ERR_INVALID_ARG);
    ck_assert_status(moep_bootstrap_local_create(w, -1, &bs), MOEP_ERR_INVALID_ARG);
    ck_assert_ok(moep_bootstrap_local_create(w, 0, &bs));
    ck_assert_int_eq(bs->rank, 0);
    ck_assert_int_eq(bs->world_size, 2);
    ck_assert_uint_eq(bs->struct_size, sizeof *bs);
    ck_assert_status(moep_bootstrap_local_create(w, 0, &dup), MOEP_ERR_INVALID_USAGE);
    ck_assert_ptr_null(dup);
    uint8_t buf[8];
    ck_assert_status(bs->allgather(bs->ctx, NULL, buf, 4), MOEP_ERR_INVALID_ARG);
    ck_assert_status(bs->allgather(bs->ctx, buf, NULL, 4), MOEP_ERR_INVALID_ARG);
    /* Rank 1 never comes: a lone barrier times out. */
    ck_assert_status(bs->barrier(bs->ctx), MOEP_ERR_TIMEOUT);
    moep_bootstrap_destroy(bs);
    /* The rank is free again once its bootstrap is gone. */
    ck_assert_ok(moep_bootstrap_local_create(w, 0, &bs));
    /* World destroyed first: freed with its last bootstrap (no leak, no dangling). */
    moep_local_world_destroy(w);
    moep_bootstrap_destroy(bs);
    moep_local_world_destroy(NULL);
}
END_TEST

START_TEST(local_world_of_one) {
    moep_local_world_t *w = NULL;
    moep_bootstrap_t *bs = NULL;
    ck_assert_ok(moep_local_world_create(1, 0, &w));
    ck_assert_ok(moep_bootstrap_local_create(w, 0, &bs));
    uint32_t x = 0xdeadbeef, y = 0;
    ck_assert_ok(bs->allgather(bs->ctx, &x, &y, sizeof x));
    ck_assert_uint_eq(y, x);
    ck_assert_ok(bs->barrier(bs->ctx));
    moep_bootstrap_destroy(bs);
    moep_local_world_destroy(w);
}
END_TEST

Suite *moep_check_local_bootstrap_suite(void) {
    Suite *s = suite_create("local_bootstrap");
    TCase *tc = tcase_create("threads");
    tcase_set_timeout(tc, 30);
    tcase_add_loop_test(tc, local_allgather_and_barrier, 0, 3);
    tcase_add_test(tc, local_timeout_names_missing_rank);
    tcase_add_test(tc, local_mismatch_on_all_ranks);
    tcase_add_test(tc, local_bad_arguments);
    tcase_add_test(tc, local_world_of_one);
    suite_add_tcase(s, tc);
    return s;
}
