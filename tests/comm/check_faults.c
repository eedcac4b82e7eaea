/*
 * Faults and bad input on multi-rank dispatch/combine: a rank that dies,
 * ranks that disagree, bad expert ids, misuse. Every survivor must get a
 * specific status (never hang), and destroy must not block.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ep_workload.h"
#include "rank_harness.h"
#include "test_util.h"

enum { FAULT_TIMEOUT_MS = 1500 };

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}

typedef struct fault_case {
    ep_spec_t spec;
    int victim;                /* rank that misbehaves */
    int kind;                  /* FAULT_* */
} fault_case_t;

enum { FAULT_DIES, FAULT_HIDDEN, FAULT_BAD_ID, FAULT_EXPERTS };

#define RANK_FAIL(...)                   \
    do {                                 \
        snprintf(err, len, __VA_ARGS__); \
        rc = 1;                          \
        goto out;                        \
    } while (0)

static moep_status_t do_dispatch(moep_comm_t *comm, const ep_spec_t *s, ep_tokens_t *t, int hidden,
                                 moep_handle_t **h, moep_dispatch_result_t *r) {
    moep_tensor_t x = moep_tensor_2d(t->x, s->dtype, t->T, hidden);
    moep_tensor_t idx = moep_tensor_2d(t->topk_idx, MOEP_DTYPE_I32, t->T, s->top_k);
    moep_tensor_t w = moep_tensor_2d(t->topk_w, MOEP_DTYPE_F32, t->T, s->top_k);
    moep_dispatch_params_t dp;
    moep_dispatch_params_init(&dp);
    dp.x = &x;
    dp.topk_idx = &idx;
    dp.topk_weights = &w;
    return moep_dispatch(comm, &dp, h, r);
}

static int expect(moep_status_t got, moep_status_t a, moep_status_t b, const char *what, char *err,
                  size_t len) {
    if (got == a || got == b) return 0;
    snprintf(err, len, "%s returned %s (%s), expected %s or %s", what, moep_status_name(got),
             moep_last_error(), moep_status_name(a), moep_status_name(b));
    return 1;
}

