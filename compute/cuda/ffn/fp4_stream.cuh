/*
 * FP4 decode GEMV with the weights streamed by 1-D TMA bulk copies (sm_90a).
 * Included by fp4_ffn.cu (uses its args, x staging and store helpers).
 *
 * Each warp owns 16 rows (one mma M tile) of one matrix and a private ring of
 * MOEP__F4_NS stages in shared memory; a stage is the warp's 16 rows x
 * MOEP__F4_KC channels: 16 contiguous runs of KC/2 packed bytes (one per
 * row, issued by lanes 0-15) plus the rows' block scales (lanes 16-31, a
 * 16-byte aligned window around each row's KC/32 or KC/16 scale bytes, so
 * any K that is a multiple of 32 works), all completing on the stage's
 * mbarrier. After a warp has used a stage it refills the slot with the stage
 * NS ahead, so up to NS stages per warp are in flight (16 warps x NS x ~4.5 KB
 * per SM) without registers holding them. Rows are placed in pairs with 64
 * bytes of padding so that the 16-byte reads of rows g, g + 1 (one quarter
 * warp) fall into different banks. x is staged as in the register kernel,
 * but with a stride of T tokens (not padded to 8): lanes of tokens >= T
 * read other tokens' values, which only reach output columns that are not
 * stored (the region has 256 bytes of slack for the last ones).
 */
#ifndef MOEP_FP4_STREAM_CUH
#define MOEP_FP4_STREAM_CUH

#include "sm90_ptx.cuh"

#ifndef MOEP__F4_KC
#define MOEP__F4_KC 512 /* channels per stage (multiple of 128) */
#endif
#ifndef MOEP__F4_NS
#define MOEP__F4_NS 2 /* stages per warp ring */
#endif
#ifndef MOEP__F4_NWG
#define MOEP__F4_NWG 16 /* warps per CTA, gate/up (4096 rows: 128 CTAs for 8 experts) */
#endif
#ifndef MOEP__F4_NWD
#define MOEP__F4_NWD 14 /* warps per CTA, down (7168 rows = 32 x 224: 256 CTAs) */
#endif
#ifndef MOEP__F4_TMAP
#define MOEP__F4_TMAP 1 /* weight data by 2-D tensor-map TMA (one copy per 16 x 256 channels) */
#endif
#ifndef MOEP__F4_EVF
#define MOEP__F4_EVF 0 /* L2 evict_first hint on the weight copies */
#endif
#define MOEP__F4_SMEM_MAX (227 * 1024)
#ifndef MOEP__F4_SMEM_DN
#define MOEP__F4_SMEM_DN MOEP__F4_SMEM_MAX /* dynamic shared memory of the down kernel */
#endif
#define MOEP__F4_BAR_BYTES 1024 /* mbarriers: <= 16 warps x 8 stages */
#define MOEP__F4_XSLACK 256

namespace moep_f4s {
constexpr int KC = MOEP__F4_KC, NS = MOEP__F4_NS;
constexpr int RB = KC / 2;        /* packed bytes per row and stage */
constexpr int SBW = KC / 16 + 32; /* scale window per row */
#if MOEP__F4_TMAP
/* data: KC / 256 boxes of 16 rows x 128 bytes, 128-byte swizzle (1024-byte aligned) */
constexpr int NB = KC / 256;
constexpr int DATA_B = NB * 2048;
constexpr int STAGE_B = (DATA_B + 16 * SBW + 1023) & ~1023;
static_assert(KC % 256 == 0, "KC");
#else
constexpr int DATA_B = 8 * (2 * RB + 64); /* 8 row pairs */
constexpr int STAGE_B = (DATA_B + 16 * SBW + 127) & ~127;
#endif
static_assert(KC % 128 == 0 && RB % 128 == 0, "KC");
static_assert(NS >= 1 && NS * 16 * 8 <= MOEP__F4_BAR_BYTES, "NS");
__host__ __device__ constexpr int row_off(int r) { return (r >> 1) * (2 * RB + 64) + (r & 1) * (RB + 64); }
__host__ __device__ constexpr int ring_bytes(int nw) { return nw * NS * STAGE_B; }
} // namespace moep_f4s

