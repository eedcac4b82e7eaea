/* Dispatch handles: creation, buffers, accessors, release. */
#include <stdlib.h>

#include "comm_internal.h"

moep_status_t moep__handle_create(moep_comm_t *c, moep_handle_t **h_p) {
    moep_handle_t *h = moep__calloc("moep_dispatch", 1, sizeof *h);
    if (h == NULL) return MOEP_ERR_NO_MEMORY;
    int32_t R = c->world_size, L = c->num_local_experts;
    h->comm = c;
    h->send_count = moep__calloc("moep_dispatch", (size_t)R, sizeof(int64_t));
    h->recv_count = moep__calloc("moep_dispatch", (size_t)R, sizeof(int64_t));
    h->recv_offset = moep__calloc("moep_dispatch", (size_t)R + 1, sizeof(int64_t));
    h->peer_direct = moep__calloc("moep_dispatch", (size_t)R, sizeof(bool));
    h->tokens_per_local_expert = moep__calloc("moep_dispatch", (size_t)L + 1, sizeof(int64_t));
    h->expert_offset = moep__calloc("moep_dispatch", (size_t)L + 1, sizeof(int64_t));
    if (!h->send_count || !h->recv_count || !h->recv_offset || !h->peer_direct || !h->tokens_per_local_expert ||
        !h->expert_offset) {
        moep_handle_destroy(h);
        return MOEP_ERR_NO_MEMORY;
    }
    *h_p = h;
    return MOEP_OK;
}

void moep_handle_bytes(const moep_handle_t *h, uint64_t *dispatch_sent, uint64_t *combine_sent) {
    if (dispatch_sent) *dispatch_sent = h ? h->dispatch_wire_bytes : 0;
    if (combine_sent) *combine_sent = h ? h->combine_wire_bytes : 0;
}

void moep_handle_destroy(moep_handle_t *h) {
    if (h == NULL) return;
#ifdef MOEP_HAVE_CUDA
    moep__gpu_handle_free(h);
#endif
    moep_layout_destroy(h->layout);
    free(h->send_count);
    free(h->recv_count);
    free(h->recv_offset);
    free(h->peer_direct);
    free(h->recv_x);
    free(h->recv_local_idx);
    free(h->recv_weight);
    free(h->recv_src);
    free(h->recv_src_token);
    moep__runs_free(&h->send_runs);
    moep__runs_free(&h->recv_runs);
    free(h->tokens_per_local_expert);
    free(h->expert_offset);
    free(h->expert_x);
    free(h->slot_expert_row);
    free(h->send_buf);
    free(h->recv_buf);
    free(h->send_meta);
    free(h->recv_meta);
    free(h->scratch);
    free(h);
}
