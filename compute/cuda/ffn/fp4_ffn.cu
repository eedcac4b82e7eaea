/*
 * FP4-weight expert FFN (MXFP4 / NVFP4), made for decode: weight-byte bound.
 *
 * Two kernels (after the tile map), one GEMV-style body:
 *  1. gate/up: a warp owns 8 rows i of I and takes W1's rows i as mma rows
 *     0-7 and W3's as rows 8-15, over all of K. CTA = 8 warps (64 rows of I).
 *     Per 128-wide K segment a lane loads 16 packed bytes (32 codes, one MX
 *     block / two NV blocks) of its two rows (ld.global.nc, L1::no_allocate),
 *     decodes them to f16 by bit placement times the block scale (exact,
 *     fp4_decode.cuh) and feeds mma.m16n8k16 (weights = A, tokens = B, f32
 *     accumulate). Loads run 2-3 segments ahead in registers. The K
 *     order inside a segment is permuted identically for weights and
 *     activations; x is staged in shared memory (f16, in that order) in
 *     chunks of up to 64 KB. Each thread ends holding the gate and the up sum
 *     of its (i, token) pairs and writes h = f16(silu(gate) * up) [N, I]:
 *     SwiGLU is fused, only the f16 h goes through memory.
 *  2. down: the same body on W2 (a warp owns 16 rows of H) with x = h, bf16
 *     y; launched with programmatic dependent launch so that its CTAs start
 *     and issue their first weight loads while gate/up drains
 *     (griddepcontrol.wait before reading h).
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
/* Segments of weights in flight per warp, and whether a segment's refill is
 * issued before its compute (a register copy) or after its last read. Chosen
 * per format on an H200 (2026-11-23, decode T = 1 / 16, alternated builds):
 * MXFP4 early with 3 ahead was 5-10% faster than late, NVFP4 late with 2
 * ahead 4-7% faster than the other combinations. */
#ifndef MOEP__F4_PF_MX
#define MOEP__F4_PF_MX 3
#endif
#ifndef MOEP__F4_EARLY_MX
#define MOEP__F4_EARLY_MX 1
#endif
#ifndef MOEP__F4_PF_NV
#define MOEP__F4_PF_NV 2
#endif
#ifndef MOEP__F4_EARLY_NV
#define MOEP__F4_EARLY_NV 0
#endif
#ifndef MOEP__F4_XS_BYTES
#define MOEP__F4_XS_BYTES 65536 /* shared memory for staged x */
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

enum { MOEP__X_BF16 = 0, MOEP__X_FP8 = 1, MOEP__X_F16 = 2 };

