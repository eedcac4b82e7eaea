/*
 * FP4-weight expert FFN (MXFP4 / NVFP4), made for decode: weight-byte bound.
 *
 * CTA: 8 warps, 128 weight rows (GATEUP: 128 rows of W1 and the same of W3),
 * one tile of <= 64 tokens. Each warp owns 16 rows; per 128-wide K segment a
 * lane loads 16 packed bytes (32 codes, one MX block / two NV blocks) of rows
 * g and g+8, decodes them to f16 with the block scale folded in (exact), and
 * feeds mma.m16n8k16 (weights = A, tokens = B, f32 accumulate). Loads run
 * MOEP__F4_PF segments ahead in registers. K order inside a segment is
 * permuted identically for weights and activations (a dot product does not
 * care); the activations are staged in shared memory in that order, as f16,
 * 512 channels at a time.
 * GATEUP writes h = silu(g) * u in f16 [N, I]; DOWN writes y bf16 [N, H].
 */
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_fp8.h>

#include "ffn_cuda.h"
#include "fp4_decode.cuh"

#define MOEP__F4_WARPS 8
#define MOEP__F4_ROWS (16 * MOEP__F4_WARPS)
#define MOEP__F4_KC 512 /* channels staged per chunk */
#define MOEP__F4_SEGS (MOEP__F4_KC / 128)
#define MOEP__F4_PF 2
#define MOEP__F4_SMEM (MOEP__F4_KC * 64 * 2)

enum { MOEP__X_BF16 = 0, MOEP__X_FP8 = 1, MOEP__X_F16 = 2 };

typedef struct moep__fp4_args {
    const moep__ffn_tile_t *tiles;
    const void *x;    /* [N, K] */
    const float *xs;  /* FP8 x: [N, ceil(K/128)] */
    const uint8_t *wd[2], *ws[2];
    const float *wg[2]; /* NVFP4 global scales [E] */
    void *out;          /* [N, rows] */
    int32_t K, rows;
} moep__fp4_args_t;

__device__ __forceinline__ float moep__silu4(float g) { return g / (1.0f + expf(-g)); }

template <int XIN>
__device__ __forceinline__ void moep__load8(const moep__fp4_args_t &a, int64_t row, int32_t e,
                                            float v[8]) {
    if (XIN == MOEP__X_FP8) {
        const uint2 b = *(const uint2 *)((const uint8_t *)a.x + row * a.K + e);
        const float s = a.xs[row * ((a.K + 127) / 128) + e / 128];
        const uint32_t w[2] = {b.x, b.y};
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            __half2_raw h = __nv_cvt_fp8x2_to_halfraw2(
                (__nv_fp8x2_storage_t)((w[i >> 1] >> (16 * (i & 1))) & 0xFFFF), __NV_E4M3);
            v[2 * i] = __half2float(__half(__half_raw{h.x})) * s;
            v[2 * i + 1] = __half2float(__half(__half_raw{h.y})) * s;
        }
    } else {
        const uint4 b = *(const uint4 *)((const uint16_t *)a.x + row * a.K + e);
        const uint32_t w[4] = {b.x, b.y, b.z, b.w};
#pragma unroll
        for (int i = 0; i < 8; ++i) {
            const uint16_t u = (uint16_t)(w[i >> 1] >> (16 * (i & 1)));
            v[i] = XIN == MOEP__X_BF16 ? __uint_as_float((uint32_t)u << 16)
                                       : __half2float(__ushort_as_half(u));
        }
    }
}

/* Stage channels k0 .. k0+KC of the tile's tokens in the permuted f16 order. */
template <int XIN>
__device__ void moep__stage_x(const moep__fp4_args_t &a, int64_t row0, int T, int32_t k0,
                              uint32_t *xsm) {
    for (int it = threadIdx.x; it < T * (MOEP__F4_KC / 8); it += blockDim.x) {
        const int n = it / (MOEP__F4_KC / 8), G = it % (MOEP__F4_KC / 8);
        const int32_t e = k0 + 8 * G;
        float v[8];
        if (e < a.K) {
            moep__load8<XIN>(a, row0 + n, e, v);
        } else {
#pragma unroll
            for (int i = 0; i < 8; ++i) v[i] = 0.f;
        }
        const int segl = G >> 4, q = (G >> 2) & 3, j = G & 3;
#pragma unroll
        for (int c = 0; c < 4; ++c) {
            const int s = 2 * j + (c >> 1), h = c & 1;
            __half2 p = __floats2half2_rn(v[c], v[c + 4]);
            xsm[((segl * 8 + s) * 64 + n) * 8 + q * 2 + h] = *(uint32_t *)&p;
        }
    }
}

