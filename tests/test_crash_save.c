/* SPDX-License-Identifier: MIT */
/* Crash-safe checkpoints.
 *
 * Killed saves: a checkpoint A (a trainer after a few steps) is on disk; a child process loops
 * saving a different state B to the same path and is SIGKILLed at a moment spread over its
 * first two saves (calibrated from how long a save, and a fork plus a save, take here; the model
 * is large enough that a save takes tens of milliseconds). After every kill, sm_trainer_load of the path must succeed and
 * give exactly A or exactly B (parameters, Adam moments and step count, iteration, sampler),
 * never an error. A kill can leave a "<path>.libsiamese-tmp.*" file behind: harmless (never read,
 * random names, a later save still succeeds), counted and removed here.
 *
 * Full disk: a save that runs out of room (RLIMIT_FSIZE with SIGXFSZ ignored; as root also a
 * genuinely full tmpfs) is SM_ERR_IO naming the path, and the old file stays byte-identical.
 * Unwritable folder: a read-only folder (chmod 0500, or as root a read-only tmpfs), a path whose
 * folder is a file (ENOTDIR), a folder in /proc: SM_ERR_IO, the old file untouched. */
#include <dirent.h>
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>
#ifdef __linux__
#include <sys/mount.h>
#endif

#include "network/network.h"
#include "data/sampler.h"
#include "siamese/siamese.h"
#include "train_state.h"

/* 4x5x5 = 100 features into fc 6000: ~0.6M parameters, a ~7 MB trainer file with Adam */
#define ARCH   "1x12x12:conv4k3,relu,pool2,flatten,fc6000"
#define TRIALS 32

typedef struct env {
    char dir[256];
    char path[300]; /* the checkpoint under test */
    sm_backend *be;
    sm_dataset *ds;
} env;

typedef struct model {
    sm_subnet *s;
    sm_head *h;
    sm_adam *a;
    sm_trainer *t;
} model;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void model_make(const env *e, uint64_t seed, model *m)
{
    memset(m, 0, sizeof *m);
    sm_arch *arch;
    assert_int_equal(sm_arch_from_string(ARCH, &arch), SM_OK);
    assert_int_equal(sm_subnet_create(e->be, arch, seed, &m->s), SM_OK);
    sm_arch_destroy(arch);
    assert_int_equal(sm_head_create(e->be, sm_subnet_feature_dim(m->s), seed + 1, &m->h), SM_OK);
    assert_int_equal(sm_adam_create(m->s, m->h, &m->a), SM_OK);
    assert_int_equal(sm_trainer_create(m->s, m->h, m->a, e->ds, seed + 2, &m->t), SM_OK);
    assert_int_equal(sm_trainer_set_param(m->t, SM_TRAINER_BATCH_SIZE, 4), SM_OK);
}

static void model_free(model *m)
{
    sm_trainer_destroy(m->t);
    sm_adam_destroy(m->a);
    sm_head_destroy(m->h);
    sm_subnet_destroy(m->s);
}

static uint8_t *read_all(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc(len > 0 ? (size_t)len : 1);
    if (b && fread(b, 1, (size_t)len, f) != (size_t)len) {
        free(b);
        b = NULL;
    }
    fclose(f);
    *n = (size_t)len;
    return b;
}

/* Puts `data` at `path` by temporary file + rename (a test helper, not the library's). */
static void put_file(const char *path, const uint8_t *data, size_t n)
{
    char tmp[400];
    snprintf(tmp, sizeof tmp, "%s.restore", path);
    FILE *f = fopen(tmp, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
    assert_int_equal(rename(tmp, path), 0);
}

static void assert_file_is(const char *path, const uint8_t *want, size_t n)
{
    size_t m = 0;
    uint8_t *got = read_all(path, &m);
    assert_non_null(got);
    assert_int_equal(m, n);
    assert_memory_equal(got, want, n);
    free(got);
}

/* Removes the "<name>.libsiamese-tmp.*" files in `dir`; returns how many there were. */
static int remove_temps(const char *dir)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (!strstr(de->d_name, ".libsiamese-tmp.")) continue;
        char p[600];
        snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
        unlink(p);
        n++;
    }
    closedir(d);
    return n;
}

static void rm_tree(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) continue;
        char p[600];
        snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
        if (unlink(p) != 0) rm_tree(p);
    }
    closedir(d);
    rmdir(dir);
}

