/*
 * FP4-weight expert FFN: what the two kernel bodies share (fp4_mma.cuh for
 * T <= 16 tokens per tile, fp4_wgmma.cuh above): tuning knobs, arguments,
 * activation staging, the per-warp weight stream, block-scale factors, the
 * E2M1 decode of one word and the epilogues. See fp4_ffn.cu for the overview.
 */
#ifndef MOEP_FP4_COMMON_CUH
#define MOEP_FP4_COMMON_CUH

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_fp8.h>

#include <type_traits>

#include "ffn_cuda.h"
#include "fp4_decode.cuh"

/* Segments of weights in flight per warp, and whether a segment's refill is
 * issued before its compute (a register copy) or after its last read. For
 * the mma body (T <= 16), H200, 2026-11-23, alternated builds: NVFP4 late
 * with 2 ahead was 4-7% faster than the other combinations. MXFP4 took 3
 * ahead early while row-major MX had a second (slow-path) loop body; on
 * packed weights (one body) 2 late is 2-3% faster at T = 1 and 5% at T = 16.
 * (Packed weights in tiles of at most 8 tokens go through shared memory
 * instead: moep__fp4_stream, AS.) */
#ifndef MOEP__F4_PF_MX
#define MOEP__F4_PF_MX 2
#endif
#ifndef MOEP__F4_EARLY_MX
#define MOEP__F4_EARLY_MX 0
#endif
#ifndef MOEP__F4_PF_NV
#define MOEP__F4_PF_NV 2
#endif
#ifndef MOEP__F4_EARLY_NV
#define MOEP__F4_EARLY_NV 0
#endif
/* CTA shape per projection: warps, and shared memory for staged x. Gate/up
 * runs one 16-warp CTA per SM at 128 registers (128 rows of I, so x is
 * staged once for twice the rows, in chunks three times as long; 8 experts x
 * 2048 rows are 128 CTAs, one wave on 132 SMs). Down runs one 28-warp CTA
 * per SM (448 rows: 8 experts x 7168 rows are 128 CTAs, one wave, where 8
 * or 16 warps per CTA made 1.7 waves), so the compiler has 72 registers
 * (a few hundred bytes spill in the bodies for more than 8 tokens). H200,
 * L2 cold, T = 1 / 16 / 64: MXFP4 68.5 / 83 / 145 -> 62.5 / 78.7 / 138.4
 * us, NVFP4 67.1 / 87.3 / 144.5 -> 61.7 / 80.1 / 140.4. Down's x area is
 * 128 KB: 4 chunks of h per wgmma tile instead of 8 (T = 64: 1 us faster;
 * the shared-memory rings of the few-token tiles take more anyway). */
#ifndef MOEP__F4_GU_WARPS
#define MOEP__F4_GU_WARPS 16
#endif
#ifndef MOEP__F4_GU_XS
#define MOEP__F4_GU_XS 196608
#endif
#ifndef MOEP__F4_DN_WARPS
#define MOEP__F4_DN_WARPS 28
#endif
#ifndef MOEP__F4_DN_XS
#define MOEP__F4_DN_XS 131072
#endif
#ifndef MOEP__F4_GU_MINB
#define MOEP__F4_GU_MINB (MOEP__F4_GU_WARPS < 16 ? 16 / MOEP__F4_GU_WARPS : 1)
#endif
#ifndef MOEP__F4_DN_MINB
#define MOEP__F4_DN_MINB (MOEP__F4_DN_WARPS < 16 ? 16 / MOEP__F4_DN_WARPS : 1)
#endif
/* Packed weights through shared memory (AS, moep__fp4_stream): a cp.async
 * ring of D segments per warp, filled B segments (one commit group) at a
 * time; the x area shrinks to make room. For tiles of at most 8 tokens, where
 * it read faster than the register stream (H200, T = 1, L2 cold: NVFP4 66
 * against 74 us, MXFP4 68 against 72); with more tokens it was slower (the
 * smaller x area, T = 16: 88-95 against 84-88 us). */
