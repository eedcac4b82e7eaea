/*
 * Dispatch: send each token once to every rank holding one of its experts,
 * then lay the received tokens out expert-major for the grouped FFN.
 *
 * Fresh dispatch:  layout -> per-peer headers (counts + shape check) ->
 *                  payload (x row on the wire + global ids + weights +
 *                  the token's index at home, which gives the runs).
 * Cached dispatch: payload of x rows only, counts and ids from the handle;
 *                  runs of consecutive tokens go straight from x
 *                  (dispatch_direct.c).
 */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "comm_internal.h"
#include "act_wire.h"

static const char *const FN = "moep_dispatch";

moep_status_t moep__handle_create(moep_comm_t *c, moep_handle_t **h_p);

moep_status_t moep_dispatch_params_init(moep_dispatch_params_t *p) {
    MOEP_CHECK_ARG("moep_dispatch_params_init", p);
    memset(p, 0, sizeof *p);
    p->struct_size = sizeof *p;
    p->expert_alignment = 1;
    return MOEP_OK;
}

static moep_status_t check_wire(moep_dtype_t x, moep_dtype_t *wire) {
    if (*wire == 0 || *wire == x) {
        *wire = x;
        return MOEP_OK;
    }
    if (*wire == MOEP_DTYPE_BF16 || *wire == MOEP_DTYPE_FP8_E4M3) return MOEP_OK;
    return moep__fail(MOEP_ERR_UNSUPPORTED, "%s: wire dtype %s with x %s is not supported", FN,
                      moep_dtype_name(*wire), moep_dtype_name(x));
}

static moep_status_t check_inputs(const moep_comm_t *c, const moep_dispatch_params_t *p,
                                  bool reuse) {
    const int64_t any2[2] = {MOEP_ANY, MOEP_ANY};
    MOEP_TRY(moep__check_tensor(FN, "x", p->x, 2, MOEP_ANY, any2));
    if (p->x->dtype != MOEP_DTYPE_F32 && p->x->dtype != MOEP_DTYPE_BF16)
        return moep__fail(MOEP_ERR_SHAPE, "%s: x must be f32 or bf16, got %s", FN,
                          moep_dtype_name(p->x->dtype));
    if (p->x->shape[1] <= 0 || p->x->shape[1] > (1 << 24))
        return moep__fail(MOEP_ERR_SHAPE, "%s: hidden size %lld out of range", FN,
                          (long long)p->x->shape[1]);
    if (p->x->shape[0] > INT32_MAX)
        return moep__fail(MOEP_ERR_SHAPE, "%s: too many tokens", FN);
    if (p->expert_alignment < 1 || p->expert_alignment > 4096)
        return moep__fail(MOEP_ERR_INVALID_ARG, "%s: expert_alignment %d outside [1, 4096]", FN,
                          p->expert_alignment);
    if (reuse) return MOEP_OK;
    const int64_t idx_shape[2] = {p->x->shape[0], MOEP_ANY};
    MOEP_TRY(moep__check_tensor(FN, "topk_idx", p->topk_idx, 2, MOEP_DTYPE_I32, idx_shape));
    int64_t k = p->topk_idx->shape[1];
    if (k <= 0 || k > c->num_experts)
        return moep__fail(MOEP_ERR_SHAPE, "%s: top-k %lld outside [1, %d]", FN, (long long)k,
                          c->num_experts);
    const int64_t w_shape[2] = {p->x->shape[0], k};
    return moep__check_tensor(FN, "topk_weights", p->topk_weights, 2, MOEP_DTYPE_F32, w_shape);
}

/* Every rank sends each peer a header; every rank checks all of them, so a
 * disagreement fails on every rank with the same diagnosis. */
