/* MPI bootstrap smoke test, run under mpirun: allgather, mismatch, barrier. */
#include <openmpi/mpi.h>
#include <stdio.h>

#include "moep.h"

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    moep_bootstrap_t *bs = NULL;
    moep_status_t st = moep_bootstrap_mpi_create(NULL, &bs);
    int fails = st != MOEP_OK;
    if (bs != NULL) {
        int mine = 100 + bs->rank, all[64] = {0};
        st = bs->allgather(bs->ctx, &mine, all, sizeof mine);
        fails += st != MOEP_OK;
        for (int r = 0; r < bs->world_size && r < 64; r++) fails += all[r] != 100 + r;
        /* Rank 0 sends more bytes than the others: every rank sees MISMATCH. */
        st = bs->allgather(bs->ctx, all, all + 8, bs->rank == 0 ? 8 : 4);
        fails += st != MOEP_ERR_MISMATCH;
        fails += bs->barrier(bs->ctx) != MOEP_OK;
        printf("rank %d/%d: %s\n", bs->rank, bs->world_size, fails ? "FAIL" : "ok");
        moep_bootstrap_destroy(bs);
    }
    MPI_Finalize();
    return fails != 0;
}
