/* `moep bench`: launch the ranks (threads for the local transport, processes
 * over the TCP bootstrap otherwise), gather their results, print the table. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench_model.h"
#include "bench_run.h"

typedef struct thread_arg {
    const bench_options_t *o;
    moep_local_world_t *world;
    int32_t rank;
    bench_result_t *result;
} thread_arg_t;

static void *rank_thread(void *p) {
    thread_arg_t *a = p;
    moep_bootstrap_t *bs = NULL;
    moep_status_t st = moep_bootstrap_local_create(a->world, a->rank, &bs);
    if (st != MOEP_OK) {
        a->result->status = st;
        snprintf(a->result->error, sizeof a->result->error, "bootstrap: %s", moep_last_error());
        return NULL;
    }
    bench_run_rank(a->o, bs, a->result);
    moep_bootstrap_destroy(bs);
    return NULL;
}

static int run_threads(const bench_options_t *o, bench_result_t *res) {
    moep_local_world_t *world = NULL;
    if (moep_local_world_create(o->ranks, 0, &world) != MOEP_OK) {
        fprintf(stderr, "moep bench: %s\n", moep_last_error());
        return 1;
    }
    pthread_t th[o->ranks];
    thread_arg_t args[o->ranks];
    for (int32_t r = 0; r < o->ranks; r++) {
        args[r] = (thread_arg_t){o, world, r, &res[r]};
        pthread_create(&th[r], NULL, rank_thread, &args[r]);
    }
    for (int32_t r = 0; r < o->ranks; r++) pthread_join(th[r], NULL);
    moep_local_world_destroy(world);
    return 0;
}

static void child_rank(const bench_options_t *o, int32_t rank, int port, int out_fd) {
    bench_result_t r;
    memset(&r, 0, sizeof r);
    r.rank = rank;
    moep_bootstrap_t *bs = NULL;
    moep_status_t st = moep_bootstrap_tcp_loopback(rank, o->ranks, port, 0, &bs);
    if (st != MOEP_OK) {
        r.status = st;
        snprintf(r.error, sizeof r.error, "bootstrap: %s", moep_last_error());
    } else {
        bench_run_rank(o, bs, &r);
        moep_bootstrap_destroy(bs);
    }
    ssize_t n = write(out_fd, &r, sizeof r);
    _exit(n == (ssize_t)sizeof r ? 0 : 1);
}

static int run_processes(const bench_options_t *o, bench_result_t *res) {
    int32_t port = -1;
    int fds[2];
    if (moep_tcp_free_loopback_port(&port) != MOEP_OK || pipe(fds) != 0) {
        fprintf(stderr, "moep bench: cannot set up the launch (%s)\n", strerror(errno));
        return 1;
    }
    pid_t pids[o->ranks];
    for (int32_t r = 0; r < o->ranks; r++) {
        pids[r] = fork();
        if (pids[r] == 0) {
            close(fds[0]);
            child_rank(o, r, port, fds[1]);
        }
    }
    close(fds[1]);
    for (int32_t r = 0; r < o->ranks; r++) {
        res[r].status = MOEP_ERR_REMOTE;
        snprintf(res[r].error, sizeof res[r].error, "rank %d exited without a result", r);
    }
    bench_result_t one;
    while (read(fds[0], &one, sizeof one) == (ssize_t)sizeof one)
        if (one.rank >= 0 && one.rank < o->ranks) res[one.rank] = one;
    close(fds[0]);
    for (int32_t r = 0; r < o->ranks; r++) waitpid(pids[r], NULL, 0);
    return 0;
}

static double max_of(const bench_result_t *res, int n, size_t off) {
    double m = 0;
    for (int i = 0; i < n; i++) {
        double v = *(const double *)((const char *)&res[i] + off);
        if (v > m) m = v;
    }
    return m;
}

static int print_table(const bench_options_t *o, const bench_result_t *res) {
    int n = o->ranks, failed = 0;
    double worst = 0, tol = bench_model_tolerance(o);
    for (int r = 0; r < n; r++) {
        if (res[r].status != MOEP_OK) {
            printf("rank %d FAILED: %s\n", r, res[r].error);
            failed = 1;
        } else if (!(res[r].rel_err <= tol)) {
            printf("rank %d MISMATCH: max rel err %.3g > %.1g\n", r, res[r].rel_err, tol);
            failed = 1;
        }
        if (res[r].rel_err > worst) worst = res[r].rel_err;
    }
    if (failed) return 1;
    double flops = 0, bytes = 0, imb = 0;
    for (int r = 0; r < n; r++) {
        flops += res[r].expert_flops;
        bytes += (double)res[r].bytes_sent;
        imb += res[r].imbalance / n;
    }
    printf("moep bench: E=%d top-%d %s, H=%d I=%d shared I=%d, %s act / %s weights, wire %s\n",
           o->experts, o->top_k, moep_route_kind_name(o->route), o->hidden, o->intermediate,
           o->shared_intermediate, moep_dtype_name(o->dtype), moep_weight_format_name(o->weights),
           o->wire ? moep_dtype_name(o->wire) : moep_dtype_name(o->dtype));
    printf("           %d tokens/rank, %d rank(s) over %s%s, %d iters (median; slowest rank)\n\n",
           o->tokens, n, res[0].transport,
           o->device == MOEP_DEVICE_CUDA ? " (one GPU each, CUDA events)" : "", o->iters);
    printf("  %-10s %10s\n", "stage", "ms");
    static const char *names[] = {"route", "dispatch", "experts", "shared", "combine", "total"};
    size_t offs[] = {offsetof(bench_result_t, route_ms),   offsetof(bench_result_t, dispatch_ms),
                     offsetof(bench_result_t, experts_ms), offsetof(bench_result_t, shared_ms),
                     offsetof(bench_result_t, combine_ms), offsetof(bench_result_t, total_ms)};
    for (int i = 0; i < 6; i++) printf("  %-10s %10.3f\n", names[i], max_of(res, n, offs[i]));
    double experts_ms = max_of(res, n, offsetof(bench_result_t, experts_ms));
    printf("\n  expert GFLOP/s (all ranks)   %10.2f\n", experts_ms > 0 ? flops / experts_ms * 1e-6 : 0);
    printf("  expert load imbalance        %10.3f  (max/mean per rank's routing, averaged)\n", imb);
    printf("  wire MB / forward (all ranks)%10.3f\n", bytes * 1e-6);
    double orig = 0;
    for (int r = 0; r < n; r++)
        if (res[r].rel_err_original > orig) orig = res[r].rel_err_original;
    printf("\n  max rel err vs the unquantized f32 layer (what the weight/wire formats cost): %.3g\n",
           orig);
    printf("\nverified: max rel err %.3g <= %.1g against the float64 reference on every rank\n",
           worst, tol);
    return 0;
}

int bench_main(int argc, char **argv) {
    bench_options_t o;
    bench_options_default(&o);
    if (bench_options_parse(&o, argc, argv) != 0) return 2;
    if (o.experts % o.ranks != 0) {
        fprintf(stderr, "moep bench: --experts %d must be a multiple of --ranks %d\n", o.experts, o.ranks);
        return 2;
    }
    if (o.threads == 0) {
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        o.threads = (int32_t)(cores / o.ranks > 0 ? cores / o.ranks : 1);
    }
    bench_result_t *res = calloc((size_t)o.ranks, sizeof *res);
    if (res == NULL) return 1;
    int rc;
    if (o.ranks == 1 && o.transport == NULL) {
        bench_run_rank(&o, NULL, &res[0]);
        rc = 0;
    } else if (o.transport != NULL && strcasecmp(o.transport, "local") == 0) {
        rc = run_threads(&o, res);
    } else {
        rc = run_processes(&o, res);
    }
    if (rc == 0) rc = print_table(&o, res);
    free(res);
    return rc;
}
