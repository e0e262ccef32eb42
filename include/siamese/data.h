/* SPDX-License-Identifier: MIT */
/* libsiamese: data: datasets of labelled greyscale images, pair sampling, reading and
 * resizing PNG images, random distortions. Part of the API <siamese/siamese.h> includes. */
#ifndef SIAMESE_DATA_H
#define SIAMESE_DATA_H

#include "siamese/common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------------------------------------
 * Datasets: labelled greyscale images, decoded once
 * ------------------------------------------------------------------------------------------- */

typedef struct sm_dataset sm_dataset;

/** Opens a dataset laid out as Omniglot ships: `ROOT/<Alphabet>/<character>/<image>.png`, from a
 *  folder or directly from a .zip (with or without directory entries; ROOT may be absent or
 *  several folders deep: the last three parts of a path are alphabet, character and file, at
 *  most 8 parts in all; hidden and `__MACOSX` entries are skipped). The class of an image is
 *  `<Alphabet>/<character>`. Every image must be a
 *  PNG of exactly `height` x `width` (0, 0 = 105 x 105) pixels (any size 1..4096: build the
 *  architecture for it); colour and alpha PNGs are converted to grey by the grey rule of
 *  "Images" below (since 0.2; 0.1 refused them). Classes may hold any number of images (one
 *  is fine; similar pairs come from the classes with two or more).
 *  `alphabets` (may be NULL when `n_alphabets` is 0) selects alphabets by name; an unknown name
 *  is SM_ERR_DATASET. Classes are sorted by name and images by path, so the order does not
 *  depend on the file system or the zip. Pixels are kept as 8-bit (value / 255).
 *  Statuses: SM_ERR_IO (missing or unreadable path), SM_ERR_FORMAT (corrupt PNG or zip, naming
 *  the file), SM_ERR_SHAPE (wrong image size, naming the file), SM_ERR_DATASET (no images,
 *  fewer than two classes), SM_ERR_LIMIT (a file or zip entry over SM_LIMIT_ENTRY_BYTES, a
 *  PNG side over SM_LIMIT_IMAGE_SIDE, more pixels than SM_LIMIT_DATASET_BYTES: refused before
 *  they are allocated), SM_ERR_INVALID_ARG, SM_ERR_NOMEM. */
SM_API sm_status sm_dataset_open(const char *path, int height, int width,
                                 const char *const *alphabets, size_t n_alphabets,
                                 sm_dataset **out);
/** Options of sm_dataset_open_with (since 0.3). The caller sets `struct_size` to
 *  sizeof(sm_dataset_options) (SM_DATASET_OPTIONS_INIT does it, every other field 0, which is
 *  what sm_dataset_open does); the library reads only the fields that fit in it, and counts the
 *  others as 0, so later versions can append fields without breaking older callers. */
typedef struct sm_dataset_options {
    size_t struct_size;         /* set by the caller */
    int resize;                 /* 0: every image must be height x width (SM_ERR_SHAPE
                                    otherwise); 1: images of any size are each resized once,
                                    at open, to height x width with sm_image_resize (an image
                                    of that size is kept exactly), then stored 8-bit as
                                    round(v * 255) */
    const char *const *exclude; /* alphabets to leave out (may be NULL when n_exclude is 0);
                                    an unknown name is SM_ERR_DATASET */
    size_t n_exclude;
} sm_dataset_options;

#define SM_DATASET_OPTIONS_INIT                                                                    \
    {                                                                                              \
        sizeof(sm_dataset_options), 0, NULL, 0                                                     \
    }

/** sm_dataset_open with options (NULL: exactly sm_dataset_open): resizing images of other
 *  sizes to `height` x `width` once at open (`resize`), and leaving alphabets out (`exclude`,
 *  applied after the `alphabets` selection; excluding a name that is not among the listed
 *  alphabets is SM_ERR_DATASET, so that a typo cannot let an alphabet through). With resize,
 *  the only size limit on the files is SM_LIMIT_IMAGE_SIDE. Statuses as sm_dataset_open, and
 *  SM_ERR_INVALID_ARG for a struct_size under sizeof(size_t), a resize other than 0 or 1, a
 *  NULL or empty excluded name. Since 0.3. */
SM_API sm_status sm_dataset_open_with(const char *path, int height, int width,
                                      const char *const *alphabets, size_t n_alphabets,
                                      const sm_dataset_options *options, sm_dataset **out);

