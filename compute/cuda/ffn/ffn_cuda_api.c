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

/* Where the pieces of the workspace go (byte offsets), and its size. */
typedef struct ws_layout {
    size_t tiles, xq, xs, h, hs, bytes;
    int quant_x; /* FP8 weights, bf16 x: x is quantized into xq / xs */
} ws_layout_t;

static ws_layout_t ws_layout(const moep_expert_weights_t *w, moep_dtype_t x_dtype,
                             const moep__ffn_rows_t *rows) {
    const int64_t n = rows->num_rows, H = w->hidden, I = w->intermediate;
    const int fp8 = w->format == MOEP_WEIGHTS_FP8_E4M3;
    const size_t nbh = (size_t)((H + 127) / 128), nbi = (size_t)((I + 127) / 128);
    ws_layout_t l;
    l.quant_x = fp8 && x_dtype == MOEP_DTYPE_BF16;
    l.tiles = 0;
    l.xq = moep__align256((size_t)moep__ffn_max_tiles(rows) * sizeof(moep__ffn_tile_t));
    l.xs = l.xq + (l.quant_x ? moep__align256((size_t)n * H) : 0);
    l.h = l.xs + (l.quant_x ? moep__align256((size_t)n * nbh * 4) : 0);
    l.hs = l.h + (fp8 ? moep__align256((size_t)n * I) : moep__align256(moep__fp4_workspace(w, rows)));
    l.bytes = l.hs + (fp8 ? moep__align256((size_t)n * nbi * 4) : 0);
    return l;
}

/* The kernel sequence on a workspace laid out as l. */
static moep_status_t launch(const char *fn, const moep_expert_weights_t *w, const moep_tensor_t *x,
                            const moep_tensor_t *x_scales, moep__ffn_rows_t rr, const ws_layout_t *l,
                            char *ws, moep_tensor_t *y, cudaStream_t s) {
    const int64_t n = rr.num_rows, H = w->hidden;
    const int fp8 = w->format == MOEP_WEIGHTS_FP8_E4M3;
    const int32_t max_tiles = rr.max_tiles = moep__ffn_max_tiles(&rr);
    moep__ffn_tile_t *tiles = (moep__ffn_tile_t *)(ws + l->tiles);
    void *h = ws + l->h;
    const char *stage = "tile map";
    /* the FP4 kernels find masked tiles themselves: no tile-map launch */
    const int fp4_masked = !fp8 && rr.counts != NULL;
    cudaError_t e = fp4_masked ? cudaSuccess : moep__ffn_tile_map(&rr, tiles, s);
    if (e == cudaSuccess && fp8) {
        const uint8_t *xin = (const uint8_t *)x->data;
        const float *xsin = x_scales ? (const float *)x_scales->data : NULL;
        if (l->quant_x) {
            stage = "activation quantization";
            xin = (uint8_t *)(ws + l->xq);
            xsin = (float *)(ws + l->xs);
            e = moep__act_quant_fp8(x->data, n, (int32_t)H, (uint8_t *)(ws + l->xq), (float *)(ws + l->xs), s);
        }
        if (e == cudaSuccess) {
            stage = "FP8 GEMMs";
            int r = moep__fp8_ffn(w, xin, xsin, n, tiles, max_tiles, (uint8_t *)h, (float *)(ws + l->hs),
                                  y->data, s, &e);
            if (r == -1) return moep__fail(MOEP_ERR_CUDA, "%s: cannot encode TMA tensor maps", fn);
        }
    } else if (e == cudaSuccess) {
        stage = "FP4 kernels";
        e = moep__fp4_ffn(w, x->data, x_scales ? (const float *)x_scales->data : NULL, &rr,
                          fp4_masked ? NULL : tiles, max_tiles, h, y->data, s);
    }
    return e == cudaSuccess ? MOEP_OK : cuda_fail(fn, stage, e);
}

/* With the caller's workspace, or one taken and given back on the stream. */
static moep_status_t run(const char *fn, const moep_expert_weights_t *w, const moep_tensor_t *x,
                         const moep_tensor_t *x_scales, const moep__ffn_rows_t *rows,
                         moep_tensor_t *y, void *workspace, size_t workspace_bytes, cudaStream_t s) {
    MOEP_TRY(check_device(fn));
    if (rows->num_rows == 0) return MOEP_OK;
    ws_layout_t l = ws_layout(w, x->dtype, rows);
    if (workspace != NULL) {
        if ((uintptr_t)workspace % 256 != 0)
            return moep__fail(MOEP_ERR_INVALID_ARG, "%s: workspace is not 256-byte aligned", fn);
        if (workspace_bytes < l.bytes)
            return moep__fail(MOEP_ERR_SHAPE, "%s: workspace of %zu bytes, this call needs %zu", fn,
                              workspace_bytes, l.bytes);
        return launch(fn, w, x, x_scales, *rows, &l, (char *)workspace, y, s);
    }
    char *ws = NULL;
    cudaError_t e = cudaMallocAsync((void **)&ws, l.bytes, s);
    if (e != cudaSuccess) return cuda_fail(fn, "workspace", e);
    moep_status_t st = launch(fn, w, x, x_scales, *rows, &l, ws, y, s);
    cudaError_t ef = cudaFreeAsync(ws, s);
    if (st == MOEP_OK && ef != cudaSuccess) return cuda_fail(fn, "workspace free", ef);
    return st;
}

