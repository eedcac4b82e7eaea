/* FP8 scalars: E4M3 ("fn": no Inf) and E5M2, decode tables and conversions. */
#include "quant_internal.h"

/* Repeat F over 4^k consecutive codes starting at B, for the tables. */
#define MOEP__R4(F, B) F(B), F((B) + 1), F((B) + 2), F((B) + 3)
#define MOEP__R16(F, B) \
    MOEP__R4(F, B), MOEP__R4(F, (B) + 4), MOEP__R4(F, (B) + 8), MOEP__R4(F, (B) + 12)
#define MOEP__R64(F, B) \
    MOEP__R16(F, B), MOEP__R16(F, (B) + 16), MOEP__R16(F, (B) + 32), MOEP__R16(F, (B) + 48)
#define MOEP__R256(F) \
    MOEP__R64(F, 0), MOEP__R64(F, 64), MOEP__R64(F, 128), MOEP__R64(F, 192)

#define MOEP__SIGNED(c, mag) ((c) & 0x80 ? -(mag) : (mag))

/* E4M3: exponent field e (4 bits), mantissa m (3 bits), bias 7; e = 0 is subnormal. */
#define MOEP__E4M3_E(c) (((c) >> 3) & 15)
#define MOEP__E4M3_MAG(c)                                                             \
    (MOEP__E4M3_E(c) == 0 ? (float)((c) & 7) * 0x1p-9f                                \
                          : (float)(8 + ((c) & 7)) * (float)(1u << MOEP__E4M3_E(c)) * 0x1p-10f)
#define MOEP__E4M3_VAL(c) MOEP__SIGNED(c, (((c) & 0x7F) == 0x7F ? NAN : MOEP__E4M3_MAG(c)))

/* E5M2: exponent field e (5 bits), mantissa m (2 bits), bias 15; e = 31 is Inf/NaN. */
#define MOEP__E5M2_E(c) (((c) >> 2) & 31)
#define MOEP__E5M2_MAG(c)                                                             \
    (MOEP__E5M2_E(c) == 31  ? (((c) & 3) == 0 ? INFINITY : NAN)                       \
     : MOEP__E5M2_E(c) == 0 ? (float)((c) & 3) * 0x1p-16f                             \
                            : (float)(4 + ((c) & 3)) * (float)(1u << MOEP__E5M2_E(c)) * 0x1p-17f)
#define MOEP__E5M2_VAL(c) MOEP__SIGNED(c, MOEP__E5M2_MAG(c))

const float moep__e4m3_lut[256] = {MOEP__R256(MOEP__E4M3_VAL)};
const float moep__e5m2_lut[256] = {MOEP__R256(MOEP__E5M2_VAL)};

uint8_t moep_f32_to_e4m3(float f) { return moep__e4m3_encode(f); }
float moep_e4m3_to_f32(uint8_t v) { return moep__e4m3_lut[v]; }
uint8_t moep_f32_to_e5m2(float f) { return moep__e5m2_encode(f); }
float moep_e5m2_to_f32(uint8_t v) { return moep__e5m2_lut[v]; }
