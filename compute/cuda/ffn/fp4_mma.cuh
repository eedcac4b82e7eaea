/*
 * FP4 FFN body for few tokens (T <= 16 per tile): warp-level mma.m16n8k16
 * (weights = A, decoded in registers; tokens = B, from shared memory; f32
 * accumulate), each warp on its own. Staged x layout: uint2
 * xsm[((seg * 8 + step) * Tp + n) * 4 + q] is the B fragment of lane (token n,
 * q) for mma step `step` of segment seg; Tp = NT * 8 token slots, so every
 * fragment address is a compile-time offset.
 */
#ifndef MOEP_FP4_MMA_CUH
#define MOEP_FP4_MMA_CUH

#include "fp4_common.cuh"

template <bool GATEUP, bool NV, bool PK, bool AS, int XIN, int NT>
__device__ __forceinline__ void moep__fp4_body_mma(const moep__fp4_args_t &a, const moep__ffn_tile_t &tile,
                                                   int T, uint2 *xsm) {
    typedef moep__fp4_stream<GATEUP, NV, PK, AS> stream_t;
    typedef moep__fp4_cta<GATEUP, AS> cta_t;
    constexpr int PF = NV ? MOEP__F4_PF_NV : MOEP__F4_PF_MX;
    constexpr bool EARLY = NV ? MOEP__F4_EARLY_NV : MOEP__F4_EARLY_MX;
    constexpr int Tp = NT * 8;
    const int ntn = (T + 7) >> 3; /* n-tiles with tokens */
    const int lane = threadIdx.x & 31, g = lane >> 2, q = lane & 3;
    const int K = a.K, nseg = (K + 127) >> 7;
    int r0;
    bool wvalid;
    uint4 wr[PF][2];
    uint32_t sr[PF][2];
    float acc[NT][4];
    const stream_t st = moep__fp4_warp_start<GATEUP, NV, PK, AS, PF, NT>(
        a, tile, g, q, r0, wvalid, wr, sr, acc, (uint8_t *)xsm + cta_t::XS);

    const int segc = ((cta_t::XS / (Tp * 2)) & ~127) >> 7; /* segments per staged chunk */
    int next_stage = 0, cbase = 0;
    auto store = [&](int n, int G, uint4 c) {
        uint2 *dst = xsm + ((G >> 4) * 8 + 2 * (G & 3)) * Tp * 4 + ((G >> 2) & 3) + n * 4;
        dst[0] = make_uint2(c.x, c.y);
        dst[Tp * 4] = make_uint2(c.z, c.w);
    };

    for (int seg0 = 0; seg0 < nseg; seg0 += PF) {
#pragma unroll
        for (int u = 0; u < PF; ++u) {
            const int seg = seg0 + u;
            if (seg < nseg) {
                if (seg == next_stage) {
                    __syncthreads();
                    const int32_t ks = seg * 128;
                    moep__stage_x<XIN, cta_t::THREADS>(a, tile.row_start, T, ks, min(segc * 128, K - ks), K, store);
                    __syncthreads();
                    cbase = seg;
                    next_stage += segc;
                }
                /* MX scales outside the fast range take the general factor
                 * pair; warp-uniform, so the common case pays no fx multiply.
                 * Packed MX scales are all in range (rebiased by the packer):
                 * one loop body, which also spares the instruction cache
                 * (H200, T = 1: 71 against 79 us) */
                uint4 cur[2];
                uint32_t sc[2];
                st.current(seg, lane, wr[u], sr[u], cur, sc);
                uint32_t tl[2], th[2], fx[2] = {0x3C003C00u, 0x3C003C00u};
                const bool general = moep__fp4_fast_factors<NV>(sc[0], tl[0], th[0]) |
                                     moep__fp4_fast_factors<NV>(sc[1], tl[1], th[1]);
                const bool slow = !NV && !PK && __any_sync(0xFFFFFFFFu, general);
                if (slow) {
#pragma unroll
                    for (int h = 0; h < 2; ++h) {
                        fx[h] = moep__mx_factor(sc[h], &tl[h]);
                        th[h] = tl[h];
                    }
                }
                if (EARLY && !AS) st.load(seg + PF, wr[u], sr[u]);
                const uint2 *xb = xsm + (seg - cbase) * 8 * Tp * 4 + g * 4 + q;
                auto segment = [&](auto two) {
#pragma unroll
                    for (int j = 0; j < 4; ++j) {
                        uint32_t A[2][4];
#pragma unroll
                        for (int h = 0; h < 2; ++h)
                            moep__fp4_decode_word<decltype(two)::value>(moep__word(cur[h], j),
                                                                        j < 2 ? tl[h] : th[h], fx[h], A[h]);
#pragma unroll
                        for (int ss = 0; ss < 2; ++ss) {
                            const int s = 2 * j + ss;
#pragma unroll
                            for (int nt = 0; nt < NT; ++nt) {
                                if (NT <= 2 || nt < ntn) {
                                    const uint2 b = xb[(s * Tp + nt * 8) * 4];
                                    moep__mma_f16(acc[nt], A[0][2 * ss], A[1][2 * ss], A[0][2 * ss + 1],
                                                  A[1][2 * ss + 1], b.x, b.y);
                                }
                            }
                        }
                    }
                };
                if (slow)
                    segment(std::true_type());
                else
                    segment(std::false_type());
                if (AS)
                    st.refill(seg, lane);
                else if (!EARLY)
                    st.load(seg + PF, wr[u], sr[u]); /* after cur's last read: no copy */
            }
        }
    }
    if (wvalid) moep__fp4_epilogue<GATEUP, NV, PK, false, NT>(a, tile, T, r0, g, q, acc);
}

#endif /* MOEP_FP4_MMA_CUH */