#ifndef MOEP__F4_AS_GU_D
#define MOEP__F4_AS_GU_D 4
#endif
#ifndef MOEP__F4_AS_DN_D
#define MOEP__F4_AS_DN_D 4
#endif
#ifndef MOEP__F4_AS_B
#define MOEP__F4_AS_B 2
#endif
#ifndef MOEP__F4_AS_GU_XS
#define MOEP__F4_AS_GU_XS 147456
#endif
#ifndef MOEP__F4_AS_DN_XS
#define MOEP__F4_AS_DN_XS 65536
#endif
/* rows of I per gate/up CTA */
#define MOEP__F4_GU_ROWS (MOEP__F4_GU_WARPS * 8)
/* The wgmma body's blocked x made by the gate/up CTAs of a tile themselves
 * where they all fit on the SMs at once (fp4_xshare.cuh), not by
 * moep__fp4_prep before gate/up. */
#ifndef MOEP__F4_XBLK_SHARE
#define MOEP__F4_XBLK_SHARE 1
#endif
#ifndef MOEP__F4_GU_XBUF
#define MOEP__F4_GU_XBUF 2
#endif
#ifndef MOEP__F4_DN_XBUF
#define MOEP__F4_DN_XBUF 2
#endif
/* AS: the x area beside the shared-memory weight rings. */
template <bool GATEUP, bool AS = false>
struct moep__fp4_cta {
    static constexpr int WARPS = GATEUP ? MOEP__F4_GU_WARPS : MOEP__F4_DN_WARPS;
    static constexpr int THREADS = 32 * WARPS;
    static constexpr int XS = AS ? (GATEUP ? MOEP__F4_AS_GU_XS : MOEP__F4_AS_DN_XS)
                                 : (GATEUP ? MOEP__F4_GU_XS : MOEP__F4_DN_XS);
    /* buffers of the wgmma body's x area (chunks in flight) */
    static constexpr int XBUF = GATEUP ? MOEP__F4_GU_XBUF : MOEP__F4_DN_XBUF;
    /* CTAs per SM the registers are budgeted for */
    static constexpr int MINB = GATEUP ? MOEP__F4_GU_MINB : MOEP__F4_DN_MINB;
};
#ifndef MOEP__F4_L2HINT
#define MOEP__F4_L2HINT 1 /* ld ... L2::256B prefetch hint on weight loads */
#endif
#ifndef MOEP__F4_PDL
#define MOEP__F4_PDL 1
#endif

#ifndef MOEP__F4_XB
#define MOEP__F4_XB 4 /* x loads in flight per thread while staging (8 spilled, and was slower at T = 64) */
#endif

enum { MOEP__X_BF16 = 0, MOEP__X_FP8 = 1, MOEP__X_F16 = 2 };

typedef struct moep__fp4_args {
    const moep__ffn_tile_t *tiles; /* NULL: masked rows, each CTA derives its tile */
    const int64_t *counts;         /* masked: tokens per expert [E] */
    int64_t max_tokens;            /* masked: rows per expert */
    int32_t tiles_per_expert;      /* masked: ceil(max_tokens / 64) */
    const void *x;    /* [N, K], rows ldx elements apart */
    const uint8_t *xb; /* x of the tiles of more than 16 tokens, blocked (moep__xblk_off) */
    const float *xs;  /* FP8 x: [N, ceil(K/128)] */
    const uint8_t *wd[2], *ws[2];
    const float *wg[2]; /* NVFP4 global scales [E] */
    void *out;          /* gate/up: f16 h [N, rows]; down: bf16 y [N, rows]; rows ldo elements apart */
    int32_t K, rows;    /* rows per matrix */
    int32_t ldx, ldo;   /* row strides (elements) of x and out */
    /* gate/up: its CTAs make blocked x themselves (fp4_xshare.cuh: epoch,
     * flags); NULL: moep__fp4_prep made it. down: the epoch to advance */
    uint64_t *xsync;
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
        const uint2 b = __ldg((const uint2 *)((const uint8_t *)a.x + row * a.ldx + e));
        r.b = make_uint4(b.x, b.y, 0, 0);
        r.s = __ldg(a.xs + row * ((a.K + 127) >> 7) + (e >> 7));
    } else {
        r.b = __ldg((const uint4 *)((const uint16_t *)a.x + row * a.ldx + e));
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
 * tile's T tokens as f16. Every thread takes items (token n, group G of 8
 * channels: segment G >> 4, lane q = (G >> 2) & 3, word j = G & 3), G fastest
 * so that neighbouring threads read neighbouring bytes, and keeps
 * MOEP__F4_XB loads in flight: the warps wait here for ceil(items / (threads
 * * XB)) L2 round trips (for T = 64 and a 512-channel chunk: 4, where one
 * thread per group walking the tokens took 16). store(n, G, c) puts the four
 * f16x2 words c = (v0,v4 | v1,v5 | v2,v6 | v3,v7) where the body's layout
 * wants them: words 0 / 1 are lane q's k slots 2q and 8 + 2q of step 2j,
 * words 2 / 3 those of step 2j + 1 (the permutation the weight decode uses).
 */
