/*
 * FP4-weight expert FFN (MXFP4 / NVFP4), made for decode: weight-byte bound.
 *
 * CTA: 4 warps, one tile of <= 64 tokens, a strided set of 64-row blocks of
 * the weights (GATEUP: 64 rows of W1 and the same of W3), walked as one flat
 * sequence of (row block, 128-channel segment) items so the streams never
 * drain between blocks. Each warp owns 16 rows; per item a lane copies the
 * 16 packed bytes (32 codes) of rows g and g+8 and their scale word into its
 * own slots of an S-deep shared-memory ring with cp.async (no barrier: a lane
 * reads back only what it wrote), then decodes them to f16 with the block
 * scale folded in (exact) and feeds mma.m16n8k16 (weights = A, tokens = B,
 * f32 accumulate). The activations come pre-permuted in f16 records
 * (fp4_decode.cuh) and are staged per item by one thread with 1-D TMA bulk
 * copies into a ring of as many slots as fit (full / empty mbarriers): x is read once per
 * CTA per item and never re-staged through registers.
 * GATEUP writes h = silu(g) * u as f16 in the same permuted record layout
 * (the DOWN kernel's input); DOWN writes y bf16 [N, H].
 */
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_fp8.h>

#include "ffn_cuda.h"
#include "fp4_decode.cuh"
#include "sm90_ptx.cuh"

#define MOEP__F4_WARPS 4
#define MOEP__F4_ROWS (16 * MOEP__F4_WARPS)
/* Activation ring: slots of one segment of T8 tokens (T8 * 256 bytes) in an
 * XAREA-byte area, as many as fit (3 at 64 tokens, 24 at <= 8 tokens). */
#ifndef MOEP__F4_XAREA
#define MOEP__F4_XAREA (48 * 1024)
#endif
#define MOEP__F4_NBMAX 24
#ifndef MOEP__F4_S_GU
#define MOEP__F4_S_GU 6
#endif
#ifndef MOEP__F4_S_DN
#define MOEP__F4_S_DN 10
#endif

template <bool GATEUP>
struct moep__f4_cfg {
    static constexpr int NM = GATEUP ? 2 : 1;
    static constexpr int S = GATEUP ? MOEP__F4_S_GU : MOEP__F4_S_DN; /* weight ring depth (items) */
    static constexpr int WST = MOEP__F4_WARPS * NM * 2 * 512; /* data bytes per stage */
    static constexpr int SST = MOEP__F4_WARPS * NM * 2 * 128; /* scale bytes per stage */
    static constexpr int SMEM = MOEP__F4_XAREA + S * (WST + SST) + 2 * MOEP__F4_NBMAX * 8;
};

typedef struct moep__fp4_args {
    const moep__ffn_tile_t *tiles;
    const __half *xp; /* permuted f16 activations [kseg][8][np][16] */
    const uint8_t *wd[2], *ws[2];
    const float *wg[2]; /* NVFP4 global scales [E] */
    void *out;          /* GATEUP: permuted f16 h; DOWN: bf16 [N, rows] */
    int64_t np;         /* padded rows of the permuted buffers */
    int32_t K, rows, nseg, nrb;
} moep__fp4_args_t;

__device__ __forceinline__ float moep__silu4(float g) { return g / (1.0f + expf(-g)); }

