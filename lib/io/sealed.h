/* SPDX-License-Identifier: MIT */
/* Private: sealed safetensors files, the form of checkpoints and galleries. The metadata names
 * the format and its version and ends with "crc32": the CRC-32 of the whole file computed with
 * those 8 hex digits counted as '0's, so a damaged file is refused before its values are used.
 * The data is streamed twice, once to seal and once to write, so nothing the size of the file
 * is ever held in memory; the two passes must give the same bytes. */
#ifndef SM_LIB_IO_SEALED_H
#define SM_LIB_IO_SEALED_H

#include <stddef.h>
#include <stdint.h>

#include "io/safetensors.h"
#include "siamese/siamese.h"

/* Where a producer's bytes go (a pass of sm__sealed_write). */
typedef struct sm__sealed_out sm__sealed_out;
sm_status sm__sealed_emit(sm__sealed_out *out, const void *p, size_t n);

/* Emits the data region (the tensors' bytes, in the header's order) through `out`. */
typedef sm_status (*sm__sealed_data_fn)(void *user, sm__sealed_out *out);

/* Writes `path` atomically (io/file_atomic.h): the header of the `nt` tensors and `nm` metadata
 * entries, whose last must be {"crc32", "00000000"}, then the data from `produce`, run once to
 * seal and once to write. SM_ERR_DEVICE when the second pass gives other bytes than the first
 * (`data` names them in the message); else the statuses of the header and the file. */
sm_status sm__sealed_write(const char *path, const sm__st_out_tensor *t, size_t nt,
                           sm__st_out_meta *m, size_t nm, sm__sealed_data_fn produce, void *user,
                           const char *data);

/* What sm__sealed_write_with adds (zero: nothing, as sm__sealed_write). */
typedef struct sm__sealed_opts {
    size_t data_align; /* the data region starts at a multiple of this (0: 8) */
    /* A part of the data region, bytes [part_begin, part_end), whose own CRC-32 the metadata
     * entry `part_key` (a placeholder "00000000" before the crc32 entry) receives: the whole
     * file's seal can then be checked without reading the part (sm__sealed_check_with). */
    const char *part_key;
    uint64_t part_begin, part_end;
} sm__sealed_opts;
sm_status sm__sealed_write_with(const char *path, const sm__st_out_tensor *t, size_t nt,
                                sm__st_out_meta *m, size_t nm, sm__sealed_data_fn produce,
                                void *user, const char *data, const sm__sealed_opts *opts);

/* Exactly `digits` lowercase hex digits at `s` (what sealed files write: the crc32, ids, RNG
 * states) into *out; 0 when one is not (a string's end included). Callers that want the whole
 * string to be the number check its length. */
int sm__parse_hex(const char *s, size_t digits, uint64_t *out);

/* A parsed file (`buf`, `size` bytes) is of `format`, at a version from 1 to `max_version`, and
 * its seal holds. SM_ERR_FORMAT (another format, a bad version or seal: damaged),
 * SM_ERR_VERSION (a newer version). `kind` names it in messages ("checkpoint"). */
sm_status sm__sealed_check(const sm__st_file *f, const uint8_t *buf, size_t size, const char *path,
                           const char *format, uint64_t max_version, const char *kind);

/* sm__sealed_check where the file may record a part's CRC-32 (sm__sealed_opts): bytes
 * [part_begin, part_end) of the file, under the metadata key `part_key`. Whole (read_part 1):
 * every byte is read, and both the seal and the part's CRC must hold. Partial (read_part 0), for
 * a file that records the part's CRC: the part is not read; the seal must hold with the
 * recorded CRC standing for the part's bytes, so every byte outside the part is checked, and a
 * damaged part goes unnoticed. A file without `part_key` is checked whole either way.
 * `*part_read` (optional) receives 1 when the part was read. Statuses as sm__sealed_check. */
sm_status sm__sealed_check_with(const sm__st_file *f, const uint8_t *buf, size_t size,
                                const char *path, const char *format, uint64_t max_version,
                                const char *kind, const char *part_key, uint64_t part_begin,
                                uint64_t part_end, int read_part, int *part_read);

#endif
