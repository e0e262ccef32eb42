/* SPDX-License-Identifier: MIT */
/* libsiamese: the MPI adapter (since 0.3), header-only: a communicator (siamese/comm.h) over an
 * MPI communicator of the host's. Not part of <siamese/siamese.h>: include it in the host
 * program, after or instead of <mpi.h>, and compile with the host's MPI (mpicc, or the flags of
 * pkg-config ompi-c / mpich). It is compiled into the host with the host's own mpi.h, because
 * Open MPI's and MPICH's MPI_Comm differ (a pointer, an int) and libsiamese itself is built
 * against neither. Works with any MPI 3 library (Open MPI 4+, MPICH 3.2+).
 *
 *     MPI_Init_thread(&argc, &argv, MPI_THREAD_SERIALIZED, &level);
 *     sm_comm *comm;
 *     if (sm_comm_from_mpi(MPI_COMM_WORLD, &comm) != SM_OK) { ... sm_last_error() ... }
 *     sm_trainer_attach_comm(trainer, comm);   (every rank)
 *     ... sm_train_step(trainer, &loss) ...
 *     sm_comm_destroy(comm);   (before MPI_Finalize)
 *
 * The collectives are MPI's non-blocking ones (MPI_Iallgather, MPI_Ialltoall, MPI_Ibcast) on a
 * duplicate of the host's communicator, polled with MPI_Test until done or until the deadline.
 * MPI cannot cancel a collective: after SM_ERR_COMM the pending one is abandoned, the
 * duplicate is not freed (that could block), and the host should end the job (MPI_Abort, or
 * exit with a non-zero status: mpirun then ends the other ranks). Each call moves at most
 * INT_MAX bytes per rank (a broadcast any size); larger is SM_COMM_FAILED. Threads: under
 * MPI_THREAD_SERIALIZED (or MULTIPLE) a trainer runs its gradient exchange on a thread of its
 * own, overlapped with the backward pass (SM_TRAINER_EXCHANGE_OVERLAP; since 0.5), and the host
 * must make no MPI call while sm_train_step runs; under MPI_THREAD_FUNNELED the collectives run
 * on the thread that steps the trainer (the main thread), not overlapped. C++ hosts of Open MPI 4 may define
 * OMPI_SKIP_MPICXX (MPICH: MPICH_SKIP_MPICXX) to leave out MPI's deprecated C++ bindings. */
#ifndef SIAMESE_COMM_MPI_H
#define SIAMESE_COMM_MPI_H

#include <stdlib.h>

#include <mpi.h>

#include "siamese/comm.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The clock and the pause between polls; the comm-mpi module (not linked to libsiamese)
 * supplies its own. */
#ifndef SM_COMM_MPI_CLOCK_NS
#define SM_COMM_MPI_CLOCK_NS() sm_comm_clock_ns()
#endif
#ifndef SM_COMM_MPI_BACKOFF
#define SM_COMM_MPI_BACKOFF(attempt) sm_comm_backoff(attempt)
#endif

/* MPI counts are int: the most bytes one call moves (INT_MAX, without <limits.h>, which a
 * project's own limits.h may shadow) */
#define SM_COMM_MPI__MAX_COUNT ((size_t)(~0u >> 1))

/** The adapter's state behind the callbacks' `user`. */
typedef struct sm_comm_mpi_state {
    MPI_Comm comm; /* a duplicate of the host's */
    int failed;    /* a collective failed or timed out: comm is left alone */
    int finalize;  /* MPI_Finalize at destroy (the comm-mpi module, when it initialised) */
} sm_comm_mpi_state;

/* Collectives of at least this many bytes per rank wait for every rank in a barrier first
 * (polled with pauses, as a rank may wait long for a slower one), and then poll the transfer
 * itself without pausing: MPI moves a large message only while MPI_Test is called (Open MPI's
 * shared memory without single-copy passes it in 32 KiB fragments, one exchange of fragments
 * per call), so pauses of up to 1 ms between calls held it to about 90 MB/s. */
#define SM_COMM_MPI__SPIN_BYTES ((size_t)65536)

