/*
 * Combine: every rank reduces, for each token it received, the weighted sum
 * of its local experts' outputs (f32), sends that one partial row back to the
 * token's home rank, and the home rank adds the partials of all ranks in
 * rank order (deterministic) in f32.
 */
#include <omp.h>
#include <stdbool.h>
#include <string.h>
#include <stdlib.h>

#include "comm_internal.h"
#include "act_wire.h"

static const char *const FN = "moep_combine";

moep_status_t moep_combine_params_init(moep_combine_params_t *p) {
    MOEP_CHECK_ARG("moep_combine_params_init", p);
    memset(p, 0, sizeof *p);
    p->struct_size = sizeof *p;
    return MOEP_OK;
}

static moep_status_t check_inputs(const moep_handle_t *h, const moep_combine_params_t *p) {
    const int64_t y_shape[2] = {h->num_expert_rows, h->hidden};
    const int64_t o_shape[2] = {h->num_tokens, h->hidden};
    MOEP_TRY(moep__check_tensor(FN, "expert_y", p->expert_y, 2, MOEP_ANY, y_shape));
    MOEP_TRY(moep__check_tensor(FN, "out", p->out, 2, MOEP_ANY, o_shape));
    moep_dtype_t yt = p->expert_y->dtype, ot = p->out->dtype;
    if ((yt != MOEP_DTYPE_F32 && yt != MOEP_DTYPE_BF16) || (ot != MOEP_DTYPE_F32 && ot != MOEP_DTYPE_BF16))
        return moep__fail(MOEP_ERR_SHAPE, "%s: expert_y (%s) and out (%s) must be f32 or bf16", FN,
                          moep_dtype_name(yt), moep_dtype_name(ot));
    return MOEP_OK;
}

/* Where received token i's partial goes: the send buffer (grouped by home
 * rank), or for this rank's own tokens straight into the receive slot. */
static uint8_t *partial_row(const moep_handle_t *h, int64_t i, size_t row_bytes) {
    int32_t me = h->comm->rank;
    if (i >= h->recv_offset[me] && i < h->recv_offset[me + 1])
        return (uint8_t *)h->recv_buf +
               (size_t)(h->layout->rank_offset[me] + (i - h->recv_offset[me])) * row_bytes;
    return (uint8_t *)h->send_buf + (size_t)i * row_bytes;
}

/* Partial sums of received tokens, in receive order (grouped by home rank). */
static void reduce_local(const moep_handle_t *h, const moep_tensor_t *y, size_t row_bytes) {
    int32_t H = h->hidden, k = h->top_k;
    moep_dtype_t yt = y->dtype;
    size_t y_row = (size_t)H * moep__dtype_size(yt);
#pragma omp parallel if (h->num_recv * H > MOEP_OMP_MIN_WORK)
    {
        float *acc = h->scratch + (size_t)omp_get_thread_num() * 2 * (size_t)H;
#pragma omp for schedule(static)
        for (int64_t i = 0; i < h->num_recv; i++) {
            bool first = true;
            for (int32_t j = 0; j < k; j++) {
                int64_t row = h->slot_expert_row[(size_t)i * k + j];
                if (row < 0) continue;
                const uint8_t *src = (const uint8_t *)y->data + (size_t)row * y_row;
                float w = h->recv_weight[(size_t)i * k + j];
                if (first)
                    moep__row_scale(acc, w, src, yt, H);
                else
                    moep__row_axpy(acc, w, src, yt, H);
                first = false;
            }
            if (first) memset(acc, 0, (size_t)H * sizeof(float)); /* no local expert: cannot happen */
            moep__row_from_f32(acc, H, yt, partial_row(h, i, row_bytes));
        }
    }
}