static int fault_rank(const harness_config_t *cfg, const moep_bootstrap_t *bs, void *arg, char *err,
                      size_t len) {
    fault_case_t *fc = arg;
    ep_spec_t s = fc->spec;
    int rank = bs->rank, victim = rank == fc->victim, rc = 0;
    moep_comm_t *comm = NULL;
    moep_handle_t *h = NULL;
    moep_dispatch_result_t r;
    ep_tokens_t t = {0};
    int32_t E = s.num_experts + (fc->kind == FAULT_EXPERTS && victim ? s.world : 0);
    moep_status_t st = harness_comm(cfg, bs, E, FAULT_TIMEOUT_MS, &comm);
    if (fc->kind == FAULT_EXPERTS) {
        rc = expect(st, MOEP_ERR_MISMATCH, MOEP_ERR_MISMATCH, "moep_comm_create", err, len);
        goto out;
    }
    if (st != MOEP_OK) RANK_FAIL("comm: %s", moep_last_error());
    ep_tokens_make(&s, rank, 0, &t);
    if (fc->kind == FAULT_BAD_ID && victim && t.T > 0) t.topk_idx[0] = s.num_experts + 5;
    int hidden = s.hidden;
    if (fc->kind == FAULT_HIDDEN && victim) hidden = s.hidden / 2; /* disagrees, still a valid view */

    if (fc->kind == FAULT_DIES) {
        st = do_dispatch(comm, &s, &t, hidden, &h, &r); /* one good round first */
        if (st != MOEP_OK) RANK_FAIL("first dispatch: %s", moep_last_error());
        if (victim) {
            if (cfg->processes) raise(SIGKILL); /* dies with the second round in flight */
            usleep(FAULT_TIMEOUT_MS * 2000);    /* a thread "dies" by staying away */
            goto out;
        }
        double t0 = now_ms();
        st = do_dispatch(comm, &s, &t, hidden, &h, &r);
        double waited = now_ms() - t0;
        rc = expect(st, MOEP_ERR_TIMEOUT, MOEP_ERR_REMOTE, "dispatch with a dead peer", err, len);
        if (rc == 0 && waited > FAULT_TIMEOUT_MS * 4.0)
            RANK_FAIL("dead peer detected only after %.0f ms", waited);
        if (rc == 0) /* a failed comm refuses further collectives */
            rc = expect(do_dispatch(comm, &s, &t, hidden, &h, &r), MOEP_ERR_INVALID_USAGE,
                        MOEP_ERR_INVALID_USAGE, "dispatch after failure", err, len);
        goto out;
    }
    st = do_dispatch(comm, &s, &t, hidden, &h, &r);
    if (fc->kind == FAULT_HIDDEN)
        rc = expect(st, MOEP_ERR_MISMATCH, MOEP_ERR_MISMATCH, "dispatch with mismatched hidden", err, len);
    else if (victim)
        rc = expect(st, MOEP_ERR_OUT_OF_RANGE, MOEP_ERR_OUT_OF_RANGE, "dispatch with a bad id", err, len);
    else
        rc = expect(st, MOEP_ERR_REMOTE, MOEP_ERR_REMOTE, "dispatch with a peer's bad id", err, len);
    if (rc == 0) { /* an agreed failure leaves the comm usable: a good round works */
        ep_tokens_free(&t);
        ep_tokens_make(&s, rank, 0, &t);
        st = do_dispatch(comm, &s, &t, s.hidden, &h, &r);
        if (st != MOEP_OK) RANK_FAIL("dispatch after an agreed failure: %s", moep_last_error());
    }
out:
    ep_tokens_free(&t);
    moep_handle_destroy(h);
    moep_comm_destroy(comm);
    return rc;
}

static void run_fault(int cfg_i, int kind, int expect_failed_ranks) {
    const harness_config_t *cfg = &harness_configs[cfg_i];
    if (!harness_available(cfg)) return;
    fault_case_t fc = {.spec = {.world = 3, .num_experts = 12, .top_k = 3, .hidden = 32,
                                .dtype = MOEP_DTYPE_F32, .pattern = ROUTE_RANDOM,
                                .tokens = {40, 50, 60}, .seed = 7},
                       .victim = 2, .kind = kind};
    char report[4096];
    int failed = harness_run(cfg, 3, fault_rank, &fc, 30, report, sizeof report);
    ck_assert_msg(failed == expect_failed_ranks, "%s fault %d: %d rank(s) failed, expected %d:\n%s",
                  cfg->label, kind, failed, expect_failed_ranks, report);
}

START_TEST(dead_peer_times_out) {
    /* processes: the killed rank reports nothing (1 failure); threads: none */
    run_fault(_i, FAULT_DIES, harness_configs[_i].processes ? 1 : 0);
}
END_TEST

START_TEST(hidden_mismatch_fails_everywhere) { run_fault(_i, FAULT_HIDDEN, 0); }
END_TEST

START_TEST(bad_expert_id_fails_everywhere) { run_fault(_i, FAULT_BAD_ID, 0); }
END_TEST

START_TEST(expert_count_mismatch_at_create) { run_fault(_i, FAULT_EXPERTS, 0); }
END_TEST

Suite *faults_suite(void) {
    Suite *s = suite_create("faults");
    TCase *tc = tcase_create("transports");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, dead_peer_times_out, 0, harness_num_configs);
    tcase_add_loop_test(tc, hidden_mismatch_fails_everywhere, 0, harness_num_configs);
    tcase_add_loop_test(tc, bad_expert_id_fails_everywhere, 0, harness_num_configs);
    tcase_add_loop_test(tc, expert_count_mismatch_at_create, 0, harness_num_configs);
    suite_add_tcase(s, tc);
    return s;
}
