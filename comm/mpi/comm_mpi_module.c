/* SPDX-License-Identifier: MIT */
/* libsiamese-comm-mpi.so: sm_comm_open("mpi", ...) (include/siamese/comm.h). The header-only
 * adapter <siamese/comm_mpi.h> over MPI_COMM_WORLD, compiled against the MPI found at build
 * time; MPI is initialised here when the host has not (asking for MPI_THREAD_SERIALIZED, so that
 * a trainer's exchange thread may run the collectives) and finalised again when the
 * communicator is destroyed. The module does not link libsiamese: the library hands
 * it its clock and back-off. */
#include <stdio.h>
#include <time.h>

#include "comm_plugin.h"

static int64_t module_clock_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void module_backoff(unsigned attempt)
{
    if (attempt < 16) return;
    long ns = attempt < 100 ? 10000L * (long)(attempt - 15) : 1000000L;
    struct timespec ts = {0, ns < 1000000L ? ns : 1000000L};
    nanosleep(&ts, NULL);
}

#define SM_COMM_MPI_CLOCK_NS()       module_clock_ns()
#define SM_COMM_MPI_BACKOFF(attempt) module_backoff(attempt)
#include "siamese/comm_mpi.h"

__attribute__((visibility("default"))) int sm_comm_module_entry(const sm_comm_module_args *args,
                                                                sm_comm_ops *ops, void **user)
{
    if (!args || args->abi != SM_COMM_MODULE_ABI || !args->serialized) return -1;
    int inited = 0, finalized = 0, level = 0;
    MPI_Initialized(&inited);
    MPI_Finalized(&finalized);
    if (finalized) {
        snprintf(args->err, args->err_cap, "MPI was finalised already");
        return -1;
    }
    if (!inited && MPI_Init_thread(NULL, NULL, MPI_THREAD_SERIALIZED, &level) != MPI_SUCCESS) {
        snprintf(args->err, args->err_cap, "MPI_Init_thread failed");
        return -1;
    }
    int rc = sm_comm_mpi_ops(MPI_COMM_WORLD, ops, user);
    if (rc != 0) {
        char why[MPI_MAX_ERROR_STRING] = "";
        int len = 0;
        MPI_Error_string(rc, why, &len);
        snprintf(args->err, args->err_cap, "MPI_COMM_WORLD could not be duplicated: %s", why);
        if (!inited) MPI_Finalize();
        return -1;
    }
    ((sm_comm_mpi_state *)*user)->finalize = !inited;
    /* the level MPI gives (a host that initialised MPI chose it): the trainer's exchange thread
     * may call the collectives only under MPI_THREAD_SERIALIZED or above */
    *args->serialized = sm_comm_mpi_serialized();
    return 0;
}
