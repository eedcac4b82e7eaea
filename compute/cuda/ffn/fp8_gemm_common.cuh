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

/* silu with the hardware exponential and a fast division: h is rounded to FP8 right
 * after, far coarser than the few ulps these lose, and the IEEE forms made the gate/up
 * epilogue (which the tensor cores wait out) about a fifth of the kernel's instructions.
 * Where 1 + e^-g overflows (g < -87), the quotient is -0, silu's limit. */
__device__ __forceinline__ float moep__silu(float g) { return __fdividef(g, 1.0f + __expf(-g)); }

/* SwiGLU in place on one 64-channel group of a thread's gate/up sums (wgmma
 * m64 fragment: gate in v[0..31], up in v[32..63], channel col0 + 8c + 2q (+1)
 * in v[4c (+1)] for row 0 and v[4c + 2 (+3)] for row 1): the gate values
 * become h = silu(gate) * up, and am0 / am1 are raised to the rows' largest
 * |h| over the channels below I (the padding must not set the scale). */
__device__ __forceinline__ void moep__fp8_swiglu64(float *v, int col0, int q, int I, float &am0, float &am1) {
#pragma unroll
    for (int c = 0; c < 8; ++c) {
#pragma unroll
        for (int j = 0; j < 2; ++j) {
            const bool okc = col0 + 8 * c + 2 * q + j < I;
            const float h0 = moep__silu(v[4 * c + j]) * v[4 * (c + 8) + j];
            const float h1 = moep__silu(v[4 * c + 2 + j]) * v[4 * (c + 8) + 2 + j];
            v[4 * c + j] = h0;
            v[4 * c + 2 + j] = h1;
            if (okc) {
                am0 = fmaxf(am0, fabsf(h0));
                am1 = fmaxf(am1, fabsf(h1));
            }
        }
    }
}

/* The maxima of the four lanes (q = 0..3) that share a row pair. */
__device__ __forceinline__ void moep__quad_max2(float &am0, float &am1) {
#pragma unroll
    for (int o = 1; o < 4; o <<= 1) {
        am0 = fmaxf(am0, __shfl_xor_sync(0xffffffffu, am0, o));
        am1 = fmaxf(am1, __shfl_xor_sync(0xffffffffu, am1, o));
    }
}

/* The 1x128 block scale of h for a block whose largest |h| is amax: E4M3's
 * largest finite value is 448; an all-zero block gets 1. */
__device__ __forceinline__ float moep__e4m3_scale(float amax) { return amax == 0.f ? 1.f : __fdiv_rn(amax, 448.f); }

__device__ __forceinline__ uint32_t moep__e4m3x2(float a, float b) {
    return (uint32_t)__nv_cvt_float2_to_fp8x2(make_float2(a, b), __NV_SATFINITE, __NV_E4M3);
}

/* h / scale as h times the scale's reciprocal (one division per row, not per value):
 * at most an fp32 ulp from the quotient, which moves an FP8 rounding only at a tie. */
__device__ __forceinline__ uint32_t moep__e4m3x2_scaled(float a, float b, float inv) {
    return moep__e4m3x2(a * inv, b * inv);
}

/* A thread's two output rows of one accumulator fragment (wgmma m64 layout:
 * rows row0 / row1, channels col and col + 1 from v[0, 1] / v[2, 3]); rows
 * past the tile (ok0 / ok1 false) are skipped. h: FP8 times the reciprocal
 * (inv0 / inv1) of the row's 1x128 scale; y: bf16. */
__device__ __forceinline__ void moep__fp8_store_h2(uint8_t *hq, int64_t I, int64_t row0, int64_t row1,
                                                   bool ok0, bool ok1, int col, const float *v,
                                                   float inv0, float inv1) {
    if (ok0)
        *(uint16_t *)(hq + row0 * I + col) =
            (uint16_t)moep__e4m3x2_scaled(v[0], v[1], inv0);
    if (ok1)
        *(uint16_t *)(hq + row1 * I + col) =
            (uint16_t)moep__e4m3x2_scaled(v[2], v[3], inv1);
}

__device__ __forceinline__ void moep__fp8_store_y2(__nv_bfloat16 *y, int64_t H, int64_t row0, int64_t row1,
                                                   bool ok0, bool ok1, int col, const float *v) {
    if (ok0) *(__nv_bfloat162 *)(y + row0 * H + col) = __floats2bfloat162_rn(v[0], v[1]);
    if (ok1) *(__nv_bfloat162 *)(y + row1 * H + col) = __floats2bfloat162_rn(v[2], v[3]);
}

/* A stage's weight tile, four 64-row x 128 B boxes at b (8 KB apart) for K
 * block k: gate/up takes W1 and W3 rows brow.. and brow + 64.. in turn (so
 * the two halves of the tile are gate and up of the same rows), down W2 rows
 * brow .. brow + 255. Completes on bar. */
template <bool GATEUP>
__device__ __forceinline__ void moep__fp8_load_b(uint8_t *b, const CUtensorMap *map_b0, const CUtensorMap *map_b1,
                                                 uint64_t *bar, int32_t k, int32_t brow) {
    if (GATEUP) {
        moep__tma_load_2d(b, map_b0, bar, k, brow);
        moep__tma_load_2d(b + 8192, map_b1, bar, k, brow);
        moep__tma_load_2d(b + 16384, map_b0, bar, k, brow + 64);
        moep__tma_load_2d(b + 24576, map_b1, bar, k, brow + 64);
    } else {
        for (int j = 0; j < 4; ++j) moep__tma_load_2d(b + 8192 * j, map_b0, bar, k, brow + 64 * j);
    }
}

#endif