/* A wait polls without pausing for this long before it sleeps between polls: a peer a few
 * hundred microseconds behind (the ranks of one exchange, one bucket after another) is met
 * without a sleep, whose wake-up costs milliseconds on a busy machine. */
#define SM_COMM_MPI__SPIN_NS ((int64_t)300000)

/* Polls `req` until done or the deadline; `pause`: after SM_COMM_MPI__SPIN_NS, sleep a little
 * between polls. */
static inline sm_comm_result sm_comm_mpi__wait(sm_comm_mpi_state *s, MPI_Request *req, int rc,
                                               int64_t deadline_ns, int pause)
{
    if (rc != MPI_SUCCESS) {
        s->failed = 1;
        return SM_COMM_FAILED;
    }
    const int64_t spin_until = SM_COMM_MPI_CLOCK_NS() + SM_COMM_MPI__SPIN_NS;
    for (unsigned attempt = 0;;) {
        int done = 0;
        if (MPI_Test(req, &done, MPI_STATUS_IGNORE) != MPI_SUCCESS) {
            s->failed = 1;
            return SM_COMM_FAILED;
        }
        if (done) return SM_COMM_OK;
        const int64_t now = SM_COMM_MPI_CLOCK_NS();
        if (now >= deadline_ns) {
            s->failed = 1;
            return SM_COMM_TIMEOUT;
        }
        if (pause && now >= spin_until) SM_COMM_MPI_BACKOFF(attempt++);
    }
}

/* Before a large collective: every rank is there (see SM_COMM_MPI__SPIN_BYTES). */
static inline sm_comm_result sm_comm_mpi__arrive(sm_comm_mpi_state *s, size_t bytes,
                                                 int64_t deadline_ns)
{
    if (bytes < SM_COMM_MPI__SPIN_BYTES) return SM_COMM_OK;
    MPI_Request req;
    int rc = MPI_Ibarrier(s->comm, &req);
    return sm_comm_mpi__wait(s, &req, rc, deadline_ns, 1);
}

static inline sm_comm_result sm_comm_mpi__allgather(void *user, const void *send, void *recv,
                                                    size_t bytes, int64_t deadline_ns)
{
    sm_comm_mpi_state *s = (sm_comm_mpi_state *)user;
    if (bytes > SM_COMM_MPI__MAX_COUNT) return SM_COMM_FAILED;
    sm_comm_result r = sm_comm_mpi__arrive(s, bytes, deadline_ns);
    if (r != SM_COMM_OK) return r;
    MPI_Request req;
    int rc = MPI_Iallgather(send, (int)bytes, MPI_BYTE, recv, (int)bytes, MPI_BYTE, s->comm, &req);
    return sm_comm_mpi__wait(s, &req, rc, deadline_ns, bytes < SM_COMM_MPI__SPIN_BYTES);
}

static inline sm_comm_result sm_comm_mpi__alltoall(void *user, const void *send, void *recv,
                                                   size_t bytes, int64_t deadline_ns)
{
    sm_comm_mpi_state *s = (sm_comm_mpi_state *)user;
    if (bytes > SM_COMM_MPI__MAX_COUNT) return SM_COMM_FAILED;
    sm_comm_result r = sm_comm_mpi__arrive(s, bytes, deadline_ns);
    if (r != SM_COMM_OK) return r;
    MPI_Request req;
    int rc = MPI_Ialltoall(send, (int)bytes, MPI_BYTE, recv, (int)bytes, MPI_BYTE, s->comm, &req);
    return sm_comm_mpi__wait(s, &req, rc, deadline_ns, bytes < SM_COMM_MPI__SPIN_BYTES);
}

