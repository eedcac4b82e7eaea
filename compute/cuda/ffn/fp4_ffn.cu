/*
 * FP4-weight expert FFN (MXFP4 / NVFP4), made for decode: weight-byte bound.
 *
 * Three kernels (plus the tile map):
 *  1. gate/up: a GEMV over the 2I "virtual" rows (W1 rows, then W3 rows),
 *     optionally split over K (MOEP__F4_SPLITS; 1 was fastest on an H200).
 *     Grid (row blocks of 128, K splits, tiles); CTA = 8 warps, each
 *     warp owns 16 rows of one matrix and the CTA's K slice. Per 128-wide K
 *     segment a lane loads 16 packed bytes (32 codes, one MX block / two NV
 *     blocks) of rows g and g+8 (ld.global.nc, L1::no_allocate), decodes them
 *     to f16 by bit placement times the block scale (exact, fp4_decode.cuh) and feeds
 *     mma.m16n8k16 (weights = A, tokens = B, f32 accumulate). Loads run
 *     MOEP__F4_PF segments ahead in registers; the first ones are issued
 *     before x is staged. The K order inside a segment is permuted
 *     identically for weights and activations; x of the slice is staged
 *     once in shared memory (f16, in that order; only T > 16 needs more than
 *     one chunk). Partial sums go to an f32 workspace P [S][N][2I] (plain
 *     stores; deterministic).
 *  2. finish: h = f16(silu(sum_s g_s * gs1) * (sum_s u_s * gs3)) [N, I].
 *  3. down: the same GEMV kernel on W2 with x = h, one K split, bf16 y;
 *     launched with programmatic dependent launch so its first weight loads
 *     overlap the finish kernel (griddepcontrol.wait before reading h).
 * Accumulator registers are sized by the tile's token count (1, 2, 4 or 8
 * n-tiles of 8 tokens), chosen per CTA at run time.
 */
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_fp8.h>

#include <type_traits>

#include "ffn_cuda.h"
#include "fp4_decode.cuh"

#define MOEP__F4_WARPS 8
#define MOEP__F4_THREADS (32 * MOEP__F4_WARPS)
#define MOEP__F4_ROWS (16 * MOEP__F4_WARPS)
#ifndef MOEP__F4_PF
#define MOEP__F4_PF 3 /* segments of weights in flight per warp */
#endif
#ifndef MOEP__F4_XS_BYTES
#define MOEP__F4_XS_BYTES 65536 /* shared memory for staged x */
#endif
#ifndef MOEP__F4_SPLITS
#define MOEP__F4_SPLITS 1 /* K splits of the gate/up GEMV (H200: 1 < 2 < 3 < 4 < 8 in time) */
#endif
#ifndef MOEP__F4_MINB
#define MOEP__F4_MINB 2 /* CTAs per SM the register budget is made for */
#endif
#ifndef MOEP__F4_L2HINT
#define MOEP__F4_L2HINT 1 /* ld ... L2::256B prefetch hint on weight loads */
#endif
#ifndef MOEP__F4_PDL
#define MOEP__F4_PDL 1
#endif
#define MOEP__F4_P_MAX_BYTES ((size_t)512 << 20) /* above: no K split */

enum { MOEP__X_BF16 = 0, MOEP__X_FP8 = 1, MOEP__X_F16 = 2 };

typedef struct moep__fp4_args {
    const moep__ffn_tile_t *tiles;
    const void *x;    /* [N, K] */
    const float *xs;  /* FP8 x: [N, ceil(K/128)] */
    const uint8_t *wd[2], *ws[2];
    const float *wg[2]; /* NVFP4 global scales [E] */
    void *out;          /* gate/up: f32 P [S][N][2 rows]; down: bf16 [N, rows] */
    int64_t n;          /* N */
    int32_t K, rows;    /* rows per matrix */
    int32_t ks;         /* K channels per split, multiple of 128 */
} moep__fp4_args_t;

__device__ __forceinline__ float moep__silu4(float g) { return g / (1.0f + expf(-g)); }

