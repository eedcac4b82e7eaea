/* ucs_status_t -> moep_status_t. */
#include "ucx_internal.h"

moep_status_t ucx_status(ucs_status_t s, const char *what) {
    moep_status_t m;
    switch (s) {
    case UCS_OK:
        return MOEP_OK;
    case UCS_ERR_NO_MEMORY:
        m = MOEP_ERR_NO_MEMORY;
        break;
    case UCS_ERR_INVALID_PARAM:
        m = MOEP_ERR_INVALID_ARG;
        break;
    case UCS_ERR_UNSUPPORTED:
    case UCS_ERR_UNREACHABLE:
    case UCS_ERR_NO_DEVICE:
        m = MOEP_ERR_UNSUPPORTED;
        break;
    case UCS_ERR_MESSAGE_TRUNCATED:
        m = MOEP_ERR_PROTOCOL; /* the peer sent more than we expected */
        break;
    case UCS_ERR_TIMED_OUT:
        m = MOEP_ERR_TIMEOUT;
        break;
    case UCS_ERR_NO_RESOURCE:
        m = MOEP_ERR_AGAIN;
        break;
    case UCS_ERR_CONNECTION_RESET:
    case UCS_ERR_ENDPOINT_TIMEOUT:
    case UCS_ERR_REJECTED:
        m = MOEP_ERR_REMOTE;
        break;
    default:
        /* The link-failure range also means the peer is gone. */
        m = (s <= UCS_ERR_FIRST_LINK_FAILURE && s >= UCS_ERR_LAST_LINK_FAILURE) ||
                    (s <= UCS_ERR_FIRST_ENDPOINT_FAILURE && s >= UCS_ERR_LAST_ENDPOINT_FAILURE)
                ? MOEP_ERR_REMOTE
                : MOEP_ERR_SYSTEM;
        break;
    }
    return moep__fail(m, "ucx %s: %s", what, ucs_status_string(s));
}
