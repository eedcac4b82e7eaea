/*
 * Tiling and threading of the grouped SwiGLU FFN.
 *
 * Rows are processed in batches (a row range, any number of experts) so the
 * scratch stays bounded. Per batch:
 *   phase 0  bf16 (or unpadded) x -> f32 rows padded to a multiple of 8;
 *   phase 1  gate+up: work items = (segment, column tile of I), where a
 *            segment is <= FFN_MT rows of one expert. Gate and up rows are
 *            packed side by side so one pass over x feeds both; silu(g) * u is
 *            applied to the finished tile and written to A [rows, I];
 *   phase 2  down: items = (segment, column tile of H), y = A W2^T.
 * Column tiles shrink until there are enough items for every thread, so a
 * single expert holding all rows and decode (a few rows per expert) both
 * spread over the whole team. Weight tiles are decoded to f32 4 rows x
 * FFN_KC columns at a time (stays in L1) and reused by every row of the
 * segment.
 */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "ffn_run.h"
#include "moep_internal.h"

enum {
    FFN_KC = 1024,       /* k block: 4 weight rows + 3 token rows of it fit L1 (28 KiB) */
    FFN_MT = 96,         /* rows per segment (a multiple of the 3-row tile) */
    FFN_NT = 64,         /* widest column tile */
    FFN_NT_MIN = 8,      /* narrowest column tile */
    FFN_ITEMS_PER_THREAD = 4,
    FFN_MAX_THREADS = 256,
};
/* k blocks start on a scale block of every format (FP8 128, MXFP4 32, NVFP4 16). */
_Static_assert(FFN_KC % 128 == 0 && FFN_KC <= 1024, "FFN_KC: scale blocks, moep__wsrc_decode limit");
#define FFN_BATCH_BYTES ((int64_t)16 << 20) /* x (f32) + A scratch per batch */

static const char *const FN = "moep_expert_ffn";

typedef struct seg {
    int64_t e, r0, n; /* expert, first row, row count */
} seg_t;

typedef struct batch {
    int64_t r0, r1;         /* row range */
    int64_t seg0, nseg;     /* its segments */
    int64_t nt1, ntiles1;   /* gate/up column tile width and count */
    int64_t nt2, ntiles2;   /* down column tile width and count */
} batch_t;

/* A thread's own buffers. */
typedef struct scratch {
    float *wbuf;        /* decoded weight block: 4 rows x FFN_KC */
    const float *zeros; /* FFN_KC zeros: the rows past a tile's edge */
    float *cbuf;        /* output tile: FFN_MT x (2 * FFN_NT + 4) */
} scratch_t;

typedef struct run {
    const moep__ffn_plan_t *p;
    const moep__ffn_kernel_t *k;
    int64_t Hp, Ip;    /* row strides of xf and a (see padded_stride) */
    int convert_x;     /* x is read through the f32 copy xf */
    float *xf;         /* [batch rows, Hp] when convert_x, padding stays zero */
    float *a;          /* [batch rows, Ip], padding stays zero */
    seg_t *segs;
    batch_t *batches;
    int64_t nbatches;
} run_t;

static int64_t round_up(int64_t v, int64_t m) { return (v + m - 1) / m * m; }
static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }
static int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }
static int64_t cdiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

/* Row stride for an f32 scratch of n columns: a multiple of 8 (zero padding
 * the kernel may read), nudged off multiples of 256 bytes so the rows of a
 * token tile do not all land in the same few cache sets. */
static int64_t padded_stride(int64_t n) {
    int64_t ld = round_up(n, 8);
    return ld % 64 == 0 ? ld + 8 : ld;
}

/* Splits the rows [b0, b1) into segments (one expert, <= FFN_MT rows each,
 * near-equal lengths); writes them to out unless NULL; returns how many. */
