/* SPDX-License-Identifier: MIT */
/* Atomic replacement by temporary file + fsync + rename + directory fsync: the sequence that
 * makes the new contents durable before the name points at them, so a crash leaves either the
 * old file or the new one, never a torn mix.
 *
 * A process killed while saving leaves its temporary file behind; a job killed and restarted
 * hundreds of times would fill the disk with them. So each writer holds a lock on its
 * temporary file (an open-file-description lock, released by the kernel when the process dies,
 * however it dies) from creation until after the rename, and every save first removes the
 * temporary files of the same target that a dead writer of ours left: names that are provably
 * ours ("<path>.libsiamese-tmp." + 8 random characters + 4 that are a keyed hash of the target's
 * name and those 8, so neither a user's "ck.safetensors.tmp.backup" nor another tool's mkstemp
 * file can pass for one), regular files of our own user, not locked, and either not empty or
 * older than a minute (a writer locks its file right after creating it, before the first
 * byte). Where the system has O_TMPFILE, the file has no name at all until it is complete, so
 * a kill during a save leaves nothing; only a kill between naming and renaming can, and the
 * next save removes it. */
#define _GNU_SOURCE /* F_OFD_SETLK */
#include "io/file_atomic.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/alloc.h"
#include "common/error.h"

#ifndef O_CLOEXEC
#define O_CLOEXEC 0
#endif
#ifndef O_DIRECTORY
#define O_DIRECTORY 0
#endif

static atomic_uint_fast64_t name_counter;

static const char temp_alphabet[] =
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

/* A non-blocking exclusive lock on the whole file, owned by the open file description (so a
 * second descriptor of this process, or a thread, is another owner); 0 when taken. */
static int lock_nb(int fd)
{
#ifdef F_OFD_SETLK
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0};
    if (fcntl(fd, F_OFD_SETLK, &fl) == 0) return 0;
    if (errno != EINVAL) return -1;
#endif
    return flock(fd, LOCK_EX | LOCK_NB);
}

static uint64_t mix64(uint64_t z)
{
    z += 0x9E3779B97F4A7C15u;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9u;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBu;
    return z ^ (z >> 31);
}

enum { N_ALPHA = sizeof temp_alphabet - 1 };

/* The 4 check characters of a temporary name: a keyed hash of the target's base name and the
 * 8 random characters (1 in 62^4 = 14.8 million for a name we did not make). */
static void temp_check(const char *base, size_t base_len, const char *random8, char out[4])
{
    uint64_t h = 0x6c6962736961ull; /* the key: "libsia" */
    for (size_t i = 0; i < base_len; i++) h = mix64(h ^ (unsigned char)base[i]);
    for (size_t i = 0; i < 8; i++) h = mix64(h ^ ((uint64_t)(unsigned char)random8[i] << 8));
    for (int i = 0; i < 4; i++, h /= N_ALPHA) out[i] = temp_alphabet[h % N_ALPHA];
}

void sm__afile_temp_suffix(const char *base, uint64_t random, char out[SM__AFILE_SUFFIX_SIZE])
{
    memcpy(out, SM__AFILE_TEMP_MARK, sizeof SM__AFILE_TEMP_MARK - 1);
    char *r = out + sizeof SM__AFILE_TEMP_MARK - 1;
    for (int i = 0; i < 8; i++, random /= N_ALPHA) r[i] = temp_alphabet[random % N_ALPHA];
    temp_check(base, strlen(base), r, r + 8);
    r[12] = 0;
}

/* Whether `name` is "<base>" + a suffix sm__afile_temp_suffix could have made for it. */
static int is_our_temp(const char *name, const char *base, size_t base_len)
{
    const size_t mark = sizeof SM__AFILE_TEMP_MARK - 1;
    if (strncmp(name, base, base_len) != 0 ||
        strncmp(name + base_len, SM__AFILE_TEMP_MARK, mark) != 0)
        return 0;
    const char *r = name + base_len + mark;
    if (strlen(r) != 12 || strspn(r, temp_alphabet) != 12) return 0;
    char check[4];
    temp_check(base, base_len, r, check);
    return memcmp(check, r + 8, 4) == 0;
}

/* Removes the temporary files of `path` that their writers left when they died (see the top of
 * the file). Best effort: whatever cannot be examined is left alone. */
static void remove_stale_temps(const char *dir, const char *path)
{
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    const size_t base_len = strlen(base);
    if (base_len == 0) return;
    DIR *d = opendir(dir);
    if (!d) return;
    const int dfd = dirfd(d);
    const time_t now = time(NULL);
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        if (!is_our_temp(e->d_name, base, base_len)) continue;
        int fd = openat(dfd, e->d_name, O_RDWR | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
        if (fd < 0) continue;
        struct stat sb;
        if (fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode) && sb.st_uid == geteuid() &&
            (sb.st_size > 0 || now - sb.st_mtime > 60) && lock_nb(fd) == 0)
            unlinkat(dfd, e->d_name, 0);
        close(fd); /* releases the lock taken */
    }
    closedir(d);
}