template <int XIN, int THREADS, class Store>
__device__ void moep__stage_x(const moep__fp4_args_t &a, int64_t row0, int T, int32_t k,
                              int32_t nch, int32_t k_end, Store store) {
    constexpr int XB = MOEP__F4_XB;
    const int ng = ((nch + 127) >> 7) * 16; /* groups of 8 channels */
    /* item it = n * ng + G; a thread's items are THREADS apart: one division
     * here, then a carry per step */
    const int dn = THREADS / ng, dG = THREADS - dn * ng;
    int n = threadIdx.x / ng, G = threadIdx.x - (threadIdx.x / ng) * ng;
    while (n < T) {
        moep__xraw<XIN> r[XB];
        int nn[XB], gg[XB];
#pragma unroll
        for (int i = 0; i < XB; ++i) {
            nn[i] = n, gg[i] = G;
            const int32_t e = k + 8 * G;
            if (n < T && e < k_end) {
                moep__xload<XIN>(a, row0 + n, e, r[i]);
            } else {
                r[i].b = make_uint4(0, 0, 0, 0);
                r[i].s = 0.f;
            }
            G += dG, n += dn;
            if (G >= ng) G -= ng, ++n;
        }
#pragma unroll
        for (int i = 0; i < XB; ++i)
            if (nn[i] < T) store(nn[i], gg[i], moep__xconv<XIN>(r[i]));
    }
}

/*
 * Items (token n, group G of 8 channels) of a tile's x into blocked x at xt
 * (moep__xblk_off): item it0 + stride * k for k < ITEMS, map(it, n, G)
 * (n >= T: nothing), all loads in flight at once. Channels past K are zeros.
 */
__device__ __forceinline__ int64_t moep__xblk_off(int n, int G, int w, int T);
template <int XIN, int ITEMS, class Map>
__device__ __forceinline__ void moep__xblk_items(const moep__fp4_args_t &a, int64_t row_start, uint8_t *xt, int T,
                                                 int it0, int stride, Map map) {
    moep__xraw<XIN> r[ITEMS];
#pragma unroll
    for (int k = 0; k < ITEMS; ++k) {
        int n, G;
        map(it0 + stride * k, n, G);
        if (n < T && 8 * G < a.K) {
            moep__xload<XIN>(a, row_start + n, 8 * G, r[k]);
        } else {
            r[k].b = make_uint4(0, 0, 0, 0);
            r[k].s = 0.f;
        }
    }
#pragma unroll
    for (int k = 0; k < ITEMS; ++k) {
        int n, G;
        map(it0 + stride * k, n, G);
        if (n >= T) continue;
        const uint4 c = moep__xconv<XIN>(r[k]);
        *(uint32_t *)(xt + moep__xblk_off(n, G, 0, T)) = c.x;
        *(uint32_t *)(xt + moep__xblk_off(n, G, 1, T)) = c.y;
        *(uint32_t *)(xt + moep__xblk_off(n, G, 2, T)) = c.z;
        *(uint32_t *)(xt + moep__xblk_off(n, G, 3, T)) = c.w;
    }
}

