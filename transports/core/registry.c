/* The transports known to moep, in priority order, and `moep info` discovery. */
#include <string.h>
#include <strings.h>

#include "transport_core.h"

static const moep__transport_entry_t registry[] = {
#ifdef MOEP_HAVE_NCCL
    {"nccl", &moep__transport_nccl, NULL},
#else
    {"nccl", NULL, "build with --config=cuda"},
#endif
#ifdef MOEP_HAVE_UCX
    {"ucx", &moep__transport_ucx, NULL},
#else
    {"ucx", NULL, "built with --define=moep_ucx=off"},
#endif
#ifdef MOEP_HAVE_LIBFABRIC
    {"libfabric", &moep__transport_libfabric, NULL},
#else
    {"libfabric", NULL, "built with --define=moep_libfabric=off"},
#endif
    {"local", &moep__transport_local, NULL},
};

#define REGISTRY_LEN ((int)(sizeof registry / sizeof registry[0]))

int moep__transport_registry(const moep__transport_entry_t **entries_p) {
    if (entries_p != NULL) *entries_p = registry;
    return REGISTRY_LEN;
}

int moep__transport_find(const char *name, size_t len) {
    if (name == NULL) return -1;
    for (int i = 0; i < REGISTRY_LEN; i++)
        if (strlen(registry[i].name) == len && strncasecmp(registry[i].name, name, len) == 0)
            return i;
    return -1;
}

int32_t moep_transport_count(void) { return REGISTRY_LEN; }

moep_status_t moep_transport_describe(int32_t i, const char **name_p, int *compiled_p,
                                      moep_status_t *probe_p, char *why, size_t why_len) {
    static const char *fn = "moep_transport_describe";
    MOEP_CHECK_ARG(fn, name_p);
    if (i < 0 || i >= REGISTRY_LEN)
        return moep__fail(MOEP_ERR_OUT_OF_RANGE, "%s: index %d out of range [0, %d)", fn, (int)i,
                          REGISTRY_LEN);
    const moep__transport_entry_t *e = &registry[i];
    *name_p = e->name;
    if (compiled_p != NULL) *compiled_p = e->vt != NULL;
    moep__why(why, why_len, "%s", "");
    moep_status_t st;
    if (e->vt == NULL) {
        st = MOEP_ERR_UNSUPPORTED;
        moep__why(why, why_len, "not compiled in (%s)", e->build_hint);
    } else {
        char buf[256] = "";
        st = e->vt->probe(buf, sizeof buf);
        moep__why(why, why_len, "%s", st == MOEP_OK && buf[0] == '\0' ? "available" : buf);
    }
    if (probe_p != NULL) *probe_p = st;
    return MOEP_OK;
}
