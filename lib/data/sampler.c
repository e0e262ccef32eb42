/* SPDX-License-Identifier: MIT */
/* The pair sampler of the reference (docs/reference.md). The order of the RNG draws below
 * defines which pairs a seed gives (and so reproducibility across versions and resumed runs):
 * do not reorder them.
 * Per pair: u64 >> 63 (1: similar); similar: class (among classes with >= 2 images), first
 * image, second image (among the others); dissimilar: first class, second class (among the
 * others), an image of the first, an image of the second.
 *
 * Options (since 0.3, off by default; off, they draw nothing, so the default stream is as
 * before):
 *  - alphabet-balanced: a class is drawn as an alphabet (uniform among the alphabets that have
 *    a suitable class) and then a class in it (uniform): for a similar pair among its classes
 *    with >= 2 images; for a dissimilar pair, the first class among all its classes, and the
 *    second the same way, redrawn while it equals the first.
 *  - negatives within the alphabet, fraction f: after the first class of a dissimilar pair, a
 *    uniform double u; if u < f the second class is drawn uniformly among the other classes of
 *    the first's alphabet (an alphabet with a single class falls back to the usual draw);
 *    otherwise as without the option (which may also land in the same alphabet).
 *  - P x K batches (sm__sampler_next_pk): P distinct classes among those with >= K images
 *    (partial Fisher-Yates, or alphabet-balanced without replacement), then K distinct images
 *    of each (partial Fisher-Yates over the class's images). With negatives within the
 *    alphabet (f > 0): first a uniform double u; if u < f, an alphabet uniform among those
 *    with >= P eligible classes, and the P classes by partial Fisher-Yates within it.
 *  - rotated classes (since 0.4, sm__sampler_set_rotated): the sampler sees 4 C classes for the
 *    dataset's C: class v is the dataset's class v mod C turned by r = v / C quarter turns
 *    counterclockwise (numpy.rot90(image, r)), every image drawn for it so turned; class v's
 *    alphabet is r A + (its class's alphabet), A the dataset's alphabets (a turned script is a
 *    script of its own, for both options above). Everything above then runs on these classes
 *    and alphabets as it does on the dataset's: the draws are the same kind, only over more
 *    classes, and off (the default) they are exactly the draws without it. */
#include "data/sampler.h"

#include <stdbool.h>
#include <string.h>

#include "common/alloc.h"
#include "data/dataset.h"
#include "common/error.h"
#include "common/rng.h"

struct sm_sampler {
    const sm_dataset *ds;
    sm__rng rng;
    size_t *multi; /* classes with at least two images, increasing */
    size_t n_multi, cap_multi;
    size_t seen_images; /* ds->n_images when `multi` was built */

    /* options (since 0.3) */
    double neg_same_alphabet; /* 0 = off */
    bool alphabet_balanced;
    /* rotated classes (since 0.4): 4 turns of each class, else 1; the lists below are of the
     * sampler's classes v < turns x C and alphabets < turns x A (the comment at the top) */
    size_t turns, indexed_turns; /* wanted, and what the lists were built for */
    /* per-alphabet class lists, rebuilt with `multi`: classes of alphabet a are
     * by_alpha[alpha_start[a] .. alpha_start[a + 1]), those with >= 2 images
     * multi_by_alpha[multi_start[a] .. multi_start[a + 1]); alphabets having any class:
     * alpha_any[0 .. n_alpha_any), having a class with >= 2 images: alpha_multi[..n_alpha_multi) */
    size_t *by_alpha, *alpha_start, *multi_by_alpha, *multi_start, *alpha_any, *alpha_multi;
    size_t n_alpha_any, n_alpha_multi, cap_alpha;
    /* P x K scratch: eligible classes by alphabet, their counts, alphabets left, one class's
     * images; grown on demand */
    size_t *pk_classes, *pk_start, *pk_count, *pk_alphas, *pk_images;
    size_t pk_cap_classes, pk_cap_alpha, pk_cap_images;
};

static sm_status grow(size_t **p, size_t *cap, size_t need)
{
    if (need <= *cap) return SM_OK;
    size_t bytes;
    if (!sm__mul_size(need, sizeof **p, &bytes))
        return sm__fail(SM_ERR_LIMIT, "too many classes: %zu", need);
    size_t *q = sm__realloc(*p, bytes);
    if (!q) return sm__fail(SM_ERR_NOMEM, "out of memory in a pair sampler");
    *p = q;
    *cap = need;
    return SM_OK;
}

