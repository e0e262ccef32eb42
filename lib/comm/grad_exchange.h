/* SPDX-License-Identifier: MIT */
/* Private: the data-parallel gradient exchange, as bytes over a communicator; it knows nothing
 * of models or trainers (train/trainer_shards.c computes the shards and calls it).
 *
 * A step's gradient is the left fold P0 + P1 + ... + P(K-1) of K shard gradients of G floats.
 * With N ranks (N divides K), rank r holds shards r K/N .. (r+1) K/N - 1. The gradient is cut
 * into buckets of B floats (B a multiple of N; the last bucket, at the end of the gradient, may
 * be shorter), exchanged from the last bucket to the first, the order in which a backward pass
 * finishes them. Each bucket of M floats is cut into N slices of L = ceil(M/N) floats, zeros
 * past M (sm__shard_slice: with M = 5 and N = 4, slice 3 is all padding); an all-to-all sends
 * slice j of each local shard's bucket to rank j, which folds its K slices in shard order; an
 * all-gather then gives every rank the whole folded bucket. Last, an all-gather of the K/N
 * losses per rank. The fold is element by element, so any cut into buckets gives the same bits,
 * the collectives only move bytes, and one process (no communicator) adds the same numbers in
 * the same order: every N dividing K gives the same bits. Bytes sent per rank: (N-1)(K/N) x 4G
 * in the all-to-alls and (N-1) x 4G in the all-gathers (plus padding, at most N - 1 floats per
 * bucket and slice, and the losses).
 *
 * Overlap: with a communicator whose callbacks may run on another thread
 * (sm_comm_set_serialized) and more than one rank, the collectives run on the exchange's own
 * thread, started at the first such step and kept: the trainer says as the backward pass goes
 * which floats are final (sm__grad_exchange_ready), and each bucket leaves as soon as all of it
 * is. The calling thread makes no collective call from sm__grad_exchange_begin to the return of
 * sm__grad_exchange_finish or _cancel (MPI_THREAD_SERIALIZED is enough). Without overlap every
 * collective runs in sm__grad_exchange_finish, on the calling thread. Either way the same
 * collectives, in the same order, with the same sizes. */
#ifndef SM_LIB_COMM_GRAD_EXCHANGE_H
#define SM_LIB_COMM_GRAD_EXCHANGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "siamese/siamese.h"

typedef struct sm__exchange_thread sm__exchange_thread;

/* The exchange's host buffers, grown on demand and kept between steps, its thread, and the
 * step in flight (zero-initialise; sm__grad_exchange_free). */
typedef struct sm__grad_exchange {
    unsigned char *send, *recv; /* one bucket's all-to-all: N blocks each */
    float *acc;                 /* this rank's folded slice of one bucket (L floats) */
    float *full;                /* the whole folded gradient, and the last bucket's padding */
    double *losses;             /* all K losses (the last all-gather) */
    size_t cap_block, cap_acc, cap_full, cap_losses;
    sm__exchange_thread *th; /* NULL until the first overlapped step */

    /* the step in flight (sm__grad_exchange_begin) */
    sm_comm *comm;
    size_t k, nr, per, g, bucket, n_buckets;
    const float *part;
    bool overlap, active;

    /* measurements, for benchmarks: nanoseconds (CLOCK_MONOTONIC) of the last step */
    int64_t t_finish; /* when the trainer had every float of its shards and called finish */
    int64_t t_done;   /* when the folded gradient was there for it */
    int64_t ns_busy;  /* in the step's collectives, whichever thread ran them */
} sm__grad_exchange;

/* Slice j (0..nr-1, nr >= 1) of a gradient of g floats cut over nr ranks in slices of
 * ceil(g/nr) floats: the floats [*begin, *begin + *count), *count <= ceil(g/nr) (the rest of
 * the slice is padding); a slice past g is empty (*begin = g, *count = 0). The slices cover
 * [0, g) once, in order. */
void sm__shard_slice(size_t g, size_t nr, size_t j, size_t *begin, size_t *count);

/* Floats per bucket for `bucket_bytes` (0: the whole gradient, one bucket) over nr ranks: a
 * multiple of nr, at least nr. */
size_t sm__exchange_bucket_floats(uint64_t bucket_bytes, size_t g, size_t nr);

/* Starts a step's exchange of K = `shards` shard gradients of g floats: this rank's K/N at
 * `part` (K/N x g floats in shard order, owned by the caller until finish or cancel returns),
 * the others' through `comm` (NULL: alone, N = 1), in buckets of `bucket_bytes` (see
 * sm__exchange_bucket_floats). `overlap` asks for the exchange's thread (see above); whether
 * it is used is sm__grad_exchange_overlaps. SM_ERR_STATE (N does not divide K), SM_ERR_LIMIT,
 * SM_ERR_NOMEM; nothing is started then. */
sm_status sm__grad_exchange_begin(sm__grad_exchange *x, sm_comm *comm, size_t shards, size_t g,
                                  const float *part, uint64_t bucket_bytes, bool overlap);
/* Whether this step's collectives run on the exchange's thread while the caller computes. */
bool sm__grad_exchange_overlaps(const sm__grad_exchange *x);
/* Overlap: the floats [from, g) of every local shard at `part` are final (and stay so until
 * finish); `from` only decreases. The buckets they complete leave now. Without overlap: no-op. */
void sm__grad_exchange_ready(sm__grad_exchange *x, size_t from);
/* Every local shard is final and `losses` holds their K/N losses: completes the step. On
 * success *folded points at the whole folded gradient (g floats, inside x: valid until the
 * next begin) and *loss_sum is the K losses' sum in shard order. SM_ERR_COMM (with the failing
 * collective's message), SM_ERR_NOMEM. */
sm_status sm__grad_exchange_finish(sm__grad_exchange *x, const double *losses,
                                   const float **folded, double *loss_sum);
/* Ends a step that will not finish (the caller's backward failed): waits for a collective in
 * flight on the exchange's thread and starts no other. The peers then time out, as they would
 * on a rank that died. */
void sm__grad_exchange_cancel(sm__grad_exchange *x);

/* begin (one bucket, no overlap) + finish: the whole exchange at once. */
sm_status sm__grad_exchange_fold(sm__grad_exchange *x, sm_comm *comm, size_t shards, size_t g,
                                 const float *part, const double *losses, const float **folded,
                                 double *loss_sum);
/* Stops the exchange's thread (no step may be in flight) and frees the buffers. */
void sm__grad_exchange_free(sm__grad_exchange *x);

#endif
