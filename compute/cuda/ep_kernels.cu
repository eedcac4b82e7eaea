/*
 * Dispatch / combine kernels: the permutation of token rows into send
 * slots, the received metadata, the expert-major layout, and combine's two
 * f32 reductions. The arithmetic follows transports/comm/combine.c exactly
 * (f32, products and sums rounded separately, same order), so GPU and CPU
 * results are bit-identical.
 */
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include "cuda_kernels.h"
#include "scan.cuh"

namespace {

/* ---- byte rows ---- */
template <typename V>
__device__ inline void copy_row(const uint8_t *src, uint8_t *dst, size_t bytes) {
    const V *s = (const V *)src;
    V *d = (V *)dst;
    for (size_t i = threadIdx.x; i < bytes / sizeof(V); i += blockDim.x) d[i] = s[i];
}

int vec_of(size_t bytes) { return bytes % 16 == 0 ? 16 : bytes % 4 == 0 ? 4 : 1; }

/* Where slot s of rank r goes (x row / meta row, NULL = not packed here):
 * send_x for peers, self_x (at s - self_slot0) for this rank's own rows,
 * which never touch the transport. */
struct pack_dst {
    int32_t self_rank;
    int32_t pack_peers, pack_self;
    int64_t self_slot0;
    uint8_t *send_x;
    int32_t *send_meta;
    uint8_t *self_x;
    int32_t *self_meta;
    __device__ bool wanted(int32_t r) const { return r == self_rank ? pack_self != 0 : pack_peers != 0; }
    __device__ uint8_t *x(int32_t r, int32_t s, size_t row_bytes) const {
        if (!wanted(r)) return NULL;
        return r == self_rank ? self_x + (size_t)(s - self_slot0) * row_bytes : send_x + (size_t)s * row_bytes;
    }
    __device__ int32_t *meta(int32_t r, int32_t s, int32_t k) const {
        if (!wanted(r) || send_meta == NULL) return NULL;
        return r == self_rank ? self_meta + (size_t)(s - self_slot0) * 2 * k
                              : send_meta + (size_t)s * 2 * k;
    }
};

/* Rows from source rank r in a one-round dispatch: its count message's
 * count for us (at byte 32), clamped to the block capacity. */
__device__ inline int64_t msg_rows(const uint8_t *msgs, size_t msg_bytes, int32_t r, int64_t cap) {
    int64_t n = *(const int64_t *)(msgs + (size_t)r * msg_bytes + 32);
    return n < 0 ? 0 : n > cap ? cap : n;
}

/* Peer-mapped one-round dispatch: slot s = r * blk + i of rank r goes to
 * row me * cap + i of r's padded blocks (r's memory, mapped here; our own
 * too), if i < cap (a larger T takes the exact round afterwards). */
struct peer_pack_dst {
    moep__cuda_peer_dst_t x_base, meta_base;
    int32_t me;
    int64_t blk, cap;
    uint8_t *self_x;
    const uint8_t *self_msgs;
    size_t msg_bytes;
    __device__ int64_t at(int32_t r, int32_t s) const {
        int64_t i = s - r * blk;
        return i < cap ? me * cap + i : -1;
    }
    __device__ uint8_t *x(int32_t r, int32_t s, size_t row_bytes) const {
        if (r == me && self_x != NULL) {
            int64_t row0 = 0; /* recv_offset[me] */
            for (int32_t q = 0; self_msgs != NULL && q < me; q++) row0 += msg_rows(self_msgs, msg_bytes, q, cap);
            return self_x + (size_t)(s - r * blk + row0) * row_bytes;
        }
        int64_t a = at(r, s);
        return a < 0 ? NULL : (uint8_t *)x_base.base[r] + (size_t)a * row_bytes;
    }
    __device__ int32_t *meta(int32_t r, int32_t s, int32_t k) const {
        int64_t a = at(r, s);
        return a < 0 ? NULL : (int32_t *)meta_base.base[r] + (size_t)a * 2 * k;
    }
};

/* Token t's x row to every destination of its slots, then (with meta) its
 * ids and weights. */
template <typename V, typename Dst>
__global__ void pack_kernel(const uint8_t *x, size_t row_bytes, int32_t R, const int32_t *trs,
                            const int32_t *topk_idx, const float *topk_w, int32_t k, Dst d) {
    int64_t t = blockIdx.x;
    const V *src = (const V *)(x + (size_t)t * row_bytes);
    uint8_t *dst[16];
    int32_t ns = 0;
    for (int32_t r = 0; r < R && ns < 16; r++) {
        int32_t s = trs[t * R + r];
        uint8_t *to = s < 0 ? NULL : d.x(r, s, row_bytes);
        if (to != NULL) dst[ns++] = to;
    }
    for (size_t i = threadIdx.x; i < row_bytes / sizeof(V); i += blockDim.x) {
        V v = src[i];
        for (int32_t q = 0; q < ns; q++) ((V *)dst[q])[i] = v;
    }
    if (R > 16) { /* rare: more ranks than held in registers */
        for (int32_t r = 16; r < R; r++) {
            int32_t s = trs[t * R + r];
            uint8_t *to = s < 0 ? NULL : d.x(r, s, row_bytes);
            if (to != NULL) copy_row<V>((const uint8_t *)src, to, row_bytes);
        }
    }
    if (topk_idx == NULL) return;
    for (int32_t r = 0; r < R; r++) {
        int32_t s = trs[t * R + r];
        int32_t *m = s < 0 ? NULL : d.meta(r, s, k);
        if (m == NULL) continue;
        for (int32_t j = threadIdx.x; j < k; j += blockDim.x) {
            m[j] = topk_idx[t * k + j];
            m[k + j] = __float_as_int(topk_w[t * k + j]);
        }
    }
}

__global__ void unpack_meta_kernel(const int32_t *meta, const int64_t *n_p, int64_t n_max, int32_t k,
                                   int32_t E, const int32_t *g2l, const int64_t *recv_offset,
                                   int32_t R, int64_t cap, int32_t *local_idx, float *weight,
                                   int32_t *src) {
    int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n_max || (n_p != NULL && i >= *n_p)) return;
    int32_t r = 0;
    while (r + 1 < R && recv_offset[r + 1] <= i) r++;
    src[i] = r;
    int64_t at = cap > 0 ? r * cap + (i - recv_offset[r]) : i; /* padded: blocks of cap rows */
    const int32_t *m = meta + (size_t)at * 2 * k;
    for (int32_t j = 0; j < k; j++) {
        int32_t e = m[j];
        local_idx[i * k + j] = (e >= 0 && e < E) ? g2l[e] : -1;
        weight[i * k + j] = __int_as_float(m[k + j]);
    }
}

