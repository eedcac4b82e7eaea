/* Device buffers that only grow, taken in stream order (cuda_buf.h). */
#include "cuda_buf.h"

cudaError_t moep__cuda_buf_grow(moep__cuda_buf_t *b, size_t need, cudaStream_t stream) {
    if (need <= b->cap && b->p != NULL) return cudaSuccess;
    size_t grown = need + need / 4 + 256;
    void *p = NULL;
    cudaError_t e = cudaMallocAsync(&p, grown, stream);
    bool ordered = e == cudaSuccess;
    if (e == cudaErrorNotSupported) { /* no memory pools on this device / driver */
        cudaGetLastError();
        e = cudaMalloc(&p, grown);
    }
    if (e != cudaSuccess) {
        cudaGetLastError(); /* an allocation failure is not sticky: clear it */
        return e;
    }
    if (b->p != NULL && b->ordered)
        cudaFreeAsync(b->p, stream);
    else if (b->p != NULL)
        cudaFree(b->p);
    b->p = p;
    b->cap = grown;
    b->ordered = ordered;
    return cudaSuccess;
}

void moep__cuda_buf_free(moep__cuda_buf_t *b) {
    if (b->p != NULL) cudaFree(b->p);
    b->p = NULL;
    b->cap = 0;
    b->ordered = false;
}
