/* The 128-row FP8 GEMM kernel (see fp8_gemm.cu for when it runs). Included by fp8_gemm.cu only. */
#ifndef MOEP_FP8_GEMM128_CUH
#define MOEP_FP8_GEMM128_CUH

#include "fp8_gemm_common.cuh"

/*
 * BLOCK_M = 128 variant: a CTA takes two 64-row tiles of the table (2y, 2y+1).
 * Consumer warpgroup c owns tile c's 64 rows and all 256 B rows of the CTA,
 * as two m64n128 halves per k-block into one accumulator (acc 64 + sum 128
 * f32 per thread; setmaxnreg 24 / 240 re-splits the launch's 384 x 168
 * registers). B bytes are shared by 128 token rows, so a stage (16 KB A +
 * 32 KB B) feeds twice the FLOPs of the 64-row kernel's 40 KB (H200, prefill
 * 8 x 4096 tokens, with the staged epilogue: 960-985 TFLOP/s vs 741-764).
 * -DMOEP__FP8_PERSIST=1: one CTA per SM walking the items (measured neutral);
 * =N > 1: at most N CTAs (tests: several items per CTA).
 * Two tiles of different experts run one after the other (one warpgroup
 * idles); the B layout per half is the 64-row kernel's per consumer.
 * GATEUP: a warpgroup holds all 128 h columns of its rows, the amax stays in
 * the warp (no cross-warpgroup reduction).
 */
#ifndef MOEP__H_STAGES
#define MOEP__H_STAGES 4
#endif
#define MOEP__H_A_BYTES (128 * 128)
#define MOEP__H_STAGE_BYTES (MOEP__H_A_BYTES + 4 * 64 * 128)
#define MOEP__H_HP (128 + 16) /* staged h row pitch: rows in distinct banks */
#define MOEP__H_YP (512 + 16) /* staged y row pitch */
#ifndef MOEP__FP8_M64
#define MOEP__FP8_M64 0
#endif
#ifndef MOEP__FP8_STAGE_EPI
#define MOEP__FP8_STAGE_EPI 1
#endif
#ifndef MOEP__FP8_PERSIST
#define MOEP__FP8_PERSIST 0
#endif
/* Stage release: one arrival per consumer warp (after its wgmma wait), not per thread. */
#ifndef MOEP__FP8_WARP_ARRIVE
#define MOEP__FP8_WARP_ARRIVE 1
#endif
/* Staged epilogue rows: in the ring when one item per CTA (the ring is then idle), else
 * in their own region after the barriers (persistent: needs MOEP__H_STAGES 3). */
#if MOEP__FP8_PERSIST
#define MOEP__H_EPI_AT (MOEP__H_STAGES * MOEP__H_STAGE_BYTES + 1024)
#define MOEP__H_EPI_BYTES (2 * 64 * MOEP__H_YP)
#else
#define MOEP__H_EPI_AT 0
#define MOEP__H_EPI_BYTES 0
#endif
#define MOEP__H_SMEM (MOEP__H_STAGES * MOEP__H_STAGE_BYTES + 1024 + MOEP__H_EPI_BYTES + 1024)

/* One half (4 wgmma, K = 128) at descriptor offsets da / db, committed and waited. */
__device__ __forceinline__ void moep__fp8_half(float (&acc)[64], uint64_t da, uint64_t db) {
    moep__wgmma_fence();
#pragma unroll
    for (int kk = 0; kk < 4; ++kk) moep__wgmma_m64n128k32_e4m3(acc, da + 2 * kk, db + 2 * kk, kk > 0);
    moep__wgmma_commit();
    moep__wgmma_wait0();
}

