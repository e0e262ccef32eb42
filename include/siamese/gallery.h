/* SPDX-License-Identifier: MIT */
/* libsiamese: galleries: enrolled examples of a trained model, identification ("which of my
 * enrolled labels is this, and how sure?") and verification ("is this the label it claims to
 * be?"), saved to and loaded from files. Part of the API <siamese/siamese.h> includes. Since 0.3.
 *
 * A gallery belongs to one model (a subnet and a head, borrowed): each enrolled image is embedded
 * once, on the model's backend, and its feature vector is kept there (since 0.5 in a storage
 * type of the caller's choice: sm_gallery_create_with). A query is embedded once and scored
 * against every enrolled example, score = sigmoid(w . |F_query - F_example| + b), the score of
 * sm_predict_pair (to float rounding: the gallery sums in an order of its own, the same for any
 * batch, thread count and backend, so a query gets the same bits alone or in a batch). A batch
 * of queries passes over the gallery once. A label's score is the mean of its examples' scores:
 * the rule of the k-shot evaluation (sm_oneshot_episodes), so a label enrolled with k examples
 * is a k-shot class.
 *
 * Ties are reported, never broken by order: every match says its rank (1 + the number of labels
 * with a strictly higher score, so tied labels share a rank) and how many labels of the whole
 * gallery have exactly its score. Tied labels are listed by name (bytewise), which is only an
 * order for display.
 *
 * Threads, as for prediction: calls that take a const gallery (identify, verify, save, counts,
 * names) only read it and the model, each with its own scratch memory: any number of threads
 * may run them at once (on a mapped gallery too, sm_gallery_load_with). Calls that take a non-const gallery (enrol, remove) modify it: no other
 * thread may use that gallery during the call. The model must not train or load while a
 * gallery over it is used; a model changed after enrolment makes the gallery's embeddings stale
 * (save then reload it: the load refuses the file, see sm_gallery_load).
 *
 * Labels are non-empty UTF-8 strings of at most SM_GALLERY_MAX_LABEL bytes (without a NUL);
 * "Alphabet/character" is fine. */
#ifndef SIAMESE_GALLERY_H
#define SIAMESE_GALLERY_H

#include "siamese/common.h"
#include "siamese/network.h"

