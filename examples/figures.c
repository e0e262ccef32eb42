/* SPDX-License-Identifier: MIT */
/* Figures drawn with cairo (see figures.h). Layout constants are in pixels of the output. */
#include "figures.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cairo.h>

#define FONT "DejaVu Sans"
#ifndef M_PI
#define M_PI 3.14159265358979323846
#endif

static char last_error[512];

#if defined(__GNUC__)
__attribute__((format(printf, 1, 2)))
#endif
static int
set_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    return -1;
}

int fig_available(void) { return 1; }

const char *fig_last_error(void) { return last_error; }

static void rgb(cairo_t *cr, fig_colour c)
{
    switch (c) {
    case FIG_GREEN: cairo_set_source_rgb(cr, 0.10, 0.55, 0.20); break;
    case FIG_RED: cairo_set_source_rgb(cr, 0.80, 0.12, 0.10); break;
    case FIG_BLUE: cairo_set_source_rgb(cr, 0.12, 0.35, 0.75); break;
    case FIG_ORANGE: cairo_set_source_rgb(cr, 0.85, 0.45, 0.05); break;
    default: cairo_set_source_rgb(cr, 0.35, 0.35, 0.35); break;
    }
}

static cairo_t *begin(int width, int height, cairo_surface_t **surface)
{
    *surface = cairo_image_surface_create(CAIRO_FORMAT_RGB24, width, height);
    cairo_t *cr = cairo_create(*surface);
    cairo_set_source_rgb(cr, 1, 1, 1);
    cairo_paint(cr);
    cairo_select_font_face(cr, FONT, CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
    return cr;
}

/* Writes PATH.tmp and renames it over PATH: a viewer sees the old figure or the new one. */
static int finish(cairo_t *cr, cairo_surface_t *surface, const char *path)
{
    int rc = 0;
    cairo_status_t cs = cairo_status(cr);
    if (cs != CAIRO_STATUS_SUCCESS) rc = set_error("cairo: %s", cairo_status_to_string(cs));
    cairo_destroy(cr);
    char tmp[4200];
    if (!rc && snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp)
        rc = set_error("path too long: '%s'", path);
    if (!rc) {
        cs = cairo_surface_write_to_png(surface, tmp);
        if (cs != CAIRO_STATUS_SUCCESS) {
            rc = set_error("cannot write '%s': %s", tmp, cairo_status_to_string(cs));
            remove(tmp);
        } else if (rename(tmp, path) != 0) {
            rc = set_error("cannot rename '%s' to '%s': %s", tmp, path, strerror(errno));
            remove(tmp);
        }
    }
    cairo_surface_destroy(surface);
    return rc;
}

static void text_at(cairo_t *cr, double x, double y, double size, int bold, const char *s)
{
    cairo_select_font_face(cr, FONT, CAIRO_FONT_SLANT_NORMAL,
                           bold ? CAIRO_FONT_WEIGHT_BOLD : CAIRO_FONT_WEIGHT_NORMAL);
    cairo_set_font_size(cr, size);
    cairo_move_to(cr, x, y);
    cairo_show_text(cr, s);
}

static double text_width(cairo_t *cr, const char *s)
{
    cairo_text_extents_t e;
    cairo_text_extents(cr, s, &e);
    return e.x_advance;
}

/* `s` shortened with "..." until it fits `max_w` at the current font (never inside a UTF-8
 * sequence: cairo refuses invalid text and would poison the whole figure). */
static void fit_text(cairo_t *cr, const char *s, double max_w, char *out, size_t cap)
{
    snprintf(out, cap, "%s", s);
    if (text_width(cr, out) <= max_w) return;
    for (size_t n = strlen(out); n > 0; n--) {
        if ((out[n] & 0xC0) == 0x80 || n + 4 > cap) continue;
        memcpy(out + n, "...", 4);
        if (text_width(cr, out) <= max_w) return;
    }
}

/* Text centred on x (shortened to fit max_w). */
static void text_centred(cairo_t *cr, double x, double y, double size, int bold, double max_w,
                         const char *s)
{
    char buf[256];
    cairo_select_font_face(cr, FONT, CAIRO_FONT_SLANT_NORMAL,
                           bold ? CAIRO_FONT_WEIGHT_BOLD : CAIRO_FONT_WEIGHT_NORMAL);
    cairo_set_font_size(cr, size);
    fit_text(cr, s, max_w, buf, sizeof buf);
    cairo_move_to(cr, x - text_width(cr, buf) / 2.0, y);
    cairo_show_text(cr, buf);
}

static void title_bar(cairo_t *cr, int width, const char *title)
{
    cairo_set_source_rgb(cr, 0, 0, 0);
    text_centred(cr, width / 2.0, 36, 22, 1, width - 40.0, title);
}

/* Draws an h x w image of [0, 1] floats scaled into the box (x, y, box, box), framed. */
static void draw_image(cairo_t *cr, const float *px, int h, int w, double x, double y, double box)
{
    cairo_surface_t *img = cairo_image_surface_create(CAIRO_FORMAT_RGB24, w, h);
    if (cairo_surface_status(img) == CAIRO_STATUS_SUCCESS) {
        cairo_surface_flush(img);
        unsigned char *data = cairo_image_surface_get_data(img);
        int stride = cairo_image_surface_get_stride(img);
        for (int r = 0; r < h; r++) {
            uint32_t *row = (uint32_t *)(void *)(data + (size_t)r * (size_t)stride);
            for (int c = 0; c < w; c++) {
                float v = px[(size_t)r * (size_t)w + (size_t)c];
                uint32_t g = (uint32_t)lrintf((v < 0.0f ? 0.0f : v > 1.0f ? 1.0f : v) * 255.0f);
                row[c] = (g << 16) | (g << 8) | g;
            }
        }
        cairo_surface_mark_dirty(img);
        double scale = box / (h > w ? h : w);
        double ox = x + (box - w * scale) / 2.0, oy = y + (box - h * scale) / 2.0;
        cairo_save(cr);
        cairo_translate(cr, ox, oy);
        cairo_scale(cr, scale, scale);
        cairo_set_source_surface(cr, img, 0, 0);
        cairo_pattern_set_filter(cairo_get_source(cr), CAIRO_FILTER_GOOD);
        cairo_paint(cr);
        cairo_restore(cr);
    }
    cairo_surface_destroy(img);
    cairo_set_source_rgb(cr, 0.6, 0.6, 0.6);
    cairo_set_line_width(cr, 1);
    cairo_rectangle(cr, x + 0.5, y + 0.5, box - 1, box - 1);
    cairo_stroke(cr);
}

int fig_image_grid(const char *path, const char *title, const float *images, int h, int w, size_t n,
                   const char *const *captions)
{
    if (!path || !images || h < 1 || w < 1 || n > FIG_GRID_MAX)
        return set_error("fig_image_grid: bad arguments");
    enum { COLS = 8, TOP = 60, CELL_W = FIG_GRID_W / COLS, CELL_H = 166, BOX = 116 };
    cairo_surface_t *s;
    cairo_t *cr = begin(FIG_GRID_W, FIG_GRID_H, &s);
    title_bar(cr, FIG_GRID_W, title);
    for (size_t i = 0; i < n; i++) {
        double x = (double)(i % COLS) * CELL_W, y = TOP + (double)(i / COLS) * CELL_H;
        draw_image(cr, images + i * (size_t)h * (size_t)w, h, w, x + (CELL_W - BOX) / 2.0, y, BOX);
        if (!captions || !captions[i]) continue;
        char first[128];
        const char *slash = strchr(captions[i], '/');
        size_t len = slash ? (size_t)(slash - captions[i]) : strlen(captions[i]);
        if (len >= sizeof first) len = sizeof first - 1;
        memcpy(first, captions[i], len);
        first[len] = '\0';
        cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
        text_centred(cr, x + CELL_W / 2.0, y + BOX + 17, 12, 1, CELL_W - 6.0, first);
        if (slash) text_centred(cr, x + CELL_W / 2.0, y + BOX + 33, 12, 0, CELL_W - 6.0, slash + 1);
    }
    return finish(cr, s, path);
}

int fig_pairs(const char *path, const char *title, int h, int w, const fig_pair *pairs, size_t n)
{
    if (!path || !pairs || h < 1 || w < 1 || n > FIG_PAIRS_MAX)
        return set_error("fig_pairs: bad arguments");
    enum { TOP = 60, CELL_W = FIG_PAIRS_W / 2, CELL_H = 174, BOX = 140 };
    /* Images 126 px in a 140 px frame row: room for long class names beside them. */
    const double img = 126;
    cairo_surface_t *s;
    cairo_t *cr = begin(FIG_PAIRS_W, FIG_PAIRS_H, &s);
    title_bar(cr, FIG_PAIRS_W, title);
    for (size_t i = 0; i < n; i++) {
        const fig_pair *p = &pairs[i];
        double x = (double)(i % 2) * CELL_W + 12, y = TOP + (double)(i / 2) * CELL_H + 8;
        rgb(cr, p->colour);
        cairo_set_line_width(cr, 3);
        cairo_rectangle(cr, x, y, CELL_W - 24.0, BOX + 16.0);
        cairo_stroke(cr);
        if (p->a) draw_image(cr, p->a, h, w, x + 8, y + 15, img);
        if (p->b) draw_image(cr, p->b, h, w, x + 16 + img, y + 15, img);
        double tx = x + 2 * img + 32, max_w = CELL_W - 24.0 - (2 * img + 40);
        for (int l = 0; l < 3; l++) {
            if (!p->text[l]) continue;
            char buf[256];
            if (l == 0) rgb(cr, p->colour);
            else cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
            cairo_select_font_face(cr, FONT, CAIRO_FONT_SLANT_NORMAL,
                                   l == 0 ? CAIRO_FONT_WEIGHT_BOLD : CAIRO_FONT_WEIGHT_NORMAL);
            cairo_set_font_size(cr, l == 0 ? 18 : 13);
            fit_text(cr, p->text[l], max_w, buf, sizeof buf);
            cairo_move_to(cr, tx, y + 40 + 30.0 * l);
            cairo_show_text(cr, buf);
        }
    }
    return finish(cr, s, path);
}

/* ---------------------------------------------------------------------------------------------
 * The loss curve
 * ------------------------------------------------------------------------------------------- */

/* A "nice" tick step (1, 2 or 5 x 10^k) giving about `target` ticks over `range`. */
static double nice_step(double range, int target)
{
    if (!(range > 0)) return 1.0;
    double raw = range / target, mag = pow(10.0, floor(log10(raw))), f = raw / mag;
    return (f < 1.5 ? 1.0 : f < 3.5 ? 2.0 : f < 7.5 ? 5.0 : 10.0) * mag;
}

static void fmt_tick(char *buf, size_t cap, double v, double step)
{
    if (step >= 1.0 && fabs(v) < 1e15) snprintf(buf, cap, "%.0f", v);
    else {
        int digits = (int)ceil(-log10(step));
        snprintf(buf, cap, "%.*f", digits < 0 ? 0 : digits > 6 ? 6 : digits, v);
    }
}

static void fmt_elapsed(char *buf, size_t cap, double s)
{
    if (s < 60.0) snprintf(buf, cap, "%.0fs", s);
    else if (s < 3600.0) snprintf(buf, cap, "%dm%02ds", (int)(s / 60), (int)fmod(s, 60.0));
    else snprintf(buf, cap, "%dh%02dm", (int)(s / 3600), (int)fmod(s / 60.0, 60.0));
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Elapsed time at iteration `it`, interpolated between logged points (iterations ascend). */
static double elapsed_at(const fig_loss_data *d, double it)
{
    size_t lo = 0, hi = d->n - 1;
    if (it <= d->iteration[0])
        return d->elapsed_s[0] * (d->iteration[0] > 0 ? it / d->iteration[0] : 0);
    if (it >= d->iteration[hi]) return d->elapsed_s[hi];
    while (hi - lo > 1) {
        size_t mid = (lo + hi) / 2;
        if (d->iteration[mid] <= it) lo = mid;
        else hi = mid;
    }
    double f = (it - d->iteration[lo]) / (d->iteration[hi] - d->iteration[lo]);
    return d->elapsed_s[lo] + f * (d->elapsed_s[hi] - d->elapsed_s[lo]);
}

int fig_loss(const char *path, const char *title, const char *subtitle, const fig_loss_data *d)
{
    if (!path || !d || (d->n && (!d->iteration || !d->loss || !d->elapsed_s)) ||
        (d->n_val && (!d->val_iteration || !d->val_accuracy)))
        return set_error("fig_loss: bad arguments");
    const double L = 90, R = FIG_LOSS_W - 90, T = 120, B = FIG_LOSS_H - 100;
    cairo_surface_t *s;
    cairo_t *cr = begin(FIG_LOSS_W, FIG_LOSS_H, &s);
    title_bar(cr, FIG_LOSS_W, title);
    if (subtitle) {
        cairo_set_source_rgb(cr, 0.3, 0.3, 0.3);
        text_centred(cr, FIG_LOSS_W / 2.0, 62, 15, 0, FIG_LOSS_W - 40.0, subtitle);
    }

    /* Ranges: x from 0 to the last iteration; y from 0 to a little above the 99th percentile
     * of the loss, so that one early spike does not flatten the curve. */
    double xmax = d->n ? d->iteration[d->n - 1] : 1.0, ymax = 1.0;
    if (xmax < 1.0) xmax = 1.0;
    if (d->n) {
        double *sorted = malloc(d->n * sizeof *sorted);
        if (!sorted) {
            cairo_destroy(cr);
            cairo_surface_destroy(s);
            return set_error("out of memory");
        }
        memcpy(sorted, d->loss, d->n * sizeof *sorted);
        qsort(sorted, d->n, sizeof *sorted, cmp_double);
        double p99 = sorted[(size_t)((double)(d->n - 1) * 0.99)];
        free(sorted);
        ymax = p99 * 1.1 > log(2.0) * 1.15 ? p99 * 1.1 : log(2.0) * 1.15;
    }
    double xstep = nice_step(xmax, 8), ystep = nice_step(ymax, 6);
    ymax = ceil(ymax / ystep - 1e-9) * ystep;
#define PX(v) (L + (v) / xmax * (R - L))
#define PY(v) (B - (v) / ymax * (B - T))

    /* Grid, axes, ticks. */
    cairo_set_line_width(cr, 1);
    for (double y = 0; y <= ymax + ystep * 1e-6; y += ystep) {
        char buf[32];
        cairo_set_source_rgb(cr, 0.9, 0.9, 0.9);
        cairo_move_to(cr, L, floor(PY(y)) + 0.5);
        cairo_line_to(cr, R, floor(PY(y)) + 0.5);
        cairo_stroke(cr);
        fmt_tick(buf, sizeof buf, y, ystep);
        cairo_set_source_rgb(cr, 0.15, 0.15, 0.15);
        cairo_set_font_size(cr, 14);
        text_at(cr, L - 10 - text_width(cr, buf), PY(y) + 5, 14, 0, buf);
    }
    for (double x = 0; x <= xmax + xstep * 1e-6; x += xstep) {
        char buf[32];
        cairo_set_source_rgb(cr, 0.9, 0.9, 0.9);
        cairo_move_to(cr, floor(PX(x)) + 0.5, T);
        cairo_line_to(cr, floor(PX(x)) + 0.5, B);
        cairo_stroke(cr);
        cairo_set_source_rgb(cr, 0.15, 0.15, 0.15);
        fmt_tick(buf, sizeof buf, x, xstep);
        cairo_set_font_size(cr, 14);
        text_at(cr, PX(x) - text_width(cr, buf) / 2, B + 22, 14, 0, buf);
        if (d->n) { /* the top axis: when that iteration was reached */
            fmt_elapsed(buf, sizeof buf, elapsed_at(d, x));
            cairo_set_source_rgb(cr, 0.35, 0.35, 0.35);
            text_at(cr, PX(x) - text_width(cr, buf) / 2, T - 10, 14, 0, buf);
        }
    }
    cairo_set_source_rgb(cr, 0.15, 0.15, 0.15);
    cairo_rectangle(cr, L + 0.5, T + 0.5, R - L, B - T);
    cairo_stroke(cr);
    text_centred(cr, (L + R) / 2, B + 48, 16, 0, R - L, "iteration");
    text_centred(cr, (L + R) / 2, T - 32, 15, 0, R - L, "elapsed time");
    cairo_save(cr);
    cairo_translate(cr, 28, (T + B) / 2);
    cairo_rotate(cr, -M_PI / 2);
    text_centred(cr, 0, 0, 16, 0, B - T, "training loss (binary cross-entropy)");
    cairo_restore(cr);

    /* ln 2: the loss of a network that says 0.5 to everything. */
    double ln2 = log(2.0);
    cairo_set_source_rgb(cr, 0.55, 0.55, 0.55);
    double dash[] = {6, 4};
    cairo_set_dash(cr, dash, 2, 0);
    cairo_move_to(cr, L, PY(ln2));
    cairo_line_to(cr, R, PY(ln2));
    cairo_stroke(cr);
    cairo_set_dash(cr, NULL, 0, 0);

    cairo_save(cr);
    cairo_rectangle(cr, L, T, R - L, B - T);
    cairo_clip(cr);
    if (d->n) { /* raw loss, light */
        cairo_set_source_rgba(cr, 0.12, 0.35, 0.75, 0.35);
        cairo_set_line_width(cr, 1);
        for (size_t i = 0; i < d->n; i++) {
            if (i == 0) cairo_move_to(cr, PX(d->iteration[i]), PY(d->loss[i]));
            else cairo_line_to(cr, PX(d->iteration[i]), PY(d->loss[i]));
        }
        cairo_stroke(cr);
        /* smoothed: an exponential moving average over about 1/50 of the run */
        double alpha = 50.0 / (double)d->n;
        if (alpha > 0.3) alpha = 0.3;
        if (alpha < 0.002) alpha = 0.002;
        double ema = d->loss[0];
        cairo_set_source_rgb(cr, 0.05, 0.2, 0.55);
        cairo_set_line_width(cr, 2.5);
        for (size_t i = 0; i < d->n; i++) {
            ema = i ? (1 - alpha) * ema + alpha * d->loss[i] : d->loss[0];
            if (i == 0) cairo_move_to(cr, PX(d->iteration[i]), PY(ema));
            else cairo_line_to(cr, PX(d->iteration[i]), PY(ema));
        }
        cairo_stroke(cr);
    }
    cairo_restore(cr);

    /* Held-out verification accuracy on a right-hand axis, 0..100 %. */
    if (d->n_val) {
        for (int p = 0; p <= 100; p += 20) {
            char buf[16];
            snprintf(buf, sizeof buf, "%d %%", p);
            cairo_set_source_rgb(cr, 0.1, 0.55, 0.2);
            text_at(cr, R + 10, B - p / 100.0 * (B - T) + 5, 14, 0, buf);
        }
        cairo_save(cr);
        cairo_translate(cr, FIG_LOSS_W - 18, (T + B) / 2);
        cairo_rotate(cr, M_PI / 2);
        text_centred(cr, 0, 0, 16, 0, B - T, "held-out verification accuracy");
        cairo_restore(cr);
        cairo_set_line_width(cr, 2);
        for (size_t i = 0; i < d->n_val; i++) {
            double x = PX(d->val_iteration[i]), y = B - d->val_accuracy[i] * (B - T);
            if (i == 0) cairo_move_to(cr, x, y);
            else cairo_line_to(cr, x, y);
        }
        cairo_stroke(cr);
        for (size_t i = 0; i < d->n_val; i++) {
            cairo_arc(cr, PX(d->val_iteration[i]), B - d->val_accuracy[i] * (B - T), 4, 0,
                      2 * M_PI);
            cairo_fill(cr);
        }
    }

    /* Legend: one row under the axis title, where no curve can hide it. */
    const double ly = FIG_LOSS_H - 22;
    double lx = L;
    cairo_set_source_rgba(cr, 0.12, 0.35, 0.75, 0.5);
    cairo_set_line_width(cr, 1.5);
    cairo_move_to(cr, lx, ly - 5);
    cairo_line_to(cr, lx + 30, ly - 5);
    cairo_stroke(cr);
    cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
    text_at(cr, lx + 38, ly, 14, 0, "loss of each step");
    lx += 38 + text_width(cr, "loss of each step") + 30;
    cairo_set_source_rgb(cr, 0.05, 0.2, 0.55);
    cairo_set_line_width(cr, 2.5);
    cairo_move_to(cr, lx, ly - 5);
    cairo_line_to(cr, lx + 30, ly - 5);
    cairo_stroke(cr);
    cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
    text_at(cr, lx + 38, ly, 14, 0, "smoothed");
    lx += 38 + text_width(cr, "smoothed") + 30;
    cairo_set_source_rgb(cr, 0.55, 0.55, 0.55);
    cairo_set_line_width(cr, 1);
    cairo_set_dash(cr, dash, 2, 0);
    cairo_move_to(cr, lx, ly - 5);
    cairo_line_to(cr, lx + 30, ly - 5);
    cairo_stroke(cr);
    cairo_set_dash(cr, NULL, 0, 0);
    cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
    text_at(cr, lx + 38, ly, 14, 0, "ln 2 = 0.693: the loss of answering 0.5 to every pair");
    lx += 38 + text_width(cr, "ln 2 = 0.693: the loss of answering 0.5 to every pair") + 30;
    if (d->n_val) {
        cairo_set_source_rgb(cr, 0.1, 0.55, 0.2);
        cairo_arc(cr, lx + 15, ly - 5, 4, 0, 2 * M_PI);
        cairo_fill(cr);
        text_at(cr, lx + 38, ly, 14, 0, "held-out verification accuracy");
    }
#undef PX
#undef PY
    return finish(cr, s, path);
}

int fig_roc(const char *path, const char *title, const char *subtitle, const fig_roc_data *d)
{
    if (!path || !d || !d->far || !d->frr || d->n == 0) return set_error("fig_roc: bad arguments");
    const double L = 110, R = FIG_ROC_W - 50, T = 110, B = FIG_ROC_H - 120;
    cairo_surface_t *s;
    cairo_t *cr = begin(FIG_ROC_W, FIG_ROC_H, &s);
    title_bar(cr, FIG_ROC_W, title);
    if (subtitle) {
        cairo_set_source_rgb(cr, 0.3, 0.3, 0.3);
        text_centred(cr, FIG_ROC_W / 2.0, 62, 15, 0, FIG_ROC_W - 40.0, subtitle);
    }
#define PX(v) (L + (v) * (R - L))
#define PY(v) (B - (v) * (B - T))
    cairo_set_line_width(cr, 1);
    for (int i = 0; i <= 10; i++) {
        char buf[16];
        double v = i / 10.0;
        cairo_set_source_rgb(cr, 0.9, 0.9, 0.9);
        cairo_move_to(cr, L, floor(PY(v)) + 0.5);
        cairo_line_to(cr, R, floor(PY(v)) + 0.5);
        cairo_move_to(cr, floor(PX(v)) + 0.5, T);
        cairo_line_to(cr, floor(PX(v)) + 0.5, B);
        cairo_stroke(cr);
        snprintf(buf, sizeof buf, "%d %%", i * 10);
        cairo_set_source_rgb(cr, 0.15, 0.15, 0.15);
        cairo_set_font_size(cr, 14);
        text_at(cr, L - 10 - text_width(cr, buf), PY(v) + 5, 14, 0, buf);
        text_at(cr, PX(v) - text_width(cr, buf) / 2, B + 22, 14, 0, buf);
    }
    cairo_set_source_rgb(cr, 0.15, 0.15, 0.15);
    cairo_rectangle(cr, L + 0.5, T + 0.5, R - L, B - T);
    cairo_stroke(cr);
    text_centred(cr, (L + R) / 2, B + 50, 16, 0, R - L,
                 "false-accept rate (different-class pairs judged the same)");
    cairo_save(cr);
    cairo_translate(cr, 30, (T + B) / 2);
    cairo_rotate(cr, -M_PI / 2);
    text_centred(cr, 0, 0, 16, 0, B - T, "false-reject rate (same-class pairs refused)");
    cairo_restore(cr);
    /* the diagonal FAR = FRR, where the equal error rate lies */
    double dash[] = {6, 4};
    cairo_set_source_rgb(cr, 0.55, 0.55, 0.55);
    cairo_set_dash(cr, dash, 2, 0);
    cairo_move_to(cr, PX(0), PY(0));
    cairo_line_to(cr, PX(1), PY(1));
    cairo_stroke(cr);
    cairo_set_dash(cr, NULL, 0, 0);
    cairo_set_source_rgb(cr, 0.05, 0.2, 0.55);
    cairo_set_line_width(cr, 2.5);
    for (size_t i = 0; i < d->n; i++) {
        if (i == 0) cairo_move_to(cr, PX(d->far[i]), PY(d->frr[i]));
        else cairo_line_to(cr, PX(d->far[i]), PY(d->frr[i]));
    }
    cairo_stroke(cr);
    rgb(cr, FIG_RED);
    cairo_arc(cr, PX(d->eer), PY(d->eer), 6, 0, 2 * M_PI);
    cairo_fill(cr);
    char buf[96];
    snprintf(buf, sizeof buf, "EER %.2f %% at threshold %.4f", 100 * d->eer, d->eer_threshold);
    text_at(cr, PX(d->eer) + 12, PY(d->eer) - 10, 15, 1, buf);
#undef PX
#undef PY
    return finish(cr, s, path);
}