template <bool GATEUP, int HALF>
__device__ __forceinline__ void moep__fp8_promote_h(float (&sum)[128], const float (&acc)[64], float sa0,
                                                    float sa1, float sb0, float sb1) {
    const float f00 = sa0 * sb0, f10 = sa1 * sb0, f01 = sa0 * sb1, f11 = sa1 * sb1;
#pragma unroll
    for (int c = 0; c < 16; ++c) {
        const float fr0 = (GATEUP && c >= 8) ? f01 : f00;
        const float fr1 = (GATEUP && c >= 8) ? f11 : f10;
        sum[64 * HALF + 4 * c + 0] += acc[4 * c + 0] * fr0;
        sum[64 * HALF + 4 * c + 1] += acc[4 * c + 1] * fr0;
        sum[64 * HALF + 4 * c + 2] += acc[4 * c + 2] * fr1;
        sum[64 * HALF + 4 * c + 3] += acc[4 * c + 3] * fr1;
    }
}

/* The jobs of one pair of tiles: one when both share an expert, else each valid tile
 * alone (m: mask of the warpgroups that compute). */
struct moep__fp8_jobs {
    moep__ffn_tile_t t0, t1;
    int n, m0, e0, m1, e1;
};

__device__ __forceinline__ moep__fp8_jobs moep__fp8_pair(const moep__ffn_tile_t *tiles,
                                                        int32_t max_tiles, int pair) {
    moep__fp8_jobs J;
    const int ti = 2 * pair;
    J.t0 = tiles[ti];
    J.t1 = J.t0;
    J.t1.expert = -1;
    if (ti + 1 < max_tiles) J.t1 = tiles[ti + 1];
    J.n = 0, J.m0 = 0, J.e0 = 0, J.m1 = 0, J.e1 = 0;
    if (J.t0.expert >= 0 && J.t1.expert == J.t0.expert) {
        J.n = 1, J.m0 = 3, J.e0 = J.t0.expert;
    } else {
        if (J.t0.expert >= 0) J.m0 = 1, J.e0 = J.t0.expert, J.n = 1;
        if (J.t1.expert >= 0) {
            if (J.n) J.m1 = 2, J.e1 = J.t1.expert;
            else J.m0 = 2, J.e0 = J.t1.expert;
            ++J.n;
        }
    }
    return J;
}

