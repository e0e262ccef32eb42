/* SPDX-License-Identifier: MIT */
/* The gallery's storage types (siamese/gallery.h, sm_storage_type): float32 rows to what is
 * stored and back. The search decodes stored rows as the l1_scores op does (backend_plugin.h:
 * bf16 and f16 widen exactly, u8 is fmaf(u, scale, offset)); sm__storage_decode gives the same
 * floats, for checks and tests. Host byte order throughout: files convert (gallery_file.c). */
#include <math.h>
#include <string.h>

#include "gallery/gallery.h"

size_t sm__storage_elem(sm_storage_type t)
{
    return t == SM_STORAGE_F32 ? 4 : t == SM_STORAGE_U8 ? 1 : 2;
}

static const char *const names[] = {"f32", "bf16", "f16", "u8"};

const char *sm__storage_name(sm_storage_type t)
{
    return (unsigned)t < sizeof names / sizeof *names ? names[t] : NULL;
}

int sm__storage_parse(const char *name)
{
    for (int i = 0; i < (int)(sizeof names / sizeof *names); i++)
        if (name && !strcmp(name, names[i])) return i;
    return -1;
}

/* ------------------------------------------------------------------ half types */

static uint32_t bits_of(float f)
{
    uint32_t b;
    memcpy(&b, &f, 4);
    return b;
}

static float float_of(uint32_t b)
{
    float f;
    memcpy(&f, &b, 4);
    return f;
}

/* bfloat16, rounded to nearest even (features are finite). */
static uint16_t to_bf16(float f)
{
    uint32_t b = bits_of(f);
    b += 0x7fffu + ((b >> 16) & 1u);
    return (uint16_t)(b >> 16);
}

/* IEEE binary16, rounded to nearest even: what vcvtps2ph does in its default rounding mode. */
static uint16_t to_f16(float f)
{
    const uint32_t b = bits_of(f), sign = (b >> 16) & 0x8000u, a = b & 0x7fffffffu;
    if (a >= 0x7f800000u) return (uint16_t)(sign | 0x7c00u | (a > 0x7f800000u ? 0x200u : 0));
    if (a >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u); /* rounds to 65520 and up: inf */
    if (a < 0x38800000u) {                                   /* below 2^-14: a subnormal */
        const uint32_t e = a >> 23;
        if (e < 102) return (uint16_t)sign; /* below 2^-25: rounds to 0 (2^-25 ties to 0) */
        const uint32_t m = (a & 0x7fffffu) | 0x800000u, shift = 126 - e;
        uint32_t h = m >> shift;
        const uint32_t rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (h & 1u))) h++;
        return (uint16_t)(sign | h);
    }
    uint32_t h = (a >> 13) - (112u << 10);
    const uint32_t rem = a & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) h++; /* a carry moves the exponent up */
    return (uint16_t)(sign | h);
}

static float from_f16(uint16_t h)
{
    const uint32_t sign = (uint32_t)(h & 0x8000u) << 16, e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
    if (e == 0) {
        float v = (float)m * 0x1p-24f; /* exact */
        return sign ? -v : v;
    }
    if (e == 31) return float_of(sign | 0x7f800000u | (m << 13) | (m ? 0x400000u : 0));
    return float_of(sign | ((e + 112) << 23) | (m << 13));
}

/* ------------------------------------------------------------------ u8 */

/* A vector's offset (its minimum) and scale ((max - min) / 255); each feature is the nearest of
 * the 256 levels fmaf(u, scale, offset). */