static moep_status_t exchange_headers(moep_comm_t *c, moep_handle_t *h, moep_status_t local) {
    int32_t R = c->world_size;
    moep_dispatch_header_t *out = calloc((size_t)R, sizeof *out);
    moep_dispatch_header_t *in = calloc((size_t)R, sizeof *in);
    size_t *off = calloc((size_t)R, sizeof(size_t)), *len = calloc((size_t)R, sizeof(size_t));
    moep_status_t st = MOEP_OK;
    if (!out || !in || !off || !len) st = moep__comm_fail(c, MOEP_ERR_NO_MEMORY, "%s: oom", FN);
    for (int32_t r = 0; st == MOEP_OK && r < R; r++) {
        out[r] = (moep_dispatch_header_t){MOEP_DISPATCH_MAGIC, MOEP_DISPATCH_VERSION, h->hidden,
                                          h->top_k, (int32_t)h->dtype, (int32_t)h->wire_dtype,
                                          (int32_t)local,
                                          c->single_copy ? MOEP_DISPATCH_HEADER_DIRECT_RUNS : 0,
                                          h->send_count[r]};
        off[r] = (size_t)r * sizeof *out;
        len[r] = sizeof *out;
    }
    if (st == MOEP_OK) {
        moep_a2a_part_t part = {moep__tag(c->seq, MOEP_TAG_COUNTS), (const uint8_t *)out, off, len,
                                (uint8_t *)in, off, len};
        st = moep__alltoallv(c, FN, &part, 1, NULL);
    }
    for (int32_t r = 0; st == MOEP_OK && r < R; r++) {
        const moep_dispatch_header_t *m = &in[r];
        if (m->magic != MOEP_DISPATCH_MAGIC || m->version != MOEP_DISPATCH_VERSION ||
            m->num_tokens < 0 || m->num_tokens > INT32_MAX) {
            st = moep__comm_fail(c, MOEP_ERR_PROTOCOL, "%s: malformed header from rank %d", FN, r);
            c->broken = true;
        } else if (local != MOEP_OK) {
            st = local; /* our own failure; the message is already recorded */
        } else if (m->status != MOEP_OK) {
            st = moep__comm_fail(c, MOEP_ERR_REMOTE, "%s: rank %d failed this dispatch with %s",
                                 FN, r, moep_status_name((moep_status_t)m->status));
        } else if (m->hidden != h->hidden || m->top_k != h->top_k || m->dtype != (int32_t)h->dtype ||
                   m->wire_dtype != (int32_t)h->wire_dtype) {
            st = moep__comm_fail(c, MOEP_ERR_MISMATCH,
                                 "%s: rank %d dispatches hidden=%d top_k=%d dtype=%s wire=%s, "
                                 "rank %d hidden=%d top_k=%d dtype=%s wire=%s",
                                 FN, r, m->hidden, m->top_k, moep_dtype_name(m->dtype),
                                 moep_dtype_name(m->wire_dtype), c->rank, h->hidden, h->top_k,
                                 moep_dtype_name(h->dtype), moep_dtype_name(h->wire_dtype));
        } else {
            h->recv_count[r] = m->num_tokens;
            h->peer_direct[r] = c->single_copy && (m->aux & MOEP_DISPATCH_HEADER_DIRECT_RUNS) != 0;
        }
    }
    free(out);
    free(in);
    free(off);
    free(len);
    return st;
}

/* Local checks that need the data; a failure is still announced to the
 * peers through the headers so that every rank stops at the same point. */
static moep_status_t local_checks(moep_comm_t *c, moep_handle_t *h, const moep_dispatch_params_t *p) {
    moep_status_t st = moep_layout_create(p->topk_idx, c->num_experts, c->world_size,
                                          c->expert_rank, &h->layout);
    if (st != MOEP_OK) return moep__comm_fail(c, st, "%s", moep_last_error());
    if (h->wire_dtype == MOEP_DTYPE_FP8_E4M3) {
        int64_t n = moep_tensor_numel(p->x);
        for (int64_t i = 0; i < n; i++) {
            float v = h->dtype == MOEP_DTYPE_F32 ? ((const float *)p->x->data)[i]
                                                 : moep_bf16_to_f32(((const uint16_t *)p->x->data)[i]);
            if (!isfinite(v))
                return moep__comm_fail(c, MOEP_ERR_NUMERIC,
                                       "%s: x[%lld, %lld] is not finite; FP8 wire needs finite input",
                                       FN, (long long)(i / h->hidden), (long long)(i % h->hidden));
        }
    }
    return MOEP_OK;
}

