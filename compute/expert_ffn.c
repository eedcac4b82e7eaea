/* moep_expert_ffn: the public entry of the CPU expert FFN. */
#include "ffn_kernel.h"
#include "ffn_plan.h"
#include "ffn_run.h"
#include "moep_internal.h"

moep_status_t moep_expert_ffn(const moep_expert_weights_t *w, const moep_tensor_t *x,
                              const int64_t *expert_offset, moep_tensor_t *y, int32_t num_threads) {
    moep__ffn_plan_t plan;
    MOEP_TRY(moep__ffn_plan_make(w, x, expert_offset, y, num_threads, &plan));
    return moep__ffn_run(&plan, moep__ffn_kernel_select());
}
