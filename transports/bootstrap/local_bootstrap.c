/*
 * In-process bootstrap: ranks are threads of one process sharing a
 * moep_local_world_t. A collective has two phases under one mutex:
 *   arrive: each rank publishes (send, bytes) in its slot and waits until all
 *           ranks have arrived (or its timeout passes);
 *   depart: each rank copies every slot into its own recv, then waits until
 *           all ranks have copied, so no send buffer is released while
 *           another rank still reads it.
 * A generation counter, bumped at the end of each phase, is what waiters
 * watch. Departing needs no timeout: every rank is then already inside
 * memcpy and cannot be held up by a peer.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "transports/bootstrap/bootstrap_internal.h"

#define LOCAL_MAX_WORLD 4096

typedef struct local_slot {
    const void *send;
    size_t bytes;
    bool present; /* arrived in the collective now gathering */
    bool claimed; /* a live bootstrap exists for this rank */
} local_slot_t;

struct moep_local_world {
    int32_t world_size;
    int32_t timeout_ms;
    pthread_mutex_t mu;
    pthread_cond_t cv; /* CLOCK_MONOTONIC */
    uint64_t generation;
    int32_t arrived;
    int32_t departed;
    /* Outcome of the last completed arrive phase (read by its waiters). */
    moep_status_t outcome;
    int32_t mismatch_rank;
    size_t mismatch_bytes, expected_bytes;
    int32_t live_bootstraps;
    bool destroy_requested; /* freed when the last bootstrap goes */
    local_slot_t *slots;
};

typedef struct local_ctx {
    moep_bootstrap_t bs; /* first: handed to the caller */
    moep_local_world_t *world;
    int32_t rank;
} local_ctx_t;

static void world_free(moep_local_world_t *w) {
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->mu);
    free(w->slots);
    free(w);
}

moep_status_t moep_local_world_create(int32_t world_size, int32_t timeout_ms,
                                      moep_local_world_t **world_p) {
    static const char fn[] = "moep_local_world_create";
    MOEP_CHECK_ARG(fn, world_p);
    *world_p = NULL;
    if (world_size < 1 || world_size > LOCAL_MAX_WORLD)
        return moep__fail(MOEP_ERR_INVALID_ARG, "%s: world_size %d outside [1, %d]", fn,
                          world_size, LOCAL_MAX_WORLD);
    moep_local_world_t *w = moep__calloc(fn, 1, sizeof *w);
    if (w == NULL) return MOEP_ERR_NO_MEMORY;
    w->slots = moep__calloc(fn, (size_t)world_size, sizeof *w->slots);
    if (w->slots == NULL) {
        free(w);
        return MOEP_ERR_NO_MEMORY;
    }
    w->world_size = world_size;
    w->timeout_ms = moep__timeout_ms(timeout_ms);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    int rc = pthread_cond_init(&w->cv, &attr);
    pthread_condattr_destroy(&attr);
    if (rc == 0 && pthread_mutex_init(&w->mu, NULL) != 0) {
        pthread_cond_destroy(&w->cv);
        rc = -1;
    }
    if (rc != 0) {
        free(w->slots);
        free(w);
        return moep__fail(MOEP_ERR_SYSTEM, "%s: cannot initialise mutex/condvar", fn);
    }
    *world_p = w;
    return MOEP_OK;
}

void moep_local_world_destroy(moep_local_world_t *w) {
    if (w == NULL) return;
    pthread_mutex_lock(&w->mu);
    bool in_use = w->live_bootstraps > 0;
    w->destroy_requested = true;
    pthread_mutex_unlock(&w->mu);
    if (!in_use) {
        world_free(w);
        return;
    }
    /* Freeing now would leave the live bootstraps dangling. */
    MOEP_LOG_AT(MOEP_LOG_WARN,
                "moep_local_world_destroy: %d bootstrap(s) still alive; the world is freed "
                "with the last of them",
                w->live_bootstraps);
}

/* Deadline `ms` from now on CLOCK_MONOTONIC. */
static struct timespec deadline_after(int32_t ms) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return ts;
}

/* Comma list of ranks that have not arrived, into buf. Called with mu held. */
static void missing_ranks(const moep_local_world_t *w, char *buf, size_t len) {
    size_t used = 0;
    buf[0] = '\0';
    for (int32_t r = 0; r < w->world_size && used + 16 < len; r++) {
        if (w->slots[r].present) continue;
        used += (size_t)snprintf(buf + used, len - used, "%s%d", used ? "," : "", r);
    }
}

/* The last rank to arrive decides the outcome. Called with mu held. */
static void complete_arrival(moep_local_world_t *w) {
    w->outcome = MOEP_OK;
    w->expected_bytes = w->slots[0].bytes;
    for (int32_t r = 1; r < w->world_size; r++) {
        if (w->slots[r].bytes != w->expected_bytes) {
            w->outcome = MOEP_ERR_MISMATCH;
            w->mismatch_rank = r;
            w->mismatch_bytes = w->slots[r].bytes;
            break;
        }
    }
    w->arrived = 0;
    w->departed = 0;
    w->generation++;
    pthread_cond_broadcast(&w->cv);
}

