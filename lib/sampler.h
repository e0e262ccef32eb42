/* SPDX-License-Identifier: MIT */
/* Private: what the trainer and the checkpoint code need of a pair sampler beyond the public
 * API: its RNG state, so a resumed run draws exactly the batches an uninterrupted one would. */
#ifndef SM_LIB_SAMPLER_H
#define SM_LIB_SAMPLER_H

#include <stdint.h>

#include "siamese/siamese.h"

void sm__sampler_get_state(const sm_sampler *s, uint64_t state[4]);
void sm__sampler_set_state(sm_sampler *s, const uint64_t state[4]);

#endif
