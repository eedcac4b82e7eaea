/*
 * Mailboxes of the `local` transport: one per rank, shared by all rank
 * threads of the process. A send is matched under the receiver's lock,
 * either against a posted receive (then copied at once) or queued as
 * unexpected until the receive is posted; both queues are FIFO, so messages
 * between a pair with the same tag arrive in order.
 */
#ifndef MOEP_LOCAL_MAILBOX_H
#define MOEP_LOCAL_MAILBOX_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "moep_core.h"

typedef struct local_req local_req_t;

typedef struct local_queue {
    local_req_t *head, *tail;
} local_queue_t;

typedef struct local_mailbox {
    pthread_mutex_t lock;
    local_queue_t sends; /* unexpected sends from peers */
    local_queue_t recvs; /* receives posted by the owner */
    int closed;          /* owner finalized: sends to it fail */
    unsigned char *peer_closed; /* [world]: peer finalized, receives from it fail */
    atomic_int refs;     /* one per rank context; the last to drop frees */
} local_mailbox_t;

struct local_req {
    local_req_t *qnext, *qprev; /* mailbox queue, under that mailbox's lock */
    local_req_t *lnext, *lprev; /* owner's list of live requests (owner thread only) */
    int queued;                 /* under the lock of the mailbox it is queued in */
    int is_send;
    int32_t peer;               /* destination of a send, source of a receive */
    int32_t src;                /* sending rank: the match key with tag */
    uint64_t tag;
    void *buf;
    size_t len;
    size_t got;                 /* bytes received */
    moep_status_t status;
    char why[128];
    atomic_int done;            /* set last, with release, by whoever completes it */
};

local_mailbox_t *local_mailbox_create(int32_t world_size, int32_t refs);
void local_mailbox_unref(local_mailbox_t *mb);

/* Post a send into the receiver's mailbox `mb`: matched or queued. */
void local_mailbox_send(local_mailbox_t *mb, local_req_t *s);
/* Post a receive into the owner's mailbox `mb`: matched or queued. */
void local_mailbox_recv(local_mailbox_t *mb, local_req_t *r);
/* Remove `q` from mb's queue if still queued. Returns 1 if removed, 0 if it
 * completed meanwhile. */
int local_mailbox_withdraw(local_mailbox_t *mb, local_req_t *q);
/* Rank `rank` leaves: fail mb's receives waiting on it. */
void local_mailbox_peer_closed(local_mailbox_t *mb, int32_t rank);
/* The owner leaves: fail the unexpected sends queued for it. */
void local_mailbox_close(local_mailbox_t *mb, int32_t owner);

#endif /* MOEP_LOCAL_MAILBOX_H */
