/* Device buffers that only grow, taken in stream order (CUDA build): the
 * GPU communicator's (transports/comm/cuda) and the GPU layer's
 * (compute/layer) working buffers.
 *
 * Why stream-ordered: these buffers grow between collectives, and a
 * collective may be stuck on a dead or stalled peer when they do. cudaFree
 * waits for the whole device, so it would block the host on that stuck
 * transfer and turn the comm's timeout into a hang; cudaFreeAsync only
 * enqueues the free behind the buffer's earlier uses on the stream. Where
 * the device or driver has no memory pools (cudaMallocAsync answers
 * cudaErrorNotSupported) the buffer falls back to cudaMalloc / cudaFree. */
#ifndef MOEP_CUDA_BUF_H
#define MOEP_CUDA_BUF_H

#include <cuda_runtime.h>
#include <stdbool.h>
#include <stddef.h>

typedef struct moep__cuda_buf {
    void *p;
    size_t cap;   /* bytes */
    bool ordered; /* p came from cudaMallocAsync (else cudaMalloc) */
} moep__cuda_buf_t;

/* Grow b to at least `need` bytes (with headroom; the old contents are
 * dropped) for use on `stream`: the new buffer is valid in stream order on
 * `stream` (other streams must wait for it there), the old one is freed on
 * `stream` after its earlier uses there. The new buffer is taken before the
 * old one is freed, so a grown buffer always has a new address. On failure
 * (cudaErrorMemoryAllocation, ...) b is unchanged and the error cleared. */
cudaError_t moep__cuda_buf_grow(moep__cuda_buf_t *b, size_t need, cudaStream_t stream);

/* End of life (comm / handle / layer destroy): cudaFree, which waits for
 * the device. The stream the buffer was used on may be gone by then (it is
 * the caller's), and a transfer that timed out was aborted before, so
 * nothing is stuck at this point. */
void moep__cuda_buf_free(moep__cuda_buf_t *b);

#endif
