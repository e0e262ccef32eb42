/* SPDX-License-Identifier: MIT */
/* siamese-train's data-parallel mode (distributed.h). */
#include "distributed.h"

#include <stdio.h>
#include <stdlib.h>

#include "cli.h"

int dist_launched_size(void)
{
    static const char *const vars[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE"};
    for (size_t i = 0; i < sizeof vars / sizeof *vars; i++) {
        const char *v = getenv(vars[i]);
        if (v && atoi(v) > 0) return atoi(v);
    }
    return 0;
}

int dist_start(dist *d, int requested)
{
    d->comm = NULL, d->rank = 0, d->size = 1;
    if (!requested && dist_launched_size() <= 1) return 0;
    sm_status st = sm_comm_open("mpi", NULL, -1, &d->comm);
    if (st) return cli_fail(st, "--distributed: cannot open the MPI communicator");
    d->rank = sm_comm_rank(d->comm);
    d->size = sm_comm_size(d->comm);
    if (d->rank != 0 && !freopen("/dev/null", "w", stdout))
        return cli_error(1, "rank %d: cannot silence standard output", d->rank);
    printf("distributed: %d ranks over MPI (rank 0 prints, writes and evaluates)\n", d->size);
    return 0;
}

int dist_agree(dist *d, int *flag)
{
    if (!d->comm) return 0;
    unsigned char b = *flag != 0;
    sm_status st = sm_comm_broadcast(d->comm, &b, 1, 0);
    if (st) return cli_fail(st, "rank %d: lost the other ranks", d->rank);
    *flag = b;
    return 0;
}

int dist_agree_real(dist *d, double *x)
{
    if (!d->comm) return 0;
    sm_status st = sm_comm_broadcast(d->comm, x, sizeof *x, 0);
    if (st) return cli_fail(st, "rank %d: lost the other ranks", d->rank);
    return 0;
}

void dist_end(dist *d)
{
    sm_comm_destroy(d->comm);
    d->comm = NULL;
}
