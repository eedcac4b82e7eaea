/*
 * What the two FP8 GEMM kernels (fp8_gemm64.cuh, fp8_gemm128.cuh) share:
 * their arguments and the epilogue's small helpers. Included by fp8_gemm.cu only.
 */
#ifndef MOEP_FP8_GEMM_COMMON_CUH
#define MOEP_FP8_GEMM_COMMON_CUH

#include <cuda_bf16.h>
#include <cuda_fp8.h>
#include <cudaTypedefs.h>

#include "ffn_cuda.h"
#include "sm90_ptx.cuh"

typedef struct moep__fp8_gemm_args {
    const moep__ffn_tile_t *tiles;
    const float *a_scales;  /* [N, nkb] */
    const float *b0_scales; /* W1 or W2 scale stack */
    const float *b1_scales; /* W3 (GATEUP) */
    int64_t num_rows;       /* N */
    int64_t b_scale_stride; /* floats per expert in a scale stack */
    int32_t nkb;            /* ceil(K / 128) */
    int32_t rows_b;         /* B rows per expert */
    int32_t nblk_b;         /* ceil(rows_b / 128) */
    int32_t n_out;          /* output columns */
    int32_t nkb_out;        /* GATEUP: ceil(I / 128), scales per row of h */
    uint8_t *hq;            /* GATEUP out [N, I] */
    float *hs;              /* GATEUP out [N, nkb_out] */
    __nv_bfloat16 *y;       /* DOWN out [N, H] */
} moep__fp8_gemm_args_t;

__device__ __forceinline__ float moep__silu(float g) { return g / (1.0f + expf(-g)); }

__device__ __forceinline__ uint32_t moep__e4m3x2(float a, float b) {
    return (uint32_t)__nv_cvt_float2_to_fp8x2(make_float2(a, b), __NV_SATFINITE, __NV_E4M3);
}

#endif
