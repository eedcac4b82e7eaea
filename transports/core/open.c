/*
 * moep__transport_open: collective selection of one transport and wire-up.
 * Every step that can fail on one rank only is followed by an allgather of
 * the status, so that all ranks take the same branch: no rank is left
 * waiting in a bootstrap call its peers never make.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "transport_select.h"

static const char *fn = "moep_comm_create";

#define NAME_WIRE_LEN 16

/* What each rank contributes after probing. */
typedef struct probe_msg {
    int32_t status; /* candidate selection failed on this rank (e.g. bad MOEP_TRANSPORT) */
    uint32_t ok;    /* bit i: registry entry i probed OK here */
    uint32_t list;  /* the candidates in order, 4 bits each (+1; 0 ends) */
    int32_t mode;
} probe_msg_t;

static uint32_t encode_list(const moep__candidates_t *c) {
    uint32_t v = 0;
    for (int k = c->n - 1; k >= 0; k--) v = (v << 4) | (uint32_t)(c->idx[k] + 1);
    return v;
}

/* "ucx,local" from an encoded list. */
static void list_names(uint32_t v, char *buf, size_t len) {
    const moep__transport_entry_t *reg;
    moep__transport_registry(&reg);
    size_t off = 0;
    buf[0] = '\0';
    for (; v != 0 && off < len; v >>= 4)
        off += (size_t)snprintf(buf + off, len - off, "%s%s", off ? "," : "",
                                reg[(v & 15) - 1].name);
    if (buf[0] == '\0') snprintf(buf, len, "(none)");
}

/* Allgather one int32 status; returns the first rank's failure (or MOEP_OK)
 * in *bad_st_p / *bad_rank_p. The return value is the bootstrap's status. */
static moep_status_t agree(const moep_bootstrap_t *bs, moep_status_t mine, int32_t *all,
                           moep_status_t *bad_st_p, int32_t *bad_rank_p) {
    int32_t m = (int32_t)mine;
    moep_status_t st = bs->allgather(bs->ctx, &m, all, sizeof m);
    if (st != MOEP_OK) return moep__fail(st, "%s: bootstrap allgather failed", fn);
    *bad_st_p = MOEP_OK;
    *bad_rank_p = -1;
    for (int32_t r = 0; r < bs->world_size; r++)
        if (all[r] != MOEP_OK) {
            *bad_st_p = (moep_status_t)all[r];
            *bad_rank_p = r;
            break;
        }
    return MOEP_OK;
}

/* Probe the candidates here and agree on which work everywhere. */
static moep_status_t probe_all(const moep_bootstrap_t *bs, moep_status_t select_st,
                               const moep__candidates_t *c, uint32_t *ok_everywhere,
                               char whys[][160], probe_msg_t *all) {
    const moep__transport_entry_t *reg;
    moep__transport_registry(&reg);
    probe_msg_t mine = {(int32_t)select_st, 0, select_st == MOEP_OK ? encode_list(c) : 0,
                        (int32_t)c->mode};
    for (int k = 0; select_st == MOEP_OK && k < c->n; k++) {
        const moep__transport_entry_t *e = &reg[c->idx[k]];
        whys[k][0] = '\0';
        moep_status_t st = MOEP_ERR_UNSUPPORTED;
        if (e->vt == NULL)
            snprintf(whys[k], 160, "not compiled in (%s)", e->build_hint);
        else
            st = e->vt->probe(whys[k], 160);
        if (st == MOEP_OK) mine.ok |= 1u << c->idx[k];
        MOEP_LOG_AT(MOEP_LOG_DEBUG, "transport probe: rank %d: %s: %s %s", (int)bs->rank,
                    e->name, moep_status_name(st), whys[k]);
    }
    moep_status_t st = bs->allgather(bs->ctx, &mine, all, sizeof mine);
    if (st != MOEP_OK) return moep__fail(st, "%s: bootstrap allgather failed while probing", fn);
    if (select_st != MOEP_OK) return select_st; /* our own message is already recorded */
    *ok_everywhere = ~0u;
    for (int32_t r = 0; r < bs->world_size; r++) {
        if (all[r].status != MOEP_OK)
            return moep__fail((moep_status_t)all[r].status,
                              "%s: rank %d could not choose a transport (%s); see its log", fn,
                              (int)r, moep_status_name((moep_status_t)all[r].status));
        if (all[r].list != mine.list || all[r].mode != mine.mode) {
            char a[64], b[64];
            list_names(mine.list, a, sizeof a);
            list_names(all[r].list, b, sizeof b);
            return moep__fail(MOEP_ERR_MISMATCH,
                              "%s: ranks ask for different transports: rank %d [%s], rank %d "
                              "[%s] (check MOEP_TRANSPORT and params.transport on every rank)",
                              fn, (int)bs->rank, a, (int)r, b);
        }
        *ok_everywhere &= all[r].ok;
    }
    return MOEP_OK;
}

