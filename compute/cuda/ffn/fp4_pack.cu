/*
 * The packed FP4 weight layout (api/moep_cuda_ffn.h, moep_expert_weights_pack_cuda):
 * row-major codes and block scales rearranged so that what one warp of the
 * FFN kernels reads per 128-channel segment (8 rows x 64 bytes of codes, 8
 * rows x 4 or 8 scale bytes) lies in one contiguous run, lane order
 * (fp4_common.cuh, moep__fp4_stream). MXFP4 scales are also rebiased per
 * expert matrix so that the kernels' one-multiply factor covers every block.
 * Setup work, run once per weight load: plain grid-stride kernels.
 */
#include <stdint.h>

#include "ffn_cuda.h"

/* One thread per 16 packed bytes: lane (g, q) of segment seg of row block rb
 * holds channels seg * 128 + 32q .. + 31 of row rb * 8 + g (zeros past C). */
__global__ void moep__pack_codes(const uint8_t *__restrict__ src, uint8_t *__restrict__ dst, int64_t nrb,
                                 int32_t nseg, int32_t C) {
    const int64_t total = nrb * nseg * 32, row_bytes = C / 2;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total; i += (int64_t)gridDim.x * blockDim.x) {
        const int lane = (int)(i & 31), g = lane >> 2, q = lane & 3;
        const int64_t blk = i >> 5, rb = blk / nseg;
        const int32_t off = (int32_t)(blk - rb * nseg) * 64 + q * 16;
        uint4 v = make_uint4(0, 0, 0, 0);
        if (off < row_bytes) v = *(const uint4 *)(src + (rb * 8 + g) * row_bytes + off);
        *(uint4 *)(dst + i * 16) = v;
    }
}

/* MXFP4, one CTA per expert matrix: b = (largest E8M0 byte) - 128, so that the
 * largest scale becomes 2^1, the top of the kernels' fast range [2^-28, 2^1];
 * global[e] = 2^b puts it back in the f32 epilogue (exact: a power of 2). */
__global__ void moep__pack_mx_bias(const uint8_t *__restrict__ scales, int64_t per_expert, int32_t *bias,
                                   float *global) {
    __shared__ uint32_t smax;
    if (threadIdx.x == 0) smax = 0;
    __syncthreads();
    const uint8_t *s = scales + blockIdx.x * per_expert;
    uint32_t m = 0;
    for (int64_t i = threadIdx.x; i < per_expert; i += blockDim.x) m = max(m, (uint32_t)s[i]);
    atomicMax(&smax, m);
    __syncthreads();
    if (threadIdx.x == 0) {
        const int b = (int)smax - 128;
        bias[blockIdx.x] = b;
        global[blockIdx.x] = ldexpf(1.0f, b);
    }
}

/* One thread per packed scale byte: byte k of row g of segment seg of row
 * block rb is the row's block seg * SCALES + k. MX (bias != NULL): rebiased;
 * a block more than 2^29 below its matrix's largest (and padding) gets 98,
 * which the kernels' factor turns into +0. */
__global__ void moep__pack_scales(const uint8_t *__restrict__ src, uint8_t *__restrict__ dst, int64_t nrb,
                                  int32_t nseg, int32_t per_seg, int32_t per_row, int64_t rb_per_expert,
                                  const int32_t *__restrict__ bias) {
    const int64_t total = nrb * nseg * 8 * per_seg;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total; i += (int64_t)gridDim.x * blockDim.x) {
        const int32_t k = (int32_t)(i % per_seg), g = (int32_t)((i / per_seg) & 7);
        const int64_t blk = i / (8 * per_seg), rb = blk / nseg;
        const int32_t kb = (int32_t)(blk - rb * nseg) * per_seg + k;
        int v = kb < per_row ? src[(rb * 8 + g) * per_row + kb] : 0;
        if (bias != NULL) {
            const int r = v - bias[rb / rb_per_expert];
            v = kb < per_row && r >= 99 ? r : 98;
        }
        dst[i] = (uint8_t)v;
    }
}

static unsigned moep__pack_grid(int64_t items) {
    const int64_t b = (items + 255) / 256;
    return (unsigned)(b < 4096 ? (b > 0 ? b : 1) : 4096);
}

extern "C" cudaError_t moep__fp4_pack_stack(int nv, const moep_weight_stack_t *src, int32_t E, int32_t R,
                                            int32_t C, uint8_t *data, uint8_t *scales, float *global,
                                            int32_t *bias, cudaStream_t s) {
    const int64_t nrb = (int64_t)E * R / 8;
    static_assert(MOEP__FP4_PACK_CODE_BYTES == 32 * 16, "a segment of 8 rows is one 16-byte piece per lane");
    const int32_t nseg = (C + 127) / 128, per_seg = MOEP__FP4_PACK_SCALE_BYTES(nv) / 8;
    const int32_t per_row = C / (nv ? 16 : 32);
    moep__pack_codes<<<moep__pack_grid(nrb * nseg * 32), 256, 0, s>>>((const uint8_t *)src->data, data, nrb,
                                                                      nseg, C);
    if (!nv)
        moep__pack_mx_bias<<<E, 256, 0, s>>>((const uint8_t *)src->scales, (int64_t)R * per_row, bias, global);
    moep__pack_scales<<<moep__pack_grid(nrb * nseg * 8 * per_seg), 256, 0, s>>>(
        (const uint8_t *)src->scales, scales, nrb, nseg, per_seg, per_row, R / 8, nv ? NULL : bias);
    return cudaGetLastError();
}
