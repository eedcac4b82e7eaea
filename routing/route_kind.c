/* Router kind names, both ways. */
#include <strings.h>

#include "routing_internal.h"

static const char *const kind_names[MOEP_ROUTE_KIND_COUNT_] = {
    [MOEP_ROUTE_SOFTMAX_TOPK] = "softmax_topk",
    [MOEP_ROUTE_TOPK_SOFTMAX] = "topk_softmax",
    [MOEP_ROUTE_SIGMOID_GROUPED] = "sigmoid_grouped",
    [MOEP_ROUTE_HASH] = "hash",
};

const char *moep_route_kind_name(moep_route_kind_t k) {
    if ((int)k < 0 || k >= MOEP_ROUTE_KIND_COUNT_) return "?";
    return kind_names[k];
}

moep_status_t moep_route_kind_parse(const char *name, moep_route_kind_t *kind_p) {
    MOEP_CHECK_ARG("moep_route_kind_parse", name);
    MOEP_CHECK_ARG("moep_route_kind_parse", kind_p);
    for (int k = 0; k < MOEP_ROUTE_KIND_COUNT_; k++) {
        if (strcasecmp(name, kind_names[k]) == 0) {
            *kind_p = (moep_route_kind_t)k;
            return MOEP_OK;
        }
    }
    return moep__fail(MOEP_ERR_INVALID_ARG,
                      "moep_route_kind_parse: unknown router kind \"%s\" (expected softmax_topk, "
                      "topk_softmax, sigmoid_grouped or hash)",
                      name);
}
