/* SPDX-License-Identifier: MIT */
/* Private: the dataset's storage (the readers of outside bytes that fill it are io/png.h,
 * io/zip.h, io/tree_list.h and io/file_read.h).
 *
 * Images keep the order in which they were added (for sm_dataset_open: sorted by class, then by
 * file name), their pixels as 8-bit values in one contiguous block. Classes and alphabets are
 * kept sorted by name, so indices never depend on the order of a file system or a zip. */
#ifndef SM_LIB_DATASET_H
#define SM_LIB_DATASET_H

#include <stddef.h>
#include <stdint.h>

#include "siamese/siamese.h"

/* The largest side sm_dataset_* accepts, as documented for sm_dataset_create. (The sizes the
 * readers accept from files are the public limits: lib/common/limits.h.) */
#define SM__MAX_IMAGE_SIDE 4096

typedef struct sm__class {
    char *name;      /* "Alphabet/character" or any label */
    size_t alphabet; /* index into sm_dataset.alphabets */
    size_t *images;  /* indices of its images, increasing */
    size_t n_images, cap_images;
} sm__class;

struct sm_dataset {
    int height, width;
    size_t pixels_per_image; /* height * width */

    size_t n_images, cap_images;
    uint8_t *pixels;     /* n_images * pixels_per_image, value = round(v * 255) */
    size_t *image_class; /* per image */
    char **image_source; /* per image; NULL for images added in memory */

    size_t n_classes, cap_classes;
    sm__class *classes; /* sorted by name */

    size_t n_alphabets, cap_alphabets;
    char **alphabets; /* sorted by name */
};

static inline int sm__side_ok(int v) { return v >= 1 && v <= SM__MAX_IMAGE_SIDE; }

/* How many images of `pixels_per_image` bytes SM_LIMIT_DATASET_BYTES allows. */
size_t sm__dataset_max_images(size_t pixels_per_image);
/* SM_ERR_LIMIT: `n` images (at least, when `at_least`) of height x width, named `what` in the
 * message, would not fit in SM_LIMIT_DATASET_BYTES. */
sm_status sm__dataset_too_many(const char *what, size_t n, int at_least, int height, int width);

/* Appends one image of `label` whose pixels are already 8-bit; `source` (may be NULL) is
 * copied. The dataset is unchanged on failure. */
sm_status sm__dataset_add_u8(sm_dataset *ds, const char *label, const uint8_t *pixels,
                             const char *source);
/* Makes room for `n` more images, so that bulk loaders allocate once. */
sm_status sm__dataset_reserve(sm_dataset *ds, size_t n);

/* sm_dataset_open on a zip held in memory (`name` stands for its path in messages and
 * sources). For the fuzzers: the same listing, limits and decoding as a zip file. */
sm_status sm__dataset_open_zip_buffer(const void *data, size_t size, const char *name, int height,
                                      int width, const char *const *alphabets, size_t n_alphabets,
                                      sm_dataset **out);

#endif