__device__ __forceinline__ uint4 moep__ldw(const uint8_t *p) {
    uint4 r;
#if MOEP__F4_L2HINT
    asm("ld.global.nc.L1::no_allocate.L2::256B.v4.u32 {%0,%1,%2,%3}, [%4];"
        : "=r"(r.x), "=r"(r.y), "=r"(r.z), "=r"(r.w)
        : "l"(p));
#else
    asm("ld.global.nc.L1::no_allocate.v4.u32 {%0,%1,%2,%3}, [%4];"
        : "=r"(r.x), "=r"(r.y), "=r"(r.z), "=r"(r.w)
        : "l"(p));
#endif
    return r;
}

/* Raw 8 channels of x (FP8: 8 bytes + the block scale). */
template <int XIN>
struct moep__xraw {
    uint4 b;
    float s;
};

template <int XIN>
__device__ __forceinline__ void moep__xload(const moep__fp4_args_t &a, int64_t row, int32_t e,
                                            moep__xraw<XIN> &r) {
    if (XIN == MOEP__X_FP8) {
        const uint2 b = __ldg((const uint2 *)((const uint8_t *)a.x + row * a.K + e));
        r.b = make_uint4(b.x, b.y, 0, 0);
        r.s = __ldg(a.xs + row * ((a.K + 127) >> 7) + (e >> 7));
    } else {
        r.b = __ldg((const uint4 *)((const uint16_t *)a.x + row * a.K + e));
        r.s = 1.f;
    }
}

__device__ __forceinline__ uint32_t moep__pack_h2(float lo, float hi) {
    __half2 p = __floats2half2_rn(lo, hi);
    return *(uint32_t *)&p;
}

/* 8 channels -> the two B-fragment words of steps 2j, 2j+1: (v0,v4 | v1,v5), (v2,v6 | v3,v7). */
template <int XIN>
__device__ __forceinline__ uint4 moep__xconv(const moep__xraw<XIN> &r) {
    float v[8];
    if (XIN == MOEP__X_FP8) {
        const uint32_t w[2] = {r.b.x, r.b.y};
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            __half2_raw h = __nv_cvt_fp8x2_to_halfraw2(
                (__nv_fp8x2_storage_t)((w[i >> 1] >> (16 * (i & 1))) & 0xFFFF), __NV_E4M3);
            v[2 * i] = __half2float(__half(__half_raw{h.x})) * r.s;
            v[2 * i + 1] = __half2float(__half(__half_raw{h.y})) * r.s;
        }
    } else if (XIN == MOEP__X_F16) {
        /* already f16: only a permutation */
        const uint4 b = r.b;
        return make_uint4(__byte_perm(b.x, b.z, 0x5410), __byte_perm(b.x, b.z, 0x7632),
                          __byte_perm(b.y, b.w, 0x5410), __byte_perm(b.y, b.w, 0x7632));
    } else {
        const uint32_t w[4] = {r.b.x, r.b.y, r.b.z, r.b.w};
#pragma unroll
        for (int i = 0; i < 8; ++i) v[i] = __uint_as_float(i & 1 ? w[i >> 1] & 0xFFFF0000u : w[i >> 1] << 16);
    }
    return make_uint4(moep__pack_h2(v[0], v[4]), moep__pack_h2(v[1], v[5]), moep__pack_h2(v[2], v[6]),
                      moep__pack_h2(v[3], v[7]));
}

/*
 * Stage channels k .. k + nch (rounded up to 128, zeros past k_end) of the
 * tile's T tokens, f16, permuted: uint2 xsm[((seg * 8 + step) * Tp + n) * 4 + q]
 * holds the B fragment of lane (token n, q) for mma step `step` of segment seg.
 */
template <int XIN>
__device__ void moep__stage_x(const moep__fp4_args_t &a, int64_t row0, int T, int Tp, int32_t k,
                              int32_t nch, int32_t k_end, uint2 *xsm) {
    const int ng = ((nch + 127) >> 7) * 16; /* groups of 8 channels */
    for (int G = threadIdx.x; G < ng; G += MOEP__F4_THREADS) {
        const int32_t e = k + 8 * G;
        const int segl = G >> 4, q = (G >> 2) & 3, j = G & 3;
        uint2 *dst = xsm + (segl * 8 + 2 * j) * Tp * 4 + q;
        for (int n0 = 0; n0 < T; n0 += 4) {
            moep__xraw<XIN> r[4];
#pragma unroll
            for (int i = 0; i < 4; ++i) {
                if (n0 + i < T && e < k_end) {
                    moep__xload<XIN>(a, row0 + n0 + i, e, r[i]);
                } else {
                    r[i].b = make_uint4(0, 0, 0, 0);
                    r[i].s = 0.f;
                }
            }
#pragma unroll
            for (int i = 0; i < 4; ++i) {
                if (n0 + i < T) {
                    const uint4 c = moep__xconv<XIN>(r[i]);
                    dst[(n0 + i) * 4] = make_uint2(c.x, c.y);
                    dst[(Tp + n0 + i) * 4] = make_uint2(c.z, c.w);
                }
            }
        }
    }
}

