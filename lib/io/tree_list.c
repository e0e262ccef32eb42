/* SPDX-License-Identifier: MIT */
/* One lister for folders and zips: the rules are in tree_list.h. */
#include "io/tree_list.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/alloc.h"
#include "common/error.h"
#include "common/limits.h"
#include "io/file_read.h"

/* Hidden files and folders (".", ".." too) and macOS resource forks are never data. */
static int skipped_component(const char *name, size_t len)
{
    return (len > 0 && name[0] == '.') || (len == 8 && memcmp(name, "__MACOSX", 8) == 0);
}

/* "a" + "/" + "b" in a new string; "data/" gives "data/x", "/" gives "/x", "" gives "x". */
static char *join(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    while (la > 1 && a[la - 1] == '/') la--;
    if (la == 0) return sm__strdup(b);
    int root = la == 1 && a[0] == '/';
    char *s = sm__malloc(la + 1 + lb + 1);
    if (!s) return NULL;
    memcpy(s, a, la);
    size_t at = root ? 1 : la + 1;
    if (!root) s[la] = '/';
    memcpy(s + at, b, lb + 1);
    return s;
}

/* Lists `rel` (taken over: freed on failure) unless the filter declines it. */
static sm_status add_file(sm__tree *t, const char *what, char *rel, size_t zip_index,
                          sm__tree_filter filter, void *ctx)
{
    int keep = filter ? 0 : 1;
    sm_status st = filter ? filter(ctx, rel, &keep) : SM_OK;
    if (st == SM_OK && keep && t->n >= SM__TREE_MAX_FILES)
        st = sm__fail(SM_ERR_LIMIT, "%s '%s' holds more than %zu files", what, t->path,
                      SM__TREE_MAX_FILES);
    if (st == SM_OK && keep && t->n == t->cap) {
        size_t cap = t->cap ? 2 * t->cap : 64;
        sm__tree_file *f = sm__realloc(t->files, cap * sizeof *f);
        if (f) {
            t->files = f;
            t->cap = cap;
        } else {
            st = sm__fail(SM_ERR_NOMEM, "out of memory listing '%s'", t->path);
        }
    }
    if (st != SM_OK || !keep) {
        sm__free(rel);
        return st;
    }
    t->files[t->n++] = (sm__tree_file){rel, zip_index};
    return SM_OK;
}

/* ------------------------------------------------------------------ folders */

typedef struct walk_ctx {
    sm__tree *t;
    const char *what;
    sm__tree_filter filter;
    void *ctx;
} walk_ctx;

static sm_status walk(const walk_ctx *w, const char *dir, const char *rel, int depth);

/* An entry that cannot be examined: an error only when its path is one the caller wants. */
static sm_status unreadable(const walk_ctx *w, const char *path, const char *sub, int err)
{
    int keep = w->filter ? 0 : 1;
    if (w->filter) SM_TRY(w->filter(w->ctx, sub, &keep));
    return keep ? sm__fail(SM_ERR_IO, "cannot read '%s': %s", path, strerror(err)) : SM_OK;
}

/* One entry of `dir`, `depth` components deep: recurses into folders, lists files. */
static sm_status visit(const walk_ctx *w, const char *dir, const char *rel, const char *name,
                       int depth)
{
    char *path = join(dir, name);
    char *sub = join(rel, name);
    sm_status st = SM_OK;
    struct stat sb;
    if (!path || !sub) {
        st = sm__fail(SM_ERR_NOMEM, "out of memory listing '%s'", dir);
    } else if (stat(path, &sb) != 0) {
        st = unreadable(w, path, sub, errno);
    } else if (S_ISDIR(sb.st_mode)) {
        if (depth < SM__TREE_MAX_DEPTH) st = walk(w, path, sub, depth);
    } else if (S_ISREG(sb.st_mode)) {
        st = add_file(w->t, w->what, sub, 0, w->filter, w->ctx);
        sub = NULL; /* taken over */
    }
    sm__free(path);
    sm__free(sub);
    return st;
}

/* Lists folder `dir`, whose relative path `rel` has `depth` components. */
static sm_status walk(const walk_ctx *w, const char *dir, const char *rel, int depth)
{
    DIR *d = opendir(dir);
    if (!d) return sm__fail(SM_ERR_IO, "cannot read folder '%s': %s", dir, strerror(errno));
    sm_status st = SM_OK;
    while (st == SM_OK) {
        errno = 0;
        struct dirent *de = readdir(d);
        if (!de) {
            if (errno)
                st = sm__fail(SM_ERR_IO, "cannot read folder '%s': %s", dir, strerror(errno));
            break;
        }
        if (skipped_component(de->d_name, strlen(de->d_name))) continue;
        st = visit(w, dir, rel, de->d_name, depth + 1);
    }
    closedir(d);
    return st;
}

/* ------------------------------------------------------------------ zips */

