/* SPDX-License-Identifier: MIT */
/* Atomic replacement by temporary file + fsync + rename + directory fsync: the sequence that
 * makes the new contents durable before the name points at them, so a crash leaves either the
 * old file or the new one, never a torn mix. */
#include "file_atomic.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "error.h"

#ifndef O_CLOEXEC
#  define O_CLOEXEC 0
#endif
#ifndef O_DIRECTORY
#  define O_DIRECTORY 0
#endif

static atomic_uint_fast64_t name_counter;

static uint64_t mix64(uint64_t z)
{
    z += 0x9E3779B97F4A7C15u;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9u;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBu;
    return z ^ (z >> 31);
}

/* Creates "<path>.tmp.XXXXXX" exclusively. Not mkstemp: that creates mode 0600, whereas a
 * checkpoint should get the same permissions as any file the user creates (0666 & ~umask),
 * and reading the umask portably means changing it, which races with other threads. */
static int create_temp(const char *path, char **tmp_out)
{
    static const char alphabet[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    size_t len = strlen(path);
    if (len > SIZE_MAX - 16) {
        errno = ENAMETOOLONG;
        return -1;
    }
    char *tmp = sm__malloc(len + 16);
    if (!tmp) {
        errno = ENOMEM;
        return -1;
    }
    struct timespec ts = {0, 0};
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t seed = ((uint64_t)getpid() << 32) ^ (uint64_t)ts.tv_nsec ^
                    ((uint64_t)ts.tv_sec << 20) ^ (uint64_t)(uintptr_t)tmp;
    for (int attempt = 0; attempt < 100; attempt++) {
        uint64_t r = mix64(seed ^ mix64(atomic_fetch_add(&name_counter, 1)));
        memcpy(tmp, path, len);
        memcpy(tmp + len, ".tmp.", 5);
        for (int i = 0; i < 6; i++) {
            tmp[len + 5 + (size_t)i] = alphabet[r % (sizeof alphabet - 1)];
            r /= sizeof alphabet - 1;
        }
        tmp[len + 11] = 0;
        int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd >= 0) {
            *tmp_out = tmp;
            return fd;
        }
        if (errno != EEXIST) break;
    }
    int e = errno;
    sm__free(tmp);
    errno = e;
    return -1;
}

/* The directory holding `path`, so the rename itself can be made durable. */
static char *parent_dir(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (!slash) return sm__strdup(".");
    size_t n = slash == path ? 1 : (size_t)(slash - path);
    char *dir = sm__malloc(n + 1);
    if (dir) {
        memcpy(dir, path, n);
        dir[n] = 0;
    }
    return dir;
}

static sm_status sync_dir(const char *dir, const char *path)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return sm__fail(SM_ERR_IO, "'%s' was written but its directory '%s' cannot be opened "
                                   "to sync it: %s", path, dir, strerror(errno));
    sm_status st = SM_OK;
    /* Some file systems cannot sync a directory; the rename is then as durable as they make
     * it, which is all anyone can have there. */
    if (fsync(fd) != 0 && errno != EINVAL && errno != ENOTSUP && errno != EBADF)
        st = sm__fail(SM_ERR_IO, "'%s' was written but syncing its directory failed: %s", path,
                      strerror(errno));
    close(fd);
    return st;
}

sm_status sm__afile_open(sm__afile *f, const char *path)
{
    SM_CHECK_ARG(f && path && *path, "sm__afile_open: NULL or empty path");
    f->fd = -1;
    f->tmp = NULL;
    f->path = sm__strdup(path);
    f->dir = parent_dir(path);
    if (!f->path || !f->dir) {
        sm__afile_abort(f);
        return sm__fail(SM_ERR_NOMEM, "out of memory opening '%s'", path);
    }
    f->fd = create_temp(path, &f->tmp);
    if (f->fd < 0) {
        int e = errno;
        sm__afile_abort(f);
        if (e == ENOMEM) return sm__fail(SM_ERR_NOMEM, "out of memory opening '%s'", path);
        return sm__fail(SM_ERR_IO, "cannot create a temporary file beside '%s': %s", path,
                        strerror(e));
    }
    return SM_OK;
}