static int setup(void **state)
{
    env *e = calloc(1, sizeof *e);
    if (!e) return -1;
    const char *tmp = getenv("TMPDIR");
    snprintf(e->dir, sizeof e->dir, "%s/sm-crash-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(e->dir)) return -1;
    snprintf(e->path, sizeof e->path, "%s/trainer.safetensors", e->dir);
    if (sm_backend_create(SM_BACKEND_CPU, &e->be) != SM_OK) return -1;
    sm_backend_set_threads(e->be, 1);
    if (sm_dataset_create_synthetic(10, 3, 12, 12, 5, &e->ds) != SM_OK) return -1;
    *state = e;
    return 0;
}

static int teardown(void **state)
{
    env *e = *state;
    rm_tree(e->dir);
    sm_dataset_destroy(e->ds);
    sm_backend_destroy(e->be);
    free(e);
    return 0;
}

/* Trains `m` for `steps` more steps. */
static void train(model *m, int steps)
{
    for (int i = 0; i < steps; i++) assert_int_equal(sm_train_step(m->t, NULL), SM_OK);
}

static void expect_io(sm_status st, const char *what, const char *needle)
{
    if (st != SM_ERR_IO)
        fail_msg("%s: got %s (%s), expected SM_ERR_IO", what, sm_status_name(st), sm_last_error());
    if (needle && !strstr(sm_last_error(), needle))
        fail_msg("%s: message '%s' does not name '%s'", what, sm_last_error(), needle);
}

static void test_kill_during_save(void **state)
{
    env *e = *state;
    model m, check;
    model_make(e, 1, &m);
    model_make(e, 50, &check); /* loads land here */
    train(&m, 2);
    assert_int_equal(sm_trainer_save(m.t, e->path), SM_OK);
    size_t n_a;
    uint8_t *file_a = read_all(e->path, &n_a);
    assert_non_null(file_a);
    train_state A, B, got;
    train_state_take(m.t, &A);
    train(&m, 1);
    train_state_take(m.t, &B);
    assert_false(train_state_equal(&A, &B));

    /* how long one save of B takes here (the slowest of three) */
    char calib[400];
    snprintf(calib, sizeof calib, "%s/calibrate.safetensors", e->dir);
    double t_save = 0;
    for (int i = 0; i < 3; i++) {
        double t0 = now_s();
        assert_int_equal(sm_trainer_save(m.t, calib), SM_OK);
        double dt = now_s() - t0;
        if (dt > t_save) t_save = dt;
    }
    unlink(calib);
    /* and how long a child takes from the fork to the end of its first save (the fork of a
     * process this size is not free): kills spread over that and one more save */
    double t_first = 0;
    for (int i = 0; i < 2; i++) {
        int fds[2];
        assert_int_equal(pipe(fds), 0);
        double t0 = now_s();
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            char ok = sm_trainer_save(m.t, calib) == SM_OK;
            if (write(fds[1], &ok, 1) != 1) _exit(3);
            pause(); /* killed: no exit handlers (nor valgrind's leak scan) to wait for */
            _exit(0);
        }
        char ok = 0;
        ssize_t nread = read(fds[0], &ok, 1);
        double dt = now_s() - t0;
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        close(fds[0]);
        close(fds[1]);
        assert_true(nread == 1 && ok);
        if (dt > t_first) t_first = dt;
    }
    unlink(calib);
    const double window = t_first + t_save;

    int got_a = 0, got_b = 0, left_temps = 0;
    uint64_t rng = 0x9E3779B97F4A7C15u;
    double t_start = now_s();
    for (int trial = 0; trial < TRIALS; trial++) {
        put_file(e->path, file_a, n_a);
        /* kill moments spread evenly over the window, with jitter */
        rng = rng * 6364136223846793005u + 1442695040888963407u;
        double u = (double)(rng >> 11) / 9007199254740992.0;
        double delay = window * ((double)trial + u) / TRIALS;
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            for (;;)
                if (sm_trainer_save(m.t, e->path) != SM_OK) _exit(3);
        }
        struct timespec ts = {(time_t)delay, (long)((delay - (double)(time_t)delay) * 1e9)};
        while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
        }
        assert_int_equal(kill(pid, SIGKILL), 0);
        int wst = 0;
        assert_int_equal(waitpid(pid, &wst, 0), pid);
        if (!(WIFSIGNALED(wst) && WTERMSIG(wst) == SIGKILL))
            fail_msg("trial %d: the saving child ended on its own (status %#x): a save failed",
                     trial, wst);

        sm_status st = sm_trainer_load(check.t, e->path);
        if (st != SM_OK)
            fail_msg("trial %d (killed after %.1f ms): the checkpoint does not load: %s (%s)",
                     trial, delay * 1e3, sm_status_name(st), sm_last_error());
        train_state_take(check.t, &got);
        if (train_state_equal(&got, &A)) got_a++;
        else if (train_state_equal(&got, &B)) got_b++;
        else fail_msg("trial %d: the checkpoint loads but is neither state A nor state B", trial);
        train_state_free(&got);
        left_temps += remove_temps(e->dir);
    }
    print_message("[ info     ] a save takes %.1f ms (%.1f ms from a fork); %d kills in %.1f s: "
                  "the file held the old state %d times, the new one %d times; %d temporary "
                  "files left behind\n",
                  t_save * 1e3, t_first * 1e3, TRIALS, now_s() - t_start, got_a, got_b, left_temps);
    assert_int_equal(got_a + got_b, TRIALS);

    /* leftovers do not get in the way of a later save */
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        for (;;) sm_trainer_save(m.t, e->path);
    usleep((useconds_t)(t_save * 0.5e6));
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    assert_int_equal(sm_trainer_save(m.t, e->path), SM_OK);
    assert_int_equal(sm_trainer_load(check.t, e->path), SM_OK);
    train_state_take(check.t, &got);
    assert_true(train_state_equal(&got, &B));
    train_state_free(&got);
    remove_temps(e->dir);

    train_state_free(&A);
    train_state_free(&B);
    free(file_a);
    model_free(&check);
    model_free(&m);
}