static void encode_u8(size_t dim, const float *x, uint8_t *u, float *qp)
{
    float lo = x[0], hi = x[0];
    for (size_t d = 1; d < dim; d++) {
        if (x[d] < lo) lo = x[d];
        if (x[d] > hi) hi = x[d];
    }
    const float scale = (hi - lo) / 255.0f;
    qp[0] = lo, qp[1] = scale;
    for (size_t d = 0; d < dim; d++) {
        if (scale <= 0.0f) {
            u[d] = 0;
            continue;
        }
        float c = nearbyintf((x[d] - lo) / scale);
        int k = c < 0.0f ? 0 : c > 255.0f ? 255 : (int)c;
        /* the division rounds: take the neighbour whose level is nearer, if it is */
        for (int t = k - 1; t <= k + 1; t += 2)
            if (t >= 0 && t <= 255 &&
                fabsf(fmaf((float)t, scale, lo) - x[d]) < fabsf(fmaf((float)k, scale, lo) - x[d]))
                k = t;
        u[d] = (uint8_t)k;
    }
}

/* ------------------------------------------------------------------ the codec */

void sm__storage_encode(sm_storage_type t, size_t n, size_t dim, const float *src, void *rows,
                        float *qp)
{
    uint8_t *out = rows;
    const size_t count = n * dim;
    switch (t) {
    case SM_STORAGE_F32: memcpy(out, src, count * sizeof *src); return;
    case SM_STORAGE_BF16:
        for (size_t i = 0; i < count; i++) {
            uint16_t h = to_bf16(src[i]);
            memcpy(out + 2 * i, &h, 2);
        }
        return;
    case SM_STORAGE_F16:
        for (size_t i = 0; i < count; i++) {
            uint16_t h = to_f16(src[i]);
            memcpy(out + 2 * i, &h, 2);
        }
        return;
    case SM_STORAGE_U8:
        for (size_t r = 0; r < n; r++) encode_u8(dim, src + r * dim, out + r * dim, qp + 2 * r);
        return;
    }
}

void sm__storage_decode(sm_storage_type t, size_t n, size_t dim, const void *rows, const float *qp,
                        float *dst)
{
    const uint8_t *in = rows;
    const size_t count = n * dim;
    uint16_t h;
    switch (t) {
    case SM_STORAGE_F32: memcpy(dst, in, count * sizeof *dst); return;
    case SM_STORAGE_BF16:
        for (size_t i = 0; i < count; i++)
            memcpy(&h, in + 2 * i, 2), dst[i] = float_of((uint32_t)h << 16);
        return;
    case SM_STORAGE_F16:
        for (size_t i = 0; i < count; i++) memcpy(&h, in + 2 * i, 2), dst[i] = from_f16(h);
        return;
    case SM_STORAGE_U8:
        for (size_t r = 0; r < n; r++)
            for (size_t d = 0; d < dim; d++)
                dst[r * dim + d] = fmaf((float)in[r * dim + d], qp[2 * r + 1], qp[2 * r]);
        return;
    }
}

/* The offset and scale of a vector in [0, 1], as encode_u8 writes them: offset in [0, 1], scale
 * at least 0 and the top level offset + 255 scale at most 1 (and a float's rounding). */
static int u8_params_ok(const float *qp)
{
    const double off = qp[0], scale = qp[1];
    return off >= 0.0 && off <= 1.0 && scale >= 0.0 && off + 255.0 * scale <= 1.0 + 1e-6;
}

size_t sm__storage_first_bad(sm_storage_type t, size_t n, size_t dim, const void *rows,
                             const float *qp, size_t *bad_at)
{
    const uint8_t *in = rows;
    for (size_t r = 0; r < n; r++) {
        if (t == SM_STORAGE_U8) {
            if (!u8_params_ok(qp + 2 * r)) {
                if (bad_at) *bad_at = dim;
                return r;
            }
            continue; /* every code decodes within [offset, offset + 255 scale] */
        }
        for (size_t d = 0; d < dim; d++) {
            float v;
            uint16_t h;
            const size_t i = r * dim + d;
            if (t == SM_STORAGE_F32) memcpy(&v, in + 4 * i, 4);
            else if (memcpy(&h, in + 2 * i, 2), t == SM_STORAGE_BF16)
                v = float_of((uint32_t)h << 16);
            else v = from_f16(h);
            if (!(v >= 0.0f && v <= 1.0f)) { /* NaN compares false */
                if (bad_at) *bad_at = d;
                return r;
            }
        }
    }
    return SIZE_MAX;
}
