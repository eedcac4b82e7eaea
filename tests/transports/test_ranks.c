/* Thread and fork rank runners with their test bootstraps (test_ranks.h). */
#include "test_ranks.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static _Thread_local char *my_msg;

void tr_fail(const char *fmt, ...) {
    if (my_msg == NULL) return;
    size_t off = strlen(my_msg);
    va_list ap;
    va_start(ap, fmt);
    if (off < TR_MSG_LEN) vsnprintf(my_msg + off, TR_MSG_LEN - off, fmt, ap);
    va_end(ap);
}

/* ---------------- threads: allgather through a shared buffer ---------------- */

#define TB_SLOT 16384

typedef struct tb_world {
    pthread_barrier_t bar;
    int n;
    char *buf; /* n * TB_SLOT */
} tb_world_t;

typedef struct tb_rank {
    tb_world_t *w;
    int rank;
    moep_bootstrap_t bs;
    tr_rank_fn fn;
    void *arg;
    int rc;
    char *msg;
} tb_rank_t;

static moep_status_t tb_allgather(void *ctx, const void *send, void *recv, size_t bytes) {
    tb_rank_t *r = ctx;
    if (bytes > TB_SLOT) return MOEP_ERR_INVALID_ARG;
    memcpy(r->w->buf + (size_t)r->rank * TB_SLOT, send, bytes);
    pthread_barrier_wait(&r->w->bar);
    for (int i = 0; i < r->w->n; i++)
        memcpy((char *)recv + (size_t)i * bytes, r->w->buf + (size_t)i * TB_SLOT, bytes);
    pthread_barrier_wait(&r->w->bar);
    return MOEP_OK;
}

static moep_status_t tb_barrier(void *ctx) {
    tb_rank_t *r = ctx;
    pthread_barrier_wait(&r->w->bar);
    return MOEP_OK;
}

static void *tb_main(void *p) {
    tb_rank_t *r = p;
    my_msg = r->msg;
    r->rc = r->fn(&r->bs, r->arg);
    return NULL;
}

void tr_run_threads(int n, tr_rank_fn fn, void *arg, tr_result_t *res) {
    memset(res, 0, sizeof *res);
    tb_world_t w = {.n = n, .buf = calloc((size_t)n, TB_SLOT)};
    pthread_barrier_init(&w.bar, NULL, (unsigned)n);
    tb_rank_t ranks[TR_MAX_RANKS];
    pthread_t th[TR_MAX_RANKS];
    for (int i = 0; i < n; i++) {
        ranks[i] = (tb_rank_t){.w = &w, .rank = i, .fn = fn, .arg = arg, .msg = res->msg[i]};
        ranks[i].bs = (moep_bootstrap_t){sizeof(moep_bootstrap_t), i, n, &ranks[i],
                                         tb_allgather, tb_barrier, NULL};
        pthread_create(&th[i], NULL, tb_main, &ranks[i]);
    }
    for (int i = 0; i < n; i++) {
        pthread_join(th[i], NULL);
        res->exit_code[i] = ranks[i].rc;
    }
    pthread_barrier_destroy(&w.bar);
    free(w.buf);
}

/* ---------------- processes: star through the parent ---------------- */

#define FB_WAIT_MS 15000

typedef struct fb_ctx {
    int fd;
    int n;
} fb_ctx_t;

/* Read or write exactly len bytes within FB_WAIT_MS; -1 on EOF/error/timeout. */
static int io_full(int fd, void *buf, size_t len, int writing) {
    char *p = buf;
    while (len > 0) {
        struct pollfd pfd = {fd, writing ? POLLOUT : POLLIN, 0};
        int pr = poll(&pfd, 1, FB_WAIT_MS);
        if (pr < 0 && errno == EINTR) continue;
        if (pr <= 0) return -1;
        ssize_t k = writing ? send(fd, p, len, MSG_NOSIGNAL) : recv(fd, p, len, 0);
        if (k < 0 && (errno == EINTR || errno == EAGAIN)) continue;
        if (k <= 0) return -1;
        p += k;
        len -= (size_t)k;
    }
    return 0;
}