template <bool GATEUP, bool NV, int XIN, int NT>
__device__ __forceinline__ void moep__fp4_body(const moep__fp4_args_t &a,
                                               const moep__ffn_tile_t &tile, int T, uint2 *xsm) {
    constexpr int PF = MOEP__F4_PF;
    const int e = tile.expert;
    const int ntn = (T + 7) >> 3, Tp = ntn * 8;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, q = lane & 3;
    const int K = a.K, rows = a.rows;
    const int vrows = GATEUP ? 2 * rows : rows;
    const int r0 = blockIdx.x * MOEP__F4_ROWS + warp * 16;
    const bool wvalid = r0 < vrows;
    const int r0c = wvalid ? r0 : vrows - 16;
    const int m = GATEUP && r0c >= rows ? 1 : 0;
    const int rr = r0c - m * rows;
    const int32_t k0 = blockIdx.y * a.ks;
    const int32_t k1 = min(K, k0 + a.ks);
    const int nseg = (k1 - k0 + 127) >> 7;
    const int64_t kb = K / 2, ksc = NV ? K / 16 : K / 32;

    const int64_t grow = (int64_t)e * rows + rr + g;
    const uint8_t *wp0 = (m ? a.wd[1] : a.wd[0]) + grow * kb + (k0 >> 1) + q * 16;
    const uint8_t *wp1 = wp0 + 8 * kb;
    const uint8_t *sp0 = (m ? a.ws[1] : a.ws[0]) + grow * ksc + (NV ? (k0 >> 4) + 2 * q : (k0 >> 5) + q);
    const uint8_t *sp1 = sp0 + 8 * ksc;
    const int32_t qlim = k1 - k0 - 32 * q; /* lane's chunk of segment s valid iff 128 s < qlim */

    uint4 wr[PF][2];
    uint32_t sr[PF][2];
    auto load = [&](int seg, uint4(&w)[2], uint32_t(&s)[2]) {
        if (seg * 128 < qlim) {
            w[0] = moep__ldw(wp0 + seg * 64);
            w[1] = moep__ldw(wp1 + seg * 64);
            if (NV) {
                s[0] = __ldg((const uint16_t *)(sp0 + seg * 8));
                s[1] = __ldg((const uint16_t *)(sp1 + seg * 8));
            } else {
                s[0] = __ldg(sp0 + seg * 4);
                s[1] = __ldg(sp1 + seg * 4);
            }
        } else {
            w[0] = w[1] = make_uint4(0, 0, 0, 0);
            s[0] = s[1] = NV ? 0u : 127u;
        }
    };
#pragma unroll
    for (int p = 0; p < PF; ++p) load(p, wr[p], sr[p]);

    if (!GATEUP && MOEP__F4_PDL) asm volatile("griddepcontrol.wait;" ::: "memory");

    float acc[NT][4];
#pragma unroll
    for (int nt = 0; nt < NT; ++nt)
#pragma unroll
        for (int i = 0; i < 4; ++i) acc[nt][i] = 0.f;

    /* channels per staged chunk */
    int kc = (MOEP__F4_XS_BYTES / (Tp * 2)) & ~127;
    const int segc = kc >> 7;
    int next_stage = 0, cbase = 0;

    for (int seg0 = 0; seg0 < nseg; seg0 += PF) {
#pragma unroll
        for (int u = 0; u < PF; ++u) {
            const int seg = seg0 + u;
            if (seg < nseg) {
                if (seg == next_stage) {
                    __syncthreads();
                    const int32_t ks = k0 + seg * 128;
                    moep__stage_x<XIN>(a, tile.row_start, T, Tp, ks, min(kc, k1 - ks), k1, xsm);
                    __syncthreads();
                    cbase = seg;
                    next_stage += segc;
                }
                /* f16x2 block-scale factors for the codes decoded as value * 2^-14:
                 * NV: words 0-1 / 2-3 of a row use its two E4M3 scales (tl / th);
                 * MX: one factor (tl) and, for x > 1, a second one (fx, else 1.0),
                 * applied only when some lane of the warp needs it (a uniform
                 * branch: predicated HMUL2 would cost issue slots every time). */
                uint32_t tl[2], th[2], fx[2];
#pragma unroll
                for (int h = 0; h < 2; ++h) {
                    if (NV) {
                        __half2_raw s2 =
                            __nv_cvt_fp8x2_to_halfraw2((__nv_fp8x2_storage_t)sr[u][h], __NV_E4M3);
                        tl[h] = (uint32_t)s2.x | ((uint32_t)s2.x << 16);
                        th[h] = (uint32_t)s2.y | ((uint32_t)s2.y << 16);
                        fx[h] = 0x3C003C00u; /* 1.0, unused */
                    } else {
                        fx[h] = moep__mx_factor(sr[u][h], &tl[h]);
                        th[h] = tl[h];
                    }
                }
                const uint4 cur[2] = {wr[u][0], wr[u][1]};
                load(seg + PF, wr[u], sr[u]);
                const uint2 *xb = xsm + (seg - cbase) * 8 * Tp * 4 + g * 4 + q;
                auto segment = [&](auto two) {
#pragma unroll
                    for (int j = 0; j < 4; ++j) {
                        uint32_t A[2][4];
#pragma unroll
                        for (int h = 0; h < 2; ++h) {
                            const uint4 v = cur[h];
                            const uint32_t wj = j == 0 ? v.x : (j == 1 ? v.y : (j == 2 ? v.z : v.w));
                            moep__e2m1x8_to_f16s(wj, A[h]);
#pragma unroll
                            for (int c = 0; c < 4; ++c)
                                A[h][c] = moep__hmul2(A[h][c], j < 2 ? tl[h] : th[h]);
                            if (decltype(two)::value) {
#pragma unroll
                                for (int c = 0; c < 4; ++c) A[h][c] = moep__hmul2(A[h][c], fx[h]);
                            }
                        }
#pragma unroll
                        for (int ss = 0; ss < 2; ++ss) {
                            const int s = 2 * j + ss;
#pragma unroll
                            for (int nt = 0; nt < NT; ++nt) {
                                if (NT <= 2 || nt < ntn) {
                                    const uint2 b = xb[(s * Tp + nt * 8) * 4];
                                    moep__mma_f16(acc[nt], A[0][2 * ss], A[1][2 * ss],
                                                  A[0][2 * ss + 1], A[1][2 * ss + 1], b.x, b.y);
                                }
                            }
                        }
                    }
                };
                if (!NV && __any_sync(0xFFFFFFFFu, (fx[0] != 0x3C003C00u) | (fx[1] != 0x3C003C00u)))
                    segment(std::true_type());
                else
                    segment(std::false_type());
            }
        }
    }

    if (!wvalid) return;
    /* NVFP4: A = (value * 2^-14) * scale, exact for every E4M3 scale (value *
     * scale * 2^-14 >= 2^-24 lies on the f16 grid, <= 6 * 448 * 2^-14), so the
     * mma sums are exactly 2^-14 times those of the unscaled weights (f32
     * accumulation commutes with a power-of-2 factor while every product stays
     * normal: here >= 2^-48); * 2^14 is exact in f32. The outputs were checked
     * bit-identical to the table decode on an H200. (Folding 2^14 into the
     * scale instead would overflow f16 for scales >= 4.) */
    const float post = NV ? 16384.f : 1.f;
    if (GATEUP) {
        float *P = (float *)a.out + ((int64_t)blockIdx.y * a.n + tile.row_start) * vrows + r0;
#pragma unroll
        for (int nt = 0; nt < NT; ++nt) {
            if (nt >= ntn) continue;
#pragma unroll
            for (int i = 0; i < 4; ++i) {
                const int t = nt * 8 + 2 * q + (i & 1);
                if (t < T) P[(int64_t)t * vrows + g + 8 * (i >> 1)] = __fmul_rn(acc[nt][i], post);
            }
        }
    } else {
        const float gs = NV ? a.wg[0][e] : 1.f;
        __nv_bfloat16 *y = (__nv_bfloat16 *)a.out + tile.row_start * rows + r0;
#pragma unroll
        for (int nt = 0; nt < NT; ++nt) {
            if (nt >= ntn) continue;
#pragma unroll
            for (int i = 0; i < 4; ++i) {
                const int t = nt * 8 + 2 * q + (i & 1);
                if (t < T)
                    y[(int64_t)t * rows + g + 8 * (i >> 1)] =
                        __float2bfloat16_rn(__fmul_rn(__fmul_rn(acc[nt][i], post), gs));
            }
        }
    }
}