template <bool GATEUP, bool NV>
__global__ void __launch_bounds__(32 * MOEP__F4_WARPS, 2) moep__fp4_kernel(const moep__fp4_args_t a) {
    typedef moep__f4_cfg<GATEUP> C;
    constexpr int NM = C::NM, S = C::S;
    extern __shared__ __align__(128) uint8_t sm[];
    const moep__ffn_tile_t tile = a.tiles[blockIdx.y];
    if (tile.expert < 0 || (int)blockIdx.x >= a.nrb) return; /* whole CTA, before any barrier */
    uint8_t *xsm = sm;
    uint8_t *wsm = sm + MOEP__F4_XAREA;
    uint8_t *ssm = wsm + S * C::WST;
    uint64_t *full = (uint64_t *)(ssm + S * C::SST);
    uint64_t *empty = full + MOEP__F4_NBMAX;

    const int e = tile.expert;
    const int64_t rem = tile.row_end - tile.row_start;
    const int T = rem < 64 ? (int)rem : 64;
    const int T8 = (T + 7) & ~7, ntn = T8 >> 3;
    const int xslot = T8 * 256;
    const int nb0 = MOEP__F4_XAREA / xslot, NB = nb0 < MOEP__F4_NBMAX ? nb0 : MOEP__F4_NBMAX;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, q = lane & 3;
    const int K = a.K, rows = a.rows, nseg = a.nseg;
    const int nrb_mine = (a.nrb - (int)blockIdx.x + (int)gridDim.x - 1) / (int)gridDim.x;
    const int nitems = nrb_mine * nseg;
    const int64_t kb = K / 2, ksc = NV ? K / 16 : K / 32;

    if (threadIdx.x == 0) {
        for (int b = 0; b < NB; ++b) {
            moep__mbar_init(&full[b], 1);
            moep__mbar_init(&empty[b], MOEP__F4_WARPS);
        }
        moep__fence_barrier_init();
    }
    __syncthreads();

    /* global row (expert stack) of this lane's row h of matrix row block rb */
    auto grow = [&](int rb, int h) -> int64_t {
        int r = rb * MOEP__F4_ROWS + warp * 16 + g + 8 * h;
        r = r < rows ? r : rows - 1;
        return (int64_t)e * rows + r;
    };
    auto scale_off = [&](int seg) -> int64_t { return NV ? seg * 8 + 2 * q : seg * 4 + q; };

    auto issue_w = [&](int it) {
        if (it < nitems) {
            const int rb = (int)blockIdx.x + (it / nseg) * (int)gridDim.x, seg = it % nseg;
            const bool ok = (seg * 4 + q) * 32 < K;
            const int st = it % S;
#pragma unroll
            for (int m = 0; m < NM; ++m)
#pragma unroll
                for (int h = 0; h < 2; ++h) {
                    const int64_t gr = grow(rb, h);
                    const int slot = (st * MOEP__F4_WARPS + warp) * NM * 2 + m * 2 + h;
                    const uint8_t *src = a.wd[m] + gr * kb + (ok ? seg * 64 + q * 16 : 0);
                    moep__cp_async16(wsm + slot * 512 + lane * 16, src, ok);
                    const uint8_t *sp = a.ws[m] + gr * ksc + (ok ? scale_off(seg) : 0);
                    moep__cp_async4(ssm + slot * 128 + lane * 4,
                                    (const void *)((uintptr_t)sp & ~(uintptr_t)3), ok);
                }
        }
        moep__cp_async_commit();
    };
    const __half *xbase = a.xp + tile.row_start * 16;
    auto issue_x = [&](int it) { /* thread 0 only */
        if (it >= nitems) return;
        const int b = it % NB, seg = it % nseg;
        if (it >= NB) moep__mbar_wait(&empty[b], ((it / NB) - 1) & 1);
        moep__mbar_expect_tx(&full[b], 8 * T8 * 32);
#pragma unroll
        for (int s = 0; s < 8; ++s)
            moep__bulk_load(xsm + b * xslot + s * T8 * 32,
                            xbase + ((int64_t)seg * 8 + s) * a.np * 16, T8 * 32, &full[b]);
    };

    if (threadIdx.x == 0)
        for (int it = 0; it < NB - 1; ++it) issue_x(it);
#pragma unroll
    for (int it = 0; it < S - 1; ++it) issue_w(it);

    float acc[NM][8][4];
#pragma unroll
    for (int m = 0; m < NM; ++m)
#pragma unroll
        for (int nt = 0; nt < 8; ++nt)
#pragma unroll
            for (int i = 0; i < 4; ++i) acc[m][nt][i] = 0.f;
    float gs[NM];
#pragma unroll
    for (int m = 0; m < NM; ++m) gs[m] = NV ? a.wg[m][e] : 1.f;

    for (int it = 0; it < nitems; ++it) {
        if (threadIdx.x == 0) issue_x(it + NB - 1);
        issue_w(it + S - 1);
        moep__cp_async_wait<S - 1>();
        const int rb = (int)blockIdx.x + (it / nseg) * (int)gridDim.x, seg = it % nseg;
        const int st = it % S;
        uint4 cur[NM][2];
        uint32_t tl[NM][2], th[NM][2], fx[NM][2];
#pragma unroll
        for (int m = 0; m < NM; ++m)
#pragma unroll
            for (int h = 0; h < 2; ++h) {
                const int slot = (st * MOEP__F4_WARPS + warp) * NM * 2 + m * 2 + h;
                cur[m][h] = *(const uint4 *)(wsm + slot * 512 + lane * 16);
                const uint32_t wv = *(const uint32_t *)(ssm + slot * 128 + lane * 4);
                const uintptr_t sp = (uintptr_t)(a.ws[m] + grow(rb, h) * ksc + scale_off(seg));
                const uint32_t sv = wv >> (8 * (uint32_t)(sp & 3));
                if (NV) {
                    __half2_raw s2 = __nv_cvt_fp8x2_to_halfraw2((__nv_fp8x2_storage_t)(sv & 0xFFFF),
                                                                __NV_E4M3);
                    tl[m][h] = (uint32_t)s2.x | ((uint32_t)s2.x << 16);
                    th[m][h] = (uint32_t)s2.y | ((uint32_t)s2.y << 16);
                    fx[m][h] = 0;
                } else {
                    fx[m][h] = moep__mx_tables(sv & 0xFF, &tl[m][h], &th[m][h]);
                }
            }
        const int b = it % NB;
        moep__mbar_wait(&full[b], (it / NB) & 1);
        const uint2 *xb = (const uint2 *)(xsm + b * xslot);
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
                        moep__e2m1x8_to_f16(wj, MOEP__E2M1_F16HI_LO, MOEP__E2M1_F16HI_HI, A[m][h]);
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
                        const uint2 bx = xb[(s * T8 + nt * 8 + g) * 4 + q];
#pragma unroll
                        for (int m = 0; m < NM; ++m)
                            moep__mma_f16(acc[m][nt], A[m][0][2 * ss], A[m][1][2 * ss],
                                          A[m][0][2 * ss + 1], A[m][1][2 * ss + 1], bx.x, bx.y);
                    }
                }
            }
        }
        __syncwarp();
        if (lane == 0) moep__mbar_arrive(&empty[b]);

        if (seg == nseg - 1) { /* row block done: epilogue */
#pragma unroll
            for (int nt = 0; nt < 8; ++nt) {
                if (nt >= ntn) continue;
#pragma unroll
                for (int i = 0; i < 4; ++i) {
                    const int t = nt * 8 + 2 * q + (i & 1);
                    const int r = rb * MOEP__F4_ROWS + warp * 16 + g + 8 * (i >> 1);
                    if (t < T) {
                        const int64_t row = tile.row_start + t;
                        if (GATEUP) { /* rows of h past I are written as 0 (DOWN reads them) */
                            const float gt = acc[0][nt][i] * gs[0];
                            const float up = acc[NM - 1][nt][i] * gs[NM - 1];
                            const float hv = r < rows ? moep__silu4(gt) * up : 0.f;
                            const int pp = moep__f4_perm(r & 127);
                            const int64_t o =
                                (((int64_t)(r >> 7) * 8 + (pp >> 4)) * a.np + row) * 16 + (pp & 15);
                            ((__half *)a.out)[o] = __float2half_rn(hv);
                        } else if (r < rows) {
                            ((__nv_bfloat16 *)a.out)[row * rows + r] =
                                __float2bfloat16_rn(acc[0][nt][i] * gs[0]);
                        }
                    }
                }
            }
#pragma unroll
            for (int m = 0; m < NM; ++m)
#pragma unroll
                for (int nt = 0; nt < 8; ++nt)
#pragma unroll
                    for (int i = 0; i < 4; ++i) acc[m][nt][i] = 0.f;
        }
    }
    moep__cp_async_wait<0>();
}