__device__ __forceinline__ void moep__bulk_g2s(uint32_t dst, const void *src, uint32_t bytes,
                                               uint32_t bar, uint64_t pol) {
#if MOEP__F4_EVF
    asm volatile(
        "cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes.L2::cache_hint"
        " [%0], [%1], %2, [%3], %4;" ::"r"(dst),
        "l"(src), "r"(bytes), "r"(bar), "l"(pol)
        : "memory");
#else
    (void)pol;
    asm volatile(
        "cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes"
        " [%0], [%1], %2, [%3];" ::"r"(dst),
        "l"(src), "r"(bytes), "r"(bar)
        : "memory");
#endif
}

/* Kernel parameters: the GEMV arguments plus the tensor maps of the two matrices. */
typedef struct moep__fp4_sargs {
    moep__fp4_args_t a;
    CUtensorMap dmap[2]; /* packed data [E * rows, K / 2] bytes, box 128 x 16, 128-byte swizzle */
    CUtensorMap smap[2]; /* scales [E * rows, K / 32 or K / 16], box KC / 32 or KC / 16 x 16 */
    int32_t use_smap;    /* scales by smap (row stride a multiple of 16 bytes), else windows */
} moep__fp4_sargs_t;

template <bool GATEUP, bool NV, int XIN, int NT, int NW>
__device__ __forceinline__ void moep__fp4_sbody(const moep__fp4_sargs_t &sa,
                                                const moep__ffn_tile_t &tile, int T,
                                                uint8_t *smem) {
    using namespace moep_f4s;
    const moep__fp4_args_t &a = sa.a;
    const int e = tile.expert;
    const int ntn = (T + 7) >> 3;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, q = lane & 3;
    const int K = a.K, rows = a.rows;
    const int vrows = GATEUP ? 2 * rows : rows;
    const int r0 = blockIdx.x * (16 * NW) + warp * 16;
    const bool wvalid = r0 < vrows;
    const int r0c = wvalid ? r0 : vrows - 16;
    const int m = GATEUP && r0c >= rows ? 1 : 0;
    const int rr = r0c - m * rows;
    const int32_t k0 = blockIdx.y * a.ks;
    const int32_t k1 = min(K, k0 + a.ks);
    const int nseg = (k1 - k0 + 127) >> 7;
    const int nst = (k1 - k0 + KC - 1) / KC;
    const int64_t kb = K / 2, ksc = NV ? K / 16 : K / 32;
    constexpr int SBL = NV ? KC / 16 : KC / 32; /* scale bytes per row and full stage */
    const int64_t grow = (int64_t)e * rows + rr;

    const uint32_t bar0 = moep__smem_addr(smem) + warp * NS * 8;
    const uint32_t ring0 = moep__smem_addr(smem) + MOEP__F4_BAR_BYTES + warp * NS * STAGE_B;
    uint2 *xsm = (uint2 *)(smem + MOEP__F4_BAR_BYTES + ring_bytes(NW));

    /* this lane's copy: lanes 0-15 row data, 16-31 row scale windows */
    const int cr = lane & 15;
    const uint8_t *csrc = lane < 16 ? (m ? a.wd[1] : a.wd[0]) + (grow + cr) * kb + (k0 >> 1)
                                    : (m ? a.ws[1] : a.ws[0]) + (grow + cr) * ksc +
                                          (NV ? (k0 >> 4) : (k0 >> 5));
    const uint32_t cdst = lane < 16 ? (uint32_t)row_off(cr) : (uint32_t)(DATA_B + cr * SBW);
    uint64_t pol = 0;
#if MOEP__F4_EVF
    asm volatile("createpolicy.fractional.L2::evict_first.b64 %0, 1.0;" : "=l"(pol));
#endif
#if MOEP__F4_TMAP
    const bool smap = sa.use_smap != 0;
    const CUtensorMap *dm = &sa.dmap[m], *smp = &sa.smap[m];
#else
    const bool smap = false;
#endif
    auto issue = [&](int st) {
        const int32_t c = min(KC, k1 - k0 - st * KC);
        const uint8_t *src = NULL;
        uint32_t bytes = 0;
        if (!MOEP__F4_TMAP && lane < 16) {
            src = csrc + st * RB;
            bytes = (uint32_t)c >> 1;
        } else if (lane >= 16 && !smap) {
            const uintptr_t s = (uintptr_t)(csrc + st * SBL);
            src = (const uint8_t *)(s & ~(uintptr_t)15);
            bytes = ((uint32_t)(s & 15) + (uint32_t)(NV ? c >> 4 : c >> 5) + 15) & ~15u;
        }
        uint32_t tot = __reduce_add_sync(0xFFFFFFFFu, bytes);
#if MOEP__F4_TMAP
        tot += DATA_B + (smap ? 16 * SBL : 0); /* boxes count in full (zero fill past K) */
#endif
        const uint32_t bar = bar0 + (st % NS) * 8;
        const uint32_t dst = ring0 + (st % NS) * STAGE_B;
        if (lane == 0)
            asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(bar),
                         "r"(tot)
                         : "memory");
        __syncwarp();
        if (bytes) moep__bulk_g2s(dst + cdst, src, bytes, bar, pol);
#if MOEP__F4_TMAP
        if (lane < NB)
            asm volatile(
                "cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes"
                " [%0], [%1, {%3, %4}], [%2];" ::"r"(dst + lane * 2048),
                "l"((uint64_t)dm), "r"(bar), "r"((int32_t)((k0 + st * KC) >> 1) + lane * 128),
                "r"((int32_t)grow)
                : "memory");
        if (smap && lane == NB)
            asm volatile(
                "cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes"
                " [%0], [%1, {%3, %4}], [%2];" ::"r"(dst + DATA_B),
                "l"((uint64_t)smp), "r"(bar), "r"((int32_t)((k0 + st * KC) / (NV ? 16 : 32))),
                "r"((int32_t)grow)
                : "memory");
#endif
    };

    if (lane < NS) moep__mbar_init((uint64_t *)(smem + warp * NS * 8 + lane * 8), 1);
    asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
    __syncwarp();
    for (int st = 0; st < NS && st < nst; ++st) issue(st);

    if (!GATEUP && MOEP__F4_PDL) asm volatile("griddepcontrol.wait;" ::: "memory");

    float acc[NT][4];
