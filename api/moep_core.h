/*
 * moep core types: status codes, dtypes, tensor descriptors, logging, versions.
 * Included by moep.h; do not include directly.
 */
#ifndef MOEP_CORE_H
#define MOEP_CORE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define MOEP_API __attribute__((visibility("default")))
#else
#define MOEP_API
#endif

#define MOEP_VERSION_MAJOR 0
#define MOEP_VERSION_MINOR 1
#define MOEP_VERSION_PATCH 0

/* Library version as MAJOR*10000 + MINOR*100 + PATCH. */
MOEP_API int moep_version(void);

/*
 * Status codes. Defined once here (X-macro) and expanded into the enum,
 * moep_status_name() and moep_status_string(). Failures are negative and
 * grouped by who is at fault: the caller (-1..-19), the system / a peer
 * (-20..-39), the library itself (-40..).
 */
#define MOEP_STATUS_MAP(XX)                                                              \
    XX(OK, 0, "success")                                                                 \
    XX(INPROGRESS, 1, "operation in progress")                                           \
    XX(ERR_INVALID_ARG, -1, "invalid argument (null pointer or bad value)")              \
    XX(ERR_SHAPE, -2, "tensor shape or dtype does not match")                            \
    XX(ERR_OUT_OF_RANGE, -3, "index out of range (e.g. expert id)")                      \
    XX(ERR_INVALID_USAGE, -4, "call not valid in this state")                            \
    XX(ERR_NUMERIC, -5, "non-finite value (NaN/Inf) in input")                           \
    XX(ERR_UNSUPPORTED, -6, "feature not supported or not compiled in")                  \
    XX(ERR_MISMATCH, -7, "ranks disagree on a parameter")                                \
    XX(ERR_NO_MEMORY, -20, "out of memory")                                              \
    XX(ERR_SYSTEM, -21, "system or transport error")                                     \
    XX(ERR_TIMEOUT, -22, "timed out waiting for a peer")                                 \
    XX(ERR_REMOTE, -23, "a peer failed or closed the connection")                        \
    XX(ERR_PROTOCOL, -24, "malformed or unauthenticated message from a peer")            \
    XX(ERR_CUDA, -25, "CUDA or NCCL error")                                              \
    XX(ERR_AGAIN, -26, "resource temporarily unavailable, retry after progress")         \
    XX(ERR_INTERNAL, -40, "internal error (a bug in moep)")

typedef enum moep_status {
#define MOEP_STATUS_ENUM_(name, value, text) MOEP_##name = value,
    MOEP_STATUS_MAP(MOEP_STATUS_ENUM_)
#undef MOEP_STATUS_ENUM_
} moep_status_t;

/* Static text for a status ("timed out waiting for a peer"). Never NULL. */
MOEP_API const char *moep_status_string(moep_status_t s);
/* Short name of a status ("MOEP_ERR_TIMEOUT"). Never NULL. */
MOEP_API const char *moep_status_name(moep_status_t s);
/*
 * Detailed message of the last failure on the calling thread, e.g.
 * "moep_route: topk_idx[3,1] = 70 out of range [0, 64)". Thread-local, valid
 * until the next failing moep call on this thread. Never NULL ("" if none).
 */
MOEP_API const char *moep_last_error(void);

/* Element types. FP4_E2M1 is packed two per byte (low nibble first). */
typedef enum moep_dtype {
    MOEP_DTYPE_F32 = 0,
    MOEP_DTYPE_BF16 = 1,
    MOEP_DTYPE_F16 = 2,
    MOEP_DTYPE_F64 = 3,
    MOEP_DTYPE_I32 = 4,
    MOEP_DTYPE_I64 = 5,
    MOEP_DTYPE_U8 = 6,
    MOEP_DTYPE_FP8_E4M3 = 7,
    MOEP_DTYPE_FP8_E5M2 = 8,
    MOEP_DTYPE_FP4_E2M1 = 9,
    MOEP_DTYPE_COUNT_
} moep_dtype_t;

/* Name of a dtype ("bf16"); "?" if unknown. */
MOEP_API const char *moep_dtype_name(moep_dtype_t t);
/* Size in bits of one element (4 for FP4); 0 if unknown. */
MOEP_API int moep_dtype_bits(moep_dtype_t t);

typedef enum moep_device {
    MOEP_DEVICE_CPU = 0,
    MOEP_DEVICE_CUDA = 1,
} moep_device_t;

/*
 * A CUDA stream, ABI-identical to cudaStream_t; no CUDA header needed.
 * NULL means "no stream" (CPU path, or the legacy default stream on CUDA).
 */
typedef struct CUstream_st *moep_stream_t;

#define MOEP_MAX_DIMS 4

/*
 * Tensor descriptor: a view, never owning. Dense row-major (C order), so the
 * last dimension is contiguous. `data` may be NULL only when the tensor has
 * zero elements.
 */
typedef struct moep_tensor {
    void *data;
    moep_dtype_t dtype;
    int32_t ndim;
    int64_t shape[MOEP_MAX_DIMS];
    moep_device_t device;
    int32_t device_id;
} moep_tensor_t;

/* A 1-D / 2-D / 3-D host tensor view (helpers for C callers). */
static inline moep_tensor_t moep_tensor_1d(void *data, moep_dtype_t t, int64_t n0) {
    moep_tensor_t x = {data, t, 1, {n0, 0, 0, 0}, MOEP_DEVICE_CPU, 0};
    return x;
}
static inline moep_tensor_t moep_tensor_2d(void *data, moep_dtype_t t, int64_t n0, int64_t n1) {
    moep_tensor_t x = {data, t, 2, {n0, n1, 0, 0}, MOEP_DEVICE_CPU, 0};
    return x;
}
static inline moep_tensor_t moep_tensor_3d(void *data, moep_dtype_t t, int64_t n0, int64_t n1,
                                           int64_t n2) {
    moep_tensor_t x = {data, t, 3, {n0, n1, n2, 0}, MOEP_DEVICE_CPU, 0};
    return x;
}
/* Number of elements (product of the shape); 0 for ndim == 0 or bad shapes. */
MOEP_API int64_t moep_tensor_numel(const moep_tensor_t *t);

/*
 * Logging. The level comes from MOEP_LOG (error, warn, info, debug, trace;
 * default warn), read on the first log call: no global init. Messages go to
 * stderr unless a handler is installed.
 */
typedef enum moep_log_level {
    MOEP_LOG_ERROR = 0,
    MOEP_LOG_WARN = 1,
    MOEP_LOG_INFO = 2,
    MOEP_LOG_DEBUG = 3,
    MOEP_LOG_TRACE = 4,
} moep_log_level_t;

typedef void (*moep_log_fn)(void *user, moep_log_level_t level, const char *msg);
/* Route log messages to `fn` (NULL restores stderr). Not thread-safe against concurrent logging. */
MOEP_API void moep_log_set_handler(moep_log_fn fn, void *user);
/* Current level (from MOEP_LOG unless set). */
MOEP_API moep_log_level_t moep_log_get_level(void);
MOEP_API void moep_log_set_level(moep_log_level_t level);

/* bf16 <-> f32, round-to-nearest-even (NaN stays NaN). */
MOEP_API uint16_t moep_f32_to_bf16(float f);
MOEP_API float moep_bf16_to_f32(uint16_t b);

#ifdef __cplusplus
}
#endif
#endif /* MOEP_CORE_H */
