/* SPDX-License-Identifier: MIT */
/* The communicator plug-in interface: the entry point of the run-time modules comm-mpi and
 * comm-nccl (their sources are in comm/), versioned by SM_COMM_MODULE_ABI. The collectives'
 * contract is include/siamese/comm.h's sm_comm_ops. */
#ifndef SM_PLUGIN_COMM_PLUGIN_H
#define SM_PLUGIN_COMM_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#include "siamese/siamese.h"

#define SM_COMM_MODULE_ABI 2

typedef struct sm_comm_module_args {
    uint32_t abi; /* SM_COMM_MODULE_ABI */
    int device;   /* nccl: the GPU, -1 = rank modulo the visible GPUs */
    /* nccl's bootstrap: a broadcast through another communicator (NULL for mpi) */
    sm_comm_result (*bootstrap_bcast)(void *ctx, void *buf, size_t bytes, int root);
    void *bootstrap_ctx;
    int bootstrap_rank, bootstrap_size;
    char *err; /* receives why on failure */
    size_t err_cap;
    /* since ABI 2: the module sets *serialized to 1 when its callbacks may be called from a
     * thread other than the one that opened it, one call at a time (MPI_THREAD_SERIALIZED), so
     * that the trainer's exchange thread can overlap the gradient exchange with backward; it
     * starts at 0 */
    int *serialized;
} sm_comm_module_args;

/* Fills `ops` (struct_size, version, rank, size and the callbacks) and `*user`; 0 on success,
 * else non-zero with the reason in args->err. The one symbol a module exports. */
typedef int (*sm_comm_module_entry_fn)(const sm_comm_module_args *args, sm_comm_ops *ops,
                                       void **user);
int sm_comm_module_entry(const sm_comm_module_args *args, sm_comm_ops *ops, void **user);

#endif
