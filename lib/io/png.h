/* SPDX-License-Identifier: MIT */
/* Private: PNG decoding (io/png_read.c, on libspng), 8-bit grey out. */
#ifndef SM_LIB_IO_PNG_H
#define SM_LIB_IO_PNG_H

#include <stddef.h>
#include <stdint.h>

#include "siamese/siamese.h"

/* Decodes the PNG in `data` (`size` bytes) into `out` (height*width bytes, 0..255), colour by
 * the grey rule. `name` is only used in messages. SM_ERR_FORMAT (damaged), SM_ERR_SHAPE,
 * SM_ERR_LIMIT (a side over SM_LIMIT_IMAGE_SIDE, checked from the header), SM_ERR_NOMEM. */
sm_status sm__png_decode(const void *data, size_t size, const char *name, int height, int width,
                         uint8_t *out);
/* The same for a PNG of any size: *out (free with sm__free) receives *height x *width bytes. */
sm_status sm__png_decode_any(const void *data, size_t size, const char *name, int *height,
                             int *width, uint8_t **out);

#endif
