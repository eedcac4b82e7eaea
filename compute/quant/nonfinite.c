/* Input validation for the quantizers: dtype and finiteness. */
#include <stdio.h>

#include "quant_internal.h"

/* Scan in chunks: the per-chunk OR of "exponent all ones" vectorises; only
 * a chunk that has a hit is searched element by element. */
#define MOEP__SCAN_CHUNK 1024

int64_t moep__first_nonfinite(const void *src, moep_dtype_t t, int64_t n) {
    for (int64_t c0 = 0; c0 < n; c0 += MOEP__SCAN_CHUNK) {
        int64_t m = n - c0 < MOEP__SCAN_CHUNK ? n - c0 : MOEP__SCAN_CHUNK;
        int bad = 0;
        if (t == MOEP_DTYPE_F32) {
            const uint32_t *s = (const uint32_t *)src + c0;
            for (int64_t i = 0; i < m; i++) bad |= (s[i] & 0x7F800000u) == 0x7F800000u;
            if (bad)
                for (int64_t i = 0; i < m; i++)
                    if ((s[i] & 0x7F800000u) == 0x7F800000u) return c0 + i;
        } else {
            const uint16_t *s = (const uint16_t *)src + c0;
            for (int64_t i = 0; i < m; i++) bad |= (s[i] & 0x7F80u) == 0x7F80u;
            if (bad)
                for (int64_t i = 0; i < m; i++)
                    if ((s[i] & 0x7F80u) == 0x7F80u) return c0 + i;
        }
    }
    return -1;
}

moep_status_t moep__check_quant_src(const char *fn, const char *name, const moep_tensor_t *t) {
    if (t->dtype != MOEP_DTYPE_F32 && t->dtype != MOEP_DTYPE_BF16)
        return moep__fail(MOEP_ERR_SHAPE, "%s: %s has dtype %s, expected f32 or bf16", fn, name,
                          moep_dtype_name(t->dtype));
    int64_t bad = moep__first_nonfinite(t->data, t->dtype, moep_tensor_numel(t));
    if (bad < 0) return MOEP_OK;
    /* Name the element by its coordinates, last dimension fastest. */
    int64_t coord[MOEP_MAX_DIMS] = {0};
    int64_t rest = bad;
    for (int d = t->ndim - 1; d >= 0; d--) {
        coord[d] = rest % t->shape[d];
        rest /= t->shape[d];
    }
    char where[MOEP_MAX_DIMS * 24] = "";
    size_t len = 0;
    for (int d = 0; d < t->ndim && len < sizeof where; d++)
        len += (size_t)snprintf(where + len, sizeof where - len, "[%lld]", (long long)coord[d]);
    float tmp;
    float v = *moep__load_f32(t->data, t->dtype, bad, 1, &tmp);
    return moep__fail(MOEP_ERR_NUMERIC, "%s: %s%s (flat index %lld) is %g", fn, name, where,
                      (long long)bad, (double)v);
}
