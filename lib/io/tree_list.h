/* SPDX-License-Identifier: MIT */
/* Private: the files of a folder or a zip, listed under one set of rules, for every reader of
 * trees of files (datasets, one-shot runs). Readers then find and read files by their
 * relative path without knowing which of the two they came from.
 *
 * The rules, the same for a folder and a zip:
 *  - Paths are relative to the folder or the zip's top, '/'-separated, with no empty, leading
 *    or trailing component ("a//b" and "/a/b" in a zip are listed as "a/b").
 *  - Skipped, with everything below them: any component that starts with '.' (hidden files
 *    and folders, "." and "..") and any component named __MACOSX (macOS resource forks).
 *  - Only files are listed: zip entries ending in '/' and folders themselves are not.
 *    Symbolic links are followed, to files and to folders.
 *  - At most SM__TREE_MAX_DEPTH components: deeper files are skipped and deeper folders not
 *    entered (the bound also ends symbolic-link loops).
 *  - The caller's filter (on the relative path) decides which files are listed; it can also
 *    stop the listing with an error, to enforce its own limits before anything is allocated.
 *  - A folder entry that cannot be examined (a dangling link) is SM_ERR_IO naming it when the
 *    filter would list its path, and skipped otherwise: a wanted file must not silently go
 *    missing, but a broken link beside the data is none of its business.
 *  - At most SM__TREE_MAX_FILES files are listed: one more is SM_ERR_LIMIT.
 *  - The list is sorted by relative path (bytewise, strcmp), ties (a zip may repeat a name) by
 *    entry index, so nothing depends on the order of a file system or an archive. */
#ifndef SM_LIB_TREE_LIST_H
#define SM_LIB_TREE_LIST_H

#include <stddef.h>
#include <stdint.h>

#include "io/zip.h"

#define SM__TREE_MAX_DEPTH 8
#define SM__TREE_MAX_FILES ((size_t)1 << 20)

typedef struct sm__tree_file {
    char *rel;        /* relative path, as above */
    size_t zip_index; /* the zip entry; 0 in a folder */
} sm__tree_file;

typedef struct sm__tree {
    const char *path; /* as given (borrowed), for messages */
    char *folder;     /* the folder listed, or NULL for a zip */
    sm__zip *zip;     /* the zip listed, or NULL for a folder */
    sm__tree_file *files;
    size_t n, cap;
} sm__tree;

/* *keep = 1 lists the file `rel` (keep starts at 0). Any status but SM_OK (its message set)
 * stops the listing with that status. */
typedef sm_status (*sm__tree_filter)(void *ctx, const char *rel, int *keep);

/* Lists the folder or zip `path`; `what` names it in messages ("dataset", "one-shot runs").
 * SM_ERR_IO (missing, neither folder nor file, unreadable, a wanted dangling link),
 * SM_ERR_FORMAT (not a zip), SM_ERR_LIMIT, SM_ERR_NOMEM, or the filter's status. `*t` is
 * always filled: close it with sm__tree_close, whatever the status. */
sm_status sm__tree_open(const char *path, const char *what, sm__tree_filter filter, void *ctx,
                        sm__tree *t);
/* The same for a zip held in memory (borrowed: it must outlive the tree); `name` stands for its
 * path. */
sm_status sm__tree_open_zip_buffer(const void *data, size_t size, const char *name,
                                   const char *what, sm__tree_filter filter, void *ctx,
                                   sm__tree *t);
void sm__tree_close(sm__tree *t);

/* The listed file `rel` (the first of equal names), or NULL. */
const sm__tree_file *sm__tree_find(const sm__tree *t, const char *rel);
/* Reads a listed file whole (at most SM_LIMIT_ENTRY_BYTES) into a new buffer (free with
 * sm__free). The statuses of sm__file_read_all and sm__zip_read. */
sm_status sm__tree_read(const sm__tree *t, const sm__tree_file *f, uint8_t **data, size_t *size);
/* A new string naming the file in messages and image sources: "<folder>/<rel>" or
 * "<zip>:<rel>"; NULL when out of memory. */
char *sm__tree_source(const sm__tree *t, const sm__tree_file *f);

#endif
