/* SPDX-License-Identifier: MIT */
/* Leftover temporary files of killed saves (lib/io/file_atomic.c): a save removes the temporary
 * files that dead writers of ours left ("<path>.libsiamese-tmp." + 8 random characters + 4 of
 * their keyed hash; not locked; not empty, or older than a minute) and leaves alone a live
 * writer's (locked), a fresh empty one, a user's "<path>.tmp.backup", another tool's mkstemp
 * file, a name of our shape whose check characters are wrong, and other targets' files; saves
 * killed over and over leave at most one leftover beside the checkpoint. A directory that
 * cannot be synced after the rename is a warning, not a failed save: the new file is in place.
 * Also: the checkpoint metadata store refuses more keys than it has slots (SM_ERR_LIMIT), in
 * tests/test_ck_meta.c. */
#define _GNU_SOURCE /* F_OFD_SETLK */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "io/file_atomic.h"
#include "fixtures.h"
#include "siamese/siamese.h"

#define ARCH "1x32x32:conv8k3,relu,pool2,flatten,fc512"

typedef struct model {
    sm_backend *be;
    sm_arch *arch;
    sm_subnet *sub;
    sm_head *head;
} model;

static void model_create(model *m)
{
    assert_int_equal(sm_backend_create(SM_BACKEND_CPU, &m->be), SM_OK);
    assert_int_equal(sm_arch_from_string(ARCH, &m->arch), SM_OK);
    assert_int_equal(sm_subnet_create(m->be, m->arch, 1, &m->sub), SM_OK);
    assert_int_equal(sm_head_create(m->be, sm_subnet_feature_dim(m->sub), 2, &m->head), SM_OK);
}

static void model_destroy(model *m)
{
    sm_head_destroy(m->head);
    sm_subnet_destroy(m->sub);
    sm_arch_destroy(m->arch);
    sm_backend_destroy(m->be);
}

static int exists(const char *dir, const char *name)
{
    char *p = fx_join(dir, name);
    int e = access(p, F_OK) == 0;
    free(p);
    return e;
}

static void put(const char *dir, const char *name, const char *text, time_t age_s)
{
    char *p = fx_join(dir, name);
    assert_int_equal(fx_write_bytes(p, text, strlen(text)), 0);
    if (age_s) {
        struct timespec ts[2];
        clock_gettime(CLOCK_REALTIME, &ts[0]);
        ts[0].tv_sec -= age_s;
        ts[1] = ts[0];
        assert_int_equal(utimensat(AT_FDCWD, p, ts, 0), 0);
    }
    free(p);
}

/* Temporary files of "ck.safetensors" in dir. */
static int count_temps(const char *dir)
{
    DIR *d = opendir(dir);
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d)) != NULL;)
        n += strncmp(e->d_name, "ck.safetensors" SM__AFILE_TEMP_MARK,
                     strlen("ck.safetensors" SM__AFILE_TEMP_MARK)) == 0;
    if (d) closedir(d);
    return n;
}

/* The name a writer of ours gives a temporary file of `base` (static buffer: one at a time). */
static const char *ours(const char *base, uint64_t random)
{
    static char name[256];
    char suffix[SM__AFILE_SUFFIX_SIZE];
    sm__afile_temp_suffix(base, random, suffix);
    snprintf(name, sizeof name, "%s%s", base, suffix);
    return name;
}

static void test_stale_temps_removed_live_ones_kept(void **state)
{
    (void)state;
    char *dir = fx_tempdir();
    assert_non_null(dir);
    char dead[256], fresh[256], old_empty[256], live[256], bad_check[256];
    snprintf(dead, sizeof dead, "%s", ours("ck.safetensors", 1));
    snprintf(fresh, sizeof fresh, "%s", ours("ck.safetensors", 2));
    snprintf(old_empty, sizeof old_empty, "%s", ours("ck.safetensors", 3));
    snprintf(live, sizeof live, "%s", ours("ck.safetensors", 4));
    snprintf(bad_check, sizeof bad_check, "%s", ours("ck.safetensors", 5));
    char *last = bad_check + strlen(bad_check) - 1;
    *last = *last == 'a' ? 'b' : 'a';                               /* our shape, not our hash */
    put(dir, dead, "dead writer's bytes", 0);                       /* removed */
    put(dir, fresh, "", 0);                                         /* fresh, empty: kept */
    put(dir, old_empty, "", 120);                                   /* old, empty: removed */
    put(dir, live, "live writer's bytes", 0);                       /* locked below: kept */
    put(dir, bad_check, "x", 120);                                  /* not ours: kept */
    put(dir, "ck.safetensors.tmp.backup", "a user's copy", 120);    /* kept */
    put(dir, "ck.safetensors.tmp.Ab3xYz", "another tool's", 120);   /* mkstemp's shape: kept */
    put(dir, "ck.safetensors.tmp.AAAAAA", "an old version's", 120); /* not provably ours */
    put(dir, ours("other.safetensors", 6), "x", 0);                 /* another target: kept */
    char other[256];
    snprintf(other, sizeof other, "%s", ours("other.safetensors", 6));
    /* a live writer: another process holding the lock */
    int ready[2];
    assert_int_equal(pipe(ready), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        char *p = fx_join(dir, live);
        int fd = open(p, O_RDWR);
        struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
        int ok = fd >= 0 && fcntl(fd, F_OFD_SETLK, &fl) == 0;
        if (write(ready[1], ok ? "1" : "0", 1) != 1) _exit(1);
        pause();
        _exit(0);
    }
    char c = 0;
    assert_int_equal(read(ready[0], &c, 1), 1);
    assert_int_equal(c, '1');

    model m;
    model_create(&m);
    char *ck = fx_join(dir, "ck.safetensors");
    assert_int_equal(sm_model_save(m.sub, m.head, ck), SM_OK);
    assert_false(exists(dir, dead));
    assert_true(exists(dir, fresh));
    assert_false(exists(dir, old_empty));
    assert_true(exists(dir, live));
    assert_true(exists(dir, bad_check));
    assert_true(exists(dir, "ck.safetensors.tmp.backup"));
    assert_true(exists(dir, "ck.safetensors.tmp.Ab3xYz"));
    assert_true(exists(dir, "ck.safetensors.tmp.AAAAAA"));
    assert_true(exists(dir, other));
    /* the writer dies: its file is a dead writer's now */
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    assert_int_equal(sm_model_save(m.sub, m.head, ck), SM_OK);
    assert_false(exists(dir, live));
    assert_true(exists(dir, "ck.safetensors.tmp.backup"));
    close(ready[0]);
    close(ready[1]);
    free(ck);
    model_destroy(&m);
    fx_rmtree(dir);
    free(dir);
}

