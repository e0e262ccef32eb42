/* SPDX-License-Identifier: MIT */
/* Leftover temporary files of killed saves (lib/file_atomic.c): a save removes the
 * "<path>.tmp.XXXXXX" files that dead writers left (not locked; not empty, or older than a
 * minute) and leaves alone a live writer's (locked), a fresh empty one, other names and other
 * targets' files; saves killed over and over leave at most one leftover beside the checkpoint.
 * Also: the checkpoint metadata store refuses more keys than it has slots (SM_ERR_LIMIT), in
 * tests/test_ck_meta.c. */
#define _GNU_SOURCE /* F_OFD_SETLK */
#include <dirent.h>
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
        n += strncmp(e->d_name, "ck.safetensors.tmp.", 19) == 0;
    if (d) closedir(d);
    return n;
}

static void test_stale_temps_removed_live_ones_kept(void **state)
{
    (void)state;
    char *dir = fx_tempdir();
    assert_non_null(dir);
    put(dir, "ck.safetensors.tmp.AAAAAA", "dead writer's bytes", 0); /* removed */
    put(dir, "ck.safetensors.tmp.BBBBBB", "", 0);                    /* fresh, empty: kept */
    put(dir, "ck.safetensors.tmp.CCCCCC", "", 120);                  /* old, empty: removed */
    put(dir, "ck.safetensors.tmp.DDDDDD", "live writer's bytes", 0); /* locked below: kept */
    put(dir, "ck.safetensors.tmp.toolong1", "x", 0);                 /* not our pattern */
    put(dir, "other.safetensors.tmp.EEEEEE", "x", 0);                /* another target */
    /* a live writer: another process holding the lock */
    int ready[2];
    assert_int_equal(pipe(ready), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        char *p = fx_join(dir, "ck.safetensors.tmp.DDDDDD");
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
    assert_false(exists(dir, "ck.safetensors.tmp.AAAAAA"));
    assert_true(exists(dir, "ck.safetensors.tmp.BBBBBB"));
    assert_false(exists(dir, "ck.safetensors.tmp.CCCCCC"));
    assert_true(exists(dir, "ck.safetensors.tmp.DDDDDD"));
    assert_true(exists(dir, "ck.safetensors.tmp.toolong1"));
    assert_true(exists(dir, "other.safetensors.tmp.EEEEEE"));
    /* the writer dies: its file is a dead writer's now */
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    assert_int_equal(sm_model_save(m.sub, m.head, ck), SM_OK);
    assert_false(exists(dir, "ck.safetensors.tmp.DDDDDD"));
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
           "than %d at once\n", KILLS, (double)save_us / 1e3, seen_left, max_left);
    model_destroy(&m);
    free(ck);
    fx_rmtree(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stale_temps_removed_live_ones_kept),
        cmocka_unit_test(test_repeated_kills_leave_one_leftover),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