typedef struct moep__fp4_args {
    const moep__ffn_tile_t *tiles;
    const void *x;    /* [N, K] */
    const float *xs;  /* FP8 x: [N, ceil(K/128)] */
    const uint8_t *wd[2], *ws[2];
    const float *wg[2]; /* NVFP4 global scales [E] */
    void *out;          /* gate/up: f16 h [N, rows]; down: bf16 y [N, rows] */
    int32_t K, rows;    /* rows per matrix */
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
 * Every thread takes items (token n, group G of 8 channels), G fastest so that
 * neighbouring threads read neighbouring bytes, and keeps MOEP__F4_XB loads in
 * flight: the warps wait here for ceil(items / (threads * XB)) L2 round trips
 * (for T = 64 and a 512-channel chunk: 4, where one thread per group walking
 * the tokens took 16).
 */
#ifndef MOEP__F4_XB
#define MOEP__F4_XB 4 /* x loads in flight per thread while staging (8 spilled, and was slower at T = 64) */
#endif
template <int XIN>
__device__ void moep__stage_x(const moep__fp4_args_t &a, int64_t row0, int T, int Tp, int32_t k,
                              int32_t nch, int32_t k_end, uint2 *xsm) {
    constexpr int XB = MOEP__F4_XB;
    const int ng = ((nch + 127) >> 7) * 16; /* groups of 8 channels */
    const int items = ng * T;
    for (int base = threadIdx.x; base < items; base += XB * MOEP__F4_THREADS) {
        moep__xraw<XIN> r[XB];
#pragma unroll
        for (int i = 0; i < XB; ++i) {
            const int it = base + i * MOEP__F4_THREADS;
            const int n = it / ng, G = it - n * ng;
            const int32_t e = k + 8 * G;
            if (it < items && e < k_end) {
                moep__xload<XIN>(a, row0 + n, e, r[i]);
            } else {
                r[i].b = make_uint4(0, 0, 0, 0);
                r[i].s = 0.f;
            }
        }
#pragma unroll
        for (int i = 0; i < XB; ++i) {
            const int it = base + i * MOEP__F4_THREADS;
            if (it < items) {
                const int n = it / ng, G = it - n * ng;
                const int segl = G >> 4, q = (G >> 2) & 3, j = G & 3;
                uint2 *dst = xsm + (segl * 8 + 2 * j) * Tp * 4 + q + n * 4;
                const uint4 c = moep__xconv<XIN>(r[i]);
                dst[0] = make_uint2(c.x, c.y);
                dst[Tp * 4] = make_uint2(c.z, c.w);
            }
        }
    }
}

template <bool GATEUP, bool NV, int XIN, int NT>
__device__ __forceinline__ void moep__fp4_body(const moep__fp4_args_t &a,
                                               const moep__ffn_tile_t &tile, int T, uint2 *xsm) {
    constexpr int PF = NV ? MOEP__F4_PF_NV : MOEP__F4_PF_MX;
    constexpr bool EARLY = NV ? MOEP__F4_EARLY_NV : MOEP__F4_EARLY_MX;
    const int e = tile.expert;
    /* n-tiles with tokens; the staged x keeps NT * 8 token slots so that every
     * fragment address below is a compile-time offset */
    const int ntn = (T + 7) >> 3;
    constexpr int Tp = NT * 8;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, q = lane & 3;
    const int K = a.K, rows = a.rows;
    /* gate/up: a warp owns 8 rows i of I; mma rows 0-7 are W1's and 8-15 W3's
     * rows i, so one thread ends with both the gate and the up sum of its (i,
     * token) and applies silu * mul itself. down: a warp owns 16 rows of W2. */
    constexpr int WROWS = GATEUP ? 8 : 16;
    const int r0 = blockIdx.x * (MOEP__F4_WARPS * WROWS) + warp * WROWS;
    const bool wvalid = r0 < rows; /* rows is a multiple of 32: whole warps */
    const int r0c = wvalid ? r0 : rows - WROWS;
    const int32_t k0 = 0, k1 = K;
    const int nseg = (K + 127) >> 7;
    const int64_t kb = K / 2, ksc = NV ? K / 16 : K / 32;

    /* Lane q reads channels 32q .. 32q + 31 of every 128-channel segment; its
     * chunk of segment s holds data iff 128 s < qlim (K is a multiple of 32). */
    const int32_t qlim = k1 - k0 - 32 * q;
    /* Every load is unconditional, from an address clamped to the lane's last
     * segment with data (a lane with none reads lane 0's chunk): a conditional
     * load made the compiler merge the loaded and the zero value into one
     * register with moves. Past the data the weights are real (finite) ones
     * and the staged x is zero, so those products add nothing. */
    const int qp = qlim > 0 ? q : 0;
    const int lastseg = qlim > 0 ? (qlim - 1) >> 7 : 0;
    const int64_t grow0 = (int64_t)e * rows + r0c + g, grow1 = grow0 + (GATEUP ? 0 : 8);
    const int32_t sq = NV ? (k0 >> 4) + 2 * qp : (k0 >> 5) + qp;
    const uint8_t *wp0 = a.wd[0] + grow0 * kb + (k0 >> 1) + qp * 16;
    const uint8_t *wp1 = a.wd[1] + grow1 * kb + (k0 >> 1) + qp * 16;
    const uint8_t *sp0 = a.ws[0] + grow0 * ksc + sq;
    const uint8_t *sp1 = a.ws[1] + grow1 * ksc + sq;

    uint4 wr[PF][2];
    uint32_t sr[PF][2];
    auto load = [&](int seg, uint4(&w)[2], uint32_t(&s)[2]) {
        const int sc = min(seg, lastseg);
        w[0] = moep__ldw(wp0 + sc * 64);
        w[1] = moep__ldw(wp1 + sc * 64);
        if (NV) {
            s[0] = __ldg((const uint16_t *)(sp0 + sc * 8));
            s[1] = __ldg((const uint16_t *)(sp1 + sc * 8));
        } else {
            s[0] = __ldg(sp0 + sc * 4);
            s[1] = __ldg(sp1 + sc * 4);
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
                 * MX: 2^(x + 14) in one IMAD while every lane's x lies in
                 * [-28, 1] (E8M0 99..128, the usual case); otherwise the warp
                 * takes the general factor pair (moep__mx_factor), whose second
                 * factor costs four more HMUL2 per word (a uniform branch). */
                uint32_t tl[2], th[2], fx[2];
                bool general = false;
#pragma unroll
                for (int h = 0; h < 2; ++h) {
                    if (NV) {
                        __half2_raw s2 =
                            __nv_cvt_fp8x2_to_halfraw2((__nv_fp8x2_storage_t)sr[u][h], __NV_E4M3);
                        tl[h] = (uint32_t)s2.x | ((uint32_t)s2.x << 16);
                        th[h] = (uint32_t)s2.y | ((uint32_t)s2.y << 16);
                    } else {
                        /* (e - 98) << 10 in both halves, modulo 2^32 */
                        tl[h] = th[h] = sr[u][h] * 0x04000400u + 0x77FE7800u;
                        general |= sr[u][h] - 99u > 29u;
                    }
                    fx[h] = 0x3C003C00u; /* 1.0 */
                }
                const bool slow = !NV && __any_sync(0xFFFFFFFFu, general); /* warp-uniform */
                if (slow) {
#pragma unroll
                    for (int h = 0; h < 2; ++h) {
                        fx[h] = moep__mx_factor(sr[u][h], &tl[h]);
                        th[h] = tl[h];
                    }
                }
                const uint4 cur[2] = {wr[u][0], wr[u][1]};
                if (EARLY) load(seg + PF, wr[u], sr[u]);
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
                if (slow)
                    segment(std::true_type());
                else
                    segment(std::false_type());
                if (!EARLY) load(seg + PF, wr[u], sr[u]); /* after cur's last read: no copy */
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
    /* accumulator i: token 2q + (i & 1), row g (i < 2) or mma row g + 8 */
    if (GATEUP) {
        /* h = f16(silu(gate * gs1) * (up * gs3)): the intermediate never
         * leaves the thread in f32 */
        const float gs1 = NV ? a.wg[0][e] : 1.f, gs3 = NV ? a.wg[1][e] : 1.f;
        __half *h = (__half *)a.out + tile.row_start * rows + r0 + g;
#pragma unroll
        for (int nt = 0; nt < NT; ++nt) {
            if (nt >= ntn) continue;
#pragma unroll
            for (int i = 0; i < 2; ++i) {
                const int t = nt * 8 + 2 * q + i;
                const float gv = __fmul_rn(acc[nt][i], post) * gs1;
                const float uv = __fmul_rn(acc[nt][2 + i], post) * gs3;
                if (t < T) h[(int64_t)t * rows] = __float2half_rn(moep__silu4(gv) * uv);
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
#if MOEP__F4_PDL
    /* let the down projection's CTAs start (and issue their first weight
     * loads) as soon as SMs free up; they wait for h with griddepcontrol.wait */
    if (GATEUP) asm volatile("griddepcontrol.launch_dependents;");
#endif
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

template <bool GATEUP, bool NV, int XIN>
static cudaError_t moep__fp4_launch(const moep__fp4_args_t *a, int32_t max_tiles, bool pdl,
                                    cudaStream_t s) {
    static bool attr = false;
    if (!attr) {
        cudaError_t err = cudaFuncSetAttribute(moep__fp4_kernel<GATEUP, NV, XIN>,
                                               cudaFuncAttributeMaxDynamicSharedMemorySize,
                                               MOEP__F4_XS_BYTES);
        if (err != cudaSuccess) return err;
        attr = true;
    }
    const int rows_per_cta = MOEP__F4_WARPS * (GATEUP ? 8 : 16);
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = dim3((unsigned)((a->rows + rows_per_cta - 1) / rows_per_cta), 1, (unsigned)max_tiles);
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

extern "C" size_t moep__fp4_workspace(const moep_expert_weights_t *w, int64_t n) {
    return (size_t)n * (size_t)w->intermediate * 2; /* f16 h */
}

template <bool NV>
static cudaError_t moep__fp4_ffn_fmt(const moep_expert_weights_t *w, const void *x, const float *xs,
                                     int64_t n, const moep__ffn_tile_t *tiles, int32_t max_tiles,
                                     void *ws, void *y, cudaStream_t s) {
    const int32_t H = w->hidden, I = w->intermediate;
    (void)n;
    __half *h = (__half *)ws;
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
    a.K = H;
    a.rows = I;
    cudaError_t err = xs ? moep__fp4_launch<true, NV, MOEP__X_FP8>(&a, max_tiles, false, s)
                         : moep__fp4_launch<true, NV, MOEP__X_BF16>(&a, max_tiles, false, s);
    if (err != cudaSuccess) return err;
    a.x = h;
    a.xs = NULL;
    a.wd[0] = a.wd[1] = (const uint8_t *)w->w2.data;
    a.ws[0] = a.ws[1] = (const uint8_t *)w->w2.scales;
    a.wg[0] = a.wg[1] = w->w2.global_scale;
    a.out = y;
    a.K = I;
    a.rows = H;
    return moep__fp4_launch<false, NV, MOEP__X_F16>(&a, max_tiles, true, s);
}

extern "C" cudaError_t moep__fp4_ffn(const moep_expert_weights_t *w, const void *x, const float *xs,
                                     int64_t n, const moep__ffn_tile_t *tiles, int32_t max_tiles,
                                     void *ws, void *y, cudaStream_t s) {
    return w->format == MOEP_WEIGHTS_NVFP4
               ? moep__fp4_ffn_fmt<true>(w, x, xs, n, tiles, max_tiles, ws, y, s)
               : moep__fp4_ffn_fmt<false>(w, x, xs, n, tiles, max_tiles, ws, y, s);
}
