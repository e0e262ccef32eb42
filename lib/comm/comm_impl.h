/* SPDX-License-Identifier: MIT */
/* Private: the communicator as the core sees it (include/siamese/comm.h is the contract; the
 * run-time modules' entry point is lib/plugin/comm_plugin.h). */
#ifndef SM_LIB_COMM_IMPL_H
#define SM_LIB_COMM_IMPL_H

#include <stdatomic.h>
#include <stdint.h>

#include "plugin/comm_plugin.h"
#include "siamese/siamese.h"

struct sm_comm {
    sm_comm_ops ops; /* the host's table, completed to this library's size */
    void *user;
    int64_t timeout_ns;
    _Atomic int failed;
    _Atomic int serialized; /* the callbacks may run on the trainer's exchange thread */
    char why[384]; /* the first failure, repeated by every later call */
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

/* TEST ONLY (tests/test_comm.c): called by an in-process rank (lib/comm/comm_local.c) between its
 * wake-up from a collective's first barrier and its copying from the peers' buffers, without
 * the group's lock, as a thread that was woken but not yet scheduled would be. `phase` is
 * SM__COMM_LOCAL_WOKEN (the only one). NULL (the default) costs one load per collective. Set it
 * before the ranks' threads start and reset it after they end; never set by the library. */
enum { SM__COMM_LOCAL_WOKEN = 1 };
extern void (*sm__comm_local_test_delay)(int rank, int phase);

#endif
