/* SPDX-License-Identifier: MIT */
/* libsiamese: approximate identification for large galleries: a candidate index (HNSW or IVF,
 * from the run-time module index-faiss) proposes the examples nearest to a query, and the
 * labels they name are then scored exactly with the head, as sm_gallery_identify scores them.
 * Part of the API <siamese/siamese.h> includes. Since 0.5.
 *
 * sm_gallery_identify stays exact (every example scored); this search is opt-in, by its own
 * calls. Why it works: a head's score, sigmoid(w . |F_q - F_i| + b), falls as the weighted L1
 * distance sum over {d: w_d < 0} of |w_d| |F_q,d - F_i,d| grows, so the index holds the vectors
 * |w_d| F_i,d over the dimensions with negative weights and finds the examples nearest under
 * L1. Dimensions with positive weights (the score rises with their distance) are left out of
 * the index: they move each example's score by at most sum of those w_d, and the exact
 * re-scoring counts them. Each label the candidates name gets its exact score, the mean over
 * ALL its examples (not only the candidates), and the top k of those labels is the answer.
 *
 * When it equals sm_gallery_identify: with every w_d <= 0, one example per label and an index
 * that finds the true nearest examples (more effort, more candidates), the top k is exact. It
 * can miss a label (a) that the index does not find (approximate search: recall below 1),
 * (b) whose examples are not among the nearest though its score is high, because positive
 * weights raise it, or because a label's mean over many examples ranks differently from its
 * nearest example. docs/gallery.md measures the recall.
 *
 * Ranks and ties (sm_gallery_match's rank and tied) are counted among the labels the
 * candidates name, the only ones scored: rank 1 is the best of those.
 *
 * The index is built from a gallery as it is at that moment, and refuses queries once the
 * gallery has changed (an enrolment or removal since, SM_ERR_STATE): build it again.
 *
 * Threads: building reads the gallery (no other thread may modify it meanwhile). Queries read
 * the index and the gallery: any number of threads may query at once (the module runs their
 * index searches one at a time, and the exact scoring in parallel); sm_gallery_index_set_search
 * modifies the index (no query meanwhile). An index is not saved to files: build it after
 * sm_gallery_load.
 *
 * Determinism: with build_threads 1 (the default) the same gallery and options give the same
 * index, and so the same answers, run after run. Every query on one index gives the same answer
 * whatever the thread counts. More build threads build faster, but HNSW then links nodes in an
 * order that depends on timing: answers may differ between builds. */
#ifndef SIAMESE_GALLERY_INDEX_H
#define SIAMESE_GALLERY_INDEX_H

#include "siamese/common.h"
#include "siamese/gallery.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sm_gallery_index sm_gallery_index;

/** The structure of an index. 0 stands for the default, SM_GALLERY_INDEX_HNSW. */
typedef enum sm_gallery_index_kind {
    /** a graph of neighbours (faiss HNSW): the best recall per query time; builds slowest */
    SM_GALLERY_INDEX_HNSW = 1,
    /** inverted lists around k-means centroids (faiss IVF): builds fast; needs more probes */
    SM_GALLERY_INDEX_IVF = 2
} sm_gallery_index_kind;

/** Options of sm_gallery_index_build. The caller sets `struct_size` to
 *  sizeof(sm_gallery_index_options) (SM_GALLERY_INDEX_OPTIONS_INIT does it, every other field 0);
 *  the library reads only the fields that fit in it and counts the others as 0, so later
 *  versions can append fields. Every 0 means the default given beside it. */
typedef struct sm_gallery_index_options {
    size_t struct_size;     /* set by the caller */
    int32_t kind;           /* sm_gallery_index_kind; 0: HNSW */
    uint32_t candidates;    /* examples the index proposes per query, 1 .. 65536; 0: 256 */
    uint32_t effort;        /* search effort per query: HNSW's efSearch (at least candidates
                               is used), 1 .. 65536, 0: 2 x candidates; IVF's lists probed,
                               1 .. ivf_lists, 0: 32 (at most ivf_lists) */
    uint32_t hnsw_m;        /* HNSW neighbours per node, 2 .. 256; 0: 32 */
    uint32_t hnsw_ef_construction; /* HNSW effort while linking a node, 1 .. 65536; 0: 80 */
    uint32_t ivf_lists;     /* IVF lists, 1 .. examples; 0: about 4 sqrt(examples) */
    uint32_t build_threads; /* threads for the build, 1 .. 1024; 0: 1 (reproducible) */
    uint32_t reserved0;     /* 0 */
    uint64_t seed;          /* IVF k-means's sampling (the low 31 bits); 0: 1234 */
} sm_gallery_index_options;

