/* SPDX-License-Identifier: MIT */
/* siamese-train's data-parallel mode (docs/distributed.md): `--distributed`, or a launch by
 * mpirun with more than one rank, opens the comm-mpi module (the program itself does not link
 * MPI). Rank 0 prints, draws, writes the files and evaluates; the other ranks only train. */
#ifndef SM_EXAMPLES_DISTRIBUTED_H
#define SM_EXAMPLES_DISTRIBUTED_H

#include <siamese/siamese.h>

typedef struct dist {
    sm_comm *comm; /* NULL: one process */
    int rank, size;
} dist;

/* Ranks in the environment a launcher set (Open MPI, MPICH/PMI, Slurm's PMIx), 0 if none. */
int dist_launched_size(void);
/* Opens the communicator when asked to or launched with several ranks; on ranks other than 0,
 * standard output goes to /dev/null. 0, or an exit status after saying why. */
int dist_start(dist *d, int requested);
/* Rank 0's value of `flag` (a stop decision) on every rank: 0 or an exit status. */
int dist_agree(dist *d, int *flag);
/* Rank 0's value of `x` on every rank: 0 or an exit status. */
int dist_agree_real(dist *d, double *x);
void dist_end(dist *d);

#endif
