/* The model `moep bench` runs: deterministic random weights and tokens, the
 * storage of this rank's experts in the chosen format, and a float64
 * reference of the whole layer. */
#ifndef MOEP_BENCH_MODEL_H
#define MOEP_BENCH_MODEL_H

#include "bench_options.h"

typedef struct bench_stack {
    void *data, *scales;
    float *global_scale;
    size_t data_bytes, scale_bytes; /* all experts */
} bench_stack_t;

struct bench_model {
    bench_options_t opt;
    int32_t rank, world, first_local, num_local;
    float *gate, *bias;                  /* [E, H], [E] */
    float *ref_w1, *ref_w3, *ref_w2;     /* [E, I, H], [E, I, H], [E, H, I] as stored (dequantized) */
    float *orig_w1, *orig_w3, *orig_w2;  /* the same before quantization (NULL for f32 weights) */
    float *ref_s1, *ref_s3, *ref_s2;     /* shared expert, f32 view of its storage */
    bench_stack_t w1, w3, w2;            /* routed experts in their storage format */
    void *s1, *s3, *s2;                  /* shared expert storage (dtype) */
    bench_stack_t sh1, sh3, sh2;         /* --device cuda: the shared expert in FP8 */
    moep_expert_weights_t local, shared;
};
typedef struct bench_model bench_model_t;

moep_status_t bench_model_create(const bench_options_t *o, int32_t rank, int32_t world,
                                 bench_model_t **m_p);
void bench_model_destroy(bench_model_t *m);
/* Tokens of `rank`: x [T, H] in the activation dtype, token ids [T]. */
moep_status_t bench_model_tokens(const bench_model_t *m, void **x_p, int64_t **ids_p);
/* Max relative error of y [T, H] against the float64 reference computed from
 * the routing the layer chose. With --device cuda the reference applies the
 * GPU FFN's documented activation quantization where it happens (FP8 1x128,
 * amax/448, as moep_quantize_act_fp8): x and the intermediate h of every FP8
 * expert (the routed ones with --weights fp8, the shared one always); the
 * FP4 path keeps x (bf16 -> f16, exact) and h (f16) as is. */
moep_status_t bench_model_verify(const bench_model_t *m, const void *x, const moep_tensor_t *topk_idx,
                                 const moep_tensor_t *topk_w, const void *y, double *rel_err);
/* Max relative error of y against the ORIGINAL layer: f32 weights before
 * quantization and activations without wire quantization, float64. This is
 * the error the storage and wire formats cost (bench_model_format_bound). */
moep_status_t bench_model_verify_original(const bench_model_t *m, const void *x,
                                          const moep_tensor_t *topk_idx, const moep_tensor_t *topk_w,
                                          const void *y, double *rel_err);
/* The error bound `moep bench` accepts for this configuration. */
double bench_model_tolerance(const bench_options_t *o);

#endif
