/* SPDX-License-Identifier: MIT */
#include <stdlib.h>
#include <string.h>

#include "data/dataset.h"
#include "io/png.h"
#include "fuzz_entries.h"

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

int sm_fuzz_png(const uint8_t *data, size_t size)
{
    /* Mostly the size the header claims, so that decoding is reached; 28x28 otherwise. */
    int w = 28, h = 28;
    if (size >= 24 && memcmp(data + 12, "IHDR", 4) == 0) {
        uint32_t cw = be32(data + 16), ch = be32(data + 20);
        if (cw >= 1 && cw <= 512 && ch >= 1 && ch <= 512) w = (int)cw, h = (int)ch;
    }
    uint8_t *out = malloc((size_t)w * (size_t)h);
    if (!out) return 0;
    sm_status st = sm__png_decode(data, size, "fuzz.png", h, w, out);
    free(out);
    switch (st) {
    case SM_OK: return 0;
    case SM_ERR_FORMAT:
    case SM_ERR_SHAPE:
    case SM_ERR_LIMIT:
    case SM_ERR_NOMEM: return sm_last_error()[0] ? 0 : 1;
    default: return 1;
    }
}
