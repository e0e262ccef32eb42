/* SPDX-License-Identifier: MIT */
/* libsiamese: communicators for data-parallel training (since 0.3). Part of the API
 * <siamese/siamese.h> includes.
 *
 * N processes (ranks) each run the same training program on the same data; each computes the
 * gradient of part of every batch, and the ranks exchange those parts so that each applies the
 * same update. A communicator (sm_comm) is how a trainer talks to the other ranks. It only moves
 * bytes: the library adds the partial gradients itself, in a fixed order, so the parameters after
 * any number of steps are bit-identical whatever carries the bytes and however many ranks there
 * are (docs/distributed.md in the source tree):
 *
 *  - A trainer has K gradient shards (SM_TRAINER_GRAD_SHARDS, default 1): the batch of B pairs
 *    is cut, in order, into K groups of pairs (group s = pairs floor(s B / K) .. floor((s+1) B
 *    / K) - 1), each group's gradient summed in micro-batches from its first pair. The step's
 *    gradient is the left fold P0 + P1 + ... + P(K-1) of the groups' gradients, the loss scaled
 *    by the whole batch B. With N ranks (N divides K), rank r computes groups r K/N .. (r+1) K/N
 *    - 1; every rank draws the whole batch (the same pairs and distortions on every rank, by
 *    global pair index) and distorts only the pairs of its own groups.
 *  - So for a fixed K, every N dividing K gives the same parameters bit for bit, N = 1 (one
 *    process, no communicator at all) included, given the same seed, data, configuration,
 *    backend and thread count.
 *
 * Communicators come from (a) host callbacks that move bytes (sm_comm_ops, sm_comm_create),
 * (b) the header-only MPI adapter <siamese/comm_mpi.h>, compiled in the host with its own
 * mpi.h, (c) run-time modules (sm_comm_open: "mpi", "nccl"), (d) in-process ranks on threads
 * (sm_comm_local_create, for tests and for trying things out). libsiamese itself never links
 * MPI or NCCL.
 *
 * Faults. Every collective has a deadline (sm_comm_set_timeout, default 300 s). A peer that
 * dies or stalls makes the collective fail with SM_ERR_COMM (and sm_last_error() says which
 * collective, how many bytes, and whether it timed out) within the timeout; the communicator is
 * then failed for good: every later collective on it returns SM_ERR_COMM at once, and the
 * host's abort callback (if any) has been called once. A training step that fails so changes
 * nothing (as any failed step). The usual response is to end the process with a non-zero
 * status and restart the job from its last checkpoint.
 *
 * Threads: a communicator is used by one thread at a time (the one stepping its trainer);
 * sm_comm_rank, sm_comm_size, sm_comm_failed and sm_comm_serialized may be called from any
 * thread. Each rank of a local communicator is used by its own thread. A communicator that
 * allows it (sm_comm_set_serialized) is used during sm_train_step by the trainer's exchange
 * thread instead, which overlaps the gradient exchange with the backward pass
 * (SM_TRAINER_EXCHANGE_OVERLAP): the host makes no call on it, nor on its transport, while a
 * step runs. */
#ifndef SIAMESE_COMM_H
#define SIAMESE_COMM_H

#include <stddef.h>
#include <stdint.h>

#include "siamese/common.h"
#include "siamese/train.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sm_comm sm_comm;

/** What a host callback returns. */
typedef enum sm_comm_result {
    SM_COMM_OK = 0,
    SM_COMM_TIMEOUT = 1, /* the deadline passed before the collective completed */
    SM_COMM_FAILED = 2   /* the transport failed (a peer died, a connection broke) */
} sm_comm_result;

/** The version of sm_comm_ops this header describes. */
#define SM_COMM_OPS_VERSION 1

/** Host callbacks that move bytes between the ranks: one table per rank. Every rank calls the
 *  same collectives in the same order with the same sizes. `deadline_ns` is an absolute time
 *  on CLOCK_MONOTONIC in nanoseconds (clock_gettime(CLOCK_MONOTONIC)): a callback returns
 *  SM_COMM_TIMEOUT rather than block past it. A callback that returned something other than
 *  SM_COMM_OK is not called again (the communicator is failed). `user` is the pointer given to
 *  sm_comm_create. Callbacks are called on the thread that calls into the library, or, once
 *  the host allowed it with sm_comm_set_serialized, on a trainer's exchange thread (never two
 *  at once). */