static moep_status_t prepare_fresh(moep_comm_t *c, moep_handle_t *h, const moep_dispatch_params_t *p) {
    moep_layout_destroy(h->layout);
    h->layout = NULL;
    moep_status_t local = local_checks(c, h, p);
    for (int32_t r = 0; r < c->world_size; r++)
        h->send_count[r] = local == MOEP_OK ? h->layout->tokens_per_rank[r] : 0;
    return exchange_headers(c, h, local);
}

/* Expert ids travel as int16 when every id fits (E <= 32767, -1 masked):
 * 16 bytes less per row at top-8. */
static void pack_ids(const int32_t *ids, int32_t k, size_t id_bytes, uint8_t *out) {
    if (id_bytes == 4) {
        memcpy(out, ids, (size_t)k * 4);
        return;
    }
    for (int32_t j = 0; j < k; j++) {
        int16_t v = (int16_t)ids[j]; /* range-checked by the layout */
        memcpy(out + (size_t)j * 2, &v, 2);
    }
}

static int32_t unpack_id(const uint8_t *meta, int32_t j, size_t id_bytes) {
    if (id_bytes == 4) {
        int32_t v;
        memcpy(&v, meta + (size_t)j * 4, 4);
        return v;
    }
    int16_t v;
    memcpy(&v, meta + (size_t)j * 2, 2);
    return v;
}

/* Where slot s's row goes: the send buffer, or, for this rank's own slots,
 * straight to where it is received (no second copy). x rows only when the
 * wire is x's dtype (an FP8 wire decodes every row, own rows included). */
static uint8_t *slot_row(const moep_handle_t *h, int64_t s, bool meta) {
    int32_t me = h->comm->rank;
    int64_t first = h->layout->rank_offset[me], end = h->layout->rank_offset[me + 1];
    size_t bytes = meta ? h->meta_row_bytes : h->wire_row_bytes;
    bool own = s >= first && s < end && (meta || h->wire_dtype == h->dtype);
    if (own) {
        uint8_t *dst = meta ? h->recv_meta : h->recv_x;
        return dst + (size_t)(h->recv_offset[me] + (s - first)) * bytes;
    }
    return (uint8_t *)(meta ? h->send_meta : h->send_buf) + (size_t)s * bytes;
}

/* Fill rank r's block of the send buffers: one x row (and on fresh
 * dispatches one meta row of ids + weights + token index) per slot. */
static void pack_block(moep_handle_t *h, const moep_dispatch_params_t *p, bool fresh, int32_t r) {
    const moep_layout_t *lay = h->layout;
    const uint8_t *x = p->x->data;
    size_t x_row = (size_t)h->hidden * moep__dtype_size(h->dtype);
    size_t scratch_n = moep__act_wire_scratch(h->hidden), k4 = (size_t)h->top_k * 4;
    size_t ids_weights = (size_t)h->top_k * h->id_bytes + k4;
    int64_t first = lay->rank_offset[r], end = lay->rank_offset[r + 1];
#pragma omp parallel if ((end - first) * h->hidden > MOEP_OMP_MIN_WORK)
    {
        float *scratch = h->scratch + (size_t)omp_get_thread_num() * scratch_n;
#pragma omp for schedule(static)
        for (int64_t s = first; s < end; s++) {
            int32_t t = lay->slot_token[s];
            /* cannot fail: FP8 inputs were checked finite before the headers went out */
            (void)moep__act_wire_encode(x + (size_t)t * x_row, h->dtype, h->hidden, h->wire_dtype,
                                        slot_row(h, s, false), scratch);
            if (fresh) {
                uint8_t *meta = slot_row(h, s, true);
                const int32_t *ids = (const int32_t *)p->topk_idx->data + (size_t)t * h->top_k;
                pack_ids(ids, h->top_k, h->id_bytes, meta);
                memcpy(meta + (size_t)h->top_k * h->id_bytes,
                       (const float *)p->topk_weights->data + (size_t)t * h->top_k, k4);
                memcpy(meta + ids_weights, &t, 4);
            }
        }
    }
}