static void test_repeated_kills_leave_one_leftover(void **state)
{
    (void)state;
    char *dir = fx_tempdir();
    char *ck = fx_join(dir, "ck.safetensors");
    model m;
    model_create(&m);
    enum { KILLS = 40 };
    int max_left = 0, seen_left = 0;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    assert_int_equal(sm_model_save(m.sub, m.head, ck), SM_OK); /* a checkpoint to keep */
    clock_gettime(CLOCK_MONOTONIC, &t1);
    /* kill at random points of the first few saves */
    const long save_us = (t1.tv_sec - t0.tv_sec) * 1000000L + (t1.tv_nsec - t0.tv_nsec) / 1000;
    for (int k = 0; k < KILLS; k++) {
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            for (int i = 0;; i++) {
                if (getenv("DBG")) fprintf(stderr, "save %d\n", i);
                if (sm_model_save(m.sub, m.head, ck) != SM_OK) _exit(1);
            }
        }
        usleep((useconds_t)(save_us / 4 + (k * 7919L) % (3 * save_us + 1)));
        kill(pid, SIGKILL);
        int ws;
        waitpid(pid, &ws, 0);
        assert_true(WIFSIGNALED(ws));
        int left = count_temps(dir);
        if (left > max_left) max_left = left;
        seen_left += left > 0;
        assert_true(left <= 1);
    }
    /* the checkpoint itself is whole, and a completed save leaves nothing */
    sm_subnet *sub;
    sm_head *head;
    sm_status st = sm_model_load(m.be, ck, &sub, &head);
    if (st != SM_OK) printf("%s\n", sm_last_error());
    assert_int_equal(st, SM_OK);
    sm_subnet_destroy(sub);
    sm_head_destroy(head);
    assert_int_equal(sm_model_save(m.sub, m.head, ck), SM_OK);
    assert_int_equal(count_temps(dir), 0);
    printf("%d saves killed (a save takes %.1f ms): a leftover after %d of them, never more "
           "than %d at once\n",
           KILLS, (double)save_us / 1e3, seen_left, max_left);
    model_destroy(&m);
    free(ck);
    fx_rmtree(dir);
    free(dir);
}

static int failing_fsync(int fd)
{
    (void)fd;
    errno = EIO;
    return -1;
}

static int warnings;
static void on_log(void *user, sm_log_level level, const char *msg)
{
    (void)user;
    if (level == SM_LOG_WARN && strstr(msg, "may not survive a power loss")) warnings++;
}

/* The rename happened, so the new file is there: the save succeeded (with a warning), since a
 * failed save promises the old file. */
static void test_unsyncable_directory_is_a_warning(void **state)
{
    (void)state;
    char *dir = fx_tempdir();
    char *ck = fx_join(dir, "ck.safetensors");
    model a, b;
    model_create(&a);
    model_create(&b);
    sm_subnet_destroy(b.sub); /* other weights */
    assert_int_equal(sm_subnet_create(b.be, b.arch, 99, &b.sub), SM_OK);
    assert_int_equal(sm_model_save(a.sub, a.head, ck), SM_OK);
    size_t n_before = 0;
    uint8_t *before = fx_read_bytes(ck, &n_before);
    assert_non_null(before);
    sm_set_log_callback(on_log, NULL, SM_LOG_WARN);
    sm__afile_test_dir_fsync = failing_fsync;
    sm_status st = sm_model_save(b.sub, b.head, ck);
    sm__afile_test_dir_fsync = fsync;
    sm_set_log_callback(NULL, NULL, SM_LOG_WARN);
    size_t n_after = 0;
    uint8_t *after = fx_read_bytes(ck, &n_after);
    assert_non_null(after);
    const int replaced = n_after != n_before || memcmp(before, after, n_after) != 0;
    printf("directory sync failing: status %s, file %s, %d warning(s)\n", sm_status_name(st),
           replaced ? "replaced" : "untouched", warnings);
    /* the status says what is at the path: a failure only with the old file in place */
    assert_true(replaced);
    assert_int_equal(st, SM_OK);
    assert_int_equal(warnings, 1);
    free(before), free(after);
    model_destroy(&a);
    model_destroy(&b);
    free(ck);
    fx_rmtree(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stale_temps_removed_live_ones_kept),
        cmocka_unit_test(test_repeated_kills_leave_one_leftover),
        cmocka_unit_test(test_unsyncable_directory_is_a_warning),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
