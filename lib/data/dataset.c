/* SPDX-License-Identifier: MIT */
/* Datasets: storage, getters and in-memory construction. Loading from folders and zips is
 * dataset_open.c. */
#include "data/dataset.h"

#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "common/error.h"
#include "common/limits.h"
#include "common/rng.h"

/* ---------------------------------------------------------------------------------------------
 * Storage
 * ------------------------------------------------------------------------------------------- */

SM_API sm_status sm_dataset_create(int height, int width, sm_dataset **out)
{
    SM_CHECK_ARG(out, "sm_dataset_create: out is NULL");
    SM_CHECK_ARG(sm__side_ok(height) && sm__side_ok(width),
                 "sm_dataset_create: image size %dx%d out of range (1..%d each)", width, height,
                 SM__MAX_IMAGE_SIDE);
    sm_dataset *ds = sm__calloc(1, sizeof *ds);
    if (!ds) return sm__fail(SM_ERR_NOMEM, "out of memory creating a dataset");
    ds->height = height;
    ds->width = width;
    ds->pixels_per_image = (size_t)height * (size_t)width;
    *out = ds;
    return SM_OK;
}

SM_API void sm_dataset_destroy(sm_dataset *ds)
{
    if (!ds) return;
    for (size_t i = 0; i < ds->n_images; i++) sm__free(ds->image_source[i]);
    for (size_t c = 0; c < ds->n_classes; c++) {
        sm__free(ds->classes[c].name);
        sm__free(ds->classes[c].images);
    }
    for (size_t a = 0; a < ds->n_alphabets; a++) sm__free(ds->alphabets[a]);
    sm__free(ds->pixels);
    sm__free(ds->image_class);
    sm__free(ds->image_source);
    sm__free(ds->classes);
    sm__free(ds->alphabets);
    sm__free(ds);
}

/* Reallocates *ptr to hold `count` elements of `elem` bytes; 0 (and *ptr untouched) on failure. */
static int resize(void **ptr, size_t count, size_t elem)
{
    size_t bytes;
    if (!sm__mul_size(count, elem, &bytes)) return 0;
    void *p = sm__realloc(*ptr, bytes);
    if (!p) return 0;
    *ptr = p;
    return 1;
}

/* The capacity to grow to so that `need` fits, doubling to keep appends amortised O(1). */
static size_t grown(size_t cap, size_t need)
{
    size_t c = cap < 8 ? 8 : cap;
    while (c < need) c = c > SIZE_MAX / 2 ? need : c * 2;
    return c;
}

size_t sm__dataset_max_images(size_t pixels_per_image)
{
    uint64_t n = sm__limit(SM_LIMIT_DATASET_BYTES) / pixels_per_image;
    return n > SIZE_MAX ? SIZE_MAX : (size_t)n;
}

sm_status sm__dataset_too_many(const char *what, size_t n, int at_least, int height, int width)
{
    uint64_t limit = sm__limit(SM_LIMIT_DATASET_BYTES);
    uint64_t per = (uint64_t)height * (uint64_t)width;
    uint64_t bytes = n > UINT64_MAX / per ? UINT64_MAX : (uint64_t)n * per;
    return sm__fail(SM_ERR_LIMIT,
                    "%s needs room for %s%zu images of %dx%d, %s%" PRIu64 " bytes of pixels, more "
                    "than SM_LIMIT_DATASET_BYTES (%" PRIu64 "); raise it with "
                    "sm_set_limit(SM_LIMIT_DATASET_BYTES)",
                    what, at_least ? "at least " : "", n, width, height,
                    at_least ? "at least " : "", bytes, limit);
}

static sm_status reserve_images(sm_dataset *ds, size_t need)
{
    if (need <= ds->cap_images) return SM_OK;
    size_t most = sm__dataset_max_images(ds->pixels_per_image);
    if (need > most) return sm__dataset_too_many("the dataset", need, 0, ds->height, ds->width);
    size_t cap = grown(ds->cap_images, need);
    if (cap > most) cap = most; /* >= need: growing never oversteps the limit */
    size_t bytes;
    if (!sm__mul_size(cap, ds->pixels_per_image, &bytes))
        return sm__fail(SM_ERR_LIMIT, "dataset too large: %zu images of %dx%d", need, ds->width,
                        ds->height);
    /* Each array keeps its new block even if a later one fails; cap_images only moves once all
     * three are large enough. */
    if (!resize((void **)&ds->pixels, cap, ds->pixels_per_image) ||
        !resize((void **)&ds->image_class, cap, sizeof *ds->image_class) ||
        !resize((void **)&ds->image_source, cap, sizeof *ds->image_source))
        return sm__fail(SM_ERR_NOMEM, "out of memory growing a dataset to %zu images", need);
    ds->cap_images = cap;
    return SM_OK;
}

