/* SPDX-License-Identifier: MIT */
/* Read-only file mappings (io/file_map.h). */
#include "io/file_map.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/alloc.h"
#include "common/error.h"

#ifndef O_CLOEXEC
#define O_CLOEXEC 0
#endif

static const uint8_t empty_file[1];

sm_status sm__file_map(const char *path, uint64_t max_size, const char *limit_name,
                       sm__mapped_file **out)
{
    SM_CHECK_ARG(path && out, "sm__file_map: NULL argument");
    int fd;
    do fd = open(path, O_RDONLY | O_CLOEXEC);
    while (fd < 0 && errno == EINTR);
    if (fd < 0) return sm__fail(SM_ERR_IO, "cannot open '%s': %s", path, strerror(errno));
    struct stat sb;
    sm_status st = SM_OK;
    sm__mapped_file *m = NULL;
    if (fstat(fd, &sb) != 0) {
        st = sm__fail(SM_ERR_IO, "cannot stat '%s': %s", path, strerror(errno));
    } else if (!S_ISREG(sb.st_mode)) {
        st = sm__fail(SM_ERR_IO, "'%s' is not a regular file", path);
    } else if (sb.st_size < 0 || (uintmax_t)sb.st_size > max_size ||
               (uintmax_t)sb.st_size > SIZE_MAX) {
        st = limit_name
                 ? sm__fail(SM_ERR_LIMIT,
                            "'%s' is %jd bytes, more than %s (%" PRIu64
                            "); raise it with sm_set_limit(%s)",
                            path, (intmax_t)sb.st_size, limit_name, max_size, limit_name)
                 : sm__fail(SM_ERR_LIMIT, "'%s' is %jd bytes, more than the limit of %" PRIu64,
                            path, (intmax_t)sb.st_size, max_size);
    } else if (!(m = sm__calloc(1, sizeof *m))) {
        st = sm__fail(SM_ERR_NOMEM, "out of memory mapping '%s'", path);
    } else if (sb.st_size == 0) {
        m->base = empty_file; /* mmap refuses a length of 0 */
    } else {
        void *p = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED) st = sm__fail(SM_ERR_IO, "cannot map '%s': %s", path, strerror(errno));
        else m->base = p, m->size = (size_t)sb.st_size;
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
