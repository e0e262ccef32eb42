/* SPDX-License-Identifier: MIT */
/* Loading datasets: ROOT/<Alphabet>/<character>/<image>.png found in a folder or a zip (listed
 * by tree_list.c, under its rules), sorted, decoded once; and single PNG files. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/alloc.h"
#include "common/error.h"
#include "common/limits.h"
#include "data/dataset.h"
#include "data/image.h"
#include "io/file_read.h"
#include "io/png.h"
#include "io/tree_list.h"

typedef struct entry {
    char *cls;        /* "Alphabet/character", followed in the same block by the file name */
    const char *file; /* points into cls's block */
    char *source;     /* file path, or "zipfile.zip:inner/path.png" */
    const sm__tree_file *tree_file;
} entry;

/* What to list: the selected alphabets (all when n_alphabets is 0), and at most max_entries
 * images (what SM_LIMIT_DATASET_BYTES allows), so that a zip or folder that claims millions of
 * images is refused before an entry is allocated for each. */
typedef struct selection {
    const char *const *alphabets;
    size_t n_alphabets, max_entries, n_kept;
    const char *path; /* the dataset, for messages */
    int height, width;
    const char *const *exclude; /* alphabets left out (sm_dataset_options) */
    size_t n_exclude;
    int resize;                  /* decode any size and resize to height x width */
    unsigned char *exclude_seen; /* per excluded name: an image of it was listed (left out) */
} selection;

/* Which of names[0..n) the alphabet start[0..len) is; n when none. */
static size_t name_index(const char *const *names, size_t n, const char *start, size_t len)
{
    size_t k = 0;
    while (k < n && !(strlen(names[k]) == len && memcmp(names[k], start, len) == 0)) k++;
    return k;
}

static int png_name(const char *name, size_t n)
{
    return n > 4 && strncasecmp(name + n - 4, ".png", 4) == 0;
}

/* The last three components of `rel` (the lister's form: no empty component) as alphabet,
 * character and file; 0 when it has fewer or the file is no PNG. */
static int layout_parts(const char *rel, const char *start[3], size_t len[3])
{
    const char *end = rel + strlen(rel), *p = end;
    for (int k = 2; k >= 0; k--) {
        const char *e = p;
        while (p > rel && p[-1] != '/') p--;
        start[k] = p;
        len[k] = (size_t)(e - p);
        if (k > 0) {
            if (p == rel) return 0;
            p--; /* the '/' */
        }
    }
    return png_name(start[2], len[2]);
}

static sm_status keep_layout_image(void *ctx, const char *rel, int *keep)
{
    selection *sel = ctx;
    const char *start[3];
    size_t len[3];
    if (!layout_parts(rel, start, len)) return SM_OK;
    if (sel->n_alphabets > 0 &&
        name_index(sel->alphabets, sel->n_alphabets, start[0], len[0]) == sel->n_alphabets)
        return SM_OK; /* not selected */
    size_t x = name_index(sel->exclude, sel->n_exclude, start[0], len[0]);
    if (x < sel->n_exclude) {
        sel->exclude_seen[x] = 1;
        return SM_OK; /* left out */
    }
    if (sel->n_kept >= sel->max_entries) {
        char what[300];
        snprintf(what, sizeof what, "dataset '%.250s'", sel->path);
        return sm__dataset_too_many(what, sel->n_kept + 1, 1, sel->height, sel->width);
    }
    sel->n_kept++;
    *keep = 1;
    return SM_OK;
}

static void entries_free(entry *e, size_t n)
{
    for (size_t i = 0; e && i < n; i++) {
        sm__free(e[i].cls);
        sm__free(e[i].source);
    }
    sm__free(e);
}

/* One entry per listed file: its class, file name and source. */
static sm_status make_entries(const sm__tree *t, entry **out)
{
    entry *e = sm__calloc(t->n ? t->n : 1, sizeof *e);
    if (!e) return sm__fail(SM_ERR_NOMEM, "out of memory listing '%s'", t->path);
    for (size_t i = 0; i < t->n; i++) {
        const char *start[3];
        size_t len[3];
        layout_parts(t->files[i].rel, start, len); /* the filter kept only these */
        size_t cls_len = len[0] + 1 + len[1];
        char *block = sm__malloc(cls_len + 1 + len[2] + 1);
        char *src = sm__tree_source(t, &t->files[i]);
        if (!block || !src) {
            sm__free(block);
            sm__free(src);
            entries_free(e, i);
            return sm__fail(SM_ERR_NOMEM, "out of memory listing '%s'", t->path);
        }
        memcpy(block, start[0], cls_len); /* "Alphabet/character" is contiguous in rel */
        block[cls_len] = '\0';
        memcpy(block + cls_len + 1, start[2], len[2]);
        block[cls_len + 1 + len[2]] = '\0';
        e[i] = (entry){block, block + cls_len + 1, src, &t->files[i]};
    }
    *out = e;
    return SM_OK;
}

static int entry_cmp(const void *pa, const void *pb)
{
    const entry *a = pa, *b = pb;
    int c = strcmp(a->cls, b->cls);
    if (c == 0) c = strcmp(a->file, b->file);
    if (c == 0) c = strcmp(a->source, b->source); /* same path under two ROOTs */
    return c;
}

