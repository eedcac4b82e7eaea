/*
 * FP4-weight expert FFN (MXFP4 / NVFP4), made for decode: weight-byte bound.
 *
 * Two kernels, each with two bodies chosen per CTA by the tile's token count
 * T: fp4_mma.cuh (T <= 16, warp-level mma) and fp4_wgmma.cuh (more tokens,
 * warpgroup wgmma); shared parts in fp4_common.cuh. Tiles come from the tile
 * map (contiguous rows) or, for masked rows, from the counts in the kernel.
 *  1. gate/up: a warp owns 8 rows i of I and takes W1's rows i as mma rows
 *     0-7 and W3's as rows 8-15, over all of K. CTA = 16 warps (128 rows of I).
 *     Per 128-wide K segment a lane loads 16 packed bytes (32 codes, one MX
 *     block / two NV blocks) of its two rows (ld.global.nc, L1::no_allocate),
 *     decodes them to f16 by bit placement times the block scale (exact,
 *     fp4_decode.cuh) and feeds the tensor cores (weights = A, tokens = B, f32
 *     accumulate). Loads run 2 segments ahead in registers, or, for packed
 *     weights and tiles of at most 8 tokens, through a per-warp ring of
 *     shared memory filled by cp.async (4 segments, 2 per burst). The K
 *     order inside a segment is permuted identically for weights and
 *     activations; x is staged in shared memory (f16, in that order): by the
 *     threads in chunks of up to 192 KB (tiles of at most 16 tokens), or, for
 *     the wgmma body, by the copy engine one chunk ahead of the warps, from x
 *     that the tile's gate/up CTAs convert first, a share each
 *     (fp4_xshare.cuh), or, where they do not all fit on the SMs at once,
 *     moep__fp4_prep (a kernel before gate/up) wrote, in exactly that layout
 *     ("blocked", moep__xblk_off). Each thread ends holding the gate
 *     and the up sum of its (i, token) pairs and writes h = f16(silu(gate) *
 *     up) [N, Ip]: SwiGLU is fused, only the f16 h goes through memory
 *     (blocked for the tiles of more than 16 tokens, so that down copies it
 *     the same way).
 *  2. down: the same body on W2 (a warp owns 16 rows of H) with x = h, bf16
 *     y; launched with programmatic dependent launch so that its CTAs start
 *     and issue their first weight loads while gate/up drains
 *     (griddepcontrol.wait before reading h). One 28-warp CTA per SM.
 * Accumulator registers are sized by the tile's token count (1, 2, 4 or 8
 * n-tiles of 8 tokens), chosen per CTA at run time. Weights come row-major or
 * packed (fp4_pack.cu: whole 512-byte reads, MX scales rebiased so that one
 * factor always suffices); the kernels are instantiated for both.
 */
#include "fp4_mma.cuh"
#include "fp4_wgmma.cuh"

/* Tiles of more than 16 tokens: wgmma (1, the default) or the mma body (0). */
#ifndef MOEP__F4_WGMMA
#define MOEP__F4_WGMMA 1
#endif
#ifndef MOEP__F4_SMEM_SLACK
#define MOEP__F4_SMEM_SLACK 0
#endif
#if MOEP__F4_WGMMA
#define MOEP__F4_BODY_BIG(G, N, P, X, NT)                                                         \
    (wg_ok ? moep__fp4_body_wg<G, N, P, false, X, NT>(a, tile, T, sm)                             \
           : moep__fp4_body_mma<G, N, P, false, X, NT>(a, tile, T, (uint2 *)sm))
#else
#define MOEP__F4_BODY_BIG(G, N, P, X, NT) moep__fp4_body_mma<G, N, P, false, X, NT>(a, tile, T, (uint2 *)sm)
#endif

/* AS: tiles of at most 8 tokens stream the packed weights through shared
 * memory (moep__fp4_stream); the others keep the register stream. */
