/* SPDX-License-Identifier: MIT */
/* The candidate-index plug-in interface: the entry point of the run-time module index-faiss
 * (its sources are in index/faiss/), versioned by SM_INDEX_MODULE_ABI. A module builds an
 * approximate nearest-neighbour index under the L1 distance over rows the core hands it, and
 * answers, per query, the ids of the rows it finds nearest; the core (lib/gallery/) turns those
 * into candidate labels and scores them exactly with the head. The module knows nothing of
 * galleries, heads or labels. */
#ifndef SM_PLUGIN_INDEX_PLUGIN_H
#define SM_PLUGIN_INDEX_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#define SM_INDEX_MODULE_ABI 1

/* What a module's calls return. */
enum { SM_INDEX_OK = 0, SM_INDEX_FAILED = 1, SM_INDEX_NOMEM = 2 };

/* The structures an index can have (the values of the public sm_gallery_index_kind). */
enum { SM_INDEX_HNSW = 1, SM_INDEX_IVF = 2 };

typedef struct sm_index_build_args {
    uint32_t abi;       /* SM_INDEX_MODULE_ABI */
    int kind;           /* SM_INDEX_HNSW or SM_INDEX_IVF, parameters below checked by the core */
    size_t n, dim;      /* rows, floats per row: n >= 1, dim >= 1 */
    const float *rows;  /* n x dim, host, finite; the module copies what it keeps */
    uint32_t hnsw_m;    /* HNSW: neighbours per node */
    uint32_t hnsw_ef_construction; /* HNSW: the candidate list while linking a node */
    uint32_t ivf_lists; /* IVF: inverted lists (k-means centroids), 1 .. n */
    uint64_t seed;      /* IVF: k-means's sampling and initial centroids */
    int threads;        /* OpenMP threads for the build (1: reproducible, see the module) */
} sm_index_build_args;

typedef struct sm_index_search_args {
    size_t n_queries;
    const float *queries; /* n_queries x dim, host */
    size_t k;             /* ids wanted per query, >= 1 */
    uint32_t effort;      /* HNSW: efSearch (the module uses at least k); IVF: lists probed */
    int threads;          /* OpenMP threads over the queries (each query alone: the answers
                             do not depend on it) */
    int64_t *ids;         /* out: n_queries x k, nearest first; -1 where fewer were found */
    float *distances;     /* out: n_queries x k, the L1 distances of ids */
} sm_index_search_args;

/* A module's table. Every slot is required. Calls on different indexes may run at once; search
 * only reads its index (any number of threads at once); build and destroy are the caller's to
 * order. On failure a call writes why into err (at most err_cap bytes, NUL-terminated). */
typedef struct sm_index_module_ops {
    uint32_t abi;     /* SM_INDEX_MODULE_ABI as the module was built */
    const char *name; /* the library and its version, for messages: "faiss 1.7.3" */
    int (*build)(const sm_index_build_args *args, void **index, char *err, size_t err_cap);
    int (*search)(const void *index, const sm_index_search_args *args, char *err,
                  size_t err_cap);
    size_t (*bytes)(const void *index); /* memory the index holds, about */
    void (*destroy)(void *index);       /* NULL: no-op */
} sm_index_module_ops;

/* Fills `ops` (abi included) and returns 0, or non-zero when the module cannot serve a core
 * of ABI `abi`. The one symbol a module exports. */
typedef int (*sm_index_module_entry_fn)(uint32_t abi, sm_index_module_ops *ops);
int sm_index_module_entry(uint32_t abi, sm_index_module_ops *ops);

#endif