static inline sm_comm_result sm_comm_mpi__broadcast(void *user, void *buf, size_t bytes, int root,
                                                    int64_t deadline_ns)
{
    sm_comm_mpi_state *s = (sm_comm_mpi_state *)user;
    for (size_t off = 0; off < bytes || (bytes == 0 && off == 0);) {
        size_t n = bytes - off < SM_COMM_MPI__MAX_COUNT ? bytes - off : SM_COMM_MPI__MAX_COUNT;
        MPI_Request req;
        sm_comm_result r = sm_comm_mpi__arrive(s, n, deadline_ns);
        if (r != SM_COMM_OK) return r;
        int rc = MPI_Ibcast((char *)buf + off, (int)n, MPI_BYTE, root, s->comm, &req);
        r = sm_comm_mpi__wait(s, &req, rc, deadline_ns, n < SM_COMM_MPI__SPIN_BYTES);
        if (r != SM_COMM_OK || bytes == 0) return r;
        off += n;
    }
    return SM_COMM_OK;
}

static inline void sm_comm_mpi__destroy(void *user)
{
    sm_comm_mpi_state *s = (sm_comm_mpi_state *)user;
    if (!s) return;
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!s->failed && !finalized) MPI_Comm_free(&s->comm);
    if (!s->failed && !finalized && s->finalize) MPI_Finalize();
    free(s);
}

/** Fills a callback table (rank, size, the three collectives, destroy) for a duplicate of
 *  `comm`; `*user` receives the state to pass to sm_comm_create (which then owns it: its
 *  destroy frees it). Collective over `comm` (MPI_Comm_dup). 0 on success, else an MPI error
 *  code (nothing to free). */
static inline int sm_comm_mpi_ops(MPI_Comm comm, sm_comm_ops *ops, void **user)
{
    sm_comm_mpi_state *s = (sm_comm_mpi_state *)calloc(1, sizeof *s);
    if (!s) return MPI_ERR_NO_MEM;
    int rc = MPI_Comm_dup(comm, &s->comm);
    int rank = 0, size = 0;
    if (rc == MPI_SUCCESS) rc = MPI_Comm_rank(s->comm, &rank);
    if (rc == MPI_SUCCESS) rc = MPI_Comm_size(s->comm, &size);
    if (rc != MPI_SUCCESS) {
        free(s);
        return rc;
    }
    ops->struct_size = sizeof *ops;
    ops->version = SM_COMM_OPS_VERSION;
    ops->rank = rank;
    ops->size = size;
    ops->allgather = sm_comm_mpi__allgather;
    ops->alltoall = sm_comm_mpi__alltoall;
    ops->broadcast = sm_comm_mpi__broadcast;
    ops->abort = NULL;
    ops->destroy = sm_comm_mpi__destroy;
    *user = s;
    return 0;
}

/** 1 when MPI runs at MPI_THREAD_SERIALIZED or MPI_THREAD_MULTIPLE (MPI_Query_thread), so that
 *  the callbacks may be called from the trainer's exchange thread (sm_comm_set_serialized), else
 *  0. Since 0.5. */
static inline int sm_comm_mpi_serialized(void)
{
    int level = MPI_THREAD_SINGLE;
    return MPI_Query_thread(&level) == MPI_SUCCESS && level >= MPI_THREAD_SERIALIZED;
}

/** A communicator over a duplicate of `comm` (collective over `comm`). The host keeps
 *  `comm`; destroy the result with sm_comm_destroy before MPI_Finalize. Where MPI was
 *  initialised at MPI_THREAD_SERIALIZED or above, the communicator allows the exchange thread
 *  (sm_comm_set_serialized, since 0.5): the host then makes no MPI call of its own while a
 *  trainer attached to it steps. SM_ERR_COMM (an MPI call failed), otherwise as
 *  sm_comm_create. */
static inline sm_status sm_comm_from_mpi(MPI_Comm comm, sm_comm **out)
{
    sm_comm_ops ops;
    void *user = NULL;
    if (!out) return SM_ERR_INVALID_ARG;
    if (sm_comm_mpi_ops(comm, &ops, &user) != 0) return SM_ERR_COMM;
    sm_status st = sm_comm_create(&ops, user, out);
    if (st != SM_OK) sm_comm_mpi__destroy(user);
    if (st == SM_OK && sm_comm_mpi_serialized()) st = sm_comm_set_serialized(*out, 1);
    return st;
}

#ifdef __cplusplus
}
#endif

#endif
