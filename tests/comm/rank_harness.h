/*
 * Run a function on N ranks over one transport configuration: threads of
 * this process for `local`, forked processes joined by the TCP bootstrap
 * otherwise. Rank functions report through their return value and an error
 * string (never ck_assert: they may run in a child process).
 */
#ifndef MOEP_RANK_HARNESS_H
#define MOEP_RANK_HARNESS_H

#include <stddef.h>

#include "moep.h"

typedef struct harness_config {
    const char *label;     /* "ucx/tcp" */
    const char *transport; /* moep_comm_params.transport */
    const char *env[3];    /* NAME=VALUE set in the ranks, NULL-terminated */
    int processes;         /* 0: threads */
} harness_config_t;

/* Every CPU configuration the comm suites run over. */
extern const harness_config_t harness_configs[];
extern const int harness_num_configs;

/* A rank's work. Returns 0 on success, else writes why into err. */
typedef int (*rank_fn)(const harness_config_t *cfg, const moep_bootstrap_t *bs, void *arg,
                       char *err, size_t err_len);

/* 1 if the configuration's transport is compiled in and probes OK here
 * (prints why not otherwise). */
int harness_available(const harness_config_t *cfg);

/*
 * Run fn on `world` ranks. Returns the number of ranks that failed (their
 * messages joined into report), or -1 if the launch itself failed. Ranks
 * that do not finish within timeout_s are killed and count as failed.
 * (Fault tests make a rank die from inside its rank_fn.)
 */
int harness_run(const harness_config_t *cfg, int world, rank_fn fn, void *arg, int timeout_s,
                char *report, size_t report_len);

/* Create a comm over bs with cfg's transport and E experts (contiguous), short timeout. */
moep_status_t harness_comm(const harness_config_t *cfg, const moep_bootstrap_t *bs, int32_t E,
                           int32_t timeout_ms, moep_comm_t **comm_p);

#endif