/* Every block that travels packed; the own block too unless own_later. */
static void pack(moep_handle_t *h, const moep_dispatch_params_t *p, bool fresh, bool own_later) {
    for (int32_t r = 0; r < h->comm->world_size; r++) {
        if (r == h->comm->rank && own_later) continue;
        if (!fresh && moep__runs_direct(h, &h->send_runs, r)) continue; /* sent from x */
        pack_block(h, p, fresh, r);
    }
}

typedef struct own_block {
    moep_handle_t *h;
    const moep_dispatch_params_t *p;
} own_block_t;

/* A cached dispatch copies its own rows while its peers' transfers run. */
static moep_status_t pack_own_block(moep_comm_t *c, const char *fn, void *arg) {
    (void)fn;
    own_block_t *o = arg;
    pack_block(o->h, o->p, false, c->rank);
    return MOEP_OK;
}

/* Received rows -> recv_x (decoded unless they arrived there directly), and
 * on fresh dispatches ids mapped to local experts, weights, sources. */
static void unpack(moep_comm_t *c, moep_handle_t *h, bool fresh) {
    size_t x_row = (size_t)h->hidden * moep__dtype_size(h->dtype);
    size_t scratch_n = moep__act_wire_scratch(h->hidden), k4 = (size_t)h->top_k * 4;
    int32_t k = h->top_k;
    bool decode = h->wire_dtype != h->dtype;
#pragma omp parallel if (h->num_recv * h->hidden > MOEP_OMP_MIN_WORK)
    {
        float *scratch = h->scratch + (size_t)omp_get_thread_num() * scratch_n;
#pragma omp for schedule(static)
        for (int64_t i = 0; i < h->num_recv; i++) {
            if (decode)
                moep__act_wire_decode((const uint8_t *)h->recv_buf + (size_t)i * h->wire_row_bytes,
                                      h->wire_dtype, h->hidden, (uint8_t *)h->recv_x + (size_t)i * x_row,
                                      h->dtype, scratch);
            if (!fresh) continue;
            const uint8_t *meta = (const uint8_t *)h->recv_meta + (size_t)i * h->meta_row_bytes;
            memcpy(h->recv_weight + (size_t)i * k, meta + (size_t)k * h->id_bytes, k4);
            memcpy(&h->recv_src_token[i], meta + (size_t)k * h->id_bytes + k4, 4);
            for (int32_t j = 0; j < k; j++) {
                int32_t e = unpack_id(meta, j, h->id_bytes);
                /* ids were range-checked by the sender's layout; re-check: the wire is input */
                h->recv_local_idx[(size_t)i * k + j] =
                    (e >= 0 && e < c->num_experts) ? c->global_to_local[e] : -1;
            }
        }
    }
    if (fresh) {
        for (int32_t r = 0; r < c->world_size; r++)
            for (int64_t i = h->recv_offset[r]; i < h->recv_offset[r + 1]; i++) h->recv_src[i] = r;
    }
}

/* Expert-major row assignment: local expert l's tokens in receive order,
 * each segment padded to the alignment. */
static moep_status_t plan_expert_rows(moep_comm_t *c, moep_handle_t *h) {
    int32_t L = c->num_local_experts, k = h->top_k;
    memset(h->tokens_per_local_expert, 0, (size_t)(L + 1) * sizeof(int64_t));
    for (int64_t s = 0; s < h->num_recv * k; s++) {
        int32_t l = h->recv_local_idx[s];
        if (l >= 0) h->tokens_per_local_expert[l]++;
    }
    h->expert_offset[0] = 0;
    for (int32_t l = 0; l < L; l++) {
        int64_t n = h->tokens_per_local_expert[l], a = h->alignment;
        h->expert_offset[l + 1] = h->expert_offset[l] + (n + a - 1) / a * a;
    }
    h->num_expert_rows = h->expert_offset[L];
    MOEP_TRY(moep__buf_reserve(FN, (void **)&h->slot_expert_row, &h->slot_row_cap,
                               (size_t)(h->num_recv * k) * sizeof(int64_t)));
    int64_t *cursor = calloc((size_t)L + 1, sizeof(int64_t));
    if (cursor == NULL) return moep__fail(MOEP_ERR_NO_MEMORY, "%s: oom", FN);
    memcpy(cursor, h->expert_offset, (size_t)L * sizeof(int64_t));
    for (int64_t s = 0; s < h->num_recv * k; s++) {
        int32_t l = h->recv_local_idx[s];
        h->slot_expert_row[s] = l >= 0 ? cursor[l]++ : -1;
    }
    free(cursor);
    return MOEP_OK;
}

