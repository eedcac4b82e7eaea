/* One GPU expert FFN case: random data, float64 CPU reference, GPU run, comparison. */
#ifndef MOEP_GPU_FFN_CASE_H
#define MOEP_GPU_FFN_CASE_H

#include <stdint.h>

#include "moep.h"
#include "moep_cuda_ffn.h"

/*
 * Tolerance, on the float64 reference computed from the DEQUANTIZED weights
 * and from the activations the kernels see (FP8 path: x quantized to FP8
 * 1x128 on the CPU exactly as the GPU does, and h re-quantized the same way;
 * FP4 path: bf16 x). What remains is f32 accumulation order, the bf16 output
 * rounding (2^-9 relative), the f16 intermediate of the FP4 path (2^-11), and
 * on the FP8 path rare one-code flips of h where the GPU's f32 h and the
 * reference's float64 h round to different E4M3 neighbours.
 * Checked: ||y - ref|| / ||ref|| <= 5e-3 over all expert rows, per row <= 3e-2
 * (FP4 path; seen on an H200: 1.7e-3 / 2.1e-3).
 * FP8 path: <= 1e-2 overall, per row <= 8e-2. Seen on an H200 (2026-11-23):
 * overall 1.7e-3 .. 5.7e-3, worst rows 2e-3 .. 4.4e-2; with CPU-quantized FP8
 * input and ragged tiles 1.7e-3 / 2.2e-3. The worst rows are thought to be
 * h re-quantization flips: the wgmma FP8 accumulator keeps fewer bits than
 * f32 inside a 128-wide K block, so the GPU's h and the reference's h round
 * to different E4M3 codes more often than f32 rounding alone would cause
 * (not yet proven; an indexing bug would give O(1) errors, not a few %).
 */
#define GPU_FFN_TOL_ALL 5e-3
#define GPU_FFN_TOL_ROW 3e-2
#define GPU_FFN_FP8_TOL_ALL 1e-2
#define GPU_FFN_FP8_TOL_ROW 8e-2

typedef struct gpu_ffn_case {
    moep_weight_format_t fmt;
    int masked;    /* layout: masked [E, max_tokens, H] vs contiguous */
    int fp8_input; /* x given as FP8 + scales (FP8 weights only) */
    int32_t E, H, I;
    int64_t counts[8];
    int64_t max_tokens; /* masked */
    int32_t pad;        /* contiguous: rows of gap after each expert */
    int caller_ws;      /* run the _ws variant on a workspace of the size it asks for (after
                         * checking that a misaligned or short one is refused) */
    int packed;         /* FP4: run on weights from moep_expert_weights_pack_cuda (after
                         * checking that a misaligned or short buffer is refused) */
    int wide_scales;    /* W2 rows spread over 2^-16 .. 2^16 (MX scales beyond the row-major
                         * path's range, and blocks the packer flushes) */
    int reuse_ws;       /* with caller_ws: first a call on other x (signs flipped) on the same
                         * workspace, so whatever that call leaves there must not leak into this one */
    int graph;          /* with caller_ws (bf16 x): the call captured in a CUDA graph, replayed on
                         * x with signs flipped, then on x (the state it keeps must advance on the GPU) */
} gpu_ffn_case_t;

/* Runs one case; returns NULL on success, else a static message. */
const char *gpu_ffn_run_case(const gpu_ffn_case_t *c, uint64_t seed);

#endif