/* The receive plan of a one-round dispatch from the received messages
 * (header, E expert counts): recv_offset [R+1] (counts clamped to cap) and
 * the aligned expert_offset [L+1] over the local experts. One block. */
__global__ void recv_plan_kernel(const uint8_t *msgs, size_t msg_bytes, int32_t R, int64_t cap,
                                 const int32_t *local_experts, int32_t L, int32_t align,
                                 int64_t *recv_offset, int64_t *expert_offset) {
    if (threadIdx.x == 0) {
        int64_t o = 0;
        for (int32_t r = 0; r < R; r++) {
            recv_offset[r] = o;
            o += msg_rows(msgs, msg_bytes, r, cap);
        }
        recv_offset[R] = o;
    }
    moep__block_chunk_scan((int64_t)L + 1,
                           [&](int64_t l) {
                               if (l == L) return (int64_t)0;
                               int64_t n = 0;
                               for (int32_t r = 0; r < R; r++)
                                   n += ((const int64_t *)(msgs + (size_t)r * msg_bytes + 40))[local_experts[l]];
                               return (n + align - 1) / align * align;
                           },
                           [&](int64_t l, int64_t before) { expert_offset[l] = before; });
}

/* Rows of source rank q != skip from its padded block (q * cap) to recv_x
 * at recv_offset[q] (block `skip` is already in place). Grid (cap, R). */
template <typename V>
__global__ void compact_kernel(const uint8_t *pad, size_t row_bytes, int64_t cap,
                               const int64_t *recv_offset, uint8_t *recv_x, int32_t skip) {
    int64_t q = blockIdx.y, i = blockIdx.x;
    if (q == skip || i >= recv_offset[q + 1] - recv_offset[q]) return;
    copy_row<V>(pad + (size_t)(q * cap + i) * row_bytes, recv_x + (size_t)(recv_offset[q] + i) * row_bytes,
                row_bytes);
}