/* Agree on the name each rank is about to init; differing names mean the
 * ranks were configured differently. */
static moep_status_t agree_name(const moep_bootstrap_t *bs, const char *name) {
    char mine[NAME_WIRE_LEN] = {0};
    snprintf(mine, sizeof mine, "%s", name);
    char *all = calloc((size_t)bs->world_size, NAME_WIRE_LEN);
    if (all == NULL) return moep__fail(MOEP_ERR_NO_MEMORY, "%s: out of memory", fn);
    moep_status_t st = bs->allgather(bs->ctx, mine, all, NAME_WIRE_LEN);
    if (st != MOEP_OK) {
        free(all);
        return moep__fail(st, "%s: bootstrap allgather failed while selecting a transport", fn);
    }
    for (int32_t r = 0; r < bs->world_size; r++) {
        const char *theirs = all + (size_t)r * NAME_WIRE_LEN;
        if (strncmp(theirs, mine, NAME_WIRE_LEN) != 0) {
            st = moep__fail(MOEP_ERR_MISMATCH,
                            "%s: ranks chose different transports: rank %d '%s', rank %d '%.*s' "
                            "(check MOEP_TRANSPORT and params.transport on every rank)",
                            fn, (int)bs->rank, mine[0] ? mine : "(none)", (int)r, NAME_WIRE_LEN,
                            theirs[0] ? theirs : "(none)");
            break;
        }
    }
    free(all);
    return st;
}

/* Exchange addresses and connect. Ends with an agreement, so every rank
 * returns the same success or failure. */