static moep__ffn_rows_t contiguous_rows(const moep_expert_weights_t *w, const int64_t *expert_offset,
                                        int64_t n) {
    moep__ffn_rows_t r = {expert_offset, NULL, 0, n, w->num_experts, 0};
    return r;
}

static moep__ffn_rows_t masked_rows(const moep_expert_weights_t *w, const int64_t *counts,
                                    const moep__ffn_cuda_shape_t *sh) {
    moep__ffn_rows_t r = {NULL, counts, sh->max_tokens, sh->n, w->num_experts, 0};
    return r;
}

moep_status_t moep_expert_ffn_cuda_ws(const moep_expert_weights_t *w, const moep_tensor_t *x,
                                      const moep_tensor_t *x_scales, const int64_t *expert_offset,
                                      moep_tensor_t *y, void *workspace, size_t workspace_bytes,
                                      moep_stream_t stream) {
    static const char fn[] = "moep_expert_ffn_cuda";
    moep__ffn_cuda_shape_t sh;
    MOEP_TRY(moep__ffn_cuda_check(fn, w, x, x_scales, expert_offset, y, 0, &sh));
    moep__ffn_rows_t r = contiguous_rows(w, expert_offset, sh.n);
    return run(fn, &sh.w, x, x_scales, &r, y, workspace, workspace_bytes, (cudaStream_t)stream);
}

moep_status_t moep_expert_ffn_masked_cuda_ws(const moep_expert_weights_t *w, const moep_tensor_t *x,
                                             const moep_tensor_t *x_scales, const int64_t *counts,
                                             moep_tensor_t *y, void *workspace, size_t workspace_bytes,
                                             moep_stream_t stream) {
    static const char fn[] = "moep_expert_ffn_masked_cuda";
    moep__ffn_cuda_shape_t sh;
    MOEP_TRY(moep__ffn_cuda_check(fn, w, x, x_scales, counts, y, 1, &sh));
    moep__ffn_rows_t r = masked_rows(w, counts, &sh);
    return run(fn, &sh.w, x, x_scales, &r, y, workspace, workspace_bytes, (cudaStream_t)stream);
}

moep_status_t moep_expert_ffn_cuda(const moep_expert_weights_t *w, const moep_tensor_t *x,
                                   const moep_tensor_t *x_scales, const int64_t *expert_offset,
                                   moep_tensor_t *y, moep_stream_t stream) {
    return moep_expert_ffn_cuda_ws(w, x, x_scales, expert_offset, y, NULL, 0, stream);
}

moep_status_t moep_expert_ffn_masked_cuda(const moep_expert_weights_t *w, const moep_tensor_t *x,
                                          const moep_tensor_t *x_scales, const int64_t *counts,
                                          moep_tensor_t *y, moep_stream_t stream) {
    return moep_expert_ffn_masked_cuda_ws(w, x, x_scales, counts, y, NULL, 0, stream);
}

moep_status_t moep_expert_ffn_cuda_workspace_size(const moep_expert_weights_t *w,
                                                  const moep_tensor_t *x, int masked, size_t *bytes) {
    static const char fn[] = "moep_expert_ffn_cuda_workspace_size";
    if (bytes == NULL) return moep__fail(MOEP_ERR_INVALID_ARG, "%s: bytes is NULL", fn);
    *bytes = 0;
    if (w == NULL || x == NULL) return moep__fail(MOEP_ERR_INVALID_ARG, "%s: NULL argument", fn);
    int64_t one = 0; /* only whether the rows are contiguous matters for the size */
    if (masked ? x->ndim != 3 || x->shape[0] != w->num_experts : x->ndim != 2)
        return moep__fail(MOEP_ERR_SHAPE, "%s: x must be %s", fn,
                          masked ? "[num_experts, max_tokens, H]" : "[N, H]");
    moep__ffn_cuda_shape_t sh;
    sh.n = masked ? x->shape[0] * x->shape[1] : x->shape[0];
    sh.max_tokens = masked ? x->shape[1] : 0;
    moep__ffn_rows_t r = masked ? masked_rows(w, &one, &sh) : contiguous_rows(w, &one, sh.n);
    *bytes = sh.n > 0 ? ws_layout(w, x->dtype, &r).bytes : 0;
    return MOEP_OK;
}
