/* libfabric error codes -> moep_status_t. */
#include "lf_internal.h"

moep_status_t lf_status(int rc, const char *what) {
    int e = rc < 0 ? -rc : rc;
    moep_status_t m;
    switch (e) {
    case 0:
        return MOEP_OK;
    case FI_ENOMEM:
        m = MOEP_ERR_NO_MEMORY;
        break;
    case FI_EINVAL:
        m = MOEP_ERR_INVALID_ARG;
        break;
    case FI_ENODATA:
    case FI_ENOSYS:
    case FI_EOPNOTSUPP:
    case FI_ENODEV:
        m = MOEP_ERR_UNSUPPORTED;
        break;
    case FI_EAGAIN:
        m = MOEP_ERR_AGAIN;
        break;
    case FI_ETIMEDOUT:
        m = MOEP_ERR_TIMEOUT;
        break;
    case FI_ETRUNC:
    case FI_EMSGSIZE:
        m = MOEP_ERR_PROTOCOL; /* the peer sent more than we expected */
        break;
    case FI_ECONNRESET:
    case FI_ECONNREFUSED:
    case FI_ECONNABORTED:
    case FI_ENOTCONN:
    case FI_EHOSTUNREACH:
    case FI_ESHUTDOWN:
        m = MOEP_ERR_REMOTE;
        break;
    default:
        m = MOEP_ERR_SYSTEM;
        break;
    }
    return moep__fail(m, "libfabric %s: %s", what, fi_strerror(e));
}
