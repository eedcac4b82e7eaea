/* Matching and copying for the `local` transport (see local_mailbox.h). */
#include "local_mailbox.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

local_mailbox_t *local_mailbox_create(int32_t world_size, int32_t refs) {
    local_mailbox_t *mb = calloc(1, sizeof *mb);
    if (mb == NULL) return NULL;
    mb->peer_closed = calloc((size_t)world_size, 1);
    if (mb->peer_closed == NULL || pthread_mutex_init(&mb->lock, NULL) != 0) {
        free(mb->peer_closed);
        free(mb);
        return NULL;
    }
    atomic_init(&mb->refs, refs);
    return mb;
}

void local_mailbox_unref(local_mailbox_t *mb) {
    if (mb == NULL || atomic_fetch_sub(&mb->refs, 1) != 1) return;
    pthread_mutex_destroy(&mb->lock);
    free(mb->peer_closed);
    free(mb);
}

static void push(local_queue_t *q, local_req_t *r) {
    r->qnext = NULL;
    r->qprev = q->tail;
    if (q->tail != NULL)
        q->tail->qnext = r;
    else
        q->head = r;
    q->tail = r;
    r->queued = 1;
}

static void unlink_req(local_queue_t *q, local_req_t *r) {
    if (r->qprev != NULL)
        r->qprev->qnext = r->qnext;
    else
        q->head = r->qnext;
    if (r->qnext != NULL)
        r->qnext->qprev = r->qprev;
    else
        q->tail = r->qprev;
    r->qnext = r->qprev = NULL;
    r->queued = 0;
}

static local_req_t *find(local_queue_t *q, int32_t src, uint64_t tag) {
    for (local_req_t *r = q->head; r != NULL; r = r->qnext)
        if (r->src == src && r->tag == tag) return r;
    return NULL;
}

/* After this the completing thread must not touch r again: its owner may free it. */
static void complete(local_req_t *r, moep_status_t st) {
    r->status = st;
    atomic_store_explicit(&r->done, 1, memory_order_release);
}

static void fail(local_req_t *r, moep_status_t st, const char *why) {
    snprintf(r->why, sizeof r->why, "%s", why);
    complete(r, st);
}

/* Copy a matched pair; a message longer than the receive buffer is truncated
 * and fails the receive (the sender had no way to know). */
static void deliver(local_req_t *s, local_req_t *r) {
    size_t n = s->len <= r->len ? s->len : r->len;
    if (n > 0) memcpy(r->buf, s->buf, n);
    r->got = n;
    if (s->len > r->len) {
        snprintf(r->why, sizeof r->why, "message of %zu bytes from rank %d truncated to %zu",
                 s->len, (int)s->src, r->len);
        complete(r, MOEP_ERR_PROTOCOL);
    } else {
        complete(r, MOEP_OK);
    }
    complete(s, MOEP_OK);
}

void local_mailbox_send(local_mailbox_t *mb, local_req_t *s) {
    pthread_mutex_lock(&mb->lock);
    local_req_t *r;
    if (mb->closed)
        fail(s, MOEP_ERR_REMOTE, "peer closed its communicator");
    else if ((r = find(&mb->recvs, s->src, s->tag)) != NULL) {
        unlink_req(&mb->recvs, r);
        deliver(s, r);
    } else
        push(&mb->sends, s);
    pthread_mutex_unlock(&mb->lock);
}

void local_mailbox_recv(local_mailbox_t *mb, local_req_t *r) {
    pthread_mutex_lock(&mb->lock);
    local_req_t *s = find(&mb->sends, r->src, r->tag);
    if (s != NULL) {
        unlink_req(&mb->sends, s);
        deliver(s, r);
    } else if (mb->peer_closed[r->src])
        fail(r, MOEP_ERR_REMOTE, "peer closed its communicator");
    else
        push(&mb->recvs, r);
    pthread_mutex_unlock(&mb->lock);
}

int local_mailbox_withdraw(local_mailbox_t *mb, local_req_t *q) {
    pthread_mutex_lock(&mb->lock);
    int removed = q->queued;
    if (removed) unlink_req(q->is_send ? &mb->sends : &mb->recvs, q);
    pthread_mutex_unlock(&mb->lock);
    return removed;
}

void local_mailbox_peer_closed(local_mailbox_t *mb, int32_t rank) {
    pthread_mutex_lock(&mb->lock);
    mb->peer_closed[rank] = 1;
    for (local_req_t *r = mb->recvs.head, *next; r != NULL; r = next) {
        next = r->qnext;
        if (r->src != rank) continue;
        unlink_req(&mb->recvs, r);
        fail(r, MOEP_ERR_REMOTE, "peer closed its communicator");
    }
    pthread_mutex_unlock(&mb->lock);
}

void local_mailbox_close(local_mailbox_t *mb, int32_t owner) {
    pthread_mutex_lock(&mb->lock);
    mb->closed = 1;
    for (local_req_t *s = mb->sends.head, *next; s != NULL; s = next) {
        next = s->qnext;
        unlink_req(&mb->sends, s);
        char why[96];
        snprintf(why, sizeof why, "rank %d closed its communicator before receiving", (int)owner);
        fail(s, MOEP_ERR_REMOTE, why);
    }
    pthread_mutex_unlock(&mb->lock);
}
