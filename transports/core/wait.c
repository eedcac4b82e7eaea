/* moep__transport_wait: drive requests to completion, a deadline, or a failure. */
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "transport_core.h"

static const char *fn = "moep__transport_wait";

static moep_status_t wait_fail(char *err, size_t err_len, moep_status_t s, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static moep_status_t wait_fail(char *err, size_t err_len, moep_status_t s, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    moep__vfail(err, err_len, s, fmt, ap);
    va_end(ap);
    return s;
}

/* Cancel every request still in reqs[]; cancel errors are only logged. */
static void cancel_rest(const moep_transport_t *vt, void *tctx, void **reqs, int n) {
    for (int i = 0; i < n; i++) {
        if (reqs[i] == NULL) continue;
        if (vt->cancel(tctx, reqs[i]) != MOEP_OK)
            MOEP_LOG_AT(MOEP_LOG_WARN, "transport %s: cancel: %s", vt->name, moep_last_error());
        reqs[i] = NULL;
    }
}

static int cmp_i32(const void *a, const void *b) {
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

/* "rank 2, rank 3" for the distinct peers of the unfinished requests. */
static void list_outstanding(void **reqs, const int32_t *peers, int n, char *buf, size_t len) {
    int32_t *p = malloc(sizeof *p * (size_t)(n > 0 ? n : 1));
    int m = 0;
    buf[0] = '\0';
    if (p == NULL) return;
    for (int i = 0; i < n; i++)
        if (reqs[i] != NULL) p[m++] = peers[i];
    qsort(p, (size_t)m, sizeof *p, cmp_i32);
    size_t off = 0;
    int shown = 0, distinct = 0;
    for (int i = 0; i < m; i++) {
        if (i > 0 && p[i] == p[i - 1]) continue;
        distinct++;
        if (shown == 8) continue; /* keep the message short on large worlds */
        off += (size_t)snprintf(buf + off, off < len ? len - off : 0, "%srank %d",
                                shown ? ", " : "", (int)p[i]);
        shown++;
    }
    if (distinct > shown && off < len)
        snprintf(buf + off, len - off, " and %d more", distinct - shown);
    free(p);
}

moep_status_t moep__transport_wait(const moep_transport_t *vt, void *tctx, void **reqs,
                                   const int32_t *peers, int n, double deadline_ms, size_t *lens,
                                   char *err, size_t err_len) {
    MOEP_CHECK_ARG(fn, vt);
    MOEP_CHECK_ARG(fn, tctx);
    if (n < 0) return wait_fail(err, err_len, MOEP_ERR_INVALID_ARG, "%s: n = %d < 0", fn, n);
    if (n == 0) return MOEP_OK;
    MOEP_CHECK_ARG(fn, reqs);
    MOEP_CHECK_ARG(fn, peers);
    double start = moep__now_ms();
    for (;;) {
        moep_status_t st = vt->progress(tctx);
        if (st != MOEP_OK) {
            cancel_rest(vt, tctx, reqs, n);
            return wait_fail(err, err_len, st, "transport %s: progress failed: %s", vt->name,
                             moep_last_error());
        }
        int pending = 0, completed = 0;
        for (int i = 0; i < n; i++) {
            if (reqs[i] == NULL) continue;
            int done = 0;
            size_t len = 0;
            st = vt->test(tctx, reqs[i], &done, &len);
            if (st != MOEP_OK) {
                reqs[i] = NULL; /* test freed the failed request */
                char why[512];
                snprintf(why, sizeof why, "%s", moep_last_error());
                cancel_rest(vt, tctx, reqs, n);
                return wait_fail(err, err_len, st, "transport %s: request to/from rank %d failed: %s",
                                 vt->name, (int)peers[i], why);
            }
            if (done) {
                reqs[i] = NULL;
                if (lens != NULL) lens[i] = len;
                completed++;
            } else {
                pending++;
            }
        }
        if (pending == 0) return MOEP_OK;
        double now = moep__now_ms();
        if (now >= deadline_ms) {
            char who[256];
            list_outstanding(reqs, peers, n, who, sizeof who);
            cancel_rest(vt, tctx, reqs, n);
            return wait_fail(err, err_len, MOEP_ERR_TIMEOUT, "timed out after %.0f ms waiting for %s",
                             now - start, who);
        }
        /* Peers may be threads of this process (local) or share our cores. */
        if (completed == 0) sched_yield();
    }
}