#pragma unroll
    for (int nt = 0; nt < NT; ++nt)
#pragma unroll
        for (int i = 0; i < 4; ++i) acc[nt][i] = 0.f;

    /* x: channels per staged chunk, stride T tokens */
    const int kc = max(128, (a.xsb / (T * 2)) & ~127);
    const int segc = kc >> 7;
    int next_stage = 0, cbase = 0;
    /* the lane's scale rows: byte offset of the window start */
    /* the lane's rows: logical g, g + 8 of the mma are physical rows pg, pg + 8; with the
     * swizzled boxes pg = (g >> 1) + 4 (g & 1), so that a quarter warp (g = 2p, 2p + 1)
     * reads two rows whose 16-byte chunks the swizzle puts in different banks */
    const int pg = MOEP__F4_TMAP ? (g >> 1) + 4 * (g & 1) : g;
    const uintptr_t sbase_g = (uintptr_t)((m ? a.ws[1] : a.ws[0]) + (grow + pg) * ksc +
                                          (NV ? (k0 >> 4) : (k0 >> 5)));
    const uintptr_t sbase_h = sbase_g + 8 * ksc;
#if MOEP__F4_TMAP
    const uint32_t wo0 = pg * 128 + (((uint32_t)q ^ pg) << 4),
                   wo1 = pg * 128 + (((uint32_t)(4 + q) ^ pg) << 4);
#else
    const uint32_t wo0 = (uint32_t)row_off(g) + q * 16, wo1 = (uint32_t)row_off(g + 8) + q * 16;
