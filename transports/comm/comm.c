/* Communicator lifecycle: parameter checks, expert placement, transport wire-up. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "comm_internal.h"
#include "transport_core.h"

moep_status_t moep_comm_params_init(moep_comm_params_t *p) {
    MOEP_CHECK_ARG("moep_comm_params_init", p);
    memset(p, 0, sizeof *p);
    p->struct_size = sizeof *p;
    p->device = MOEP_DEVICE_CPU;
    return MOEP_OK;
}

moep_status_t moep__comm_fail(moep_comm_t *c, moep_status_t s, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    moep__vfail(c ? c->last_error : NULL, c ? sizeof c->last_error : 0, s, fmt, ap);
    va_end(ap);
    return s;
}

moep_status_t moep__comm_check_usable(moep_comm_t *c, const char *fn) {
    if (c == NULL) return moep__fail(MOEP_ERR_INVALID_ARG, "%s: comm is NULL", fn);
    if (c->broken)
        return moep__fail(MOEP_ERR_INVALID_USAGE,
                          "%s: the communicator failed earlier (%s); destroy it", fn,
                          c->last_error);
    return MOEP_OK;
}

/* FNV-1a over the placement: ranks compare it to agree on E and the map. */
static uint64_t placement_hash(int32_t world, int32_t E, const int32_t *expert_rank) {
    uint64_t h = 1469598103934665603ull;
    const int32_t head[2] = {world, E};
    const uint8_t *parts[2] = {(const uint8_t *)head, (const uint8_t *)expert_rank};
    size_t lens[2] = {sizeof head, (size_t)E * sizeof(int32_t)};
    for (int p = 0; p < 2; p++)
        for (size_t i = 0; i < lens[p]; i++) h = (h ^ parts[p][i]) * 1099511628211ull;
    return h;
}

static moep_status_t build_placement(moep_comm_t *c, const moep_comm_params_t *p) {
    const char *fn = "moep_comm_create";
    int32_t E = p->num_experts, R = c->world_size;
    if (E <= 0) return moep__fail(MOEP_ERR_INVALID_ARG, "%s: num_experts %d must be > 0", fn, E);
    if (p->expert_rank == NULL && E % R != 0)
        return moep__fail(MOEP_ERR_INVALID_ARG,
                          "%s: num_experts %d is not a multiple of world size %d; pass expert_rank",
                          fn, E, R);
    c->num_experts = E;
    c->expert_rank = moep__calloc(fn, (size_t)E, sizeof(int32_t));
    c->global_to_local = moep__calloc(fn, (size_t)E, sizeof(int32_t));
    c->local_experts = moep__calloc(fn, (size_t)E, sizeof(int32_t));
    if (!c->expert_rank || !c->global_to_local || !c->local_experts) return MOEP_ERR_NO_MEMORY;
    for (int32_t e = 0; e < E; e++) {
        int32_t r = p->expert_rank ? p->expert_rank[e] : e / (E / R);
        if (r < 0 || r >= R)
            return moep__fail(MOEP_ERR_OUT_OF_RANGE, "%s: expert_rank[%d] = %d outside [0, %d)",
                              fn, e, r, R);
        c->expert_rank[e] = r;
        c->global_to_local[e] = -1;
        if (r == c->rank) {
            c->global_to_local[e] = c->num_local_experts;
            c->local_experts[c->num_local_experts++] = e;
        }
    }
    return MOEP_OK;
}

/* Every rank must agree on the placement: fail on all ranks otherwise. */
static moep_status_t check_agreement(moep_comm_t *c, const moep_bootstrap_t *bs) {
    uint64_t mine = placement_hash(c->world_size, c->num_experts, c->expert_rank);
    uint64_t *all = moep__calloc("moep_comm_create", (size_t)c->world_size, sizeof(uint64_t));
    if (all == NULL) return MOEP_ERR_NO_MEMORY;
    moep_status_t st = bs->allgather(bs->ctx, &mine, all, sizeof mine);
    if (st != MOEP_OK) {
        free(all);
        return moep__fail(st, "moep_comm_create: bootstrap allgather failed: %s",
                          moep_status_string(st));
    }
    for (int32_t r = 0; r < c->world_size; r++) {
        if (all[r] != mine) {
            free(all);
            return moep__fail(MOEP_ERR_MISMATCH,
                              "moep_comm_create: rank %d has a different num_experts or expert "
                              "placement than rank %d",
                              r, c->rank);
        }
    }
    free(all);
    return MOEP_OK;
}

