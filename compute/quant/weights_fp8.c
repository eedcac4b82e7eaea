/* FP8 E4M3 weights with one f32 scale per 128x128 block (DeepSeek-V3). */
#include "quant_internal.h"

void moep__quant_fp8_weights(const void *src, moep_dtype_t t, int64_t rows, int64_t cols,
                             uint8_t *q, float *scales) {
    const int64_t nbr = (rows + MOEP__FP8_BLOCK - 1) / MOEP__FP8_BLOCK;
    const int64_t nbc = (cols + MOEP__FP8_BLOCK - 1) / MOEP__FP8_BLOCK;
#pragma omp parallel for schedule(static) if (rows * cols >= MOEP__QUANT_PAR_MIN)
    for (int64_t b = 0; b < nbr * nbc; b++) {
        const int64_t r0 = b / nbc * MOEP__FP8_BLOCK, c0 = b % nbc * MOEP__FP8_BLOCK;
        const int64_t r1 = rows - r0 < MOEP__FP8_BLOCK ? rows : r0 + MOEP__FP8_BLOCK;
        const int64_t nc = cols - c0 < MOEP__FP8_BLOCK ? cols - c0 : MOEP__FP8_BLOCK;
        float tmp[MOEP__FP8_BLOCK];
        float amax = 0.0f;
        for (int64_t r = r0; r < r1; r++)
            amax = fmaxf(amax, moep__amax(moep__load_f32(src, t, r * cols + c0, nc, tmp), nc));
        const float scale = moep__fp8_block_scale(amax);
        scales[b] = scale;
        /* Second pass re-reads the block (64 KiB at most, still in cache). */
        for (int64_t r = r0; r < r1; r++)
            moep__encode_e4m3_scaled(moep__load_f32(src, t, r * cols + c0, nc, tmp), nc, scale,
                                     q + r * cols + c0);
    }
}