__global__ void expert_rows_kernel(const int32_t *local_idx, const int64_t *n_p, int64_t n_max,
                                   int32_t k, const int64_t *expert_offset, int64_t rows_cap,
                                   int32_t *slot_row, int32_t *row_src) {
    __shared__ int64_t used; /* rows of expert l: the rest up to the next offset is padding */
    int32_t l = blockIdx.x;
    int64_t base = expert_offset[l];
    int64_t n_slots = n_p != NULL && *n_p * k < n_max ? *n_p * k : n_max;
    if (threadIdx.x == 0) used = 0;
    __syncthreads();
    moep__block_chunk_scan(n_slots, [&](int64_t s) { return (int64_t)(local_idx[s] == l); },
                           [&](int64_t s, int64_t before) {
                               int32_t li = local_idx[s];
                               if (s == n_slots - 1) used = before + (li == l);
                               if (li == l) {
                                   slot_row[s] = (int32_t)(base + before);
                                   if (base + before < rows_cap) /* only a bad plan exceeds it */
                                       row_src[base + before] = (int32_t)(s / k);
                               } else if (li < 0 && l == 0) {
                                   slot_row[s] = -1;
                               }
                           });
    __syncthreads();
    int64_t end = expert_offset[l + 1] < rows_cap ? expert_offset[l + 1] : rows_cap;
    for (int64_t row = base + used + threadIdx.x; row < end; row += blockDim.x) row_src[row] = -1;
}

template <typename V>
__global__ void gather_kernel(const uint8_t *recv_x, size_t row_bytes, const int32_t *row_src,
                              uint8_t *expert_x) {
    int64_t row = blockIdx.x;
    int32_t src = row_src[row];
    V *d = (V *)(expert_x + (size_t)row * row_bytes);
    if (src < 0) {
        for (size_t i = threadIdx.x; i < row_bytes / sizeof(V); i += blockDim.x) d[i] = V{};
    } else {
        copy_row<V>(recv_x + (size_t)src * row_bytes, (uint8_t *)d, row_bytes);
    }
}

/* ---- f32 / bf16 element groups of N ---- */
template <int N>
__device__ inline void load(const void *base, bool bf16, size_t e, float *v) {
    if (bf16) {
        const uint16_t *p = (const uint16_t *)base + e;
        if (N == 8) {
            uint4 q = *(const uint4 *)p;
            const uint32_t w[4] = {q.x, q.y, q.z, q.w};
            for (int i = 0; i < 4; i++) {
                v[2 * i] = __uint_as_float(w[i] << 16);
                v[2 * i + 1] = __uint_as_float(w[i] & 0xffff0000u);
            }
        } else {
            for (int i = 0; i < N; i++) v[i] = __uint_as_float((uint32_t)p[i] << 16);
        }
    } else {
        const float *p = (const float *)base + e;
        if (N == 8) {
            float4 a = *(const float4 *)p, b = *(const float4 *)(p + 4);
            v[0] = a.x; v[1] = a.y; v[2] = a.z; v[3] = a.w;
            v[4] = b.x; v[5] = b.y; v[6] = b.z; v[7] = b.w;
        } else {
            for (int i = 0; i < N; i++) v[i] = p[i];
        }
    }
}

__device__ inline uint16_t to_bf16(float f) {
    return __bfloat16_as_ushort(__float2bfloat16_rn(f));
}

template <int N>
__device__ inline void store(void *base, bool bf16, size_t e, const float *v) {
    if (bf16) {
        uint16_t *p = (uint16_t *)base + e;
        if (N == 8) {
            uint4 q;
            q.x = to_bf16(v[0]) | ((uint32_t)to_bf16(v[1]) << 16);
            q.y = to_bf16(v[2]) | ((uint32_t)to_bf16(v[3]) << 16);
            q.z = to_bf16(v[4]) | ((uint32_t)to_bf16(v[5]) << 16);
            q.w = to_bf16(v[6]) | ((uint32_t)to_bf16(v[7]) << 16);
            *(uint4 *)p = q;
        } else {
            for (int i = 0; i < N; i++) p[i] = to_bf16(v[i]);
        }
    } else {
        float *p = (float *)base + e;
        if (N == 8) {
            *(float4 *)p = make_float4(v[0], v[1], v[2], v[3]);
            *(float4 *)(p + 4) = make_float4(v[4], v[5], v[6], v[7]);
        } else {
            for (int i = 0; i < N; i++) p[i] = v[i];
        }
    }
}

