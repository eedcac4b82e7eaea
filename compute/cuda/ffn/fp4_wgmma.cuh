/*
 * FP4 FFN body for more tokens (T > 16 per tile): the four warps of a
 * warpgroup decode their 16 weight rows into f16 A fragments in registers
 * (the same layout and K permutation as the mma path) and issue
 * wgmma.m64nNk16 with the tokens (B, N = 32 or 64) read by the tensor cores
 * straight from shared memory: twice the f16 tensor rate of mma.sync on
 * Hopper and no fragment loads. Staged x: per 64-channel block, N rows
 * (tokens) of 128 bytes, 128-byte swizzle (16-byte chunk c of row n at chunk
 * c ^ (n & 7)), k slot 16 * (step & 3) + kappa of block 2 * seg + step / 4
 * (rows past the tile's T tokens hold stale data: their columns are never
 * stored).
 * The A registers are read asynchronously: a ring of two words' fragments,
 * each word's two wgmma one commit group, wait_group 1 before a slot is
 * rewritten. sm_90a only (the wrappers trap elsewhere).
 */
#ifndef MOEP_FP4_WGMMA_CUH
#define MOEP_FP4_WGMMA_CUH

#include "fp4_common.cuh"
#include "fp4_xshare.cuh"
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

    /* x: NBUF buffers of SEGC segments each, filled by the copy engine from
     * blocked x (moep__xblk_off: for gate/up made by its CTAs, fp4_xshare.cuh,
     * or by moep__fp4_prep; for down the gate/up epilogue's h), NBUF - 1
     * chunks ahead of the warps: no thread
     * stages anything (H200, MXFP4, T = 64: staging by the threads, 4-6 L2
     * round trips per chunk, cost 41 of 139 us). full[b]: the chunk in buffer
     * b has landed (expect_tx). A warp done with a chunk (its wgmma drained)
     * counts itself out of the buffer; the last warp out copies the chunk
     * NBUF later into it at once (no polling thread: H200, T = 64, a refill
     * found by thread 0's once-per-segment test cost up to a segment). */
    constexpr int NBUF = cta_t::XBUF, SEGC = cta_t::XS / (2 * NBUF * BLK);
    const int nchunk = (nseg + SEGC - 1) / SEGC;
    const uint32_t xsm = moep__smem_addr(sm), full = xsm + cta_t::XS;
    /* per buffer: warps out so far, over all rounds (last out: a multiple of WARPS) */
    uint32_t *out_count = (uint32_t *)(sm + cta_t::XS + 8 * NBUF);
    const uint32_t blk_bytes = (uint32_t)T * 128;
    const uint8_t *src = moep__xblk_tile(a.xb, tile.row_start, K);
    auto issue = [&](int c) {
        const int buf = c % NBUF, segs = min(SEGC, nseg - c * SEGC);
        const uint32_t bar = full + 8 * buf;
        moep__mbar_expect_tx_at(bar, 2 * segs * blk_bytes);
        for (int b = 0; b < 2 * segs; ++b)
            moep__bulk_load(xsm + (buf * 2 * SEGC + b) * BLK, src + (int64_t)(2 * c * SEGC + b) * blk_bytes,
                            blk_bytes, bar);
    };
    /* blocked x: made here (fp4_xshare.cuh), or by moep__fp4_prep (wait for its grid) */
    if (MOEP__F4_XBLK_SHARE && GATEUP && a.xsync != NULL) {
        moep__fp4_xshare<XIN, cta_t::THREADS>(a, tile, T);
    } else if (GATEUP && MOEP__F4_PDL) {
        asm volatile("griddepcontrol.wait;" ::: "memory"); /* x blocked by moep__fp4_prep */
    }
    if (threadIdx.x < NBUF) {
        moep__mbar_init_at(full + 8 * threadIdx.x, 1);
        out_count[threadIdx.x] = 0;
    }
    if (threadIdx.x == 0) moep__fence_barrier_init();
    __syncthreads();
    if (threadIdx.x == 0)
        for (int c = 0; c < NBUF && c < nchunk; ++c) issue(c);
    const uint64_t desc0 = moep__wgmma_desc(sm);

    for (int seg0 = 0; seg0 < nseg; seg0 += PF) {
#pragma unroll
        for (int u = 0; u < PF; ++u) {
            const int seg = seg0 + u;
            if (seg < nseg) {
                const int chunk = seg / SEGC, slot = seg - chunk * SEGC;
                if (slot == 0) {
                    if (chunk > 0) {
                        moep__wgmma_wait0(); /* this warp's reads of chunk - 1 are done */
                        __syncwarp();
                        const int done = chunk - 1;
                        if (lane == 0) {
                            __threadfence_block(); /* release: the reads above, before the count */
                            const uint32_t n = atomicAdd(&out_count[done % NBUF], 1u);
                            if (n % cta_t::WARPS == cta_t::WARPS - 1 && done + NBUF < nchunk) {
                                __threadfence_block(); /* acquire: every warp's count before the copy */
                                issue(done + NBUF);
                            }
                        }
                    }
                    moep__mbar_wait_at(full + 8 * (chunk % NBUF), (chunk / NBUF) & 1);
                }
                __syncwarp(); /* converged again for the .aligned wgmma instructions */
                const uint64_t dseg = desc0 + (uint64_t)((((chunk % NBUF) * 2 * SEGC + 2 * slot) * BLK) >> 4);
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
    if (wvalid)
        moep__fp4_epilogue<GATEUP, NV, PK, GATEUP, NT>(a, tile, T, r0, g, q, acc);
    else if (GATEUP)
        moep__fp4_h_pad(a, tile, T, r0 + g, q);
}

#endif /* MOEP_FP4_WGMMA_CUH */
