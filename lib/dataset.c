/* Datasets: storage, getters and in-memory construction. Loading from folders and zips is in
 * the second half of this file, below the getters. */
#include "dataset.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "alloc.h"
#include "error.h"
#include "limits.h"

/* ---------------------------------------------------------------------------------------------
 * Storage
 * ------------------------------------------------------------------------------------------- */

static int side_ok(int v) { return v >= 1 && v <= SM__MAX_IMAGE_SIDE; }

SM_API sm_status sm_dataset_create(int height, int width, sm_dataset **out)
{
    SM_CHECK_ARG(out, "sm_dataset_create: out is NULL");
    SM_CHECK_ARG(side_ok(height) && side_ok(width),
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

/* How many images of `pixels_per_image` bytes SM_LIMIT_DATASET_BYTES allows. */
static size_t max_images(size_t pixels_per_image, uint64_t limit)
{
    uint64_t n = limit / pixels_per_image;
    return n > SIZE_MAX ? SIZE_MAX : (size_t)n;
}

/* `n` images (at least, when `at_least`) would not fit in SM_LIMIT_DATASET_BYTES. */
static sm_status too_many_images(const char *what, size_t n, int at_least, int height, int width,
                                 uint64_t limit)
{
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
    uint64_t limit = sm__limit(SM_LIMIT_DATASET_BYTES);
    size_t most = max_images(ds->pixels_per_image, limit);
    if (need > most)
        return too_many_images("the dataset", need, 0, ds->height, ds->width, limit);
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
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
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
    int have_alphabet = ds->n_alphabets > 0 &&
                        find_name((const char *const *)ds->alphabets, sizeof(char *),
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
 * Loading: find ROOT/<Alphabet>/<character>/<image>.png in a folder or a zip, sort, decode
 * ------------------------------------------------------------------------------------------- */

/* Folders deeper than this are not searched: the layout needs 3 levels (4 with ROOT), and the
 * bound stops symbolic-link loops. */
#define MAX_DEPTH 8

typedef struct entry {
    char *cls;          /* "Alphabet/character", followed in the same block by the file name */
    const char *file;   /* points into cls's block */
    char *source;       /* file path, or "zipfile.zip:inner/path.png" */
    size_t zip_index;
} entry;

typedef struct entry_list {
    entry *items;
    size_t n, cap;
    /* what to list: the selected alphabets (all when n_alphabets is 0), and at most
     * max_entries images (what SM_LIMIT_DATASET_BYTES allows), so that a zip or folder that
     * claims millions of images is refused before an entry is allocated for each */
    const char *const *alphabets;
    size_t n_alphabets, max_entries;
    const char *path; /* the dataset, for messages */
    int height, width;
} entry_list;

static void entries_free(entry_list *l)
{
    for (size_t i = 0; i < l->n; i++) {
        sm__free(l->items[i].cls);
        sm__free(l->items[i].source);
    }
    sm__free(l->items);
}

/* Folders and files that are never data: hidden ones and macOS resource forks. */
static int ignored_name(const char *name, size_t len)
{
    if (len == 0) return 0;
    if (name[0] == '.') return 1;
    return len == 8 && memcmp(name, "__MACOSX", 8) == 0;
}

static int png_name(const char *name)
{
    size_t n = strlen(name);
    return n > 4 && strcasecmp(name + n - 4, ".png") == 0;
}

/* Splits `rel` (a '/'-separated relative path) and, if it names an image of the layout, adds it
 * with its last three components as alphabet / character / file. Other paths are skipped. */
static sm_status add_entry(entry_list *l, const char *rel, const char *source, size_t zip_index)
{
    const char *start[3] = {NULL, NULL, NULL};
    size_t len[3] = {0, 0, 0};
    size_t count = 0;
    for (const char *p = rel; *p;) {
        const char *e = strchr(p, '/');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (ignored_name(p, n)) return SM_OK;
        if (n > 0) {
            memmove(&start[0], &start[1], 2 * sizeof start[0]);
            memmove(&len[0], &len[1], 2 * sizeof len[0]);
            start[2] = p;
            len[2] = n;
            count++;
        }
        p += n + (e ? 1 : 0);
    }
    if (count < 3 || !png_name(start[2]) || len[0] == 0) return SM_OK;
    if (l->n_alphabets > 0) {
        size_t k = 0;
        while (k < l->n_alphabets && !(strlen(l->alphabets[k]) == len[0] &&
                                       memcmp(l->alphabets[k], start[0], len[0]) == 0))
            k++;
        if (k == l->n_alphabets) return SM_OK; /* not selected */
    }
    if (l->n >= l->max_entries) {
        char what[300];
        snprintf(what, sizeof what, "dataset '%.250s'", l->path);
        return too_many_images(what, l->n + 1, 1, l->height, l->width,
                               sm__limit(SM_LIMIT_DATASET_BYTES));
    }

    if (l->n == l->cap) {
        size_t cap = grown(l->cap, l->n + 1);
        if (!resize((void **)&l->items, cap, sizeof *l->items))
            return sm__fail(SM_ERR_NOMEM, "out of memory listing '%s'", source);
        l->cap = cap;
    }
    size_t cls_len = len[0] + 1 + len[1];
    char *block = sm__malloc(cls_len + 1 + len[2] + 1);
    char *src = sm__strdup(source);
    if (!block || !src) {
        sm__free(block);
        sm__free(src);
        return sm__fail(SM_ERR_NOMEM, "out of memory listing '%s'", source);
    }
    memcpy(block, start[0], len[0]);
    block[len[0]] = '/';
    memcpy(block + len[0] + 1, start[1], len[1]);
    block[cls_len] = '\0';
    memcpy(block + cls_len + 1, start[2], len[2]);
    block[cls_len + 1 + len[2]] = '\0';
    l->items[l->n++] = (entry){block, block + cls_len + 1, src, zip_index};
    return SM_OK;
}

/* "a" + "/" + "b" in a new string. */
static char *join(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    while (la > 1 && a[la - 1] == '/') la--; /* "data/" gives "data/x", not "data//x" */
    if (la == 0) return sm__strdup(b);
    char *s = sm__malloc(la + 1 + lb + 1);
    if (!s) return NULL;
    memcpy(s, a, la);
    s[la] = '/';
    memcpy(s + la + 1, b, lb + 1);
    if (la == 1 && a[0] == '/') memmove(s + 1, s + 2, lb + 1); /* root folder: "/x" */
    return s;
}

static sm_status walk(entry_list *l, const char *dir, const char *rel, int depth);

/* Visits one directory entry of `dir`: recurses into folders, records PNG files. */
static sm_status visit(entry_list *l, const char *dir, const char *rel, const char *name,
                       int depth)
{
    char *path = join(dir, name);
    char *sub = join(rel, name);
    sm_status st = SM_OK;
    struct stat sb;
    if (!path || !sub)
        st = sm__fail(SM_ERR_NOMEM, "out of memory listing '%s'", dir);
    else if (stat(path, &sb) != 0)
        /* Only a PNG that cannot be read is an error; other broken links are not data. */
        st = png_name(name) ? sm__fail(SM_ERR_IO, "cannot read '%s': %s", path, strerror(errno))
                            : SM_OK;
    else if (S_ISDIR(sb.st_mode))
        st = depth < MAX_DEPTH ? walk(l, path, sub, depth + 1) : SM_OK;
    else if (S_ISREG(sb.st_mode))
        st = add_entry(l, sub, path, 0);
    sm__free(path);
    sm__free(sub);
    return st;
}

static sm_status walk(entry_list *l, const char *dir, const char *rel, int depth)
{
    DIR *d = opendir(dir);
    if (!d) return sm__fail(SM_ERR_IO, "cannot read folder '%s': %s", dir, strerror(errno));
    sm_status st = SM_OK;
    struct dirent *de;
    while (st == SM_OK) {
        errno = 0;
        de = readdir(d);
        if (!de) {
            if (errno)
                st = sm__fail(SM_ERR_IO, "cannot read folder '%s': %s", dir, strerror(errno));
            break;
        }
        if (ignored_name(de->d_name, strlen(de->d_name))) continue; /* ".", "..", hidden */
        st = visit(l, dir, rel, de->d_name, depth);
    }
    closedir(d);
    return st;
}

static sm_status list_zip(entry_list *l, sm__zip *zip, const char *path)
{
    size_t n = sm__zip_num_entries(zip);
    size_t plen = strlen(path);
    char *source = NULL;
    size_t source_cap = 0;
    sm_status st = SM_OK;
    for (size_t i = 0; i < n && st == SM_OK; i++) {
        const char *name = sm__zip_entry_name(zip, i);
        if (!name || !png_name(name)) continue; /* directory entries end in '/' */
        size_t need = plen + 1 + strlen(name) + 1;
        if (need > source_cap) {
            if (!resize((void **)&source, need, 1)) {
                st = sm__fail(SM_ERR_NOMEM, "out of memory listing zip '%s'", path);
                break;
            }
            source_cap = need;
        }
        snprintf(source, need, "%s:%s", path, name);
        st = add_entry(l, name, source, i);
    }
    sm__free(source);
    return st;
}

static int entry_cmp(const void *pa, const void *pb)
{
    const entry *a = pa, *b = pb;
    int c = strcmp(a->cls, b->cls);
    if (c == 0) c = strcmp(a->file, b->file);
    if (c == 0) c = strcmp(a->source, b->source); /* same path under two ROOTs */
    return c;
}

/* Each requested alphabet must exist (add_entry listed only those). */
static sm_status check_alphabets(const entry_list *l, const char *path,
                                 const char *const *alphabets, size_t n_alphabets)
{
    for (size_t k = 0; k < n_alphabets; k++) {
        const char *want = alphabets[k];
        size_t wl = strlen(want);
        int found = 0;
        for (size_t i = 0; i < l->n && !found; i++)
            found = strncmp(l->items[i].cls, want, wl) == 0 && l->items[i].cls[wl] == '/';
        if (!found) return sm__fail(SM_ERR_DATASET, "alphabet '%s' not found in '%s'", want, path);
    }
    return SM_OK;
}

sm_status sm__read_file(const char *path, uint8_t **data, size_t *size)
{
    FILE *f = fopen(path, "rb");
    if (!f) return sm__fail(SM_ERR_IO, "cannot open '%s': %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode)) {
        fclose(f);
        return sm__fail(SM_ERR_IO, "'%s' is not a readable file", path);
    }
    uint64_t limit = sm__limit(SM_LIMIT_ENTRY_BYTES);
    if (sb.st_size < 0 || (uintmax_t)sb.st_size > limit || (uintmax_t)sb.st_size > SIZE_MAX) {
        fclose(f);
        return sm__fail(SM_ERR_LIMIT,
                        "'%s' is %jd bytes, more than SM_LIMIT_ENTRY_BYTES (%" PRIu64 "); raise "
                        "it with sm_set_limit(SM_LIMIT_ENTRY_BYTES)",
                        path, (intmax_t)sb.st_size, limit);
    }
    size_t n = (size_t)sb.st_size; /* no more is read, even if the file grew since */
    uint8_t *buf = sm__malloc(n ? n : 1);
    if (!buf) {
        fclose(f);
        return sm__fail(SM_ERR_NOMEM, "out of memory reading '%s'", path);
    }
    size_t got = fread(buf, 1, n, f);
    int failed = ferror(f) || got != n;
    fclose(f);
    if (failed) {
        sm__free(buf);
        return sm__fail(SM_ERR_IO, "cannot read '%s'", path);
    }
    *data = buf;
    *size = n;
    return SM_OK;
}

/* Reads and decodes every listed image into a new dataset. */
static sm_status load_entries(const entry_list *l, sm__zip *zip, int height, int width,
                              sm_dataset **out)
{
    sm_dataset *ds = NULL;
    SM_TRY(sm_dataset_create(height, width, &ds));
    sm_status st = sm__dataset_reserve(ds, l->n);
    uint8_t *pixels = st == SM_OK ? sm__malloc(ds->pixels_per_image) : NULL;
    if (st == SM_OK && !pixels) st = sm__fail(SM_ERR_NOMEM, "out of memory loading a dataset");
    for (size_t i = 0; i < l->n && st == SM_OK; i++) {
        const entry *e = &l->items[i];
        uint8_t *data = NULL;
        size_t size = 0;
        st = zip ? sm__zip_read(zip, e->zip_index, &data, &size)
                 : sm__read_file(e->source, &data, &size);
        if (st == SM_OK) st = sm__png_decode(data, size, e->source, height, width, pixels);
        if (st == SM_OK) st = sm__dataset_add_u8(ds, e->cls, pixels, e->source);
        sm__free(data);
    }
    sm__free(pixels);
    if (st != SM_OK) {
        sm_dataset_destroy(ds);
        return st;
    }
    *out = ds;
    return SM_OK;
}

static sm_status check_entries(const entry_list *l, const char *path)
{
    if (l->n == 0)
        return sm__fail(SM_ERR_DATASET,
                        "no images in '%s' (expected ROOT/<Alphabet>/<character>/<image>.png)",
                        path);
    for (size_t i = 1; i < l->n; i++)
        if (strcmp(l->items[i].cls, l->items[0].cls) != 0) return SM_OK;
    return sm__fail(SM_ERR_DATASET, "'%s' holds a single class ('%s'); at least two are needed",
                    path, l->items[0].cls);
}

/* Checks the arguments of sm_dataset_open; 0x0 becomes 105x105. */
static sm_status check_open_args(const char *path, int *height, int *width,
                                 const char *const *alphabets, size_t n_alphabets,
                                 sm_dataset **out)
{
    SM_CHECK_ARG(path && out, "sm_dataset_open: NULL argument");
    SM_CHECK_ARG(n_alphabets == 0 || alphabets, "sm_dataset_open: alphabets is NULL");
    for (size_t k = 0; k < n_alphabets; k++)
        SM_CHECK_ARG(alphabets[k] && alphabets[k][0], "sm_dataset_open: alphabet %zu is empty", k);
    if (*height == 0 && *width == 0) *height = *width = 105;
    SM_CHECK_ARG(side_ok(*height) && side_ok(*width),
                 "sm_dataset_open: image size %dx%d out of range (1..%d each, or 0x0)", *width,
                 *height, SM__MAX_IMAGE_SIDE);
    return SM_OK;
}

static entry_list new_list(const char *path, int height, int width, const char *const *alphabets,
                           size_t n_alphabets)
{
    size_t per = (size_t)height * (size_t)width;
    return (entry_list){NULL, 0, 0, alphabets, n_alphabets,
                        max_images(per, sm__limit(SM_LIMIT_DATASET_BYTES)), path, height, width};
}

/* The second half of sm_dataset_open, once the images are listed (or listing failed). */
static sm_status finish_open(sm_status st, entry_list *l, sm__zip *zip, const char *path,
                             int height, int width, const char *const *alphabets,
                             size_t n_alphabets, sm_dataset **out)
{
    if (st == SM_OK && n_alphabets > 0) st = check_alphabets(l, path, alphabets, n_alphabets);
    if (st == SM_OK) {
        if (l->n > 1) qsort(l->items, l->n, sizeof *l->items, entry_cmp);
        st = check_entries(l, path);
    }
    if (st == SM_OK) st = load_entries(l, zip, height, width, out);
    sm__zip_close(zip);
    entries_free(l);
    return st;
}

SM_API sm_status sm_dataset_open(const char *path, int height, int width,
                                 const char *const *alphabets, size_t n_alphabets,
                                 sm_dataset **out)
{
    SM_TRY(check_open_args(path, &height, &width, alphabets, n_alphabets, out));
    struct stat sb;
    if (stat(path, &sb) != 0)
        return sm__fail(SM_ERR_IO, "cannot open dataset '%s': %s", path, strerror(errno));
    if (!S_ISDIR(sb.st_mode) && !S_ISREG(sb.st_mode))
        return sm__fail(SM_ERR_IO, "dataset '%s' is neither a folder nor a file", path);

    entry_list l = new_list(path, height, width, alphabets, n_alphabets);
    sm__zip *zip = NULL;
    sm_status st;
    if (S_ISDIR(sb.st_mode)) {
        st = walk(&l, path, "", 1);
    } else {
        st = sm__zip_open(path, &zip);
        if (st == SM_OK) st = list_zip(&l, zip, path);
    }
    return finish_open(st, &l, zip, path, height, width, alphabets, n_alphabets, out);
}

sm_status sm__dataset_open_zip_buffer(const void *data, size_t size, const char *name,
                                      int height, int width, const char *const *alphabets,
                                      size_t n_alphabets, sm_dataset **out)
{
    SM_TRY(check_open_args(name, &height, &width, alphabets, n_alphabets, out));
    entry_list l = new_list(name, height, width, alphabets, n_alphabets);
    sm__zip *zip = NULL;
    sm_status st = sm__zip_open_buffer(data, size, name, &zip);
    if (st == SM_OK) st = list_zip(&l, zip, name);
    return finish_open(st, &l, zip, name, height, width, alphabets, n_alphabets, out);
}

SM_API sm_status sm_image_read_png(const char *path, int height, int width, float *pixels)
{
    SM_CHECK_ARG(path && pixels, "sm_image_read_png: NULL argument");
    SM_CHECK_ARG(side_ok(height) && side_ok(width),
                 "sm_image_read_png: image size %dx%d out of range (1..%d each)", width, height,
                 SM__MAX_IMAGE_SIDE);
    size_t n = (size_t)height * (size_t)width;
    uint8_t *data = NULL, *bytes = NULL;
    size_t size = 0;
    SM_TRY(sm__read_file(path, &data, &size));
    bytes = sm__malloc(n);
    sm_status st = bytes ? sm__png_decode(data, size, path, height, width, bytes)
                         : sm__fail(SM_ERR_NOMEM, "out of memory reading '%s'", path);
    if (st == SM_OK)
        for (size_t i = 0; i < n; i++) pixels[i] = (float)bytes[i] / 255.0f;
    sm__free(bytes);
    sm__free(data);
    return st;
}
