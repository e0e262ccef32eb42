/* SPDX-License-Identifier: MIT */
/* Private: the communicator as the core sees it (include/siamese/comm.h is the contract), and
 * the entry point of the run-time modules comm-mpi and comm-nccl (shared with their sources in
 * comm/). */
#ifndef SM_LIB_COMM_IMPL_H
#define SM_LIB_COMM_IMPL_H

#include <stdatomic.h>
#include <stdint.h>

#include "siamese/siamese.h"

struct sm_comm {
    sm_comm_ops ops;  /* the host's table, completed to this library's size */
    void *user;
    int64_t timeout_ns;
    _Atomic int failed;
    char why[384];    /* the first failure, repeated by every later call */
    uint64_t bytes_sent, ns_in;
};

/* The collectives the trainer uses: sm_comm's timeout, failure marking and statistics.
 * `what` names the purpose in messages ("the gradient exchange"). */
sm_status sm__comm_allgather(sm_comm *c, const void *send, void *recv, size_t bytes,
                             const char *what);
sm_status sm__comm_alltoall(sm_comm *c, const void *send, void *recv, size_t bytes,
                            const char *what);
sm_status sm__comm_broadcast(sm_comm *c, void *buf, size_t bytes, int root, const char *what);
/* CLOCK_MONOTONIC in nanoseconds. */
int64_t sm__comm_now_ns(void);

/* TEST ONLY (tests/test_comm.c): called by an in-process rank (lib/comm_local.c) between its
 * wake-up from a collective's first barrier and its copying from the peers' buffers, without
 * the group's lock, as a thread that was woken but not yet scheduled would be. `phase` is
 * SM__COMM_LOCAL_WOKEN (the only one). NULL (the default) costs one load per collective. Set it
 * before the ranks' threads start and reset it after they end; never set by the library. */
enum { SM__COMM_LOCAL_WOKEN = 1 };
extern void (*sm__comm_local_test_delay)(int rank, int phase);

/* ---- run-time modules (libsiamese-comm-<name>.so) ---- */
#define SM_COMM_MODULE_ABI 1

typedef struct sm_comm_module_args {
    uint32_t abi;  /* SM_COMM_MODULE_ABI */
    int device;    /* nccl: the GPU, -1 = rank modulo the visible GPUs */
    /* nccl's bootstrap: a broadcast through another communicator (NULL for mpi) */
    sm_comm_result (*bootstrap_bcast)(void *ctx, void *buf, size_t bytes, int root);
    void *bootstrap_ctx;
    int bootstrap_rank, bootstrap_size;
    char *err;     /* receives why on failure */
    size_t err_cap;
} sm_comm_module_args;

/* Fills `ops` (struct_size, version, rank, size and the callbacks) and `*user`; 0 on success,
 * else non-zero with the reason in args->err. The one symbol a module exports. */
typedef int (*sm_comm_module_entry_fn)(const sm_comm_module_args *args, sm_comm_ops *ops,
                                       void **user);
int sm_comm_module_entry(const sm_comm_module_args *args, sm_comm_ops *ops, void **user);

/* Where a module file would be (lib/backend.c's search: SIAMESE_BACKEND_DIR, else
 * <dir of libsiamese.so>/libsiamese/). */
void sm__module_path(const char *file, char *buf, size_t cap);

#endif