#ifdef __cplusplus
extern "C" {
#endif

/** The longest label, in bytes. */
#define SM_GALLERY_MAX_LABEL 255

typedef struct sm_gallery sm_gallery;

/** One label of an identification's top k. A fixed POD: its layout never changes (reserved
 *  fields are written as 0). */
typedef struct sm_gallery_match {
    size_t label; /* label index (sm_gallery_label_name) */
    double score; /* the label's score in [0, 1]: the mean of its examples' scores */
    size_t rank;  /* 1 + labels with a strictly higher score: tied labels share it */
    size_t tied;  /* labels in the gallery with exactly this score (1: no tie) */
    uint64_t reserved[4];
} sm_gallery_match;

/** Creates an empty gallery for the model `subnet` + `head` (borrowed: they must outlive the
 *  gallery and must not train meanwhile). Reads the model's parameters once to fingerprint it
 *  (sm_gallery_load checks a file against that fingerprint). Features are stored as float32
 *  (SM_STORAGE_F32). Statuses: SM_ERR_INVALID_ARG (NULL, subnet and head on different
 *  backends), SM_ERR_SHAPE (a head of another width), SM_ERR_NOMEM, SM_ERR_DEVICE. */
SM_API sm_status sm_gallery_create(const sm_subnet *subnet, const sm_head *head, sm_gallery **out);

/** How a gallery stores its enrolled feature vectors (since 0.5): chosen at creation
 *  (sm_gallery_create_with) and kept in its file. Only the stored copy of an enrolled vector
 *  is rounded: queries stay float32, and every score is computed in float32 with float32 sums
 *  in the same order whatever the storage (docs/gallery.md, "How the search runs"). Features
 *  lie in [0, 1]. */
typedef enum sm_storage_type {
    SM_STORAGE_F32 = 0,  /* 4 bytes a feature: exact (the default, and all there was before 0.5) */
    SM_STORAGE_BF16 = 1, /* 2 bytes: bfloat16, rounded to nearest (8 significant bits: a
                          * relative error below 2^-8) */
    SM_STORAGE_F16 = 2,  /* 2 bytes: IEEE 754 half, rounded to nearest (11 significant bits:
                          * below 2^-11 relative; at most 2^-25 absolute below 2^-14) */
    SM_STORAGE_U8 = 3,   /* 1 byte a feature and 8 a vector: 256 levels from the vector's own
                          * minimum to its maximum (an error of at most half a level) */
} sm_storage_type;

/** Options of sm_gallery_create_with (since 0.5). The caller sets `struct_size` to
 *  sizeof(sm_gallery_options) (SM_GALLERY_OPTIONS_INIT does it, every other field 0, which is
 *  what sm_gallery_create does); the library reads only the fields that fit in it and counts
 *  the others as 0, so later versions can append fields without breaking older callers. */
typedef struct sm_gallery_options {
    size_t struct_size;      /* set by the caller */
    sm_storage_type storage; /* how enrolled features are stored */
} sm_gallery_options;

#define SM_GALLERY_OPTIONS_INIT                                                                    \
    {                                                                                              \
        sizeof(sm_gallery_options), SM_STORAGE_F32                                                 \
    }

/** sm_gallery_create with options (NULL: exactly sm_gallery_create). A reduced storage takes
 *  2 (BF16, F16) or about 1 (U8) byte per feature instead of 4, so a search that is bound by
 *  reading the gallery runs up to 2 or 4 times faster; docs/gallery.md measures how often the
 *  top labels change. Statuses as sm_gallery_create, and SM_ERR_INVALID_ARG for a struct_size
 *  under sizeof(size_t) or an unknown storage type. Since 0.5. */
SM_API sm_status sm_gallery_create_with(const sm_subnet *subnet, const sm_head *head,
                                        const sm_gallery_options *options, sm_gallery **out);
/** The gallery's storage type; SM_STORAGE_F32 for NULL. Since 0.5. */
SM_API sm_storage_type sm_gallery_storage(const sm_gallery *gallery);
/** Frees a gallery and its backend buffers. NULL: no-op. */
SM_API void sm_gallery_destroy(sm_gallery *gallery);

/** Enrols `n` images under `label` (new or already enrolled: a label may have any number of
 *  examples). Images are C*H*W floats each, the subnet's input shape, values in [0, 1]
 *  (sm_image_load_png reads and fits any PNG). All n are embedded first; the gallery changes
 *  only on success. Statuses: SM_ERR_INVALID_ARG (NULL, n 0, a pixel NaN or outside [0, 1],
 *  naming the image and pixel; an empty label or one that is not UTF-8), SM_ERR_NUMERIC (the
 *  model embeds an image as a feature vector that is not finite, naming the image: its
 *  parameters are not finite; nothing is enrolled), SM_ERR_LIMIT (a label over
 *  SM_GALLERY_MAX_LABEL bytes, more than 2^31 - 1 examples), SM_ERR_NOMEM, SM_ERR_DEVICE. */
SM_API sm_status sm_gallery_enrol(sm_gallery *gallery, const char *label, size_t n,
                                  const float *images);
/** Enrols `n` feature vectors already computed with this model (sm_embed), feature_dim floats
 *  each, finite and in [0, 1]. For hosts that embed in a batch job elsewhere. Statuses as
 *  sm_gallery_enrol, except that a value outside [0, 1], NaN or infinite included, is
 *  SM_ERR_INVALID_ARG naming the vector (0-based) and its position, and nothing is enrolled. */
SM_API sm_status sm_gallery_enrol_embeddings(sm_gallery *gallery, const char *label, size_t n,
                                             const float *features);
/** Enrols every PNG below a folder or in a .zip: `<Alphabet>/<character>/<file>.png` (label
 *  "Alphabet/character", the Omniglot layout) or `<label>/<file>.png` (label "label"), at most
 *  8 parts deep (the part before the last two is ignored for deeper paths, as sm_dataset_open
 *  reads a root folder); hidden files and __MACOSX are skipped, other files ignored. Each PNG
 *  of any size and colour type is converted by the grey rule and resized to the model's input
 *  (sm_image_load_png); the model must take one channel. Files are enrolled in path order, all
 *  or nothing. `*n_enrolled` (optional) receives the number of images. Statuses: SM_ERR_IO,
 *  SM_ERR_FORMAT (a damaged PNG or zip, naming it), SM_ERR_SHAPE (a model that does not take
 *  grey images), SM_ERR_DATASET (no PNG found), SM_ERR_NUMERIC (the model embeds a file as a
 *  feature vector that is not finite, naming it), SM_ERR_LIMIT, SM_ERR_INVALID_ARG (a label
 *  that is not UTF-8), SM_ERR_NOMEM, SM_ERR_DEVICE. */
SM_API sm_status sm_gallery_enrol_path(sm_gallery *gallery, const char *path, size_t *n_enrolled);
/** Removes `label` and all its examples; `*removed` (optional) receives how many examples went
 *  (0, and SM_OK, when the label was not enrolled). Label indices may change. SM_ERR_INVALID_ARG,
 *  SM_ERR_NOMEM, SM_ERR_DEVICE (the gallery is then unchanged). */
SM_API sm_status sm_gallery_remove(sm_gallery *gallery, const char *label, size_t *removed);

/** Enrolled examples, and distinct labels; 0 for NULL. */
SM_API size_t sm_gallery_num_examples(const sm_gallery *gallery);
SM_API size_t sm_gallery_num_labels(const sm_gallery *gallery);
/** Label `index` (0 .. num_labels - 1, in order of first enrolment), owned by the gallery and
 *  valid until it is next modified; NULL when out of range. */
SM_API const char *sm_gallery_label_name(const sm_gallery *gallery, size_t index);
/** Examples enrolled under label `index`; 0 when out of range. */
SM_API size_t sm_gallery_label_examples(const sm_gallery *gallery, size_t index);
/** The index of `label`, or SIZE_MAX when it is not enrolled. */
SM_API size_t sm_gallery_find_label(const sm_gallery *gallery, const char *label);
/** Bytes the gallery holds per enrolled example (its feature vector on the backend and the
 *  bookkeeping), averaged over the examples; 0 when empty. */
SM_API double sm_gallery_bytes_per_example(const sm_gallery *gallery);

/** Identifies `n_queries` images (C*H*W floats each, values in [0, 1]): for each, the `k` labels
 *  with the highest scores, best first (ties as the header says), into matches[q * k ...].
 *  `*n_found` (optional) receives min(k, num_labels): the matches written per query. The
 *  queries are scored in groups, each passing over the gallery once, so a batch is much faster
 *  per query than single calls; every query gets exactly the matches it gets alone. Scratch
 *  memory is bounded whatever the number of queries and the gallery's size (besides the
 *  answers: n_queries x k matches). Only reads the gallery (threads above); `matches`
 *  is written only on success. Statuses: SM_ERR_INVALID_ARG (NULL, k or n_queries 0, a bad
 *  pixel), SM_ERR_NUMERIC (a model with non-finite parameters: the subnet embeds a query as a
 *  feature vector that is not finite, or the head gives a score that is not, naming the image
 *  or the example; a NaN score would make the top k and its ties meaningless), SM_ERR_STATE
 *  (the gallery is empty), SM_ERR_NOMEM, SM_ERR_DEVICE. */
SM_API sm_status sm_gallery_identify(const sm_gallery *gallery, size_t n_queries,
                                     const float *queries, size_t k, sm_gallery_match *matches,
                                     size_t *n_found);
/** sm_gallery_identify from feature vectors (sm_embed of this model) instead of images. A value
 *  outside [0, 1], NaN or infinite included, is SM_ERR_INVALID_ARG naming the query. */
SM_API sm_status sm_gallery_identify_embeddings(const sm_gallery *gallery, size_t n_queries,
                                                const float *features, size_t k,
                                                sm_gallery_match *matches, size_t *n_found);
/** Verification: the score of `image` against `label` (the mean over its examples, as in
 *  identification) into `*score`, and `*accept` = 1 when score >= threshold, else 0. Take the
 *  threshold from sm_roc_eer or sm_roc_threshold_at_far on validation pairs; 0.5 is the
 *  balanced decision point of a calibrated model (sm_head_calibrate, since 0.4), and only the
 *  training loss's cut on one that is not. Either output may be NULL; neither is written on failure. Statuses:
 *  SM_ERR_INVALID_ARG (NULL image, a label that is not enrolled, a threshold outside [0, 1] or
 *  NaN, a bad pixel), SM_ERR_NUMERIC (as sm_gallery_identify: a non-finite feature vector or
 *  score), SM_ERR_NOMEM, SM_ERR_DEVICE. */
SM_API sm_status sm_gallery_verify(const sm_gallery *gallery, const char *label, const float *image,
                                   double threshold, double *score, int *accept);

/** Saves the gallery (feature vectors in its storage type, labels, the model's fingerprint and
 *  architecture) as a safetensors file (docs/gallery.md gives the format; F32 galleries stay
 *  readable by 0.3 and 0.4, the other storage types need 0.5), atomically: a failure leaves any
 *  existing file untouched, and SM_OK means the new file is in place (a folder that cannot be
 *  synced after the rename is a warning through the log callback, not a failure). An empty
 *  gallery saves (and loads) fine. Only reads the gallery.
 *  Statuses: SM_ERR_INVALID_ARG, SM_ERR_IO (naming the path), SM_ERR_NOMEM, SM_ERR_DEVICE. */
SM_API sm_status sm_gallery_save(const sm_gallery *gallery, const char *path);
/** Loads a gallery saved by sm_gallery_save for the model `subnet` + `head` (borrowed, as
 *  sm_gallery_create), in the storage type it was saved in; on a CPU backend the file is mapped
 *  and searched in place (sm_gallery_load_with, since 0.5), after its checks. The file must have been enrolled with exactly this model (the same
 *  architecture and parameters, checked by fingerprint): a gallery is never used with another
 *  model. Statuses: SM_ERR_IO (missing, unreadable), SM_ERR_FORMAT (damaged, truncated,
 *  checksum mismatch, values out of range, labels that are not UTF-8 or repeated),
 *  SM_ERR_VERSION (a newer format), SM_ERR_SHAPE (a file from another model: another
 *  architecture, feature size or parameters), SM_ERR_LIMIT (beyond SM_LIMIT_FILE_BYTES),
 *  SM_ERR_INVALID_ARG, SM_ERR_NOMEM, SM_ERR_DEVICE. *out is written only on success. */
SM_API sm_status sm_gallery_load(const sm_subnet *subnet, const sm_head *head, const char *path,
                                 sm_gallery **out);

/** Options of sm_gallery_load_with (since 0.5), struct_size-versioned as sm_gallery_options
 *  (SM_GALLERY_LOAD_OPTIONS_INIT: what sm_gallery_load does). */
typedef struct sm_gallery_load_options {
    size_t struct_size; /* set by the caller */
    int no_map;         /* 1: read the file into memory and copy its rows, never map it */
    int skip_row_check; /* 1: do not read the feature rows at load: their checksum and range
                         * are not checked (everything else is, including the file's checksum
                         * with the rows' recorded checksum standing for them); a damaged row
                         * then goes unnoticed (docs/gallery.md, "Mapped files") */
} sm_gallery_load_options;

#define SM_GALLERY_LOAD_OPTIONS_INIT                                                               \
    {                                                                                              \
        sizeof(sm_gallery_load_options), 0, 0                                                      \
    }

/** sm_gallery_load with options (NULL: exactly sm_gallery_load). On a backend whose buffers are
 *  host memory (cpu, cpu-dnnl) the file is mapped read-only and its feature rows are searched
 *  in place, without a copy, when it allows (rows aligned in the file, as files written since
 *  0.5 have them; a little-endian machine); otherwise, and with no_map, it is read and copied
 *  as before 0.5. A mapped gallery copies its rows into memory of its own on its first
 *  modification (enrol, remove), and drops the mapping then. The file must not be rewritten in
 *  place while mapped (a program that truncates it makes a later search crash with SIGBUS);
 *  sm_gallery_save replaces files atomically, so saving over the mapped file itself is safe.
 *  With skip_row_check, loading reads only the header and the labels: a gallery of any size
 *  loads in milliseconds, and its rows are read as searches touch them. Statuses as
 *  sm_gallery_load, and SM_ERR_INVALID_ARG for a struct_size under sizeof(size_t) or a flag
 *  other than 0 or 1. Since 0.5. */
SM_API sm_status sm_gallery_load_with(const sm_subnet *subnet, const sm_head *head,
                                      const char *path, const sm_gallery_load_options *options,
                                      sm_gallery **out);
/** 1 when the gallery's feature rows are a mapped file's (sm_gallery_load_with), else 0 (NULL
 *  included). Since 0.5. */
SM_API int sm_gallery_is_mapped(const sm_gallery *gallery);

#ifdef __cplusplus
}
#endif

#endif
