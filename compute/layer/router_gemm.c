/* The router GEMM: small (E is tens to hundreds), so a dot-product loop with
 * one f32 row of x per token is enough; OpenMP over tokens. */
#include <omp.h>
#include <stdlib.h>

#include "layer_internal.h"

moep_status_t moep__router_logits(const moep_tensor_t *x, const float *gate, int32_t num_experts,
                                  float *logits) {
    int64_t T = x->shape[0];
    int32_t H = (int32_t)x->shape[1];
    size_t x_row = (size_t)H * moep__dtype_size(x->dtype);
    float *rows = moep__calloc("moep_layer_forward", (size_t)omp_get_max_threads() * H, sizeof(float));
    if (rows == NULL) return MOEP_ERR_NO_MEMORY;
#pragma omp parallel
    {
        float *row = rows + (size_t)omp_get_thread_num() * H;
#pragma omp for schedule(static)
        for (int64_t t = 0; t < T; t++) {
            moep__row_to_f32((const uint8_t *)x->data + (size_t)t * x_row, x->dtype, H, row);
            for (int32_t e = 0; e < num_experts; e++) {
                const float *g = gate + (size_t)e * H;
                float acc = 0.0f;
#pragma omp simd reduction(+ : acc)
                for (int32_t d = 0; d < H; d++) acc += row[d] * g[d];
                logits[(size_t)t * num_experts + e] = acc;
            }
        }
    }
    free(rows);
    return MOEP_OK;
}