/* Arrive phase. Returns with mu held in every case. */
static moep_status_t arrive(local_ctx_t *c, const void *send, size_t bytes) {
    moep_local_world_t *w = c->world;
    local_slot_t *me = &w->slots[c->rank];
    if (me->present)
        return moep__fail(MOEP_ERR_INVALID_USAGE,
                          "moep_bootstrap_local allgather: rank %d is already in a collective "
                          "(bootstrap used from two threads at once?)",
                          c->rank);
    me->send = send;
    me->bytes = bytes;
    me->present = true;
    uint64_t gen = w->generation;
    if (++w->arrived == w->world_size) {
        complete_arrival(w);
    } else {
        struct timespec until = deadline_after(w->timeout_ms);
        while (w->generation == gen) {
            if (pthread_cond_timedwait(&w->cv, &w->mu, &until) == ETIMEDOUT &&
                w->generation == gen) {
                char who[256];
                missing_ranks(w, who, sizeof who);
                me->present = false; /* withdraw: the collective never happened for us */
                w->arrived--;
                return moep__fail(MOEP_ERR_TIMEOUT,
                                  "moep_bootstrap_local allgather: rank %d timed out after %d "
                                  "ms waiting for rank(s) %s",
                                  c->rank, w->timeout_ms, who);
            }
        }
    }
    if (w->outcome == MOEP_ERR_MISMATCH)
        return moep__fail(MOEP_ERR_MISMATCH,
                          "moep_bootstrap_local allgather: rank %d contributes %zu bytes but "
                          "rank 0 contributes %zu",
                          w->mismatch_rank, w->mismatch_bytes, w->expected_bytes);
    return MOEP_OK;
}

static void clear_slots(moep_local_world_t *w) {
    for (int32_t r = 0; r < w->world_size; r++) w->slots[r].present = false;
}

static moep_status_t local_allgather(void *ctx, const void *send, void *recv, size_t bytes) {
    local_ctx_t *c = ctx;
    moep_local_world_t *w = c->world;
    MOEP_TRY(moep__bootstrap_check_allgather("moep_bootstrap_local allgather", w->world_size, send,
                                             recv, bytes));
    pthread_mutex_lock(&w->mu);
    moep_status_t st = arrive(c, send, bytes);
    if (st != MOEP_OK) {
        /* A mismatch completes the collective without a copy phase. */
        if (st == MOEP_ERR_MISMATCH) w->slots[c->rank].present = false;
        pthread_mutex_unlock(&w->mu);
        return st;
    }
    pthread_mutex_unlock(&w->mu);

    for (int32_t r = 0; r < w->world_size && bytes > 0; r++)
        memcpy((char *)recv + (size_t)r * bytes, w->slots[r].send, bytes);

    pthread_mutex_lock(&w->mu);
    uint64_t gen = w->generation;
    if (++w->departed == w->world_size) {
        clear_slots(w);
        w->generation++;
        pthread_cond_broadcast(&w->cv);
    } else {
        while (w->generation == gen) pthread_cond_wait(&w->cv, &w->mu);
    }
    pthread_mutex_unlock(&w->mu);
    return MOEP_OK;
}

static moep_status_t local_barrier(void *ctx) { return local_allgather(ctx, NULL, NULL, 0); }

static void local_destroy(void *ctx) {
    local_ctx_t *c = ctx;
    moep_local_world_t *w = c->world;
    pthread_mutex_lock(&w->mu);
    w->slots[c->rank].claimed = false;
    bool last = --w->live_bootstraps == 0 && w->destroy_requested;
    pthread_mutex_unlock(&w->mu);
    free(c);
    if (last) world_free(w);
}

moep_status_t moep_bootstrap_local_create(moep_local_world_t *w, int32_t rank,
                                          moep_bootstrap_t **bs_p) {
    static const char fn[] = "moep_bootstrap_local_create";
    MOEP_CHECK_ARG(fn, bs_p);
    *bs_p = NULL;
    MOEP_CHECK_ARG(fn, w);
    if (rank < 0 || rank >= w->world_size)
        return moep__fail(MOEP_ERR_INVALID_ARG, "%s: rank %d outside [0, %d)", fn, rank,
                          w->world_size);
    local_ctx_t *c = moep__calloc(fn, 1, sizeof *c);
    if (c == NULL) return MOEP_ERR_NO_MEMORY;
    pthread_mutex_lock(&w->mu);
    moep_status_t st = MOEP_OK;
    if (w->destroy_requested)
        st = moep__fail(MOEP_ERR_INVALID_USAGE, "%s: the world is being destroyed", fn);
    else if (w->slots[rank].claimed)
        st = moep__fail(MOEP_ERR_INVALID_USAGE, "%s: rank %d already has a bootstrap", fn, rank);
    if (st == MOEP_OK) {
        w->slots[rank].claimed = true;
        w->live_bootstraps++;
    }
    pthread_mutex_unlock(&w->mu);
    if (st != MOEP_OK) {
        free(c);
        return st;
    }
    c->world = w;
    c->rank = rank;
    moep__bootstrap_fill(&c->bs, rank, w->world_size, c, local_allgather, local_barrier,
                         local_destroy);
    *bs_p = &c->bs;
    return MOEP_OK;
}
