/*
 * The 64-row FP8 GEMM kernel (see fp8_gemm.cu for when it runs). CTA: 3
 * warpgroups. Warpgroup 0 (one thread) feeds a STAGES-deep ring of
 * shared-memory stages with TMA; warpgroups 1 and 2 each run m64n128k32
 * wgmma over the same 64 token rows (A) and their own 128 B rows. Per
 * 128-wide K block the wgmma accumulator is promoted into an f32 sum scaled
 * by a_scale(row) * b_scale(128x128 block) (DeepSeek-V3 recipe).
 *
 * GATEUP: B rows of consumer c are W1[i0+64c .. +64) then W3[same]: the
 *   accumulator holds gate and up for the same 64 intermediate columns in the
 *   same thread, so the epilogue does silu(g)*u, takes the 1x128 amax across
 *   both consumers (the CTA covers 128 intermediate columns) and writes FP8 h
 *   plus its scale: h never exists in bf16 in memory.
 * DOWN: B rows of consumer c are W2[n0+128c .. +128); bf16 out.
 * Included by fp8_gemm.cu only.
 */
#ifndef MOEP_FP8_GEMM64_CUH
#define MOEP_FP8_GEMM64_CUH

#include "fp8_gemm_common.cuh"

#ifndef MOEP__G_STAGES
#define MOEP__G_STAGES 5
#endif
#define MOEP__G_A_BYTES (64 * 128)
#define MOEP__G_STAGE_BYTES (MOEP__G_A_BYTES + 4 * 64 * 128)
#define MOEP__G_SMEM (MOEP__G_STAGES * MOEP__G_STAGE_BYTES + 2 * MOEP__G_STAGES * 8 + 512 + 1024)

/* One k-block's four wgmma (K = 128) from stage s into acc, committed as one group. */
__device__ __forceinline__ void moep__fp8_issue(float (&acc)[64], uint64_t da0, uint64_t db_off, int s) {
    const uint64_t da = da0 + (uint64_t)((s * MOEP__G_STAGE_BYTES) >> 4);
    const uint64_t db = da + db_off;
    moep__wgmma_fence();
#pragma unroll
    for (int kk = 0; kk < 4; ++kk) moep__wgmma_m64n128k32_e4m3(acc, da + 2 * kk, db + 2 * kk, kk > 0);
    moep__wgmma_commit();
}

/* sum += acc * a_scale(row) * b_scale(block); GATEUP columns 32.. are W3's. */
template <bool GATEUP>
__device__ __forceinline__ void moep__fp8_promote(float (&sum)[64], const float (&acc)[64], float sa0,
                                                  float sa1, float sb0, float sb1) {
    const float f00 = sa0 * sb0, f10 = sa1 * sb0, f01 = sa0 * sb1, f11 = sa1 * sb1;
#pragma unroll
    for (int c = 0; c < 16; ++c) {
        const float fr0 = (GATEUP && c >= 8) ? f01 : f00;
        const float fr1 = (GATEUP && c >= 8) ? f11 : f10;
        sum[4 * c + 0] += acc[4 * c + 0] * fr0;
        sum[4 * c + 1] += acc[4 * c + 1] * fr0;
        sum[4 * c + 2] += acc[4 * c + 2] * fr1;
        sum[4 * c + 3] += acc[4 * c + 3] * fr1;
    }
}