/* Where combine's partial of received token i goes: row i of one buffer,
 * or (peer-mapped combine) row i - recv_offset[r] of the block that token
 * i's home rank r keeps for this rank, in r's memory. */
struct dense_rows {
    uint8_t *base;
    __device__ uint8_t *row(int64_t i, size_t bytes) const { return base + (size_t)i * bytes; }
};
struct peer_rows {
    moep__cuda_peer_dst_t dst;
    const int32_t *src;
    const int64_t *recv_offset;
    __device__ uint8_t *row(int64_t i, size_t bytes) const {
        int32_t r = src[i];
        return (uint8_t *)dst.base[r] + (size_t)(i - recv_offset[r]) * bytes;
    }
};

/* Which of the n received tokens block b reduces: the `own_n` tokens from
 * own_lo on (this rank's own, whose partials stay in local memory) spread
 * evenly among the others (whose partials cross the link), so that the
 * HBM-bound and the link-bound blocks run side by side instead of one
 * phase after the other. own_n = 0: block b takes token b. */
__device__ inline int64_t spread_token(int64_t b, int64_t n, int64_t own_lo, int64_t own_n) {
    int64_t before = b * own_n / n; /* own tokens among blocks [0, b) */
    if ((b + 1) * own_n / n > before) return own_lo + before;
    int64_t other = b - before;
    return other < own_lo ? other : other + own_n;
}

template <int N, typename Rows>
__global__ void combine_local_kernel(const void *y, bool y_bf16, int32_t H, const int32_t *slot_row,
                                     const float *weight, int32_t k, Rows rows, int64_t n,
                                     int64_t own_lo, int64_t own_n) {
    int64_t i = spread_token(blockIdx.x, n, own_lo, own_n);
    void *partial = rows.row(i, (size_t)H * (y_bf16 ? 2 : 4));
    for (int32_t d = threadIdx.x * N; d < H; d += blockDim.x * N) {
        float acc[N], v[N];
        bool first = true;
        for (int q = 0; q < N; q++) acc[q] = 0.0f;
        for (int32_t j = 0; j < k; j++) {
            int32_t row = slot_row[i * k + j];
            if (row < 0) continue;
            float w = weight[i * k + j];
            load<N>(y, y_bf16, (size_t)row * H + d, v);
            for (int q = 0; q < N; q++) acc[q] = first ? __fmul_rn(w, v[q]) : __fadd_rn(acc[q], __fmul_rn(w, v[q]));
            first = false;
        }
        store<N>(partial, y_bf16, (size_t)d, acc);
    }
}

template <int N>
__global__ void combine_home_kernel(const void *partial, bool p_bf16, int32_t H,
                                    const int32_t *trs, int32_t R, void *out, bool o_bf16,
                                    bool accumulate) {
    int64_t t = blockIdx.x;
    for (int32_t d = threadIdx.x * N; d < H; d += blockDim.x * N) {
        float acc[N], v[N];
        bool first = !accumulate;
        if (accumulate)
            load<N>(out, o_bf16, (size_t)t * H + d, acc);
        else
            for (int q = 0; q < N; q++) acc[q] = 0.0f;
        for (int32_t r = 0; r < R; r++) {
            int32_t s = trs[t * R + r];
            if (s < 0) continue;
            load<N>(partial, p_bf16, (size_t)s * H + d, v);
            for (int q = 0; q < N; q++) acc[q] = first ? v[q] : __fadd_rn(acc[q], v[q]);
            first = false;
        }
        store<N>(out, o_bf16, (size_t)t * H + d, acc);
    }
}

unsigned threads_for(size_t units) { return units >= 256 ? 256 : units >= 64 ? 128 : 64; }

} // namespace

