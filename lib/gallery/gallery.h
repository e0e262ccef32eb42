/* SPDX-License-Identifier: MIT */
/* Private: the gallery as the core sees it (gallery.c: labels and enrolment; gallery_search.c:
 * scoring; gallery_file.c: files; gallery_enrol_path.c: folders and zips).
 *
 * Feature vectors live in one backend buffer of `cap` rows, grown by doubling (through the host:
 * the backend table has no device-to-device copy). Labels keep the order of their first
 * enrolment (their index), with a hash table from name to index. */
#ifndef SM_LIB_GALLERY_H
#define SM_LIB_GALLERY_H

#include <stddef.h>
#include <stdint.h>

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

    float *feat;             /* backend buffer: cap x dim */
    size_t n, cap;           /* examples, rows allocated */
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
 * `label`, all or nothing. */
sm_status sm__gallery_append(sm_gallery *g, const char *label, size_t n, const float *feat);
/* Undoes appends: keeps the first `n_examples` examples and `n_labels` labels (those that
 * existed before the appends: new labels come last). Cannot fail. */
void sm__gallery_truncate(sm_gallery *g, size_t n_examples, size_t n_labels);
/* Embeds `n` images (checked: values in [0, 1]) into `feat` (host, n x dim). A feature outside
 * [0, 1] (a model with non-finite parameters gives NaN) is SM_ERR_NUMERIC naming the image. */
sm_status sm__gallery_embed(const sm_gallery *g, const char *fn, size_t n, const float *images,
                            float *feat);
/* An empty gallery for the model, with its fingerprint and architecture text. */
sm_status sm__gallery_new(const sm_subnet *s, const sm_head *h, sm_gallery **out);

/* sm_gallery_load on a file held in memory (`name` stands for its path in messages). */
sm_status sm__gallery_load_buffer(const sm_subnet *s, const sm_head *h, const uint8_t *buf,
                                  size_t size, const char *name, sm_gallery **out);

#endif
