/* SPDX-License-Identifier: MIT */
/* The figures docs/reference.md's reference shows, drawn from the library's datasets and models: a grid
 * of random training images with their labels, ten random training pairs marked similar or
 * dissimilar, and ten test pairs with target, prediction and score (the loss curve is drawn
 * from the training log, loss_log.h). Each returns 0, or prints why it failed and returns -1;
 * a failed figure never stops training. */
#ifndef SIAMESE_EXAMPLES_PIPELINE_FIGURES_H
#define SIAMESE_EXAMPLES_PIPELINE_FIGURES_H

#include <stdint.h>

#include <siamese/siamese.h>

int pf_training_images(const char *path, const sm_dataset *ds, uint64_t seed);
int pf_training_pairs(const char *path, const sm_dataset *ds, uint64_t seed);
int pf_test_pairs(const char *path, const sm_subnet *subnet, const sm_head *head,
                  const sm_dataset *ds, uint64_t seed);

#endif