/* The sampler's classes and alphabets (the comment at the top): without rotated classes the
 * dataset's, with them 4 times as many. */
static size_t n_classes(const sm_sampler *s) { return s->ds->n_classes * s->indexed_turns; }
static size_t n_alphabets(const sm_sampler *s) { return s->ds->n_alphabets * s->indexed_turns; }
static const sm__class *class_of(const sm_sampler *s, size_t v)
{
    return &s->ds->classes[v % s->ds->n_classes];
}
static unsigned turn_of(const sm_sampler *s, size_t v) { return (unsigned)(v / s->ds->n_classes); }
static size_t alphabet_of(const sm_sampler *s, size_t v)
{
    return turn_of(s, v) * s->ds->n_alphabets + class_of(s, v)->alphabet;
}

/* The per-alphabet lists (counting sort by alphabet; classes stay increasing within one). */
static sm_status index_alphabets(sm_sampler *s)
{
    const size_t na = n_alphabets(s), nc = n_classes(s);
    const size_t need = (na > nc ? na : nc) + 1;
    if (need > s->cap_alpha) {
        size_t **arrays[] = {&s->by_alpha,    &s->alpha_start, &s->multi_by_alpha,
                             &s->multi_start, &s->alpha_any,   &s->alpha_multi};
        for (size_t i = 0; i < sizeof arrays / sizeof *arrays; i++) {
            size_t cap = s->cap_alpha;
            SM_TRY(grow(arrays[i], &cap, need));
        }
        s->cap_alpha = need;
    }
    memset(s->alpha_start, 0, (na + 1) * sizeof *s->alpha_start);
    memset(s->multi_start, 0, (na + 1) * sizeof *s->multi_start);
    for (size_t c = 0; c < nc; c++) {
        s->alpha_start[alphabet_of(s, c) + 1]++;
        if (class_of(s, c)->n_images >= 2) s->multi_start[alphabet_of(s, c) + 1]++;
    }
    s->n_alpha_any = s->n_alpha_multi = 0;
    for (size_t a = 0; a < na; a++) {
        if (s->alpha_start[a + 1]) s->alpha_any[s->n_alpha_any++] = a;
        if (s->multi_start[a + 1]) s->alpha_multi[s->n_alpha_multi++] = a;
        s->alpha_start[a + 1] += s->alpha_start[a];
        s->multi_start[a + 1] += s->multi_start[a];
    }
    /* place each class at its alphabet's cursor, then shift the cursors back to the starts */
    for (size_t c = 0; c < nc; c++) {
        size_t a = alphabet_of(s, c);
        s->by_alpha[s->alpha_start[a]++] = c;
        if (class_of(s, c)->n_images >= 2) s->multi_by_alpha[s->multi_start[a]++] = c;
    }
    for (size_t a = na; a > 0; a--) {
        s->alpha_start[a] = s->alpha_start[a - 1];
        s->multi_start[a] = s->multi_start[a - 1];
    }
    s->alpha_start[0] = s->multi_start[0] = 0;
    return SM_OK;
}

/* Lists the classes that can give a similar pair; redone if images were added since, or if
 * rotated classes were switched. */
static sm_status index_classes(sm_sampler *s)
{
    const sm_dataset *ds = s->ds;
    if (ds->n_classes < 2)
        return sm__fail(SM_ERR_DATASET,
                        "pair sampling needs at least two classes, the dataset has %zu",
                        ds->n_classes);
    SM_RETURN_IF(s->turns > 1 && ds->height != ds->width, SM_ERR_SHAPE,
                 "rotated classes need square images, the dataset's are %dx%d (width x height)",
                 ds->width, ds->height);
    s->indexed_turns = 0; /* until the lists are complete */
    const size_t nc = ds->n_classes * s->turns;
    if (nc > s->cap_multi) {
        size_t bytes;
        if (!sm__mul_size(nc, sizeof *s->multi, &bytes))
            return sm__fail(SM_ERR_LIMIT, "too many classes: %zu", nc);
        size_t *p = sm__realloc(s->multi, bytes);
        if (!p) return sm__fail(SM_ERR_NOMEM, "out of memory creating a pair sampler");
        s->multi = p;
        s->cap_multi = nc;
    }
    s->indexed_turns = s->turns;
    size_t n = 0;
    for (size_t c = 0; c < nc; c++)
        if (class_of(s, c)->n_images >= 2) s->multi[n++] = c;
    if (n == 0) {
        s->indexed_turns = 0;
        return sm__fail(SM_ERR_DATASET, "pair sampling needs a class with at least two images, "
                                        "the dataset has none");
    }
    s->n_multi = n;
    sm_status st = index_alphabets(s);
    if (st != SM_OK) {
        s->indexed_turns = 0;
        return st;
    }
    s->seen_images = ds->n_images;
    return SM_OK;
}

