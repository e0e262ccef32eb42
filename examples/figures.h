/* SPDX-License-Identifier: MIT */
/* Figures of the example pipeline, drawn with cairo (examples only: the library never draws).
 *
 * Every figure has a fixed pixel size, whatever the images' size (they are scaled into their
 * cells), so that a person always gets the same readable layout and the tests can check the
 * files: tests/meson.build reads these macros with cc.get_define. Files are written atomically
 * (PATH.tmp, then rename), so a viewer watching the loss curve never opens half a file.
 *
 * All functions return 0 on success, -1 on failure with the reason in fig_last_error(). When
 * the examples are built without cairo, figures_none.c provides them: fig_available() is then
 * 0 and every drawing call fails. */
#ifndef SIAMESE_EXAMPLES_FIGURES_H
#define SIAMESE_EXAMPLES_FIGURES_H

#include <stddef.h>

#define FIG_GRID_W  1200 /* training images with their labels: 8 x 5 cells */
#define FIG_GRID_H  900
#define FIG_PAIRS_W 1200 /* ten pairs, two columns of five */
#define FIG_PAIRS_H 940
#define FIG_LOSS_W  1200 /* loss per iteration, elapsed time on the top axis */
#define FIG_LOSS_H  700
#define FIG_ROC_W   900 /* false-reject against false-accept rate, the equal error rate marked */
#define FIG_ROC_H   900

#define FIG_GRID_MAX  40 /* images in the grid */
#define FIG_PAIRS_MAX 10 /* pairs in a pair figure */

typedef enum fig_colour {
    FIG_GREY = 0,
    FIG_GREEN, /* a correct prediction */
    FIG_RED,   /* a wrong one */
    FIG_BLUE,  /* a similar pair */
    FIG_ORANGE /* a dissimilar pair */
} fig_colour;

/* One pair of a pair figure: two images (h*w floats in [0, 1] each) and up to three lines of
 * text, the first drawn bold in `colour`, which also frames the pair. */
typedef struct fig_pair {
    const float *a, *b;
    const char *text[3];
    fig_colour colour;
} fig_pair;

/* The loss curve's data. `val_*` (may be NULL / 0) are the held-out verification accuracies
 * (fractions) measured during training, drawn on a right-hand axis. */
typedef struct fig_loss_data {
    const double *iteration, *loss, *elapsed_s;
    size_t n;
    const double *val_iteration, *val_accuracy;
    size_t n_val;
} fig_loss_data;

/* A ROC curve (sm_roc's points): `n` pairs of rates in [0, 1], and the equal-error point. */
typedef struct fig_roc_data {
    const double *far, *frr;
    size_t n;
    double eer, eer_threshold;
} fig_roc_data;

/* 1 when the examples were built with cairo. */
int fig_available(void);
/* Why the last call failed. Static storage. */
const char *fig_last_error(void);

/* Up to FIG_GRID_MAX images (h*w floats each, contiguous) with one caption each; a '/' in a
 * caption ("Alphabet/character") breaks it into two lines. */
int fig_image_grid(const char *path, const char *title, const float *images, int h, int w, size_t n,
                   const char *const *captions);
/* Up to FIG_PAIRS_MAX pairs of h x w images. */
int fig_pairs(const char *path, const char *title, int h, int w, const fig_pair *pairs, size_t n);
/* The loss per iteration (raw and smoothed), ln 2 marked, elapsed time on the top axis. */
int fig_loss(const char *path, const char *title, const char *subtitle, const fig_loss_data *d);
/* The ROC as false-reject rate (y) against false-accept rate (x), the diagonal FAR = FRR and
 * the equal-error point marked with its threshold. */
int fig_roc(const char *path, const char *title, const char *subtitle, const fig_roc_data *d);

#endif
