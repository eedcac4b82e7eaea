/*
 * FP8 grouped GEMM for the expert FFN on sm_90a (wgmma e4m3 -> QGMMA): the
 * tensor maps, the launches and the FFN sequence (gate/up with fused
 * silu*mul and FP8 re-quantization of h, then down).
 *
 * Two kernels:
 *  - fp8_gemm128.cuh: CTAs of two 64-row tiles sharing each weight stage
 *    (prefill: most of the FLOPs);
 *  - fp8_gemm64.cuh: CTAs of one 64-row tile, used when there is at most one
 *    tile per expert (masked, <= 64 tokens per expert: decode), where no two
 *    tiles could share a stage, and for every call with -DMOEP__FP8_M64=1.
 */
#include "fp8_gemm64.cuh"
#include "fp8_gemm128.cuh"

/* cuTensorMapEncodeTiled through the runtime's driver entry point (no -lcuda). */
static PFN_cuTensorMapEncodeTiled_v12000 moep__encode_fn(void) {
    static PFN_cuTensorMapEncodeTiled_v12000 fn = NULL;
    if (!fn) {
        void *p = NULL;
        cudaDriverEntryPointQueryResult q;
        if (cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &p, 12000, cudaEnableDefault,
                                             &q) == cudaSuccess &&
            q == cudaDriverEntryPointSuccess)
            fn = (PFN_cuTensorMapEncodeTiled_v12000)p;
    }
    return fn;
}

/* 2-D FP8 [rows, cols] map, boxes of 64 rows x 128 bytes, 128-byte swizzle. */
static int moep__fp8_map(CUtensorMap *m, const void *base, int64_t rows, int64_t cols) {
    PFN_cuTensorMapEncodeTiled_v12000 fn = moep__encode_fn();
    if (!fn) return -1;
    cuuint64_t dims[2] = {(cuuint64_t)cols, (cuuint64_t)(rows > 0 ? rows : 1)};
    cuuint64_t strides[1] = {(cuuint64_t)cols};
    cuuint32_t box[2] = {128, 64};
    cuuint32_t es[2] = {1, 1};
    CUresult r = fn(m, CU_TENSOR_MAP_DATA_TYPE_UINT8, 2, (void *)base, dims, strides, box, es,
                    CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B,
                    CU_TENSOR_MAP_L2_PROMOTION_L2_256B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
    return r == CUDA_SUCCESS ? 0 : -2;
}

template <bool GATEUP>
static cudaError_t moep__fp8_launch(const CUtensorMap *a, const CUtensorMap *b0,
                                    const CUtensorMap *b1, const moep__fp8_gemm_args_t *args,
                                    int32_t max_tiles, int32_t num_experts, cudaStream_t s) {
    static bool attr64 = false, attr128 = false;
    const int per_cta = GATEUP ? 128 : 256;
    /* At most one tile per expert (masked, <= 64 tokens each: decode): no pair of tiles can
     * share B, so the 128-row kernel would only halve the CTAs; the 64-row one runs. */
    if (MOEP__FP8_M64 || max_tiles <= num_experts) {
        if (!attr64) {
            cudaError_t err = cudaFuncSetAttribute(moep__fp8_gemm_kernel<GATEUP>,
                                                   cudaFuncAttributeMaxDynamicSharedMemorySize,
                                                   MOEP__G_SMEM);
            if (err != cudaSuccess) return err;
            attr64 = true;
        }
        dim3 grid((unsigned)((args->n_out + per_cta - 1) / per_cta), (unsigned)max_tiles);
        moep__fp8_gemm_kernel<GATEUP><<<grid, 384, MOEP__G_SMEM, s>>>(*a, *b0, *b1, *args);
        return cudaGetLastError();
    }
    if (!attr128) {
        cudaError_t err = cudaFuncSetAttribute(moep__fp8_gemm128_kernel<GATEUP>,
                                               cudaFuncAttributeMaxDynamicSharedMemorySize,
                                               MOEP__H_SMEM);
        if (err != cudaSuccess) return err;
        attr128 = true;
    }
    const int32_t nblk_n = (args->n_out + per_cta - 1) / per_cta;
    const int32_t items = nblk_n * ((max_tiles + 1) / 2);
    int32_t grid = items;
#if MOEP__FP8_PERSIST
    static int sms = 0;
    if (!sms) {
        int dev = 0;
        cudaGetDevice(&dev);
        cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev);
        if (sms <= 0) sms = 132;
    }
    if (grid > sms) grid = sms;
    if (MOEP__FP8_PERSIST > 1 && grid > MOEP__FP8_PERSIST) grid = MOEP__FP8_PERSIST;
#endif
    if (grid < 1) grid = 1;
    moep__fp8_gemm128_kernel<GATEUP>
        <<<grid, 384, MOEP__H_SMEM, s>>>(*a, *b0, *b1, *args, max_tiles, nblk_n, items);
    return cudaGetLastError();
}

/* Returns 0, or -1 when the tensor maps cannot be made (err then unset), -2 on a CUDA error. */
extern "C" int moep__fp8_ffn(const moep_expert_weights_t *w, const uint8_t *xq, const float *xs,
                             int64_t n, const moep__ffn_tile_t *tiles, int32_t max_tiles,
                             uint8_t *hq, float *hs, void *y, cudaStream_t s, cudaError_t *err) {
    const int32_t E = w->num_experts, H = w->hidden, I = w->intermediate;
    CUtensorMap mx, mh, m1, m3, m2;
    if (moep__fp8_map(&mx, xq, n, H) || moep__fp8_map(&mh, hq, n, I) ||
        moep__fp8_map(&m1, w->w1.data, (int64_t)E * I, H) ||
        moep__fp8_map(&m3, w->w3.data, (int64_t)E * I, H) ||
        moep__fp8_map(&m2, w->w2.data, (int64_t)E * H, I))
        return -1;
    moep__fp8_gemm_args_t a;
    a.tiles = tiles;
    a.num_rows = n;
    a.hq = hq;
    a.hs = hs;
    a.y = (__nv_bfloat16 *)y;
    a.nkb_out = (I + 127) / 128;

    a.a_scales = xs;
    a.b0_scales = (const float *)w->w1.scales;
    a.b1_scales = (const float *)w->w3.scales;
    a.nkb = (H + 127) / 128;
    a.rows_b = I;
    a.nblk_b = (I + 127) / 128;
    a.b_scale_stride = (int64_t)a.nblk_b * a.nkb;
    a.n_out = I;
    *err = moep__fp8_launch<true>(&mx, &m1, &m3, &a, max_tiles, E, s);
    if (*err != cudaSuccess) return -2;

    a.a_scales = hs;
    a.b0_scales = (const float *)w->w2.scales;
    a.b1_scales = NULL;
    a.nkb = (I + 127) / 128;
    a.rows_b = H;
    a.nblk_b = (H + 127) / 128;
    a.b_scale_stride = (int64_t)a.nblk_b * a.nkb;
    a.n_out = H;
    *err = moep__fp8_launch<false>(&mh, &m2, &m2, &a, max_tiles, E, s);
    return *err != cudaSuccess ? -2 : 0;
}