static int64_t count_or_fill_segments(const moep__ffn_plan_t *p, int64_t b0, int64_t b1, seg_t *out) {
    int64_t count = 0;
    for (int64_t e = 0; e < p->E; e++) {
        int64_t s = max64(p->offset[e], b0), t = min64(p->offset[e + 1], b1);
        if (s >= t) continue;
        int64_t pieces = cdiv(t - s, FFN_MT), len = cdiv(t - s, pieces);
        for (int64_t r = s; r < t; r += len, count++)
            if (out != NULL) out[count] = (seg_t){e, r, min64(len, t - r)};
    }
    return count;
}

/* Widest tile (from FFN_NT down) that still gives every thread a few items. */
static int64_t tile_width(int64_t cols, int64_t nseg, int nthreads) {
    int64_t nt = FFN_NT;
    while (nt > FFN_NT_MIN && nseg * cdiv(cols, nt) < (int64_t)FFN_ITEMS_PER_THREAD * nthreads) nt /= 2;
    return nt;
}

static moep_status_t plan_batches(run_t *r, int nthreads) {
    const moep__ffn_plan_t *p = r->p;
    int64_t first = p->offset[0], last = p->offset[p->E];
    int64_t row_bytes = (int64_t)sizeof(float) * ((r->convert_x ? r->Hp : 0) + r->Ip);
    int64_t batch_rows = max64(FFN_MT, FFN_BATCH_BYTES / row_bytes);
    r->nbatches = cdiv(last - first, batch_rows);
    int64_t nseg_total = 0;
    for (int64_t b = 0; b < r->nbatches; b++) {
        int64_t b0 = first + b * batch_rows;
        nseg_total += count_or_fill_segments(p, b0, min64(b0 + batch_rows, last), NULL);
    }
    r->batches = moep__calloc(FN, (size_t)max64(r->nbatches, 1), sizeof(batch_t));
    r->segs = moep__calloc(FN, (size_t)max64(nseg_total, 1), sizeof(seg_t));
    if (r->batches == NULL || r->segs == NULL) return MOEP_ERR_NO_MEMORY;
    int64_t seg0 = 0;
    for (int64_t b = 0; b < r->nbatches; b++) {
        batch_t *bt = &r->batches[b];
        bt->r0 = first + b * batch_rows;
        bt->r1 = min64(bt->r0 + batch_rows, last);
        bt->seg0 = seg0;
        bt->nseg = count_or_fill_segments(p, bt->r0, bt->r1, r->segs + seg0);
        seg0 += bt->nseg;
        bt->nt1 = tile_width(p->I, bt->nseg, nthreads);
        bt->ntiles1 = cdiv(p->I, bt->nt1);
        bt->nt2 = tile_width(p->H, bt->nseg, nthreads);
        bt->ntiles2 = cdiv(p->H, bt->nt2);
    }
    r->xf = r->convert_x ? moep__aligned_alloc(FN, (size_t)(batch_rows * r->Hp) * sizeof(float)) : NULL;
    r->a = moep__aligned_alloc(FN, (size_t)(batch_rows * r->Ip) * sizeof(float));
    if ((r->convert_x && r->xf == NULL) || r->a == NULL) return MOEP_ERR_NO_MEMORY;
    return MOEP_OK;
}

static float silu_mul(float g, float u) { return g * u / (1.0f + expf(-g)); }

/*
 * One packed weight block of an item: `step` weight rows (of one matrix)
 * times one k block. An item walks its blocks k block by k block, and
 * within a k block across its column tile (slot = which group of rows).
 */
typedef struct block {
    int64_t k0, kc, kp; /* k range and its length rounded up to 8 */
    int64_t slot;       /* group of rows within the tile */
    int64_t row, valid; /* first weight row, rows inside the matrix (<= step) */
} block_t;

static block_t block_at(int64_t b, int64_t slots, int64_t step, int64_t n0, int64_t nt, int64_t K) {
    block_t k;
    k.k0 = b / slots * FFN_KC;
    k.kc = min64(FFN_KC, K - k.k0);
    k.kp = round_up(k.kc, 8);
    k.slot = b % slots;
    k.row = n0 + k.slot * step;
    k.valid = min64(step, nt - k.slot * step);
    return k;
}