template <bool GATEUP, bool NV, bool PK, bool AS, int XIN>
__global__ void __launch_bounds__(moep__fp4_cta<GATEUP>::THREADS, moep__fp4_cta<GATEUP>::MINB)
    moep__fp4_kernel(const moep__fp4_args_t a) {
#if MOEP__F4_PDL
    /* let the down projection's CTAs start (and issue their first weight
     * loads) as soon as SMs free up; they wait for h with griddepcontrol.wait */
    if (GATEUP) asm volatile("griddepcontrol.launch_dependents;");
#endif
    extern __shared__ uint8_t smem_raw[];
    /* 128-byte-swizzled wgmma operands want 1024-byte alignment; without
     * slack (which would cost the L1 carve-out a step) the dynamic area is
     * checked and, if it is not aligned, the mma body takes every tile */
    uint8_t *sm = MOEP__F4_SMEM_SLACK ? (uint8_t *)(((uintptr_t)smem_raw + 1023) & ~(uintptr_t)1023) : smem_raw;
    const bool wg_ok = moep__fp4_cta<GATEUP>::WARPS % 4 == 0 && /* whole warpgroups */
                       ((uintptr_t)sm & 1023) == 0;
    /* down, once gate/up is done with this call's flags: advance the epoch
     * (fp4_xshare.cuh). At the end of the CTA's work, where thread 0 has
     * passed the body's griddepcontrol.wait: waiting here first would hold
     * back its weight loads (MXFP4, T = 1: 0.8 us) */
    const bool bump = MOEP__F4_XBLK_SHARE && !GATEUP && a.xsync != NULL && threadIdx.x == 0 && blockIdx.x == 0 &&
                      blockIdx.z == 0;
    const moep__ffn_tile_t tile = moep__fp4_tile(a);
    if (tile.expert < 0) {
        if (bump) {
#if MOEP__F4_PDL
            asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
            a.xsync[0] += 1;
        }
        return;
    }
    const int64_t rem = tile.row_end - tile.row_start;
    const int T = rem < 64 ? (int)rem : 64;
    if (T <= 8)
        moep__fp4_body_mma<GATEUP, NV, PK, AS, XIN, 1>(a, tile, T, (uint2 *)sm);
    else if (T <= 16)
        moep__fp4_body_mma<GATEUP, NV, PK, false, XIN, 2>(a, tile, T, (uint2 *)sm);
    else if (T <= 32)
        MOEP__F4_BODY_BIG(GATEUP, NV, PK, XIN, 4);
    else
        MOEP__F4_BODY_BIG(GATEUP, NV, PK, XIN, 8);
    if (bump) a.xsync[0] += 1;
}

/*
 * Before gate/up, where its CTAs cannot convert x themselves
 * (fp4_xshare.cuh: more gate/up CTAs than SMs), for the tiles of more than 16 tokens (the
 * wgmma body's): x converted to f16 and blocked (moep__xblk_off) into a.xb,
 * so that the gate/up CTAs stage it with bulk copies. 256 threads, ITEMS
 * groups of 8 channels each; the CTAs of other tiles exit at once.
 */
#ifndef MOEP__F4_PREP_ITEMS
#define MOEP__F4_PREP_ITEMS 4
#endif
template <int XIN>
__global__ void __launch_bounds__(256) moep__fp4_prep(const moep__fp4_args_t a, uint8_t *xb) {
#if MOEP__F4_PDL
    asm volatile("griddepcontrol.launch_dependents;");
#endif
    const moep__ffn_tile_t tile = moep__fp4_tile(a);
    if (tile.expert < 0) return;
    const int64_t rem = tile.row_end - tile.row_start;
    const int T = rem < 64 ? (int)rem : 64;
    if (T <= 16) return;
    const int ng = ((a.K + 127) >> 7) * 16; /* groups of 8 channels per row, pad included */
    /* item it: token it / ng, group it % ng */
    moep__xblk_items<XIN, MOEP__F4_PREP_ITEMS>(a, tile.row_start, moep__xblk_tile(xb, tile.row_start, a.K), T,
                                               blockIdx.x * 256 * MOEP__F4_PREP_ITEMS + threadIdx.x, 256,
                                               [&](int it, int &n, int &G) {
                                                   n = it / ng;
                                                   G = it - n * ng;
                                               });
}

template <int XIN>
static cudaError_t moep__fp4_prep_launch(const moep__fp4_args_t *a, int32_t max_tiles, uint8_t *xb, cudaStream_t s) {
    const int64_t items = 64 * (int64_t)((a->K + 127) >> 7) * 16;
    const unsigned gx = (unsigned)((items + 256 * MOEP__F4_PREP_ITEMS - 1) / (256 * MOEP__F4_PREP_ITEMS));
    moep__fp4_prep<XIN><<<dim3(gx, 1, (unsigned)max_tiles), 256, 0, s>>>(*a, xb);
    return cudaGetLastError();
}

