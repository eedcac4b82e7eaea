/* Restricting a token's candidates to the best contiguous blocks of experts:
 * ranks for device-limited routing (DeepSeek-V2, block score = max) and
 * groups for DeepSeek-V3 (block score = sum of the top 2). */
#include "routing_internal.h"

/* Sum of the `top_n` largest of x[0..n) (top_n is 1 or 2; fewer if n is). */
static float sum_of_top(const float *x, int32_t n, int32_t top_n) {
    float best = x[0], second = 0;
    int have_second = 0;
    for (int32_t i = 1; i < n; i++) {
        if (x[i] > best) {
            second = best;
            best = x[i];
            have_second = 1;
        } else if (!have_second || x[i] > second) {
            second = x[i];
            have_second = 1;
        }
    }
    return top_n >= 2 && have_second ? best + second : best;
}

void moep__block_mask(const float *score, int32_t n, int32_t n_blocks, int32_t keep, int32_t top_n,
                      float *block_score, int32_t *block_idx, int32_t *heap, uint8_t *allowed) {
    int32_t size = n / n_blocks;
    for (int32_t b = 0; b < n_blocks; b++) block_score[b] = sum_of_top(score + b * size, size, top_n);
    if (keep > n_blocks) keep = n_blocks;
    moep__topk(block_score, NULL, n_blocks, keep, heap, block_idx);
    for (int32_t e = 0; e < n; e++) allowed[e] = 0;
    for (int32_t i = 0; i < keep; i++) {
        uint8_t *block = allowed + block_idx[i] * size;
        for (int32_t e = 0; e < size; e++) block[e] = 1;
    }
}
