/* SPDX-License-Identifier: MIT */
/* Private: candidate indexes over a gallery (include/siamese/gallery_index.h).
 * gallery_index_module.c loads the index module; gallery_index.c builds an index (the head's
 * split into indexed and positive dimensions, the rows handed to the module, the label lists);
 * gallery_index_search.c answers queries (candidates from the module, exact scores of the
 * labels they name, the top k). */
#ifndef SM_LIB_GALLERY_INDEX_H
#define SM_LIB_GALLERY_INDEX_H

#include <stddef.h>
#include <stdint.h>

#include "gallery/gallery.h"
#include "plugin/index_plugin.h"
#include "siamese/gallery_index.h"

struct sm_gallery_index {
    const sm_gallery *g;
    uint64_t generation; /* the gallery's at the build */
    const sm_index_module_ops *ops;
    void *handle; /* the module's index */
    int32_t kind;
    uint32_t candidates, effort, ivf_lists;

    size_t n, n_labels, dim; /* the gallery's at the build */
    float *w;                /* dim weights, then the bias: the head at the build */
    size_t n_idx;            /* dimensions in the index (w_d < 0) */
    uint32_t *idx_dim;       /* n_idx: which */
    size_t dims_positive;
    double positive_weight;     /* the sum of the positive weights */
    size_t *label_start;        /* n_labels + 1: label l's examples are */
    uint32_t *label_examples;   /* label_examples[label_start[l] .. label_start[l + 1]] */
};

/* The index module's table, loaded once per process. SM_ERR_BACKEND_UNAVAILABLE naming the file
 * and why; SM_ERR_VERSION for another interface version. */
sm_status sm__index_module(const sm_index_module_ops **out);

/* A module's status as the library's: SM_INDEX_NOMEM is SM_ERR_NOMEM, a failure SM_ERR_INTERNAL
 * with the module's reason. */
sm_status sm__index_status(const sm_gallery_index *ix, int rc, const char *fn, const char *err);

/* `n` feature vectors (host, n x dim) as the index sees them: |w_d| f_d over the indexed
 * dimensions, into out (n x n_idx). */
void sm__index_project(const sm_gallery_index *ix, size_t n, const float *feat, float *out);

#endif
