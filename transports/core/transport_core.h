/*
 * Transport core: what the communicator (dispatch / combine) calls.
 * Internal (moep__ prefix); the backends' interface is api/moep_transport.h.
 *
 * Selection (moep__transport_open):
 *   1. `requested` (case-insensitive name): that transport or an error.
 *   2. else MOEP_TRANSPORT, a comma list: plain names are tried in the order
 *      given, each failure logged at warn; none working is an error.
 *      "^name" entries exclude; a list of only exclusions probes the rest.
 *      Unknown names are MOEP_ERR_INVALID_ARG (a typo must not fall back).
 *   3. else probe in priority order nccl, ucx, libfabric, local and take the
 *      first that probes and initialises on every rank.
 * Selection is collective: ranks allgather their probe results and pick the
 * first transport that works everywhere, then allgather the chosen name
 * (MOEP_ERR_MISMATCH if ranks differ, e.g. different MOEP_TRANSPORT), then
 * agree that init succeeded everywhere. Wire-up follows: get_addr, allgather
 * of the lengths and the padded addresses, connect_all, and a last
 * agreement so that either every rank succeeds or every rank fails.
 */
#ifndef MOEP_TRANSPORT_CORE_H
#define MOEP_TRANSPORT_CORE_H

#include "transport_util.h"

moep_status_t moep__transport_open(const char *requested, const moep_transport_init_args_t *args,
                                   const moep_transport_t **vt_p, void **tctx_p);

/*
 * Progress and test until the n requests in reqs[] are done. NULL entries
 * count as done; entries are set to NULL as they complete, and lens[i] (if
 * lens != NULL) receives the bytes of a completed receive. peers[i] names
 * the peer of reqs[i] for messages.
 * On a failed request: cancels every other unfinished one (all of reqs[]
 * is NULL on return) and returns the failure, naming the peer.
 * At `deadline_ms` (a moep__now_ms() time): cancels every unfinished
 * request and returns MOEP_ERR_TIMEOUT, "timed out after 5000 ms waiting
 * for rank 2, rank 3". The message also goes to err (may be NULL).
 */
moep_status_t moep__transport_wait(const moep_transport_t *vt, void *tctx, void **reqs,
                                   const int32_t *peers, int n, double deadline_ms, size_t *lens,
                                   char *err, size_t err_len);

/* Finalize (local; never waits on peers). NULL vt or tctx is a no-op. */
void moep__transport_close(const moep_transport_t *vt, void *tctx);

/* Registry of known transports, in priority order (registry.c). */
typedef struct moep__transport_entry {
    const char *name;
    const moep_transport_t *vt; /* NULL: not compiled in */
    const char *build_hint;     /* how to compile it in */
} moep__transport_entry_t;

int moep__transport_registry(const moep__transport_entry_t **entries_p);
/* Index of `name` (case-insensitive, first `len` chars), or -1. */
int moep__transport_find(const char *name, size_t len);

#endif /* MOEP_TRANSPORT_CORE_H */
