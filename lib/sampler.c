/* SPDX-License-Identifier: MIT */
/* The pair sampler of SPEC.md. The order of the RNG draws below defines which pairs a seed gives
 * (and so reproducibility across versions and resumed runs): do not reorder them.
 * Per pair: u64 >> 63 (1: similar); similar: class (among classes with >= 2 images), first
 * image, second image (among the others); dissimilar: first class, second class (among the
 * others), an image of the first, an image of the second. */
#include "sampler.h"

#include <string.h>

#include "alloc.h"
#include "dataset.h"
#include "error.h"
#include "rng.h"

struct sm_sampler {
    const sm_dataset *ds;
    sm__rng rng;
    size_t *multi; /* classes with at least two images, increasing */
    size_t n_multi, cap_multi;
    size_t seen_images; /* ds->n_images when `multi` was built */
};

/* Lists the classes that can give a similar pair; redone if images were added since. */
static sm_status index_classes(sm_sampler *s)
{
    const sm_dataset *ds = s->ds;
    if (ds->n_classes < 2)
        return sm__fail(SM_ERR_DATASET,
                        "pair sampling needs at least two classes, the dataset has %zu",
                        ds->n_classes);
    if (ds->n_classes > s->cap_multi) {
        size_t bytes;
        if (!sm__mul_size(ds->n_classes, sizeof *s->multi, &bytes))
            return sm__fail(SM_ERR_LIMIT, "too many classes: %zu", ds->n_classes);
        size_t *p = sm__realloc(s->multi, bytes);
        if (!p) return sm__fail(SM_ERR_NOMEM, "out of memory creating a pair sampler");
        s->multi = p;
        s->cap_multi = ds->n_classes;
    }
    size_t n = 0;
    for (size_t c = 0; c < ds->n_classes; c++)
        if (ds->classes[c].n_images >= 2) s->multi[n++] = c;
    if (n == 0)
        return sm__fail(SM_ERR_DATASET, "pair sampling needs a class with at least two images, "
                                        "the dataset has none");
    s->n_multi = n;
    s->seen_images = ds->n_images;
    return SM_OK;
}

SM_API sm_status sm_sampler_create(const sm_dataset *ds, uint64_t seed, sm_sampler **out)
{
    SM_CHECK_ARG(ds && out, "sm_sampler_create: NULL argument");
    sm_sampler *s = sm__calloc(1, sizeof *s);
    if (!s) return sm__fail(SM_ERR_NOMEM, "out of memory creating a pair sampler");
    s->ds = ds;
    sm__rng_seed(&s->rng, seed);
    sm_status st = index_classes(s);
    if (st != SM_OK) {
        sm_sampler_destroy(s);
        return st;
    }
    *out = s;
    return SM_OK;
}

SM_API void sm_sampler_destroy(sm_sampler *s)
{
    if (!s) return;
    sm__free(s->multi);
    sm__free(s);
}

/* The next pair's dataset indices and label. */
static void draw_pair(sm_sampler *s, size_t *a, size_t *b, float *label)
{
    const sm_dataset *ds = s->ds;
    sm__rng *r = &s->rng;
    if (sm__rng_u64(r) >> 63) {
        const sm__class *c = &ds->classes[s->multi[sm__rng_below(r, s->n_multi)]];
        size_t i = (size_t)sm__rng_below(r, c->n_images);
        size_t j = (size_t)sm__rng_below(r, c->n_images - 1);
        if (j >= i) j++;
        *a = c->images[i];
        *b = c->images[j];
        *label = 1.0f;
    } else {
        size_t ca = (size_t)sm__rng_below(r, ds->n_classes);
        size_t cb = (size_t)sm__rng_below(r, ds->n_classes - 1);
        if (cb >= ca) cb++;
        const sm__class *x = &ds->classes[ca], *y = &ds->classes[cb];
        *a = x->images[sm__rng_below(r, x->n_images)];
        *b = y->images[sm__rng_below(r, y->n_images)];
        *label = 0.0f;
    }
}

static void to_float(const sm_dataset *ds, size_t index, float *dst)
{
    const uint8_t *src = ds->pixels + index * ds->pixels_per_image;
    for (size_t i = 0; i < ds->pixels_per_image; i++) dst[i] = (float)src[i] / 255.0f;
}

SM_API sm_status sm_sampler_next(sm_sampler *s, size_t n, float *left, float *right,
                                 float *labels, size_t *left_index, size_t *right_index)
{
    SM_CHECK_ARG(s, "sm_sampler_next: sampler is NULL");
    if (n == 0) return SM_OK;
    SM_CHECK_ARG(left && right && labels, "sm_sampler_next: NULL output buffer");
    size_t total;
    SM_CHECK_ARG(sm__mul_size(n, s->ds->pixels_per_image, &total) &&
                     sm__mul_size(total, sizeof(float), &total) &&
                     sm__mul_size(n, sizeof(size_t), &total),
                 "sm_sampler_next: %zu pairs is more than any buffer can hold", n);
    if (s->ds->n_images != s->seen_images) SM_TRY(index_classes(s));

    size_t hw = s->ds->pixels_per_image;
    for (size_t k = 0; k < n; k++) {
        size_t a, b;
        draw_pair(s, &a, &b, &labels[k]);
        to_float(s->ds, a, left + k * hw);
        to_float(s->ds, b, right + k * hw);
        if (left_index) left_index[k] = a;
        if (right_index) right_index[k] = b;
    }
    return SM_OK;
}

void sm__sampler_get_state(const sm_sampler *s, uint64_t state[4])
{
    memcpy(state, s->rng.s, sizeof s->rng.s);
}

void sm__sampler_set_state(sm_sampler *s, const uint64_t state[4])
{
    memcpy(s->rng.s, state, sizeof s->rng.s);
}