/* Work item w: n block w % nblk_n, tile pair w / nblk_n; the grid walks the items. */
template <bool GATEUP>
__global__ void __launch_bounds__(384, 1)
    moep__fp8_gemm128_kernel(const __grid_constant__ CUtensorMap map_a,
                             const __grid_constant__ CUtensorMap map_b0,
                             const __grid_constant__ CUtensorMap map_b1,
                             const moep__fp8_gemm_args_t args, const int32_t max_tiles,
                             const int32_t nblk_n, const int32_t items) {
    extern __shared__ uint8_t smem_raw[];
    uint8_t *smem = (uint8_t *)(((uintptr_t)smem_raw + 1023) & ~(uintptr_t)1023);
    uint64_t *full = (uint64_t *)(smem + MOEP__H_STAGES * MOEP__H_STAGE_BYTES);
    uint64_t *empty = full + MOEP__H_STAGES;
    const int nkb = args.nkb;

    if (threadIdx.x == 0) {
        for (int s = 0; s < MOEP__H_STAGES; ++s) {
            moep__mbar_init(&full[s], 1);
            moep__mbar_init(&empty[s], MOEP__FP8_WARP_ARRIVE ? 8 : 256);
        }
        moep__fence_barrier_init();
    }
    __syncthreads();

    if (threadIdx.x < 128) { /* producer */
        moep__setmaxnreg_dec<24>();
        if (threadIdx.x == 0) {
            moep__tma_prefetch_desc(&map_a);
            moep__tma_prefetch_desc(&map_b0);
            if (GATEUP) moep__tma_prefetch_desc(&map_b1);
            int it = 0;
            for (int w = blockIdx.x; w < items; w += gridDim.x) {
                const moep__fp8_jobs J = moep__fp8_pair(args.tiles, max_tiles, w / nblk_n);
                const int n_cta = (w % nblk_n) * (GATEUP ? 128 : 256);
                for (int j = 0; j < J.n; ++j) {
                    const int m = j ? J.m1 : J.m0, e = j ? J.e1 : J.e0;
                    const int32_t brow = e * args.rows_b + n_cta;
                    const uint32_t bytes = 4 * 64 * 128 + ((m & 1) ? 8192 : 0) + ((m & 2) ? 8192 : 0);
                    for (int kb = 0; kb < nkb; ++kb, ++it) {
                        const int s = it % MOEP__H_STAGES;
                        moep__mbar_wait(&empty[s], ((it / MOEP__H_STAGES) & 1) ^ 1);
                        moep__mbar_expect_tx(&full[s], bytes);
                        uint8_t *st = smem + s * MOEP__H_STAGE_BYTES;
                        const int32_t k = kb * 128;
                        const int32_t a0 = (int32_t)J.t0.row_start, a1 = (int32_t)J.t1.row_start;
                        if (m & 1) moep__tma_load_2d(st, &map_a, &full[s], k, a0);
                        if (m & 2) moep__tma_load_2d(st + 8192, &map_a, &full[s], k, a1);
                        moep__fp8_load_b<GATEUP>(st + MOEP__H_A_BYTES, &map_b0, &map_b1, &full[s], k, brow);
                    }
                }
            }
        }
        return;
    }

    moep__setmaxnreg_inc<240>();
    const int ct = threadIdx.x - 128;
    const int cw = ct >> 7;
    const int wi = (ct >> 5) & 3;
    const int lane = ct & 31, q = lane & 3, g = lane >> 2;
    const int r0 = 16 * wi + g, r1 = r0 + 8;
    const int64_t last = args.num_rows - 1;
    const uint32_t full_at = moep__smem_addr(full), empty_at = moep__smem_addr(empty);
    const uint64_t da0 = moep__wgmma_desc(smem) + (uint64_t)((cw * 8192) >> 4);
    const uint64_t db0 = moep__wgmma_desc(smem) + (uint64_t)(MOEP__H_A_BYTES >> 4);
    uint32_t soff = 0; /* stage offset in descriptor units */
    int s = 0;
    uint32_t phase = 0;

    for (int w = blockIdx.x; w < items; w += gridDim.x) {
        const moep__fp8_jobs J = moep__fp8_pair(args.tiles, max_tiles, w / nblk_n);
        const moep__ffn_tile_t tile = cw ? J.t1 : J.t0;
        for (int j = 0; j < J.n; ++j) {
            const int m = j ? J.m1 : J.m0, e = j ? J.e1 : J.e0;
            if (!((m >> cw) & 1)) { /* idle warpgroup: release the stages it does not read */
                for (int kb = 0; kb < nkb; ++kb) {
                    moep__mbar_wait_at(full_at + 8 * s, phase);
                    if (!MOEP__FP8_WARP_ARRIVE || lane == 0) moep__mbar_arrive_at(empty_at + 8 * s);
                    if (++s == MOEP__H_STAGES) s = 0, phase ^= 1, soff = 0;
                    else soff += MOEP__H_STAGE_BYTES >> 4;
                }
                continue;
            }
            /* Scale indices in 32 bits, epilogue values re-read after the loop: register room. */
            const uint32_t ia0 = (uint32_t)(min(tile.row_start + r0, last) * nkb);
            const uint32_t ia1 = (uint32_t)(min(tile.row_start + r1, last) * nkb);
            /* GATEUP: both halves use block n_cta / 128 of W1 (x) and W3 (y); DOWN: half h uses
             * block n_cta / 128 + h. */
            int blkx = (w % nblk_n) * (GATEUP ? 1 : 2), blky = GATEUP ? blkx : blkx + 1;
            if (blkx > args.nblk_b - 1) blkx = args.nblk_b - 1;
            if (blky > args.nblk_b - 1) blky = args.nblk_b - 1;
            const uint32_t eoff = (uint32_t)((int64_t)e * args.b_scale_stride);
            const uint32_t ibx = eoff + (uint32_t)(blkx * nkb), iby = eoff + (uint32_t)(blky * nkb);
            const float *const bsy = GATEUP ? args.b1_scales : args.b0_scales;

            float acc[64], sum[128];
#pragma unroll
            for (int i = 0; i < 128; ++i) sum[i] = 0.f;
            float na0 = __ldg(args.a_scales + ia0), na1 = __ldg(args.a_scales + ia1);
            float nbx = __ldg(args.b0_scales + ibx), nby = __ldg(bsy + iby);
            for (int kb = 0; kb < nkb; ++kb) {
                const float sa0 = na0, sa1 = na1, sbx = nbx, sby = nby;
                if (kb + 1 < nkb) {
                    na0 = __ldg(args.a_scales + ia0 + kb + 1);
                    na1 = __ldg(args.a_scales + ia1 + kb + 1);
                    nbx = __ldg(args.b0_scales + ibx + kb + 1);
                    nby = __ldg(bsy + iby + kb + 1);
                }
                moep__mbar_wait_at(full_at + 8 * s, phase);
                moep__fp8_half(acc, da0 + soff, db0 + soff);
                if (GATEUP) moep__fp8_promote_h<true, 0>(sum, acc, sa0, sa1, sbx, sby);
                else moep__fp8_promote_h<false, 0>(sum, acc, sa0, sa1, sbx, sbx);
                moep__fp8_half(acc, da0 + soff, db0 + soff + (16384 >> 4));
                if (!MOEP__FP8_WARP_ARRIVE || lane == 0) moep__mbar_arrive_at(empty_at + 8 * s);
                if (++s == MOEP__H_STAGES) s = 0, phase ^= 1, soff = 0;
                else soff += MOEP__H_STAGE_BYTES >> 4;
                if (GATEUP) moep__fp8_promote_h<true, 1>(sum, acc, sa0, sa1, sbx, sby);
                else moep__fp8_promote_h<false, 1>(sum, acc, sa0, sa1, sby, sby);
            }

            const moep__ffn_tile_t tl = args.tiles[2 * (w / nblk_n) + cw];
            const int n_cta = (w % nblk_n) * (GATEUP ? 128 : 256);
            const int64_t row0 = tl.row_start + r0, row1 = tl.row_start + r1;
            const bool ok0 = row0 < tl.row_end, ok1 = row1 < tl.row_end;
            /* One item per CTA and both warpgroups in this job: after the mainloop the ring
             * is free (no loads left), so the epilogue may stage rows in it. */
            const bool stage =
                MOEP__FP8_STAGE_EPI && (MOEP__FP8_PERSIST || (gridDim.x >= items && m == 3));
            if (GATEUP) {
                const int I = args.n_out;
                float am0 = 0.f, am1 = 0.f;
#pragma unroll
                for (int h = 0; h < 2; ++h) moep__fp8_swiglu64(sum + 64 * h, n_cta + 64 * h, q, I, am0, am1);
                moep__quad_max2(am0, am1);
                const float s0 = moep__e4m3_scale(am0), s1 = moep__e4m3_scale(am1);
                const float inv0 = __frcp_rn(s0), inv1 = __frcp_rn(s1);
                if (stage && ((I & 15) | ((uintptr_t)args.hq & 15)) == 0) {
                    /* Rows of 128 FP8 through shared memory: 16-byte row-contiguous stores. */
                    uint8_t *sw = smem + MOEP__H_EPI_AT + cw * (64 * MOEP__H_HP);
                    if (MOEP__FP8_PERSIST) moep__named_bar(2 + cw, 128); /* last item's reads */
                    else moep__named_bar(1, 256); /* both warpgroups are done with the ring */
#pragma unroll
                    for (int h = 0; h < 2; ++h) {
#pragma unroll
                        for (int c = 0; c < 8; ++c) {
                            const float *sh = sum + 64 * h;
                            const int cl = 64 * h + 8 * c + 2 * q;
                            *(uint16_t *)(sw + r0 * MOEP__H_HP + cl) =
                                (uint16_t)moep__e4m3x2_scaled(sh[4 * c], sh[4 * c + 1], inv0);
                            *(uint16_t *)(sw + r1 * MOEP__H_HP + cl) =
                                (uint16_t)moep__e4m3x2_scaled(sh[4 * c + 2], sh[4 * c + 3], inv1);
                        }
                    }
                    moep__named_bar(2 + cw, 128);
#pragma unroll
                    for (int i = 0; i < 4; ++i) {
                        const int idx = 128 * i + (ct & 127), row = idx >> 3, ch = idx & 7;
                        const int col = n_cta + 16 * ch;
                        if (tl.row_start + row < tl.row_end && col < I)
                            *(uint4 *)(args.hq + (tl.row_start + row) * I + col) =
                                *(const uint4 *)(sw + row * MOEP__H_HP + 16 * ch);
                    }
                } else {
#pragma unroll
                    for (int h = 0; h < 2; ++h) {
#pragma unroll
                        for (int c = 0; c < 8; ++c) {
                            const float *sh = sum + 64 * h;
                            const int col = n_cta + 64 * h + 8 * c + 2 * q;
                            if (col < I)
                                moep__fp8_store_h2(args.hq, I, row0, row1, ok0, ok1, col, sh + 4 * c, inv0, inv1);
                        }
                    }
                }
                if (q == 0) {
                    if (ok0) args.hs[row0 * args.nkb_out + n_cta / 128] = s0;
                    if (ok1) args.hs[row1 * args.nkb_out + n_cta / 128] = s1;
                }
            } else {
                const int H = args.n_out;
                if (stage && ((H & 7) | ((uintptr_t)args.y & 15)) == 0) {
                    /* Rows of 256 bf16 through shared memory: 16-byte row-contiguous stores. */
                    uint8_t *sw = smem + MOEP__H_EPI_AT + cw * (64 * MOEP__H_YP);
                    if (MOEP__FP8_PERSIST) moep__named_bar(2 + cw, 128); /* last item's reads */
                    else moep__named_bar(1, 256); /* both warpgroups are done with the ring */
#pragma unroll
                    for (int c = 0; c < 32; ++c) {
                        const __nv_bfloat162 v0 = __floats2bfloat162_rn(sum[4 * c], sum[4 * c + 1]);
                        const __nv_bfloat162 v1 = __floats2bfloat162_rn(sum[4 * c + 2], sum[4 * c + 3]);
                        *(__nv_bfloat162 *)(sw + r0 * MOEP__H_YP + 16 * c + 4 * q) = v0;
                        *(__nv_bfloat162 *)(sw + r1 * MOEP__H_YP + 16 * c + 4 * q) = v1;
                    }
                    moep__named_bar(2 + cw, 128);
#pragma unroll 4
                    for (int i = 0; i < 16; ++i) {
                        const int idx = 128 * i + (ct & 127), row = idx >> 5, ch = idx & 31;
                        const int col = n_cta + 8 * ch;
                        if (tl.row_start + row < tl.row_end && col < H)
                            *(uint4 *)(args.y + (tl.row_start + row) * H + col) =
                                *(const uint4 *)(sw + row * MOEP__H_YP + 16 * ch);
                    }
                } else {
#pragma unroll
                    for (int c = 0; c < 32; ++c) {
                        /* half c / 16: columns 128 * half + 8 * (c % 16) */
                        const int col = n_cta + 8 * c + 2 * q;
                        if (col < H) moep__fp8_store_y2(args.y, H, row0, row1, ok0, ok1, col, sum + 4 * c);
                    }
                }
            }
        }
    }
}

#endif
