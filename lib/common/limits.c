/* SPDX-License-Identifier: MIT */
/* Resource limits, process-wide. Atomics, so a host may raise one while other threads read
 * files; a reader takes the value once per file. */
#include "common/limits.h"

#include <stdatomic.h>

#include "common/error.h"

static _Atomic uint64_t limits[] = {
    0,
    (uint64_t)16 << 30, /* SM_LIMIT_FILE_BYTES */
    (uint64_t)64 << 20, /* SM_LIMIT_ENTRY_BYTES */
    (uint64_t)16 << 30, /* SM_LIMIT_DATASET_BYTES */
    4096,               /* SM_LIMIT_IMAGE_SIDE */
};

#define N_LIMITS (sizeof limits / sizeof limits[0])

SM_API sm_status sm_set_limit(sm_limit key, uint64_t value)
{
    SM_CHECK_ARG(key >= 1 && (size_t)key < N_LIMITS, "unknown limit %d", (int)key);
    SM_CHECK_ARG(value > 0, "limit %d cannot be 0", (int)key);
    atomic_store(&limits[key], value);
    return SM_OK;
}

SM_API uint64_t sm_get_limit(sm_limit key)
{
    if (key < 1 || (size_t)key >= N_LIMITS) return 0;
    return atomic_load(&limits[key]);
}

uint64_t sm__limit(sm_limit key) { return sm_get_limit(key); }