/** Splits `ds` by alphabet into two new datasets: `n_val` of its alphabets, chosen by `seed`,
 *  go to `*val`, the others to `*train`. The rule: the alphabets in name order
 *  (sm_dataset_alphabet_name), shuffled by a Fisher-Yates shuffle drawn from the library's RNG
 *  seeded by `seed` (i from the last index down to 1: swap i with a uniform j in 0..i); the first
 *  `n_val` of the shuffled order are validation. The same dataset and seed give the same split
 *  on every machine. Each part keeps the images' order, labels, pixels and sources; no image is
 *  in both. `ds` is only read and may be destroyed afterwards. `n_val` 1..alphabets - 1, else
 *  SM_ERR_INVALID_ARG. SM_ERR_LIMIT, SM_ERR_NOMEM. `*train` and `*val` are written only on
 *  success. Since 0.3. */
SM_API sm_status sm_dataset_split_alphabets(const sm_dataset *ds, size_t n_val, uint64_t seed,
                                            sm_dataset **train, sm_dataset **val);
/** An empty in-memory dataset of `height` x `width` greyscale images (1..4096 each). */
SM_API sm_status sm_dataset_create(int height, int width, sm_dataset **out);
/** Adds one image with its class label (any non-empty string; "Alphabet/character" makes the
 *  alphabet "Alphabet"). `pixels`: height*width values in [0, 1], stored as round(v * 255).
 *  SM_ERR_INVALID_ARG for NaN or out-of-range values. The dataset copies what it needs.
 *  Modifies the dataset: no other thread may read it (directly, or through a sampler or trainer)
 *  during the call. Samplers and trainers over it see the new image from their next draw. */
SM_API sm_status sm_dataset_add_image(sm_dataset *ds, const char *label, const float *pixels);
/** A generated dataset of handwriting-like glyphs: `n_classes` random stroke figures, each drawn
 *  `per_class` times with random jitter, on white with black ink. The same arguments give the
 *  same images, stored class by class (image i is of class i / per_class). Classes are grouped
 *  into alphabets of 10 ("synthNN"). Used by the examples when no data is given, and by the
 *  tests. */
SM_API sm_status sm_dataset_create_synthetic(int n_classes, int per_class, int height, int width,
                                             uint64_t seed, sm_dataset **out);
/** Frees a dataset and its images. Destroy samplers and trainers over it first. NULL: no-op. */
SM_API void sm_dataset_destroy(sm_dataset *ds);

/** Counts; 0 for NULL. */
SM_API size_t sm_dataset_num_images(const sm_dataset *ds);
SM_API size_t sm_dataset_num_classes(const sm_dataset *ds);
SM_API size_t sm_dataset_num_alphabets(const sm_dataset *ds);
/** Image size; either pointer may be NULL. */
SM_API sm_status sm_dataset_image_size(const sm_dataset *ds, int *height, int *width);
/** Copies image `index` as floats in [0, 1] into `pixels` (height*width values). */
SM_API sm_status sm_dataset_get_image(const sm_dataset *ds, size_t index, float *pixels);
/** Class index of image `index`; SIZE_MAX when out of range. */
SM_API size_t sm_dataset_image_class(const sm_dataset *ds, size_t index);
/** Names, owned by the dataset (valid until it is destroyed); NULL when out of range. */
SM_API const char *sm_dataset_class_name(const sm_dataset *ds, size_t class_index);
SM_API const char *sm_dataset_alphabet_name(const sm_dataset *ds, size_t alphabet_index);
/** Where image `index` came from ("zipfile.zip:inner/path.png", a file path, or "" for images
 *  added in memory). */
SM_API const char *sm_dataset_image_source(const sm_dataset *ds, size_t index);

/* ---------------------------------------------------------------------------------------------
 * Pair sampling, the reference's (docs/reference.md in the source tree): with probability 1/2 a
 * similar pair (a uniformly chosen class with at least two images, two different images of it;
 * label 1), otherwise a dissimilar pair (two different uniformly chosen classes, one uniformly
 * chosen image of each; label 0).
 * ------------------------------------------------------------------------------------------- */

typedef struct sm_sampler sm_sampler;

/** A seeded sampler over `ds` (borrowed: it must outlive the sampler). SM_ERR_DATASET when the
 *  dataset has fewer than two classes or no class with two images. */
SM_API sm_status sm_sampler_create(const sm_dataset *ds, uint64_t seed, sm_sampler **out);
/** Draws `n` pairs. `left` and `right` receive n images each (n*height*width floats), `labels` n
 *  values (1 similar, 0 dissimilar). `left_index`, `right_index` (optional, may be NULL) receive
 *  the dataset indices of the images. n = 0 does nothing; an n whose buffers could not exist
 *  (n*height*width*sizeof(float) overflows) is SM_ERR_INVALID_ARG. Advances the sampler (one
 *  thread at a time per sampler); only reads the dataset. */
SM_API sm_status sm_sampler_next(sm_sampler *s, size_t n, float *left, float *right, float *labels,
                                 size_t *left_index, size_t *right_index);
/** Frees a sampler (not its dataset). NULL: no-op. */
SM_API void sm_sampler_destroy(sm_sampler *s);

