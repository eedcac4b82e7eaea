/*
 * Dispatch + combine benchmark over the CPU transports, with the peer a CPU
 * user would pick measured in the same processes: Open MPI's MPI_Alltoallv
 * moving the same per-rank bytes (counts by MPI_Alltoall first, as moep
 * exchanges counts before the payload).
 *
 * Run under mpirun (the MPI bootstrap creates the moep communicator):
 *   mpirun -np 4 ep_bench --transport ucx [--tokens 4096 --hidden 2048 --experts 64 --topk 8]
 * Work per rank and call: T tokens of H bf16 values, each sent once to every
 * rank holding one of its top-k experts (uniform random routing), plus k ids
 * and k weights per token on fresh dispatches; combine returns one bf16 row
 * per (token, rank). Dispatch returns recv_x only (MOEP_DISPATCH_NO_EXPERT_X,
 * DeepEP normal-mode semantics) unless the row says "expert-major". Times:
 * median over iterations of the slowest rank. The MPI floor runs in its own
 * tight loop (its buffers stay hot); the last row also times MPI_Alltoallv of
 * the cached dispatch's bytes inside the moep loop (right after moep's cached
 * dispatch), where caches and scheduling are as moep finds them.
 */
#include <openmpi/mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "moep.h"

typedef struct opts {
    int tokens, hidden, experts, topk, iters;
    const char *transport;
} opts_t;

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Slowest rank's time of each iteration, then the median. */
static double median_of_max(double *t, int n) {
    MPI_Allreduce(MPI_IN_PLACE, t, n, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    qsort(t, (size_t)n, sizeof *t, cmp_d);
    return t[n / 2];
}

static uint64_t rng(uint64_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static void make_tokens(const opts_t *o, int rank, uint16_t *x, int32_t *idx, float *w) {
    uint64_t s = 0x9e3779b97f4a7c15ull * (uint64_t)(rank + 1);
    for (long i = 0; i < (long)o->tokens * o->hidden; i++)
        x[i] = moep_f32_to_bf16((float)(rng(&s) % 2001) / 1000.0f - 1.0f);
    for (int t = 0; t < o->tokens; t++)
        for (int j = 0; j < o->topk; j++) {
            int32_t e, dup;
            do {
                e = (int32_t)(rng(&s) % (uint64_t)o->experts);
                dup = 0;
                for (int q = 0; q < j; q++) dup |= idx[t * o->topk + q] == e;
            } while (dup);
            idx[t * o->topk + j] = e;
            w[t * o->topk + j] = 1.0f / o->topk;
        }
}

static double now(void) { return MPI_Wtime() * 1e3; }

#define CHECK(call)                                                                            \
    do {                                                                                       \
        moep_status_t st_ = (call);                                                            \
        if (st_ != MOEP_OK) {                                                                  \
            fprintf(stderr, "rank %d: %s: %s (%s)\n", rank, #call, moep_status_name(st_),      \
                    moep_last_error());                                                        \
            MPI_Abort(MPI_COMM_WORLD, 1);                                                      \
        }                                                                                      \
    } while (0)

/* MPI peer: the same exchange with MPI_Alltoall(counts) + MPI_Alltoallv(bytes). */
static void mpi_exchange(const int *send_bytes, int *recv_bytes, char *sbuf, char *rbuf, int R,
                         int with_counts) {
    int sdis[64], rdis[64];
    if (with_counts) MPI_Alltoall(send_bytes, 1, MPI_INT, recv_bytes, 1, MPI_INT, MPI_COMM_WORLD);
    sdis[0] = rdis[0] = 0;
    for (int r = 1; r < R; r++) {
        sdis[r] = sdis[r - 1] + send_bytes[r - 1];
        rdis[r] = rdis[r - 1] + recv_bytes[r - 1];
    }
    MPI_Alltoallv(sbuf, send_bytes, sdis, MPI_BYTE, rbuf, recv_bytes, rdis, MPI_BYTE, MPI_COMM_WORLD);
}

/* ---- The peer as a user would write it with MPI: the same algorithm as
 * moep (gather rows per destination rank, counts then payload; combine:
 * weighted local reduction, payload back, sum at home) in plain loops. ---- */

static float bf(uint16_t b) {
    uint32_t u = (uint32_t)b << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}
static uint16_t to_bf(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

static void user_pack(const moep_layout_t *lay, const uint16_t *x, const int32_t *idx, const float *w,
                      int H, int k, char *sbuf) {
    size_t row = (size_t)H * 2, meta = (size_t)k * 8;
    for (int64_t s = 0; s < lay->num_slots; s++) {
        int32_t t = lay->slot_token[s];
        char *dst = sbuf + (size_t)s * (row + meta);
        memcpy(dst, x + (size_t)t * H, row);
        memcpy(dst + row, idx + (size_t)t * k, (size_t)k * 4);
        memcpy(dst + row + (size_t)k * 4, w + (size_t)t * k, (size_t)k * 4);
    }
}

/* Received rows [n, row + meta] -> one weighted partial row each, bf16. */
static void user_reduce_local(const char *rbuf, long n, int H, int k, int E, int R, int rank,
                              char *sbuf, float *acc) {
    size_t row = (size_t)H * 2, meta = (size_t)k * 8;
    for (long i = 0; i < n; i++) {
        const char *src = rbuf + (size_t)i * (row + meta);
        int32_t ids[64];
        float ws[64];
        memcpy(ids, src + row, (size_t)k * 4);
        memcpy(ws, src + row + (size_t)k * 4, (size_t)k * 4);
        memset(acc, 0, (size_t)H * 4);
        const uint16_t *y = (const uint16_t *)src; /* identity experts: y = x */
        for (int j = 0; j < k; j++)
            if (ids[j] >= 0 && ids[j] / (E / R) == rank)
                for (int d = 0; d < H; d++) acc[d] += ws[j] * bf(y[d]);
        uint16_t *dst = (uint16_t *)(sbuf + (size_t)i * row);
        for (int d = 0; d < H; d++) dst[d] = to_bf(acc[d]);
    }
}

static void user_reduce_home(const moep_layout_t *lay, const char *rbuf, int H, int R, uint16_t *out,
                             float *acc) {
    size_t row = (size_t)H * 2;
    for (int t = 0; t < lay->num_tokens; t++) {
        memset(acc, 0, (size_t)H * 4);
        for (int r = 0; r < R; r++) {
            int32_t slot = lay->token_rank_slot[(size_t)t * R + r];
            if (slot < 0) continue;
            const uint16_t *src = (const uint16_t *)(rbuf + (size_t)slot * row);
            for (int d = 0; d < H; d++) acc[d] += bf(src[d]);
        }
        for (int d = 0; d < H; d++) out[(size_t)t * H + d] = to_bf(acc[d]);
    }
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    int rank, R;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &R);
    opts_t o = {4096, 2048, 64, 8, 10, NULL};
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--tokens")) o.tokens = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--hidden")) o.hidden = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--experts")) o.experts = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--topk")) o.topk = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--iters")) o.iters = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--transport")) o.transport = argv[i + 1];
    }
    if (R > 64 || o.experts % R) MPI_Abort(MPI_COMM_WORLD, 2);
    size_t xn = (size_t)o.tokens * o.hidden;
    uint16_t *x = malloc(xn * 2);
    int32_t *idx = malloc((size_t)o.tokens * o.topk * 4);
    float *w = malloc((size_t)o.tokens * o.topk * 4);
    make_tokens(&o, rank, x, idx, w);

    moep_bootstrap_t *bs;
    CHECK(moep_bootstrap_mpi_create(NULL, &bs));
    moep_comm_params_t cp;
    moep_comm_params_init(&cp);
    cp.transport = o.transport;
    cp.num_experts = o.experts;
    moep_comm_t *comm;
    CHECK(moep_comm_create(&cp, bs, &comm));

    moep_tensor_t xt = moep_tensor_2d(x, MOEP_DTYPE_BF16, o.tokens, o.hidden);
    moep_tensor_t it = moep_tensor_2d(idx, MOEP_DTYPE_I32, o.tokens, o.topk);
    moep_tensor_t wt = moep_tensor_2d(w, MOEP_DTYPE_F32, o.tokens, o.topk);
    moep_tensor_t out = moep_tensor_2d(malloc(xn * 2), MOEP_DTYPE_BF16, o.tokens, o.hidden);
    moep_dispatch_params_t dp;
    moep_dispatch_params_init(&dp);
    dp.x = &xt;
    dp.topk_idx = &it;
    dp.topk_weights = &wt;
    moep_handle_t *h = NULL;
    moep_dispatch_result_t res;
    moep_combine_params_t cbp;
    moep_combine_params_init(&cbp);
    cbp.out = &out;

    int n = o.iters, warm = 2;
    double *t_fresh = calloc((size_t)n, 8), *t_comb = calloc((size_t)n, 8), *t_cached = calloc((size_t)n, 8);
    double *t_major = calloc((size_t)n, 8), *m_cached_inloop = calloc((size_t)n, 8);
    double *m_fresh = calloc((size_t)n, 8), *m_comb = calloc((size_t)n, 8), *m_cached = calloc((size_t)n, 8);
    uint64_t d_bytes = 0, c_bytes = 0;
    void *ey = NULL;
    moep_tensor_t eyt;
    /* the same per-peer bytes through MPI */
    moep_layout_t *lay;
    CHECK(moep_layout_create(&it, o.experts, R, NULL, &lay));
    int s_fresh[64], s_cached[64], s_comb[64], r_fresh[64], r_cached[64], r_comb[64];
    size_t row = (size_t)o.hidden * 2, meta = (size_t)o.topk * 8;
    long stot = 0;
    for (int r = 0; r < R; r++) {
        s_fresh[r] = (int)(lay->tokens_per_rank[r] * (long)(row + meta));
        s_cached[r] = (int)(lay->tokens_per_rank[r] * (long)row);
        stot += lay->tokens_per_rank[r];
    }
    MPI_Alltoall(s_cached, 1, MPI_INT, r_cached, 1, MPI_INT, MPI_COMM_WORLD);
    long rtot = 0;
    for (int r = 0; r < R; r++) {
        s_comb[r] = r_cached[r]; /* combine sends back one row per received token */
        rtot += r_cached[r];
    }
    MPI_Alltoall(s_comb, 1, MPI_INT, r_comb, 1, MPI_INT, MPI_COMM_WORLD);
    memcpy(r_fresh, r_cached, sizeof r_fresh);
    /* big enough for every direction: fresh payload, cached payload, combine */
    size_t fresh_out = (size_t)stot * (row + meta), fresh_in = (size_t)(rtot / (long)row) * (row + meta);
    size_t sbytes = fresh_out > (size_t)rtot ? fresh_out : (size_t)rtot;
    size_t rbytes = fresh_in > (size_t)stot * row ? fresh_in : (size_t)stot * row;
    char *sbuf = calloc(sbytes + 1, 1), *rbuf = calloc(rbytes + 1, 1);
    for (int it_ = 0; it_ < warm + n; it_++) {
        /* MPI_Alltoallv of the cached dispatch's bytes inside the moep loop
         * (after the previous iteration's cached dispatch) */
        MPI_Barrier(MPI_COMM_WORLD);
        double g = now();
        mpi_exchange(s_cached, r_cached, sbuf, rbuf, R, 0);
        double k = now();
        MPI_Barrier(MPI_COMM_WORLD);
        double a0 = now();
        dp.flags = 0; /* fresh, with the expert-major copy for the grouped FFN */
        CHECK(moep_dispatch(comm, &dp, &h, &res));
        double a1 = now();
        MPI_Barrier(MPI_COMM_WORLD);
        double a = now();
        dp.flags = MOEP_DISPATCH_NO_EXPERT_X; /* fresh, recv_x only (DeepEP's normal mode) */
        CHECK(moep_dispatch(comm, &dp, &h, &res));
        double b = now();
        moep_handle_bytes(h, &d_bytes, NULL); /* a fresh dispatch: x rows + ids + weights */
        if (ey == NULL) { /* identity experts: combine moves the same bytes back */
            ey = calloc((size_t)res.num_expert_rows * o.hidden + 1, 2);
            eyt = moep_tensor_2d(ey, MOEP_DTYPE_BF16, res.num_expert_rows, o.hidden);
        }
        cbp.expert_y = &eyt;
        MPI_Barrier(MPI_COMM_WORLD);
        double c = now();
        CHECK(moep_combine(comm, &cbp, h));
        double d = now();
        MPI_Barrier(MPI_COMM_WORLD);
        double e = now();
        dp.flags = MOEP_DISPATCH_REUSE_LAYOUT | MOEP_DISPATCH_NO_EXPERT_X;
        CHECK(moep_dispatch(comm, &dp, &h, &res));
        double f = now();
        if (it_ >= warm) {
            t_major[it_ - warm] = a1 - a0;
            t_fresh[it_ - warm] = b - a;
            t_comb[it_ - warm] = d - c;
            t_cached[it_ - warm] = f - e;
            m_cached_inloop[it_ - warm] = k - g;
        }
        moep_handle_bytes(h, NULL, &c_bytes);
    }

    for (int it_ = 0; it_ < warm + n; it_++) {
        MPI_Barrier(MPI_COMM_WORLD);
        double a = now();
        mpi_exchange(s_fresh, r_fresh, sbuf, rbuf, R, 1);
        double b = now();
        MPI_Barrier(MPI_COMM_WORLD);
        double c = now();
        mpi_exchange(s_comb, r_comb, sbuf, rbuf, R, 0);
        double d = now();
        MPI_Barrier(MPI_COMM_WORLD);
        double e = now();
        mpi_exchange(s_cached, r_cached, sbuf, rbuf, R, 0);
        double f = now();
        if (it_ >= warm) {
            m_fresh[it_ - warm] = b - a;
            m_comb[it_ - warm] = d - c;
            m_cached[it_ - warm] = f - e;
        }
    }
    /* the user's MPI version of the whole algorithm */
    double *u_disp = calloc((size_t)n, 8), *u_comb = calloc((size_t)n, 8);
    float *acc = malloc((size_t)o.hidden * 4);
    char *cbuf = calloc((size_t)stot * row + (size_t)rtot + 1, 1);
    for (int it_ = 0; it_ < warm + n; it_++) {
        MPI_Barrier(MPI_COMM_WORLD);
        double a = now();
        user_pack(lay, x, idx, w, o.hidden, o.topk, sbuf);
        mpi_exchange(s_fresh, r_fresh, sbuf, rbuf, R, 1);
        double b = now();
        MPI_Barrier(MPI_COMM_WORLD);
        double c = now();
        long nrecv = rtot / (long)row;
        user_reduce_local(rbuf, nrecv, o.hidden, o.topk, o.experts, R, rank, cbuf, acc);
        mpi_exchange(s_comb, r_comb, cbuf, sbuf, R, 0);
        user_reduce_home(lay, sbuf, o.hidden, R, out.data, acc);
        double d = now();
        if (it_ >= warm) {
            u_disp[it_ - warm] = b - a;
            u_comb[it_ - warm] = d - c;
        }
    }

    /* FP8 wire: bytes against bf16 for the same dispatch */
    uint64_t fp8_bytes = 0;
    dp.flags = 0;
    dp.wire_dtype = MOEP_DTYPE_FP8_E4M3;
    moep_handle_t *h8 = NULL;
    MPI_Barrier(MPI_COMM_WORLD);
    double a8 = now();
    CHECK(moep_dispatch(comm, &dp, &h8, &res));
    double t8[1] = {now() - a8};
    moep_handle_bytes(h8, &fp8_bytes, NULL);

    double mf = median_of_max(t_fresh, n), mc = median_of_max(t_comb, n), mk = median_of_max(t_cached, n);
    double pf = median_of_max(m_fresh, n), pc = median_of_max(m_comb, n), pk = median_of_max(m_cached, n);
    double f8 = median_of_max(t8, 1), mm = median_of_max(t_major, n);
    double mi = median_of_max(m_cached_inloop, n);
    double ud = median_of_max(u_disp, n), uc = median_of_max(u_comb, n);
    unsigned long long sum[3] = {d_bytes, c_bytes, fp8_bytes};
    MPI_Allreduce(MPI_IN_PLACE, sum, 3, MPI_UNSIGNED_LONG_LONG, MPI_SUM, MPI_COMM_WORLD);
    if (rank == 0) {
        double mb = (double)sum[0] / R * 1e-6; /* per-rank dispatch MB */
        printf("ep_bench: %d ranks, transport %s, T=%d/rank H=%d bf16, top-%d of %d experts, %d iters\n",
               R, moep_comm_transport(comm), o.tokens, o.hidden, o.topk, o.experts, n);
        printf("  MPI_Alltoallv alone (the floor: no packing, no reduction):\n");
        printf("  %-22s %10s %10s %8s %12s\n", "op", "moep ms", "MPI ms", "ratio", "moep MB/s/rank");
        printf("  %-22s %10.3f %10.3f %8.2f %12.0f\n", "dispatch (fresh)", mf, pf, mf / pf, mb / mf * 1e3);
        printf("  %-22s %10.3f %10.3f %8.2f\n", "  + expert-major copy", mm, pf, mm / pf);
        printf("  %-22s %10.3f %10.3f %8.2f %12.0f\n", "combine", mc, pc, mc / pc,
               (double)sum[1] / R * 1e-6 / mc * 1e3);
        printf("  %-22s %10.3f %10.3f %8.2f\n", "dispatch+combine", mf + mc, pf + pc, (mf + mc) / (pf + pc));
        printf("  %-22s %10.3f %10.3f %8.2f\n", "dispatch (cached)", mk, pk, mk / pk);
        printf("  %-22s %10.3f %10.3f %8.2f\n", "cached + combine", mk + mc, pk + pc, (mk + mc) / (pk + pc));
        printf("  %-22s %10.3f %10.3f %8.2f   (MPI in the moep loop, after it)\n",
               "dispatch (cached)", mk, mi, mk / mi);
        printf("  MPI as a user writes the whole algorithm (pack / reduce loops + the same MPI calls):\n");
        printf("  %-22s %10.3f %10.3f %8.2f\n", "dispatch (fresh)", mf, ud, mf / ud);
        printf("  %-22s %10.3f %10.3f %8.2f\n", "combine", mc, uc, mc / uc);
        printf("  %-22s %10.3f %10.3f %8.2f\n", "dispatch+combine", mf + mc, ud + uc, (mf + mc) / (ud + uc));
        printf("  wire bytes/rank, fresh dispatch: bf16 %.3f MB, fp8 %.3f MB (ratio %.3f, one run %.3f ms); combine %.3f MB\n",
               mb, (double)sum[2] / R * 1e-6, (double)sum[2] / (double)sum[0], f8, (double)sum[1] / R * 1e-6);
    }
    moep_layout_destroy(lay);
    moep_handle_destroy(h);
    moep_handle_destroy(h8);
    moep_comm_destroy(comm);
    moep_bootstrap_destroy(bs);
    MPI_Finalize();
    return 0;
}