static moep_status_t fb_allgather(void *ctx, const void *send, void *recv, size_t bytes) {
    fb_ctx_t *c = ctx;
    uint64_t hdr = bytes;
    if (io_full(c->fd, &hdr, sizeof hdr, 1) || io_full(c->fd, (void *)send, bytes, 1) ||
        io_full(c->fd, recv, bytes * (size_t)c->n, 0))
        return MOEP_ERR_REMOTE;
    return MOEP_OK;
}

static moep_status_t fb_barrier(void *ctx) {
    char b = 0, all[TR_MAX_RANKS];
    return fb_allgather(ctx, &b, all, 1);
}

/* The parent relays allgathers until a child closes or misbehaves; then it
 * closes every socket so the others see EOF instead of waiting. */
static void hub(int n, const int *fds) {
    char *buf = NULL;
    for (;;) {
        uint64_t bytes = 0, first = 0;
        int ok = 1;
        for (int i = 0; i < n && ok; i++) {
            ok = io_full(fds[i], &bytes, sizeof bytes, 0) == 0 && (i == 0 || bytes == first);
            if (i == 0) first = bytes;
        }
        if (!ok || first > (64u << 20)) break;
        char *nb = realloc(buf, first * (size_t)n + 1);
        if (nb == NULL) break;
        buf = nb;
        for (int i = 0; i < n && ok; i++) ok = io_full(fds[i], buf + i * first, first, 0) == 0;
        for (int i = 0; i < n && ok; i++) ok = io_full(fds[i], buf, first * (size_t)n, 1) == 0;
        if (!ok) break;
    }
    free(buf);
    for (int i = 0; i < n; i++) shutdown(fds[i], SHUT_RDWR);
}

void tr_run_forked(int n, tr_rank_fn fn, void *arg, int limit_s, tr_result_t *res) {
    memset(res, 0, sizeof *res);
    char *shared = mmap(NULL, sizeof res->msg, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                        -1, 0);
    if (shared == MAP_FAILED) {
        for (int i = 0; i < n; i++) res->exit_code[i] = -1;
        snprintf(res->msg[0], TR_MSG_LEN, "mmap failed");
        return;
    }
    memset(shared, 0, sizeof res->msg);
    int fds[TR_MAX_RANKS];
    pid_t pids[TR_MAX_RANKS];
    fflush(NULL);
    for (int i = 0; i < n; i++) {
        int sv[2];
        if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) abort();
        pids[i] = fork();
        if (pids[i] == 0) {
            for (int j = 0; j < i; j++) close(fds[j]);
            close(sv[0]);
            my_msg = shared + (size_t)i * TR_MSG_LEN;
            fb_ctx_t c = {sv[1], n};
            moep_bootstrap_t bs = {sizeof bs, i, n, &c, fb_allgather, fb_barrier, NULL};
            int rc = fn(&bs, arg);
            close(sv[1]);
            exit(rc); /* not _exit: lets LeakSanitizer check the rank */
        }
        close(sv[1]);
        fds[i] = sv[0];
    }
    hub(n, fds);
    for (int i = 0; i < n; i++) close(fds[i]);
    time_t end = time(NULL) + limit_s;
    for (int i = 0; i < n; i++) {
        int status = 0;
        pid_t w;
        while ((w = waitpid(pids[i], &status, WNOHANG)) == 0 && time(NULL) < end)
            usleep(2000);
        if (w == 0) {
            kill(pids[i], SIGKILL);
            waitpid(pids[i], &status, 0);
            snprintf(shared + (size_t)i * TR_MSG_LEN, TR_MSG_LEN, "rank %d hung: killed", i);
        }
        res->exit_code[i] = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        res->pid[i] = (int)pids[i];
    }
    memcpy(res->msg, shared, sizeof res->msg);
    munmap(shared, sizeof res->msg);
}