/* ---------------------------------------------------------------------------------------------
 * Images: reading PNG files (any PNG, any size since 0.2) and resizing
 *
 * The grey rule. Every PNG the library reads (sm_dataset_open, sm_image_read_png,
 * sm_image_load_png, one-shot run files) becomes one grey level per pixel:
 *  - greyscale PNGs (any bit depth) keep their stored levels exactly, as in 0.1;
 *  - colour, palette and alpha PNGs are composited over white (Omniglot is ink on white):
 *    c' = a c + (1 - a) for each channel c and alpha a in [0, 1] (a = 1 without alpha; the
 *    transparency of a palette or of a colour image's tRNS chunk counts as alpha; greyscale
 *    images ignore tRNS, as in 0.1), then reduced to grey with the
 *    ITU-R BT.601 luma weights on the stored (gamma-encoded) values:
 *    grey = 0.299 R' + 0.587 G' + 0.114 B', and rounded to 8 bits.
 * ------------------------------------------------------------------------------------------- */

/** Reads one PNG file of exactly `height` x `width` into `pixels` (floats in [0, 1]); colour
 *  and alpha by the grey rule (since 0.2). sm_image_load_png takes any size. Statuses as
 *  sm_dataset_open. */
SM_API sm_status sm_image_read_png(const char *path, int height, int width, float *pixels);

/** Reads any PNG (greyscale, colour, palette, with or without alpha, any bit depth, any size up
 *  to SM_LIMIT_IMAGE_SIDE on a side), converts it to grey by the grey rule above and resizes it
 *  to `height` x `width` (1..4096 each) with sm_image_resize, into `pixels` (height*width floats
 *  in [0, 1]). For comparing a user's own images with a model built for that size. `pixels` is
 *  written only on success. Statuses: SM_ERR_IO (missing, unreadable), SM_ERR_FORMAT (not a
 *  valid PNG, naming the file), SM_ERR_LIMIT (a side over SM_LIMIT_IMAGE_SIDE, a file over
 *  SM_LIMIT_ENTRY_BYTES), SM_ERR_INVALID_ARG, SM_ERR_NOMEM. Thread-safe. Since 0.2. */
SM_API sm_status sm_image_load_png(const char *path, int height, int width, float *pixels);

/** Resizes one grey image `src` (src_height x src_width floats) to `dst` (dst_height x
 *  dst_width floats), each axis on its own: an axis that shrinks is area-averaged (each output
 *  pixel is the mean of the source pixels its footprint covers, weighted by the overlap); an
 *  axis that grows or keeps its size is interpolated linearly between pixel centres (centres
 *  aligned, edges clamped), so an unchanged size is an exact copy. `src` and `dst` must not
 *  overlap. Sides 1..4096. SM_ERR_INVALID_ARG, SM_ERR_NOMEM. Thread-safe. Since 0.2. */
SM_API sm_status sm_image_resize(const float *src, int src_height, int src_width, float *dst,
                                 int dst_height, int dst_width);

/* ---------------------------------------------------------------------------------------------
 * Augmentation: Koch et al.'s affine distortions (since 0.2)
 *
 * One distortion of an image: each part allowed by the `parts` mask is switched on with
 * probability 1/2, independently: rotation by an angle uniform in +-10 degrees, shear
 * [[1, sx], [sy, 1]] with sx, sy uniform in +-0.3, scale diag(kx, ky) with kx, ky uniform in
 * 0.8..1.2, shift (tx, ty) uniform in +-2 pixels. The map is x' = R Sh Sc (x - c) + c + t about
 * the image centre c; the output is resampled bilinearly from the source, with white (1.0)
 * where it falls outside. Every distortion draws the same 11 random numbers whichever parts
 * are on, so the stream of a seed does not depend on the mask.
 * ------------------------------------------------------------------------------------------- */

typedef enum sm_distort_part {
    SM_DISTORT_ROTATE = 1,
    SM_DISTORT_SHEAR = 2,
    SM_DISTORT_SCALE = 4,
    SM_DISTORT_SHIFT = 8,
    SM_DISTORT_ALL = 15 /* Koch et al.'s distortions */
} sm_distort_part;

/** Applies one random distortion (the parts of `parts`, an OR of sm_distort_part; 0 = an exact
 *  copy) drawn from the library's RNG seeded by `seed`, to `src` (height x width floats) into
 *  `dst` (must not overlap `src`). The same seed gives the same distortion on every machine.
 *  SM_ERR_INVALID_ARG (NULL, sides outside 1..4096, unknown bits in `parts`). Thread-safe.
 *  Since 0.2. */
SM_API sm_status sm_image_distort(const float *src, int height, int width, unsigned parts,
                                  uint64_t seed, float *dst);

#ifdef __cplusplus
}
#endif

#endif
