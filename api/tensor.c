/* Tensor descriptors, dtypes and the small conversions every layer shares. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "moep_internal.h"

const char *moep_dtype_name(moep_dtype_t t) {
    static const char *names[MOEP_DTYPE_COUNT_] = {"f32", "bf16", "f16",  "f64",  "i32",
                                                   "i64", "u8",   "e4m3", "e5m2", "e2m1"};
    if ((int)t < 0 || t >= MOEP_DTYPE_COUNT_) return "?";
    return names[t];
}

int moep_dtype_bits(moep_dtype_t t) {
    static const int bits[MOEP_DTYPE_COUNT_] = {32, 16, 16, 64, 32, 64, 8, 8, 8, 4};
    if ((int)t < 0 || t >= MOEP_DTYPE_COUNT_) return 0;
    return bits[t];
}

size_t moep__dtype_size(moep_dtype_t t) { return (size_t)moep_dtype_bits(t) / 8; }

int64_t moep_tensor_numel(const moep_tensor_t *t) {
    if (t == NULL || t->ndim <= 0 || t->ndim > MOEP_MAX_DIMS) return 0;
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++) {
        if (t->shape[i] < 0) return 0;
        n *= t->shape[i];
    }
    return n;
}

moep_status_t moep__check_tensor(const char *fn, const char *name, const moep_tensor_t *t,
                                 int ndim, int dtype, const int64_t *shape) {
    if (t == NULL) return moep__fail(MOEP_ERR_INVALID_ARG, "%s: %s is NULL", fn, name);
    if (t->ndim != ndim)
        return moep__fail(MOEP_ERR_SHAPE, "%s: %s has %d dims, expected %d", fn, name, t->ndim,
                          ndim);
    if (dtype != MOEP_ANY && (int)t->dtype != dtype)
        return moep__fail(MOEP_ERR_SHAPE, "%s: %s has dtype %s, expected %s", fn, name,
                          moep_dtype_name(t->dtype), moep_dtype_name((moep_dtype_t)dtype));
    for (int i = 0; i < ndim; i++) {
        if (t->shape[i] < 0)
            return moep__fail(MOEP_ERR_SHAPE, "%s: %s dim %d is negative (%lld)", fn, name, i,
                              (long long)t->shape[i]);
        if (shape != NULL && shape[i] != MOEP_ANY && t->shape[i] != shape[i])
            return moep__fail(MOEP_ERR_SHAPE, "%s: %s dim %d is %lld, expected %lld", fn, name, i,
                              (long long)t->shape[i], (long long)shape[i]);
    }
    if (t->device != MOEP_DEVICE_CPU)
        return moep__fail(MOEP_ERR_UNSUPPORTED, "%s: %s is not in host memory", fn, name);
    if (t->data == NULL && moep_tensor_numel(t) > 0)
        return moep__fail(MOEP_ERR_INVALID_ARG, "%s: %s data is NULL", fn, name);
    return MOEP_OK;
}

moep_status_t moep__load_versioned(const char *fn, void *dst, size_t dst_size, const void *src) {
    if (src == NULL) return moep__fail(MOEP_ERR_INVALID_ARG, "%s: config is NULL", fn);
    uint32_t size;
    memcpy(&size, src, sizeof size); /* struct_size is always the first field */
    if (size < sizeof(uint32_t))
        return moep__fail(MOEP_ERR_INVALID_ARG,
                          "%s: struct_size is %u: initialise the struct with its *_init function",
                          fn, size);
    size_t n = size < dst_size ? size : dst_size;
    memcpy(dst, src, n);
    memcpy(dst, &(uint32_t){(uint32_t)dst_size}, sizeof(uint32_t));
    return MOEP_OK;
}

double moep__now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

long moep__env_long(const char *name, long def) {
    const char *v = getenv(name);
    if (v == NULL || *v == '\0') return def;
    char *end;
    long x = strtol(v, &end, 10);
    return *end == '\0' ? x : def;
}

int32_t moep__timeout_ms(int32_t explicit_ms) {
    if (explicit_ms > 0) return explicit_ms;
    long v = moep__env_long("MOEP_TIMEOUT_MS", 30000);
    if (v <= 0 || v > 24L * 3600 * 1000) v = 30000;
    return (int32_t)v;
}

void *moep__calloc(const char *fn, size_t n, size_t size) {
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (p == NULL) moep__fail(MOEP_ERR_NO_MEMORY, "%s: cannot allocate %zu x %zu bytes", fn, n, size);
    return p;
}

void *moep__aligned_alloc(const char *fn, size_t bytes) {
    size_t rounded = (bytes + 63) / 64 * 64;
    if (rounded == 0) rounded = 64;
    void *p = aligned_alloc(64, rounded);
    if (p == NULL) {
        moep__fail(MOEP_ERR_NO_MEMORY, "%s: cannot allocate %zu bytes", fn, bytes);
        return NULL;
    }
    memset(p, 0, rounded);
    return p;
}