/* A save that runs out of room (file size limit): SM_ERR_IO, the old file byte-identical. */
static void test_full_disk_rlimit(void **state)
{
    env *e = *state;
    model m;
    model_make(e, 1, &m);
    train(&m, 1);
    assert_int_equal(sm_trainer_save(m.t, e->path), SM_OK);
    size_t n;
    uint8_t *old = read_all(e->path, &n);
    assert_non_null(old);
    train(&m, 1);

    /* a model file is smaller: its own limits */
    char side[400];
    snprintf(side, sizeof side, "%s/model-size.safetensors", e->dir);
    assert_int_equal(sm_model_save(m.s, m.h, side), SM_OK);
    struct stat sb;
    assert_int_equal(stat(side, &sb), 0);
    unlink(side);
    const rlim_t nm = (rlim_t)sb.st_size;

    const rlim_t limits[][2] = {
        {0, 0}, {4096, 4096}, {(rlim_t)n / 2, nm / 2}, {(rlim_t)n - 1, nm - 1}};
    for (size_t i = 0; i < sizeof limits / sizeof *limits; i++) {
        for (int model_file = 0; model_file < 2; model_file++) {
            struct rlimit was, small;
            assert_int_equal(getrlimit(RLIMIT_FSIZE, &was), 0);
            void (*prev)(int) = signal(SIGXFSZ, SIG_IGN);
            small = was;
            small.rlim_cur = limits[i][model_file];
            assert_int_equal(setrlimit(RLIMIT_FSIZE, &small), 0);
            sm_status st =
                model_file ? sm_model_save(m.s, m.h, e->path) : sm_trainer_save(m.t, e->path);
            setrlimit(RLIMIT_FSIZE, &was);
            signal(SIGXFSZ, prev);
            expect_io(st,
                      model_file ? "model save, file size limit" : "trainer save, file size limit",
                      e->path);
            assert_file_is(e->path, old, n);
            assert_int_equal(remove_temps(e->dir), 0);
        }
    }
    free(old);
    model_free(&m);
}

/* A genuinely full file system and a read-only one (tmpfs mounts: root only, and only where
 * mounting is permitted; skipped with a note otherwise). */
