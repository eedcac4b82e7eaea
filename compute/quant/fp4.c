/* FP4 E2M1 and the E8M0 power-of-two scale: scalar conversions. */
#include "quant_internal.h"

const float moep__e2m1_lut[16] = {0.0f,  0.5f,  1.0f,  1.5f,  2.0f,  3.0f,  4.0f,  6.0f,
                                  -0.0f, -0.5f, -1.0f, -1.5f, -2.0f, -3.0f, -4.0f, -6.0f};

uint8_t moep_f32_to_e2m1(float f) { return moep__e2m1_encode(f); }

/* Codes above 15 are not E2M1: only the low nibble counts (as when unpacking a byte). */
float moep_e2m1_to_f32(uint8_t code) { return moep__e2m1_lut[code & 15]; }

/*
 * E8M0 of f = floor(log2 f) + 127, i.e. the f32 exponent field, clamped to
 * [0, 254]: rounds toward zero like the MX shared exponent. +Inf -> 254,
 * +-0 and f < 2^-126 -> 0; NaN and negative f -> 0xFF (NaN: no sign, no zero).
 */
uint8_t moep_f32_to_e8m0(float f) {
    uint32_t u = moep__f32_bits(f);
    if ((u & 0x7FFFFFFFu) > 0x7F800000u) return 0xFF;
    if (u & 0x80000000u) return (u & 0x7FFFFFFFu) == 0 ? 0 : 0xFF;
    uint32_t e = u >> 23;
    return (uint8_t)(e > 254 ? 254 : e);
}

float moep_e8m0_to_f32(uint8_t v) { return moep__e8m0_decode(v); }
