/*
 * Helpers shared by the built-in bootstraps (local, TCP, MPI) and by users of
 * any bootstrap, built-in or caller-filled (the communicator).
 */
#ifndef MOEP_BOOTSTRAP_INTERNAL_H
#define MOEP_BOOTSTRAP_INTERNAL_H

#include "moep_internal.h"

/*
 * Check a bootstrap struct before use: struct_size covers the callbacks,
 * allgather and barrier are set, 0 <= rank < world_size.
 * MOEP_ERR_INVALID_ARG with a message starting with `fn` otherwise.
 */
moep_status_t moep__bootstrap_validate(const char *fn, const moep_bootstrap_t *bs);

/*
 * Check the arguments of an allgather callback: recv non-NULL unless the
 * result is empty, send non-NULL when bytes > 0, world_size * bytes fits.
 */
moep_status_t moep__bootstrap_check_allgather(const char *fn, int32_t world_size,
                                              const void *send, const void *recv, size_t bytes);

/* Fill the public part of a built-in bootstrap. */
void moep__bootstrap_fill(moep_bootstrap_t *bs, int32_t rank, int32_t world_size, void *ctx,
                          moep_status_t (*allgather)(void *, const void *, void *, size_t),
                          moep_status_t (*barrier)(void *), void (*destroy)(void *));

#endif /* MOEP_BOOTSTRAP_INTERNAL_H */