static void fill_expert_x(moep_handle_t *h) {
    size_t x_row = (size_t)h->hidden * moep__dtype_size(h->dtype);
    int32_t k = h->top_k;
    /* padding rows must read as zeros even when the buffer is recycled */
    for (int32_t l = 0; l < h->comm->num_local_experts; l++) {
        int64_t first_pad = h->expert_offset[l] + h->tokens_per_local_expert[l];
        memset((uint8_t *)h->expert_x + (size_t)first_pad * x_row, 0,
               (size_t)(h->expert_offset[l + 1] - first_pad) * x_row);
    }
#pragma omp parallel for schedule(static) if (h->num_recv * h->hidden > MOEP_OMP_MIN_WORK)
    for (int64_t s = 0; s < h->num_recv * k; s++) {
        int64_t row = h->slot_expert_row[s];
        if (row >= 0)
            memcpy((uint8_t *)h->expert_x + (size_t)row * x_row,
                   (const uint8_t *)h->recv_x + (size_t)(s / k) * x_row, x_row);
    }
}

static moep_status_t reserve_buffers(moep_handle_t *h, bool fresh) {
    size_t x_row = (size_t)h->hidden * moep__dtype_size(h->dtype);
    size_t nk = (size_t)(h->num_recv * h->top_k), slots = (size_t)h->layout->num_slots;
    size_t scratch = moep__act_wire_scratch(h->hidden) * (size_t)omp_get_max_threads() * sizeof(float);
    MOEP_TRY(moep__buf_reserve(FN, &h->send_buf, &h->send_cap, slots * h->wire_row_bytes));
    if (h->wire_dtype != h->dtype)
        MOEP_TRY(moep__buf_reserve(FN, &h->recv_buf, &h->recv_cap, (size_t)h->num_recv * h->wire_row_bytes));
    MOEP_TRY(moep__buf_reserve(FN, &h->recv_x, &h->recv_x_cap, (size_t)h->num_recv * x_row));
    MOEP_TRY(moep__buf_reserve(FN, (void **)&h->scratch, &h->scratch_cap, scratch));
    if (fresh) {
        MOEP_TRY(moep__buf_reserve(FN, &h->send_meta, &h->send_meta_cap, slots * h->meta_row_bytes));
        MOEP_TRY(moep__buf_reserve(FN, &h->recv_meta, &h->recv_meta_bytes_cap,
                                   (size_t)h->num_recv * h->meta_row_bytes));
        /* ids, weights and sources share one capacity, sized for the largest */
        size_t cap = h->recv_meta_cap;
        MOEP_TRY(moep__buf_reserve(FN, (void **)&h->recv_local_idx, &cap, nk * 4));
        cap = h->recv_meta_cap;
        MOEP_TRY(moep__buf_reserve(FN, (void **)&h->recv_weight, &cap, nk * 4));
        cap = h->recv_meta_cap;
        MOEP_TRY(moep__buf_reserve(FN, (void **)&h->recv_src, &cap, nk * 4));
        cap = h->recv_meta_cap;
        MOEP_TRY(moep__buf_reserve(FN, (void **)&h->recv_src_token, &cap, nk * 4));
        h->recv_meta_cap = cap;
    }
    return MOEP_OK;
}

/* x rows (straight into recv_x when the wire is x's dtype) and, on fresh
 * dispatches, the meta rows: two parts posted together. */