/* Phase 1 item: A[seg rows, n0 .. n0+nt) = silu(x W1^T) * (x W3^T). */
static void gate_up_item(const run_t *r, const batch_t *bt, const seg_t *s, int64_t tile,
                         const scratch_t *t) {
    const moep__ffn_plan_t *p = r->p;
    const int64_t n0 = tile * bt->nt1, nt = min64(bt->nt1, p->I - n0);
    const int64_t pairs = cdiv(nt, 2), ldc = 4 * pairs;
    const float *x = r->convert_x ? r->xf + (s->r0 - bt->r0) * r->Hp
                                  : (const float *)p->x + s->r0 * p->H;
    const int64_t ldx = r->convert_x ? r->Hp : p->H;
    float *cbuf = t->cbuf;
    memset(cbuf, 0, (size_t)(s->n * ldc) * sizeof(float));
    const int64_t nblocks = cdiv(p->H, FFN_KC) * pairs;
    for (int64_t b = 0; b < nblocks; b++) {
        const block_t k = block_at(b, pairs, 2, n0, nt, p->H);
        moep__ffn_prefetch_t pf = {{NULL, NULL, NULL, NULL}, 0};
        if (b + 1 < nblocks) {
            const block_t n = block_at(b + 1, pairs, 2, n0, nt, p->H);
            moep__wsrc_locate(&p->w1, s->e, n.row, n.valid, n.k0, n.kc, pf.row, &pf.bytes);
            moep__wsrc_locate(&p->w3, s->e, n.row, n.valid, n.k0, n.kc, pf.row + 2, &pf.bytes);
        }
        /* Output columns of slot q: gate n, gate n+1, up n, up n+1 (n = n0 + 2q). */
        const float *rows[4];
        moep__wsrc_rows(r->k, &p->w1, s->e, k.row, k.valid, 2, k.k0, k.kc, k.kp, t->wbuf, FFN_KC,
                        t->zeros, rows);
        moep__wsrc_rows(r->k, &p->w3, s->e, k.row, k.valid, 2, k.k0, k.kc, k.kp,
                        t->wbuf + 2 * FFN_KC, FFN_KC, t->zeros, rows + 2);
        r->k->gemm_nt(rows, x + k.k0, ldx, s->n, k.kp, cbuf + 4 * k.slot, ldc, &pf);
    }
    for (int64_t m = 0; m < s->n; m++) {
        const float *c = cbuf + m * ldc;
        float *a = r->a + (s->r0 - bt->r0 + m) * r->Ip + n0;
        for (int64_t n = 0; n < nt; n++) {
            const float *pair = c + 4 * (n / 2) + (n & 1);
            a[n] = silu_mul(pair[0], pair[2]);
        }
    }
}

/* Phase 2 item: y[seg rows, n0 .. n0+nt) = A W2^T. */
static void down_item(const run_t *r, const batch_t *bt, const seg_t *s, int64_t tile,
                      const scratch_t *t) {
    const moep__ffn_plan_t *p = r->p;
    const int64_t n0 = tile * bt->nt2, nt = min64(bt->nt2, p->H - n0);
    const int64_t ldc = round_up(nt, 4);
    const float *a = r->a + (s->r0 - bt->r0) * r->Ip;
    float *cbuf = t->cbuf;
    memset(cbuf, 0, (size_t)(s->n * ldc) * sizeof(float));
    const int64_t quads = ldc / 4, nblocks = cdiv(p->I, FFN_KC) * quads;
    for (int64_t b = 0; b < nblocks; b++) {
        const block_t k = block_at(b, quads, 4, n0, nt, p->I);
        moep__ffn_prefetch_t pf = {{NULL, NULL, NULL, NULL}, 0};
        if (b + 1 < nblocks) {
            const block_t n = block_at(b + 1, quads, 4, n0, nt, p->I);
            moep__wsrc_locate(&p->w2, s->e, n.row, n.valid, n.k0, n.kc, pf.row, &pf.bytes);
        }
        const float *rows[4];
        moep__wsrc_rows(r->k, &p->w2, s->e, k.row, k.valid, 4, k.k0, k.kc, k.kp, t->wbuf, FFN_KC,
                        t->zeros, rows);
        r->k->gemm_nt(rows, a + k.k0, r->Ip, s->n, k.kp, cbuf + 4 * k.slot, ldc, &pf);
    }
    const size_t ysize = moep__dtype_size(p->y_dtype);
    for (int64_t m = 0; m < s->n; m++)
        moep__row_from_f32(cbuf + m * ldc, nt, p->y_dtype,
                           (char *)p->y + (size_t)((s->r0 + m) * p->H + n0) * ysize);
}

