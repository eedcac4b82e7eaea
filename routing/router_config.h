/* Router configuration loading, shared by route.c and its tests' helpers. */
#ifndef MOEP_ROUTER_CONFIG_H
#define MOEP_ROUTER_CONFIG_H

#include "routing_internal.h"

/* Copy the caller's versioned config over the defaults and validate it.
 * Messages are prefixed "moep_route:". */
moep_status_t moep__router_config_load(const moep_router_config_t *user, moep_router_config_t *c);

#endif
