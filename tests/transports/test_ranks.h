/*
 * Run one function as N ranks, either as threads of this process (for the
 * `local` transport) or as forked processes (ucx, libfabric), each with a
 * moep_bootstrap_t built for the test: a barrier-based one for threads, and
 * a star through the parent over socketpairs for processes. Test-only: no
 * authentication, no dependency on //transports/bootstrap.
 */
#ifndef MOEP_TEST_RANKS_H
#define MOEP_TEST_RANKS_H

#include <stddef.h>

#include "moep.h"

#define TR_MAX_RANKS 8
#define TR_MSG_LEN 512

/* A rank's body: returns 0 on success; on failure call tr_fail() and return 1. */
typedef int (*tr_rank_fn)(const moep_bootstrap_t *bs, void *arg);

typedef struct tr_result {
    int exit_code[TR_MAX_RANKS]; /* rank's return value; 128 + signal if killed; -1 if lost */
    char msg[TR_MAX_RANKS][TR_MSG_LEN];
    int pid[TR_MAX_RANKS]; /* forked ranks only */
} tr_result_t;

/* Run fn as `n` threads / forked processes and wait for all of them.
 * Forked ranks that outlive `limit_s` seconds are SIGKILLed. */
void tr_run_threads(int n, tr_rank_fn fn, void *arg, tr_result_t *res);
void tr_run_forked(int n, tr_rank_fn fn, void *arg, int limit_s, tr_result_t *res);

/* Record a failure message for the calling rank. */
void tr_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* In a rank: return 1 with a message unless cond holds. */
#define TR_CHECK(cond, ...)                                                         \
    do {                                                                            \
        if (!(cond)) {                                                              \
            tr_fail("line %d: %s: ", __LINE__, #cond);                              \
            tr_fail(__VA_ARGS__);                                                   \
            return 1;                                                               \
        }                                                                           \
    } while (0)

#define TR_CHECK_ST(expr, expected)                                                 \
    do {                                                                            \
        moep_status_t tr_st_ = (expr);                                              \
        TR_CHECK(tr_st_ == (expected), "%s returned %s (%s), expected %s", #expr,  \
                 moep_status_name(tr_st_), moep_last_error(),                       \
                 moep_status_name(expected));                                       \
    } while (0)

#endif /* MOEP_TEST_RANKS_H */
