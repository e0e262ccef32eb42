/* SPDX-License-Identifier: MIT */
/* Private: zip archives read-only (io/zip_read.c, on libzip), with the library's limits. */
#ifndef SM_LIB_IO_ZIP_H
#define SM_LIB_IO_ZIP_H

#include <stddef.h>
#include <stdint.h>

#include "siamese/siamese.h"

/* A zip archive opened read-only. */
typedef struct sm__zip sm__zip;

/* SM_ERR_IO (cannot open or read), SM_ERR_FORMAT (not a zip or damaged), SM_ERR_NOMEM. */
sm_status sm__zip_open(const char *path, sm__zip **out);
/* The same for a zip held in memory (borrowed: it must outlive the handle); `name` is used in
 * messages. */
sm_status sm__zip_open_buffer(const void *data, size_t size, const char *name, sm__zip **out);
void sm__zip_close(sm__zip *zip);
size_t sm__zip_num_entries(const sm__zip *zip);
/* The entry's name inside the archive, or NULL if it has none. Valid until the zip is closed. */
const char *sm__zip_entry_name(sm__zip *zip, size_t index);
/* Reads a whole entry into a new buffer (free with sm__free). SM_ERR_LIMIT when its declared
 * size is over SM_LIMIT_ENTRY_BYTES (checked before allocating; no more than the declared size
 * is ever read), SM_ERR_FORMAT when damaged (bad checksum, wrong size), SM_ERR_NOMEM. */
sm_status sm__zip_read(sm__zip *zip, size_t index, uint8_t **data, size_t *size);

#endif