template <bool GATEUP, bool NV, bool PK, bool AS, int XIN>
static cudaError_t moep__fp4_launch(const moep__fp4_args_t *a, int32_t max_tiles, bool pdl,
                                    cudaStream_t s) {
    typedef moep__fp4_cta<GATEUP, AS> as_cta_t;
    typedef moep__fp4_stream<GATEUP, NV, PK, AS> stream_t;
    /* the register stream's x area, or (AS, few tokens) a smaller x area and the warps' weight rings */
    const int as_bytes = as_cta_t::XS + as_cta_t::WARPS * stream_t::D * stream_t::SLOT;
    const int reg_bytes = moep__fp4_cta<GATEUP>::XS + 64; /* + the wgmma body's barriers and counters */
    const int smem = (AS && as_bytes > reg_bytes ? as_bytes : reg_bytes) + MOEP__F4_SMEM_SLACK;
    static bool attr = false;
    if (!attr) {
        cudaError_t err = cudaFuncSetAttribute(moep__fp4_kernel<GATEUP, NV, PK, AS, XIN>,
                                               cudaFuncAttributeMaxDynamicSharedMemorySize, smem);
        if (err != cudaSuccess) return err;
        attr = true;
    }
    const int rows_per_cta = GATEUP ? MOEP__F4_GU_ROWS : moep__fp4_cta<false>::WARPS * 16;
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = dim3((unsigned)((a->rows + rows_per_cta - 1) / rows_per_cta), 1, (unsigned)max_tiles);
    cfg.blockDim = dim3(moep__fp4_cta<GATEUP>::THREADS);
    cfg.dynamicSmemBytes = smem;
    cfg.stream = s;
    cudaLaunchAttribute at[1];
    at[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    at[0].val.programmaticStreamSerializationAllowed = 1;
    cfg.attrs = at;
    cfg.numAttrs = pdl && MOEP__F4_PDL ? 1 : 0;
    return cudaLaunchKernelEx(&cfg, moep__fp4_kernel<GATEUP, NV, PK, AS, XIN>, *a);
}

/* Row strides of the workspace's f16 h and blocked x: K rounded up to 128. */
static int64_t moep__fp4_kp(int64_t K) { return (K + 127) / 128 * 128; }

static size_t moep__fp4_h_bytes(const moep_expert_weights_t *w, int64_t n) {
    return ((size_t)n * (size_t)moep__fp4_kp(w->intermediate) * 2 + 255) / 256 * 256;
}

/* Whether a tile can hold more than 16 tokens (the wgmma body, which reads
 * blocked x: moep__fp4_prep runs, and the workspace holds its output). */
static bool moep__fp4_wide(const moep__ffn_rows_t *rows) {
    return rows->counts != NULL ? rows->max_tokens > 16 : rows->num_rows > 16;
}

static size_t moep__fp4_xb_bytes(const moep_expert_weights_t *w, int64_t n) {
    return ((size_t)n * (size_t)moep__fp4_kp(w->hidden) * 2 + 255) / 256 * 256;
}

extern "C" size_t moep__fp4_workspace(const moep_expert_weights_t *w, const moep__ffn_rows_t *rows) {
    /* f16 h [n, Ip], then, where a tile can be wide: x blocked for the wgmma
     * body [n, Hp], the epoch and the segment flags [tiles, Hp / 128] */
    const int64_t n = rows->num_rows;
    if (!moep__fp4_wide(rows)) return moep__fp4_h_bytes(w, n);
    const size_t flags = (size_t)moep__ffn_max_tiles(rows) * (size_t)(moep__fp4_kp(w->hidden) / 128);
    return moep__fp4_h_bytes(w, n) + moep__fp4_xb_bytes(w, n) + 8 * (1 + flags);
}

/* Multiprocessors of the current device (cached per device). */
static int moep__fp4_sms(void) {
    static int sms[64];
    int dev = 0;
    if (cudaGetDevice(&dev) != cudaSuccess || dev < 0) return 0;
    if (dev >= 64) {
        int n = 0;
        return cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, dev) == cudaSuccess ? n : 0;
    }
    if (sms[dev] == 0 && cudaDeviceGetAttribute(&sms[dev], cudaDevAttrMultiProcessorCount, dev) != cudaSuccess)
        sms[dev] = 0;
    return sms[dev];
}

