/*
 * FP4 (E2M1) -> f16 in registers, exact, by bit placement ("exponent trick").
 *
 * An E2M1 code is s e1 e0 m0 (value (-1)^s 2^(e-1) (1 + m0/2) for e = e1e0 > 0,
 * (-1)^s m0/2 for e = 0). Put e1 e0 m0 at f16 bits 11..9 (exponent field
 * 000e1e0, top mantissa bit m0) and s at bit 15: the f16 is exactly
 * value * 2^-14 for all 16 codes (e = 0 lands on the f16 subnormals 0 and
 * 2^-15, also exact). The 2^14 goes into the block-scale multiply (HMUL2),
 * see moep__mx_factor and the NVFP4 note in fp4_ffn.cu.
 *
 * Eight codes of one 32-bit word (element n in nibble n, low nibble first)
 * become four f16x2 words; word c holds elements (c, c + 4), whose nibbles
 * sit 16 bits apart, so one shift + mask places both halves. A nibble's sign
 * must land 6 bits above its m0 but sits 3 above it, so two spread words are
 * made first (one bit-select each): E has the even nibbles' magnitudes in
 * place and their signs 3 bits higher (over the odd nibble's bits, which E
 * does not need), O the odd nibbles' magnitudes 3 bits lower under their
 * signs. Then out[c] = (E or O shifted) & 0x8E008E00. 11 integer instructions
 * per word (2 shifts + 2 LOP3 for E, O; 3 shifts + 4 LOP3 for the outputs).
 * Checked on the CPU against the exact values for all 2^32 words.
 */
#ifndef MOEP_FP4_DECODE_CUH
#define MOEP_FP4_DECODE_CUH

#include <stdint.h>

/* (a & c) | (b & ~c) in one LOP3 (written as two masks, nvcc makes two). */
template <uint32_t C>
__device__ __forceinline__ uint32_t moep__bitsel(uint32_t a, uint32_t b) {
    uint32_t r;
    asm("lop3.b32 %0, %1, %2, %3, 0xE4;" : "=r"(r) : "r"(a), "r"(b), "n"(C));
    return r;
}

/* out[c] = f16x2 (element c, element c + 4) * 2^-14, exactly. */
__device__ __forceinline__ void moep__e2m1x8_to_f16s(uint32_t w, uint32_t out[4]) {
    const uint32_t m = 0x8E008E00u; /* sign bit 15, magnitude bits 11..9 of each half */
    /* even nibbles 0 2 4 6: magnitude at 8k..8k+2, sign at 8k+6 */
    const uint32_t e = moep__bitsel<0x07070707u>(w, w << 3);
    /* odd nibbles 1 3 5 7: magnitude at 8k+1..8k+3, sign at 8k+7 */
    const uint32_t o = moep__bitsel<0x0E0E0E0Eu>(w >> 3, w);
    out[0] = (e << 9) & m;
    out[1] = (o << 8) & m;
    out[2] = (e << 1) & m;
    out[3] = o & m;
}

/*
 * MXFP4 block scale 2^x (E8M0 byte, x = e8m0 - 127) as f16x2 factors for the
 * codes decoded above (value * 2^-14): value * 2^x = (value * 2^-14) * 2^(x+14).
 * *f1 = 2^(min(x, 1) + 14): an f16 normal for x in [-28, 1], subnormal for
 * [-38, -29] (one correctly rounded product, the same result as rounding
 * value * 2^x to f16), 0 below -38 (every product rounds to 0 there).
 * Returns a second factor for x > 1 (rare: weights of magnitude >= 8), else
 * 1.0: after *f1 the value is value * 2, exact, then 2^(min(x, 13) - 1). x > 13
 * is clamped to 13 (6 * 2^14 overflows f16), as the table decode did.
 */
__device__ __forceinline__ uint32_t moep__mx_factor(uint32_t e8m0, uint32_t *f1) {
    const int e = (int)e8m0;
    const uint32_t h = e >= 99 ? (uint32_t)(min(e, 128) - 98) << 10 : (e >= 89 ? 1u << (e - 89) : 0u);
    *f1 = h * 0x10001u;
    const uint32_t g = e > 128 ? (uint32_t)(min(e, 140) - 113) << 10 : 0x3C00u;
    return g * 0x10001u;
}

__device__ __forceinline__ uint32_t moep__hmul2(uint32_t a, uint32_t b) {
    uint32_t r;
    asm("mul.rn.f16x2 %0, %1, %2;" : "=r"(r) : "r"(a), "r"(b));
    return r;
}

__device__ __forceinline__ void moep__mma_f16(float *c, uint32_t a0, uint32_t a1, uint32_t a2,
                                              uint32_t a3, uint32_t b0, uint32_t b1) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
        "{%8,%9}, {%0,%1,%2,%3};"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}

#endif /* MOEP_FP4_DECODE_CUH */
