#include "rank_harness.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

const harness_config_t harness_configs[] = {
    {"local", "local", {NULL}, 0},
    /* loopback only: see tests/transports/transports_test.c (UCX 1.13 can
     * abort a survivor of a killed peer when a pair is wired over two
     * interfaces) */
    {"ucx/tcp", "ucx", {"UCX_TLS=tcp", "UCX_NET_DEVICES=lo", NULL}, 1},
    {"ucx/sm", "ucx", {"UCX_TLS=sm,self", NULL}, 1},
    {"libfabric/shm", "libfabric", {"FI_PROVIDER=shm", NULL}, 1},
    {"libfabric/tcp", "libfabric", {"FI_PROVIDER=tcp", NULL}, 1},
};
const int harness_num_configs = sizeof harness_configs / sizeof harness_configs[0];

int harness_available(const harness_config_t *cfg) {
    for (int32_t i = 0; i < moep_transport_count(); i++) {
        const char *name = NULL;
        int compiled = 0;
        moep_status_t probe = MOEP_ERR_UNSUPPORTED;
        char why[256] = "";
        moep_transport_describe(i, &name, &compiled, &probe, why, sizeof why);
        if (name == NULL || strcasecmp(name, cfg->transport) != 0) continue;
        if (compiled && probe == MOEP_OK) return 1;
        fprintf(stderr, "SKIP %s: %s\n", cfg->label, compiled ? why : "not compiled in");
        return 0;
    }
    fprintf(stderr, "SKIP %s: unknown transport\n", cfg->label);
    return 0;
}

moep_status_t harness_comm(const harness_config_t *cfg, const moep_bootstrap_t *bs, int32_t E,
                           int32_t timeout_ms, moep_comm_t **comm_p) {
    moep_comm_params_t p;
    moep_comm_params_init(&p);
    p.transport = cfg->transport;
    p.num_experts = E;
    p.timeout_ms = timeout_ms;
    return moep_comm_create(&p, bs, comm_p);
}

/* ---- threads ---- */

typedef struct thread_job {
    const harness_config_t *cfg;
    moep_local_world_t *world;
    int rank;
    rank_fn fn;
    void *arg;
    int rc;
    char err[512];
} thread_job_t;

static void *thread_main(void *p) {
    thread_job_t *j = p;
    moep_bootstrap_t *bs = NULL;
    if (moep_bootstrap_local_create(j->world, j->rank, &bs) != MOEP_OK) {
        j->rc = 1;
        snprintf(j->err, sizeof j->err, "local bootstrap: %s", moep_last_error());
        return NULL;
    }
    j->rc = j->fn(j->cfg, bs, j->arg, j->err, sizeof j->err);
    moep_bootstrap_destroy(bs);
    return NULL;
}

static int run_threads(const harness_config_t *cfg, int world, rank_fn fn, void *arg,
                       int timeout_s, char *report, size_t len) {
    moep_local_world_t *w = NULL;
    if (moep_local_world_create(world, timeout_s * 1000, &w) != MOEP_OK) return -1;
    thread_job_t *jobs = calloc((size_t)world, sizeof *jobs);
    pthread_t *th = calloc((size_t)world, sizeof *th);
    for (int r = 0; r < world; r++) {
        jobs[r] = (thread_job_t){cfg, w, r, fn, arg, 0, ""};
        pthread_create(&th[r], NULL, thread_main, &jobs[r]);
    }
    int failed = 0;
    size_t used = 0;
    for (int r = 0; r < world; r++) {
        pthread_join(th[r], NULL);
        if (jobs[r].rc != 0) {
            failed++;
            used += (size_t)snprintf(report + used, used < len ? len - used : 0, "[rank %d] %s\n",
                                     r, jobs[r].err);
            if (used >= len) used = len;
        }
    }
    free(jobs);
    free(th);
    moep_local_world_destroy(w);
    return failed;
}

/* ---- processes ---- */

typedef struct child_report {
    int rank, rc;
    char err[512];
} child_report_t;

static void child_main(const harness_config_t *cfg, int rank, int world, int port, rank_fn fn,
                       void *arg, int timeout_s, int fd) {
    for (int i = 0; cfg->env[i] != NULL; i++) putenv((char *)cfg->env[i]);
    child_report_t rep = {rank, 0, ""};
    moep_bootstrap_t *bs = NULL;
    if (moep_bootstrap_tcp_loopback(rank, world, port, timeout_s * 1000, &bs) != MOEP_OK) {
        rep.rc = 1;
        snprintf(rep.err, sizeof rep.err, "tcp bootstrap: %s", moep_last_error());
    } else {
        rep.rc = fn(cfg, bs, arg, rep.err, sizeof rep.err);
        moep_bootstrap_destroy(bs);
    }
    ssize_t n = write(fd, &rep, sizeof rep);
    _exit(n == (ssize_t)sizeof rep ? 0 : 3);
}

static int run_processes(const harness_config_t *cfg, int world, rank_fn fn, void *arg,
                         int timeout_s, char *report, size_t len) {
    int32_t port = -1;
    int fds[2];
    if (moep_tcp_free_loopback_port(&port) != MOEP_OK || pipe(fds) != 0) return -1;
    pid_t *pids = calloc((size_t)world, sizeof *pids);
    int *done = calloc((size_t)world, sizeof *done);
    child_report_t *reps = calloc((size_t)world, sizeof *reps);
    fflush(NULL);
    for (int r = 0; r < world; r++) {
        pids[r] = fork();
        if (pids[r] == 0) {
            close(fds[0]);
            child_main(cfg, r, world, port, fn, arg, timeout_s, fds[1]);
        }
    }
    close(fds[1]);
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int got = 0;
    for (;;) {
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        long left_ms = (long)timeout_s * 2000 - ((now.tv_sec - t0.tv_sec) * 1000 +
                                                 (now.tv_nsec - t0.tv_nsec) / 1000000);
        if (left_ms <= 0) break;
        struct pollfd pfd = {fds[0], POLLIN, 0};
        if (poll(&pfd, 1, (int)left_ms) <= 0) break;
        child_report_t rep;
        ssize_t n = read(fds[0], &rep, sizeof rep);
        if (n != (ssize_t)sizeof rep) break; /* every writer gone */
        if (rep.rank >= 0 && rep.rank < world && !done[rep.rank]) {
            reps[rep.rank] = rep;
            done[rep.rank] = 1;
            got++;
        }
    }
    close(fds[0]);
    int failed = 0;
    size_t used = 0;
    for (int r = 0; r < world; r++) {
        if (!done[r]) {
            kill(pids[r], SIGKILL);
            reps[r].rc = 1;
            snprintf(reps[r].err, sizeof reps[r].err, "no report (crashed, hung or killed)");
        }
        waitpid(pids[r], NULL, 0);
        if (reps[r].rc != 0) {
            failed++;
            used += (size_t)snprintf(report + used, used < len ? len - used : 0, "[rank %d] %s\n",
                                     r, reps[r].err);
            if (used >= len) used = len;
        }
    }
    (void)got;
    free(pids);
    free(done);
    free(reps);
    return failed;
}

int harness_run(const harness_config_t *cfg, int world, rank_fn fn, void *arg, int timeout_s,
                char *report, size_t report_len) {
    report[0] = '\0';
    return cfg->processes ? run_processes(cfg, world, fn, arg, timeout_s, report, report_len)
                          : run_threads(cfg, world, fn, arg, timeout_s, report, report_len);
}
