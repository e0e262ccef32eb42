/* SPDX-License-Identifier: MIT */
/* Private: reading a whole file, the one way the library does it (and opening one to map it). */
#ifndef SM_LIB_IO_FILE_READ_H
#define SM_LIB_IO_FILE_READ_H

#include <stddef.h>
#include <stdint.h>

#include "siamese/siamese.h"

/* Opens a regular file of at most `max_size` bytes for reading: *fd (close it) and its *size.
 * The checks and messages both whole-file readers (this one and io/file_map.h) give: SM_ERR_IO
 * (missing, unreadable, not a regular file), SM_ERR_LIMIT (as below); nothing stays open on
 * failure. */
sm_status sm__file_open_sized(const char *path, uint64_t max_size, const char *limit_name,
                              int *fd, size_t *size);

/* Reads a whole regular file of at most `max_size` bytes into a fresh sm__malloc'd buffer (free
 * with sm__free). SM_ERR_IO (missing, unreadable, not a regular file, shrank while read),
 * SM_ERR_LIMIT (larger than `max_size`; the message names `limit_name`, the sm_limit that set
 * it, when not NULL), SM_ERR_NOMEM. */
sm_status sm__file_read_all(const char *path, uint64_t max_size, const char *limit_name,
                            uint8_t **out, size_t *size);

#endif
