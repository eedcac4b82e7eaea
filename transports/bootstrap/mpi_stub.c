/* Built with --define=moep_mpi=off: the MPI bootstrap is not available. */
#include "moep_internal.h"

moep_status_t moep_bootstrap_mpi_create(void *mpi_comm, moep_bootstrap_t **bs_p) {
    (void)mpi_comm;
    MOEP_CHECK_ARG("moep_bootstrap_mpi_create", bs_p);
    *bs_p = NULL;
    return moep__fail(MOEP_ERR_UNSUPPORTED,
                      "moep_bootstrap_mpi_create: moep was built without MPI "
                      "(--define=moep_mpi=off)");
}