#define SM_GALLERY_INDEX_OPTIONS_INIT                                                              \
    {                                                                                              \
        sizeof(sm_gallery_index_options), 0, 0, 0, 0, 0, 0, 0, 0, 0                                \
    }

/** What an index holds, by sm_gallery_index_info. The caller sets `struct_size` to
 *  sizeof(sm_gallery_index_stats); the library fills the fields that fit in it. */
typedef struct sm_gallery_index_stats {
    size_t struct_size;       /* set by the caller */
    int32_t kind;             /* the kind built */
    uint32_t candidates;      /* as used (defaults resolved) */
    uint32_t effort;          /* as used */
    uint32_t ivf_lists;       /* as used; 0 for HNSW */
    size_t examples;          /* the gallery's examples when it was built */
    size_t dims_indexed;      /* feature dimensions with a negative weight: in the index */
    size_t dims_positive;     /* with a positive weight: left to the exact scoring */
    double positive_weight;   /* the sum of the positive weights: the most they add to a
                                 logit (0: none, every example's order by the index's
                                 distance is the order of its score) */
    size_t bytes;             /* memory the index holds, about (the module's structures and
                                 the label lists) */
} sm_gallery_index_stats;

/** SM_OK when the index module can be loaded here (it is loaded once per process), else
 *  SM_ERR_BACKEND_UNAVAILABLE saying why (not built: meson option -Dindex-faiss, Debian
 *  libfaiss-dev; or its file or a library it needs is missing; the module is looked for where
 *  the backend modules are, SIAMESE_BACKEND_DIR first) or SM_ERR_VERSION (a module of another
 *  interface version). Any thread. */
SM_API sm_status sm_gallery_index_available(void);

/** Builds a candidate index over the gallery's examples as they are now (the gallery is
 *  borrowed: it must outlive the index; read the header on changes). `options` may be NULL
 *  (every default). Reads every feature vector once from the gallery's backend, and the head's
 *  weights. Statuses: SM_ERR_INVALID_ARG (NULL, a struct_size under sizeof(size_t), an unknown
 *  kind, a parameter outside its range, reserved0 not 0), SM_ERR_STATE (an empty gallery),
 *  SM_ERR_UNSUPPORTED (a head with no negative weight: no distance orders its scores),
 *  SM_ERR_BACKEND_UNAVAILABLE, SM_ERR_VERSION (as sm_gallery_index_available),
 *  SM_ERR_NOMEM, SM_ERR_DEVICE, SM_ERR_INTERNAL (the index library failed, saying why).
 *  *out is written only on success. */
SM_API sm_status sm_gallery_index_build(const sm_gallery *gallery,
                                        const sm_gallery_index_options *options,
                                        sm_gallery_index **out);
/** Frees an index. NULL: no-op. */
SM_API void sm_gallery_index_destroy(sm_gallery_index *index);

/** Changes the search parameters of a built index, as the options' `candidates` and `effort`
 *  (0: their defaults): to trade recall for speed without building again. Modifies the index:
 *  no query may run on it meanwhile. SM_ERR_INVALID_ARG (NULL, a value outside its range). */
SM_API sm_status sm_gallery_index_set_search(sm_gallery_index *index, uint32_t candidates,
                                             uint32_t effort);

/** Fills `stats` (as far as its struct_size reaches). SM_ERR_INVALID_ARG (NULL, struct_size
 *  under sizeof(size_t)). */
SM_API sm_status sm_gallery_index_info(const sm_gallery_index *index,
                                       sm_gallery_index_stats *stats);

/** sm_gallery_identify through the index: the `k` best labels among those the candidates name
 *  (read the header), with their exact scores, into matches[q * k ...]. A query whose
 *  candidates name fewer than min(k, labels) labels asks the index again for twice as many,
 *  and so on up to the gallery's size (then every label is scored): `*n_found` (optional)
 *  receives min(k, labels), as from sm_gallery_identify. Statuses as sm_gallery_identify, and
 *  SM_ERR_STATE (the gallery changed since the build: build the index again), SM_ERR_INTERNAL
 *  (the index library failed, saying why). */
SM_API sm_status sm_gallery_index_identify(const sm_gallery_index *index, size_t n_queries,
                                           const float *queries, size_t k,
                                           sm_gallery_match *matches, size_t *n_found);
/** sm_gallery_index_identify from feature vectors (sm_embed of the gallery's model). A value
 *  outside [0, 1], NaN or infinite included, is SM_ERR_INVALID_ARG naming the query. */
SM_API sm_status sm_gallery_index_identify_embeddings(const sm_gallery_index *index,
                                                      size_t n_queries, const float *features,
                                                      size_t k, sm_gallery_match *matches,
                                                      size_t *n_found);

#ifdef __cplusplus
}
#endif

#endif
