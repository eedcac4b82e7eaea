/* Helpers for multi-process bootstrap tests: fork ranks, wait with a limit, free ports. */
#ifndef MOEP_TEST_MULTIPROC_H
#define MOEP_TEST_MULTIPROC_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "moep.h"

/* Exit codes of a rank process: 0 = OK, -status for a moep error, or these. */
#define MP_BAD_DATA 100    /* allgather result differs from the expected bytes */
#define MP_BAD_MESSAGE 101 /* error message does not name what it should */
#define MP_BAD_OTHER 102
#define MP_KILLED (-1)     /* crashed, or still running at the limit (killed) */

typedef int (*mp_rank_fn)(int rank, void *arg);

/* Fork a child that runs fn(rank, arg) and _exit()s with its result. */
pid_t mp_spawn(mp_rank_fn fn, int rank, void *arg);
/* Wait for a child until the deadline (moep-style ms clock); kill it past it.
 * Returns its exit code or MP_KILLED. */
int mp_wait(pid_t pid, double deadline_ms);
/* The ms-clock time `ms` from now, for mp_wait. */
double mp_deadline(int ms);
/* Spawn ranks 0..n-1 and wait for all within limit_ms; codes[r] per rank. */
void mp_run(int n, mp_rank_fn fn, void *arg, int limit_ms, int *codes);

/* A TCP port on 127.0.0.1 that was free a moment ago (kernel-assigned). */
int mp_free_port(void);
/* Exit code for a status: 0 for MOEP_OK, else -status. */
int mp_code(moep_status_t st);

/* Deterministic bytes for (seed, rank, round): every rank can check the others. */
void mp_fill(uint64_t seed, int rank, int round, uint8_t *buf, size_t n);
/* Check an allgather result of `bytes` per rank; 0 if right, else MP_BAD_DATA. */
int mp_check_gather(uint64_t seed, int world, int round, const uint8_t *recv, size_t bytes);

/* Whether an error message's "rank(s) a,b,c" list contains `rank`. */
int mp_names_rank(const char *msg, int rank);

/* Connect a plain blocking socket to 127.0.0.1:port, retrying until up (<= 10 s).
 * Receives time out after 5 s. Returns the fd or -1. */
int mp_raw_connect(int port);
/* Read until EOF (or the 5 s receive timeout); returns bytes read, -1 on timeout. */
long mp_read_to_eof(int fd, uint8_t *buf, size_t cap);

#endif