/*
 * Blocked x, for the tiles of more than 16 tokens (T of them): in global
 * memory exactly what the wgmma body's shared memory holds (fp4_wgmma.cuh),
 * so that staging it is a plain copy by the copy engine. Per 64-slot block
 * (two per 128-channel segment) T rows of 128 bytes, with the K permutation
 * and the 128-byte swizzle of the staged layout. moep__fp4_prep writes x this
 * way and the gate/up wgmma epilogue writes h. Byte offset, from the tile's
 * first byte (row_start * Kp * 2, Kp = K rounded up to 128), of word w
 * (channels 8G + w and 8G + w + 4, f16) of group G for token n.
 */
__device__ __forceinline__ int64_t moep__xblk_off(int n, int G, int w, int T) {
    const int blk = 2 * (G >> 4) + ((G >> 1) & 1);
    return ((int64_t)blk * T + n) * 128 + 16 * ((4 * (G & 1) + w) ^ (n & 7)) + 4 * ((G >> 2) & 3);
}

/* A tile's first byte in blocked x (or h) of K channels per row. */
template <typename P>
__device__ __forceinline__ P *moep__xblk_tile(P *base, int64_t row_start, int K) {
    return base + row_start * (int64_t)((K + 127) >> 7) * 256;
}

/*
 * One warp's weight rows: gate/up takes 8 rows i of I from W1 (mma rows 0-7,
 * h = 0) and the same rows of W3 (mma rows 8-15, h = 1), so a thread ends
 * with the gate and the up sum of its (i, token) pairs; down takes 16 rows of
 * W2 (h = 1 is 8 rows further). Lane (g, q) reads channels 32q .. 32q + 31 of
 * every 128-channel segment of row g, 16 bytes (K is a multiple of 32), and
 * its block scale byte(s).
 * Row-major weights (PK false): the warp's 16-byte reads of one segment lie
 * in 8 rows, 64 bytes each. Packed weights (PK, fp4_pack.cu): a segment of 8
 * rows is 512 contiguous bytes, lane order, so every read is whole and a
 * warp streams one run of memory per row half (H200: 69 against 75 us for
 * NVFP4 decode at T = 1); the last segment is zero-padded.
 * Every load is unconditional, from an address clamped to the lane's last
 * segment with data (a lane with none reads lane 0's chunk): a conditional
 * load made the compiler merge the loaded and the zero value into one
 * register with moves that wait for the load. Past the data the weights are
 * real (finite) ones and the staged x is zero, so those products add nothing.
 * AS (packed only): the same bytes go global -> shared by cp.async, B
 * segments per commit group into a ring of D slots per warp, the lane reading
 * back its own 16 bytes (and, after __syncwarp, the scales other lanes
 * copied); bytes in flight then cost no registers. Segments past the last
 * are not copied (nothing reads them).
 */
template <bool GATEUP, bool NV, bool PK, bool AS>
struct moep__fp4_stream {
    static_assert(PK || !AS, "only packed weights go through shared memory");
    static constexpr int WROWS = GATEUP ? 8 : 16; /* rows of the output per warp */
    static constexpr int SCALES = NV ? 8 : 4;     /* scale bytes per row and segment */
    static constexpr int WSTEP = PK ? MOEP__FP4_PACK_CODE_BYTES : 64;
    static constexpr int SSTEP = PK ? MOEP__FP4_PACK_SCALE_BYTES(NV) : SCALES;
    /* AS: ring of D slots per warp; a slot = both row halves' 512 code bytes,
     * then both halves' scales; bursts of B segments */
    static constexpr int D = GATEUP ? MOEP__F4_AS_GU_D : MOEP__F4_AS_DN_D;
    static constexpr int B = MOEP__F4_AS_B;
    static_assert(D % B == 0, "the ring holds whole bursts");
    static constexpr int SLOT = 2 * MOEP__FP4_PACK_CODE_BYTES + 2 * MOEP__FP4_PACK_SCALE_BYTES(NV);
    const uint8_t *wp0, *wp1, *sp0, *sp1;
    int lastseg;
    uint32_t ring; /* AS: this warp's ring (shared-memory address) */