sm_status sm__afile_write(sm__afile *f, const void *buf, size_t n)
{
    SM_CHECK_ARG(f && f->fd >= 0 && (buf || n == 0), "sm__afile_write: file not open");
    const uint8_t *p = buf;
    while (n > 0) {
        /* Linux writes at most ~2 GiB per call; smaller pieces also keep EINTR retries cheap. */
        size_t chunk = n < ((size_t)1 << 30) ? n : ((size_t)1 << 30);
        ssize_t w = write(f->fd, p, chunk);
        if (w < 0) {
            if (errno == EINTR) continue;
            return sm__fail(SM_ERR_IO, "cannot write '%s': %s", f->path, strerror(errno));
        }
        if (w == 0) return sm__fail(SM_ERR_IO, "cannot write '%s': no progress", f->path);
        p += w;
        n -= (size_t)w;
    }
    return SM_OK;
}

void sm__afile_abort(sm__afile *f)
{
    if (!f) return;
    if (f->fd >= 0) close(f->fd);
    if (f->tmp) unlink(f->tmp);
    sm__free(f->tmp);
    sm__free(f->path);
    sm__free(f->dir);
    f->fd = -1;
    f->tmp = NULL;
    f->path = NULL;
    f->dir = NULL;
}

sm_status sm__afile_commit(sm__afile *f)
{
    SM_CHECK_ARG(f && f->fd >= 0, "sm__afile_commit: file not open");
    sm_status st = SM_OK;
    int rc;
    do rc = fsync(f->fd);
    while (rc != 0 && errno == EINTR);
    if (rc != 0) st = sm__fail(SM_ERR_IO, "cannot sync '%s': %s", f->tmp, strerror(errno));
    /* close() can report a delayed write error (NFS): it counts as a failed write. */
    rc = close(f->fd);
    f->fd = -1;
    if (st == SM_OK && rc != 0 && errno != EINTR)
        st = sm__fail(SM_ERR_IO, "cannot close '%s': %s", f->tmp, strerror(errno));
    if (st == SM_OK && rename(f->tmp, f->path) != 0)
        st = sm__fail(SM_ERR_IO, "cannot rename '%s' to '%s': %s", f->tmp, f->path,
                      strerror(errno));
    if (st != SM_OK) {
        sm__afile_abort(f);
        return st;
    }
    sm__free(f->tmp); /* renamed: nothing to remove any more */
    f->tmp = NULL;
    st = sync_dir(f->dir, f->path);
    sm__afile_abort(f);
    return st;
}

sm_status sm__file_read_all(const char *path, size_t max_size, uint8_t **out, size_t *size)
{
    SM_CHECK_ARG(path && out && size, "sm__file_read_all: NULL argument");
    int fd;
    do fd = open(path, O_RDONLY | O_CLOEXEC);
    while (fd < 0 && errno == EINTR);
    if (fd < 0) return sm__fail(SM_ERR_IO, "cannot open '%s': %s", path, strerror(errno));
    struct stat sb;
    sm_status st = SM_OK;
    uint8_t *buf = NULL;
    size_t n = 0, got = 0;
    if (fstat(fd, &sb) != 0) {
        st = sm__fail(SM_ERR_IO, "cannot stat '%s': %s", path, strerror(errno));
    } else if (!S_ISREG(sb.st_mode)) {
        st = sm__fail(SM_ERR_IO, "'%s' is not a regular file", path);
    } else if (sb.st_size < 0 || (uintmax_t)sb.st_size > (uintmax_t)max_size) {
        st = sm__fail(SM_ERR_LIMIT, "'%s' is %jd bytes, more than the limit of %zu", path,
                      (intmax_t)sb.st_size, max_size);
    } else {
        n = (size_t)sb.st_size;
        buf = sm__malloc(n ? n : 1);
        if (!buf) st = sm__fail(SM_ERR_NOMEM, "out of memory reading '%s' (%zu bytes)", path, n);
    }
    while (st == SM_OK && got < n) {
        size_t chunk = n - got < ((size_t)1 << 30) ? n - got : ((size_t)1 << 30);
        ssize_t r = read(fd, buf + got, chunk);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) st = sm__fail(SM_ERR_IO, "cannot read '%s': %s", path, strerror(errno));
        else if (r == 0)
            st = sm__fail(SM_ERR_IO, "'%s' shrank while being read (%zu of %zu bytes)", path,
                          got, n);
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