typedef struct sm_comm_ops {
    size_t struct_size; /* sizeof(sm_comm_ops) as the host compiled it */
    uint32_t version;   /* SM_COMM_OPS_VERSION */
    int rank;           /* this rank, 0..size-1 */
    int size;           /* number of ranks, 1..65536 */
    /** Every rank contributes `bytes` from `send`; `recv` (size x bytes) receives rank i's at
     *  offset i x bytes, on every rank (MPI_Allgather of bytes). */
    sm_comm_result (*allgather)(void *user, const void *send, void *recv, size_t bytes,
                                int64_t deadline_ns);
    /** `send` holds size blocks of `bytes`, block j for rank j; `recv` (size x bytes) receives
     *  rank i's block for this rank at offset i x bytes (MPI_Alltoall of bytes). */
    sm_comm_result (*alltoall)(void *user, const void *send, void *recv, size_t bytes,
                               int64_t deadline_ns);
    /** Rank `root`'s `bytes` at `buf` are copied into `buf` on every other rank (MPI_Bcast). */
    sm_comm_result (*broadcast)(void *user, void *buf, size_t bytes, int root, int64_t deadline_ns);
    /** (optional, NULL: nothing) Called once when the communicator fails: may abort the
     *  transport's pending operations (ncclCommAbort); must not block. */
    void (*abort)(void *user);
    /** (optional, NULL: nothing) Called by sm_comm_destroy: frees `user`. */
    void (*destroy)(void *user);
} sm_comm_ops;

/** A communicator from host callbacks. `ops` is copied (a table with a smaller struct_size, from
 *  an older header, is read as far as it goes; the callbacks allgather, alltoall and broadcast
 *  are required); `user` is kept and passed to them, and to ops->destroy from sm_comm_destroy
 *  (if this call fails, the caller still owns `user`: ops->destroy is not called). The timeout starts at 300 s. SM_ERR_INVALID_ARG (NULL, a missing callback, rank or size out
 *  of range), SM_ERR_VERSION (ops->version newer than this library knows), SM_ERR_NOMEM. */
SM_API sm_status sm_comm_create(const sm_comm_ops *ops, void *user, sm_comm **out);

/** Opens a communicator from a run-time module: "mpi" (libsiamese-comm-mpi.so: MPI_COMM_WORLD,
 *  initialising MPI when the host has not; MPI is finalised again by sm_comm_destroy only if the
 *  module initialised it) or "nccl" (libsiamese-comm-nccl.so: NCCL between GPUs, one per rank,
 *  the device `device` (-1: rank modulo the visible GPUs); its unique id is broadcast from rank 0
 *  through `bootstrap`, which is then no longer needed; the collectives stage host bytes through
 *  device memory). Modules are found as the backends' (SIAMESE_BACKEND_DIR, else
 *  LIBDIR/libsiamese/). `bootstrap` is ignored by "mpi" and required by "nccl". Blocks until
 *  every rank opened it (within the bootstrap's timeout for nccl). SM_ERR_BACKEND_UNAVAILABLE
 *  (module not built or its library missing), SM_ERR_VERSION, SM_ERR_COMM (the transport
 *  could not be set up; the message says why), SM_ERR_INVALID_ARG, SM_ERR_NOMEM. */
SM_API sm_status sm_comm_open(const char *name, sm_comm *bootstrap, int device, sm_comm **out);

/** `size` communicators, one per rank, joined in this process: rank i is out[i] and must be
 *  used by its own thread (a collective waits for all ranks' calls). For tests and trying
 *  things out: a rank that never calls makes the others time out as a dead peer would. Each
 *  out[i] is destroyed by sm_comm_destroy, in any order. SM_ERR_INVALID_ARG (size outside
 *  1..256, NULL), SM_ERR_NOMEM (nothing is created). */
SM_API sm_status sm_comm_local_create(int size, sm_comm **out);

/** Frees a communicator (calling its ops->destroy). NULL: no-op. Detach it from every trainer
 *  first (or destroy those trainers). */
SM_API void sm_comm_destroy(sm_comm *comm);

/** This rank (0..size-1), the number of ranks; -1 for NULL. */
SM_API int sm_comm_rank(const sm_comm *comm);
SM_API int sm_comm_size(const sm_comm *comm);
/** 1 once the communicator has failed (a collective timed out or failed), else 0; -1 for
 *  NULL. */