template <bool GATEUP, bool NV, int XIN>
__global__ void __launch_bounds__(MOEP__F4_THREADS, MOEP__F4_MINB)
    moep__fp4_kernel(const moep__fp4_args_t a) {
    extern __shared__ uint2 xsm[];
    const moep__ffn_tile_t tile = a.tiles[blockIdx.z];
    if (tile.expert < 0) return;
    const int64_t rem = tile.row_end - tile.row_start;
    const int T = rem < 64 ? (int)rem : 64;
    if (T <= 8)
        moep__fp4_body<GATEUP, NV, XIN, 1>(a, tile, T, xsm);
    else if (T <= 16)
        moep__fp4_body<GATEUP, NV, XIN, 2>(a, tile, T, xsm);
    else if (T <= 32)
        moep__fp4_body<GATEUP, NV, XIN, 4>(a, tile, T, xsm);
    else
        moep__fp4_body<GATEUP, NV, XIN, 8>(a, tile, T, xsm);
}

/* h[row, i] = f16(silu(sum_s P[s][row][i] * gs1) * (sum_s P[s][row][I + i] * gs3)). */
__global__ void __launch_bounds__(256) moep__fp4_finish(const moep__ffn_tile_t *tiles,
                                                        const float *P, int nsplit, int64_t n,
                                                        int32_t I, const float *gs1,
                                                        const float *gs3, __half *h) {
#if MOEP__F4_PDL
    asm volatile("griddepcontrol.launch_dependents;");
#endif
    const moep__ffn_tile_t tile = tiles[blockIdx.x];
    if (tile.expert < 0) return;
    const int64_t rem = tile.row_end - tile.row_start;
    const int T = rem < 64 ? (int)rem : 64;
    const int i = (blockIdx.y * 256 + threadIdx.x) * 4;
    if (i >= I) return;
    const float a1 = gs1 ? gs1[tile.expert] : 1.f, a3 = gs3 ? gs3[tile.expert] : 1.f;
    for (int t = blockIdx.z; t < T; t += gridDim.z) {
        const int64_t row = tile.row_start + t;
        float4 gg = make_float4(0.f, 0.f, 0.f, 0.f), uu = gg;
        for (int s = 0; s < nsplit; ++s) {
            const float *p = P + ((int64_t)s * n + row) * 2 * I + i;
            const float4 a = __ldcs((const float4 *)p), b = __ldcs((const float4 *)(p + I));
            gg.x += a.x, gg.y += a.y, gg.z += a.z, gg.w += a.w;
            uu.x += b.x, uu.y += b.y, uu.z += b.z, uu.w += b.w;
        }
        __half2 lo = __floats2half2_rn(moep__silu4(gg.x * a1) * (uu.x * a3),
                                       moep__silu4(gg.y * a1) * (uu.y * a3));
        __half2 hi = __floats2half2_rn(moep__silu4(gg.z * a1) * (uu.z * a3),
                                       moep__silu4(gg.w * a1) * (uu.w * a3));
        uint2 o = make_uint2(*(uint32_t *)&lo, *(uint32_t *)&hi);
        *(uint2 *)(h + row * I + i) = o;
    }
}