template <typename Dst>
static int pack(const void *x, size_t row_bytes, int64_t T, int32_t R, const int32_t *trs,
                const int32_t *topk_idx, const float *topk_w, int32_t k, const Dst &d, cudaStream_t s) {
    if (T == 0) return cudaSuccess;
    int v = vec_of(row_bytes);
    unsigned th = threads_for(row_bytes / (size_t)v);
    const uint8_t *xb = (const uint8_t *)x;
    if (v == 16)
        pack_kernel<uint4><<<(unsigned)T, th, 0, s>>>(xb, row_bytes, R, trs, topk_idx, topk_w, k, d);
    else if (v == 4)
        pack_kernel<uint32_t><<<(unsigned)T, th, 0, s>>>(xb, row_bytes, R, trs, topk_idx, topk_w, k, d);
    else
        pack_kernel<uint8_t><<<(unsigned)T, th, 0, s>>>(xb, row_bytes, R, trs, topk_idx, topk_w, k, d);
    return cudaGetLastError();
}

extern "C" int moep__cuda_pack(const void *x, size_t row_bytes, int64_t T, int32_t R,
                               const int32_t *trs, void *send_x, const int32_t *topk_idx,
                               const float *topk_w, int32_t k, void *meta,
                               const moep__cuda_pack_self_t *self, moep_stream_t stream) {
    pack_dst d = {self->rank,          self->peers,     self->self,
                  self->slot0,         (uint8_t *)send_x, (int32_t *)meta,
                  (uint8_t *)self->x,  (int32_t *)self->meta};
    return pack(x, row_bytes, T, R, trs, meta != NULL ? topk_idx : NULL, topk_w, k, d,
                (cudaStream_t)stream);
}

extern "C" int moep__cuda_pack_peer(const void *x, size_t row_bytes, int64_t T, int32_t R,
                                    const int32_t *trs, const int32_t *topk_idx, const float *topk_w,
                                    int32_t k, const moep__cuda_peer_pack_t *to, moep_stream_t stream) {
    peer_pack_dst d = {to->x,   to->meta,          to->me,        to->blk,
                       to->cap, (uint8_t *)to->self_x, to->self_msgs, to->msg_bytes};
    return pack(x, row_bytes, T, R, trs, topk_idx, topk_w, k, d, (cudaStream_t)stream);
}

extern "C" int moep__cuda_unpack_meta(const void *meta, const moep__cuda_recv_rows_t *n, int32_t k,
                                      int32_t E, const int32_t *g2l, const int64_t *recv_offset,
                                      int32_t R, int64_t cap, int32_t *local_idx, float *weight,
                                      int32_t *src, moep_stream_t stream) {
    if (n->max == 0) return cudaSuccess;
    unpack_meta_kernel<<<(unsigned)((n->max + 255) / 256), 256, 0, (cudaStream_t)stream>>>(
        (const int32_t *)meta, n->dev, n->max, k, E, g2l, recv_offset, R, cap, local_idx, weight, src);
    return cudaGetLastError();
}

extern "C" int moep__cuda_recv_plan(const uint8_t *msgs, size_t msg_bytes, int32_t R, int64_t cap,
                                    const int32_t *local_experts, int32_t L, int32_t align,
                                    int64_t *recv_offset, int64_t *expert_offset, moep_stream_t stream) {
    recv_plan_kernel<<<1, MOEP_SCAN_THREADS, 0, (cudaStream_t)stream>>>(msgs, msg_bytes, R, cap,
                                                                       local_experts, L, align,
                                                                       recv_offset, expert_offset);
    return cudaGetLastError();
}

extern "C" int moep__cuda_compact_rows(const void *pad, size_t row_bytes, int64_t cap, int32_t R,
                                       const int64_t *recv_offset, void *recv_x, int32_t skip,
                                       moep_stream_t stream) {
    if (cap == 0 || (R == 1 && skip == 0)) return cudaSuccess;
    cudaStream_t s = (cudaStream_t)stream;
    int v = vec_of(row_bytes);
    unsigned th = threads_for(row_bytes / (size_t)v);
    dim3 grid((unsigned)cap, (unsigned)R);
    const uint8_t *p = (const uint8_t *)pad;
    uint8_t *x = (uint8_t *)recv_x;
    if (v == 16)
        compact_kernel<uint4><<<grid, th, 0, s>>>(p, row_bytes, cap, recv_offset, x, skip);
    else if (v == 4)
        compact_kernel<uint32_t><<<grid, th, 0, s>>>(p, row_bytes, cap, recv_offset, x, skip);
    else
        compact_kernel<uint8_t><<<grid, th, 0, s>>>(p, row_bytes, cap, recv_offset, x, skip);
    return cudaGetLastError();
}

