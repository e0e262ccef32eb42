/* SPDX-License-Identifier: MIT */
/* Figures from datasets and models (pipeline_figures.h). */
#include "pipeline_figures.h"

#include <stdio.h>
#include <stdlib.h>

#include "cli.h"
#include "figures.h"

/* splitmix64: the examples' own choice of images, independent of the library's streams. */
static uint64_t next_random(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static int figure_failed(const char *path)
{
    return cli_error(-1, "warning: cannot draw %s: %s", path, fig_last_error());
}

int pf_training_images(const char *path, const sm_dataset *ds, uint64_t seed)
{
    int h = 0, w = 0;
    sm_status st = sm_dataset_image_size(ds, &h, &w);
    if (st) return cli_fail(st, "warning: %s", path), -1;
    size_t n_img = sm_dataset_num_images(ds), n = n_img < FIG_GRID_MAX ? n_img : FIG_GRID_MAX;
    size_t px = (size_t)h * (size_t)w;
    float *images = malloc(n * px * sizeof *images);
    const char *captions[FIG_GRID_MAX];
    if (!images) return cli_error(-1, "warning: out of memory for %s", path);
    uint64_t rng = seed;
    for (size_t i = 0; i < n; i++) {
        size_t index = (size_t)(next_random(&rng) % n_img);
        if ((st = sm_dataset_get_image(ds, index, images + i * px))) {
            free(images);
            return cli_fail(st, "warning: %s", path), -1;
        }
        captions[i] = sm_dataset_class_name(ds, sm_dataset_image_class(ds, index));
    }
    char title[128];
    snprintf(title, sizeof title, "%zu random training images and their classes", n);
    int rc = fig_image_grid(path, title, images, h, w, n, captions);
    free(images);
    return rc ? figure_failed(path) : 0;
}

/* Draws n pairs from a sampler over `ds` (n*px floats each side). */
static int sample_pairs(const sm_dataset *ds, uint64_t seed, size_t n, float **left, float **right,
                        float *labels, size_t *li, size_t *ri, const char *path)
{
    int h = 0, w = 0;
    sm_dataset_image_size(ds, &h, &w);
    size_t px = (size_t)h * (size_t)w;
    *left = malloc(n * px * sizeof **left);
    *right = malloc(n * px * sizeof **right);
    if (!*left || !*right) return cli_error(-1, "warning: out of memory for %s", path);
    sm_sampler *s = NULL;
    sm_status st = sm_sampler_create(ds, seed, &s);
    if (!st) st = sm_sampler_next(s, n, *left, *right, labels, li, ri);
    sm_sampler_destroy(s);
    if (st) return cli_fail(st, "warning: cannot draw pairs for %s", path), -1;
    return 0;
}

int pf_training_pairs(const char *path, const sm_dataset *ds, uint64_t seed)
{
    enum { N = FIG_PAIRS_MAX };
    float *left = NULL, *right = NULL, labels[N];
    size_t li[N], ri[N];
    int h = 0, w = 0, rc = -1;
    sm_dataset_image_size(ds, &h, &w);
    if (sample_pairs(ds, seed, N, &left, &right, labels, li, ri, path)) goto done;
    fig_pair pairs[N];
    char lines[N][2][160];
    size_t px = (size_t)h * (size_t)w;
    for (size_t i = 0; i < N; i++) {
        const char *a = sm_dataset_class_name(ds, sm_dataset_image_class(ds, li[i]));
        const char *b = sm_dataset_class_name(ds, sm_dataset_image_class(ds, ri[i]));
        int same = labels[i] == 1.0f;
        snprintf(lines[i][0], sizeof lines[i][0], "left: %s", a);
        snprintf(lines[i][1], sizeof lines[i][1], "right: %s", b);
        pairs[i] = (fig_pair){
            left + i * px,
            right + i * px,
            {same ? "similar (label 1)" : "dissimilar (label 0)", lines[i][0], lines[i][1]},
            same ? FIG_BLUE : FIG_ORANGE};
    }
    rc = fig_pairs(path, "10 random training pairs, as the sampler draws them", h, w, pairs, N);
    if (rc) figure_failed(path);
done:
    free(left), free(right);
    return rc;
}

int pf_test_pairs(const char *path, const sm_subnet *subnet, const sm_head *head,
                  const sm_dataset *ds, uint64_t seed)
{
    enum { N = FIG_PAIRS_MAX };
    float *left = NULL, *right = NULL, labels[N], scores[N];
    size_t li[N], ri[N];
    int h = 0, w = 0, rc = -1;
    sm_dataset_image_size(ds, &h, &w);
    if (sample_pairs(ds, seed, N, &left, &right, labels, li, ri, path)) goto done;
    sm_status st = sm_predict_pairs(subnet, head, N, left, right, scores);
    if (st) {
        cli_fail(st, "warning: cannot score the pairs for %s", path);
        goto done;
    }
    fig_pair pairs[N];
    char lines[N][3][160];
    size_t px = (size_t)h * (size_t)w, correct = 0;
    for (size_t i = 0; i < N; i++) {
        int target = labels[i] == 1.0f, pred = scores[i] >= 0.5f;
        correct += target == pred;
        snprintf(lines[i][0], sizeof lines[i][0], "%s, score %.3f",
                 pred == target ? "right" : "wrong", (double)scores[i]);
        snprintf(lines[i][1], sizeof lines[i][1], "target: %s", target ? "same" : "different");
        snprintf(lines[i][2], sizeof lines[i][2], "prediction: %s", pred ? "same" : "different");
        pairs[i] = (fig_pair){left + i * px,
                              right + i * px,
                              {lines[i][0], lines[i][1], lines[i][2]},
                              pred == target ? FIG_GREEN : FIG_RED};
    }
    char title[160];
    snprintf(title, sizeof title, "10 random test pairs: %zu right (same when score >= 0.5)",
             correct);
    rc = fig_pairs(path, title, h, w, pairs, N);
    if (rc) figure_failed(path);
done:
    free(left), free(right);
    return rc;
}