sm_status sm__dataset_reserve(sm_dataset *ds, size_t n)
{
    if (n > SIZE_MAX - ds->n_images)
        return sm__fail(SM_ERR_LIMIT, "dataset too large: %zu more images", n);
    return reserve_images(ds, ds->n_images + n);
}

/* Binary search in a sorted name array; returns 1 when found. *pos: its index or where it would
 * be inserted. */
static int find_name(const char *const *names, size_t stride, size_t n, const char *key,
                     size_t keylen, size_t *pos)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const char *name = *(const char *const *)((const char *)names + mid * stride);
        int c = strncmp(name, key, keylen);
        if (c == 0) c = name[keylen] == '\0' ? 0 : 1;
        if (c == 0) {
            *pos = mid;
            return 1;
        }
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    *pos = lo;
    return 0;
}

static int find_class(const sm_dataset *ds, const char *label, size_t *pos)
{
    *pos = 0;
    if (ds->n_classes == 0) return 0;
    return find_name((const char *const *)&ds->classes[0].name, sizeof(sm__class), ds->n_classes,
                     label, strlen(label), pos);
}

/* The alphabet of a label is what precedes its first '/' ("" when there is none). */
static size_t alphabet_len(const char *label)
{
    const char *slash = strchr(label, '/');
    return slash ? (size_t)(slash - label) : 0;
}

