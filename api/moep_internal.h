/*
 * Internal helpers shared by every moep layer (not part of the public API).
 * Names use the moep__ prefix.
 */
#ifndef MOEP_INTERNAL_H
#define MOEP_INTERNAL_H

#include <stdarg.h>
#include <stdbool.h>

#include "moep.h"

/* Record a failure for moep_last_error() on this thread, log it at debug
 * level, and return `s`. fmt is printf-style; by convention it starts with
 * the public function name: "moep_route: top_k 9 > num_experts 8". */
moep_status_t moep__fail(moep_status_t s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Same, as vprintf, copying into `buf` too when buf != NULL (per-object errors). */
moep_status_t moep__vfail(char *buf, size_t buf_len, moep_status_t s, const char *fmt,
                          va_list ap);
/* Clear the thread's last error (on success paths that want a clean slate). */
void moep__clear_error(void);

void moep__log(moep_log_level_t level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define MOEP_LOG_AT(lvl, ...)                                                       \
    do {                                                                            \
        if (moep_log_get_level() >= (lvl)) moep__log((lvl), __VA_ARGS__);          \
    } while (0)

#define MOEP_CHECK_ARG(fn, ptr)                                                     \
    do {                                                                            \
        if ((ptr) == NULL) return moep__fail(MOEP_ERR_INVALID_ARG, "%s: %s is NULL", (fn), #ptr); \
    } while (0)

#define MOEP_TRY(expr)                                                              \
    do {                                                                            \
        moep_status_t moep__st = (expr);                                            \
        if (moep__st != MOEP_OK) return moep__st;                                   \
    } while (0)

/* Wildcard for moep__check_tensor shapes and dtypes. */
#define MOEP_ANY (-1)

/*
 * Check a tensor argument: non-NULL, ndim, dtype (MOEP_ANY = any), each dim
 * equal to shape[i] unless shape[i] == MOEP_ANY, non-negative dims, data
 * non-NULL unless empty, host device. Returns MOEP_ERR_INVALID_ARG or
 * MOEP_ERR_SHAPE with a message "fn: name ...".
 */
moep_status_t moep__check_tensor(const char *fn, const char *name, const moep_tensor_t *t,
                                 int ndim, int dtype, const int64_t *shape);

/*
 * Versioned structs: validate struct_size (0 means "not initialised with the
 * *_init function") and copy the caller's prefix over `defaults`.
 */
moep_status_t moep__load_versioned(const char *fn, void *dst, size_t dst_size, const void *src);

/* Monotonic clock in milliseconds. */
double moep__now_ms(void);
/* Integer from the environment, `def` if unset or unparsable. */
long moep__env_long(const char *name, long def);
/* Default timeout: MOEP_TIMEOUT_MS or 30000, overridden by explicit > 0. */
int32_t moep__timeout_ms(int32_t explicit_ms);

/* Allocation that records MOEP_ERR_NO_MEMORY on failure (returns NULL). */
void *moep__calloc(const char *fn, size_t n, size_t size);
void *moep__aligned_alloc(const char *fn, size_t bytes); /* 64-byte aligned, zeroed */

/* Element conversions on rows: load to f32 / store from f32 (f32 or bf16). */
void moep__row_to_f32(const void *src, moep_dtype_t t, int64_t n, float *dst);
void moep__row_from_f32(const float *src, int64_t n, moep_dtype_t t, void *dst);
size_t moep__dtype_size(moep_dtype_t t); /* bytes per element, 0 for sub-byte */
/* acc[i] += a * x[i] for a row x of f32 or bf16 (vectorised). */
void moep__row_axpy(float *acc, float a, const void *x, moep_dtype_t t, int64_t n);
/* acc[i] = a * x[i]: the first term of a sum, without zeroing acc first. */
void moep__row_scale(float *acc, float a, const void *x, moep_dtype_t t, int64_t n);

#endif /* MOEP_INTERNAL_H */
