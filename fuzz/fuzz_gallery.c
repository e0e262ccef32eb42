/* SPDX-License-Identifier: MIT */
/* libFuzzer target: see sm_fuzz_gallery in fuzz_entries.h. */
#include <stdlib.h>

#include "fuzz_entries.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (sm_fuzz_gallery(data, size) != 0) abort(); /* a broken invariant: keep the input */
    return 0;
}
