/*
 * FP4 FFN body for more tokens (T > 16 per tile): the four warps of a
 * warpgroup decode their 16 weight rows into f16 A fragments in registers
 * (the same layout and K permutation as the mma path) and issue
 * wgmma.m64nNk16 with the tokens (B, N = 32 or 64) read by the tensor cores
 * straight from shared memory: twice the f16 tensor rate of mma.sync on
 * Hopper and no fragment loads. Staged x: per 64-channel block, N rows
 * (tokens) of 128 bytes, 128-byte swizzle (16-byte chunk c of row n at chunk
 * c ^ (n & 7)), k slot 16 * (step & 3) + kappa of block 2 * seg + step / 4.
 * The A registers are read asynchronously: a ring of two words' fragments,
 * each word's two wgmma one commit group, wait_group 1 before a slot is
 * rewritten. sm_90a only (the wrappers trap elsewhere).
 */
#ifndef MOEP_FP4_WGMMA_CUH
#define MOEP_FP4_WGMMA_CUH

#include "fp4_common.cuh"
#include "sm90_ptx.cuh"

/* D[64x32] += A[64x16] (f16, registers) * B[16x32] (f16, K-major in shared memory). */
__device__ __forceinline__ void moep__wgmma_m64n32k16_f16_rs(float *d, uint32_t a0, uint32_t a1, uint32_t a2,
                                                           uint32_t a3, uint64_t db) {
    MOEP__WGMMA(
        "wgmma.mma_async.sync.aligned.m64n32k16.f32.f16.f16 "
        "{%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15}, {%16,%17,%18,%19}, %20, 1, 1, 1, 0;"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15])
        : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "l"(db));
}

/* D[64x64] += A[64x16] (f16, registers) * B[16x64] (f16, K-major in shared memory). */
__device__ __forceinline__ void moep__wgmma_m64n64k16_f16_rs(float *d, uint32_t a0, uint32_t a1, uint32_t a2,
                                                           uint32_t a3, uint64_t db) {
    MOEP__WGMMA(
        "wgmma.mma_async.sync.aligned.m64n64k16.f32.f16.f16 "
        "{%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31}, {%32,%33,%34,%35}, %36, 1, 1, 1, 0;"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
        : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "l"(db));
}

template <int N>
__device__ __forceinline__ void moep__wgmma_f16_rs(float *d, uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3,
                                                   uint64_t db) {
    if (N == 32)
        moep__wgmma_m64n32k16_f16_rs(d, a0, a1, a2, a3, db);
    else
        moep__wgmma_m64n64k16_f16_rs(d, a0, a1, a2, a3, db);
}

__device__ __forceinline__ void moep__wgmma_wait1(void) {
    MOEP__WGMMA("wgmma.wait_group.sync.aligned 1;" ::: "memory");
}