static int moep__num_sms(void) {
    static int n = 0;
    if (!n) {
        int dev = 0;
        if (cudaGetDevice(&dev) != cudaSuccess ||
            cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess || n < 1)
            n = 132;
    }
    return n;
}

template <bool GATEUP, bool NV>
static cudaError_t moep__fp4_launch(const moep__fp4_args_t *a, int32_t max_tiles, cudaStream_t s) {
    static bool attr = false;
    const int smem = moep__f4_cfg<GATEUP>::SMEM;
    if (!attr) {
        cudaError_t err = cudaFuncSetAttribute(moep__fp4_kernel<GATEUP, NV>,
                                               cudaFuncAttributeMaxDynamicSharedMemorySize, smem);
        if (err != cudaSuccess) return err;
        attr = true;
    }
    /* one wave of 2 CTAs per SM; each CTA walks ceil(total / slots) row blocks */
    const int64_t slots = 2 * (int64_t)moep__num_sms();
    const int64_t total = (int64_t)a->nrb * max_tiles;
    const int64_t per = (total + slots - 1) / slots;
    const unsigned gx = (unsigned)((a->nrb + per - 1) / per);
    dim3 grid(gx, (unsigned)max_tiles);
    moep__fp4_kernel<GATEUP, NV><<<grid, 32 * MOEP__F4_WARPS, smem, s>>>(*a);
    return cudaGetLastError();
}

