/* SPDX-License-Identifier: MIT */
/* Private: the gallery as the core sees it (gallery.c: labels and enrolment; gallery_storage.c:
 * the storage types' codecs; gallery_score.c: scores of queries against rows; gallery_search.c:
 * identification and verification; gallery_file.c: files; gallery_enrol_path.c: folders and
 * zips).
 *
 * Feature vectors live in one backend buffer of `cap` rows in the gallery's storage type, grown
 * by doubling (through the host: the backend table has no device-to-device copy), or, after
 * sm_gallery_load_with on a host-memory backend, in place in a mapped file (read-only: the
 * first modification copies them into a buffer, gallery.c). Labels keep the order of their
 * first enrolment (their index), with a hash table from name to index. */
#ifndef SM_LIB_GALLERY_H
#define SM_LIB_GALLERY_H

#include <stddef.h>
#include <stdint.h>

#include "io/file_map.h"
#include "network/network.h"
#include "siamese/siamese.h"

#define SM__GALLERY_MAX_EXAMPLES ((size_t)INT32_MAX) /* row counts reach the backend as int */

struct sm_gallery {
    const sm_subnet *subnet;
    const sm_head *head;
    sm_backend *be;
    size_t dim;        /* feature size */
    uint64_t model_id; /* sm__model_id of subnet + head */
    char *arch;        /* the subnet's architecture text */

    sm_storage_type storage; /* how rows are stored (gallery_storage.c) */
    size_t row_bytes;        /* bytes per stored row: dim x the element's size */
    void *rows;              /* cap rows: a backend buffer, or inside `map` */
    float *qp;               /* U8: backend buffer, cap x (offset, scale); else NULL */
    sm__mapped_file *map;    /* the mapped file `rows` points into (read-only), or NULL */
    size_t n, cap;           /* examples, rows allocated (mapped: cap = n) */
    uint32_t *example_label; /* host: per example, its label index */

    char **labels;   /* per label index */
    size_t *label_n; /* examples per label */
    size_t n_labels, cap_labels;
    uint32_t *hash; /* open addressing: label index + 1, 0 = empty; hash_cap a power of 2 */
    size_t hash_cap;

    uint64_t generation; /* counts the changes of the examples and labels: an index built at
                            one generation refuses queries at another (gallery_index.h) */
};

/* A 64-bit fingerprint of a model: FNV-1a over its architecture text, then every parameter of
 * the subnet and the head as little-endian float32 bytes. */
sm_status sm__model_id(const sm_subnet *s, const sm_head *h, uint64_t *id);

/* A label the gallery accepts: non-empty, at most SM_GALLERY_MAX_LABEL bytes, UTF-8.
 * SM_ERR_INVALID_ARG or SM_ERR_LIMIT naming `fn`. */
sm_status sm__gallery_check_label(const char *fn, const char *label, size_t len);
/* The index of the first of `count` floats outside [0, 1], NaN and infinities included, or
 * SIZE_MAX: the rule the loader applies to a file's rows (gallery_file.c). Every enrolment checks
 * its rows with it, so a gallery never holds a row that scores NaN or makes its file unloadable. */
size_t sm__gallery_first_bad(size_t count, const float *f);
/* Appends `n` feature vectors (host, n x dim, already checked by sm__gallery_first_bad) under
 * `label`, all or nothing, stored in the gallery's type. */
sm_status sm__gallery_append(sm_gallery *g, const char *label, size_t n, const float *feat);
/* The same from rows already in the storage type (host: n x row_bytes, and for U8 n x (offset,
 * scale) in `qp`), as a file holds them. rows NULL: the rows are in place already (a mapped
 * gallery that gallery_file.c labels as it loads; cap must hold them). */
sm_status sm__gallery_append_stored(sm_gallery *g, const char *label, size_t n, const void *rows,
                                    const float *qp);
/* Before a modification: a mapped gallery copies its rows into a backend buffer of its own (at
 * least `cap` rows) and drops the mapping; others are left alone. All or nothing. */
sm_status sm__gallery_own_rows(sm_gallery *g, size_t cap);
/* Undoes appends: keeps the first `n_examples` examples and `n_labels` labels (those that
 * existed before the appends: new labels come last). Cannot fail. */
