/*
 * One weight stack of the FFN seen as [E, rows, cols] and decoded to f32 one
 * row segment at a time, inside the tile loop: an expert is never
 * dequantized as a whole. Internal (moep__).
 */
#ifndef MOEP_COMPUTE_FFN_WEIGHTS_H
#define MOEP_COMPUTE_FFN_WEIGHTS_H

#include <stdint.h>

#include "ffn_kernel.h"
#include "moep.h"

typedef struct moep__wsrc {
    moep_weight_format_t format;
    moep_weight_stack_t stack;
    int64_t rows, cols; /* per expert */
} moep__wsrc_t;

/* dst[0..n) = f32 value of weight (expert e, row r, cols k0..k0+n). */
void moep__wsrc_decode(const moep__ffn_kernel_t *k, const moep__wsrc_t *s, int64_t e, int64_t r,
                       int64_t k0, int64_t n, float *dst);

/* Fill a packed block of `count` rows (row stride ld floats): rows r0 .. of
 * expert e, columns k0 .. k0+kc, zero-padded to kp columns; rows at or past
 * `valid` are all zero (tile edges). */
void moep__wsrc_pack(const moep__ffn_kernel_t *k, const moep__wsrc_t *s, int64_t e, int64_t r0, int64_t valid, int64_t count,
                     int64_t k0, int64_t kc, int64_t kp, float *dst, int64_t ld);

#endif /* MOEP_COMPUTE_FFN_WEIGHTS_H */