template <bool GATEUP>
__global__ void __launch_bounds__(384, 1)
    moep__fp8_gemm_kernel(const __grid_constant__ CUtensorMap map_a,
                          const __grid_constant__ CUtensorMap map_b0,
                          const __grid_constant__ CUtensorMap map_b1,
                          const moep__fp8_gemm_args_t args) {
    extern __shared__ uint8_t smem_raw[];
    uint8_t *smem = (uint8_t *)(((uintptr_t)smem_raw + 1023) & ~(uintptr_t)1023);
    uint64_t *full = (uint64_t *)(smem + MOEP__G_STAGES * MOEP__G_STAGE_BYTES);
    uint64_t *empty = full + MOEP__G_STAGES;
    float *red = (float *)(empty + MOEP__G_STAGES);

    const moep__ffn_tile_t tile = args.tiles[blockIdx.y];
    if (tile.expert < 0) return; /* whole CTA, before any barrier */
    const int e = tile.expert;
    const int n_cta = blockIdx.x * (GATEUP ? 128 : 256);
    const int nkb = args.nkb;

    if (threadIdx.x == 0) {
        for (int s = 0; s < MOEP__G_STAGES; ++s) {
            moep__mbar_init(&full[s], 1);
            moep__mbar_init(&empty[s], 256);
        }
        moep__fence_barrier_init();
    }
    __syncthreads();

    if (threadIdx.x < 128) { /* producer */
        if (threadIdx.x == 0) {
            moep__tma_prefetch_desc(&map_a);
            moep__tma_prefetch_desc(&map_b0);
            if (GATEUP) moep__tma_prefetch_desc(&map_b1);
            const int32_t arow = (int32_t)tile.row_start;
            const int32_t brow = e * args.rows_b + n_cta;
            for (int kb = 0; kb < nkb; ++kb) {
                const int s = kb % MOEP__G_STAGES;
                moep__mbar_wait(&empty[s], ((kb / MOEP__G_STAGES) & 1) ^ 1);
                moep__mbar_expect_tx(&full[s], MOEP__G_STAGE_BYTES);
                uint8_t *st = smem + s * MOEP__G_STAGE_BYTES;
                const int32_t k = kb * 128;
                moep__tma_load_2d(st, &map_a, &full[s], k, arow);
                moep__fp8_load_b<GATEUP>(st + MOEP__G_A_BYTES, &map_b0, &map_b1, &full[s], k, brow);
            }
        }
        return;
    }

    /* consumers */
    const int ct = threadIdx.x - 128;
    const int cw = ct >> 7;
    const int wi = (ct >> 5) & 3;
    const int lane = ct & 31, q = lane & 3, g = lane >> 2;
    const int r0 = 16 * wi + g, r1 = r0 + 8;
    const int64_t last = args.num_rows - 1;
    const int64_t ar0 = min(tile.row_start + r0, last), ar1 = min(tile.row_start + r1, last);
    const float *as0 = args.a_scales + ar0 * nkb, *as1 = args.a_scales + ar1 * nkb;
    int blk = (n_cta + (GATEUP ? 64 : 128) * cw) / 128;
    if (blk > args.nblk_b - 1) blk = args.nblk_b - 1;
    const int64_t boff = (int64_t)e * args.b_scale_stride + (int64_t)blk * nkb;
    const float *bs0 = args.b0_scales + boff;
    const float *bs1 = GATEUP ? args.b1_scales + boff : bs0;

    float acc[64], sum[64];
#pragma unroll
    for (int i = 0; i < 64; ++i) sum[i] = 0.f;

    /* The loop's non-tensor path decides the speed (two consumers overlap
     * one's promotion with the other's wgmma only while it is short, +9% on
     * an H200 over computing addresses in the loop): barrier and descriptor
     * addresses are registers advanced per stage, each k-block's four scales
     * are loaded one k-block ahead. */
    const uint32_t full_at = moep__smem_addr(full), empty_at = moep__smem_addr(empty);
    const uint64_t da0 = moep__wgmma_desc(smem);
    const uint64_t db_off = (uint64_t)((MOEP__G_A_BYTES + cw * 16384) >> 4);
    float na0 = __ldg(as0), na1 = __ldg(as1), nb0 = __ldg(bs0), nb1 = __ldg(bs1);
    int s = 0;
    uint32_t phase = 0;
    for (int kb = 0; kb < nkb; ++kb) {
        const float sa0 = na0, sa1 = na1, sb0 = nb0, sb1 = nb1;
        if (kb + 1 < nkb) {
            na0 = __ldg(as0 + kb + 1);
            na1 = __ldg(as1 + kb + 1);
            nb0 = __ldg(bs0 + kb + 1);
            nb1 = __ldg(bs1 + kb + 1);
        }
        moep__mbar_wait_at(full_at + 8 * s, phase);
        moep__fp8_issue(acc, da0, db_off, s);
        moep__wgmma_wait0();
        moep__mbar_arrive_at(empty_at + 8 * s);
        if (++s == MOEP__G_STAGES) {
            s = 0;
            phase ^= 1;
        }
        moep__fp8_promote<GATEUP>(sum, acc, sa0, sa1, sb0, sb1);
    }

    const int64_t row0 = tile.row_start + r0, row1 = tile.row_start + r1;
    const bool ok0 = row0 < tile.row_end, ok1 = row1 < tile.row_end;
    if (GATEUP) {
        const int I = args.n_out;
        float am0 = 0.f, am1 = 0.f;
        moep__fp8_swiglu64(sum, n_cta + 64 * cw, q, I, am0, am1);
        moep__quad_max2(am0, am1);
        if (q == 0) {
            red[cw * 64 + r0] = am0;
            red[cw * 64 + r1] = am1;
        }
        moep__named_bar(1, 256);
        am0 = fmaxf(red[r0], red[64 + r0]);
        am1 = fmaxf(red[r1], red[64 + r1]);
        const float s0 = moep__e4m3_scale(am0), s1 = moep__e4m3_scale(am1);
        const float inv0 = __frcp_rn(s0), inv1 = __frcp_rn(s1);
#pragma unroll
        for (int c = 0; c < 8; ++c) {
            const int col = n_cta + 64 * cw + 8 * c + 2 * q;
            if (col < I) moep__fp8_store_h2(args.hq, I, row0, row1, ok0, ok1, col, sum + 4 * c, inv0, inv1);
        }
        if (cw == 0 && q == 0) {
            if (ok0) args.hs[row0 * args.nkb_out + n_cta / 128] = s0;
            if (ok1) args.hs[row1 * args.nkb_out + n_cta / 128] = s1;
        }
    } else {
        const int H = args.n_out;
#pragma unroll
        for (int c = 0; c < 16; ++c) {
            const int col = n_cta + 128 * cw + 8 * c + 2 * q;
            if (col < H) moep__fp8_store_y2(args.y, H, row0, row1, ok0, ok1, col, sum + 4 * c);
        }
    }
}

#endif