template <bool NV>
static cudaError_t moep__fp4_ffn_fmt(const moep_expert_weights_t *w, const void *xp,
                                     const moep__ffn_tile_t *tiles, int32_t max_tiles, int64_t np,
                                     void *hp, void *y, cudaStream_t s) {
    moep__fp4_args_t a;
    a.tiles = tiles;
    a.xp = (const __half *)xp;
    a.np = np;
    a.wd[0] = (const uint8_t *)w->w1.data;
    a.wd[1] = (const uint8_t *)w->w3.data;
    a.ws[0] = (const uint8_t *)w->w1.scales;
    a.ws[1] = (const uint8_t *)w->w3.scales;
    a.wg[0] = w->w1.global_scale;
    a.wg[1] = w->w3.global_scale;
    a.out = hp;
    a.K = w->hidden;
    a.rows = w->intermediate;
    a.nseg = (a.K + 127) / 128;
    a.nrb = 2 * ((a.rows + 127) / 128); /* covers every channel DOWN reads */
    cudaError_t err = moep__fp4_launch<true, NV>(&a, max_tiles, s);
    if (err != cudaSuccess) return err;
    a.xp = (const __half *)hp;
    a.wd[0] = a.wd[1] = (const uint8_t *)w->w2.data;
    a.ws[0] = a.ws[1] = (const uint8_t *)w->w2.scales;
    a.wg[0] = a.wg[1] = w->w2.global_scale;
    a.out = y;
    a.K = w->intermediate;
    a.rows = w->hidden;
    a.nseg = (a.K + 127) / 128;
    a.nrb = (a.rows + MOEP__F4_ROWS - 1) / MOEP__F4_ROWS;
    return moep__fp4_launch<false, NV>(&a, max_tiles, s);
}

extern "C" cudaError_t moep__fp4_ffn(const moep_expert_weights_t *w, const void *x, const float *xs,
                                     int64_t n, const moep__ffn_tile_t *tiles, int32_t max_tiles,
                                     void *xp, void *hp, void *y, cudaStream_t s) {
    const int64_t np = moep__fp4_np(n);
    cudaError_t err = moep__fp4_xperm(x, xs, n, w->hidden, np, xp, s);
    if (err != cudaSuccess) return err;
    return w->format == MOEP_WEIGHTS_NVFP4
               ? moep__fp4_ffn_fmt<true>(w, xp, tiles, max_tiles, np, hp, y, s)
               : moep__fp4_ffn_fmt<false>(w, xp, tiles, max_tiles, np, hp, y, s);
}
