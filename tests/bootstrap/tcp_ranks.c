#include "tcp_ranks.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

tcp_job_t tcp_job(int world_size) {
    tcp_job_t j = {.world_size = world_size,
                   .port = mp_free_port(),
                   .job_key = "moep-test",
                   .bad_key_rank = -1,
                   .timeout_ms = 10000,
                   .victim = -1};
    j.seed = (uint64_t)j.port * 0x9e3779b97f4a7c15ull;
    return j;
}

moep_status_t tcp_job_create(const tcp_job_t *j, int rank, moep_bootstrap_t **bs_p) {
    char addr[128];
    snprintf(addr, sizeof addr, "%s:%d", j->host ? j->host : "127.0.0.1", j->port);
    moep_tcp_bootstrap_params_t p;
    moep_tcp_bootstrap_params_init(&p);
    p.rank = rank;
    p.world_size = j->world_size;
    p.addr = addr;
    p.job_key = rank == j->bad_key_rank ? j->bad_key : j->job_key;
    p.timeout_ms = j->timeout_ms;
    return moep_bootstrap_tcp_create(&p, bs_p);
}

int tcp_rank_collectives(int rank, void *arg) {
    const tcp_job_t *j = arg;
    moep_bootstrap_t *bs = NULL;
    moep_status_t st = tcp_job_create(j, rank, &bs);
    if (st != MOEP_OK) {
        fprintf(stderr, "rank %d: %s\n", rank, moep_last_error());
        return mp_code(st);
    }
    if (bs->rank != rank || bs->world_size != j->world_size) return MP_BAD_OTHER;
    static const size_t sizes[] = {0, 1, 65536, 13};
    int rc = 0;
    for (int round = 0; round < 4 && rc == 0; round++) {
        size_t n = sizes[round];
        uint8_t *send = malloc(n + 1), *recv = malloc(n * (size_t)j->world_size + 1);
        mp_fill(j->seed, rank, round, send, n);
        st = bs->allgather(bs->ctx, send, recv, n);
        rc = st != MOEP_OK ? mp_code(st) : mp_check_gather(j->seed, j->world_size, round, recv, n);
        if (rc == 0) rc = mp_code(bs->barrier(bs->ctx));
        if (rc != 0) fprintf(stderr, "rank %d round %d: %d %s\n", rank, round, rc, moep_last_error());
        free(send);
        free(recv);
    }
    moep_bootstrap_destroy(bs);
    return rc;
}
