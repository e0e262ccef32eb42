/* SPDX-License-Identifier: MIT */
/* Resizing grey images (area average when shrinking, linear when growing, per axis) and
 * sm_image_load_png, which reads a PNG of any size and kind and fits it to a model's input. */
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "common/error.h"
#include "common/limits.h"
#include "data/dataset.h"
#include "data/image.h"
#include "io/file_read.h"
#include "io/png.h"

/* The taps of one axis: output o reads `count[o]` source pixels from `first[o]` with weights
 * at `weight + off[o]`. */
typedef struct taps {
    size_t *first, *count, *off;
    double *weight;
} taps;

static void taps_free(taps *t)
{
    sm__free(t->first), sm__free(t->count), sm__free(t->off), sm__free(t->weight);
    *t = (taps){0};
}

static sm_status taps_build(size_t in, size_t out, taps *t)
{
    /* shrinking: at most in/out + 2 taps per output, so in + 2 out in all; growing: 2 each */
    size_t cap = in + 2 * out + 2, n = out;
    t->first = sm__calloc(n, sizeof *t->first);
    t->count = sm__calloc(n, sizeof *t->count);
    t->off = sm__calloc(n, sizeof *t->off);
    t->weight = sm__calloc(cap, sizeof *t->weight);
    if (!t->first || !t->count || !t->off || !t->weight) {
        taps_free(t);
        return sm__fail(SM_ERR_NOMEM, "out of memory resizing an image");
    }
    size_t used = 0;
    for (size_t o = 0; o < out; o++) {
        t->off[o] = used;
        if (out < in) {
            /* footprint [o s, (o + 1) s) in source pixels, s = in / out; overlaps / s */
            double s = (double)in / (double)out, lo = (double)o * s, hi = lo + s;
            size_t i0 = (size_t)lo, i1 = (size_t)hi;
            if (i1 >= in) i1 = in - 1;
            t->first[o] = i0;
            for (size_t i = i0; i <= i1; i++) {
                double a = (double)i > lo ? (double)i : lo;
                double b = (double)(i + 1) < hi ? (double)(i + 1) : hi;
                t->weight[used + (i - i0)] = b > a ? (b - a) / s : 0.0;
            }
            t->count[o] = i1 - i0 + 1;
        } else {
            /* centres aligned: x = (o + 1/2) in / out - 1/2, clamped to the edge pixels */
            double x = ((double)o + 0.5) * (double)in / (double)out - 0.5;
            if (x < 0) x = 0;
            if (x > (double)(in - 1)) x = (double)(in - 1);
            size_t i0 = (size_t)x;
            double f = x - (double)i0;
            t->first[o] = i0;
            t->weight[used] = 1.0 - f;
            t->count[o] = 1;
            if (f > 0 && i0 + 1 < in) {
                t->weight[used + 1] = f;
                t->count[o] = 2;
            }
        }
        used += t->count[o];
    }
    return SM_OK;
}

sm_status sm__image_resize(const float *src, size_t src_h, size_t src_w, float *dst, size_t dst_h,
                           size_t dst_w)
{
    if (src_h == dst_h && src_w == dst_w) {
        memcpy(dst, src, src_h * src_w * sizeof *dst);
        return SM_OK;
    }
    size_t tmp_n;
    if (!sm__mul_size(src_h, dst_w, &tmp_n) || !sm__mul_size(tmp_n, sizeof(float), &tmp_n))
        return sm__fail(SM_ERR_LIMIT, "image too large to resize");
    taps tx = {0}, ty = {0};
    float *tmp = NULL;
    sm_status st = taps_build(src_w, dst_w, &tx);
    if (st == SM_OK) st = taps_build(src_h, dst_h, &ty);
    if (st == SM_OK && !(tmp = sm__malloc(tmp_n)))
        st = sm__fail(SM_ERR_NOMEM, "out of memory resizing an image");
    if (st == SM_OK) {
        for (size_t y = 0; y < src_h; y++) {
            const float *row = src + y * src_w;
            for (size_t x = 0; x < dst_w; x++) {
                double acc = 0;
                const double *w = tx.weight + tx.off[x];
                for (size_t k = 0; k < tx.count[x]; k++) acc += w[k] * row[tx.first[x] + k];
                tmp[y * dst_w + x] = (float)acc;
            }
        }
        for (size_t y = 0; y < dst_h; y++) {
            const double *w = ty.weight + ty.off[y];
            for (size_t x = 0; x < dst_w; x++) {
                double acc = 0;
                for (size_t k = 0; k < ty.count[y]; k++)
                    acc += w[k] * tmp[(ty.first[y] + k) * dst_w + x];
                /* weights sum to 1 up to rounding: keep values inside [0, 1] */
                dst[y * dst_w + x] = (float)(acc < 0 ? 0 : acc > 1 ? 1 : acc);
            }
        }
    }
    sm__free(tmp);
    taps_free(&tx);
    taps_free(&ty);
    return st;
}

static int side_ok(int v) { return v >= 1 && v <= SM__MAX_IMAGE_SIDE; }

SM_API sm_status sm_image_resize(const float *src, int src_height, int src_width, float *dst,
                                 int dst_height, int dst_width)
{
    SM_CHECK_ARG(src && dst, "sm_image_resize: NULL argument");
    SM_CHECK_ARG(side_ok(src_height) && side_ok(src_width) && side_ok(dst_height) &&
                     side_ok(dst_width),
                 "sm_image_resize: sizes %dx%d -> %dx%d out of range (1..%d each)", src_width,
                 src_height, dst_width, dst_height, SM__MAX_IMAGE_SIDE);
    return sm__image_resize(src, (size_t)src_height, (size_t)src_width, dst, (size_t)dst_height,
                            (size_t)dst_width);
}

SM_API sm_status sm_image_load_png(const char *path, int height, int width, float *pixels)
{
    SM_CHECK_ARG(path && pixels, "sm_image_load_png: NULL argument");
    SM_CHECK_ARG(side_ok(height) && side_ok(width),
                 "sm_image_load_png: image size %dx%d out of range (1..%d each)", width, height,
                 SM__MAX_IMAGE_SIDE);
    uint8_t *data = NULL, *grey = NULL;
    float *full = NULL, *fitted = NULL;
    size_t size = 0, n = 0, out_n = (size_t)height * (size_t)width;
    int h = 0, w = 0;
    SM_TRY(sm__file_read_all(path, sm__limit(SM_LIMIT_ENTRY_BYTES), "SM_LIMIT_ENTRY_BYTES", &data,
                             &size));
    sm_status st = sm__png_decode_any(data, size, path, &h, &w, &grey);
    sm__free(data);
    if (st == SM_OK) {
        n = (size_t)h * (size_t)w;
        full = sm__malloc(n * sizeof *full);
        fitted = sm__malloc(out_n * sizeof *fitted);
        if (!full || !fitted) st = sm__fail(SM_ERR_NOMEM, "out of memory reading '%s'", path);
    }
    if (st == SM_OK) {
        for (size_t i = 0; i < n; i++) full[i] = (float)grey[i] / 255.0f;
        st = sm__image_resize(full, (size_t)h, (size_t)w, fitted, (size_t)height, (size_t)width);
    }
    /* the caller's buffer is written only once everything worked */
    if (st == SM_OK) memcpy(pixels, fitted, out_n * sizeof *pixels);
    sm__free(fitted);
    sm__free(full);
    sm__free(grey);
    return st;
}