/* The lists are current: built for the dataset's images and the rotation setting. */
static sm_status ensure_indexed(sm_sampler *s)
{
    if (s->ds->n_images == s->seen_images && s->turns == s->indexed_turns) return SM_OK;
    return index_classes(s);
}

SM_API sm_status sm_sampler_create(const sm_dataset *ds, uint64_t seed, sm_sampler **out)
{
    SM_CHECK_ARG(ds && out, "sm_sampler_create: NULL argument");
    sm_sampler *s = sm__calloc(1, sizeof *s);
    if (!s) return sm__fail(SM_ERR_NOMEM, "out of memory creating a pair sampler");
    s->ds = ds;
    s->turns = 1;
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
    size_t *arrays[] = {s->by_alpha,  s->alpha_start, s->multi_by_alpha, s->multi_start,
                        s->alpha_any, s->alpha_multi, s->pk_classes,     s->pk_start,
                        s->pk_count,  s->pk_alphas,   s->pk_images};
    for (size_t i = 0; i < sizeof arrays / sizeof *arrays; i++) sm__free(arrays[i]);
    sm__free(s);
}

/* A class drawn alphabet-balanced: an alphabet among `alphas`, then a class in it. */
static size_t balanced_class(sm_sampler *s, const size_t *alphas, size_t n_alphas,
                             const size_t *list, const size_t *start)
{
    size_t a = alphas[sm__rng_below(&s->rng, n_alphas)];
    return list[start[a] + sm__rng_below(&s->rng, start[a + 1] - start[a])];
}

/* The next pair's dataset indices, classes (the sampler's, see the top) and label. */
static void draw_pair(sm_sampler *s, size_t *a, size_t *b, size_t *cls_a, size_t *cls_b,
                      float *label)
{
    sm__rng *r = &s->rng;
    const size_t nc = n_classes(s);
    if (sm__rng_u64(r) >> 63) {
        size_t cls = s->alphabet_balanced ? balanced_class(s, s->alpha_multi, s->n_alpha_multi,
                                                           s->multi_by_alpha, s->multi_start)
                                          : s->multi[sm__rng_below(r, s->n_multi)];
        const sm__class *c = class_of(s, cls);
        size_t i = (size_t)sm__rng_below(r, c->n_images);
        size_t j = (size_t)sm__rng_below(r, c->n_images - 1);
        if (j >= i) j++;
        *a = c->images[i];
        *b = c->images[j];
        *cls_a = *cls_b = cls;
        *label = 1.0f;
    } else {
        size_t ca = s->alphabet_balanced ? balanced_class(s, s->alpha_any, s->n_alpha_any,
                                                          s->by_alpha, s->alpha_start)
                                         : (size_t)sm__rng_below(r, nc);
        size_t cb;
        bool same = s->neg_same_alphabet > 0.0 && sm__rng_uniform(r) < s->neg_same_alphabet;
        size_t al = alphabet_of(s, ca);
        size_t lo = s->alpha_start[al], cnt = s->alpha_start[al + 1] - lo;
        if (same && cnt >= 2) {
            /* classes of the alphabet are increasing: skip ca's position */
            size_t k = (size_t)sm__rng_below(r, cnt - 1);
            size_t pos = 0;
            while (s->by_alpha[lo + pos] != ca) pos++;
            if (k >= pos) k++;
            cb = s->by_alpha[lo + k];
        } else if (s->alphabet_balanced) {
            do {
                cb = balanced_class(s, s->alpha_any, s->n_alpha_any, s->by_alpha, s->alpha_start);
            } while (cb == ca);
        } else {
            cb = (size_t)sm__rng_below(r, nc - 1);
            if (cb >= ca) cb++;
        }
        const sm__class *x = class_of(s, ca), *y = class_of(s, cb);
        *a = x->images[sm__rng_below(r, x->n_images)];
        *b = y->images[sm__rng_below(r, y->n_images)];
        *cls_a = ca, *cls_b = cb;
        *label = 0.0f;
    }
}

/* Image `index` as floats in [0, 1], turned by `turns` quarter turns counterclockwise (square
 * images; numpy.rot90(image, turns)): output pixel (y, x) is source pixel
 *   0: (y, x);  1: (x, n-1-y);  2: (n-1-y, n-1-x);  3: (n-1-x, y). */
