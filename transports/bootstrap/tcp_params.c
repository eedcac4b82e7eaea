/* TCP bootstrap parameters: defaults, the MOEP_* environment, validation. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "transports/bootstrap/tcp_bootstrap.h"

moep_status_t moep_tcp_bootstrap_params_init(moep_tcp_bootstrap_params_t *p) {
    MOEP_CHECK_ARG("moep_tcp_bootstrap_params_init", p);
    memset(p, 0, sizeof *p);
    p->struct_size = (uint32_t)sizeof *p;
    p->rank = -1;
    p->world_size = -1;
    p->addr = NULL;
    p->job_key = NULL;
    p->timeout_ms = 0;
    return MOEP_OK;
}

/* A strict integer from the environment; MOEP_ERR_INVALID_ARG if unset or not a number. */
static moep_status_t env_int(const char *fn, const char *name, int32_t *out) {
    const char *v = getenv(name);
    if (v == NULL || *v == '\0')
        return moep__fail(MOEP_ERR_INVALID_ARG, "%s: %s is not set and no value was given", fn,
                          name);
    char *end;
    long x = strtol(v, &end, 10);
    if (*end != '\0' || x < 0 || x > MOEP__TCP_MAX_WORLD)
        return moep__fail(MOEP_ERR_INVALID_ARG, "%s: %s=\"%s\" is not a valid integer", fn, name,
                          v);
    *out = (int32_t)x;
    return MOEP_OK;
}

static moep_status_t pick_int(const char *fn, const char *field, const char *env, int32_t given,
                              int32_t *out) {
    if (given == -1) return env_int(fn, env, out);
    if (given < 0)
        return moep__fail(MOEP_ERR_INVALID_ARG, "%s: %s %d is negative (use -1 for %s)", fn,
                          field, given, env);
    *out = given;
    return MOEP_OK;
}

/* "host:port", "[v6]:port". The port is required: the other ranks must know it. */
static moep_status_t parse_addr(const char *fn, const char *addr, moep__tcp_config_t *cfg) {
    const char *colon = strrchr(addr, ':');
    if (colon == NULL || colon == addr)
        return moep__fail(MOEP_ERR_INVALID_ARG, "%s: address \"%s\" is not host:port", fn, addr);
    const char *host = addr, *host_end = colon;
    if (host[0] == '[' && host_end[-1] == ']') {
        host++;
        host_end--;
    }
    size_t host_len = (size_t)(host_end - host);
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (colon[1] == '\0' || *end != '\0' || port < 1 || port > 65535)
        return moep__fail(MOEP_ERR_INVALID_ARG, "%s: address \"%s\" has no valid port (1-65535)",
                          fn, addr);
    if (host_len == 0 || host_len >= sizeof cfg->host)
        return moep__fail(MOEP_ERR_INVALID_ARG, "%s: address \"%s\" has a bad host", fn, addr);
    memcpy(cfg->host, host, host_len);
    cfg->host[host_len] = '\0';
    snprintf(cfg->port, sizeof cfg->port, "%ld", port);
    return MOEP_OK;
}

moep_status_t moep__tcp_config_resolve(const char *fn, const moep_tcp_bootstrap_params_t *p,
                                       moep__tcp_config_t *cfg) {
    moep_tcp_bootstrap_params_t q;
    moep_tcp_bootstrap_params_init(&q);
    MOEP_TRY(moep__load_versioned(fn, &q, sizeof q, p));
    memset(cfg, 0, sizeof *cfg);
    MOEP_TRY(pick_int(fn, "world_size", "MOEP_WORLD_SIZE", q.world_size, &cfg->world_size));
    MOEP_TRY(pick_int(fn, "rank", "MOEP_RANK", q.rank, &cfg->rank));
    if (cfg->world_size < 1 || cfg->world_size > MOEP__TCP_MAX_WORLD)
        return moep__fail(MOEP_ERR_INVALID_ARG, "%s: world_size %d outside [1, %d]", fn,
                          cfg->world_size, MOEP__TCP_MAX_WORLD);
    if (cfg->rank >= cfg->world_size)
        return moep__fail(MOEP_ERR_INVALID_ARG, "%s: rank %d >= world_size %d", fn, cfg->rank,
                          cfg->world_size);
    const char *addr = q.addr != NULL ? q.addr : getenv("MOEP_ADDR");
    if (addr == NULL || *addr == '\0')
        return moep__fail(MOEP_ERR_INVALID_ARG, "%s: no address: set addr or MOEP_ADDR=host:port",
                          fn);
    MOEP_TRY(parse_addr(fn, addr, cfg));
    cfg->job_hash = moep__wire_job_hash(q.job_key != NULL ? q.job_key : getenv("MOEP_JOB_KEY"));
    cfg->timeout_ms = moep__timeout_ms(q.timeout_ms);
    return MOEP_OK;
}
