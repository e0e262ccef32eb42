/* SPDX-License-Identifier: MIT */
/* Private: the library's own seeded RNG (xoshiro256**, seeded through splitmix64), used for
 * weight initialisation and pair sampling on the host, so that a seed gives the same weights
 * and batches on every backend. Its state is four words, saved in checkpoints. */
#ifndef SM_LIB_RNG_H
#define SM_LIB_RNG_H

#include <stdint.h>

typedef struct sm__rng {
    uint64_t s[4];
} sm__rng;

void sm__rng_seed(sm__rng *r, uint64_t seed);
uint64_t sm__rng_u64(sm__rng *r);
/* Uniform integer in [0, n) without modulo bias; n > 0. */
uint64_t sm__rng_below(sm__rng *r, uint64_t n);
/* Uniform double in [0, 1) with 53 random bits. */
double sm__rng_uniform(sm__rng *r);
/* Standard normal (Box-Muller; two uniforms per value, no cached second value so the state
 * stays just the four words). */
double sm__rng_normal(sm__rng *r);

#endif