template <bool NV, bool PK, bool AS>
static cudaError_t moep__fp4_ffn_run(const moep_expert_weights_t *w, const void *x, const float *xs,
                                     const moep__ffn_rows_t *rows, const moep__ffn_tile_t *tiles,
                                     int32_t max_tiles, void *ws, void *y, cudaStream_t s) {
    const int32_t H = w->hidden, I = w->intermediate;
    __half *h = (__half *)ws;
    uint8_t *xb = (uint8_t *)ws + moep__fp4_h_bytes(w, rows->num_rows); /* these two only if wide */
    uint64_t *xsync = (uint64_t *)(xb + moep__fp4_xb_bytes(w, rows->num_rows));
    moep__fp4_args_t a;
    a.tiles = tiles;
    a.counts = rows->counts;
    a.max_tokens = rows->max_tokens;
    a.tiles_per_expert = (int32_t)((rows->max_tokens + MOEP__FFN_TILE_ROWS - 1) / MOEP__FFN_TILE_ROWS);
    a.x = x;
    a.xb = xb;
    a.ldx = H;
    a.xs = xs;
    a.wd[0] = (const uint8_t *)w->w1.data;
    a.wd[1] = (const uint8_t *)w->w3.data;
    a.ws[0] = (const uint8_t *)w->w1.scales;
    a.ws[1] = (const uint8_t *)w->w3.scales;
    a.wg[0] = w->w1.global_scale;
    a.wg[1] = w->w3.global_scale;
    a.out = h;
    a.ldo = (int32_t)moep__fp4_kp(I);
    a.K = H;
    a.rows = I;
    a.xsync = NULL;
    /* tiles of more than 16 tokens can occur: blocked x, made by the gate/up
     * CTAs themselves where they all fit on the SMs at once (one per SM:
     * fp4_xshare.cuh; no extra launch), else by moep__fp4_prep before them */
    const bool wide = moep__fp4_wide(rows);
    cudaError_t err = cudaSuccess;
    bool prep = false;
    if (wide) {
        const int64_t gu_ctas = (int64_t)max_tiles * ((I + MOEP__F4_GU_ROWS - 1) / MOEP__F4_GU_ROWS);
        if (MOEP__F4_XBLK_SHARE && gu_ctas <= moep__fp4_sms())
            a.xsync = xsync; /* one wave: gate/up converts x itself */
        else
            prep = true;
    }
    if (prep)
        err = xs ? moep__fp4_prep_launch<MOEP__X_FP8>(&a, max_tiles, xb, s)
                 : moep__fp4_prep_launch<MOEP__X_BF16>(&a, max_tiles, xb, s);
    if (err != cudaSuccess) return err;
    /* behind the prep: PDL (gate/up loads weights while it drains); else a
     * plain launch, which the caller's kernel before (writing x) must finish */
    err = xs ? moep__fp4_launch<true, NV, PK, AS, MOEP__X_FP8>(&a, max_tiles, prep, s)
             : moep__fp4_launch<true, NV, PK, AS, MOEP__X_BF16>(&a, max_tiles, prep, s);
    if (err != cudaSuccess) return err;
    a.x = h;
    a.xb = (const uint8_t *)h;
    a.ldx = a.ldo;
    a.ldo = H;
    a.xs = NULL;
    a.wd[0] = a.wd[1] = (const uint8_t *)w->w2.data;
    a.ws[0] = a.ws[1] = (const uint8_t *)w->w2.scales;
    a.wg[0] = a.wg[1] = w->w2.global_scale;
    a.out = y;
    a.K = I;
    a.rows = H;
    return moep__fp4_launch<false, NV, PK, AS, MOEP__X_F16>(&a, max_tiles, true, s);
}

/* Which formats take packed weights through shared memory for tiles of at
 * most 8 tokens: 0 none, 1 NVFP4, 2 both (H200, T = 1, L2 cold: NVFP4 66
 * against 74 us, MXFP4 68 against 72). */
#ifndef MOEP__F4_AS_FMT
#define MOEP__F4_AS_FMT 2
#endif

template <bool NV, bool PK>
static cudaError_t moep__fp4_ffn_fmt(const moep_expert_weights_t *w, const void *x, const float *xs,
                                     const moep__ffn_rows_t *rows, const moep__ffn_tile_t *tiles,
                                     int32_t max_tiles, void *ws, void *y, cudaStream_t s) {
    return moep__fp4_ffn_run<NV, PK, PK && MOEP__F4_AS_FMT >= (NV ? 1 : 2)>(w, x, xs, rows, tiles, max_tiles, ws,
                                                                          y, s);
}

extern "C" cudaError_t moep__fp4_ffn(const moep_expert_weights_t *w, const void *x, const float *xs,
                                     const moep__ffn_rows_t *rows, const moep__ffn_tile_t *tiles,
                                     int32_t max_tiles, void *ws, void *y, cudaStream_t s) {
    const bool nv = w->format == MOEP_WEIGHTS_NVFP4, pk = w->layout == MOEP_WEIGHT_LAYOUT_FP4_PACKED;
    if (nv) return pk ? moep__fp4_ffn_fmt<true, true>(w, x, xs, rows, tiles, max_tiles, ws, y, s)
                      : moep__fp4_ffn_fmt<true, false>(w, x, xs, rows, tiles, max_tiles, ws, y, s);
    return pk ? moep__fp4_ffn_fmt<false, true>(w, x, xs, rows, tiles, max_tiles, ws, y, s)
              : moep__fp4_ffn_fmt<false, false>(w, x, xs, rows, tiles, max_tiles, ws, y, s);
}
