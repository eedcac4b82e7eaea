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

/* dst[0..n) = f32 value of weight (expert e, row r, cols k0..k0+n);
 * n <= 1024 and, for block-scaled formats, k0 on a scale block. */
void moep__wsrc_decode(const moep__ffn_kernel_t *k, const moep__wsrc_t *s, int64_t e, int64_t r,
                       int64_t k0, int64_t n, float *dst);

/*
 * f32 views of `count` weight rows r0 .. of expert e, columns k0 .. k0+kp
 * (kp = kc rounded up to 8), for the kernel: rows[i] points straight into
 * the stored matrix when it is f32 with rows a multiple of 8 long, else into
 * `buf` (row i at buf + i*ld) where the block is decoded and zero-padded.
 * Rows at or past `valid` (tile edges) point at `zeros` (>= kp zero floats).
 */
void moep__wsrc_rows(const moep__ffn_kernel_t *k, const moep__wsrc_t *s, int64_t e, int64_t r0,
                     int64_t valid, int64_t count, int64_t k0, int64_t kc, int64_t kp, float *buf,
                     int64_t ld, const float *zeros, const float **rows);

/* Where rows r0 .. r0+count-1, columns k0 .. k0+kc, are stored: row i's
 * first byte into row[i] (count <= 4), the piece length into *bytes. */
void moep__wsrc_locate(const moep__wsrc_t *s, int64_t e, int64_t r0, int64_t count, int64_t k0,
                       int64_t kc, const char **row, int64_t *bytes);

#endif /* MOEP_COMPUTE_FFN_WEIGHTS_H */