static void test_full_and_readonly_tmpfs(void **state)
{
    env *e = *state;
#ifdef __linux__
    char mnt[300], path[400];
    snprintf(mnt, sizeof mnt, "%s/mnt", e->dir);
    snprintf(path, sizeof path, "%s/trainer.safetensors", mnt);
    assert_int_equal(mkdir(mnt, 0700), 0);
    model m;
    model_make(e, 1, &m);
    train(&m, 1);
    /* room for one checkpoint and a half: the old file fits, a second copy beside it not */
    assert_int_equal(sm_trainer_save(m.t, e->path), SM_OK);
    struct stat sb;
    assert_int_equal(stat(e->path, &sb), 0);
    char opts[64];
    snprintf(opts, sizeof opts, "size=%lldk", (long long)(sb.st_size * 3 / 2 / 1024 + 64));
    if (geteuid() != 0 || mount("tmpfs", mnt, "tmpfs", 0, opts) != 0) {
        print_message("[ skipped  ] tmpfs full-disk and read-only checks: %s\n",
                      geteuid() != 0 ? "not root" : strerror(errno));
        model_free(&m);
        rmdir(mnt);
        return;
    }
    assert_int_equal(sm_trainer_save(m.t, path), SM_OK);
    size_t n;
    uint8_t *old = read_all(path, &n);
    assert_non_null(old);
    train(&m, 1);

    sm_status st = sm_trainer_save(m.t, path);
    char msg[1100];
    snprintf(msg, sizeof msg, "%s", sm_last_error());
    int temps = remove_temps(mnt);
    sm_status st_model = sm_model_save(m.s, m.h, path); /* a third of the size: it may fit */
    int ok = st == SM_ERR_IO && strstr(msg, "No space") && temps == 0;
    if (st_model == SM_OK) {
        free(old);
        old = read_all(path, &n); /* the new old file */
        assert_non_null(old);
    }
    /* read-only: the folder cannot be written even by root */
    int ro = mount("tmpfs", mnt, "tmpfs", MS_REMOUNT | MS_RDONLY, opts) == 0;
    sm_status st_ro = ro ? sm_trainer_save(m.t, path) : SM_OK;
    char msg_ro[1100];
    snprintf(msg_ro, sizeof msg_ro, "%s", sm_last_error());
    size_t n2 = 0;
    uint8_t *after = read_all(path, &n2);
    umount2(mnt, MNT_DETACH);
    rmdir(mnt);

    if (!ok)
        fail_msg("full tmpfs: got %s (%s), %d temporary files left, expected SM_ERR_IO (no "
                 "space) and none",
                 sm_status_name(st), msg, temps);
    if (st_model != SM_OK && st_model != SM_ERR_IO)
        fail_msg("full tmpfs, model save: %s (%s)", sm_status_name(st_model), sm_last_error());
    assert_non_null(after);
    assert_int_equal(n2, n);
    assert_memory_equal(after, old, n);
    print_message("[ info     ] tmpfs of %s: full-disk save %s; read-only save %s\n", opts,
                  sm_status_name(st), ro ? sm_status_name(st_ro) : "not tried");
    if (ro) {
        expect_io(st_ro, "read-only tmpfs", NULL);
        if (!strstr(msg_ro, path)) fail_msg("message '%s' does not name the path", msg_ro);
    } else {
        print_message("[ skipped  ] read-only remount not permitted: %s\n", strerror(errno));
    }
    free(after);
    free(old);
    model_free(&m);
#else
    (void)e;
    print_message("[ skipped  ] tmpfs checks: not Linux\n");
#endif
}

/* Folders that cannot take the file: SM_ERR_IO naming the path, the old file untouched. */
static void test_unwritable_folder(void **state)
{
    env *e = *state;
    model m;
    model_make(e, 1, &m);
    train(&m, 1);
    char sub[300], path[400];
    snprintf(sub, sizeof sub, "%s/ro", e->dir);
    snprintf(path, sizeof path, "%s/trainer.safetensors", sub);
    assert_int_equal(mkdir(sub, 0700), 0);
    assert_int_equal(sm_trainer_save(m.t, path), SM_OK);
    size_t n;
    uint8_t *old = read_all(path, &n);
    assert_non_null(old);
    train(&m, 1);

    if (geteuid() != 0) {
        assert_int_equal(chmod(sub, 0500), 0);
        sm_status st1 = sm_trainer_save(m.t, path);
        sm_status st2 = sm_model_save(m.s, m.h, path);
        chmod(sub, 0700);
        expect_io(st1, "read-only folder", NULL);
        expect_io(st2, "read-only folder (model)", NULL);
        assert_file_is(path, old, n);
    } else {
        print_message("[ info     ] root: permissions do not bind; using ENOTDIR and /proc\n");
    }
    /* a "folder" that is the checkpoint file itself */
    char under[500];
    snprintf(under, sizeof under, "%s/x.safetensors", path);
    expect_io(sm_trainer_save(m.t, under), "file as a folder", under);
    expect_io(sm_model_save(m.s, m.h, under), "file as a folder (model)", under);
    assert_file_is(path, old, n);
    /* /proc takes no new files, not even from root */
    expect_io(sm_trainer_save(m.t, "/proc/sm-crash-test.safetensors"), "/proc", "/proc");
    expect_io(sm_trainer_save(m.t, "/proc/self/sm-crash-test.safetensors"), "/proc/self", "/proc");
    assert_int_equal(remove_temps(sub), 0);
    free(old);
    model_free(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kill_during_save),
        cmocka_unit_test(test_full_disk_rlimit),
        cmocka_unit_test(test_full_and_readonly_tmpfs),
        cmocka_unit_test(test_unwritable_folder),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