template <bool GATEUP, bool NV, int XIN>
__global__ void __launch_bounds__(32 * MOEP__F4_WARPS, GATEUP ? 1 : 2) moep__fp4_kernel(const moep__fp4_args_t a) {
    constexpr int NM = GATEUP ? 2 : 1;
    extern __shared__ uint32_t xsm[];
    const moep__ffn_tile_t tile = a.tiles[blockIdx.y];
    if (tile.expert < 0) return;
    const int e = tile.expert;
    const int64_t rem = tile.row_end - tile.row_start;
    const int T = rem < 64 ? (int)rem : 64;
    const int ntn = (T + 7) >> 3;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, q = lane & 3;
    const int rbase = blockIdx.x * MOEP__F4_ROWS + warp * 16;
    const int K = a.K, rows = a.rows;
    const int nseg = (K + 127) / 128;
    const int64_t kb = K / 2, ksc = NV ? K / 16 : K / 32;

    const uint8_t *wp[NM][2];
    const uint8_t *sp[NM][2];
#pragma unroll
    for (int m = 0; m < NM; ++m)
#pragma unroll
        for (int h = 0; h < 2; ++h) {
            int r = rbase + g + 8 * h;
            r = r < rows ? r : rows - 1;
            const int64_t gr = (int64_t)e * rows + r;
            wp[m][h] = a.wd[m] + gr * kb + q * 16;
            sp[m][h] = a.ws[m] + gr * ksc + (NV ? 2 * q : q);
        }

    uint4 wr[MOEP__F4_PF][NM][2];
    uint32_t sr[MOEP__F4_PF][NM][2];
    auto load = [&](int slot_seg, uint4(&w)[NM][2], uint32_t(&s)[NM][2]) {
        const bool ok = slot_seg < nseg && (slot_seg * 4 + q) * 32 < K;
#pragma unroll
        for (int m = 0; m < NM; ++m)
#pragma unroll
            for (int h = 0; h < 2; ++h) {
                if (ok) {
                    w[m][h] = __ldg((const uint4 *)(wp[m][h] + slot_seg * 64));
                    s[m][h] = NV ? (uint32_t)__ldg((const uint16_t *)(sp[m][h] + slot_seg * 8))
                                 : (uint32_t)__ldg(sp[m][h] + slot_seg * 4);
                } else {
                    w[m][h] = make_uint4(0, 0, 0, 0);
                    s[m][h] = NV ? 0u : 127u;
                }
            }
    };
#pragma unroll
    for (int p = 0; p < MOEP__F4_PF; ++p) load(p, wr[p], sr[p]);

    float acc[NM][8][4];
#pragma unroll
    for (int m = 0; m < NM; ++m)
#pragma unroll
        for (int nt = 0; nt < 8; ++nt)
#pragma unroll
            for (int i = 0; i < 4; ++i) acc[m][nt][i] = 0.f;

    for (int seg0 = 0; seg0 < nseg; seg0 += MOEP__F4_PF) {
#pragma unroll
        for (int u = 0; u < MOEP__F4_PF; ++u) {
            const int seg = seg0 + u;
            if (seg < nseg) {
                if (seg % MOEP__F4_SEGS == 0) {
                    __syncthreads();
                    moep__stage_x<XIN>(a, tile.row_start, T, seg * 128, xsm);
                    __syncthreads();
                }
                /* word j of each lane's 16 bytes feeds mma steps 2j and 2j+1 */
                uint32_t tl[NM][2], th[NM][2], fx[NM][2];
#pragma unroll
                for (int m = 0; m < NM; ++m)
#pragma unroll
                    for (int h = 0; h < 2; ++h) {
                        if (NV) {
                            __half2_raw s2 = __nv_cvt_fp8x2_to_halfraw2(
                                (__nv_fp8x2_storage_t)sr[u][m][h], __NV_E4M3);
                            tl[m][h] = (uint32_t)s2.x | ((uint32_t)s2.x << 16);
                            th[m][h] = (uint32_t)s2.y | ((uint32_t)s2.y << 16);
                            fx[m][h] = 0;
                        } else {
                            fx[m][h] = moep__mx_tables(sr[u][m][h], &tl[m][h], &th[m][h]);
                        }
                    }
                uint4 cur[NM][2];
#pragma unroll
                for (int m = 0; m < NM; ++m) cur[m][0] = wr[u][m][0], cur[m][1] = wr[u][m][1];
                load(seg + MOEP__F4_PF, wr[u], sr[u]);
                const uint2 *xb = (const uint2 *)(xsm + (seg % MOEP__F4_SEGS) * (8 * 64 * 8));
#pragma unroll
                for (int j = 0; j < 4; ++j) {
                    uint32_t A[NM][2][4];
#pragma unroll
                    for (int m = 0; m < NM; ++m)
#pragma unroll
                        for (int h = 0; h < 2; ++h) {
                            const uint4 v = cur[m][h];
                            const uint32_t wj = j == 0 ? v.x : (j == 1 ? v.y : (j == 2 ? v.z : v.w));
                            if (NV) {
                                moep__e2m1x8_to_f16(wj, MOEP__E2M1_F16HI_LO, MOEP__E2M1_F16HI_HI,
                                                    A[m][h]);
#pragma unroll
                                for (int c = 0; c < 4; ++c)
                                    A[m][h][c] = moep__hmul2(A[m][h][c], j < 2 ? tl[m][h] : th[m][h]);
                            } else {
                                moep__e2m1x8_to_f16(wj, tl[m][h], th[m][h], A[m][h]);
                                if (fx[m][h]) {
#pragma unroll
                                    for (int c = 0; c < 4; ++c) A[m][h][c] = moep__hmul2(A[m][h][c], fx[m][h]);
                                }
                            }
                        }
#pragma unroll
                    for (int ss = 0; ss < 2; ++ss) {
                        const int s = 2 * j + ss;
#pragma unroll
                        for (int nt = 0; nt < 8; ++nt) {
                            if (nt < ntn) {
                                const uint2 b = xb[(s * 64 + nt * 8 + g) * 4 + q];
#pragma unroll
                                for (int m = 0; m < NM; ++m)
                                    moep__mma_f16(acc[m][nt], A[m][0][2 * ss], A[m][1][2 * ss],
                                                  A[m][0][2 * ss + 1], A[m][1][2 * ss + 1], b.x, b.y);
                            }
                        }
                    }
                }
            }
        }
    }

    float gs[NM];
#pragma unroll
    for (int m = 0; m < NM; ++m) gs[m] = NV ? a.wg[m][e] : 1.f;
#pragma unroll
    for (int nt = 0; nt < 8; ++nt) {
        if (nt >= ntn) continue;
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            const int t = nt * 8 + 2 * q + (i & 1);
            const int r = rbase + g + 8 * (i >> 1);
            if (t >= T || r >= rows) continue;
            const int64_t o = (tile.row_start + t) * rows + r;
            if (GATEUP) {
                const float gt = acc[0][nt][i] * gs[0];
                const float up = acc[NM - 1][nt][i] * gs[NM - 1];
                ((__half *)a.out)[o] = __float2half_rn(moep__silu4(gt) * up);
            } else {
                ((__nv_bfloat16 *)a.out)[o] = __float2bfloat16_rn(acc[0][nt][i] * gs[0]);
            }
        }
    }
}

