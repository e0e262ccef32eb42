/* SPDX-License-Identifier: MIT */
/* sm_gallery_enrol_path: every PNG below a folder or in a zip, listed by the one tree walker
 * (tree_list.c, the datasets' and runs' rules), labelled by its folders, decoded by the grey
 * rule and resized to the model's input, embedded in the backend's preferred chunks. */
#include <string.h>

#include "common/alloc.h"
#include "common/error.h"
#include "data/dataset.h"
#include "data/image.h"
#include "gallery/gallery.h"
#include "io/tree_list.h"

/* The label of a relative path: its last two folders ("Alphabet/character"), or its one folder;
 * 0 (no label) for a file at the top. */
static int label_of(const char *rel, char *out, size_t cap)
{
    const char *last = strrchr(rel, '/');
    if (!last) return 0;
    const char *start = rel, *prev = NULL;
    for (const char *p = rel; p < last; p++)
        if (*p == '/') prev = p;
    if (prev) { /* at least two folders: from the one before the last */
        const char *pp = NULL;
        for (const char *p = rel; p < prev; p++)
            if (*p == '/') pp = p;
        start = pp ? pp + 1 : rel;
    }
    size_t len = (size_t)(last - start);
    if (len + 1 > cap) len = cap - 1; /* checked against the limit by the caller */
    memcpy(out, start, len);
    out[len] = 0;
    return 1;
}

static int is_png(const char *rel)
{
    size_t n = strlen(rel);
    if (n < 4) return 0;
    const char *e = rel + n - 4;
    return e[0] == '.' && (e[1] | 32) == 'p' && (e[2] | 32) == 'n' && (e[3] | 32) == 'g';
}

static sm_status filter(void *ctx, const char *rel, int *keep)
{
    (void)ctx;
    *keep = is_png(rel) && strchr(rel, '/') != NULL;
    return SM_OK;
}

/* Refuses the features of files [first, first + m) when one lies outside [0, 1]: the PNGs
 * decode to good pixels, so a NaN there is the model's (sm__gallery_embed says the same). */
static sm_status check_embedded(const sm_gallery *g, const sm__tree *t, size_t first, size_t m,
                                const float *feat)
{
    size_t bad = sm__gallery_first_bad(m * g->dim, feat);
    if (bad == SIZE_MAX) return SM_OK;
    char *src = sm__tree_source(t, &t->files[first + bad / g->dim]);
    sm_status st =
        sm__fail(SM_ERR_NUMERIC,
                 "sm_gallery_enrol_path: the model embeds '%s' as a "
                 "feature vector holding %g at %zu, not in [0, 1]: "
                 "the subnet's parameters are not finite",
                 src ? src : t->files[first + bad / g->dim].rel, (double)feat[bad], bad % g->dim);
    sm__free(src);
    return st;
}

/* Appends the images of files [first, first + m) (host features `feat`) in runs of one label. */
static sm_status append_runs(sm_gallery *g, const sm__tree *t, size_t first, size_t m,
                             const float *feat)
{
    char a[SM_GALLERY_MAX_LABEL + 2], b[SM_GALLERY_MAX_LABEL + 2];
    for (size_t i = 0; i < m;) {
        label_of(t->files[first + i].rel, a, sizeof a);
        size_t r = 1;
        while (i + r < m && label_of(t->files[first + i + r].rel, b, sizeof b) && strcmp(a, b) == 0)
            r++;
        SM_TRY(sm__gallery_append(g, a, r, feat + i * g->dim));
        i += r;
    }
    return SM_OK;
}

static sm_status enrol_tree(sm_gallery *g, const sm__tree *t)
{
    const sm_arch *arch = &g->subnet->arch;
    const size_t px = sm__arch_in_size(arch), chunk = sm__subnet_embed_chunk(g->subnet);
    char label[SM_GALLERY_MAX_LABEL + 2];
    for (size_t i = 0; i < t->n; i++) {
        const char *rel = t->files[i].rel;
        const char *last = strrchr(rel, '/');
        label_of(rel, label, sizeof label);
        size_t len = strlen(label);
        /* a label cut to the buffer is over the limit: report its full length */
        if (len > SM_GALLERY_MAX_LABEL) len = (size_t)(last - rel);
        SM_TRY(sm__gallery_check_label("sm_gallery_enrol_path", label, len));
    }
    uint8_t *u8 = sm__malloc(px);
    float *img = sm__malloc(chunk * px * sizeof *img);
    float *feat = sm__malloc(chunk * g->dim * sizeof *feat);
    sm_status st =
        u8 && img && feat ? SM_OK : sm__fail(SM_ERR_NOMEM, "out of memory enrolling '%s'", t->path);
    for (size_t off = 0; off < t->n && st == SM_OK; off += chunk) {
        size_t m = t->n - off < chunk ? t->n - off : chunk;
        for (size_t i = 0; i < m && st == SM_OK; i++) {
            const sm__tree_file *f = &t->files[off + i];
            uint8_t *data = NULL;
            size_t size = 0;
            char *src = sm__tree_source(t, f);
            st = src ? sm__tree_read(t, f, &data, &size)
                     : sm__fail(SM_ERR_NOMEM, "out of memory enrolling '%s'", t->path);
            if (st == SM_OK)
                st = sm__png_decode_resized(data, size, src, arch->in_h, arch->in_w, u8);
            for (size_t k = 0; k < px && st == SM_OK; k++) img[i * px + k] = u8[k] / 255.0f;
            sm__free(data);
            sm__free(src);
        }
        if (st == SM_OK) st = sm_embed(g->subnet, m, img, feat);
        if (st == SM_OK) st = check_embedded(g, t, off, m, feat);
        if (st == SM_OK) st = append_runs(g, t, off, m, feat);
    }
    sm__free(u8), sm__free(img), sm__free(feat);
    return st;
}

SM_API sm_status sm_gallery_enrol_path(sm_gallery *g, const char *path, size_t *n_enrolled)
{
    SM_CHECK_ARG(g && path, "sm_gallery_enrol_path: NULL argument");
    const sm_arch *arch = &g->subnet->arch;
    SM_RETURN_IF(arch->in_c != 1, SM_ERR_SHAPE,
                 "sm_gallery_enrol_path: the model takes %d channels; PNGs are read as grey "
                 "images (1 channel)",
                 arch->in_c);
    sm__tree t;
    sm_status st = sm__tree_open(path, "gallery folder", filter, NULL, &t);
    if (st == SM_OK && t.n == 0)
        st = sm__fail(SM_ERR_DATASET,
                      "'%s' holds no PNG in a folder (label/*.png or "
                      "Alphabet/character/*.png)",
                      path);
    if (st == SM_OK && t.n > SM__GALLERY_MAX_EXAMPLES - g->n)
        st = sm__fail(SM_ERR_LIMIT, "a gallery holds at most 2^31 - 1 examples");
    const size_t n0 = g->n, l0 = g->n_labels;
    if (st == SM_OK) st = enrol_tree(g, &t);
    if (st != SM_OK) sm__gallery_truncate(g, n0, l0);
    if (st == SM_OK && n_enrolled) *n_enrolled = t.n;
    sm__tree_close(&t);
    return st;
}