/* Gives a new file a temporary name beside `path` (sm__afile_temp_suffix), exclusively:
 * creates it (anon_fd < 0; its descriptor is returned, locked) or links the unnamed file
 * anon_fd there (anon_fd is returned). Not mkstemp: that creates mode 0600, whereas a
 * checkpoint should get the same permissions as any file the user creates (0666 & ~umask),
 * and reading the umask portably means changing it, which races with other threads. */
static int create_temp(const char *path, char **tmp_out, int anon_fd)
{
    size_t len = strlen(path);
    if (len > SIZE_MAX - SM__AFILE_SUFFIX_SIZE) {
        errno = ENAMETOOLONG;
        return -1;
    }
    char *tmp = sm__malloc(len + SM__AFILE_SUFFIX_SIZE);
    if (!tmp) {
        errno = ENOMEM;
        return -1;
    }
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    struct timespec ts = {0, 0};
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t seed = ((uint64_t)getpid() << 32) ^ (uint64_t)ts.tv_nsec ^
                    ((uint64_t)ts.tv_sec << 20) ^ (uint64_t)(uintptr_t)tmp;
    for (int attempt = 0; attempt < 100; attempt++) {
        uint64_t r = mix64(seed ^ mix64(atomic_fetch_add(&name_counter, 1)));
        memcpy(tmp, path, len);
        sm__afile_temp_suffix(base, r, tmp + len);
        int fd = -1;
        if (anon_fd < 0) {
            fd = open(tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
            /* held until after the rename (a file system without locks: the file is then
             * never taken for a dead writer's either, as no one can lock it) */
            if (fd >= 0) (void)lock_nb(fd);
        } else {
            char proc[64];
            snprintf(proc, sizeof proc, "/proc/self/fd/%d", anon_fd);
            if (linkat(AT_FDCWD, proc, AT_FDCWD, tmp, AT_SYMLINK_FOLLOW) == 0) fd = anon_fd;
        }
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

int (*sm__afile_test_dir_fsync)(int fd) = fsync;

/* Makes the rename durable. The file at `path` is already the new one, whatever happens here:
 * a failure is reported as a warning (the rename may not survive a power loss), not as a
 * failed save, since a failed save promises the old file is still there. */
static void sync_dir(const char *dir, const char *path)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        sm__log(SM_LOG_WARN,
                "'%s' was written, but its directory '%s' cannot be opened to "
                "sync it (%s): the new file may not survive a power loss",
                path, dir, strerror(errno));
        return;
    }
    /* Some file systems cannot sync a directory; the rename is then as durable as they make
     * it, which is all anyone can have there. */
    if (sm__afile_test_dir_fsync(fd) != 0 && errno != EINVAL && errno != ENOTSUP && errno != EBADF)
        sm__log(SM_LOG_WARN,
                "'%s' was written, but syncing its directory failed (%s): the "
                "new file may not survive a power loss",
                path, strerror(errno));
    close(fd);
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
    remove_stale_temps(f->dir, path);
#ifdef O_TMPFILE
    /* Where the system can, the file has no name while it is written: a kill then leaves
     * nothing at all (the name comes at commit, just before the rename). */
    if (access("/proc/self/fd", X_OK) == 0) {
        f->fd = open(f->dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0666);
        if (f->fd >= 0) {
            (void)lock_nb(f->fd);
            return SM_OK;
        }
    }
#endif
    f->fd = create_temp(path, &f->tmp, -1);
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
    if (rc != 0)
        st = sm__fail(SM_ERR_IO, "cannot sync the temporary file of '%s': %s", f->path,
                      strerror(errno));
    if (st == SM_OK && !f->tmp && create_temp(f->path, &f->tmp, f->fd) < 0)
        st = errno == ENOMEM ? sm__fail(SM_ERR_NOMEM,
                                        "out of memory naming the temporary file of '%s'", f->path)
                             : sm__fail(SM_ERR_IO, "cannot name the temporary file of '%s': %s",
                                        f->path, strerror(errno));
    /* A second descriptor of the same open file keeps the lock past the close below, until the
     * file has its final name (a cleaner must not take it for a dead writer's in between). */
    int keep = fcntl(f->fd, F_DUPFD_CLOEXEC, 0);
    /* close() can report a delayed write error (NFS): it counts as a failed write. */
    rc = close(f->fd);
    f->fd = -1;
    if (st == SM_OK && rc != 0 && errno != EINTR)
        st = sm__fail(SM_ERR_IO, "cannot close the temporary file of '%s': %s", f->path,
                      strerror(errno));
    if (st == SM_OK && rename(f->tmp, f->path) != 0)
        st =
            sm__fail(SM_ERR_IO, "cannot rename '%s' to '%s': %s", f->tmp, f->path, strerror(errno));
    if (keep >= 0) close(keep);
    if (st != SM_OK) {
        sm__afile_abort(f);
        return st;
    }
    sm__free(f->tmp); /* renamed: nothing to remove any more */
    f->tmp = NULL;
    sync_dir(f->dir, f->path);
    sm__afile_abort(f);
    return SM_OK;
}