    __device__ __forceinline__ moep__fp4_stream(const moep__fp4_args_t &a, int e, int r0c, int g, int q) {
        const int64_t row0 = (int64_t)e * a.rows + r0c; /* a multiple of 8 */
        if (PK) {
            const int64_t nseg = (a.K + 127) >> 7, rb0 = row0 >> 3, rb1 = rb0 + (GATEUP ? 0 : 1);
            const int lane = 4 * g + q;
            lastseg = (int)nseg - 1;
            wp0 = a.wd[0] + rb0 * nseg * WSTEP + lane * 16;
            wp1 = a.wd[1] + rb1 * nseg * WSTEP + lane * 16;
            sp0 = a.ws[0] + rb0 * nseg * SSTEP + (AS ? 0 : lane * (SCALES / 4));
            sp1 = a.ws[1] + rb1 * nseg * SSTEP + (AS ? 0 : lane * (SCALES / 4));
            return;
        }
        const int32_t qlim = a.K - 32 * q;
        const int qp = qlim > 0 ? q : 0;
        lastseg = qlim > 0 ? (qlim - 1) >> 7 : 0;
        const int64_t kb = a.K / 2, ksc = a.K / (128 / SCALES);
        const int64_t grow0 = row0 + g, grow1 = grow0 + (GATEUP ? 0 : 8);
        const int32_t sq = qp * (SCALES / 4);
        wp0 = a.wd[0] + grow0 * kb + qp * 16;
        wp1 = a.wd[1] + grow1 * kb + qp * 16;
        sp0 = a.ws[0] + grow0 * ksc + sq;
        sp1 = a.ws[1] + grow1 * ksc + sq;
    }

    /* AS: copy segments seg .. seg + B - 1 (those that exist) into their
     * slots as one commit group (every lane commits, so all count alike).
     * Lane l copies its 16 code bytes of each half and, while 4 l < 2 SSTEP,
     * 4 scale bytes. */
    __device__ __forceinline__ void issue(int seg, int lane) const {
#pragma unroll
        for (int k = 0; k < B; ++k) copy(seg + k, lane);
        asm volatile("cp.async.commit_group;" ::: "memory");
    }
    __device__ __forceinline__ void copy(int seg, int lane) const {
        if (seg > lastseg) return;
        const uint32_t dst = ring + (seg % D) * SLOT;
        const int64_t o = (int64_t)seg * WSTEP;
        asm volatile("cp.async.cg.shared.global.L2::256B [%0], [%1], 16;" ::"r"(dst + 16 * lane), "l"(wp0 + o)
                     : "memory");
        asm volatile("cp.async.cg.shared.global.L2::256B [%0], [%1], 16;" ::"r"(dst + WSTEP + 16 * lane),
                     "l"(wp1 + o)
                     : "memory");
        if (4 * lane < 2 * SSTEP) {
            const int b = 4 * lane, h = b >= SSTEP;
            const uint8_t *src = (h ? sp1 - SSTEP : sp0) + (int64_t)seg * SSTEP + b;
            asm volatile("cp.async.ca.shared.global [%0], [%1], 4;" ::"r"(dst + 2 * WSTEP + b), "l"(src) : "memory");
        }
    }
    /* AS, after segment seg's compute: once a burst's slots are read, refill them */
    __device__ __forceinline__ void refill(int seg, int lane) const {
        if ((seg + 1) % B == 0) {
            __syncwarp(); /* every lane has read the slots' scales */
            issue(seg + 1 + D - B, lane);
        }
    }
    /* AS: segment seg's codes and scale byte(s) from its slot; at a burst's
     * first segment, wait for the burst (the next one may stay in flight) */
    __device__ __forceinline__ void fetch(int seg, int lane, uint4 (&w)[2], uint32_t (&s)[2]) const {
        if (seg % B == 0) {
            asm volatile("cp.async.wait_group %0;" ::"n"(D / B - 1) : "memory");
            __syncwarp(); /* the scales were copied by other lanes */
        }
        const uint32_t src = ring + (seg % D) * SLOT;
#pragma unroll
        for (int h = 0; h < 2; ++h) {
            asm volatile("ld.shared.v4.u32 {%0,%1,%2,%3}, [%4];"
                         : "=r"(w[h].x), "=r"(w[h].y), "=r"(w[h].z), "=r"(w[h].w)
                         : "r"(src + h * WSTEP + 16 * lane)
                         : "memory");
            const uint32_t sa = src + 2 * WSTEP + h * SSTEP + lane * (SCALES / 4);
            uint16_t v;
            if (NV)
                asm volatile("ld.shared.u16 %0, [%1];" : "=h"(v) : "r"(sa) : "memory");
            else
                asm volatile("ld.shared.u8 %0, [%1];" : "=h"(v) : "r"(sa) : "memory");
            s[h] = NV ? v : v & 0xFFu;
        }
    }

