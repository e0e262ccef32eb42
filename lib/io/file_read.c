/* SPDX-License-Identifier: MIT */
/* The one whole-file reader (io/file_read.h): checkpoints, galleries, PNG files and the files
 * of a dataset folder all come through here. */
#include "io/file_read.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/alloc.h"
#include "common/error.h"

#ifndef O_CLOEXEC
#define O_CLOEXEC 0
#endif

sm_status sm__file_open_sized(const char *path, uint64_t max_size, const char *limit_name,
                              int *fd_out, size_t *size)
{
    int fd;
    do fd = open(path, O_RDONLY | O_CLOEXEC);
    while (fd < 0 && errno == EINTR);
    if (fd < 0) return sm__fail(SM_ERR_IO, "cannot open '%s': %s", path, strerror(errno));
    struct stat sb;
    sm_status st = SM_OK;
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
    }
    if (st != SM_OK) {
        close(fd);
        return st;
    }
    *fd_out = fd;
    *size = (size_t)sb.st_size;
    return SM_OK;
}

sm_status sm__file_read_all(const char *path, uint64_t max_size, const char *limit_name,
                            uint8_t **out, size_t *size)
{
    SM_CHECK_ARG(path && out && size, "sm__file_read_all: NULL argument");
    int fd;
    size_t n, got = 0;
    SM_TRY(sm__file_open_sized(path, max_size, limit_name, &fd, &n));
    sm_status st = SM_OK;
    uint8_t *buf = sm__malloc(n ? n : 1);
    if (!buf) st = sm__fail(SM_ERR_NOMEM, "out of memory reading '%s' (%zu bytes)", path, n);
    while (st == SM_OK && got < n) {
        size_t chunk = n - got < ((size_t)1 << 30) ? n - got : ((size_t)1 << 30);
        ssize_t r = read(fd, buf + got, chunk);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) st = sm__fail(SM_ERR_IO, "cannot read '%s': %s", path, strerror(errno));
        else if (r == 0)
            st = sm__fail(SM_ERR_IO, "'%s' shrank while being read (%zu of %zu bytes)", path, got,
                          n);
        else got += (size_t)r;
    }
    close(fd);
    if (st != SM_OK) {
        sm__free(buf);
        return st;
    }
    *out = buf;
    *size = n;
    return SM_OK;
}