extern "C" int moep__cuda_expert_rows(const int32_t *local_idx, const moep__cuda_recv_rows_t *n,
                                      int32_t k, int32_t L, const int64_t *expert_offset,
                                      int64_t rows_cap, int32_t *slot_row, int32_t *row_src,
                                      int32_t *scratch, moep_stream_t stream) {
    if (n->max == 0 || L == 0) return cudaSuccess;
    if (scratch != NULL && L <= MOEP_EXPERT_ROWS_MAX_L)
        return moep__cuda_expert_rows_sorted(local_idx, n, k, L, expert_offset, rows_cap, slot_row,
                                             row_src, scratch, stream);
    expert_rows_kernel<<<L, MOEP_SCAN_THREADS, 0, (cudaStream_t)stream>>>(
        local_idx, n->dev, n->max * k, k, expert_offset, rows_cap, slot_row, row_src);
    return cudaGetLastError();
}

extern "C" int moep__cuda_gather_rows(const void *recv_x, size_t row_bytes, const int32_t *row_src,
                                      int64_t rows, void *expert_x, moep_stream_t stream) {
    if (rows == 0) return cudaSuccess;
    cudaStream_t s = (cudaStream_t)stream;
    int v = vec_of(row_bytes);
    unsigned th = threads_for(row_bytes / (size_t)v);
    const uint8_t *r = (const uint8_t *)recv_x;
    uint8_t *e = (uint8_t *)expert_x;
    if (v == 16)
        gather_kernel<uint4><<<(unsigned)rows, th, 0, s>>>(r, row_bytes, row_src, e);
    else if (v == 4)
        gather_kernel<uint32_t><<<(unsigned)rows, th, 0, s>>>(r, row_bytes, row_src, e);
    else
        gather_kernel<uint8_t><<<(unsigned)rows, th, 0, s>>>(r, row_bytes, row_src, e);
    return cudaGetLastError();
}

template <typename Rows>
static int combine_local(const void *y, int y_bf16, int32_t H, const int32_t *slot_row,
                         const float *weight, int64_t n, int32_t k, Rows rows, int64_t own_lo,
                         int64_t own_n, cudaStream_t s) {
    if (n == 0) return cudaSuccess;
    if (H % 8 == 0)
        combine_local_kernel<8><<<(unsigned)n, threads_for((size_t)H / 8), 0, s>>>(y, y_bf16, H, slot_row, weight, k, rows, n, own_lo, own_n);
    else
        combine_local_kernel<1><<<(unsigned)n, threads_for((size_t)H), 0, s>>>(y, y_bf16, H, slot_row, weight, k, rows, n, own_lo, own_n);
    return cudaGetLastError();
}

extern "C" int moep__cuda_combine_local(const void *y, int y_bf16, int32_t H, const int32_t *slot_row,
                                        const float *weight, int64_t n, int32_t k, void *partial,
                                        moep_stream_t stream) {
    return combine_local(y, y_bf16, H, slot_row, weight, n, k, dense_rows{(uint8_t *)partial}, 0, 0,
                         (cudaStream_t)stream);
}

extern "C" int moep__cuda_combine_local_peer(const void *y, int y_bf16, int32_t H,
                                             const int32_t *slot_row, const float *weight, int64_t n,
                                             int32_t k, const int32_t *src, const int64_t *recv_offset,
                                             const moep__cuda_peer_dst_t *dst, int64_t own_lo,
                                             int64_t own_n, moep_stream_t stream) {
    return combine_local(y, y_bf16, H, slot_row, weight, n, k, peer_rows{*dst, src, recv_offset},
                         own_lo, own_n, (cudaStream_t)stream);
}

extern "C" int moep__cuda_combine_home(const void *partial, int p_bf16, int32_t H,
                                       const int32_t *trs, int64_t T, int32_t R, void *out,
                                       int out_bf16, int accumulate, moep_stream_t stream) {
    if (T == 0) return cudaSuccess;
    cudaStream_t s = (cudaStream_t)stream;
    if (H % 8 == 0)
        combine_home_kernel<8><<<(unsigned)T, threads_for((size_t)H / 8), 0, s>>>(partial, p_bf16, H, trs, R, out, out_bf16, accumulate);
    else
        combine_home_kernel<1><<<(unsigned)T, threads_for((size_t)H), 0, s>>>(partial, p_bf16, H, trs, R, out, out_bf16, accumulate);
    return cudaGetLastError();
}
