/* The GPU expert FFN in builds without CUDA: MOEP_ERR_UNSUPPORTED. */
#include "moep_cuda_ffn.h"
#include "moep_internal.h"

moep_status_t moep_expert_ffn_cuda(const moep_expert_weights_t *w, const moep_tensor_t *x,
                                   const moep_tensor_t *x_scales, const int64_t *expert_offset,
                                   moep_tensor_t *y, moep_stream_t stream) {
    (void)w, (void)x, (void)x_scales, (void)expert_offset, (void)y, (void)stream;
    return moep__fail(MOEP_ERR_UNSUPPORTED, "moep_expert_ffn_cuda: built without CUDA");
}

moep_status_t moep_expert_ffn_masked_cuda(const moep_expert_weights_t *w, const moep_tensor_t *x,
                                          const moep_tensor_t *x_scales, const int64_t *counts,
                                          moep_tensor_t *y, moep_stream_t stream) {
    (void)w, (void)x, (void)x_scales, (void)counts, (void)y, (void)stream;
    return moep__fail(MOEP_ERR_UNSUPPORTED, "moep_expert_ffn_masked_cuda: built without CUDA");
}

moep_status_t moep_expert_ffn_cuda_ws(const moep_expert_weights_t *w, const moep_tensor_t *x,
                                      const moep_tensor_t *x_scales, const int64_t *expert_offset,
                                      moep_tensor_t *y, void *workspace, size_t workspace_bytes,
                                      moep_stream_t stream) {
    (void)workspace, (void)workspace_bytes;
    return moep_expert_ffn_cuda(w, x, x_scales, expert_offset, y, stream);
}

moep_status_t moep_expert_ffn_masked_cuda_ws(const moep_expert_weights_t *w, const moep_tensor_t *x,
                                             const moep_tensor_t *x_scales, const int64_t *counts,
                                             moep_tensor_t *y, void *workspace, size_t workspace_bytes,
                                             moep_stream_t stream) {
    (void)workspace, (void)workspace_bytes;
    return moep_expert_ffn_masked_cuda(w, x, x_scales, counts, y, stream);
}

moep_status_t moep_expert_ffn_cuda_workspace_size(const moep_expert_weights_t *w,
                                                  const moep_tensor_t *x, int masked, size_t *bytes) {
    (void)w, (void)x, (void)masked;
    if (bytes != NULL) *bytes = 0;
    return moep__fail(MOEP_ERR_UNSUPPORTED, "moep_expert_ffn_cuda_workspace_size: built without CUDA");
}

moep_status_t moep_expert_weights_pack_cuda_size(const moep_expert_weights_t *w, size_t *bytes) {
    (void)w;
    if (bytes != NULL) *bytes = 0;
    return moep__fail(MOEP_ERR_UNSUPPORTED, "moep_expert_weights_pack_cuda_size: built without CUDA");
}

moep_status_t moep_expert_weights_pack_cuda(const moep_expert_weights_t *w, void *buffer, size_t bytes,
                                            moep_expert_weights_t *packed, moep_stream_t stream) {
    (void)w, (void)buffer, (void)bytes, (void)packed, (void)stream;
    return moep__fail(MOEP_ERR_UNSUPPORTED, "moep_expert_weights_pack_cuda: built without CUDA");
}