/* out[t] = (accumulate ? out[t] : 0) + sum over ranks of the partials, rank order. */
static void reduce_home(const moep_handle_t *h, moep_dtype_t wire, moep_tensor_t *out,
                        bool accumulate, size_t row_bytes) {
    int32_t H = h->hidden, R = h->comm->world_size;
    const moep_layout_t *lay = h->layout;
    size_t o_row = (size_t)H * moep__dtype_size(out->dtype);
#pragma omp parallel if (h->num_tokens * H > MOEP_OMP_MIN_WORK)
    {
        float *acc = h->scratch + (size_t)omp_get_thread_num() * 2 * (size_t)H;
#pragma omp for schedule(static)
        for (int64_t t = 0; t < h->num_tokens; t++) {
            uint8_t *dst = (uint8_t *)out->data + (size_t)t * o_row;
            bool first = !accumulate;
            if (accumulate) moep__row_to_f32(dst, out->dtype, H, acc);
            for (int32_t r = 0; r < R; r++) {
                int32_t slot = lay->token_rank_slot[(size_t)t * R + r];
                if (slot < 0) continue;
                const uint8_t *src = (const uint8_t *)h->recv_buf + (size_t)slot * row_bytes;
                if (first)
                    moep__row_scale(acc, 1.0f, src, wire, H);
                else
                    moep__row_axpy(acc, 1.0f, src, wire, H);
                first = false;
            }
            if (first) memset(acc, 0, (size_t)H * sizeof(float)); /* every slot masked */
            moep__row_from_f32(acc, H, out->dtype, dst);
        }
    }
}

moep_status_t moep_combine(moep_comm_t *c, const moep_combine_params_t *params, moep_handle_t *h) {
    MOEP_TRY(moep__comm_check_usable(c, FN));
    MOEP_CHECK_ARG(FN, h);
#ifdef MOEP_HAVE_CUDA
    if (c->device == MOEP_DEVICE_CUDA) return moep__gpu_combine(c, params, h);
#endif
    if (h->comm != c || h->layout == NULL)
        return moep__fail(MOEP_ERR_INVALID_USAGE,
                          "%s: handle has no completed dispatch on this communicator", FN);
    moep_combine_params_t p;
    moep_combine_params_init(&p);
    MOEP_TRY(moep__load_versioned(FN, &p, sizeof p, params));
    MOEP_TRY(check_inputs(h, &p));

    moep_dtype_t wire = p.expert_y->dtype; /* partials travel in the experts' dtype */
    size_t row_bytes = (size_t)h->hidden * moep__dtype_size(wire);
    int32_t R = c->world_size;
    double t_start = moep__now_ms(), t_reduce = 0;
    c->seq++;
    size_t scratch = 2 * (size_t)h->hidden * (size_t)omp_get_max_threads() * sizeof(float);
    moep_status_t st = moep__buf_reserve(FN, (void **)&h->scratch, &h->scratch_cap, scratch);
    if (st == MOEP_OK)
        st = moep__buf_reserve(FN, &h->send_buf, &h->send_cap, (size_t)h->num_recv * row_bytes);
    if (st == MOEP_OK)
        st = moep__buf_reserve(FN, &h->recv_buf, &h->recv_cap,
                               (size_t)h->layout->num_slots * row_bytes);
    size_t *v = st == MOEP_OK ? calloc((size_t)R * 4, sizeof(size_t)) : NULL;
    if (st == MOEP_OK && v == NULL) st = moep__fail(MOEP_ERR_NO_MEMORY, "%s: oom", FN);
    if (st != MOEP_OK) {
        c->broken = true; /* peers are about to send to us */
    } else {
        size_t *soff = v, *slen = v + R, *roff = v + 2 * R, *rlen = v + 3 * R;
        double t0 = moep__now_ms();
        reduce_local(h, p.expert_y, row_bytes);
        t_reduce = moep__now_ms() - t0;
        for (int32_t r = 0; r < R; r++) {
            soff[r] = (size_t)h->recv_offset[r] * row_bytes;
            slen[r] = (size_t)h->recv_count[r] * row_bytes;
            roff[r] = (size_t)h->layout->rank_offset[r] * row_bytes;
            rlen[r] = (size_t)h->send_count[r] * row_bytes;
        }
        slen[c->rank] = rlen[c->rank] = 0; /* own partials were written in place */
        moep_a2a_part_t part = {moep__tag(c->seq, MOEP_TAG_COMBINE), h->send_buf, soff, slen,
                                h->recv_buf, roff, rlen};
        st = moep__alltoallv(c, FN, &part, 1, &h->combine_wire_bytes);
    }
    double t1 = moep__now_ms();
    if (st == MOEP_OK) reduce_home(h, wire, p.out, p.accumulate != 0, row_bytes);
    MOEP_LOG_AT(MOEP_LOG_DEBUG, "combine rank %d: local reduce %.3f ms, wire %.3f, home reduce %.3f",
                c->rank, t_reduce, t1 - t_start - t_reduce, moep__now_ms() - t1);
    free(v);
    return st;
}
