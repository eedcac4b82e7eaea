/* Row encodings on the wire: f32, bf16, or FP8 E4M3 with 1x128 f32 scales. */
#ifndef MOEP_ACT_WIRE_H
#define MOEP_ACT_WIRE_H

#include "moep_internal.h"

/* Bytes of one H-wide row in wire format `wire`. */
size_t moep__act_wire_row_bytes(moep_dtype_t wire, int32_t hidden);
/* Floats of scratch a thread needs for encode/decode of an H-wide row. */
static inline size_t moep__act_wire_scratch(int32_t hidden) { return (size_t)hidden + ((size_t)hidden + 127) / 128; }
/* Encode one row of `src` (f32 or bf16) into `dst`; scratch holds H floats.
 * MOEP_ERR_NUMERIC if FP8 meets a non-finite value. */
moep_status_t moep__act_wire_encode(const void *src, moep_dtype_t src_dtype, int32_t hidden,
                                moep_dtype_t wire, uint8_t *dst, float *scratch);
/* Decode one row into `dst` (f32 or bf16); scratch holds moep__act_wire_scratch(H) floats. */
void moep__act_wire_decode(const uint8_t *src, moep_dtype_t wire, int32_t hidden, void *dst,
                       moep_dtype_t dst_dtype, float *scratch);

#endif