static moep_status_t wire_up(const moep_transport_t *vt, void *tctx, const moep_bootstrap_t *bs) {
    int32_t world = bs->world_size;
    uint64_t *lens = calloc((size_t)world * 2, sizeof *lens);
    char *addr = malloc(MOEP_TRANSPORT_ADDR_MAX);
    char *addrs = NULL;
    moep_status_t st = MOEP_OK, bst;
    size_t len = MOEP_TRANSPORT_ADDR_MAX;
    if (lens == NULL || addr == NULL)
        st = moep__fail(MOEP_ERR_NO_MEMORY, "%s: out of memory", fn);
    else if ((st = vt->get_addr(tctx, addr, &len)) == MOEP_OK && len > MOEP_TRANSPORT_ADDR_MAX)
        st = moep__fail(MOEP_ERR_INTERNAL, "%s: %s address of %zu bytes > %d", fn, vt->name, len,
                        MOEP_TRANSPORT_ADDR_MAX);
    uint64_t mine[2] = {(uint64_t)(int64_t)st, st == MOEP_OK ? (uint64_t)len : 0};
    if (lens == NULL) { /* cannot take part; the peers' bootstrap calls will time out */
        free(addr);
        return st;
    }
    bst = bs->allgather(bs->ctx, mine, lens, sizeof mine);
    if (bst != MOEP_OK) {
        st = moep__fail(bst, "%s: bootstrap allgather of address lengths failed", fn);
        goto out;
    }
    size_t max_len = 0;
    for (int32_t r = 0; r < world; r++) {
        moep_status_t rs = (moep_status_t)(int64_t)lens[2 * r];
        if (rs != MOEP_OK) {
            if (st == MOEP_OK)
                st = moep__fail(rs, "%s: %s failed to get its address on rank %d", fn, vt->name,
                                (int)r);
            goto out;
        }
        if (lens[2 * r + 1] > max_len) max_len = (size_t)lens[2 * r + 1];
    }
    if (max_len == 0) max_len = 1;
    addrs = calloc((size_t)world, max_len);
    char *padded = calloc(1, max_len);
    if (addrs == NULL || padded == NULL) {
        free(padded); /* every rank computed the same max_len; all or none fail here in practice */
        st = moep__fail(MOEP_ERR_NO_MEMORY, "%s: out of memory for %d addresses", fn, (int)world);
        goto out;
    }
    memcpy(padded, addr, len);
    bst = bs->allgather(bs->ctx, padded, addrs, max_len);
    free(padded);
    if (bst != MOEP_OK) {
        st = moep__fail(bst, "%s: bootstrap allgather of %s addresses failed", fn, vt->name);
        goto out;
    }
    st = vt->connect_all(tctx, addrs, max_len);
    int32_t *all = (int32_t *)lens; /* reuse: world * 16 bytes >= world * 4 */
    moep_status_t bad;
    int32_t bad_rank;
    bst = agree(bs, st, all, &bad, &bad_rank);
    if (bst != MOEP_OK)
        st = bst;
    else if (st == MOEP_OK && bad != MOEP_OK)
        st = moep__fail(bad, "%s: %s failed to connect on rank %d", fn, vt->name, (int)bad_rank);
out:
    free(addrs);
    free(addr);
    free(lens);
    return st;
}

/* The failure message when no candidate could be used. */
static moep_status_t none_selected(const moep__candidates_t *c, char whys[][160],
                                   const probe_msg_t *all, const moep_bootstrap_t *bs) {
    const moep__transport_entry_t *reg;
    moep__transport_registry(&reg);
    if (c->mode == MOEP__SELECT_REQUESTED) { /* only a failed probe gets here */
        uint32_t bit = 1u << c->idx[0];
        const char *name = reg[c->idx[0]].name;
        if (!(all[bs->rank].ok & bit))
            return moep__fail(MOEP_ERR_UNSUPPORTED, "%s: transport '%s' cannot run here: %s", fn,
                              name, whys[0]);
        for (int32_t r = 0; r < bs->world_size; r++)
            if (!(all[r].ok & bit))
                return moep__fail(MOEP_ERR_UNSUPPORTED,
                                  "%s: transport '%s' cannot run on rank %d (see its log)", fn,
                                  name, (int)r);
    }
    char list[512] = "";
    size_t off = 0;
    for (int k = 0; k < c->n && off < sizeof list; k++)
        off += (size_t)snprintf(list + off, sizeof list - off, "%s%s: %s", k ? "; " : "",
                                reg[c->idx[k]].name,
                                whys[k][0] ? whys[k] : "cannot run on another rank");
    return moep__fail(MOEP_ERR_UNSUPPORTED, "%s: no usable transport (%s)", fn,
                      c->n ? list : "MOEP_TRANSPORT excludes them all");
}

