/* Public entry points of the GPU expert FFN: checks, workspace, kernel sequence. */
#include <cuda_runtime_api.h>

#include "ffn_cuda.h"
#include "ffn_cuda_check.h"
#include "moep_internal.h"

static moep_status_t cuda_fail(const char *fn, const char *what, cudaError_t e) {
    return moep__fail(e == cudaErrorMemoryAllocation ? MOEP_ERR_NO_MEMORY : MOEP_ERR_CUDA,
                      "%s: %s: %s", fn, what, cudaGetErrorString(e));
}

/* Hopper only: the kernels are sm_90a. */
static moep_status_t check_device(const char *fn) {
    int dev = 0, major = 0, minor = 0;
    cudaError_t e = cudaGetDevice(&dev);
    if (e == cudaSuccess) e = cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev);
    if (e == cudaSuccess) e = cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev);
    if (e != cudaSuccess) return cuda_fail(fn, "no usable CUDA device", e);
    if (major != 9 || minor != 0)
        return moep__fail(MOEP_ERR_UNSUPPORTED, "%s: kernels are built for sm_90a, device is sm_%d%d",
                          fn, major, minor);
    return MOEP_OK;
}

static size_t align256(size_t b) { return (b + 255) & ~(size_t)255; }

static moep_status_t run(const char *fn, const moep_expert_weights_t *w, const moep_tensor_t *x,
                         const moep_tensor_t *x_scales, const moep__ffn_rows_t *rows,
                         moep_tensor_t *y, cudaStream_t s) {
    MOEP_TRY(check_device(fn));
    const int64_t n = rows->num_rows, H = w->hidden, I = w->intermediate;
    if (n == 0) return MOEP_OK;
    const int fp8 = w->format == MOEP_WEIGHTS_FP8_E4M3;
    moep__ffn_rows_t rr = *rows;
    const int32_t max_tiles = rr.max_tiles = moep__ffn_max_tiles(rows);
    const size_t nbh = (size_t)((H + 127) / 128), nbi = (size_t)((I + 127) / 128);
    const size_t b_tiles = align256((size_t)max_tiles * sizeof(moep__ffn_tile_t));
    const int quant_x = fp8 && x->dtype == MOEP_DTYPE_BF16;
    const size_t b_xq = quant_x ? align256((size_t)n * H) : 0;
    const size_t b_xs = quant_x ? align256((size_t)n * nbh * 4) : 0;
    const size_t b_h = fp8 ? align256((size_t)n * I) : align256(moep__fp4_workspace(w, n));
    const size_t b_hs = fp8 ? align256((size_t)n * nbi * 4) : 0;
    char *ws = NULL;
    cudaError_t e = cudaMallocAsync((void **)&ws, b_tiles + b_xq + b_xs + b_h + b_hs, s);
    if (e != cudaSuccess) return cuda_fail(fn, "workspace", e);
    moep__ffn_tile_t *tiles = (moep__ffn_tile_t *)ws;
    uint8_t *xq = (uint8_t *)(ws + b_tiles);
    float *xs = (float *)(ws + b_tiles + b_xq);
    void *h = ws + b_tiles + b_xq + b_xs;
    float *hs = (float *)(ws + b_tiles + b_xq + b_xs + b_h);
    const char *stage = "tile map";
    e = moep__ffn_tile_map(&rr, tiles, s);
    if (e == cudaSuccess && fp8) {
        const uint8_t *xin = (const uint8_t *)x->data;
        const float *xsin = x_scales ? (const float *)x_scales->data : NULL;
        if (quant_x) {
            stage = "activation quantization";
            e = moep__act_quant_fp8(x->data, n, (int32_t)H, xq, xs, s);
            xin = xq;
            xsin = xs;
        }
        if (e == cudaSuccess) {
            stage = "FP8 GEMMs";
            int r = moep__fp8_ffn(w, xin, xsin, n, tiles, max_tiles, (uint8_t *)h, hs, y->data, s, &e);
            if (r == -1) {
                cudaFreeAsync(ws, s);
                return moep__fail(MOEP_ERR_CUDA, "%s: cannot encode TMA tensor maps", fn);
            }
        }
    } else if (e == cudaSuccess) {
        stage = "FP4 kernels";
        e = moep__fp4_ffn(w, x->data, x_scales ? (const float *)x_scales->data : NULL, n, tiles,
                          max_tiles, h, y->data, s);
    }
    cudaError_t ef = cudaFreeAsync(ws, s);
    if (e != cudaSuccess) return cuda_fail(fn, stage, e);
    if (ef != cudaSuccess) return cuda_fail(fn, "workspace free", ef);
    return MOEP_OK;
}

moep_status_t moep_expert_ffn_cuda(const moep_expert_weights_t *w, const moep_tensor_t *x,
                                   const moep_tensor_t *x_scales, const int64_t *expert_offset,
                                   moep_tensor_t *y, moep_stream_t stream) {
    static const char fn[] = "moep_expert_ffn_cuda";
    moep__ffn_cuda_shape_t sh;
    MOEP_TRY(moep__ffn_cuda_check(fn, w, x, x_scales, expert_offset, y, 0, &sh));
    moep__ffn_rows_t r = {expert_offset, NULL, 0, sh.n, w->num_experts, 0};
    return run(fn, w, x, x_scales, &r, y, (cudaStream_t)stream);
}

moep_status_t moep_expert_ffn_masked_cuda(const moep_expert_weights_t *w, const moep_tensor_t *x,
                                          const moep_tensor_t *x_scales, const int64_t *counts,
                                          moep_tensor_t *y, moep_stream_t stream) {
    static const char fn[] = "moep_expert_ffn_masked_cuda";
    moep__ffn_cuda_shape_t sh;
    MOEP_TRY(moep__ffn_cuda_check(fn, w, x, x_scales, counts, y, 1, &sh));
    moep__ffn_rows_t r = {NULL, counts, sh.max_tokens, sh.n, w->num_experts, 0};
    return run(fn, w, x, x_scales, &r, y, (cudaStream_t)stream);
}
