/* Rank programs shared by the TCP suites: each runs in a forked process. */
#ifndef MOEP_TEST_TCP_RANKS_H
#define MOEP_TEST_TCP_RANKS_H

#include "multiproc.h"

typedef struct tcp_job {
    int world_size;
    int port;
    const char *host;      /* NULL: 127.0.0.1 */
    const char *job_key;   /* per rank override below */
    const char *bad_key;   /* rank `bad_key_rank` uses this key instead */
    int bad_key_rank;
    int timeout_ms;
    uint64_t seed;
    int victim;            /* rank that exits right after the rendezvous (-1: none) */
    int expect_rank2_in_msg; /* failures must name rank 2 */
} tcp_job_t;

/* A job with defaults: loopback, key "moep-test", 10 s timeout, no victim. */
tcp_job_t tcp_job(int world_size);

/* Create this rank's bootstrap from the job. */
moep_status_t tcp_job_create(const tcp_job_t *j, int rank, moep_bootstrap_t **bs_p);

/* Rank program: create, allgather 0 / 1 / 64 KiB / 13 bytes, barriers, destroy. */
int tcp_rank_collectives(int rank, void *arg);

#endif
