/*
 * MPI bootstrap: the collectives map onto a private duplicate of the
 * caller's communicator. MPI has no timeouts, so these calls block as long
 * as MPI does; errors are returned (MPI_ERRORS_RETURN), never aborted on.
 */
#include <limits.h>
/* Debian ships OpenMPI's headers under /usr/include/openmpi; Bazel refuses
 * absolute -I paths, so name the folder here. */
#include <openmpi/mpi.h>
#include <stdlib.h>

#include "transports/bootstrap/bootstrap_internal.h"

#define AG "moep_bootstrap_mpi allgather"

typedef struct mpi_ctx {
    moep_bootstrap_t bs; /* first: handed to the caller */
    MPI_Comm comm;
    int32_t world_size;
} mpi_ctx_t;

static moep_status_t mpi_fail(const char *what, int rc) {
    char text[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(rc, text, &len) != MPI_SUCCESS) len = 0;
    text[len] = '\0';
    return moep__fail(MOEP_ERR_SYSTEM, "%s failed: %s", what, text);
}

static moep_status_t mpi_allgather(void *ctx, const void *send, void *recv, size_t bytes) {
    mpi_ctx_t *c = ctx;
    MOEP_TRY(moep__bootstrap_check_allgather(AG, c->world_size, send, recv, bytes));
    if (bytes > INT_MAX)
        return moep__fail(MOEP_ERR_INVALID_ARG, AG ": %zu bytes exceeds INT_MAX", bytes);
    /* Agree on the size first, so that a mismatch is an error, not corruption. */
    unsigned long long mine = bytes, lo = 0, hi = 0;
    int rc = MPI_Allreduce(&mine, &lo, 1, MPI_UNSIGNED_LONG_LONG, MPI_MIN, c->comm);
    if (rc == MPI_SUCCESS)
        rc = MPI_Allreduce(&mine, &hi, 1, MPI_UNSIGNED_LONG_LONG, MPI_MAX, c->comm);
    if (rc != MPI_SUCCESS) return mpi_fail(AG ": MPI_Allreduce", rc);
    if (lo != hi)
        return moep__fail(MOEP_ERR_MISMATCH, AG ": ranks contribute between %llu and %llu bytes",
                          lo, hi);
    if (bytes == 0) return MOEP_OK;
    rc = MPI_Allgather(send, (int)bytes, MPI_BYTE, recv, (int)bytes, MPI_BYTE, c->comm);
    return rc == MPI_SUCCESS ? MOEP_OK : mpi_fail(AG ": MPI_Allgather", rc);
}

static moep_status_t mpi_barrier(void *ctx) {
    mpi_ctx_t *c = ctx;
    int rc = MPI_Barrier(c->comm);
    return rc == MPI_SUCCESS ? MOEP_OK : mpi_fail("moep_bootstrap_mpi barrier: MPI_Barrier", rc);
}

static void mpi_destroy(void *ctx) {
    mpi_ctx_t *c = ctx;
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized) MPI_Comm_free(&c->comm);
    free(c);
}

moep_status_t moep_bootstrap_mpi_create(void *mpi_comm, moep_bootstrap_t **bs_p) {
    static const char fn[] = "moep_bootstrap_mpi_create";
    MOEP_CHECK_ARG(fn, bs_p);
    *bs_p = NULL;
    int initialized = 0, finalized = 0;
    MPI_Initialized(&initialized);
    MPI_Finalized(&finalized);
    if (!initialized || finalized)
        return moep__fail(MOEP_ERR_INVALID_USAGE, "%s: MPI is not initialised (call MPI_Init "
                          "first)", fn);
    MPI_Comm parent = mpi_comm != NULL ? *(MPI_Comm *)mpi_comm : MPI_COMM_WORLD;
    if (parent == MPI_COMM_NULL)
        return moep__fail(MOEP_ERR_INVALID_ARG, "%s: communicator is MPI_COMM_NULL", fn);
    mpi_ctx_t *c = moep__calloc(fn, 1, sizeof *c);
    if (c == NULL) return MOEP_ERR_NO_MEMORY;
    int rc = MPI_Comm_dup(parent, &c->comm); /* collective */
    if (rc != MPI_SUCCESS) {
        free(c);
        return mpi_fail(fn, rc);
    }
    MPI_Comm_set_errhandler(c->comm, MPI_ERRORS_RETURN);
    int rank = 0, size = 0;
    MPI_Comm_rank(c->comm, &rank);
    MPI_Comm_size(c->comm, &size);
    c->world_size = size;
    moep__bootstrap_fill(&c->bs, rank, size, c, mpi_allgather, mpi_barrier, mpi_destroy);
    *bs_p = &c->bs;
    return MOEP_OK;
}