    /* Segment seg's codes and scales as the bodies take them: from its ring
     * slot (AS), or the registers w / s it was loaded into. */
    __device__ __forceinline__ void current(int seg, int lane, const uint4 (&w)[2], const uint32_t (&s)[2],
                                            uint4 (&cur)[2], uint32_t (&sc)[2]) const {
        if (AS)
            fetch(seg, lane, cur, sc);
        else
            cur[0] = w[0], cur[1] = w[1], sc[0] = s[0], sc[1] = s[1];
    }

    /* 16 bytes of codes and the block scale byte(s) of both rows, segment seg */
    __device__ __forceinline__ void load(int seg, uint4 (&w)[2], uint32_t (&s)[2]) const {
        const int sc = min(seg, lastseg);
        w[0] = moep__ldw(wp0 + sc * WSTEP);
        w[1] = moep__ldw(wp1 + sc * WSTEP);
        if (NV) {
            s[0] = __ldg((const uint16_t *)(sp0 + sc * SSTEP));
            s[1] = __ldg((const uint16_t *)(sp1 + sc * SSTEP));
        } else {
            s[0] = __ldg(sp0 + sc * SSTEP);
            s[1] = __ldg(sp1 + sc * SSTEP);
        }
    }
};

/*
 * How both bodies start a warp: its first output row r0 (a warp past the
 * rows, wvalid false, streams the last rows again and stores nothing), its
 * weight stream with the first PF segments in flight, then (down) the wait
 * for h, and zeroed accumulators.
 */
template <bool GATEUP, bool NV, bool PK, bool AS, int PF, int NT>
__device__ __forceinline__ moep__fp4_stream<GATEUP, NV, PK, AS> moep__fp4_warp_start(
    const moep__fp4_args_t &a, const moep__ffn_tile_t &tile, int g, int q, int &r0, bool &wvalid,
    uint4 (&wr)[PF][2], uint32_t (&sr)[PF][2], float (&acc)[NT][4], uint8_t *rings) {
    typedef moep__fp4_stream<GATEUP, NV, PK, AS> stream_t;
    const int warp = threadIdx.x >> 5;
    r0 = blockIdx.x * (moep__fp4_cta<GATEUP>::WARPS * stream_t::WROWS) + warp * stream_t::WROWS;
    wvalid = r0 < a.rows; /* rows is a multiple of 32: whole warps */
    stream_t st(a, tile.expert, wvalid ? r0 : a.rows - stream_t::WROWS, g, q);
    if (AS) {
        st.ring = (uint32_t)__cvta_generic_to_shared(rings) + warp * stream_t::D * stream_t::SLOT;
#pragma unroll
        for (int p = 0; p < stream_t::D; p += stream_t::B) st.issue(p, 4 * g + q);
    } else {
#pragma unroll
        for (int p = 0; p < PF; ++p) st.load(p, wr[p], sr[p]);
    }

    if (!GATEUP && MOEP__F4_PDL) asm volatile("griddepcontrol.wait;" ::: "memory");

#pragma unroll
    for (int nt = 0; nt < NT; ++nt)
#pragma unroll
        for (int i = 0; i < 4; ++i) acc[nt][i] = 0.f;
    return st;
}

