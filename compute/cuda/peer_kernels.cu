/*
 * Signals between the GPUs of one node for the peer-mapped combine
 * (transports/comm/cuda/gpu_peer.c): release stores into the peers' signal
 * areas, acquire loads of ours, with a deadline read from %globaltimer so a
 * dead or stalled peer ends in a reported error, never a hung GPU.
 */
#include <cuda_runtime.h>

#include "cuda_kernels.h"

namespace {

__device__ inline uint64_t load_acquire(const uint64_t *p) {
    uint64_t v;
    asm volatile("ld.acquire.sys.global.u64 %0, [%1];" : "=l"(v) : "l"(p) : "memory");
    return v;
}

__device__ inline void store_release(uint64_t *p, uint64_t v) {
    asm volatile("st.release.sys.global.u64 [%0], %1;" ::"l"(p), "l"(v) : "memory");
}

__device__ inline uint64_t now_ns() {
    uint64_t t;
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
    return t;
}

/* One thread per peer q: signal q, then wait for q's signal. */
__global__ void peer_sync_kernel(moep__cuda_peer_sync_t a) {
    int32_t q = threadIdx.x;
    if (q >= a.ranks || q == a.me) return;
    if (*(volatile int32_t *)a.error != 0) return; /* a peer is already given up on: no second wait */
    __threadfence_system();
    store_release(a.area[q] + (size_t)a.kind * a.ranks + a.me, a.value);
    const uint64_t *mine = a.area[a.me] + (size_t)a.kind * a.ranks + q;
    uint64_t start = now_ns();
    while (load_acquire(mine) < a.value) {
        if (now_ns() - start > a.timeout_ns) {
            *(volatile int32_t *)a.error = 1 + q;
            __threadfence_system();
            return;
        }
    }
}

} // namespace

extern "C" int moep__cuda_peer_sync(const moep__cuda_peer_sync_t *a, moep_stream_t stream) {
    if (a->ranks < 2) return cudaSuccess;
    peer_sync_kernel<<<1, 32 * ((a->ranks + 31) / 32), 0, (cudaStream_t)stream>>>(*a);
    return cudaGetLastError();
}