template <bool GATEUP, bool NV, int XIN>
static cudaError_t moep__fp4_launch(const moep__fp4_args_t *a, int nsplit, int32_t max_tiles,
                                    bool pdl, cudaStream_t s) {
    static bool attr = false;
    if (!attr) {
        cudaError_t err = cudaFuncSetAttribute(moep__fp4_kernel<GATEUP, NV, XIN>,
                                               cudaFuncAttributeMaxDynamicSharedMemorySize,
                                               MOEP__F4_XS_BYTES);
        if (err != cudaSuccess) return err;
        attr = true;
    }
    const int vrows = GATEUP ? 2 * a->rows : a->rows;
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = dim3((unsigned)((vrows + MOEP__F4_ROWS - 1) / MOEP__F4_ROWS), (unsigned)nsplit,
                       (unsigned)max_tiles);
    cfg.blockDim = dim3(MOEP__F4_THREADS);
    cfg.dynamicSmemBytes = MOEP__F4_XS_BYTES;
    cfg.stream = s;
    cudaLaunchAttribute at[1];
    at[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    at[0].val.programmaticStreamSerializationAllowed = 1;
    cfg.attrs = at;
    cfg.numAttrs = pdl && MOEP__F4_PDL ? 1 : 0;
    return cudaLaunchKernelEx(&cfg, moep__fp4_kernel<GATEUP, NV, XIN>, *a);
}

/* K splits of the gate/up GEMV and the channels per split. */
static void moep__fp4_split(int32_t K, int64_t n, int32_t I, int *nsplit, int32_t *ks) {
    int S = MOEP__F4_SPLITS < 1 ? 1 : MOEP__F4_SPLITS;
    if ((size_t)S * (size_t)n * (size_t)I * 8 > MOEP__F4_P_MAX_BYTES) S = 1;
    int32_t c = (K + S - 1) / S;
    c = (c + 127) & ~127;
    *ks = c;
    *nsplit = (K + c - 1) / c;
}

extern "C" size_t moep__fp4_workspace(const moep_expert_weights_t *w, int64_t n) {
    int S;
    int32_t ks;
    moep__fp4_split(w->hidden, n, w->intermediate, &S, &ks);
    const size_t bh = ((size_t)n * w->intermediate * 2 + 255) & ~(size_t)255;
    return bh + (size_t)S * (size_t)n * (size_t)w->intermediate * 8;
}

template <bool NV>
static cudaError_t moep__fp4_ffn_fmt(const moep_expert_weights_t *w, const void *x, const float *xs,
                                     int64_t n, const moep__ffn_tile_t *tiles, int32_t max_tiles,
                                     void *ws, void *y, cudaStream_t s) {
    const int32_t H = w->hidden, I = w->intermediate;
    int S;
    int32_t ks;
    moep__fp4_split(H, n, I, &S, &ks);
    __half *h = (__half *)ws;
    float *P = (float *)((char *)ws + (((size_t)n * I * 2 + 255) & ~(size_t)255));
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
    a.out = P;
    a.n = n;
    a.K = H;
    a.rows = I;
    a.ks = ks;
    cudaError_t err = xs ? moep__fp4_launch<true, NV, MOEP__X_FP8>(&a, S, max_tiles, false, s)
                         : moep__fp4_launch<true, NV, MOEP__X_BF16>(&a, S, max_tiles, false, s);
    if (err != cudaSuccess) return err;
    moep__fp4_finish<<<dim3((unsigned)max_tiles, (unsigned)((I + 1023) / 1024), 16), 256, 0, s>>>(
        tiles, P, S, n, I, NV ? w->w1.global_scale : NULL, NV ? w->w3.global_scale : NULL, h);
    err = cudaGetLastError();
    if (err != cudaSuccess) return err;
    a.x = h;
    a.xs = NULL;
    a.wd[0] = a.wd[1] = (const uint8_t *)w->w2.data;
    a.ws[0] = a.ws[1] = (const uint8_t *)w->w2.scales;
    a.wg[0] = a.wg[1] = w->w2.global_scale;
    a.out = y;
    a.K = I;
    a.rows = H;
    a.ks = (I + 127) & ~127;
    return moep__fp4_launch<false, NV, MOEP__X_F16>(&a, 1, max_tiles, true, s);
}

extern "C" cudaError_t moep__fp4_ffn(const moep_expert_weights_t *w, const void *x, const float *xs,
                                     int64_t n, const moep__ffn_tile_t *tiles, int32_t max_tiles,
                                     void *ws, void *y, cudaStream_t s) {
    return w->format == MOEP_WEIGHTS_NVFP4
               ? moep__fp4_ffn_fmt<true>(w, x, xs, n, tiles, max_tiles, ws, y, s)
               : moep__fp4_ffn_fmt<false>(w, x, xs, n, tiles, max_tiles, ws, y, s);
}
