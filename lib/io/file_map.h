/* SPDX-License-Identifier: MIT */
/* Private: a whole file mapped read-only into memory (galleries use their feature rows in place,
 * docs/gallery.md "Mapped files"). */
#ifndef SM_LIB_IO_FILE_MAP_H
#define SM_LIB_IO_FILE_MAP_H

#include <stddef.h>
#include <stdint.h>

#include "siamese/siamese.h"

typedef struct sm__mapped_file {
    const uint8_t *base; /* the file's bytes, read-only (an empty file: a valid empty buffer) */
    size_t size;
} sm__mapped_file;

/* Maps a whole regular file of at most `max_size` bytes (MAP_PRIVATE, PROT_READ): pages are read
 * when first touched. The bytes stay valid until sm__file_unmap, whatever happens to the path
 * (a rename over it, as our atomic writes do, leaves the mapped file as it was); a file that
 * another program truncates while mapped makes a later read fault (SIGBUS), so only files that
 * are replaced, never rewritten in place, should be mapped. Statuses as sm__file_read_all
 * (SM_ERR_IO, SM_ERR_LIMIT naming `limit_name`, SM_ERR_NOMEM). */
sm_status sm__file_map(const char *path, uint64_t max_size, const char *limit_name,
                       sm__mapped_file **out);
/* NULL: no-op. */
void sm__file_unmap(sm__mapped_file *m);

#endif