static moep_status_t exchange_payload(moep_comm_t *c, moep_handle_t *h, bool fresh) {
    int32_t R = c->world_size;
    size_t *v = calloc((size_t)R * 8, sizeof(size_t));
    if (v == NULL) return moep__comm_fail(c, MOEP_ERR_NO_MEMORY, "%s: oom", FN);
    size_t *soff = v, *slen = v + R, *roff = v + 2 * R, *rlen = v + 3 * R;
    size_t *msoff = v + 4 * R, *mslen = v + 5 * R, *mroff = v + 6 * R, *mrlen = v + 7 * R;
    for (int32_t r = 0; r < R; r++) {
        soff[r] = (size_t)h->layout->rank_offset[r] * h->wire_row_bytes;
        slen[r] = (size_t)h->send_count[r] * h->wire_row_bytes;
        roff[r] = (size_t)h->recv_offset[r] * h->wire_row_bytes;
        rlen[r] = (size_t)h->recv_count[r] * h->wire_row_bytes;
        msoff[r] = (size_t)h->layout->rank_offset[r] * h->meta_row_bytes;
        mslen[r] = (size_t)h->send_count[r] * h->meta_row_bytes;
        mroff[r] = (size_t)h->recv_offset[r] * h->meta_row_bytes;
        mrlen[r] = (size_t)h->recv_count[r] * h->meta_row_bytes;
    }
    /* own rows were packed in place (slot_row): nothing to copy */
    int32_t me = c->rank;
    mslen[me] = mrlen[me] = 0;
    if (h->wire_dtype == h->dtype) slen[me] = rlen[me] = 0;
    uint8_t *x_dst = h->wire_dtype == h->dtype ? h->recv_x : h->recv_buf;
    moep_a2a_part_t parts[2] = {
        {moep__tag(c->seq, MOEP_TAG_DISPATCH), h->send_buf, soff, slen, x_dst, roff, rlen},
        {moep__tag(c->seq, MOEP_TAG_DISPATCH_META), h->send_meta, msoff, mslen, h->recv_meta, mroff, mrlen},
    };
    moep_status_t st = moep__alltoallv(c, FN, parts, fresh ? 2 : 1, &h->dispatch_wire_bytes);
    free(v);
    return st;
}

static void fill_result(const moep_comm_t *c, const moep_handle_t *h, moep_dispatch_result_t *res) {
    memset(res, 0, sizeof *res);
    res->num_recv = h->num_recv;
    res->recv_x = moep_tensor_2d(h->recv_x, h->dtype, h->num_recv, h->hidden);
    res->recv_topk_idx = moep_tensor_2d(h->recv_local_idx, MOEP_DTYPE_I32, h->num_recv, h->top_k);
    res->recv_topk_weights = moep_tensor_2d(h->recv_weight, MOEP_DTYPE_F32, h->num_recv, h->top_k);
    res->recv_src_rank = h->recv_src;
    res->num_local_experts = c->num_local_experts;
    res->tokens_per_local_expert = h->tokens_per_local_expert;
    res->expert_x = moep_tensor_2d(h->expert_x, h->dtype, h->num_expert_rows, h->hidden);
    res->expert_offset = h->expert_offset;
    res->num_expert_rows = h->num_expert_rows;
}

static moep_status_t validate_reuse(const moep_handle_t *h, const moep_dispatch_params_t *p,
                                    moep_dtype_t wire) {
    if (h == NULL || h->layout == NULL)
        return moep__fail(MOEP_ERR_INVALID_USAGE,
                          "%s: MOEP_DISPATCH_REUSE_LAYOUT needs a handle from an earlier dispatch", FN);
    if (p->x->shape[0] != h->num_tokens || p->x->shape[1] != h->hidden || p->x->dtype != h->dtype ||
        wire != h->wire_dtype || p->expert_alignment != h->alignment)
        return moep__fail(MOEP_ERR_INVALID_USAGE,
                          "%s: cached layout was made for T=%lld H=%d dtype=%s: x differs", FN,
                          (long long)h->num_tokens, h->hidden, moep_dtype_name(h->dtype));
    return MOEP_OK;
}