/* The entry name under the rules: a new string, or NULL with *skip set (or NOMEM: neither). */
static char *zip_rel(const char *name, int *skip)
{
    *skip = 1;
    size_t len = strlen(name);
    if (len == 0 || name[len - 1] == '/') return NULL; /* folder entries */
    int depth = 0;
    for (const char *p = name; *p;) {
        const char *e = strchr(p, '/');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (skipped_component(p, n)) return NULL;
        depth += n > 0;
        p += n + (e ? 1 : 0);
    }
    if (depth == 0 || depth > SM__TREE_MAX_DEPTH) return NULL;
    *skip = 0;
    char *rel = sm__malloc(len + 1), *o = rel;
    if (!rel) return NULL;
    for (const char *p = name; *p; p++) /* drops empty components */
        if (*p != '/' || (o > rel && o[-1] != '/')) *o++ = *p;
    *o = '\0';
    return rel;
}

static sm_status list_zip(sm__tree *t, const char *what, sm__tree_filter filter, void *ctx)
{
    size_t n = sm__zip_num_entries(t->zip);
    for (size_t i = 0; i < n; i++) {
        const char *name = sm__zip_entry_name(t->zip, i);
        if (!name) continue;
        int skip;
        char *rel = zip_rel(name, &skip);
        if (skip) continue;
        if (!rel) return sm__fail(SM_ERR_NOMEM, "out of memory listing zip '%s'", t->path);
        SM_TRY(add_file(t, what, rel, i, filter, ctx));
    }
    return SM_OK;
}

/* ------------------------------------------------------------------ the list */

static int file_cmp(const void *pa, const void *pb)
{
    const sm__tree_file *a = pa, *b = pb;
    int c = strcmp(a->rel, b->rel);
    if (c != 0) return c;
    return a->zip_index < b->zip_index ? -1 : a->zip_index > b->zip_index;
}

static sm_status finish(sm__tree *t, sm_status st)
{
    if (st == SM_OK && t->n > 1) qsort(t->files, t->n, sizeof *t->files, file_cmp);
    return st;
}

sm_status sm__tree_open(const char *path, const char *what, sm__tree_filter filter, void *ctx,
                        sm__tree *t)
{
    memset(t, 0, sizeof *t);
    t->path = path;
    struct stat sb;
    if (stat(path, &sb) != 0)
        return sm__fail(SM_ERR_IO, "cannot open %s '%s': %s", what, path, strerror(errno));
    if (S_ISREG(sb.st_mode)) {
        SM_TRY(sm__zip_open(path, &t->zip));
        return finish(t, list_zip(t, what, filter, ctx));
    }
    if (!S_ISDIR(sb.st_mode))
        return sm__fail(SM_ERR_IO, "%s '%s' is neither a folder nor a file", what, path);
    t->folder = sm__strdup(path);
    if (!t->folder) return sm__fail(SM_ERR_NOMEM, "out of memory listing '%s'", path);
    walk_ctx w = {t, what, filter, ctx};
    return finish(t, walk(&w, path, "", 0));
}

sm_status sm__tree_open_zip_buffer(const void *data, size_t size, const char *name,
                                   const char *what, sm__tree_filter filter, void *ctx, sm__tree *t)
{
    memset(t, 0, sizeof *t);
    t->path = name;
    SM_TRY(sm__zip_open_buffer(data, size, name, &t->zip));
    return finish(t, list_zip(t, what, filter, ctx));
}

void sm__tree_close(sm__tree *t)
{
    for (size_t i = 0; i < t->n; i++) sm__free(t->files[i].rel);
    sm__free(t->files);
    sm__free(t->folder);
    sm__zip_close(t->zip);
    memset(t, 0, sizeof *t);
}

const sm__tree_file *sm__tree_find(const sm__tree *t, const char *rel)
{
    size_t lo = 0, hi = t->n; /* the first entry not below rel */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (strcmp(t->files[mid].rel, rel) < 0) lo = mid + 1;
        else hi = mid;
    }
    return lo < t->n && strcmp(t->files[lo].rel, rel) == 0 ? &t->files[lo] : NULL;
}

char *sm__tree_source(const sm__tree *t, const sm__tree_file *f)
{
    if (t->folder) return join(t->folder, f->rel);
    size_t n = strlen(t->path) + 1 + strlen(f->rel) + 1;
    char *s = sm__malloc(n);
    if (s) snprintf(s, n, "%s:%s", t->path, f->rel);
    return s;
}

sm_status sm__tree_read(const sm__tree *t, const sm__tree_file *f, uint8_t **data, size_t *size)
{
    if (t->zip) return sm__zip_read(t->zip, f->zip_index, data, size);
    char *full = join(t->folder, f->rel);
    if (!full) return sm__fail(SM_ERR_NOMEM, "out of memory reading '%s'", f->rel);
    sm_status st = sm__file_read_all(full, sm__limit(SM_LIMIT_ENTRY_BYTES), "SM_LIMIT_ENTRY_BYTES",
                                     data, size);
    sm__free(full);
    return st;
}
