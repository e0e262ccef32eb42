/* SPDX-License-Identifier: MIT */
/* Test helper: a copy of everything a training step may change (parameters, Adam moments and
 * step count, iteration, sampler state), to prove that a failed call changed nothing or that a
 * resumed run matches an uninterrupted one bit for bit. */
#ifndef SM_TESTS_TRAIN_STATE_H
#define SM_TESTS_TRAIN_STATE_H

#include <stddef.h>
#include <stdint.h>

#include "siamese/siamese.h"

typedef struct train_state {
    size_t ns, nh;
    float *params; /* subnet ++ head */
    float *m, *v;  /* Adam: subnet ++ head */
    int64_t adam_t, iteration;
    uint64_t sampler[4]; /* zeros when the trainer has no dataset */
} train_state;

void train_state_take(const sm_trainer *t, train_state *out);
void train_state_free(train_state *s);
/* 1 when the two states are bit-identical. */
int train_state_equal(const train_state *a, const train_state *b);

#endif
