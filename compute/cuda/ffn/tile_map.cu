/* The tile table: which expert and rows each 64-row tile of the grid works on. */
#include "ffn_cuda.h"

#define MOEP__TILE_MAP_THREADS 1024

static int64_t ceil_div64(int64_t a, int64_t b) { return (a + b - 1) / b; }

extern "C" int32_t moep__ffn_max_tiles(const moep__ffn_rows_t *r) {
    int64_t t = r->offsets ? ceil_div64(r->num_rows, MOEP__FFN_TILE_ROWS) + r->num_experts
                           : (int64_t)r->num_experts * ceil_div64(r->max_tokens, MOEP__FFN_TILE_ROWS);
    return t < 1 ? 1 : (int32_t)t;
}

/* One block: thread e counts expert e's tiles, a block scan places them. E <= 1024. */
__global__ void __launch_bounds__(MOEP__TILE_MAP_THREADS)
    moep__tile_map_kernel(moep__ffn_rows_t r, moep__ffn_tile_t *tiles) {
    __shared__ int32_t scan[MOEP__TILE_MAP_THREADS];
    int e = threadIdx.x;
    int64_t start = 0, end = 0;
    if (e < r.num_experts) {
        if (r.offsets) {
            start = r.offsets[e];
            end = r.offsets[e + 1];
            if (end > r.num_rows) end = r.num_rows;
            if (end < start) end = start;
        } else {
            int64_t c = r.counts[e];
            c = c < 0 ? 0 : (c > r.max_tokens ? r.max_tokens : c);
            start = (int64_t)e * r.max_tokens;
            end = start + c;
        }
    }
    int32_t n = (int32_t)((end - start + MOEP__FFN_TILE_ROWS - 1) / MOEP__FFN_TILE_ROWS);
    scan[e] = n;
    __syncthreads();
    for (int d = 1; d < MOEP__TILE_MAP_THREADS; d <<= 1) {
        int32_t v = e >= d ? scan[e - d] : 0;
        __syncthreads();
        scan[e] += v;
        __syncthreads();
    }
    int32_t first = scan[e] - n, total = scan[MOEP__TILE_MAP_THREADS - 1];
    for (int32_t i = 0; i < n && first + i < r.max_tiles; ++i) {
        moep__ffn_tile_t t = {e, 0, start + (int64_t)i * MOEP__FFN_TILE_ROWS, end};
        tiles[first + i] = t;
    }
    for (int32_t i = total + e; i < r.max_tiles; i += MOEP__TILE_MAP_THREADS) {
        moep__ffn_tile_t t = {-1, 0, 0, 0};
        tiles[i] = t;
    }
}

extern "C" cudaError_t moep__ffn_tile_map(const moep__ffn_rows_t *r, moep__ffn_tile_t *tiles,
                                          cudaStream_t s) {
    moep__tile_map_kernel<<<1, MOEP__TILE_MAP_THREADS, 0, s>>>(*r, tiles);
    return cudaGetLastError();
}
