/*
 * moep: Mixture-of-Experts inference with expert parallelism, in plain C.
 *
 * One header for users. Sections:
 *   moep_core.h     status codes, dtypes, tensors, logging
 *   moep_routing.h  router kinds, load balancing, dispatch layout
 *   moep_compute.h  grouped SwiGLU expert FFN
 *   moep_quant.h    FP8 / FP4 formats
 *   moep_comm.h     bootstrap, communicator, dispatch / combine
 *   moep_layer.h    the whole MoE layer
 *   moep_cuda.h     GPU routing/layout and streams (CUDA build, MOEP_WITH_CUDA)
 * Conventions: every function returns moep_status_t (MOEP_OK = 0, errors
 * negative) unless it is a getter; on failure moep_last_error() has the detail.
 * Handles are opaque, created by *_create and released by *_destroy (NULL ok).
 * Config structs start with struct_size and are filled by their *_init().
 */
#ifndef MOEP_H
#define MOEP_H

#include "moep_core.h"
#include "moep_routing.h"
#include "moep_compute.h"
#include "moep_quant.h"
#include "moep_comm.h"
#include "moep_layer.h"
#ifdef MOEP_WITH_CUDA
#include "moep_cuda.h" /* CUDA build only (--config=cuda) */
#endif

#endif /* MOEP_H */