/* Each requested alphabet must exist (the filter listed only those); one also excluded was
 * seen by the filter. */
static sm_status check_alphabets(const entry *e, size_t n, const selection *sel)
{
    for (size_t k = 0; k < sel->n_alphabets; k++) {
        const char *want = sel->alphabets[k];
        size_t wl = strlen(want);
        int found = name_index(sel->exclude, sel->n_exclude, want, wl) < sel->n_exclude;
        for (size_t i = 0; i < n && !found; i++)
            found = strncmp(e[i].cls, want, wl) == 0 && e[i].cls[wl] == '/';
        if (!found)
            return sm__fail(SM_ERR_DATASET, "alphabet '%s' not found in '%s'", want, sel->path);
    }
    return SM_OK;
}

static sm_status check_entries(const entry *e, size_t n, const char *path)
{
    if (n == 0)
        return sm__fail(SM_ERR_DATASET,
                        "no images in '%s' (expected ROOT/<Alphabet>/<character>/<image>.png)",
                        path);
    for (size_t i = 1; i < n; i++)
        if (strcmp(e[i].cls, e[0].cls) != 0) return SM_OK;
    return sm__fail(SM_ERR_DATASET, "'%s' holds a single class ('%s'); at least two are needed",
                    path, e[0].cls);
}

sm_status sm__png_decode_resized(const void *data, size_t size, const char *name, int height,
                                 int width, uint8_t *out)
{
    uint8_t *grey = NULL;
    int h = 0, w = 0;
    SM_TRY(sm__png_decode_any(data, size, name, &h, &w, &grey));
    size_t n = (size_t)h * (size_t)w, out_n = (size_t)height * (size_t)width;
    if (h == height && w == width) {
        memcpy(out, grey, out_n);
        sm__free(grey);
        return SM_OK;
    }
    float *full = sm__malloc(n * sizeof *full), *fitted = sm__malloc(out_n * sizeof *fitted);
    sm_status st =
        full && fitted ? SM_OK : sm__fail(SM_ERR_NOMEM, "out of memory resizing '%s'", name);
    if (st == SM_OK) {
        for (size_t i = 0; i < n; i++) full[i] = (float)grey[i] / 255.0f;
        st = sm__image_resize(full, (size_t)h, (size_t)w, fitted, (size_t)height, (size_t)width);
    }
    if (st == SM_OK)
        for (size_t i = 0; i < out_n; i++) out[i] = (uint8_t)((double)fitted[i] * 255.0 + 0.5);
    sm__free(fitted);
    sm__free(full);
    sm__free(grey);
    return st;
}

