/* Hopper PTX wrappers for the FP8 GEMM: mbarrier, TMA (bulk tensor copy), wgmma. sm_90a. */
#ifndef MOEP_SM90_PTX_CUH
#define MOEP_SM90_PTX_CUH

#include <cuda.h>
#include <stdint.h>

__device__ __forceinline__ uint32_t moep__smem_addr(const void *p) {
    return (uint32_t)__cvta_generic_to_shared(p);
}

/* The *_at forms take the barrier's shared-memory address (hot loops keep
 * barrier addresses in registers); the others its pointer. */
__device__ __forceinline__ void moep__mbar_init_at(uint32_t addr, uint32_t count) {
    asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;" ::"r"(addr), "r"(count) : "memory");
}

__device__ __forceinline__ void moep__mbar_init(uint64_t *bar, uint32_t count) {
    moep__mbar_init_at(moep__smem_addr(bar), count);
}

__device__ __forceinline__ void moep__mbar_expect_tx_at(uint32_t addr, uint32_t bytes) {
    asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(addr), "r"(bytes) : "memory");
}

__device__ __forceinline__ void moep__fence_barrier_init(void) {
    asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
}

__device__ __forceinline__ void moep__mbar_expect_tx(uint64_t *bar, uint32_t bytes) {
    moep__mbar_expect_tx_at(moep__smem_addr(bar), bytes);
}

__device__ __forceinline__ void moep__mbar_arrive_at(uint32_t addr) {
    asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];" ::"r"(addr) : "memory");
}

__device__ __forceinline__ void moep__mbar_arrive(uint64_t *bar) { moep__mbar_arrive_at(moep__smem_addr(bar)); }

__device__ __forceinline__ void moep__mbar_wait_at(uint32_t addr, uint32_t parity) {
    uint32_t done;
    do {
        asm volatile(
            "{\n\t.reg .pred p;\n\t"
            "mbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\n\t"
            "selp.u32 %0, 1, 0, p;\n\t}"
            : "=r"(done)
            : "r"(addr), "r"(parity)
            : "memory");
    } while (!done);
}

__device__ __forceinline__ void moep__mbar_wait(uint64_t *bar, uint32_t parity) {
    moep__mbar_wait_at(moep__smem_addr(bar), parity);
}

/* Contiguous bytes (a multiple of 16, both ends 16-byte aligned) global ->
 * shared by the copy engine, completing on the barrier at bar_addr. */
__device__ __forceinline__ void moep__bulk_load(uint32_t dst, const void *src, uint32_t bytes, uint32_t bar_addr) {
    asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];" ::"r"(dst),
                 "l"(src), "r"(bytes), "r"(bar_addr)
                 : "memory");
}

__device__ __forceinline__ uint64_t moep__ld_relaxed_u64(const uint64_t *p) {
    uint64_t v;
    asm volatile("ld.relaxed.gpu.global.u64 %0, [%1];" : "=l"(v) : "l"(p) : "memory");
    return v;
}

__device__ __forceinline__ void moep__st_release_u64(uint64_t *p, uint64_t v) {
    asm volatile("st.release.gpu.global.u64 [%0], %1;" ::"l"(p), "l"(v) : "memory");
}

/* Global data written through the generic proxy (plain stores, seen through
 * an acquire), read next by the copy engine (async proxy). */
__device__ __forceinline__ void moep__fence_proxy_async_global(void) {
    asm volatile("fence.proxy.async.global;" ::: "memory");
}

/* 2-D tile load: box at (col c0, row c1) into smem, completing on bar. */
__device__ __forceinline__ void moep__tma_load_2d(void *dst, const CUtensorMap *map, uint64_t *bar,
                                                  int32_t c0, int32_t c1) {
    asm volatile(
        "cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes"
        " [%0], [%1, {%3, %4}], [%2];" ::"r"(moep__smem_addr(dst)),
        "l"((uint64_t)map), "r"(moep__smem_addr(bar)), "r"(c0), "r"(c1)
        : "memory");
}

__device__ __forceinline__ void moep__tma_prefetch_desc(const CUtensorMap *map) {
    asm volatile("prefetch.tensormap [%0];" ::"l"((uint64_t)map) : "memory");
}

/*
 * Shared-memory matrix descriptor, K-major, 128-byte swizzle: rows of 128
 * bytes, 8-row atoms of 1024 bytes (stride byte offset), base 1024-aligned.
 */
__device__ __forceinline__ uint64_t moep__wgmma_desc(const void *smem) {
    uint64_t d = (uint64_t)((moep__smem_addr(smem) & 0x3FFFF) >> 4);
    d |= (uint64_t)1 << 16;           /* leading byte offset (unused with this swizzle) */
    d |= (uint64_t)(1024 >> 4) << 32; /* stride byte offset */
    d |= (uint64_t)1 << 62;           /* SWIZZLE_128B */
    return d;
}

/*
 * wgmma exists only on sm_90a. `nvcc -arch=sm_90a` (the Bazel macro) also
 * emits compute_90 PTX, which must assemble: there the wgmma wrappers trap.
 * The sm_90a machine code is what runs on an H100 / H200.
 */
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define MOEP__WGMMA(...) asm volatile(__VA_ARGS__)
#else
#define MOEP__WGMMA(...) __trap()
#endif

__device__ __forceinline__ void moep__wgmma_fence(void) {
    MOEP__WGMMA("wgmma.fence.sync.aligned;" ::: "memory");
}
__device__ __forceinline__ void moep__wgmma_commit(void) {
    MOEP__WGMMA("wgmma.commit_group.sync.aligned;" ::: "memory");
}
__device__ __forceinline__ void moep__wgmma_wait0(void) {
    MOEP__WGMMA("wgmma.wait_group.sync.aligned 0;" ::: "memory");
}

/* D[64x128] (+)= A[64x32] * B[128x32]^T, e4m3 x e4m3 -> f32; scale_d 0 overwrites D. */
__device__ __forceinline__ void moep__wgmma_m64n128k32_e4m3(float *d, uint64_t da, uint64_t db,
                                                            int scale_d) {
    MOEP__WGMMA(
        "{\n\t.reg .pred p;\n\t"
        "setp.ne.b32 p, %66, 0;\n\t"
        "wgmma.mma_async.sync.aligned.m64n128k32.f32.e4m3.e4m3 "
        "{%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31,%32,%33,%34,%35,%36,%37,%38,%39,%40,%41,%42,%43,%44,%45,%46,%47,%48,%49,%50,%51,%52,%53,%54,%55,%56,%57,%58,%59,%60,%61,%62,%63}, %64, %65, p, 1, 1;\n\t}"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
        : "l"(da), "l"(db), "r"(scale_d));
}

/* Named barrier for the consumer warpgroups only. */
__device__ __forceinline__ void moep__named_bar(uint32_t id, uint32_t threads) {
    asm volatile("bar.sync %0, %1;" ::"r"(id), "r"(threads) : "memory");
}

/* Register reallocation between warpgroups (sm_90a): every thread of the warpgroup executes it. */
template <int N> __device__ __forceinline__ void moep__setmaxnreg_inc(void) {
    MOEP__WGMMA("setmaxnreg.inc.sync.aligned.u32 %0;" ::"n"(N));
}
template <int N> __device__ __forceinline__ void moep__setmaxnreg_dec(void) {
    MOEP__WGMMA("setmaxnreg.dec.sync.aligned.u32 %0;" ::"n"(N));
}

#endif /* MOEP_SM90_PTX_CUH */