template <bool GATEUP, bool NV, bool PK, bool AS, int XIN, int NT>
__device__ __forceinline__ void moep__fp4_body_wg(const moep__fp4_args_t &a, const moep__ffn_tile_t &tile,
                                                  int T, uint8_t *sm /* 1024-aligned */) {
    static_assert(NT == 4 || NT == 8, "wgmma N is 32 or 64");
    typedef moep__fp4_stream<GATEUP, NV, PK, AS> stream_t;
    typedef moep__fp4_cta<GATEUP, AS> cta_t;
    constexpr int N = NT * 8, BLK = N * 128;
    constexpr int SEGC = cta_t::XS / (2 * BLK); /* segments per staged chunk */
    /* 2 segments ahead, refilled after use, for both formats: with MXFP4's
     * 3-ahead-early of the mma body T = 64 was 5% slower (H200) */
    constexpr int PF = 2;
    constexpr bool EARLY = false;
    const int lane = threadIdx.x & 31, g = lane >> 2, q = lane & 3;
    const int K = a.K, nseg = (K + 127) >> 7;
    int r0;
    bool wvalid; /* invalid warps still take part in the wgmma */
    uint4 wr[PF][2];
    uint32_t sr[PF][2];
    float acc[NT][4];
    const stream_t st = moep__fp4_warp_start<GATEUP, NV, PK, AS, PF, NT>(
        a, tile, g, q, r0, wvalid, wr, sr, acc, sm + cta_t::XS);
    uint32_t A[2][2][4]; /* [ring slot][row half][fragment word] */

    const uint64_t desc0 = moep__wgmma_desc(sm);
    int next_stage = 0, cbase = 0;
    auto store = [&](int n, int G, uint4 c) {
        const int j = G & 3, c0 = 4 * (j & 1), sw = n & 7;
        uint8_t *row = sm + (2 * (G >> 4) + (j >> 1)) * BLK + n * 128 + 4 * ((G >> 2) & 3);
        *(uint32_t *)(row + (((c0 + 0) ^ sw) << 4)) = c.x;
        *(uint32_t *)(row + (((c0 + 1) ^ sw) << 4)) = c.y;
        *(uint32_t *)(row + (((c0 + 2) ^ sw) << 4)) = c.z;
        *(uint32_t *)(row + (((c0 + 3) ^ sw) << 4)) = c.w;
    };

    for (int seg0 = 0; seg0 < nseg; seg0 += PF) {
#pragma unroll
        for (int u = 0; u < PF; ++u) {
            const int seg = seg0 + u;
            if (seg < nseg) {
                if (seg == next_stage) {
                    moep__wgmma_wait0(); /* no wgmma still reads the old chunk */
                    __syncthreads();
                    const int32_t ks = seg * 128;
                    moep__stage_x<XIN, cta_t::THREADS>(a, tile.row_start, T, ks, min(SEGC * 128, K - ks), K, store);
                    asm volatile("fence.proxy.async.shared::cta;" ::: "memory");
                    __syncthreads();
                    cbase = seg;
                    next_stage += SEGC;
                }
                /* per-warp branches cannot split a warpgroup's wgmma: row-major
                 * MX always takes the general factor pair here (decode is
                 * shared by 32-64 tokens at these sizes); packed MX is in range */
                uint4 cur[2];
                uint32_t sc[2];
                st.current(seg, lane, wr[u], sr[u], cur, sc);
                uint32_t tl[2], th[2], fx[2];
#pragma unroll
                for (int h = 0; h < 2; ++h) {
                    if (NV || PK) {
                        moep__fp4_fast_factors<NV>(sc[h], tl[h], th[h]);
                        fx[h] = 0x3C003C00u;
                    } else {
                        fx[h] = moep__mx_factor(sc[h], &tl[h]);
                        th[h] = tl[h];
                    }
                }
                if (EARLY && !AS) st.load(seg + PF, wr[u], sr[u]);
                const uint64_t dseg = desc0 + (uint64_t)((2 * (seg - cbase) * BLK) >> 4);
#pragma unroll
                for (int j = 0; j < 4; ++j) {
                    uint32_t(&As)[2][4] = A[j & 1];
                    moep__wgmma_wait1(); /* the group that used this slot two words ago is done */
#pragma unroll
                    for (int h = 0; h < 2; ++h)
                        moep__fp4_decode_word<!NV && !PK>(moep__word(cur[h], j), j < 2 ? tl[h] : th[h], fx[h], As[h]);
                    moep__wgmma_fence();
#pragma unroll
                    for (int ss = 0; ss < 2; ++ss) {
                        const int s = 2 * j + ss;
                        moep__wgmma_f16_rs<N>(&acc[0][0], As[0][2 * ss], As[1][2 * ss], As[0][2 * ss + 1],
                                              As[1][2 * ss + 1], dseg + (s >> 2) * (BLK >> 4) + 2 * (s & 3));
                    }
                    moep__wgmma_commit();
                }
                if (AS)
                    st.refill(seg, lane);
                else if (!EARLY)
                    st.load(seg + PF, wr[u], sr[u]);
            }
        }
    }
    moep__wgmma_wait0();
    if (wvalid) moep__fp4_epilogue<GATEUP, NV, PK, NT>(a, tile, T, r0, g, q, acc);
}

#endif /* MOEP_FP4_WGMMA_CUH */
