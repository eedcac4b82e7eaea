/* Argument checks and small helpers shared by the transport backends. */
#include "transport_util.h"

#include <stdarg.h>
#include <stdio.h>

moep_status_t moep__xfer_check(const char *fn, const void *tctx, int32_t peer, int32_t world_size,
                               uint64_t tag, const void *buf, size_t len, void *const *req_p) {
    MOEP_CHECK_ARG(fn, tctx);
    MOEP_CHECK_ARG(fn, req_p);
    if (peer < 0 || peer >= world_size)
        return moep__fail(MOEP_ERR_INVALID_ARG, "%s: peer %d out of range [0, %d)", fn, (int)peer,
                          (int)world_size);
    if (tag > MOEP__TAG_USER_MAX)
        return moep__fail(MOEP_ERR_INVALID_ARG, "%s: tag 0x%llx exceeds 48 bits", fn,
                          (unsigned long long)tag);
    if (buf == NULL && len > 0)
        return moep__fail(MOEP_ERR_INVALID_ARG, "%s: buf is NULL with len %zu", fn, len);
    return MOEP_OK;
}

moep_status_t moep__init_args_check(const char *fn, const moep_transport_init_args_t *args,
                                    void *const *tctx_p, int32_t max_ranks) {
    MOEP_CHECK_ARG(fn, args);
    MOEP_CHECK_ARG(fn, tctx_p);
    MOEP_CHECK_ARG(fn, args->bootstrap);
    if (args->world_size < 1 || args->world_size > max_ranks)
        return moep__fail(MOEP_ERR_INVALID_ARG, "%s: world_size %d out of range [1, %d]", fn,
                          (int)args->world_size, (int)max_ranks);
    if (args->rank < 0 || args->rank >= args->world_size)
        return moep__fail(MOEP_ERR_INVALID_ARG, "%s: rank %d out of range [0, %d)", fn,
                          (int)args->rank, (int)args->world_size);
    const moep_bootstrap_t *bs = args->bootstrap;
    if (bs->rank != args->rank || bs->world_size != args->world_size)
        return moep__fail(MOEP_ERR_INVALID_ARG,
                          "%s: bootstrap is rank %d of %d but args say rank %d of %d", fn,
                          (int)bs->rank, (int)bs->world_size, (int)args->rank,
                          (int)args->world_size);
    if (bs->allgather == NULL || bs->barrier == NULL)
        return moep__fail(MOEP_ERR_INVALID_ARG, "%s: bootstrap lacks allgather or barrier", fn);
    return MOEP_OK;
}

void moep__why(char *why, size_t why_len, const char *fmt, ...) {
    if (why == NULL || why_len == 0) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, why_len, fmt, ap);
    va_end(ap);
}
