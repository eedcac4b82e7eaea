/* Executing a validated expert FFN plan on the CPU with OpenMP. Internal. */
#ifndef MOEP_COMPUTE_FFN_RUN_H
#define MOEP_COMPUTE_FFN_RUN_H

#include "ffn_kernel.h"
#include "ffn_plan.h"

moep_status_t moep__ffn_run(const moep__ffn_plan_t *plan, const moep__ffn_kernel_t *kernel);

#endif /* MOEP_COMPUTE_FFN_RUN_H */
