#include "act_wire.h"

#include <string.h>

static size_t fp8_scale_count(int32_t hidden) { return ((size_t)hidden + 127) / 128; }

size_t moep__act_wire_row_bytes(moep_dtype_t wire, int32_t hidden) {
    if (wire == MOEP_DTYPE_FP8_E4M3) return (size_t)hidden + 4 * fp8_scale_count(hidden);
    return (size_t)hidden * moep__dtype_size(wire);
}

moep_status_t moep__act_wire_encode(const void *src, moep_dtype_t src_dtype, int32_t hidden,
                                moep_dtype_t wire, uint8_t *dst, float *scratch) {
    if (wire == src_dtype) {
        memcpy(dst, src, (size_t)hidden * moep__dtype_size(wire));
        return MOEP_OK;
    }
    if (wire == MOEP_DTYPE_FP8_E4M3) {
        moep_tensor_t row = moep_tensor_2d((void *)src, src_dtype, 1, hidden);
        return moep_quantize_act_fp8(&row, dst, (float *)(dst + hidden));
    }
    /* f32 -> bf16 */
    moep__row_to_f32(src, src_dtype, hidden, scratch);
    moep__row_from_f32(scratch, hidden, wire, dst);
    return MOEP_OK;
}

void moep__act_wire_decode(const uint8_t *src, moep_dtype_t wire, int32_t hidden, void *dst,
                       moep_dtype_t dst_dtype, float *scratch) {
    if (wire == dst_dtype) {
        memcpy(dst, src, (size_t)hidden * moep__dtype_size(wire));
        return;
    }
    if (wire == MOEP_DTYPE_FP8_E4M3) {
        /* copy the scales out: the wire row gives them no alignment */
        float *scales = scratch + hidden;
        memcpy(scales, src + hidden, fp8_scale_count(hidden) * 4);
        moep_tensor_t row = moep_tensor_2d(dst, dst_dtype, 1, hidden);
        moep_dequantize_act_fp8(src, scales, 1, hidden, &row);
        return;
    }
    moep__row_to_f32(src, wire, hidden, scratch);
    moep__row_from_f32(scratch, hidden, dst_dtype, dst);
}