static void to_float(const sm_dataset *ds, size_t index, unsigned turns, float *dst)
{
    const uint8_t *src = ds->pixels + index * ds->pixels_per_image;
    if (turns == 0) {
        for (size_t i = 0; i < ds->pixels_per_image; i++) dst[i] = (float)src[i] / 255.0f;
        return;
    }
    const size_t n = (size_t)ds->width, m = n - 1;
    for (size_t y = 0; y < n; y++)
        for (size_t x = 0; x < n; x++) {
            size_t sy = turns == 1 ? x : turns == 2 ? m - y : m - x;
            size_t sx = turns == 1 ? m - y : turns == 2 ? m - x : y;
            dst[y * n + x] = (float)src[sy * n + sx] / 255.0f;
        }
}

sm_status sm__sampler_next_classes(sm_sampler *s, size_t n, float *left, float *right,
                                   float *labels, size_t *left_index, size_t *right_index,
                                   size_t *left_class, size_t *right_class)
{
    SM_CHECK_ARG(s, "sm_sampler_next: sampler is NULL");
    if (n == 0) return SM_OK;
    SM_CHECK_ARG(left && right && labels, "sm_sampler_next: NULL output buffer");
    size_t total;
    SM_CHECK_ARG(sm__mul_size(n, s->ds->pixels_per_image, &total) &&
                     sm__mul_size(total, sizeof(float), &total) &&
                     sm__mul_size(n, sizeof(size_t), &total),
                 "sm_sampler_next: %zu pairs is more than any buffer can hold", n);
    SM_TRY(ensure_indexed(s));

    size_t hw = s->ds->pixels_per_image;
    for (size_t k = 0; k < n; k++) {
        size_t a, b, ca, cb;
        draw_pair(s, &a, &b, &ca, &cb, &labels[k]);
        to_float(s->ds, a, turn_of(s, ca), left + k * hw);
        to_float(s->ds, b, turn_of(s, cb), right + k * hw);
        if (left_index) left_index[k] = a;
        if (right_index) right_index[k] = b;
        if (left_class) left_class[k] = ca;
        if (right_class) right_class[k] = cb;
    }
    return SM_OK;
}

SM_API sm_status sm_sampler_next(sm_sampler *s, size_t n, float *left, float *right, float *labels,
                                 size_t *left_index, size_t *right_index)
{
    return sm__sampler_next_classes(s, n, left, right, labels, left_index, right_index, NULL, NULL);
}

void sm__sampler_get_state(const sm_sampler *s, uint64_t state[4])
{
    memcpy(state, s->rng.s, sizeof s->rng.s);
}

void sm__sampler_set_state(sm_sampler *s, const uint64_t state[4])
{
    memcpy(s->rng.s, state, sizeof s->rng.s);
}

void sm__sampler_set_options(sm_sampler *s, double neg_same_alphabet, bool alphabet_balanced)
{
    s->neg_same_alphabet = neg_same_alphabet;
    s->alphabet_balanced = alphabet_balanced;
}

void sm__sampler_set_rotated(sm_sampler *s, bool rotated) { s->turns = rotated ? 4 : 1; }

/* Removes element i of a list of n by moving the last one into its place. */
static void take(size_t *list, size_t *n, size_t i) { list[i] = list[--*n]; }

