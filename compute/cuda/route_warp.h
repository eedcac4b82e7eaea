/* The warp-per-token routing kernel (route_warp.cu), for moep__cuda_route. */
#ifndef MOEP_ROUTE_WARP_H
#define MOEP_ROUTE_WARP_H

#include <cuda_runtime.h>

#include "cuda_kernels.h"

/* Every kind but HASH, with E <= 256 and at most 64 groups / ranks to mask by. */
bool moep__route_warp_fits(const moep__cuda_route_args_t *a);
cudaError_t moep__route_warp(const moep__cuda_route_args_t *a, cudaStream_t s);

#endif /* MOEP_ROUTE_WARP_H */