/* Reads and decodes every entry into a new dataset. */
static sm_status load_entries(const sm__tree *t, const entry *e, size_t n, int height, int width,
                              int resize, sm_dataset **out)
{
    sm_dataset *ds = NULL;
    SM_TRY(sm_dataset_create(height, width, &ds));
    sm_status st = sm__dataset_reserve(ds, n);
    uint8_t *pixels = st == SM_OK ? sm__malloc(ds->pixels_per_image) : NULL;
    if (st == SM_OK && !pixels) st = sm__fail(SM_ERR_NOMEM, "out of memory loading a dataset");
    for (size_t i = 0; i < n && st == SM_OK; i++) {
        uint8_t *data = NULL;
        size_t size = 0;
        st = sm__tree_read(t, e[i].tree_file, &data, &size);
        if (st == SM_OK)
            st = resize ? sm__png_decode_resized(data, size, e[i].source, height, width, pixels)
                        : sm__png_decode(data, size, e[i].source, height, width, pixels);
        if (st == SM_OK) st = sm__dataset_add_u8(ds, e[i].cls, pixels, e[i].source);
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

/* Checks the arguments of sm_dataset_open; 0x0 becomes 105x105. */
static sm_status check_open_args(const char *path, int *height, int *width,
                                 const char *const *alphabets, size_t n_alphabets, sm_dataset **out)
{
    SM_CHECK_ARG(path && out, "sm_dataset_open: NULL argument");
    SM_CHECK_ARG(n_alphabets == 0 || alphabets, "sm_dataset_open: alphabets is NULL");
    for (size_t k = 0; k < n_alphabets; k++)
        SM_CHECK_ARG(alphabets[k] && alphabets[k][0], "sm_dataset_open: alphabet %zu is empty", k);
    if (*height == 0 && *width == 0) *height = *width = 105;
    SM_CHECK_ARG(sm__side_ok(*height) && sm__side_ok(*width),
                 "sm_dataset_open: image size %dx%d out of range (1..%d each, or 0x0)", *width,
                 *height, SM__MAX_IMAGE_SIDE);
    return SM_OK;
}

static selection new_selection(const char *path, int height, int width,
                               const char *const *alphabets, size_t n_alphabets)
{
    size_t per = (size_t)height * (size_t)width;
    return (selection){
        alphabets, n_alphabets, sm__dataset_max_images(per), 0, path, height, width, NULL, 0,
        0,         NULL};
}

/* The second half of sm_dataset_open, once the images are listed (or listing failed). */
static sm_status finish_open(sm_status st, sm__tree *t, const selection *sel, sm_dataset **out)
{
    entry *e = NULL;
    if (st == SM_OK) st = make_entries(t, &e);
    for (size_t k = 0; st == SM_OK && k < sel->n_exclude; k++)
        if (!sel->exclude_seen[k])
            st = sm__fail(SM_ERR_DATASET, "excluded alphabet '%s' not found in '%s'%s",
                          sel->exclude[k], sel->path,
                          sel->n_alphabets ? " (among the selected alphabets)" : "");
    if (st == SM_OK && sel->n_alphabets > 0) st = check_alphabets(e, t->n, sel);
    if (st == SM_OK) {
        if (t->n > 1) qsort(e, t->n, sizeof *e, entry_cmp);
        st = check_entries(e, t->n, sel->path);
    }
    if (st == SM_OK) st = load_entries(t, e, t->n, sel->height, sel->width, sel->resize, out);
    entries_free(e, t->n);
    sm__tree_close(t);
    return st;
}

SM_API sm_status sm_dataset_open(const char *path, int height, int width,
                                 const char *const *alphabets, size_t n_alphabets, sm_dataset **out)
{
    SM_TRY(check_open_args(path, &height, &width, alphabets, n_alphabets, out));
    selection sel = new_selection(path, height, width, alphabets, n_alphabets);
    sm__tree t;
    sm_status st = sm__tree_open(path, "dataset", keep_layout_image, &sel, &t);
    return finish_open(st, &t, &sel, out);
}

SM_API sm_status sm_dataset_open_with(const char *path, int height, int width,
                                      const char *const *alphabets, size_t n_alphabets,
                                      const sm_dataset_options *options, sm_dataset **out)
{
    if (!options) return sm_dataset_open(path, height, width, alphabets, n_alphabets, out);
    sm_dataset_options o = SM_DATASET_OPTIONS_INIT;
    SM_TRY(sm__read_options("sm_dataset_open_with", "sm_dataset_options", "SM_DATASET_OPTIONS_INIT",
                            &o, sizeof o, options));
    SM_CHECK_ARG(o.resize == 0 || o.resize == 1, "sm_dataset_open_with: resize is %d (0 or 1)",
                 o.resize);
    SM_CHECK_ARG(o.n_exclude == 0 || o.exclude, "sm_dataset_open_with: exclude is NULL");
    for (size_t k = 0; k < o.n_exclude; k++)
        SM_CHECK_ARG(o.exclude[k] && o.exclude[k][0],
                     "sm_dataset_open_with: excluded alphabet %zu is empty", k);
    SM_TRY(check_open_args(path, &height, &width, alphabets, n_alphabets, out));
    selection sel = new_selection(path, height, width, alphabets, n_alphabets);
    sel.exclude = o.exclude, sel.n_exclude = o.n_exclude, sel.resize = o.resize;
    if (o.n_exclude && !(sel.exclude_seen = sm__calloc(o.n_exclude, 1)))
        return sm__fail(SM_ERR_NOMEM, "out of memory opening '%s'", path);
    sm__tree t;
    sm_status st = sm__tree_open(path, "dataset", keep_layout_image, &sel, &t);
    st = finish_open(st, &t, &sel, out);
    sm__free(sel.exclude_seen);
    return st;
}

sm_status sm__dataset_open_zip_buffer(const void *data, size_t size, const char *name, int height,
                                      int width, const char *const *alphabets, size_t n_alphabets,
                                      sm_dataset **out)
{
    SM_TRY(check_open_args(name, &height, &width, alphabets, n_alphabets, out));
    selection sel = new_selection(name, height, width, alphabets, n_alphabets);
    sm__tree t;
    sm_status st =
        sm__tree_open_zip_buffer(data, size, name, "dataset", keep_layout_image, &sel, &t);
    return finish_open(st, &t, &sel, out);
}

SM_API sm_status sm_image_read_png(const char *path, int height, int width, float *pixels)
{
    SM_CHECK_ARG(path && pixels, "sm_image_read_png: NULL argument");
    SM_CHECK_ARG(sm__side_ok(height) && sm__side_ok(width),
                 "sm_image_read_png: image size %dx%d out of range (1..%d each)", width, height,
                 SM__MAX_IMAGE_SIDE);
    size_t n = (size_t)height * (size_t)width;
    uint8_t *data = NULL, *bytes = NULL;
    size_t size = 0;
    SM_TRY(sm__file_read_all(path, sm__limit(SM_LIMIT_ENTRY_BYTES), "SM_LIMIT_ENTRY_BYTES", &data,
                             &size));
    bytes = sm__malloc(n);
    sm_status st = bytes ? sm__png_decode(data, size, path, height, width, bytes)
                         : sm__fail(SM_ERR_NOMEM, "out of memory reading '%s'", path);
    if (st == SM_OK)
        for (size_t i = 0; i < n; i++) pixels[i] = (float)bytes[i] / 255.0f;
    sm__free(bytes);
    sm__free(data);
    return st;
}