#endif
    const int32_t qlim = k1 - k0 - 32 * q;

    for (int st = 0; st < nst; ++st) {
        const uint8_t *slot = smem + MOEP__F4_BAR_BYTES + (warp * NS + st % NS) * STAGE_B;
        moep__mbar_wait_at(bar0 + (st % NS) * 8, (uint32_t)(st / NS) & 1);
        const uint8_t *s0p, *s1p;
        if (smap) {
            s0p = slot + DATA_B + pg * SBL + (NV ? 2 * q : q);
            s1p = s0p + 8 * SBL;
        } else {
            s0p = slot + DATA_B + pg * SBW + (uint32_t)((sbase_g + st * SBL) & 15) + (NV ? 2 * q : q);
            s1p = slot + DATA_B + (pg + 8) * SBW + (uint32_t)((sbase_h + st * SBL) & 15) +
                  (NV ? 2 * q : q);
        }
#pragma unroll
        for (int sl = 0; sl < KC / 128; ++sl) {
            const int seg = st * (KC / 128) + sl;
            if (seg < nseg) {
                if (seg == next_stage) {
                    __syncthreads();
                    const int32_t ks = k0 + seg * 128;
                    moep__stage_x<XIN>(a, tile.row_start, T, T, ks, min(kc, k1 - ks), k1, xsm);
                    __syncthreads();
                    cbase = seg;
                    next_stage += segc;
                }
                uint4 w[2];
                uint32_t sc[2];
                if (seg * 128 < qlim) {
#if MOEP__F4_TMAP
                    const uint8_t *wp = slot + (sl >> 1) * 2048 + (sl & 1 ? wo1 : wo0);
                    w[0] = *(const uint4 *)wp;
                    w[1] = *(const uint4 *)(wp + 1024);
#else
                    w[0] = *(const uint4 *)(slot + wo0 + sl * 64);
                    w[1] = *(const uint4 *)(slot + wo1 + sl * 64);
#endif
                    if (NV) {
                        sc[0] = *(const uint16_t *)(s0p + sl * 8);
                        sc[1] = *(const uint16_t *)(s1p + sl * 8);
                    } else {
                        sc[0] = s0p[sl * 4];
                        sc[1] = s1p[sl * 4];
                    }
                } else {
                    w[0] = w[1] = make_uint4(0, 0, 0, 0);
                    sc[0] = sc[1] = NV ? 0u : 127u;
                }
                const uint2 *xb = xsm + (seg - cbase) * 8 * T * 4 + g * 4 + q;
                moep__fp4_seg<NV, NT>(acc, w, sc, xb, T, ntn);
            }
        }
        __syncwarp();
        if (st + NS < nst) issue(st + NS);
    }

    if (wvalid) moep__fp4_store<GATEUP, NV, NT>(a, tile, T, acc, r0, MOEP__F4_TMAP);
}

template <bool GATEUP, bool NV, int XIN, int NW>
__global__ void __launch_bounds__(32 * NW, NW <= 8 ? 2 : 1)
    moep__fp4_skernel(const __grid_constant__ moep__fp4_sargs_t a) {
    extern __shared__ __align__(1024) uint8_t f4raw[];
    /* 1024-byte alignment for the swizzled boxes (the host adds 1 KB) */
    uint8_t *f4smem = f4raw + ((1024u - (moep__smem_addr(f4raw) & 1023u)) & 1023u);
    const moep__ffn_tile_t tile = a.a.tiles[blockIdx.z];
    if (tile.expert < 0) return;
    const int64_t rem = tile.row_end - tile.row_start;
    const int T = rem < 64 ? (int)rem : 64;
    if (T <= 8)
        moep__fp4_sbody<GATEUP, NV, XIN, 1, NW>(a, tile, T, f4smem);
    else if (T <= 16)
        moep__fp4_sbody<GATEUP, NV, XIN, 2, NW>(a, tile, T, f4smem);
    else if (T <= 32)
        moep__fp4_sbody<GATEUP, NV, XIN, 4, NW>(a, tile, T, f4smem);
    else
        moep__fp4_sbody<GATEUP, NV, XIN, 8, NW>(a, tile, T, f4smem);
}

#endif /* MOEP_FP4_STREAM_CUH */
