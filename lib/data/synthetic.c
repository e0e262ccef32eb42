/* SPDX-License-Identifier: MIT */
/* Generated handwriting-like glyphs: each class is a random figure of a few polyline strokes,
 * each of its images the same figure with jittered control points, a small shift and a varied
 * pen width, drawn in black on white with a one-pixel antialiasing ramp. One RNG stream, drawn
 * class by class and image by image, so the same arguments give the same images. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "common/alloc.h"
#include "data/dataset.h"
#include "common/error.h"
#include "common/rng.h"

#define MAX_STROKES          4
#define MAX_POINTS           4
#define CLASSES_PER_ALPHABET 10

/* Figure geometry, as fractions of the image size. Control points stay away from the border so
 * that jitter and shift keep the glyph inside the image. */
#define POINT_MARGIN 0.15
#define POINT_JITTER 0.04
#define SHIFT_JITTER 0.03
#define WIDTH_JITTER 0.2

typedef struct figure {
    int n_strokes;
    int n_points[MAX_STROKES];
    double x[MAX_STROKES][MAX_POINTS], y[MAX_STROKES][MAX_POINTS];
} figure;

/* Uniform in [lo, hi). */
static double uniform(sm__rng *r, double lo, double hi)
{
    return lo + (hi - lo) * sm__rng_uniform(r);
}

static void random_figure(sm__rng *r, figure *f)
{
    f->n_strokes = 2 + (int)sm__rng_below(r, 3);
    for (int s = 0; s < f->n_strokes; s++) {
        f->n_points[s] = 2 + (int)sm__rng_below(r, 3);
        for (int p = 0; p < f->n_points[s]; p++) {
            f->x[s][p] = uniform(r, POINT_MARGIN, 1.0 - POINT_MARGIN);
            f->y[s][p] = uniform(r, POINT_MARGIN, 1.0 - POINT_MARGIN);
        }
    }
}

/* Squared distance from (px, py) to the segment (ax, ay)-(bx, by). */
static double dist2_segment(double px, double py, double ax, double ay, double bx, double by)
{
    double dx = bx - ax, dy = by - ay;
    double len2 = dx * dx + dy * dy;
    double t = len2 > 0.0 ? ((px - ax) * dx + (py - ay) * dy) / len2 : 0.0;
    t = t < 0.0 ? 0.0 : (t > 1.0 ? 1.0 : t);
    double ex = px - (ax + t * dx), ey = py - (ay + t * dy);
    return ex * ex + ey * ey;
}

/* Adds one pen segment of half-width `r` (pixels) to the ink coverage, visiting only its
 * bounding box. */
static void draw_segment(float *cov, int h, int w, double ax, double ay, double bx, double by,
                         double r)
{
    double pad = r + 1.0;
    int x0 = (int)floor(fmin(ax, bx) - pad), x1 = (int)ceil(fmax(ax, bx) + pad);
    int y0 = (int)floor(fmin(ay, by) - pad), y1 = (int)ceil(fmax(ay, by) + pad);
    x0 = x0 < 0 ? 0 : x0;
    y0 = y0 < 0 ? 0 : y0;
    x1 = x1 > w - 1 ? w - 1 : x1;
    y1 = y1 > h - 1 ? h - 1 : y1;
    double outer = (r + 0.5) * (r + 0.5);
    for (int y = y0; y <= y1; y++) {
        for (int x = x0; x <= x1; x++) {
            double d2 = dist2_segment(x + 0.5, y + 0.5, ax, ay, bx, by);
            if (d2 >= outer) continue;
            double c = r + 0.5 - sqrt(d2);
            float v = c >= 1.0 ? 1.0f : (float)c;
            float *dst = &cov[(size_t)y * (size_t)w + (size_t)x];
            if (v > *dst) *dst = v;
        }
    }
}

