/*
 * FP4 (E2M1) -> f16 in registers, exact. Eight codes of one 32-bit word
 * (element n in nibble n, low nibble first) become four f16x2 words; word c
 * holds elements (c, c + 4). The magnitude's f16 high byte comes from an
 * 8-entry byte table through PRMT (the f16 low byte of every E2M1 value is
 * 0, and table entry 0 is 0x00, so selector nibble 0 gives the low byte);
 * the sign bits are moved into place.
 */
#ifndef MOEP_FP4_DECODE_CUH
#define MOEP_FP4_DECODE_CUH

#include <stdint.h>

/* f16 high bytes of E2M1 magnitudes {0, .5, 1, 1.5, 2, 3, 4, 6}. */
#define MOEP__E2M1_F16HI_LO 0x3E3C3800u
#define MOEP__E2M1_F16HI_HI 0x46444240u

__device__ __forceinline__ void moep__e2m1x8_to_f16(uint32_t w, uint32_t tlo, uint32_t thi,
                                                    uint32_t out[4]) {
    const uint32_t w2 = __byte_perm(w, 0, 0x3120); /* nibbles 0 1 4 5 2 3 6 7 */
    out[0] = __byte_perm(tlo, thi, (w2 << 4) & 0x7070u) | ((w << 12) & 0x80008000u);
    out[1] = __byte_perm(tlo, thi, w2 & 0x7070u) | ((w << 8) & 0x80008000u);
    out[2] = __byte_perm(tlo, thi, (w2 >> 12) & 0x7070u) | ((w << 4) & 0x80008000u);
    out[3] = __byte_perm(tlo, thi, (w2 >> 16) & 0x7070u) | (w & 0x80008000u);
}

/*
 * Tables for E2M1 * 2^x (MXFP4): x shifts the f16 exponent (4 in the high
 * byte per step), exact while every product stays a normal f16: x in
 * [-13, 13]. Returns the extra factor (f16x2) for x < -13, else 0.
 */
__device__ __forceinline__ uint32_t moep__mx_tables(uint32_t e8m0, uint32_t *tlo, uint32_t *thi) {
    int x = (int)e8m0 - 127;
    int xc = x < -13 ? -13 : (x > 13 ? 13 : x);
    *tlo = MOEP__E2M1_F16HI_LO + (uint32_t)(xc * 4) * 0x01010100u;
    *thi = MOEP__E2M1_F16HI_HI + (uint32_t)(xc * 4) * 0x01010101u;
    if (x >= -13) return 0;
    int d = -13 - x; /* multiply by 2^-d: f16 normal to 2^-14, subnormal to 2^-24 */
    uint32_t h = d <= 14 ? (uint32_t)(15 - d) << 10 : (d <= 24 ? 1u << (24 - d) : 0u);
    return h | (h << 16);
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