SM_API int sm_comm_failed(const sm_comm *comm);
/** Whether the callbacks may be called from a thread of the library's, one call at a time and
 *  never while the host's thread is in one (MPI's MPI_THREAD_SERIALIZED): 1 lets a trainer
 *  attached to the communicator run its gradient exchange on its own thread, overlapped with
 *  the backward pass (SM_TRAINER_EXCHANGE_OVERLAP); with 0 every callback runs on the thread
 *  that called into the library, and the exchange follows the backward pass. Default:
 *  sm_comm_create 0; sm_comm_local_create 1; sm_comm_open("mpi") and sm_comm_from_mpi 1 where
 *  MPI runs at MPI_THREAD_SERIALIZED or above (the "mpi" module asks for it when it initialises
 *  MPI itself), else 0; sm_comm_open("nccl") 1. Results do not depend on it. It takes effect
 *  at a trainer's next step. sm_comm_set_serialized: SM_ERR_INVALID_ARG (NULL, `yes` not 0 or 1).
 *  sm_comm_serialized: 0 or 1, -1 for NULL. Since 0.5. */
SM_API sm_status sm_comm_set_serialized(sm_comm *comm, int yes);
SM_API int sm_comm_serialized(const sm_comm *comm);
/** The deadline of each collective, in seconds after it starts: (0, 1e6], default 300.
 *  Every rank should use the same. SM_ERR_INVALID_ARG. */
SM_API sm_status sm_comm_set_timeout(sm_comm *comm, double seconds);

/** Collectives for the host (a decision of rank 0 made known to all, a barrier before exit),
 *  under the communicator's timeout and fault rules above. sm_comm_broadcast: root's `bytes` at
 *  `buf` into `buf` on every rank. sm_comm_allgather: every rank's `bytes` at `send` into `recv`
 *  (size x bytes, rank order) on every rank. sm_comm_barrier: returns when every rank called
 *  it. SM_ERR_COMM (failed now or before), SM_ERR_INVALID_ARG. */
SM_API sm_status sm_comm_broadcast(sm_comm *comm, void *buf, size_t bytes, int root);
SM_API sm_status sm_comm_allgather(sm_comm *comm, const void *send, void *recv, size_t bytes);
SM_API sm_status sm_comm_barrier(sm_comm *comm);

/** Attaches a trainer to a communicator (borrowed: it must outlive the attachment), so that
 *  each step computes this rank's gradient shards and exchanges them (see above); NULL
 *  detaches (then the trainer steps alone, on all K shards). Collective: every rank calls it.
 *  It first compares the ranks' configurations (gradient shards, batch and micro-batch sizes,
 *  sampling and augmentation settings, P x K settings, the Adam hyperparameters and schedule,
 *  the architecture, the backend, its convolution algorithm, precision and TF32 options, and
 *  the seed): if any rank's differs from rank 0's, every rank refuses with SM_ERR_STATE and a
 *  message naming the rank and what differs. With more than one rank, SM_CONV_ALGO_MEASURED
 *  is refused (SM_ERR_INVALID_ARG): each process would time its own choices. Then rank 0's
 *  training state (parameters, Adam moments and step count, iteration, sampler and
 *  augmentation RNG states) is copied to every rank. The size must divide
 *  SM_TRAINER_GRAD_SHARDS (SM_ERR_INVALID_ARG otherwise, on every rank). With a communicator
 *  attached: sm_train_step and sm_train_step_batch (every rank passes the same pairs) exchange
 *  gradients; P x K steps are refused (SM_ERR_STATE); sm_trainer_save writes the file on rank 0
 *  only (other ranks return SM_OK and write nothing); sm_trainer_load reads it on every rank
 *  (the file must be visible to all; attach again after loading to check the configurations).
 *  Changing a trainer setting while attached is the caller's responsibility to do on every rank.
 *  Statuses: SM_ERR_COMM, SM_ERR_STATE, SM_ERR_INVALID_ARG, SM_ERR_NOMEM, SM_ERR_DEVICE. On
 *  failure the trainer is detached. */
SM_API sm_status sm_trainer_attach_comm(sm_trainer *trainer, sm_comm *comm);

/** CLOCK_MONOTONIC in nanoseconds: the clock of the callbacks' deadlines (for hosts whose
 *  language mode hides clock_gettime). Any thread. */
SM_API int64_t sm_comm_clock_ns(void);
/** Sleeps a little between two polls of a transport: nothing for the first attempts, then
 *  growing to 1 ms from about attempt 100 on (so a rank waiting for a slow peer leaves the
 *  processor to it). Any thread. */
SM_API void sm_comm_backoff(unsigned attempt);

/** Bytes this rank sent in collectives, and nanoseconds it spent in them, since the
 *  communicator was created (for measurements). NULL arguments are skipped. */
SM_API void sm_comm_stats(const sm_comm *comm, uint64_t *bytes_sent, uint64_t *ns_in_collectives);

#ifdef __cplusplus
}
#endif

#endif