static moep_status_t validate_bootstrap(const moep_bootstrap_t *bs) {
    const char *fn = "moep_comm_create";
    if (bs == NULL) return moep__fail(MOEP_ERR_INVALID_ARG, "%s: bootstrap is NULL", fn);
    if (bs->struct_size < offsetof(moep_bootstrap_t, destroy))
        return moep__fail(MOEP_ERR_INVALID_ARG, "%s: bootstrap struct_size %u is too small", fn,
                          bs->struct_size);
    if (bs->allgather == NULL || bs->barrier == NULL)
        return moep__fail(MOEP_ERR_INVALID_ARG, "%s: bootstrap allgather/barrier missing", fn);
    if (bs->world_size <= 0 || bs->rank < 0 || bs->rank >= bs->world_size)
        return moep__fail(MOEP_ERR_INVALID_ARG, "%s: bootstrap rank %d / world size %d invalid",
                          fn, bs->rank, bs->world_size);
    return MOEP_OK;
}

moep_status_t moep_comm_create(const moep_comm_params_t *params, const moep_bootstrap_t *bs,
                               moep_comm_t **comm_p) {
    const char *fn = "moep_comm_create";
    MOEP_CHECK_ARG(fn, comm_p);
    *comm_p = NULL;
    moep_comm_params_t p;
    moep_comm_params_init(&p);
    MOEP_TRY(moep__load_versioned(fn, &p, sizeof p, params));
    MOEP_TRY(validate_bootstrap(bs));
#ifdef MOEP_HAVE_CUDA
    if (p.device != MOEP_DEVICE_CPU && p.device != MOEP_DEVICE_CUDA)
        return moep__fail(MOEP_ERR_INVALID_ARG, "%s: unknown device %d", fn, (int)p.device);
#else
    if (p.device != MOEP_DEVICE_CPU)
        return moep__fail(MOEP_ERR_UNSUPPORTED, "%s: device buffers need the CUDA build", fn);
#endif

    moep_comm_t *c = moep__calloc(fn, 1, sizeof *c);
    if (c == NULL) return MOEP_ERR_NO_MEMORY;
    c->rank = bs->rank;
    c->world_size = bs->world_size;
    c->timeout_ms = moep__timeout_ms(p.timeout_ms);
    c->device = p.device;
    c->device_id = p.device_id;
    moep_status_t st = build_placement(c, &p);
    if (st == MOEP_OK) st = check_agreement(c, bs);
    if (st == MOEP_OK) {
        moep_transport_init_args_t args = {
            .rank = c->rank,
            .world_size = c->world_size,
            .timeout_ms = c->timeout_ms,
            .device = p.device,
            .device_id = p.device_id,
            .bootstrap = bs,
        };
        st = moep__transport_open(p.transport, &args, &c->vt, &c->tctx);
    }
    if (st == MOEP_OK) {
        moep_transport_props_t props = {0};
        c->single_copy = c->vt->get_props(c->tctx, &props) == MOEP_OK &&
                         (props.caps & MOEP_CAP_SINGLE_COPY) != 0;
    }
#ifdef MOEP_HAVE_CUDA
    if (st == MOEP_OK && c->device == MOEP_DEVICE_CUDA) st = moep__gpu_comm_init(c);
#endif
    if (st != MOEP_OK) {
        moep_comm_destroy(c);
        return st;
    }
    MOEP_LOG_AT(MOEP_LOG_INFO, "rank %d/%d: transport %s, %d local experts", c->rank,
                c->world_size, c->vt->name, c->num_local_experts);
    *comm_p = c;
    return MOEP_OK;
}

void moep_comm_destroy(moep_comm_t *c) {
    if (c == NULL) return;
#ifdef MOEP_HAVE_CUDA
    moep__gpu_comm_free(c);
#endif
    if (c->vt != NULL) moep__transport_close(c->vt, c->tctx);
    free(c->expert_rank);
    free(c->global_to_local);
    free(c->local_experts);
    free(c);
}

int32_t moep_comm_rank(const moep_comm_t *c) { return c ? c->rank : -1; }
int32_t moep_comm_world_size(const moep_comm_t *c) { return c ? c->world_size : 0; }
const char *moep_comm_transport(const moep_comm_t *c) {
    return c && c->vt ? c->vt->name : "none";
}
int32_t moep_comm_num_experts(const moep_comm_t *c) { return c ? c->num_experts : 0; }
int32_t moep_comm_num_local_experts(const moep_comm_t *c) { return c ? c->num_local_experts : 0; }
const int32_t *moep_comm_local_experts(const moep_comm_t *c) { return c ? c->local_experts : NULL; }
const char *moep_comm_last_error(const moep_comm_t *c) { return c ? c->last_error : ""; }
