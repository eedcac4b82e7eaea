/*
 * Which libfabric provider to use. FI_PROVIDER (libfabric's own filter,
 * e.g. "shm" or "tcp") wins when set. Otherwise the first of
 *   efa, verbs, tcp, shm
 * that fi_getinfo offers: fabrics that reach other hosts first (a
 * communicator may span nodes), shm last as it only works on one host;
 * sockets and udp are left out (slow, for testing). Set FI_PROVIDER=shm for
 * a single-node job. We register no memory, so providers that need
 * FI_MR_LOCAL are not offered by fi_getinfo.
 */
#include <stdlib.h>
#include <string.h>

#include "lf_internal.h"

static const char *const order[] = {"efa", "verbs", "tcp", "shm"};

static struct fi_info *make_hints(const char *prov, int delivery_complete) {
    struct fi_info *h = fi_allocinfo();
    if (h == NULL) return NULL;
    h->caps = FI_TAGGED;
    /* Both context modes are fine: every request starts with a fi_context2. */
    h->mode = FI_CONTEXT | FI_CONTEXT2;
    h->ep_attr->type = FI_EP_RDM;
    h->domain_attr->av_type = FI_AV_TABLE;
    h->domain_attr->threading = FI_THREAD_DOMAIN;
    h->domain_attr->mr_mode = FI_MR_VIRT_ADDR | FI_MR_ALLOCATED | FI_MR_PROV_KEY;
    /* Delivery complete: a send completes once the peer has the data, so
     * finalize right after a collective drops nothing in flight. */
    if (delivery_complete) h->tx_attr->op_flags = FI_DELIVERY_COMPLETE;
    if (prov != NULL) h->fabric_attr->prov_name = strdup(prov);
    return h;
}

/* fi_getinfo for one provider (NULL: whatever FI_PROVIDER allows). */
static int try_provider(const char *prov, struct fi_info **info_p, int *dc_p) {
    int rc = -FI_ENOMEM;
    for (int dc = 1; dc >= 0; dc--) {
        struct fi_info *h = make_hints(prov, dc);
        if (h == NULL) return -FI_ENOMEM;
        rc = fi_getinfo(LF_FI_VERSION, NULL, NULL, 0, h, info_p);
        fi_freeinfo(h);
        /* shm 1.17 with FI_DELIVERY_COMPLETE never completes zero-byte or
         * truncated messages. It does not need it either: eager data is
         * copied into the receiver's region, and large (CMA / SAR) sends
         * complete only after the receiver has taken the data. */
        if (rc == 0 && dc && strcmp((*info_p)->fabric_attr->prov_name, "shm") == 0) {
            fi_freeinfo(*info_p);
            *info_p = NULL;
            continue;
        }
        if (rc == 0) {
            *dc_p = dc;
            return 0;
        }
    }
    return rc;
}

moep_status_t lf_find_provider(struct fi_info **info_p, int *delivery_complete_p, char *why,
                               size_t why_len) {
    const char *env = getenv("FI_PROVIDER");
    int rc;
    *info_p = NULL;
    if (env != NULL && env[0] != '\0') {
        /* libfabric reads FI_PROVIDER once per process; a single name is
         * also passed as a hint so a later change (or a fork) is honoured. */
        int single = strpbrk(env, ",^") == NULL;
        rc = try_provider(single ? env : NULL, info_p, delivery_complete_p);
        if (rc != 0) {
            moep__why(why, why_len, "FI_PROVIDER=%s offers no tagged RDM endpoint: %s", env,
                      fi_strerror(-rc));
            return MOEP_ERR_UNSUPPORTED;
        }
        return MOEP_OK;
    }
    for (size_t i = 0; i < sizeof order / sizeof order[0]; i++)
        if (try_provider(order[i], info_p, delivery_complete_p) == 0) return MOEP_OK;
    moep__why(why, why_len, "no provider of efa, verbs, tcp, shm offers a tagged RDM endpoint");
    return MOEP_ERR_UNSUPPORTED;
}
