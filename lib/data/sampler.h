/* SPDX-License-Identifier: MIT */
/* Private: what the trainer and the checkpoint code need of a pair sampler beyond the public
 * API: its RNG state, so a resumed run draws exactly the batches an uninterrupted one would. */
#ifndef SM_LIB_SAMPLER_H
#define SM_LIB_SAMPLER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "siamese/siamese.h"

void sm__sampler_get_state(const sm_sampler *s, uint64_t state[4]);
void sm__sampler_set_state(sm_sampler *s, const uint64_t state[4]);

/* Since 0.3, both off by default (lib/data/sampler.c describes the draws): the fraction in [0, 1]
 * of dissimilar pairs whose second class is drawn from the first's alphabet, and alphabet-balanced
 * class draws (pairs and P x K batches). The caller checked the ranges. */
void sm__sampler_set_options(sm_sampler *s, double neg_same_alphabet, bool alphabet_balanced);
/* A P x K batch: p distinct classes among those with >= k images, k distinct images of each,
 * class by class (image q*k + i is the i-th of the q-th class). `images` (p*k images, may be
 * NULL) receives the pixels as floats, `index` (may be NULL) the dataset indices.
 * SM_ERR_DATASET (with the reason) when the dataset cannot give such a batch; SM_ERR_NOMEM.
 * The RNG advances only on success. p, k >= 1. */
sm_status sm__sampler_next_pk(sm_sampler *s, size_t p, size_t k, float *images, size_t *index);

/* Rotated classes (since 0.4, off by default; lib/data/sampler.c describes them): the sampler's
 * classes are 4 per dataset class, class v the dataset's class v mod C (C classes) turned by
 * v / C quarter turns counterclockwise, its alphabet (v / C) A + the class's (A alphabets).
 * Takes effect at the next draw, which fails with SM_ERR_SHAPE when the images are not square. */
void sm__sampler_set_rotated(sm_sampler *s, bool rotated);
/* sm_sampler_next, also giving each image's class as the sampler sees it (left_class and
 * right_class may be NULL; without rotated classes the dataset's class). */
sm_status sm__sampler_next_classes(sm_sampler *s, size_t n, float *left, float *right,
                                   float *labels, size_t *left_index, size_t *right_index,
                                   size_t *left_class, size_t *right_class);
/* sm__sampler_next_pk, also giving each image's class as the sampler sees it (may be NULL). */
sm_status sm__sampler_next_pk_classes(sm_sampler *s, size_t p, size_t k, float *images,
                                      size_t *index, size_t *classes);

#endif
