/* SPDX-License-Identifier: MIT */
/* Private: the resource limits of the public sm_set_limit/sm_get_limit, for the readers. */
#ifndef SM_LIB_LIMITS_H
#define SM_LIB_LIMITS_H

#include <stdint.h>

#include "siamese/siamese.h"

uint64_t sm__limit(sm_limit key);

#endif
