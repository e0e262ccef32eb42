/* SPDX-License-Identifier: MIT */
/* Private: the data-parallel gradient exchange, as bytes over a communicator; it knows nothing
 * of models or trainers (train/trainer_shards.c computes the shards and calls it).
 *
 * A step's gradient is the left fold P0 + P1 + ... + P(K-1) of K shard gradients of G floats.
 * With N ranks (N divides K), rank r holds shards r K/N .. (r+1) K/N - 1. The gradient is cut
 * into N slices of L = ceil(G/N) floats, zeros past G (sm__shard_slice: with G = 5 and N = 4,
 * slice 3 is all padding); an all-to-all sends slice j of each local shard to rank j, which
 * folds its K slices in shard order; an all-gather then gives every rank the whole folded
 * gradient. The collectives only move bytes, and one process (no communicator) runs the same
 * fold on the same numbers, so every N dividing K gives the same bits. Bytes sent per rank:
 * (N-1) (K/N) L x 4 (+ K/N losses) in the all-to-all, (N-1) L x 4 in the all-gather. */
#ifndef SM_LIB_COMM_GRAD_EXCHANGE_H
#define SM_LIB_COMM_GRAD_EXCHANGE_H

#include <stddef.h>

#include "siamese/siamese.h"

/* The exchange's host buffers, grown on demand and kept between steps (zero-initialise). */
typedef struct sm__grad_exchange {
    unsigned char *send, *recv; /* the all-to-all's N blocks */
    float *full;                /* N slices of the folded gradient (the all-gather's) */
    size_t cap_block, cap_full;
} sm__grad_exchange;

/* Slice j (0..nr-1, nr >= 1) of a gradient of g floats cut over nr ranks in slices of
 * ceil(g/nr) floats: the floats [*begin, *begin + *count), *count <= ceil(g/nr) (the rest of
 * the slice is padding); a slice past g is empty (*begin = g, *count = 0). The slices cover
 * [0, g) once, in order. */
void sm__shard_slice(size_t g, size_t nr, size_t j, size_t *begin, size_t *count);

/* Folds K = `shards` shard gradients of g floats: this rank's K/N at `part` (K/N x g floats,
 * in shard order) with their losses, the others' through `comm` (NULL: alone, N = 1). On
 * success *folded points at the whole folded gradient (g floats, inside x: valid until the
 * next call) and *loss_sum is the K losses' sum in shard order. SM_ERR_STATE (N does not divide
 * K), SM_ERR_LIMIT, SM_ERR_NOMEM, SM_ERR_COMM. */
sm_status sm__grad_exchange_fold(sm__grad_exchange *x, sm_comm *comm, size_t shards, size_t g,
                                 const float *part, const double *losses, const float **folded,
                                 double *loss_sum);
void sm__grad_exchange_free(sm__grad_exchange *x);

#endif