void sm__gallery_truncate(sm_gallery *g, size_t n_examples, size_t n_labels);
/* Embeds `n` images (checked: values in [0, 1]) into `feat` (host, n x dim). A feature outside
 * [0, 1] (a model with non-finite parameters gives NaN) is SM_ERR_NUMERIC naming the image. */
sm_status sm__gallery_embed(const sm_gallery *g, const char *fn, size_t n, const float *images,
                            float *feat);
/* The same for images numbered from `first` in messages (a group of a larger call). */
sm_status sm__gallery_embed_at(const sm_gallery *g, const char *fn, size_t first, size_t n,
                               const float *images, float *feat);
/* An empty gallery for the model, with its fingerprint and architecture text, storing rows as
 * `storage`. */
sm_status sm__gallery_new(const sm_subnet *s, const sm_head *h, sm_storage_type storage,
                          sm_gallery **out);

/* sm_gallery_load on a file held in memory (`name` stands for its path in messages), with
 * sm_gallery_load_with's options (NULL: the defaults). `map` (may be NULL) is the mapping that
 * holds `buf`: the gallery takes it over when it uses the rows in place (then *mapped = 1),
 * else the caller still owns it. */
sm_status sm__gallery_load_buffer(const sm_subnet *s, const sm_head *h, const uint8_t *buf,
                                  size_t size, const char *name,
                                  const sm_gallery_load_options *opts, sm__mapped_file *map,
                                  int *mapped, sm_gallery **out);

/* ------------------------------------------------------------------ storage (gallery_storage.c) */

/* Bytes per stored feature. */
size_t sm__storage_elem(sm_storage_type t);
/* "f32", "bf16", "f16", "u8" (the file's `storage` metadata); NULL for an unknown type. */
const char *sm__storage_name(sm_storage_type t);
/* The type named so, or -1. */
int sm__storage_parse(const char *name);
/* Encodes n vectors of dim features (host floats in [0, 1]) into `rows` (n x dim elements) and,
 * for U8, `qp` (n x (offset, scale); else unused): rounding to nearest, ties to even. */
void sm__storage_encode(sm_storage_type t, size_t n, size_t dim, const float *src, void *rows,
                        float *qp);
/* The floats that stored rows stand for (the values the search uses): n x dim into dst. */
void sm__storage_decode(sm_storage_type t, size_t n, size_t dim, const void *rows, const float *qp,
                        float *dst);
/* The first stored row of n that a search could not use, or SIZE_MAX: a decoded feature outside
 * [0, 1] or NaN; for U8 also an offset or scale outside the range the encoder writes. *bad_at
 * (optional) receives the feature's position, or dim for the scale. */
size_t sm__storage_first_bad(sm_storage_type t, size_t n, size_t dim, const void *rows,
                             const float *qp, size_t *bad_at);

/* ------------------------------------------------------------------ scores (gallery_score.c) */

/* The pair scores sigmoid(w . |q - g| + b) of `nq` query feature vectors (host, nq x dim, in
 * [0, 1]: the caller checks them) against `n_rows` of the gallery's examples: rows[i] (example
 * indices < g->n, in any order, repeats allowed), or examples 0 .. g->n - 1 when rows is NULL
 * (n_rows is then ignored). scores (host) receives nq x n_rows floats, query-major. Every score
 * is bit-identical whatever nq, the subset, the thread count or the backend (the l1_scores op's
 * order, backend_plugin.h), so a candidate re-scored here gets exactly the score a full search
 * gives it: the exact re-scoring an approximate index needs. Scratch memory is bounded (the
 * queries go to the backend in groups) whatever nq and n_rows. SM_ERR_INVALID_ARG (an index
 * out of range), SM_ERR_NUMERIC (a score outside [0, 1]: a head with non-finite parameters, or
 * a row of a file loaded with skip_row_check that holds NaN), SM_ERR_NOMEM, SM_ERR_DEVICE;
 * `fn` names the caller in messages. Reads the gallery only: any number of threads at once. */
sm_status sm__gallery_score(const sm_gallery *g, const char *fn, size_t nq, const float *queries,
                            size_t n_rows, const uint32_t *rows, float *scores);

#endif
