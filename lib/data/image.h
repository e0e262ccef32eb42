/* SPDX-License-Identifier: MIT */
/* Private: image helpers shared by the PNG loaders, the augmentation and the trainer. */
#ifndef SM_LIB_IMAGE_H
#define SM_LIB_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#include "common/rng.h"
#include "siamese/siamese.h"

/* sm_image_resize without the public range checks (a decoded PNG may be larger than 4096 when
 * the host raised SM_LIMIT_IMAGE_SIDE). SM_ERR_NOMEM. */
sm_status sm__image_resize(const float *src, size_t src_h, size_t src_w, float *dst, size_t dst_h,
                           size_t dst_w);

/* One Koch distortion of `src` into `dst` (h x w), drawn from `rng`: always 11 draws. */
void sm__distort(sm__rng *rng, unsigned parts, const float *src, int h, int w, float *dst);
/* Advances `rng` exactly as sm__distort does for one image, without computing it. */
void sm__distort_skip(sm__rng *rng);

/* A PNG of any size (io/png.h), resized to height x width with sm_image_resize's filter (an
 * image of that size is kept exactly) and rounded to 8 bits as sm_dataset_add_image does. */
sm_status sm__png_decode_resized(const void *data, size_t size, const char *name, int height,
                                 int width, uint8_t *out);

#endif
