/*
 * Helpers shared by every transport backend (internal, moep__ prefix):
 * the wire tag layout, argument checks for the data ops, and the vtables the
 * backends export to the registry. Backends depend on this library only; the
 * registry (//transports/core) depends on the backends.
 */
#ifndef MOEP_TRANSPORT_UTIL_H
#define MOEP_TRANSPORT_UTIL_H

#include <stdbool.h>
#include <stdint.h>

#include "moep_internal.h"
#include "moep_transport.h"

/*
 * Wire tag: (user_tag << 16) | src_rank. Tag-matching libraries (UCX,
 * libfabric) then match (peer, tag) with one full-mask compare and no
 * source-addressed receive (FI_DIRECTED_RECV is optional in libfabric).
 * So user tags have 48 bits and a communicator at most 65536 ranks.
 */
#define MOEP__TAG_SRC_BITS 16
#define MOEP__TAG_USER_MAX ((UINT64_C(1) << (64 - MOEP__TAG_SRC_BITS)) - 1)
#define MOEP__TAG_MAX_RANKS (INT32_C(1) << MOEP__TAG_SRC_BITS)

static inline uint64_t moep__tag_pack(uint64_t user_tag, int32_t src_rank) {
    return (user_tag << MOEP__TAG_SRC_BITS) | (uint64_t)(uint32_t)src_rank;
}
static inline int32_t moep__tag_src(uint64_t wire_tag) {
    return (int32_t)(wire_tag & ((UINT64_C(1) << MOEP__TAG_SRC_BITS) - 1));
}
static inline uint64_t moep__tag_user(uint64_t wire_tag) { return wire_tag >> MOEP__TAG_SRC_BITS; }

/*
 * Validate the arguments every isend/irecv takes: tctx and req_p non-NULL,
 * 0 <= peer < world_size, tag <= MOEP__TAG_USER_MAX, buf non-NULL unless
 * len == 0. `fn` names the op in the message ("ucx isend").
 */
moep_status_t moep__xfer_check(const char *fn, const void *tctx, int32_t peer, int32_t world_size,
                               uint64_t tag, const void *buf, size_t len, void *const *req_p);

/* Validate init's arguments: rank in range, world_size <= limit, bootstrap
 * present and agreeing with rank / world_size. */
moep_status_t moep__init_args_check(const char *fn, const moep_transport_init_args_t *args,
                                    void *const *tctx_p, int32_t max_ranks);

/* snprintf into a `why` buffer that may be NULL or empty. */
void moep__why(char *why, size_t why_len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Backends compiled into this build (defined in transports/<name>/). */
extern const moep_transport_t moep__transport_local;
#ifdef MOEP_HAVE_UCX
extern const moep_transport_t moep__transport_ucx;
#endif
#ifdef MOEP_HAVE_LIBFABRIC
extern const moep_transport_t moep__transport_libfabric;
#endif
#ifdef MOEP_HAVE_NCCL
extern const moep_transport_t moep__transport_nccl;
#endif

#endif /* MOEP_TRANSPORT_UTIL_H */