static void convert_rows(const run_t *r, const batch_t *bt) {
    const moep__ffn_plan_t *p = r->p;
    const size_t xsize = moep__dtype_size(p->x_dtype);
#pragma omp for schedule(static)
    for (int64_t row = bt->r0; row < bt->r1; row++)
        moep__row_to_f32((const char *)p->x + (size_t)(row * p->H) * xsize, p->x_dtype, p->H,
                         r->xf + (row - bt->r0) * r->Hp);
}

/* Runs inside the parallel region: every thread walks the same batches. */
static void run_batches(const run_t *r, const scratch_t *t) {
    for (int64_t b = 0; b < r->nbatches; b++) {
        const batch_t *bt = &r->batches[b];
        if (r->convert_x) convert_rows(r, bt);
#pragma omp for schedule(dynamic, 1)
        for (int64_t it = 0; it < bt->nseg * bt->ntiles1; it++)
            gate_up_item(r, bt, &r->segs[bt->seg0 + it / bt->ntiles1], it % bt->ntiles1, t);
#pragma omp for schedule(dynamic, 1)
        for (int64_t it = 0; it < bt->nseg * bt->ntiles2; it++)
            down_item(r, bt, &r->segs[bt->seg0 + it / bt->ntiles2], it % bt->ntiles2, t);
    }
}

static int team_size(int32_t requested) {
    /* Called from inside someone's parallel region: stay on this thread
     * rather than open a nested team (oversubscription or a silent team of 1). */
    if (omp_in_parallel()) return 1;
    int n = requested > 0 ? requested : omp_get_max_threads();
    return n < 1 ? 1 : n > FFN_MAX_THREADS ? FFN_MAX_THREADS : n;
}

moep_status_t moep__ffn_run(const moep__ffn_plan_t *p, const moep__ffn_kernel_t *kernel) {
    if (p->offset[p->E] <= p->offset[0]) return MOEP_OK; /* no rows */
    run_t r = {.p = p, .k = kernel};
    r.Hp = padded_stride(p->H);
    r.Ip = padded_stride(p->I);
    /* f32 x rows 8-aligned in length are read in place unless their stride
     * is a cache-set-aliasing power of two (then a padded copy is cheaper). */
    r.convert_x = p->x_dtype != MOEP_DTYPE_F32 || p->H % 8 != 0 || r.Hp != p->H;
    const int nthreads = team_size(p->num_threads);
    moep_status_t st = plan_batches(&r, nthreads);
    /* Per thread: a decoded weight block, a zero row, an output tile. */
    const size_t wfloats = 4 * FFN_KC, zfloats = FFN_KC, cfloats = (size_t)FFN_MT * (2 * FFN_NT + 4);
    const size_t per_thread = round_up((int64_t)(wfloats + zfloats + cfloats), 16);
    float *scratch = NULL;
    if (st == MOEP_OK) {
        scratch = moep__aligned_alloc(FN, (size_t)nthreads * per_thread * sizeof(float));
        if (scratch == NULL) st = MOEP_ERR_NO_MEMORY;
    }
    if (st == MOEP_OK) {
#pragma omp parallel num_threads(nthreads) if (nthreads > 1)
        {
            float *mine = scratch + (size_t)omp_get_thread_num() * per_thread;
            const scratch_t t = {mine, mine + wfloats, mine + wfloats + zfloats};
            run_batches(&r, &t);
        }
    }
    free(scratch);
    free(r.a);
    free(r.xf);
    free(r.segs);
    free(r.batches);
    return st;
}
