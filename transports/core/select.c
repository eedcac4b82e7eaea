/* Which transports to try, from the caller's request or MOEP_TRANSPORT. */
#include "transport_select.h"

#include <stdlib.h>
#include <string.h>

static const char *fn = "moep_comm_create";

static moep_status_t from_requested(const char *requested, moep__candidates_t *c) {
    int i = moep__transport_find(requested, strlen(requested));
    if (i < 0)
        return moep__fail(MOEP_ERR_INVALID_ARG,
                          "%s: unknown transport '%s' (known: nccl, ucx, libfabric, local)", fn,
                          requested);
    c->idx[c->n++] = i;
    c->mode = MOEP__SELECT_REQUESTED;
    return MOEP_OK;
}

static moep_status_t from_env(const char *list, moep__candidates_t *c) {
    const moep__transport_entry_t *reg;
    int nreg = moep__transport_registry(&reg);
    bool excluded[MOEP__MAX_CANDIDATES] = {false};
    bool included[MOEP__MAX_CANDIDATES] = {false};
    int order[MOEP__MAX_CANDIDATES], norder = 0;
    for (const char *p = list; *p != '\0';) {
        const char *end = strchr(p, ',');
        if (end == NULL) end = p + strlen(p);
        bool exclude = *p == '^';
        const char *name = exclude ? p + 1 : p;
        size_t len = (size_t)(end - name);
        if (len > 0) {
            int i = moep__transport_find(name, len);
            if (i < 0)
                return moep__fail(MOEP_ERR_INVALID_ARG,
                                  "%s: MOEP_TRANSPORT='%s': unknown transport '%.*s' (known: "
                                  "nccl, ucx, libfabric, local)",
                                  fn, list, (int)len, name);
            if (exclude)
                excluded[i] = true;
            else if (!included[i]) {
                included[i] = true;
                order[norder++] = i;
            }
        }
        p = *end == ',' ? end + 1 : end;
    }
    if (norder > 0) {
        for (int k = 0; k < norder; k++)
            if (!excluded[order[k]]) c->idx[c->n++] = order[k];
        c->mode = MOEP__SELECT_ENV_LIST;
        if (c->n == 0)
            return moep__fail(MOEP_ERR_INVALID_ARG,
                              "%s: MOEP_TRANSPORT='%s' excludes every transport it names", fn,
                              list);
        return MOEP_OK;
    }
    for (int i = 0; i < nreg; i++)
        if (!excluded[i]) c->idx[c->n++] = i;
    c->mode = MOEP__SELECT_PROBE;
    return MOEP_OK;
}

moep_status_t moep__select_candidates(const char *requested, moep__candidates_t *c) {
    MOEP_CHECK_ARG(fn, c);
    memset(c, 0, sizeof *c);
    if (requested != NULL && requested[0] != '\0') return from_requested(requested, c);
    const char *env = getenv("MOEP_TRANSPORT");
    if (env != NULL && env[0] != '\0') return from_env(env, c);
    c->mode = MOEP__SELECT_PROBE;
    int nreg = moep__transport_registry(NULL);
    for (int i = 0; i < nreg; i++) c->idx[c->n++] = i;
    return MOEP_OK;
}
