/*
 * Blocked x made by the gate/up CTAs of a tile themselves, instead of by
 * moep__fp4_prep before gate/up (fp4_ffn.cu picks this where every gate/up
 * CTA fits on the SMs at once). H200, 8 experts x 64 tokens: the serial prep
 * cost 5-7 us of 108-111; a prep on the SMs gate/up leaves free (4 CTAs) was
 * far too slow (215 us), and flags checked before each chunk's copy (6
 * acquire loads in a row) delayed every refill (130 us).
 *
 * Each CTA converts segments blockIdx.x, blockIdx.x + gridDim.x, ... of its
 * tile (its weight loads are already in flight), flags them, and waits until
 * the whole tile is flagged: then no later copy checks anything. Flags:
 * moep__xflag (epoch-tagged; the down kernel advances the epoch). Should a
 * CTA of the tile not run for long (its SM held by other work), the waiter
 * converts that segment itself after ~4 ms: progress never depends on the
 * CTAs being resident together, and the values written are the same.
 */
#ifndef MOEP_FP4_XSHARE_CUH
#define MOEP_FP4_XSHARE_CUH

#include "fp4_common.cuh"
#include "sm90_ptx.cuh"

#ifndef MOEP__F4_XSHARE_SPIN
#define MOEP__F4_XSHARE_SPIN (1 << 16) /* polls (64 ns sleeps) before converting a segment here */
#endif
#ifndef MOEP__F4_XBLK_ITEMS
#define MOEP__F4_XBLK_ITEMS 8 /* x loads in flight per thread while converting */
#endif

template <int XIN, int THREADS>
__device__ __forceinline__ void moep__fp4_xshare(const moep__fp4_args_t &a, const moep__ffn_tile_t &tile, int T) {
    const int nseg = (a.K + 127) >> 7, per_seg = T * 16; /* items (token, group of 8 channels) per segment */
    const int z = (int)blockIdx.z, nx = (int)gridDim.x, mine = (nseg - (int)blockIdx.x + nx - 1) / nx;
    uint8_t *xt = (uint8_t *)moep__xblk_tile(a.xb, tile.row_start, a.K);
    uint64_t *flags = a.xsync + 1 + (int64_t)z * nseg;
    const uint64_t epoch = *(volatile const uint64_t *)a.xsync;
    constexpr int XI = MOEP__F4_XBLK_ITEMS;
    for (int base = 0; base < mine * per_seg; base += THREADS * XI)
        moep__xblk_items<XIN, XI>(a, tile.row_start, xt, T, base + threadIdx.x, THREADS, [&](int it, int &n, int &G) {
            const int j = it / per_seg, r = it - j * per_seg;
            n = j < mine ? r >> 4 : T;
            G = ((int)blockIdx.x + j * nx) * 16 + (r & 15);
        });
    __syncthreads(); /* the CTA's stores, then thread 0's fence makes them visible GPU-wide */
    if (threadIdx.x == 0) {
        __threadfence();
        for (int j = 0; j < mine; ++j) {
            const int sg = (int)blockIdx.x + j * nx;
            moep__st_release_u64(flags + sg, moep__xflag(epoch, z, sg));
        }
    }
    if (threadIdx.x < 32) { /* warp 0 polls the tile's flags, a lane per segment */
        const int lane = threadIdx.x;
        for (int sg0 = 0; sg0 < nseg; sg0 += 32) {
            const int sg = sg0 + lane;
            const uint64_t want = moep__xflag(epoch, z, sg);
            bool ok = sg >= nseg;
            for (int spin = 0; !__all_sync(0xFFFFFFFFu, ok); ++spin) {
                if (!ok) ok = moep__ld_relaxed_u64(flags + sg) == want;
                if (!ok && spin >= MOEP__F4_XSHARE_SPIN) { /* the segment's CTA is not running: convert it here */
                    for (int it = 0; it < per_seg; ++it)
                        moep__xblk_items<XIN, 1>(a, tile.row_start, xt, T, it, 0, [&](int i, int &n, int &G) {
                            n = i >> 4;
                            G = sg * 16 + (i & 15);
                        });
                    ok = true;
                }
                if (!ok) __nanosleep(64);
            }
        }
        __threadfence(); /* with the relaxed reads above: acquire */
    }
    __syncthreads();
    moep__fence_proxy_async_global(); /* any thread may copy blocked x next (the copy engine reads it) */
}

#endif /* MOEP_FP4_XSHARE_CUH */
