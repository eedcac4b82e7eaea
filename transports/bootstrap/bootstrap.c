/* Bootstrap lifetime and the validation every bootstrap flavour shares. */
#include <stddef.h>
#include <stdint.h>

#include "transports/bootstrap/bootstrap_internal.h"

/* A caller-filled struct must at least reach the barrier callback. */
#define BOOTSTRAP_MIN_SIZE (offsetof(moep_bootstrap_t, barrier) + sizeof(void (*)(void)))

static bool has_destroy(const moep_bootstrap_t *bs) {
    return bs->struct_size >= offsetof(moep_bootstrap_t, destroy) + sizeof bs->destroy &&
           bs->destroy != NULL;
}

void moep_bootstrap_destroy(moep_bootstrap_t *bs) {
    if (bs == NULL || !has_destroy(bs)) return;
    /* The built-ins embed `bs` in their ctx: it is freed by this call. */
    bs->destroy(bs->ctx);
}

moep_status_t moep__bootstrap_validate(const char *fn, const moep_bootstrap_t *bs) {
    if (bs == NULL) return moep__fail(MOEP_ERR_INVALID_ARG, "%s: bootstrap is NULL", fn);
    if (bs->struct_size < BOOTSTRAP_MIN_SIZE)
        return moep__fail(MOEP_ERR_INVALID_ARG,
                          "%s: bootstrap struct_size %u is too small (need >= %zu)", fn,
                          bs->struct_size, (size_t)BOOTSTRAP_MIN_SIZE);
    if (bs->allgather == NULL || bs->barrier == NULL)
        return moep__fail(MOEP_ERR_INVALID_ARG, "%s: bootstrap allgather or barrier is NULL", fn);
    if (bs->world_size < 1)
        return moep__fail(MOEP_ERR_INVALID_ARG, "%s: bootstrap world_size %d < 1", fn,
                          bs->world_size);
    if (bs->rank < 0 || bs->rank >= bs->world_size)
        return moep__fail(MOEP_ERR_INVALID_ARG, "%s: bootstrap rank %d outside [0, %d)", fn,
                          bs->rank, bs->world_size);
    return MOEP_OK;
}

moep_status_t moep__bootstrap_check_allgather(const char *fn, int32_t world_size,
                                              const void *send, const void *recv, size_t bytes) {
    if (bytes > 0 && send == NULL)
        return moep__fail(MOEP_ERR_INVALID_ARG, "%s: send is NULL with bytes = %zu", fn, bytes);
    if (bytes > 0 && recv == NULL)
        return moep__fail(MOEP_ERR_INVALID_ARG, "%s: recv is NULL with bytes = %zu", fn, bytes);
    if (world_size > 0 && bytes > SIZE_MAX / (size_t)world_size)
        return moep__fail(MOEP_ERR_INVALID_ARG, "%s: %d ranks x %zu bytes overflows", fn,
                          world_size, bytes);
    return MOEP_OK;
}

void moep__bootstrap_fill(moep_bootstrap_t *bs, int32_t rank, int32_t world_size, void *ctx,
                          moep_status_t (*allgather)(void *, const void *, void *, size_t),
                          moep_status_t (*barrier)(void *), void (*destroy)(void *)) {
    bs->struct_size = (uint32_t)sizeof *bs;
    bs->rank = rank;
    bs->world_size = world_size;
    bs->ctx = ctx;
    bs->allgather = allgather;
    bs->barrier = barrier;
    bs->destroy = destroy;
}