template <bool GATEUP, bool NV, int XIN>
static cudaError_t moep__fp4_launch(const moep__fp4_args_t *a, int32_t max_tiles, cudaStream_t s) {
    static bool attr = false;
    if (!attr) {
        cudaError_t err = cudaFuncSetAttribute(moep__fp4_kernel<GATEUP, NV, XIN>,
                                               cudaFuncAttributeMaxDynamicSharedMemorySize,
                                               MOEP__F4_SMEM);
        if (err != cudaSuccess) return err;
        attr = true;
    }
    dim3 grid((unsigned)((a->rows + MOEP__F4_ROWS - 1) / MOEP__F4_ROWS), (unsigned)max_tiles);
    moep__fp4_kernel<GATEUP, NV, XIN><<<grid, 32 * MOEP__F4_WARPS, MOEP__F4_SMEM, s>>>(*a);
    return cudaGetLastError();
}

template <bool NV>
static cudaError_t moep__fp4_ffn_fmt(const moep_expert_weights_t *w, const void *x, const float *xs,
                                     const moep__ffn_tile_t *tiles, int32_t max_tiles, void *h,
                                     void *y, cudaStream_t s) {
    moep__fp4_args_t a;
    a.tiles = tiles;
    a.x = x;
    a.xs = xs;
    a.wd[0] = (const uint8_t *)w->w1.data;
    a.wd[1] = (const uint8_t *)w->w3.data;
    a.ws[0] = (const uint8_t *)w->w1.scales;
    a.ws[1] = (const uint8_t *)w->w3.scales;
    a.wg[0] = w->w1.global_scale;
    a.wg[1] = w->w3.global_scale;
    a.out = h;
    a.K = w->hidden;
    a.rows = w->intermediate;
    cudaError_t err = xs ? moep__fp4_launch<true, NV, MOEP__X_FP8>(&a, max_tiles, s)
                         : moep__fp4_launch<true, NV, MOEP__X_BF16>(&a, max_tiles, s);
    if (err != cudaSuccess) return err;
    a.x = h;
    a.xs = NULL;
    a.wd[0] = a.wd[1] = (const uint8_t *)w->w2.data;
    a.ws[0] = a.ws[1] = (const uint8_t *)w->w2.scales;
    a.wg[0] = a.wg[1] = w->w2.global_scale;
    a.out = y;
    a.K = w->intermediate;
    a.rows = w->hidden;
    return moep__fp4_launch<false, NV, MOEP__X_F16>(&a, max_tiles, s);
}

extern "C" cudaError_t moep__fp4_ffn(const moep_expert_weights_t *w, const void *x, const float *xs,
                                     const moep__ffn_tile_t *tiles, int32_t max_tiles, void *h,
                                     void *y, cudaStream_t s) {
    return w->format == MOEP_WEIGHTS_NVFP4
               ? moep__fp4_ffn_fmt<true>(w, x, xs, tiles, max_tiles, h, y, s)
               : moep__fp4_ffn_fmt<false>(w, x, xs, tiles, max_tiles, h, y, s);
}
