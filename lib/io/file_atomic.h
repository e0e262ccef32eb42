/* SPDX-License-Identifier: MIT */
/* Private: whole-file I/O with the guarantees checkpoints need. A file written through
 * sm__afile either appears complete under its name or not at all (the previous file, if any,
 * stays as it was), and survives a crash once commit returns (unless the directory could not be
 * synced: a logged warning). Every failure is SM_ERR_IO naming the path and the system's
 * reason. */
#ifndef SM_LIB_FILE_ATOMIC_H
#define SM_LIB_FILE_ATOMIC_H

#include <stddef.h>
#include <stdint.h>

#include "siamese/siamese.h"

typedef struct sm__afile {
    int fd;     /* the temporary file, -1 when closed */
    char *path; /* target */
    char *tmp;  /* "<path>" + sm__afile_temp_suffix in the same directory, so rename cannot
                   cross devices;
                   NULL while the file is unnamed (O_TMPFILE, until commit) */
    char *dir;  /* the directory, to sync after the rename (found up front: nothing may fail
                   for want of memory once the target is replaced) */
} sm__afile;

/* What a temporary file's name adds to its target's: the mark, 8 random characters and 4 that
 * are a keyed hash of the target's base name and those 8, so a cleaner can tell our files from
 * any other (file_atomic.c). Exposed for the tests, which make dead writers' files. */
#define SM__AFILE_TEMP_MARK ".libsiamese-tmp."
enum { SM__AFILE_SUFFIX_SIZE = sizeof SM__AFILE_TEMP_MARK - 1 + 12 + 1 };
void sm__afile_temp_suffix(const char *base, uint64_t random, char out[SM__AFILE_SUFFIX_SIZE]);

/* Creates the temporary file beside `path`. On failure nothing is left behind. */
sm_status sm__afile_open(sm__afile *f, const char *path);
/* Appends bytes. On failure the caller still calls sm__afile_abort. */
sm_status sm__afile_write(sm__afile *f, const void *buf, size_t n);
/* Flushes to disk, renames over the target and syncs the directory. Releases `f` whether or not
 * it succeeds; on failure the temporary file is removed and the target is untouched. SM_OK
 * once the rename is done: a directory that cannot be synced after it is a warning through the
 * log (the new file is in place; it may not survive a power loss), not a failure, since a
 * failure promises the old file. */
sm_status sm__afile_commit(sm__afile *f);
/* The directory sync's fsync (tests replace it to make it fail). */
extern int (*sm__afile_test_dir_fsync)(int fd);
/* Closes and removes the temporary file; the target is untouched. Safe after a failed open or
 * commit (then a no-op). */
void sm__afile_abort(sm__afile *f);

#endif