moep_status_t moep_dispatch(moep_comm_t *c, const moep_dispatch_params_t *params,
                            moep_handle_t **handle_p, moep_dispatch_result_t *res) {
    MOEP_TRY(moep__comm_check_usable(c, FN));
    MOEP_CHECK_ARG(FN, handle_p);
    MOEP_CHECK_ARG(FN, res);
#ifdef MOEP_HAVE_CUDA
    if (c->device == MOEP_DEVICE_CUDA) return moep__gpu_dispatch(c, params, handle_p, res);
#endif
    moep_dispatch_params_t p;
    moep_dispatch_params_init(&p);
    MOEP_TRY(moep__load_versioned(FN, &p, sizeof p, params));
    bool reuse = (p.flags & MOEP_DISPATCH_REUSE_LAYOUT) != 0;
    MOEP_TRY(check_inputs(c, &p, reuse));
    moep_dtype_t wire = p.wire_dtype;
    MOEP_TRY(check_wire(p.x->dtype, &wire));
    if (reuse) MOEP_TRY(validate_reuse(*handle_p, &p, wire));
    bool direct = reuse && wire == p.x->dtype; /* rows can go straight from x */

    moep_handle_t *h = *handle_p;
    bool created = false;
    if (h == NULL) {
        MOEP_TRY(moep__handle_create(c, &h));
        created = true;
    } else if (h->comm != c) {
        return moep__fail(MOEP_ERR_INVALID_USAGE, "%s: handle belongs to another communicator", FN);
    }
    c->seq++;
    moep_status_t st = MOEP_OK;
    double t0 = moep__now_ms(), t_layout = t0, t_pack = t0, t_wire = t0;
    if (!reuse) {
        h->num_tokens = p.x->shape[0];
        h->hidden = (int32_t)p.x->shape[1];
        h->top_k = (int32_t)p.topk_idx->shape[1];
        h->dtype = p.x->dtype;
        h->wire_dtype = wire;
        h->alignment = p.expert_alignment;
        h->wire_row_bytes = moep__act_wire_row_bytes(wire, h->hidden);
        h->id_bytes = c->num_experts <= INT16_MAX ? 2 : 4;
        h->meta_row_bytes = (size_t)h->top_k * (h->id_bytes + 4) + 4; /* + token index */
        st = prepare_fresh(c, h, &p);
        t_layout = moep__now_ms();
    }
    if (st == MOEP_OK) {
        h->recv_offset[0] = 0;
        for (int32_t r = 0; r < c->world_size; r++)
            h->recv_offset[r + 1] = h->recv_offset[r] + h->recv_count[r];
        h->num_recv = h->recv_offset[c->world_size];
        st = reserve_buffers(h, !reuse);
        if (st == MOEP_OK) pack(h, &p, !reuse, direct);
        /* failing here, after the counts went out, leaves the peers waiting
         * for a payload that will not come: the communicator is out of step */
        if (st != MOEP_OK) c->broken = true;
    }
    t_pack = moep__now_ms();
    own_block_t own = {h, &p};
    if (st == MOEP_OK && direct)
        st = moep__dispatch_cached_exchange(c, h, p.x->data, pack_own_block, &own);
    else if (st == MOEP_OK)
        st = exchange_payload(c, h, !reuse);
    t_wire = moep__now_ms();
    if (st == MOEP_OK) {
        unpack(c, h, !reuse);
        if (!reuse) st = plan_expert_rows(c, h);
        if (!reuse && st == MOEP_OK) st = moep__runs_find(c, h);
    }
    bool want_expert_x = (p.flags & MOEP_DISPATCH_NO_EXPERT_X) == 0;
    if (st == MOEP_OK && want_expert_x)
        st = moep__buf_reserve(FN, &h->expert_x, &h->expert_x_cap,
                               (size_t)h->num_expert_rows * h->hidden * moep__dtype_size(h->dtype));
    if (st != MOEP_OK) {
        if (created) moep_handle_destroy(h);
        else if (!reuse) { moep_layout_destroy(h->layout); h->layout = NULL; }
        return st;
    }
    if (want_expert_x) fill_expert_x(h);
    fill_result(c, h, res);
    MOEP_LOG_AT(MOEP_LOG_DEBUG,
                "dispatch rank %d: layout+counts %.3f ms, pack %.3f, payload %.3f, unpack+expert rows %.3f",
                c->rank, t_layout - t0, t_pack - t_layout, t_wire - t_pack, moep__now_ms() - t_wire);
    if (!want_expert_x) res->expert_x.data = NULL;
    *handle_p = h;
    return MOEP_OK;
}