sm_status sm__sampler_next_pk_classes(sm_sampler *s, size_t p, size_t k, float *images,
                                      size_t *index, size_t *classes)
{
    const sm_dataset *ds = s->ds;
    sm__rng *r = &s->rng;
    SM_TRY(ensure_indexed(s));
    const size_t na = n_alphabets(s), nc = n_classes(s);
    size_t cap = s->pk_cap_classes;
    SM_TRY(grow(&s->pk_classes, &cap, nc + 1));
    s->pk_cap_classes = cap;
    size_t capa = s->pk_cap_alpha, capb = s->pk_cap_alpha, capc = s->pk_cap_alpha;
    SM_TRY(grow(&s->pk_start, &capa, na + 1));
    SM_TRY(grow(&s->pk_count, &capb, na + 1));
    SM_TRY(grow(&s->pk_alphas, &capc, na + 1));
    s->pk_cap_alpha = capa;
    size_t biggest = 0;
    for (size_t c = 0; c < ds->n_classes; c++)
        if (ds->classes[c].n_images > biggest) biggest = ds->classes[c].n_images;
    SM_RETURN_IF(k > biggest, SM_ERR_DATASET,
                 "P x K batch: K = %zu images per class, but the largest class has %zu", k,
                 biggest);
    /* with rotated classes, each image stands for 4 */
    const size_t n_images = ds->n_images * s->indexed_turns;
    SM_RETURN_IF(p * k > n_images, SM_ERR_DATASET,
                 "P x K batch: P x K = %zu images, the dataset has %zu%s", p * k, n_images,
                 s->indexed_turns > 1 ? " (its rotations counted)" : "");
    /* eligible classes (>= k images), grouped by alphabet, increasing within each */
    size_t n_elig = 0;
    for (size_t a = 0; a < na; a++) {
        s->pk_start[a] = n_elig;
        for (size_t i = s->alpha_start[a]; i < s->alpha_start[a + 1]; i++)
            if (class_of(s, s->by_alpha[i])->n_images >= k)
                s->pk_classes[n_elig++] = s->by_alpha[i];
        s->pk_count[a] = n_elig - s->pk_start[a];
    }
    SM_RETURN_IF(n_elig < p, SM_ERR_DATASET,
                 "P x K batch: P = %zu classes of at least K = %zu images wanted, the dataset "
                 "has %zu such classes",
                 p, k, n_elig);
    size_t capi = s->pk_cap_images;
    SM_TRY(grow(&s->pk_images, &capi, biggest));
    s->pk_cap_images = capi;

    /* Negatives within the alphabet, P x K form: with probability f the whole batch comes from
     * one alphabet (uniform among those with >= P eligible classes; none: the usual draw), so
     * every dissimilar pair of it is a within-alphabet one, as in the one-shot test. The draw of
     * u happens only when f > 0, so the default stream is unchanged. */
    size_t *one = NULL, n_one = 0;
    if (s->neg_same_alphabet > 0.0 && sm__rng_uniform(r) < s->neg_same_alphabet) {
        size_t n_fit = 0;
        for (size_t a = 0; a < na; a++)
            if (s->pk_count[a] >= p) s->pk_alphas[n_fit++] = a;
        if (n_fit) {
            size_t a = s->pk_alphas[sm__rng_below(r, n_fit)];
            one = s->pk_classes + s->pk_start[a];
            n_one = s->pk_count[a];
        }
    }
    size_t n_alphas = 0;
    if (s->alphabet_balanced && !one)
        for (size_t a = 0; a < na; a++)
            if (s->pk_count[a]) s->pk_alphas[n_alphas++] = a;
    const size_t hw = ds->pixels_per_image;
    for (size_t q = 0; q < p; q++) {
        size_t cls;
        if (one) {
            /* partial Fisher-Yates within the chosen alphabet's eligible classes */
            size_t j = q + (size_t)sm__rng_below(r, n_one - q);
            cls = one[j];
            one[j] = one[q];
            one[q] = cls;
        } else if (s->alphabet_balanced) {
            /* an alphabet that still has an unchosen class, then one of those */
            size_t ai = (size_t)sm__rng_below(r, n_alphas), a = s->pk_alphas[ai];
            size_t *list = s->pk_classes + s->pk_start[a];
            size_t j = (size_t)sm__rng_below(r, s->pk_count[a]);
            cls = list[j];
            take(list, &s->pk_count[a], j);
            if (s->pk_count[a] == 0) take(s->pk_alphas, &n_alphas, ai);
        } else {
            /* partial Fisher-Yates over the eligible classes */
            size_t j = q + (size_t)sm__rng_below(r, n_elig - q);
            cls = s->pk_classes[j];
            s->pk_classes[j] = s->pk_classes[q];
            s->pk_classes[q] = cls;
        }
        const sm__class *c = class_of(s, cls);
        memcpy(s->pk_images, c->images, c->n_images * sizeof *c->images);
        for (size_t i = 0; i < k; i++) {
            size_t j = i + (size_t)sm__rng_below(r, c->n_images - i);
            size_t img = s->pk_images[j];
            s->pk_images[j] = s->pk_images[i];
            s->pk_images[i] = img;
            if (images) to_float(ds, img, turn_of(s, cls), images + (q * k + i) * hw);
            if (index) index[q * k + i] = img;
            if (classes) classes[q * k + i] = cls;
        }
    }
    return SM_OK;
}

sm_status sm__sampler_next_pk(sm_sampler *s, size_t p, size_t k, float *images, size_t *index)
{
    return sm__sampler_next_pk_classes(s, p, k, images, index, NULL);
}