/*
 * f16x2 block-scale factors of row half h for the codes decoded as value *
 * 2^-14: NV: words 0-1 / 2-3 use the row's two E4M3 scales (tl / th). MX:
 * 2^(x + 14) in one IMAD, exact while x lies in [-28, 1] (E8M0 99..128, the
 * usual case); returns whether this scale needs the general pair instead
 * (moep__mx_factor: one more factor, fx).
 */
template <bool NV>
__device__ __forceinline__ bool moep__fp4_fast_factors(uint32_t s, uint32_t &tl, uint32_t &th) {
    if (NV) {
        __half2_raw s2 = __nv_cvt_fp8x2_to_halfraw2((__nv_fp8x2_storage_t)s, __NV_E4M3);
        tl = (uint32_t)s2.x | ((uint32_t)s2.x << 16);
        th = (uint32_t)s2.y | ((uint32_t)s2.y << 16);
        return false;
    }
    tl = th = s * 0x04000400u + 0x77FE7800u; /* (e - 98) << 10 in both halves, mod 2^32 */
    return s - 99u > 29u;
}

/* Word j (8 codes) of a row half -> its 4 f16x2 A words (elements c, c + 4), scaled. */
template <bool TWO>
__device__ __forceinline__ void moep__fp4_decode_word(uint32_t wj, uint32_t f, uint32_t fx, uint32_t (&A)[4]) {
    moep__e2m1x8_to_f16s(wj, A);
#pragma unroll
    for (int c = 0; c < 4; ++c) A[c] = moep__hmul2(A[c], f);
    if (TWO) {
#pragma unroll
        for (int c = 0; c < 4; ++c) A[c] = moep__hmul2(A[c], fx);
    }
}

__device__ __forceinline__ uint32_t moep__word(const uint4 &v, int j) {
    return j == 0 ? v.x : (j == 1 ? v.y : (j == 2 ? v.z : v.w));
}

/* A warp past the last row of I (rows [I, Ip) of blocked h, which down's
 * copies take whole): zeros for channel c of the tile's T tokens. */
__device__ __forceinline__ void moep__fp4_h_pad(const moep__fp4_args_t &a, const moep__ffn_tile_t &tile, int T, int c,
                                                int q) {
    if (c >= a.ldo) return;
    __half *h = (__half *)a.out + tile.row_start * a.ldo;
    const int G = c >> 3, v = c & 7;
    for (int t = q; t < T; t += 4) h[(moep__xblk_off(t, G, v & 3, T) >> 1) + (v >> 2)] = __float2half_rn(0.f);
}

/*
 * Write a warp's results; accumulator i of n-tile nt is token nt * 8 + 2q +
 * (i & 1) of mma row g (i < 2) or g + 8. NVFP4: A = (value * 2^-14) * scale,
 * exact for every E4M3 scale (value * scale * 2^-14 >= 2^-24 lies on the f16
 * grid, <= 6 * 448 * 2^-14), so the mma sums are exactly 2^-14 times those of
 * the unscaled weights (f32 accumulation commutes with a power-of-2 factor
 * while every product stays normal: here >= 2^-48); * 2^14 is exact in f32.
 * (Folding 2^14 into the scale instead would overflow f16 for scales >= 4.)
 * gate/up: h = f16(silu(gate * gs1) * (up * gs3)), the intermediate never
 * leaves the thread in f32, in rows of ldo (HB: blocked, moep__xblk_off).
 * down: y = bf16(sum * gs2). gs: NVFP4's global scales; packed MXFP4's
 * per-expert powers of 2 (fp4_pack.cu); else 1.
 */
