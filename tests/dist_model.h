/* SPDX-License-Identifier: MIT */
/* A small model, trainer and synthetic dataset for the data-parallel tests (test_comm.c on
 * threads, dist_rank.c under mpirun): the same set-up on every rank, and its parameters as
 * bytes to compare. Functions return an sm_status. */
#ifndef SM_TESTS_DIST_MODEL_H
#define SM_TESTS_DIST_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "siamese/siamese.h"

#define DM_ARCH_TINY "1x12x12:conv4k3,relu,pool2,conv4k3,relu,flatten,fc8"

typedef struct dm_model {
    sm_backend *be;
    sm_arch *arch;
    sm_subnet *sub;
    sm_head *head;
    sm_adam *adam;
    sm_dataset *ds;
    sm_trainer *tr;
    int h, w;
} dm_model;

/* The backend dm_create makes (default SM_BACKEND_CPU; SM_BACKEND_CPU_DNNL where the
 * environment has SIAMESE_TEST_DM_BACKEND=cpu-dnnl). */
extern sm_backend_kind dm_backend;

/* Backend dm_backend (on the CPU: one thread, convolutions AUTO); the arch text ("koch" for the reference network); a
 * synthetic dataset at the arch's input size; subnet and head initialised from `init_seed`;
 * trainer seed 7, learning rate 1e-3; SM_TRAINER_EXCHANGE_BUCKET from the environment's
 * SIAMESE_TEST_DM_BUCKET when set. */
sm_status dm_create(dm_model *m, const char *arch, int64_t batch, int64_t micro, int64_t shards,
                    unsigned augment, uint64_t init_seed);
void dm_destroy(dm_model *m);
/* All parameters (subnet then head), malloc'd, into *out (*n floats). */
sm_status dm_params(const dm_model *m, float **out, size_t *n);
/* FNV-1a of those bytes. */
uint64_t dm_hash(const float *p, size_t n);

#endif