moep_status_t moep__transport_open(const char *requested, const moep_transport_init_args_t *args,
                                   const moep_transport_t **vt_p, void **tctx_p) {
    MOEP_CHECK_ARG(fn, args);
    MOEP_CHECK_ARG(fn, vt_p);
    MOEP_CHECK_ARG(fn, tctx_p);
    *vt_p = NULL;
    *tctx_p = NULL;
    MOEP_TRY(moep__init_args_check(fn, args, tctx_p, INT32_MAX));
    const moep_bootstrap_t *bs = args->bootstrap;
    const moep__transport_entry_t *reg;
    moep__transport_registry(&reg);

    moep__candidates_t c;
    moep_status_t select_st = moep__select_candidates(requested, &c);
    char whys[MOEP__MAX_CANDIDATES][160];
    memset(whys, 0, sizeof whys);
    uint32_t ok_everywhere = 0;
    probe_msg_t *all = calloc((size_t)bs->world_size, sizeof *all);
    int32_t *scratch = calloc((size_t)bs->world_size, sizeof *scratch);
    if (all == NULL || scratch == NULL) {
        free(all);
        free(scratch);
        return moep__fail(MOEP_ERR_NO_MEMORY, "%s: out of memory", fn);
    }
    moep_status_t st = probe_all(bs, select_st, &c, &ok_everywhere, whys, all);
    if (st != MOEP_OK) goto out;

    for (int k = 0;; k++) {
        while (k < c.n && !(ok_everywhere & (1u << c.idx[k]))) k++;
        /* Every rank walks the same list, so all get here together; the name
         * agreement catches ranks whose lists differ. */
        const char *name = k < c.n ? reg[c.idx[k]].name : "";
        if ((st = agree_name(bs, name)) != MOEP_OK) goto out;
        if (k >= c.n) {
            st = none_selected(&c, whys, all, bs);
            goto out;
        }
        const moep_transport_t *vt = reg[c.idx[k]].vt;
        void *tctx = NULL;
        moep_status_t ist = vt->init(args, &tctx);
        if (ist != MOEP_OK) snprintf(whys[k], sizeof whys[k], "%s", moep_last_error());
        moep_status_t bad;
        int32_t bad_rank;
        if ((st = agree(bs, ist, scratch, &bad, &bad_rank)) != MOEP_OK) {
            if (ist == MOEP_OK) vt->finalize(tctx);
            goto out;
        }
        if (bad == MOEP_OK) {
            if ((st = wire_up(vt, tctx, bs)) != MOEP_OK) {
                vt->finalize(tctx);
                goto out;
            }
            moep_transport_props_t props = {0, ""};
            if (vt->get_props != NULL) vt->get_props(tctx, &props);
            MOEP_LOG_AT(MOEP_LOG_INFO, "transport: rank %d of %d selected %s (%s)",
                        (int)args->rank, (int)args->world_size, vt->name, props.detail);
            *vt_p = vt;
            *tctx_p = tctx;
            goto out;
        }
        if (ist == MOEP_OK) vt->finalize(tctx);
        if (ist == MOEP_OK) snprintf(whys[k], sizeof whys[k], "init failed on rank %d", (int)bad_rank);
        if (c.mode == MOEP__SELECT_REQUESTED) {
            st = ist != MOEP_OK ? moep__fail(ist, "%s: transport '%s' failed: %s", fn, vt->name,
                                             whys[k])
                                : moep__fail(bad, "%s: transport '%s' failed on rank %d", fn,
                                             vt->name, (int)bad_rank);
            goto out;
        }
        MOEP_LOG_AT(c.mode == MOEP__SELECT_ENV_LIST ? MOEP_LOG_WARN : MOEP_LOG_DEBUG,
                    "transport: rank %d: %s unusable (%s), trying the next one", (int)args->rank,
                    vt->name, whys[k]);
    }
out:
    free(scratch);
    free(all);
    return st;
}

void moep__transport_close(const moep_transport_t *vt, void *tctx) {
    if (vt == NULL || tctx == NULL) return;
    moep_status_t st = vt->finalize(tctx);
    if (st != MOEP_OK)
        MOEP_LOG_AT(MOEP_LOG_WARN, "transport %s: finalize: %s", vt->name, moep_last_error());
}