/* Draws one jittered instance of `f` into `out` (0 = ink, 255 = paper). */
static void render_instance(sm__rng *r, const figure *f, int h, int w, float *cov, uint8_t *out)
{
    double size = h < w ? h : w;
    double sx = uniform(r, -SHIFT_JITTER, SHIFT_JITTER);
    double sy = uniform(r, -SHIFT_JITTER, SHIFT_JITTER);
    double half = (size / 20.0 + 1.0) * uniform(r, 1.0 - WIDTH_JITTER, 1.0 + WIDTH_JITTER) / 2.0;
    size_t n = (size_t)h * (size_t)w;
    memset(cov, 0, n * sizeof *cov);
    for (int s = 0; s < f->n_strokes; s++) {
        double px = 0.0, py = 0.0;
        for (int p = 0; p < f->n_points[s]; p++) {
            double x = (f->x[s][p] + sx + uniform(r, -POINT_JITTER, POINT_JITTER)) * w;
            double y = (f->y[s][p] + sy + uniform(r, -POINT_JITTER, POINT_JITTER)) * h;
            if (p > 0) draw_segment(cov, h, w, px, py, x, y, half);
            px = x;
            py = y;
        }
    }
    for (size_t i = 0; i < n; i++) out[i] = (uint8_t)lrintf((1.0f - cov[i]) * 255.0f);
}

/* Decimal digits of v, at least `min` (an int is at most 10 digits). */
static int digits(size_t v, int min)
{
    int d = 1;
    while (v >= 10 && d < 10) {
        v /= 10;
        d++;
    }
    return d < min ? min : d;
}

/* Renders every class into `ds`, in class order. */
static sm_status fill(sm_dataset *ds, int n_classes, int per_class, uint64_t seed)
{
    size_t n = ds->pixels_per_image;
    float *cov = sm__malloc(n * sizeof *cov); /* n <= 4096^2: no overflow */
    uint8_t *pixels = sm__malloc(n);
    sm_status st =
        cov && pixels ? SM_OK : sm__fail(SM_ERR_NOMEM, "out of memory generating a dataset");
    /* Zero-padded numbers keep the name order equal to the generation order. */
    int wa = digits((size_t)(n_classes - 1) / CLASSES_PER_ALPHABET, 2);
    int wc = digits((size_t)(n_classes - 1), 3);
    sm__rng r;
    sm__rng_seed(&r, seed);
    for (int c = 0; c < n_classes && st == SM_OK; c++) {
        char label[64];
        (void)snprintf(label, sizeof label, "synth%0*d/char%0*d", wa, c / CLASSES_PER_ALPHABET, wc,
                       c);
        figure f;
        random_figure(&r, &f);
        for (int k = 0; k < per_class && st == SM_OK; k++) {
            render_instance(&r, &f, ds->height, ds->width, cov, pixels);
            st = sm__dataset_add_u8(ds, label, pixels, NULL);
        }
    }
    sm__free(cov);
    sm__free(pixels);
    return st;
}

SM_API sm_status sm_dataset_create_synthetic(int n_classes, int per_class, int height, int width,
                                             uint64_t seed, sm_dataset **out)
{
    SM_CHECK_ARG(out, "sm_dataset_create_synthetic: out is NULL");
    SM_CHECK_ARG(n_classes >= 1 && per_class >= 1,
                 "sm_dataset_create_synthetic: %d classes of %d images: both must be >= 1",
                 n_classes, per_class);
    SM_CHECK_ARG(height >= 1 && height <= SM__MAX_IMAGE_SIDE && width >= 1 &&
                     width <= SM__MAX_IMAGE_SIDE,
                 "sm_dataset_create_synthetic: image size %dx%d out of range (1..%d each)", width,
                 height, SM__MAX_IMAGE_SIDE);
    size_t total;
    SM_CHECK_ARG(sm__mul_size((size_t)n_classes, (size_t)per_class, &total),
                 "sm_dataset_create_synthetic: too many images");
    sm_dataset *ds = NULL;
    SM_TRY(sm_dataset_create(height, width, &ds));
    sm_status st = sm__dataset_reserve(ds, total);
    if (st == SM_OK) st = fill(ds, n_classes, per_class, seed);
    if (st != SM_OK) {
        sm_dataset_destroy(ds);
        return st;
    }
    *out = ds;
    return SM_OK;
}
