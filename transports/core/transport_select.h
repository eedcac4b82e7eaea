/* Candidate transports for one moep__transport_open (select.c). */
#ifndef MOEP_TRANSPORT_SELECT_H
#define MOEP_TRANSPORT_SELECT_H

#include "transport_core.h"

#define MOEP__MAX_CANDIDATES 8

typedef enum moep__select_mode {
    MOEP__SELECT_REQUESTED, /* the caller named one: it or an error */
    MOEP__SELECT_ENV_LIST,  /* MOEP_TRANSPORT named some: one of them or an error */
    MOEP__SELECT_PROBE,     /* probe in priority order, skipping failures quietly */
} moep__select_mode_t;

typedef struct moep__candidates {
    int idx[MOEP__MAX_CANDIDATES]; /* registry indices, in the order to try */
    int n;
    moep__select_mode_t mode;
} moep__candidates_t;

/* From `requested`, else MOEP_TRANSPORT, else the whole registry.
 * MOEP_ERR_INVALID_ARG for unknown names. */
moep_status_t moep__select_candidates(const char *requested, moep__candidates_t *c);

#endif /* MOEP_TRANSPORT_SELECT_H */