static char *copy_n(const char *s, size_t n)
{
    char *d = sm__malloc(n + 1);
    if (!d) return NULL;
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

/* Everything a new class needs, allocated before the dataset is touched. */
typedef struct new_class {
    char *name;
    char *alphabet; /* NULL when the alphabet already exists */
    size_t alphabet_pos;
    size_t *images;
} new_class;

static void new_class_free(new_class *nc)
{
    sm__free(nc->name);
    sm__free(nc->alphabet);
    sm__free(nc->images);
}

static sm_status prepare_class(sm_dataset *ds, const char *label, new_class *nc)
{
    memset(nc, 0, sizeof *nc);
    size_t alen = alphabet_len(label);
    int have_alphabet =
        ds->n_alphabets > 0 && find_name((const char *const *)ds->alphabets, sizeof(char *),
                                         ds->n_alphabets, label, alen, &nc->alphabet_pos);
    nc->name = sm__strdup(label);
    nc->images = sm__malloc(4 * sizeof *nc->images);
    if (!have_alphabet) nc->alphabet = copy_n(label, alen);
    int ok = nc->name && nc->images && (have_alphabet || nc->alphabet);
    if (ok && !have_alphabet && ds->n_alphabets == ds->cap_alphabets) {
        size_t cap = grown(ds->cap_alphabets, ds->n_alphabets + 1);
        ok = resize((void **)&ds->alphabets, cap, sizeof *ds->alphabets);
        if (ok) ds->cap_alphabets = cap;
    }
    if (ok && ds->n_classes == ds->cap_classes) {
        size_t cap = grown(ds->cap_classes, ds->n_classes + 1);
        ok = resize((void **)&ds->classes, cap, sizeof *ds->classes);
        if (ok) ds->cap_classes = cap;
    }
    if (!ok) {
        new_class_free(nc);
        return sm__fail(SM_ERR_NOMEM, "out of memory adding class '%s'", label);
    }
    return SM_OK;
}

/* Inserts the prepared class at `pos`, shifting the indices that sorted insertion moves. */
static void commit_class(sm_dataset *ds, new_class *nc, size_t pos)
{
    size_t alpha = nc->alphabet_pos;
    if (nc->alphabet) {
        memmove(&ds->alphabets[alpha + 1], &ds->alphabets[alpha],
                (ds->n_alphabets - alpha) * sizeof *ds->alphabets);
        ds->alphabets[alpha] = nc->alphabet;
        ds->n_alphabets++;
        for (size_t c = 0; c < ds->n_classes; c++)
            if (ds->classes[c].alphabet >= alpha) ds->classes[c].alphabet++;
    }
    memmove(&ds->classes[pos + 1], &ds->classes[pos], (ds->n_classes - pos) * sizeof *ds->classes);
    ds->classes[pos] = (sm__class){nc->name, alpha, nc->images, 0, 4};
    ds->n_classes++;
    if (pos + 1 < ds->n_classes)
        for (size_t i = 0; i < ds->n_images; i++)
            if (ds->image_class[i] >= pos) ds->image_class[i]++;
}

sm_status sm__dataset_add_u8(sm_dataset *ds, const char *label, const uint8_t *pixels,
                             const char *source)
{
    SM_TRY(reserve_images(ds, ds->n_images + 1));
    size_t pos;
    int exists = find_class(ds, label, &pos);
    new_class nc = {0};
    if (exists) {
        sm__class *c = &ds->classes[pos];
        if (c->n_images == c->cap_images) {
            size_t cap = grown(c->cap_images, c->n_images + 1);
            if (!resize((void **)&c->images, cap, sizeof *c->images))
                return sm__fail(SM_ERR_NOMEM, "out of memory adding an image to '%s'", label);
            c->cap_images = cap;
        }
    } else {
        SM_TRY(prepare_class(ds, label, &nc));
    }
    char *src = NULL;
    if (source && !(src = sm__strdup(source))) {
        new_class_free(&nc);
        return sm__fail(SM_ERR_NOMEM, "out of memory adding image '%s'", source);
    }

    if (!exists) commit_class(ds, &nc, pos);
    size_t i = ds->n_images++;
    memcpy(ds->pixels + i * ds->pixels_per_image, pixels, ds->pixels_per_image);
    ds->image_class[i] = pos;
    ds->image_source[i] = src;
    sm__class *c = &ds->classes[pos];
    c->images[c->n_images++] = i;
    return SM_OK;
}

SM_API sm_status sm_dataset_add_image(sm_dataset *ds, const char *label, const float *pixels)
{
    SM_CHECK_ARG(ds && label && pixels, "sm_dataset_add_image: NULL argument");
    SM_CHECK_ARG(label[0] != '\0', "sm_dataset_add_image: empty label");
    uint8_t *bytes = sm__malloc(ds->pixels_per_image);
    if (!bytes) return sm__fail(SM_ERR_NOMEM, "out of memory adding an image");
    for (size_t i = 0; i < ds->pixels_per_image; i++) {
        float v = pixels[i];
        if (!(v >= 0.0f && v <= 1.0f)) { /* also catches NaN */
            sm__free(bytes);
            return sm__fail(SM_ERR_INVALID_ARG,
                            "sm_dataset_add_image: pixel %zu is %g, outside [0, 1]", i, (double)v);
        }
        bytes[i] = (uint8_t)((double)v * 255.0 + 0.5);
    }
    sm_status st = sm__dataset_add_u8(ds, label, bytes, NULL);
    sm__free(bytes);
    return st;
}

/* ---------------------------------------------------------------------------------------------
 * Getters
 * ------------------------------------------------------------------------------------------- */

SM_API size_t sm_dataset_num_images(const sm_dataset *ds) { return ds ? ds->n_images : 0; }
SM_API size_t sm_dataset_num_classes(const sm_dataset *ds) { return ds ? ds->n_classes : 0; }
SM_API size_t sm_dataset_num_alphabets(const sm_dataset *ds) { return ds ? ds->n_alphabets : 0; }

SM_API sm_status sm_dataset_image_size(const sm_dataset *ds, int *height, int *width)
{
    SM_CHECK_ARG(ds, "sm_dataset_image_size: dataset is NULL");
    if (height) *height = ds->height;
    if (width) *width = ds->width;
    return SM_OK;
}

SM_API sm_status sm_dataset_get_image(const sm_dataset *ds, size_t index, float *pixels)
{
    SM_CHECK_ARG(ds && pixels, "sm_dataset_get_image: NULL argument");
    SM_CHECK_ARG(index < ds->n_images, "sm_dataset_get_image: index %zu out of range (%zu images)",
                 index, ds->n_images);
    const uint8_t *src = ds->pixels + index * ds->pixels_per_image;
    for (size_t i = 0; i < ds->pixels_per_image; i++) pixels[i] = (float)src[i] / 255.0f;
    return SM_OK;
}

SM_API size_t sm_dataset_image_class(const sm_dataset *ds, size_t index)
{
    if (!ds || index >= ds->n_images) return SIZE_MAX;
    return ds->image_class[index];
}

SM_API const char *sm_dataset_class_name(const sm_dataset *ds, size_t class_index)
{
    if (!ds || class_index >= ds->n_classes) return NULL;
    return ds->classes[class_index].name;
}

SM_API const char *sm_dataset_alphabet_name(const sm_dataset *ds, size_t alphabet_index)
{
    if (!ds || alphabet_index >= ds->n_alphabets) return NULL;
    return ds->alphabets[alphabet_index];
}

SM_API const char *sm_dataset_image_source(const sm_dataset *ds, size_t index)
{
    if (!ds || index >= ds->n_images) return NULL;
    return ds->image_source[index] ? ds->image_source[index] : "";
}

/* ---------------------------------------------------------------------------------------------
 * Splitting by alphabet
 * ------------------------------------------------------------------------------------------- */

/* Copies every image of `ds` whose alphabet has `want` in `is_val` into `dst`, in order. */
static sm_status copy_part(const sm_dataset *ds, const unsigned char *is_val, unsigned char want,
                           sm_dataset *dst)
{
    size_t n = 0;
    for (size_t i = 0; i < ds->n_images; i++)
        n += is_val[ds->classes[ds->image_class[i]].alphabet] == want;
    SM_TRY(sm__dataset_reserve(dst, n));
    for (size_t i = 0; i < ds->n_images; i++) {
        const sm__class *c = &ds->classes[ds->image_class[i]];
        if (is_val[c->alphabet] != want) continue;
        SM_TRY(sm__dataset_add_u8(dst, c->name, ds->pixels + i * ds->pixels_per_image,
                                  ds->image_source[i]));
    }
    return SM_OK;
}

SM_API sm_status sm_dataset_split_alphabets(const sm_dataset *ds, size_t n_val, uint64_t seed,
                                            sm_dataset **train, sm_dataset **val)
{
    SM_CHECK_ARG(ds && train && val, "sm_dataset_split_alphabets: NULL argument");
    SM_CHECK_ARG(n_val >= 1 && n_val < ds->n_alphabets,
                 "sm_dataset_split_alphabets: %zu validation alphabets asked of a dataset with "
                 "%zu (1..%zu: at least one must stay for training)",
                 n_val, ds->n_alphabets, ds->n_alphabets ? ds->n_alphabets - 1 : 0);
    size_t a = ds->n_alphabets;
    size_t *order = sm__malloc(a * sizeof *order);
    unsigned char *is_val = sm__calloc(a, 1);
    sm_dataset *t = NULL, *v = NULL;
    sm_status st =
        order && is_val ? SM_OK : sm__fail(SM_ERR_NOMEM, "out of memory splitting a dataset");
    if (st == SM_OK) {
        /* Fisher-Yates over the alphabets in name order; the first n_val are validation. */
        sm__rng rng;
        sm__rng_seed(&rng, seed);
        for (size_t i = 0; i < a; i++) order[i] = i;
        for (size_t i = a - 1; i > 0; i--) {
            size_t j = (size_t)sm__rng_below(&rng, (uint64_t)i + 1), tmp = order[i];
            order[i] = order[j], order[j] = tmp;
        }
        for (size_t k = 0; k < n_val; k++) is_val[order[k]] = 1;
        st = sm_dataset_create(ds->height, ds->width, &t);
    }
    if (st == SM_OK) st = sm_dataset_create(ds->height, ds->width, &v);
    if (st == SM_OK) st = copy_part(ds, is_val, 0, t);
    if (st == SM_OK) st = copy_part(ds, is_val, 1, v);
    sm__free(order);
    sm__free(is_val);
    if (st != SM_OK) {
        sm_dataset_destroy(t);
        sm_dataset_destroy(v);
        return st;
    }
    *train = t;
    *val = v;
    return SM_OK;
}
