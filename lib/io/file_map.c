/* SPDX-License-Identifier: MIT */
/* Read-only file mappings (io/file_map.h). */
#include "io/file_map.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "common/alloc.h"
#include "common/error.h"
#include "io/file_read.h" /* the same open and checks as the whole-file reader */

static const uint8_t empty_file[1];

sm_status sm__file_map(const char *path, uint64_t max_size, const char *limit_name,
                       sm__mapped_file **out)
{
    SM_CHECK_ARG(path && out, "sm__file_map: NULL argument");
    int fd;
    size_t size;
    SM_TRY(sm__file_open_sized(path, max_size, limit_name, &fd, &size));
    sm_status st = SM_OK;
    sm__mapped_file *m = sm__calloc(1, sizeof *m);
    if (!m) {
        st = sm__fail(SM_ERR_NOMEM, "out of memory mapping '%s'", path);
    } else if (size == 0) {
        m->base = empty_file; /* mmap refuses a length of 0 */
    } else {
        void *p = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED) st = sm__fail(SM_ERR_IO, "cannot map '%s': %s", path, strerror(errno));
        else m->base = p, m->size = size;
    }
    close(fd); /* the mapping keeps the file */
    if (st != SM_OK) {
        sm__free(m);
        return st;
    }
    *out = m;
    return SM_OK;
}

void sm__file_unmap(sm__mapped_file *m)
{
    if (!m) return;
    if (m->size) munmap((void *)m->base, m->size);
    sm__free(m);
}
