/*
 * The count message of a fresh dispatch, written by one CUDA block: the
 * header fields (as moep_dispatch_header_t, status from bad) then E i64
 * expert counts. Shared by the layout's count kernel, whose last block
 * writes every rank's message once the counts are final.
 */
#ifndef MOEP_COUNT_MSG_CUH
#define MOEP_COUNT_MSG_CUH

#include "cuda_kernels.h"

__device__ inline void moep__count_msg_write(const moep__cuda_header_args_t &a, int64_t rank_count,
                                             const int64_t *expert_count, bool bad, uint8_t *m) {
    if (threadIdx.x == 0) {
        int32_t *h = (int32_t *)m;
        h[0] = (int32_t)a.magic;
        h[1] = (int32_t)a.version;
        h[2] = a.hidden;
        h[3] = a.top_k;
        h[4] = a.dtype;
        h[5] = a.wire_dtype;
        h[6] = bad ? a.status_if_bad : 0;
        h[7] = a.num_tokens; /* GPU path: the sender's T (sizes the next one-round dispatch) */
        *(int64_t *)(m + 32) = bad ? 0 : rank_count;
    }
    int64_t *c = (int64_t *)(m + 40);
    for (int32_t e = threadIdx.x; e < a.num_experts; e += blockDim.x) c[e] = bad ? 0 : expert_count[e];
}

#endif