template <bool GATEUP, bool NV, bool PK, bool HB, int NT>
__device__ __forceinline__ void moep__fp4_epilogue(const moep__fp4_args_t &a, const moep__ffn_tile_t &tile,
                                                   int T, int r0, int g, int q, const float (&acc)[NT][4]) {
    const int ntn = (T + 7) >> 3, e = tile.expert;
    const int64_t ldo = a.ldo;
    const float post = NV ? 16384.f : 1.f;
    if (GATEUP) {
        const float gs1 = NV || PK ? a.wg[0][e] : 1.f, gs3 = NV || PK ? a.wg[1][e] : 1.f;
        const int c = r0 + g, G = c >> 3, v = c & 7;
        __half *h = (__half *)a.out + tile.row_start * ldo;
#pragma unroll
        for (int nt = 0; nt < NT; ++nt) {
            if (nt >= ntn) continue;
#pragma unroll
            for (int i = 0; i < 2; ++i) {
                const int t = nt * 8 + 2 * q + i;
                const float gv = __fmul_rn(acc[nt][i], post) * gs1;
                const float uv = __fmul_rn(acc[nt][2 + i], post) * gs3;
                if (t >= T) continue;
                const __half hv = __float2half_rn(moep__silu4(gv) * uv);
                if (HB) /* blocked for the down projection's wgmma body (moep__xblk_off) */
                    h[(moep__xblk_off(t, G, v & 3, T) >> 1) + (v >> 2)] = hv;
                else
                    h[(int64_t)t * ldo + c] = hv;
            }
        }
    } else {
        const float gs = NV || PK ? a.wg[0][e] : 1.f;
        __nv_bfloat16 *y = (__nv_bfloat16 *)a.out + tile.row_start * ldo + r0;
#pragma unroll
        for (int nt = 0; nt < NT; ++nt) {
            if (nt >= ntn) continue;
#pragma unroll
            for (int i = 0; i < 4; ++i) {
                const int t = nt * 8 + 2 * q + (i & 1);
                if (t < T)
                    y[(int64_t)t * ldo + g + 8 * (i >> 1)] =
                        __float2bfloat16_rn(__fmul_rn(__fmul_rn(acc[nt][i], post), gs));
            }
        }
    }
}

/*
 * The CTA's tile: from the tile table, or for masked rows straight from the
 * counts (tile z is expert z / tiles_per_expert, its (z % tpe)-th 64 rows),
 * which spares the tile-map kernel and its launch on the decode path.
 */
__device__ __forceinline__ moep__ffn_tile_t moep__fp4_tile(const moep__fp4_args_t &a) {
    const int z = (int)blockIdx.z;
    if (a.tiles != NULL) return a.tiles[z];
    const int e = z / a.tiles_per_expert, t = z - e * a.tiles_per_expert;
    int64_t c = a.counts[e];
    c = c < 0 ? 0 : (c > a.max_tokens ? a.max_tokens : c);
    const int64_t start = (int64_t)e * a.max_tokens, row = start + (int64_t)t * MOEP__FFN_TILE_ROWS;
    moep__ffn_tile_t tile = {row < start + c ? e : -1, 0, row, start + c};
    return tile;
}

/*
 * Segment readiness of blocked x made by the gate/up CTAs (fp4_xshare.cuh):
 * xsync[0] is the workspace's epoch, xsync[1 + z * nseg + seg] the flag of
 * segment seg of tile z, set to moep__xflag(epoch, z, seg) once written.
 * The down kernel advances the epoch after gate/up, so a flag left by an
 * earlier call never matches, and a distinct value per (epoch, tile, segment)
 * makes a stray match with whatever else the caller kept in the workspace
 * as unlikely as guessing 64 bits. CUDA-graph safe: no host-side counter.
 */
__device__ __forceinline__ uint64_t moep__xflag(uint64_t epoch, int z, int seg) {
    return (epoch + 1) * 0x9E3779B97F4A7C15ull ^ (((uint64_t)(uint32_t)z << 32) | (uint32_t)seg) ^
           0xD1B54A32D192ED03ull;
}

#endif /* MOEP_FP4_COMMON_CUH */
