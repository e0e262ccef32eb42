/* SPDX-License-Identifier: MIT */
/* Checkpoints: bit-exact round trips, exact resumption of training, atomic saves, and refusal
 * of damaged or mismatched files without touching anything in memory. Also the safetensors
 * codec on its own: hand-made edge cases and random mutations that must never crash it. */
#include <dirent.h>
#include <errno.h>
#include <math.h>
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
#include <unistd.h>
#include <zlib.h>
#include <cmocka.h>

#include "common/alloc.h"
#include "train/training.h"
#include "io/safetensors.h"
#include "data/sampler.h"
#include "siamese/siamese.h"

#define ARCH       "1x12x12:conv4k3,relu,pool2,conv4k3,relu,flatten,fc8"
#define ARCH_OTHER "1x12x12:conv4k3,relu,pool2,conv4k3,relu,flatten,fc6"

/* ------------------------------------------------------------------ helpers */

typedef struct env {
    char dir[256];
    sm_backend *be;
    sm_dataset *ds;
} env;

static char *path_in(const env *e, const char *name)
{
    static char buf[4][512];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", e->dir, name);
    return buf[k];
}

static uint8_t *read_file(const char *path, size_t *n)
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

static void write_file(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}

/* Number of entries in the test folder whose name contains ".libsiamese-tmp.": leftovers of a save. */
static int count_temp_files(const env *e)
{
    DIR *d = opendir(e->dir);
    assert_non_null(d);
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) n += strstr(de->d_name, ".libsiamese-tmp.") != NULL;
    closedir(d);
    return n;
}

static int setup(void **state)
{
    env *e = calloc(1, sizeof *e);
    const char *tmp = getenv("TMPDIR");
    snprintf(e->dir, sizeof e->dir, "%s/sm-ckpt-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(e->dir)) return -1;
    if (sm_backend_create(SM_BACKEND_CPU, &e->be) != SM_OK) return -1;
    sm_backend_set_threads(e->be, 1);
    if (sm_dataset_create_synthetic(20, 4, 12, 12, 5, &e->ds) != SM_OK) return -1;
    *state = e;
    return 0;
}

static int teardown(void **state)
{
    env *e = *state;
    DIR *d = opendir(e->dir);
    if (d) {
        struct dirent *de;
        while ((de = readdir(d)) != NULL) {
            if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) continue;
            char p[600];
            snprintf(p, sizeof p, "%s/%s", e->dir, de->d_name);
            if (unlink(p) != 0) rmdir(p);
        }
        closedir(d);
    }
    rmdir(e->dir);
    sm_dataset_destroy(e->ds);
    sm_backend_destroy(e->be);
    free(e);
    return 0;
}

typedef struct model {
    sm_subnet *s;
    sm_head *h;
    sm_adam *a;
    sm_trainer *t;
} model;

static void model_make(const env *e, const char *arch_text, uint64_t seed, int with_trainer,
                       const sm_dataset *ds, uint64_t trainer_seed, model *m)
{
    memset(m, 0, sizeof *m);
    sm_arch *arch;
    assert_int_equal(sm_arch_from_string(arch_text, &arch), SM_OK);
    assert_int_equal(sm_subnet_create(e->be, arch, seed, &m->s), SM_OK);
    sm_arch_destroy(arch);
    assert_int_equal(sm_head_create(e->be, sm_subnet_feature_dim(m->s), seed + 1, &m->h), SM_OK);
    if (!with_trainer) return;
    assert_int_equal(sm_adam_create(m->s, m->h, &m->a), SM_OK);
    assert_int_equal(sm_trainer_create(m->s, m->h, m->a, ds, trainer_seed, &m->t), SM_OK);
    assert_int_equal(sm_trainer_set_param(m->t, SM_TRAINER_BATCH_SIZE, 4), SM_OK);
}

static void model_free(model *m)
{
    sm_trainer_destroy(m->t);
    sm_adam_destroy(m->a);
    sm_head_destroy(m->h);
    sm_subnet_destroy(m->s);
    memset(m, 0, sizeof *m);
}

/* Subnet then head parameters, malloc'd. */
static float *params_of(const sm_subnet *s, const sm_head *h, size_t *n)
{
    *n = s->n_params + h->n_params;
    float *p = malloc(*n * sizeof *p);
    assert_non_null(p);
    assert_int_equal(sm__subnet_read_params(s, p), SM_OK);
    assert_int_equal(sm__head_read_params(h, p + s->n_params), SM_OK);
    return p;
}

static void assert_params_equal(const float *p, size_t n, const sm_subnet *s, const sm_head *h)
{
    size_t m;
    float *q = params_of(s, h, &m);
    assert_int_equal(n, m);
    assert_memory_equal(p, q, n * sizeof *p);
    free(q);
}

/* The library's checksum rule, so tests can craft files that pass it: crc32 of the whole file
 * with the 8 digits of the "crc32" value counted as '0'. */
static void fix_crc(uint8_t *b, size_t n)
{
    const char *key = "\"crc32\":\"";
    uint8_t *p = NULL;
    for (size_t i = 0; i + strlen(key) + 8 <= n; i++)
        if (memcmp(b + i, key, strlen(key)) == 0) {
            p = b + i + strlen(key);
            break;
        }
    assert_non_null(p);
    memset(p, '0', 8);
    uLong c = crc32(0, b, (uInt)n);
    char hex[9];
    snprintf(hex, sizeof hex, "%08lx", (unsigned long)c);
    memcpy(p, hex, 8);
}

/* Replaces the first `from` in the header with `to` (same length). */
static void patch_header(uint8_t *b, size_t n, const char *from, const char *to)
{
    size_t len = strlen(from);
    assert_int_equal(len, strlen(to));
    for (size_t i = 8; i + len <= n; i++)
        if (memcmp(b + i, from, len) == 0) {
            memcpy(b + i, to, len);
            return;
        }
    fail_msg("'%s' not found in the header", from);
}

static int contains(const uint8_t *b, size_t n, const char *s)
{
    size_t k = strlen(s);
    for (size_t i = 0; i + k <= n; i++)
        if (memcmp(b + i, s, k) == 0) return 1;
    return 0;
}

static uint64_t rng_next(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    return *s = x;
}

/* ------------------------------------------------------------------ round trips */

static void test_model_roundtrip(void **state)
{
    env *e = *state;
    model a;
    model_make(e, ARCH, 11, 0, NULL, 0, &a);
    const char *p = path_in(e, "model.safetensors");
    assert_int_equal(sm_model_save(a.s, a.h, p), SM_OK);
    assert_int_equal(count_temp_files(e), 0);

    sm_subnet *s = NULL;
    sm_head *h = NULL;
    assert_int_equal(sm_model_load(e->be, p, &s, &h), SM_OK);
    size_t n;
    float *pa = params_of(a.s, a.h, &n);
    assert_params_equal(pa, n, s, h);

    sm_arch *arch;
    char t1[256], t2[256];
    assert_int_equal(sm_subnet_get_arch(s, &arch), SM_OK);
    assert_int_equal(sm_arch_to_string(arch, t1, sizeof t1, NULL), SM_OK);
    sm_arch_destroy(arch);
    assert_int_equal(sm_arch_to_string(&a.s->arch, t2, sizeof t2, NULL), SM_OK);
    assert_string_equal(t1, t2);

    enum { P = 6, PIX = 144 };
    float left[P * PIX], right[P * PIX], s1[P], s2[P];
    for (int i = 0; i < P; i++) {
        assert_int_equal(sm_dataset_get_image(e->ds, (size_t)i, left + i * PIX), SM_OK);
        assert_int_equal(sm_dataset_get_image(e->ds, (size_t)(79 - i), right + i * PIX), SM_OK);
    }
    assert_int_equal(sm_predict_pairs(a.s, a.h, P, left, right, s1), SM_OK);
    assert_int_equal(sm_predict_pairs(s, h, P, left, right, s2), SM_OK);
    assert_memory_equal(s1, s2, sizeof s1);

    /* saving the loaded model gives the same file, byte for byte */
    const char *p2 = path_in(e, "model2.safetensors");
    assert_int_equal(sm_model_save(s, h, p2), SM_OK);
    size_t n1, n2;
    uint8_t *b1 = read_file(p, &n1), *b2 = read_file(p2, &n2);
    assert_int_equal(n1, n2);
    assert_memory_equal(b1, b2, n1);
    /* data region 8-aligned, crc32 present */
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--) hl = hl << 8 | b1[i];
    assert_int_equal(hl % 8, 0);
    assert_true(contains(b1, n1, "\"crc32\":\""));
    free(b1);
    free(b2);

    free(pa);
    sm_head_destroy(h);
    sm_subnet_destroy(s);
    model_free(&a);
}

static void train(model *m, int steps, float *losses)
{
    for (int i = 0; i < steps; i++) {
        float l;
        assert_int_equal(sm_train_step(m->t, &l), SM_OK);
        if (losses) losses[i] = l;
    }
}

static void test_trainer_resume(void **state)
{
    env *e = *state;
    enum { N = 3, M = 4 };
    model a, b;
    model_make(e, ARCH, 21, 1, e->ds, 77, &a);
    assert_int_equal(sm_trainer_set_param(a.t, SM_TRAINER_MICRO_BATCH, 3), SM_OK);
    assert_int_equal(sm_adam_set(a.a, SM_ADAM_LEARNING_RATE, 1e-3), SM_OK);
    assert_int_equal(sm_adam_set(a.a, SM_ADAM_BETA2, 0.995), SM_OK);
    train(&a, N, NULL);
    const char *p = path_in(e, "trainer.safetensors");
    assert_int_equal(sm_trainer_save(a.t, p), SM_OK);
    size_t n;
    float *at_save = params_of(a.s, a.h, &n);
    float la[M], lb[M];
    train(&a, M, la);
    float *after = params_of(a.s, a.h, &n);

    /* different weights, seeds and sizes: everything must come from the file */
    model_make(e, ARCH, 99, 1, e->ds, 12345, &b);
    assert_int_equal(sm_trainer_set_param(b.t, SM_TRAINER_BATCH_SIZE, 7), SM_OK);
    assert_int_equal(sm_trainer_load(b.t, p), SM_OK);
    assert_params_equal(at_save, n, b.s, b.h);
    int64_t v;
    assert_int_equal(sm_trainer_get_param(b.t, SM_TRAINER_BATCH_SIZE, &v), SM_OK);
    assert_int_equal(v, 4);
    assert_int_equal(sm_trainer_get_param(b.t, SM_TRAINER_MICRO_BATCH, &v), SM_OK);
    assert_int_equal(v, 3);
    assert_int_equal(sm_trainer_iteration(b.t), N);
    assert_int_equal(sm_adam_steps(b.a), N);
    double lr;
    assert_int_equal(sm_adam_get(b.a, SM_ADAM_LEARNING_RATE, &lr), SM_OK);
    assert_true(lr == 1e-3);
    assert_int_equal(sm_adam_get(b.a, SM_ADAM_BETA2, &lr), SM_OK);
    assert_true(lr == 0.995);
    assert_int_equal(b.t->seed, 77);

    train(&b, M, lb);
    assert_memory_equal(la, lb, sizeof la);
    assert_params_equal(after, n, b.s, b.h);
    assert_int_equal(sm_trainer_iteration(b.t), N + M);

    /* a trainer file is also a model file */
    sm_subnet *s = NULL;
    sm_head *h = NULL;
    assert_int_equal(sm_model_load(e->be, p, &s, &h), SM_OK);
    assert_params_equal(at_save, n, s, h);
    sm_head_destroy(h);
    sm_subnet_destroy(s);

    free(at_save);
    free(after);
    model_free(&a);
    model_free(&b);
}

/* GroupNorm (0.4): its weight and bias are saved as subnet.<i>.weight and subnet.<i>.bias of
 * shape [channels], PyTorch's nn.GroupNorm names inside the nn.Sequential; a trainer file
 * carries their Adam moments too, and a resumed run continues bit for bit. */
static void test_groupnorm_roundtrip(void **state)
{
    env *e = *state;
    enum { N = 3, M = 3 };
    const char *arch = "1x12x12:conv4k3,gn2,relu,pool2,conv6k3,gn3,relu,flatten,fc8";
    model a, b;
    model_make(e, arch, 31, 1, e->ds, 78, &a);
    assert_int_equal(sm_adam_set(a.a, SM_ADAM_LEARNING_RATE, 1e-2), SM_OK);
    train(&a, N, NULL); /* moves the groupnorm weights and biases away from 1 and 0 */
    const char *p = path_in(e, "gn.safetensors");
    assert_int_equal(sm_trainer_save(a.t, p), SM_OK);
    size_t n;
    float *at_save = params_of(a.s, a.h, &n);
    /* layer 1: gn2 on 4 channels (w_off 40); layer 5: gn3 on 6 channels */
    int moved = 0;
    for (int i = 0; i < 4; i++) moved += at_save[40 + i] != 1.0f && at_save[44 + i] != 0.0f;
    assert_int_equal(moved, 4);

    size_t fn;
    uint8_t *bytes = read_file(p, &fn);
    const char *names[] = {"\"subnet.1.weight\":{\"dtype\":\"F32\",\"shape\":[4],",
                           "\"subnet.1.bias\":{\"dtype\":\"F32\",\"shape\":[4],",
                           "\"subnet.5.weight\":{\"dtype\":\"F32\",\"shape\":[6],",
                           "\"subnet.5.bias\":{\"dtype\":\"F32\",\"shape\":[6],",
                           "\"adam.m.subnet.5.weight\":{\"dtype\":\"F32\",\"shape\":[6],",
                           "\"adam.v.subnet.1.bias\":{\"dtype\":\"F32\",\"shape\":[4],",
                           "\"subnet.4.weight\":{\"dtype\":\"F32\",\"shape\":[6,4,3,3],",
                           "\"subnet.8.weight\":{\"dtype\":\"F32\",\"shape\":[8,54],"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        if (!contains(bytes, fn, names[i])) fail_msg("no %s in the header", names[i]);
    assert_false(contains(bytes, fn, "running_mean")); /* GroupNorm has no running statistics */
    free(bytes);

    float la[M], lb[M];
    train(&a, M, la);
    float *after = params_of(a.s, a.h, &n);
    model_make(e, arch, 99, 1, e->ds, 12345, &b);
    assert_int_equal(sm_trainer_load(b.t, p), SM_OK);
    assert_params_equal(at_save, n, b.s, b.h);
    train(&b, M, lb);
    assert_memory_equal(la, lb, sizeof la);
    assert_params_equal(after, n, b.s, b.h);

    /* as a model file: the same weights and the same scores */
    sm_subnet *s = NULL;
    sm_head *h = NULL;
    assert_int_equal(sm_model_load(e->be, p, &s, &h), SM_OK);
    assert_params_equal(at_save, n, s, h);
    enum { P = 5, PIX = 144 };
    float left[P * PIX], right[P * PIX], s1[P], s2[P];
    for (int i = 0; i < P; i++) {
        assert_int_equal(sm_dataset_get_image(e->ds, (size_t)i, left + i * PIX), SM_OK);
        assert_int_equal(sm_dataset_get_image(e->ds, (size_t)(40 + i), right + i * PIX), SM_OK);
    }
    model c;
    model_make(e, arch, 5, 0, NULL, 0, &c);
    float *q = params_of(c.s, c.h, &n);
    memcpy(q, at_save, n * sizeof *q);
    assert_int_equal(sm__subnet_write_params(c.s, q), SM_OK);
    assert_int_equal(sm__head_write_params(c.h, q + c.s->n_params), SM_OK);
    assert_int_equal(sm_predict_pairs(c.s, c.h, P, left, right, s1), SM_OK);
    assert_int_equal(sm_predict_pairs(s, h, P, left, right, s2), SM_OK);
    assert_memory_equal(s1, s2, sizeof s1);
    sm_head_destroy(h);
    sm_subnet_destroy(s);
    free(q), free(at_save), free(after);
    model_free(&a);
    model_free(&b);
    model_free(&c);
}

/* The same for a P x K run with the 0.3 sampling options and augmentation: the settings and
 * both RNG streams come from the file, and the continued run is bit-identical. Then a pair
 * run with negatives within the alphabet, whose draws depend on the restored fraction. */
static void test_trainer_resume_pk(void **state)
{
    env *e = *state;
    enum { N = 3, M = 4 };
    for (int pk = 1; pk >= 0; pk--) {
        model a, b;
        model_make(e, ARCH, 21, 1, e->ds, 77, &a);
        assert_int_equal(sm_trainer_set_param(a.t, SM_TRAINER_MICRO_BATCH, 2), SM_OK);
        assert_int_equal(sm_adam_set(a.a, SM_ADAM_LEARNING_RATE, 1e-3), SM_OK);
        if (pk) {
            assert_int_equal(sm_trainer_set_param(a.t, SM_TRAINER_PK_IMAGES, 3), SM_OK);
            assert_int_equal(sm_trainer_set_param(a.t, SM_TRAINER_PK_CLASSES, 3), SM_OK);
            assert_int_equal(sm_trainer_set_param(a.t, SM_TRAINER_PK_LOSS, SM_PK_LOSS_SOFTMAX),
                             SM_OK);
            assert_int_equal(sm_trainer_set_param(a.t, SM_TRAINER_AUGMENT, SM_DISTORT_ALL), SM_OK);
        }
        assert_int_equal(sm_trainer_set_param(a.t, SM_TRAINER_ALPHABET_BALANCED, 1), SM_OK);
        assert_int_equal(sm_trainer_set_real(a.t, SM_TRAINER_NEG_SAME_ALPHABET, 0.375), SM_OK);
        train(&a, N, NULL);
        const char *p = path_in(e, "trainer-pk.safetensors");
        assert_int_equal(sm_trainer_save(a.t, p), SM_OK);
        size_t n;
        float la[M], lb[M];
        train(&a, M, la);
        float *after = params_of(a.s, a.h, &n);

        model_make(e, ARCH, 99, 1, e->ds, 12345, &b);
        assert_int_equal(sm_trainer_set_param(b.t, SM_TRAINER_PK_CLASSES, 2), SM_OK);
        assert_int_equal(sm_trainer_load(b.t, p), SM_OK);
        int64_t v;
        double f;
        assert_int_equal(sm_trainer_get_param(b.t, SM_TRAINER_PK_CLASSES, &v), SM_OK);
        assert_int_equal(v, pk ? 3 : 0);
        assert_int_equal(sm_trainer_get_param(b.t, SM_TRAINER_PK_IMAGES, &v), SM_OK);
        assert_int_equal(v, pk ? 3 : 4);
        assert_int_equal(sm_trainer_get_param(b.t, SM_TRAINER_PK_LOSS, &v), SM_OK);
        assert_int_equal(v, pk ? SM_PK_LOSS_SOFTMAX : SM_PK_LOSS_BCE_BALANCED);
        assert_int_equal(sm_trainer_get_param(b.t, SM_TRAINER_ALPHABET_BALANCED, &v), SM_OK);
        assert_int_equal(v, 1);
        assert_int_equal(sm_trainer_get_real(b.t, SM_TRAINER_NEG_SAME_ALPHABET, &f), SM_OK);
        assert_true(f == 0.375);
        train(&b, M, lb);
        assert_memory_equal(la, lb, sizeof la);
        assert_params_equal(after, n, b.s, b.h);
        free(after);
        model_free(&a);
        model_free(&b);
    }
}

/* The learning-rate schedule and the weight decay (0.3) are saved with the Adam state: a run
 * with warm-up, cosine decay and decay of all three kinds, stopped inside the warm-up, resumes
 * into a trainer with none of them set and continues bit for bit. */
static const char *const sched_keys[8] = {"\"adam_warmup_steps\"",    "\"adam_schedule\"",
                                          "\"adam_schedule_steps\"",  "\"adam_min_lr_factor\"",
                                          "\"adam_step_gamma\"",      "\"adam_weight_decay_conv\"",
                                          "\"adam_weight_decay_fc\"", "\"adam_weight_decay_head\""};

static void set_schedule(sm_adam *a)
{
    assert_int_equal(sm_adam_set(a, SM_ADAM_LEARNING_RATE, 1e-3), SM_OK);
    assert_int_equal(sm_adam_set(a, SM_ADAM_WARMUP_STEPS, 2), SM_OK);
    assert_int_equal(sm_adam_set(a, SM_ADAM_SCHEDULE, SM_ADAM_SCHEDULE_COSINE), SM_OK);
    assert_int_equal(sm_adam_set(a, SM_ADAM_SCHEDULE_STEPS, 5), SM_OK);
    assert_int_equal(sm_adam_set(a, SM_ADAM_MIN_LR_FACTOR, 0.1), SM_OK);
    assert_int_equal(sm_adam_set(a, SM_ADAM_STEP_GAMMA, 0.5), SM_OK);
    assert_int_equal(sm_adam_set(a, SM_ADAM_WEIGHT_DECAY_CONV, 0.01), SM_OK);
    assert_int_equal(sm_adam_set(a, SM_ADAM_WEIGHT_DECAY_FC, 0.02), SM_OK);
    assert_int_equal(sm_adam_set(a, SM_ADAM_WEIGHT_DECAY_HEAD, 0.03), SM_OK);
}

static void test_trainer_resume_schedule(void **state)
{
    env *e = *state;
    enum { N = 1, M = 7 }; /* stop inside the warm-up; go past the cosine's end */
    model a, b, c;
    model_make(e, ARCH, 21, 1, e->ds, 77, &a);
    set_schedule(a.a);
    train(&a, N, NULL);
    const char *p = path_in(e, "sched.safetensors");
    assert_int_equal(sm_trainer_save(a.t, p), SM_OK);
    size_t n;
    float la[M], lb[M];
    double lra[M], lrb[M];
    for (int i = 0; i < M; i++) {
        train(&a, 1, &la[i]);
        assert_int_equal(sm_adam_current_lr(a.a, &lra[i]), SM_OK);
    }
    float *after = params_of(a.s, a.h, &n);

    model_make(e, ARCH, 99, 1, e->ds, 12345, &b);
    assert_int_equal(sm_trainer_load(b.t, p), SM_OK);
    const sm_adam_param keys[] = {SM_ADAM_WARMUP_STEPS,    SM_ADAM_SCHEDULE,
                                  SM_ADAM_SCHEDULE_STEPS,  SM_ADAM_MIN_LR_FACTOR,
                                  SM_ADAM_STEP_GAMMA,      SM_ADAM_WEIGHT_DECAY_CONV,
                                  SM_ADAM_WEIGHT_DECAY_FC, SM_ADAM_WEIGHT_DECAY_HEAD};
    const double want[] = {2, SM_ADAM_SCHEDULE_COSINE, 5, 0.1, 0.5, 0.01, 0.02, 0.03};
    for (size_t i = 0; i < 8; i++) {
        double v = -1;
        assert_int_equal(sm_adam_get(b.a, keys[i], &v), SM_OK);
        assert_true(v == want[i]);
    }
    for (int i = 0; i < M; i++) {
        train(&b, 1, &lb[i]);
        assert_int_equal(sm_adam_current_lr(b.a, &lrb[i]), SM_OK);
    }
    assert_memory_equal(la, lb, sizeof la);
    assert_memory_equal(lra, lrb, sizeof lra);
    assert_params_equal(after, n, b.s, b.h);
    /* step 2: the warm-up's end, full rate; step 8: past W + T + 1 = 8, the floor */
    assert_true(lra[0] == 1e-3);
    assert_true(fabs(lra[M - 1] - 1e-4) < 1e-18);

    /* A file without the eight keys (from before 0.3; here renamed to unknown ones) loads
     * with the defaults, whatever the trainer had set; a file with some of them is refused. */
    size_t len;
    uint8_t *bytes = read_file(p, &len);
    for (size_t i = 0; i < 8; i++) {
        char old[64];
        snprintf(old, sizeof old, "%s", sched_keys[i]);
        old[1] = 'x';
        patch_header(bytes, len, sched_keys[i], old);
        fix_crc(bytes, len);
        const char *q = path_in(e, "old.safetensors");
        write_file(q, bytes, len);
        model_make(e, ARCH, 5, 1, e->ds, 6, &c);
        set_schedule(c.a);
        sm_status st = sm_trainer_load(c.t, q);
        if (i < 7) {
            assert_int_equal(st, SM_ERR_FORMAT);
            assert_non_null(strstr(sm_last_error(), "all or none"));
            double v;
            assert_int_equal(sm_adam_get(c.a, SM_ADAM_WARMUP_STEPS, &v), SM_OK);
            assert_true(v == 2); /* unchanged */
        } else {
            assert_int_equal(st, SM_OK);
            const double defaults[] = {0, SM_ADAM_SCHEDULE_CONSTANT, 0, 0, 0.1, 0, 0, 0};
            for (size_t k = 0; k < 8; k++) {
                double v = -1;
                assert_int_equal(sm_adam_get(c.a, keys[k], &v), SM_OK);
                assert_true(v == defaults[k]);
            }
            double lr;
            assert_int_equal(sm_adam_current_lr(c.a, &lr), SM_OK);
            assert_true(lr == 1e-3);
        }
        model_free(&c);
    }
    free(bytes);
    free(after);
    model_free(&a);
    model_free(&b);
}

/* A trainer fed by sm_train_step_batch has no sampler: its files say so and load anywhere. */
static void test_trainer_without_dataset(void **state)
{
    env *e = *state;
    model a, b;
    model_make(e, ARCH, 3, 1, NULL, 5, &a);
    enum { P = 4, PIX = 144 };
    float left[P * PIX], right[P * PIX], labels[P] = {1, 0, 1, 0}, l;
    for (int i = 0; i < P; i++) {
        assert_int_equal(sm_dataset_get_image(e->ds, (size_t)(2 * i), left + i * PIX), SM_OK);
        assert_int_equal(sm_dataset_get_image(e->ds, (size_t)(2 * i + 1), right + i * PIX), SM_OK);
    }
    assert_int_equal(sm_train_step_batch(a.t, P, left, right, labels, &l), SM_OK);
    const char *p = path_in(e, "nosampler.safetensors");
    assert_int_equal(sm_trainer_save(a.t, p), SM_OK);
    size_t n;
    uint8_t *bytes = read_file(p, &n);
    assert_true(contains(bytes, n, "\"has_sampler\":\"0\""));
    free(bytes);

    model_make(e, ARCH, 4, 1, e->ds, 6, &b);
    uint64_t before[4], after[4];
    sm__sampler_get_state(b.t->sampler, before);
    assert_int_equal(sm_trainer_load(b.t, p), SM_OK);
    sm__sampler_get_state(b.t->sampler, after);
    assert_memory_equal(before, after, sizeof before); /* nothing to restore: left alone */
    float *pa = params_of(a.s, a.h, &n);
    assert_params_equal(pa, n, b.s, b.h);
    free(pa);
    model_free(&a);
    model_free(&b);
}

/* ------------------------------------------------------------------ atomic saves */

static void assert_file_is(const char *path, const uint8_t *bytes, size_t n)
{
    size_t m;
    uint8_t *now = read_file(path, &m);
    assert_non_null(now);
    assert_int_equal(m, n);
    assert_memory_equal(now, bytes, n);
    free(now);
}

static void test_atomic_save(void **state)
{
    env *e = *state;
    model a, b;
    model_make(e, ARCH, 1, 1, e->ds, 1, &a);
    model_make(e, ARCH, 2, 1, e->ds, 2, &b);
    const char *p = path_in(e, "keep.safetensors");
    assert_int_equal(sm_model_save(a.s, a.h, p), SM_OK);
    size_t n;
    uint8_t *orig = read_file(p, &n);

    assert_int_equal(sm_model_save(b.s, b.h, path_in(e, "no/such/dir/x.safetensors")), SM_ERR_IO);
    assert_non_null(strstr(sm_last_error(), "no/such/dir"));
    /* a parent that is a file */
    char under_file[600];
    snprintf(under_file, sizeof under_file, "%s/x", p);
    assert_int_equal(sm_trainer_save(b.t, under_file), SM_ERR_IO);
    assert_file_is(p, orig, n);

    /* a write that fails midway (file size limit: works even as root) */
    struct rlimit old, small;
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
    void (*prev)(int) = signal(SIGXFSZ, SIG_IGN);
    small = old;
    small.rlim_cur = 300;
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &small), 0);
    sm_status st1 = sm_model_save(b.s, b.h, p);
    sm_status st2 = sm_trainer_save(b.t, p);
    setrlimit(RLIMIT_FSIZE, &old);
    signal(SIGXFSZ, prev);
    assert_int_equal(st1, SM_ERR_IO);
    assert_int_equal(st2, SM_ERR_IO);
    assert_file_is(p, orig, n);
    assert_int_equal(count_temp_files(e), 0);

    /* an unwritable folder (permissions do not bind root) */
    if (geteuid() != 0) {
        assert_int_equal(chmod(e->dir, 0500), 0);
        sm_status st = sm_model_save(b.s, b.h, p);
        chmod(e->dir, 0700);
        assert_int_equal(st, SM_ERR_IO);
        assert_file_is(p, orig, n);
    }

    /* every allocation failure: SM_ERR_NOMEM, old file intact, no temporary left */
    for (long k = 0;; k++) {
        sm__alloc_fail_after(k);
        sm_status st = sm_trainer_save(b.t, p);
        sm__alloc_fail_after(-1);
        if (st == SM_OK) break;
        assert_int_equal(st, SM_ERR_NOMEM);
        assert_file_is(p, orig, n);
        assert_int_equal(count_temp_files(e), 0);
        assert_true(k < 1000);
    }
    /* and finally the replacement went through */
    sm_subnet *s = NULL;
    sm_head *h = NULL;
    assert_int_equal(sm_model_load(e->be, p, &s, &h), SM_OK);
    float *pb = params_of(b.s, b.h, &n);
    assert_params_equal(pb, n, s, h);
    free(pb);
    sm_head_destroy(h);
    sm_subnet_destroy(s);
    free(orig);
    model_free(&a);
    model_free(&b);
}

/* ------------------------------------------------------------------ refusals */

static int is_refusal(sm_status st)
{
    return st == SM_ERR_FORMAT || st == SM_ERR_LIMIT || st == SM_ERR_VERSION;
}

static void test_damaged_model_files(void **state)
{
    env *e = *state;
    model a;
    model_make(e, ARCH, 8, 0, NULL, 0, &a);
    const char *good = path_in(e, "good.safetensors"), *bad = path_in(e, "bad.safetensors");
    assert_int_equal(sm_model_save(a.s, a.h, good), SM_OK);
    size_t n;
    uint8_t *b = read_file(good, &n);
    uint8_t *c = malloc(n + 16);
    sm_subnet *s = NULL;
    sm_head *h = NULL;

    for (size_t k = 0; k < n; k++) {
        write_file(bad, b, k);
        sm_status st = sm_model_load(e->be, bad, &s, &h);
        if (st != SM_ERR_FORMAT) fail_msg("truncated at %zu: %s", k, sm_status_name(st));
    }
    /* every single-byte change anywhere is caught (the checksum covers the header too) */
    for (size_t i = 0; i < n; i++) {
        for (int f = 0; f < 2; f++) {
            memcpy(c, b, n);
            c[i] ^= f ? 0x80 : 0x01;
            write_file(bad, c, n);
            sm_status st = sm_model_load(e->be, bad, &s, &h);
            if (!is_refusal(st))
                fail_msg("byte %zu ^ %#x: %s (%s)", i, f ? 0x80 : 1, sm_status_name(st),
                         sm_last_error());
        }
    }
    /* trailing garbage */
    memcpy(c, b, n);
    memset(c + n, 0, 16);
    write_file(bad, c, n + 16);
    assert_int_equal(sm_model_load(e->be, bad, &s, &h), SM_ERR_FORMAT);

    /* header lengths: huge, just over the limit, past the end, zero */
    const uint64_t lens[] = {(uint64_t)1 << 40, UINT64_MAX, ((uint64_t)100 << 20) + 1,
                             (uint64_t)(n - 8 + 1), 0};
    for (size_t j = 0; j < sizeof lens / sizeof *lens; j++) {
        memcpy(c, b, n);
        for (int i = 0; i < 8; i++) c[i] = (uint8_t)(lens[j] >> (8 * i));
        write_file(bad, c, n);
        sm_status st = sm_model_load(e->be, bad, &s, &h);
        assert_int_equal(st, lens[j] > ((uint64_t)100 << 20) ? SM_ERR_LIMIT : SM_ERR_FORMAT);
    }

    /* crafted files that pass the checksum */
    memcpy(c, b, n);
    patch_header(c, n, "\"format_version\":\"1\"", "\"format_version\":\"2\"");
    fix_crc(c, n);
    write_file(bad, c, n);
    assert_int_equal(sm_model_load(e->be, bad, &s, &h), SM_ERR_VERSION);

    memcpy(c, b, n);
    patch_header(c, n, "\"kind\":\"model\"", "\"kind\":\"mode1\"");
    fix_crc(c, n);
    write_file(bad, c, n);
    assert_int_equal(sm_model_load(e->be, bad, &s, &h), SM_ERR_FORMAT);

    /* an arch that disagrees with the tensors */
    memcpy(c, b, n);
    patch_header(c, n, "fc8\"", "fc9\"");
    fix_crc(c, n);
    write_file(bad, c, n);
    assert_int_equal(sm_model_load(e->be, bad, &s, &h), SM_ERR_SHAPE);
    assert_non_null(strstr(sm_last_error(), "subnet.6.weight"));

    /* an arch that does not parse */
    memcpy(c, b, n);
    patch_header(c, n, "fc8\"", "fx8\"");
    fix_crc(c, n);
    write_file(bad, c, n);
    assert_int_equal(sm_model_load(e->be, bad, &s, &h), SM_ERR_FORMAT);

    /* a renamed tensor: one missing, one unexpected */
    memcpy(c, b, n);
    patch_header(c, n, "\"head.bias\"", "\"head.bia5\"");
    fix_crc(c, n);
    write_file(bad, c, n);
    assert_int_equal(sm_model_load(e->be, bad, &s, &h), SM_ERR_FORMAT);
    assert_non_null(strstr(sm_last_error(), "head.bias"));

    /* non-finite parameters */
    const float bads[] = {NAN, INFINITY, -INFINITY};
    for (int j = 0; j < 3; j++) {
        memcpy(c, b, n);
        uint64_t hl = 0;
        for (int i = 7; i >= 0; i--) hl = hl << 8 | c[i];
        size_t at = 8 + (size_t)hl + 4 * (size_t)(j * 37 % 50);
        memcpy(c + at, &bads[j], 4);
        fix_crc(c, n);
        write_file(bad, c, n);
        assert_int_equal(sm_model_load(e->be, bad, &s, &h), SM_ERR_FORMAT);
        assert_non_null(strstr(sm_last_error(), "non-finite"));
    }
    /* the pointers were never written */
    assert_null(s);
    assert_null(h);

    free(b);
    free(c);
    model_free(&a);
}

static void test_trainer_refusals(void **state)
{
    env *e = *state;
    model a, b, other;
    model_make(e, ARCH, 30, 1, e->ds, 31, &a);
    train(&a, 2, NULL);
    const char *tp = path_in(e, "t.safetensors"), *mp = path_in(e, "m.safetensors");
    const char *bad = path_in(e, "bad.safetensors");
    assert_int_equal(sm_trainer_save(a.t, tp), SM_OK);
    assert_int_equal(sm_model_save(a.s, a.h, mp), SM_OK);

    model_make(e, ARCH, 40, 1, e->ds, 41, &b);
    train(&b, 1, NULL);
    size_t np;
    float *before = params_of(b.s, b.h, &np);
    float *m_before = malloc(b.s->n_params * sizeof(float));
    assert_int_equal(
        b.s->be->ops->download(b.s->be->ctx, m_before, b.a->m_sub, b.s->n_params * sizeof(float)),
        SM_OK);
    uint64_t rng_before[4];
    sm__sampler_get_state(b.t->sampler, rng_before);
    int64_t it = sm_trainer_iteration(b.t);

#define ASSERT_UNCHANGED()                                                                         \
    do {                                                                                           \
        assert_params_equal(before, np, b.s, b.h);                                                 \
        float *m_now = malloc(b.s->n_params * sizeof(float));                                      \
        assert_int_equal(b.s->be->ops->download(b.s->be->ctx, m_now, b.a->m_sub,                   \
                                                b.s->n_params * sizeof(float)),                    \
                         SM_OK);                                                                   \
        assert_memory_equal(m_now, m_before, b.s->n_params * sizeof(float));                       \
        free(m_now);                                                                               \
        uint64_t rng_now[4];                                                                       \
        sm__sampler_get_state(b.t->sampler, rng_now);                                              \
        assert_memory_equal(rng_now, rng_before, sizeof rng_now);                                  \
        assert_int_equal(sm_trainer_iteration(b.t), it);                                           \
        assert_int_equal(sm_adam_steps(b.a), 1);                                                   \
        int64_t bs;                                                                                \
        sm_trainer_get_param(b.t, SM_TRAINER_BATCH_SIZE, &bs);                                     \
        assert_int_equal(bs, 4);                                                                   \
    } while (0)

    /* a model file is not a trainer state */
    assert_int_equal(sm_trainer_load(b.t, mp), SM_ERR_FORMAT);
    ASSERT_UNCHANGED();
    /* another architecture */
    model_make(e, ARCH_OTHER, 50, 1, e->ds, 51, &other);
    assert_int_equal(sm_trainer_load(other.t, tp), SM_ERR_SHAPE);
    model_free(&other);
    /* missing file, a folder */
    assert_int_equal(sm_trainer_load(b.t, path_in(e, "absent.safetensors")), SM_ERR_IO);
    assert_int_equal(sm_trainer_load(b.t, e->dir), SM_ERR_IO);
    ASSERT_UNCHANGED();

    size_t n;
    uint8_t *t = read_file(tp, &n), *c = malloc(n);
    /* truncations and flips, sampled */
    for (size_t k = 0; k < n; k += 13) {
        write_file(bad, t, k);
        assert_int_equal(sm_trainer_load(b.t, bad), SM_ERR_FORMAT);
    }
    for (size_t i = 0; i < n; i += 7) {
        memcpy(c, t, n);
        c[i] ^= 0x04;
        write_file(bad, c, n);
        sm_status st = sm_trainer_load(b.t, bad);
        if (!is_refusal(st)) fail_msg("byte %zu: %s", i, sm_status_name(st));
    }
    ASSERT_UNCHANGED();

    /* metadata out of range, with a valid checksum */
    static const char *const patches[][2] = {
        {"\"iteration\":\"2\"", "\"iteration\":\"x\""},
        {"\"adam_t\":\"2\"", "\"adam_t\":\"-\""},
        {"\"batch_size\":\"4\"", "\"batch_size\":\"0\""},
        {"\"has_sampler\":\"1\"", "\"has_sampler\":\"2\""},
        {"\"adam_beta1\":\"0.", "\"adam_beta1\":\"1."},
        {"\"adam_lr\":\"6", "\"adam_lr\":\"-"},
        {"\"format\":\"libsiamese", "\"format\":\"libsiameze"},
        {"\"format_version\":\"1\"", "\"format_version\":\"0\""},
    };
    for (size_t j = 0; j < sizeof patches / sizeof *patches; j++) {
        memcpy(c, t, n);
        patch_header(c, n, patches[j][0], patches[j][1]);
        fix_crc(c, n);
        write_file(bad, c, n);
        sm_status st = sm_trainer_load(b.t, bad);
        if (st != SM_ERR_FORMAT) fail_msg("patch %zu: %s", j, sm_status_name(st));
    }
    /* a NaN Adam moment */
    memcpy(c, t, n);
    {
        const sm__st_tensor *tm;
        sm__st_file f;
        assert_int_equal(sm__st_parse(c, n, &f), SM_OK);
        tm = sm__st_find(&f, "adam.v.subnet.3.weight");
        assert_non_null(tm);
        float nan = NAN;
        memcpy(c + f.data_off + tm->begin + 8, &nan, 4);
        sm__st_file_free(&f);
    }
    fix_crc(c, n);
    write_file(bad, c, n);
    assert_int_equal(sm_trainer_load(b.t, bad), SM_ERR_FORMAT);
    ASSERT_UNCHANGED();

    /* allocation failures while loading: NOMEM, nothing changed, nothing leaked */
    for (long k = 0;; k++) {
        sm__alloc_fail_after(k);
        sm_status st = sm_trainer_load(b.t, tp);
        sm__alloc_fail_after(-1);
        if (st == SM_OK) break;
        assert_int_equal(st, SM_ERR_NOMEM);
        ASSERT_UNCHANGED();
        assert_true(k < 1000);
    }
    assert_int_equal(sm_trainer_iteration(b.t), 2);
    for (long k = 0;; k++) {
        sm_subnet *s = NULL;
        sm_head *h = NULL;
        sm__alloc_fail_after(k);
        sm_status st = sm_model_load(e->be, tp, &s, &h);
        sm__alloc_fail_after(-1);
        if (st == SM_OK) {
            sm_head_destroy(h);
            sm_subnet_destroy(s);
            break;
        }
        assert_int_equal(st, SM_ERR_NOMEM);
        assert_null(s);
        assert_null(h);
        assert_true(k < 1000);
    }
#undef ASSERT_UNCHANGED
    free(t);
    free(c);
    free(before);
    free(m_before);
    model_free(&a);
    model_free(&b);
}

static void test_bad_arguments(void **state)
{
    env *e = *state;
    model a;
    model_make(e, ARCH, 1, 1, e->ds, 1, &a);
    const char *p = path_in(e, "args.safetensors");
    sm_subnet *s = NULL;
    sm_head *h = NULL;
    assert_int_equal(sm_model_save(NULL, a.h, p), SM_ERR_INVALID_ARG);
    assert_int_equal(sm_model_save(a.s, NULL, p), SM_ERR_INVALID_ARG);
    assert_int_equal(sm_model_save(a.s, a.h, NULL), SM_ERR_INVALID_ARG);
    assert_int_equal(sm_model_save(a.s, a.h, ""), SM_ERR_INVALID_ARG);
    assert_int_equal(sm_trainer_save(NULL, p), SM_ERR_INVALID_ARG);
    assert_int_equal(sm_trainer_save(a.t, NULL), SM_ERR_INVALID_ARG);
    assert_int_equal(sm_model_save(a.s, a.h, p), SM_OK);
    assert_int_equal(sm_model_load(NULL, p, &s, &h), SM_ERR_INVALID_ARG);
    assert_int_equal(sm_model_load(e->be, NULL, &s, &h), SM_ERR_INVALID_ARG);
    assert_int_equal(sm_model_load(e->be, p, NULL, &h), SM_ERR_INVALID_ARG);
    assert_int_equal(sm_model_load(e->be, p, &s, NULL), SM_ERR_INVALID_ARG);
    assert_int_equal(sm_trainer_load(NULL, p), SM_ERR_INVALID_ARG);
    assert_int_equal(sm_trainer_load(a.t, NULL), SM_ERR_INVALID_ARG);
    assert_int_equal(sm_model_load(e->be, path_in(e, "missing"), &s, &h), SM_ERR_IO);
    assert_non_null(strstr(sm_last_error(), "missing"));
    /* a head that does not fit the subnet */
    sm_head *wrong;
    assert_int_equal(sm_head_create(e->be, 5, 1, &wrong), SM_OK);
    assert_int_equal(sm_model_save(a.s, wrong, p), SM_ERR_SHAPE);
    sm_head_destroy(wrong);
    assert_null(s);
    assert_null(h);
    model_free(&a);
}

/* ------------------------------------------------------------------ safetensors codec */

/* A file from a header text and `data` bytes of zeros. */
static uint8_t *st_file(const char *json, size_t data, size_t *n)
{
    size_t hl = strlen(json);
    *n = 8 + hl + data;
    uint8_t *b = calloc(1, *n);
    for (int i = 0; i < 8; i++) b[i] = (uint8_t)((uint64_t)hl >> (8 * i));
    memcpy(b + 8, json, hl);
    return b;
}

static sm_status st_try(const char *json, size_t data)
{
    size_t n;
    uint8_t *b = st_file(json, data, &n);
    sm__st_file f;
    sm_status st = sm__st_parse(b, n, &f);
    if (st == SM_OK) sm__st_file_free(&f);
    free(b);
    return st;
}

static void test_safetensors_cases(void **state)
{
    (void)state;
#define T(x) "\"" x "\""
#define TENSOR(name, shape, a, b)                                                                  \
    T(name) ":{\"dtype\":\"F32\",\"shape\":" shape ",\"data_offsets\":[" #a "," #b "]}"
    static const struct {
        const char *json;
        size_t data;
        sm_status want;
    } cases[] = {
        {"{}", 0, SM_OK},
        {" {\n\t} \r ", 0, SM_OK},
        {"{}", 4, SM_ERR_FORMAT},
        {"{" TENSOR("a", "[2]", 0, 8) "}", 8, SM_OK},
        {"{" TENSOR("a", "[]", 0, 4) "}", 4, SM_OK},
        {"{" TENSOR("a", "[0,3]", 0, 0) "," TENSOR("b", "[1]", 0, 4) "}", 4, SM_OK},
        {"{" TENSOR("a", "[2]", 0, 8) "}", 12, SM_ERR_FORMAT}, /* data not covered */
        {"{" TENSOR("a", "[2]", 0, 8) "}", 4, SM_ERR_FORMAT},  /* beyond the data */
        {"{" TENSOR("a", "[3]", 0, 8) "}", 8, SM_ERR_FORMAT},  /* shape vs bytes */
        {"{" TENSOR("a", "[1]", 4, 8) "}", 8, SM_ERR_FORMAT},  /* gap at the start */
        {"{" TENSOR("a", "[1]", 8, 4) "}", 8, SM_ERR_FORMAT},  /* reversed */
        {"{" TENSOR("a", "[2]", 0, 8) "," TENSOR("b", "[1]", 4, 8) "}", 8, SM_ERR_FORMAT},
        {"{" TENSOR("a", "[1]", 0, 4) "," TENSOR("a", "[1]", 4, 8) "}", 8, SM_ERR_FORMAT},
        {"{" TENSOR("a", "[-1]", 0, 4) "}", 4, SM_ERR_FORMAT},
        {"{" TENSOR("a", "[01]", 0, 4) "}", 4, SM_ERR_FORMAT},
        {"{" TENSOR("a", "[1.0]", 0, 4) "}", 4, SM_ERR_FORMAT},
        {"{" TENSOR("a", "[1e0]", 0, 4) "}", 4, SM_ERR_FORMAT},
        {"{" TENSOR("a", "[1,]", 0, 4) "}", 4, SM_ERR_FORMAT},
        {"{" TENSOR("a", "[18446744073709551616]", 0, 4) "}", 4, SM_ERR_FORMAT},
        {"{" TENSOR("a", "[4294967296,4294967296]", 0, 4) "}", 4, SM_ERR_FORMAT},
        {"{" TENSOR("a", "[1,1,1,1,1,1,1,1,1]", 0, 4) "}", 4, SM_ERR_LIMIT},
        {"{" TENSOR("a", "[1,1,1,1,1,1,1,1]", 0, 4) "}", 4, SM_OK},
        {"{\"a\":{\"dtype\":\"F33\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, SM_ERR_FORMAT},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4, SM_ERR_FORMAT},
        {"{\"a\":{\"dtype\":\"F32\",\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
         SM_ERR_FORMAT},
        {"{\"a\":{\"dtype\":\"F32\",\"x\":1,\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
         SM_ERR_FORMAT},
        {"{\"a\":{\"dtype\":\"U64\",\"shape\":[1],\"data_offsets\":[0,8]}}", 8, SM_OK},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4,8]}}", 4, SM_ERR_FORMAT},
        {"{\"__metadata__\":{\"k\":\"v\",\"e\":\"\\u00e9\\ud83d\\ude00\\n\"}}", 0, SM_OK},
        {"{\"__metadata__\":{\"k\":\"v\",\"k\":\"w\"}}", 0, SM_ERR_FORMAT},
        {"{\"__metadata__\":{},\"__metadata__\":{}}", 0, SM_ERR_FORMAT},
        {"{\"__metadata__\":{\"k\":1}}", 0, SM_ERR_FORMAT},
        {"{\"__metadata__\":{\"k\":{\"a\":\"b\"}}}", 0, SM_ERR_FORMAT},
        {"{\"__metadata__\":{\"k\":\"\\ud800\"}}", 0, SM_ERR_FORMAT},
        {"{\"__metadata__\":{\"k\":\"\\ude00\\ud800\"}}", 0, SM_ERR_FORMAT},
        {"{\"__metadata__\":{\"k\":\"\\u0000\"}}", 0, SM_ERR_FORMAT},
        {"{\"__metadata__\":{\"k\":\"\\x\"}}", 0, SM_ERR_FORMAT},
        {"{\"__metadata__\":{\"k\":\"\\u12\"}}", 0, SM_ERR_FORMAT},
        {"{\"__metadata__\":{\"k\":\"a\tb\"}}", 0, SM_ERR_FORMAT},
        {"{\"__metadata__\":{\"k\":\"\xc3\"}}", 0, SM_ERR_FORMAT},
        {"{\"__metadata__\":{\"k\":\"\xc0\xaf\"}}", 0, SM_ERR_FORMAT},
        {"{\"__metadata__\":{\"k\":\"\xed\xa0\x80\"}}", 0, SM_ERR_FORMAT},
        {"{\"__metadata__\":{\"k\":\"\xf4\x90\x80\x80\"}}", 0, SM_ERR_FORMAT},
        {"{\"__metadata__\":{\"k\":\"\xe2\x82\xac\"}}", 0, SM_OK},
        {"{\"__metadata__\":{\"k\":\"v\\\"}}", 0, SM_ERR_FORMAT},
        {"{\"__metadata__\":{\"k\":\"v\"", 0, SM_ERR_FORMAT},
        {"{}x", 0, SM_ERR_FORMAT},
        {"{}{}", 0, SM_ERR_FORMAT},
        {"[]", 0, SM_ERR_FORMAT},
        {"{,}", 0, SM_ERR_FORMAT},
        {"{\"a\"}", 0, SM_ERR_FORMAT},
        {"{\"a\":}", 0, SM_ERR_FORMAT},
        {"\"{}\"", 0, SM_ERR_FORMAT},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        sm_status st = st_try(cases[i].json, cases[i].data);
        if (st != cases[i].want)
            fail_msg("case %zu (%s): got %s, want %s (%s)", i, cases[i].json, sm_status_name(st),
                     sm_status_name(cases[i].want), sm_last_error());
    }
#undef TENSOR
#undef T

    /* escapes decode to UTF-8 */
    size_t n;
    uint8_t *b = st_file("{\"__metadata__\":{\"e\":\"\\u00e9\\ud83d\\ude00\\n\\/\"}}", 0, &n);
    sm__st_file f;
    assert_int_equal(sm__st_parse(b, n, &f), SM_OK);
    const sm__st_kv *kv = sm__st_meta(&f, "e");
    assert_non_null(kv);
    assert_string_equal(kv->value, "\xc3\xa9\xf0\x9f\x98\x80\n/");
    assert_null(sm__st_meta(&f, "missing"));
    sm__st_file_free(&f);
    free(b);

    /* too short for a length, header past the end, header over the limit */
    uint8_t tiny[7] = {0};
    assert_int_equal(sm__st_parse(tiny, sizeof tiny, &f), SM_ERR_FORMAT);
    b = st_file("{}", 0, &n);
    b[0] = 3;
    assert_int_equal(sm__st_parse(b, n, &f), SM_ERR_FORMAT);
    b[0] = 0, b[3] = 0x07;
    assert_int_equal(sm__st_parse(b, n, &f), SM_ERR_LIMIT);
    free(b);
}

static void test_safetensors_writer(void **state)
{
    (void)state;
    sm__st_out_tensor t[3] = {
        {.name = "w\"eird\\name\n", .dtype = SM__ST_F32, .rank = 2, .shape = {2, 3}},
        {.name = "\xc3\xa9t\xc3\xa9", .dtype = SM__ST_I64, .rank = 0},
        {.name = "empty", .dtype = SM__ST_U8, .rank = 1, .shape = {0}},
    };
    sm__st_out_meta m[2] = {{.key = "k", .value = "va\"lue"}, {.key = "crc", .value = "abc"}};
    uint8_t *hdr;
    size_t hl;
    uint64_t ds;
    assert_int_equal(sm__st_build_header(t, 3, m, 2, &hdr, &hl, &ds), SM_OK);
    assert_int_equal(hl % 8, 0);
    assert_int_equal(ds, 24 + 8);
    assert_memory_equal(hdr + m[1].value_pos, "abc", 3);
    uint8_t *file = calloc(1, hl + ds);
    memcpy(file, hdr, hl);
    sm__st_file f;
    assert_int_equal(sm__st_parse(file, hl + (size_t)ds, &f), SM_OK);
    assert_int_equal(f.n_tensors, 3);
    assert_int_equal(f.data_off, hl);
    const sm__st_tensor *x = sm__st_find(&f, "w\"eird\\name\n");
    assert_non_null(x);
    assert_int_equal(x->rank, 2);
    assert_int_equal(x->shape[1], 3);
    assert_int_equal(x->begin, 0);
    assert_int_equal(x->end, 24);
    x = sm__st_find(&f, "\xc3\xa9t\xc3\xa9");
    assert_non_null(x);
    assert_int_equal(x->dtype, SM__ST_I64);
    assert_int_equal(x->end - x->begin, 8);
    const sm__st_kv *kv = sm__st_meta(&f, "k");
    assert_string_equal(kv->value, "va\"lue");
    assert_int_equal(kv->value_rawlen, 7);
    kv = sm__st_meta(&f, "crc");
    assert_int_equal(kv->value_pos, m[1].value_pos);
    sm__st_file_free(&f);
    free(file);
    sm__free(hdr);

    /* invalid UTF-8 cannot be written */
    sm__st_out_meta badm = {.key = "k", .value = "\xff"};
    assert_int_equal(sm__st_build_header(NULL, 0, &badm, 1, &hdr, &hl, &ds), SM_ERR_INVALID_ARG);
}

/* Random damage to a real checkpoint: the parser and the loader refuse it or accept it, and
 * never crash, hang or leak (valgrind runs this too). */
static void test_fuzz(void **state)
{
    env *e = *state;
    model a;
    model_make(e, ARCH, 13, 1, e->ds, 14, &a);
    const char *p = path_in(e, "fuzz-src.safetensors"), *bad = path_in(e, "fuzz.safetensors");
    assert_int_equal(sm_trainer_save(a.t, p), SM_OK);
    size_t n;
    uint8_t *b = read_file(p, &n);
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--) hl = hl << 8 | b[i];
    uint8_t *c = malloc(n + 64);
    uint64_t rng = 0x9E3779B97F4A7C15u;
    const char *env_iters = getenv("SM_FUZZ_ITERS");
    long iters = env_iters ? atol(env_iters) : 4000;
    int accepted = 0;
    for (long it = 0; it < iters; it++) {
        size_t len = n;
        memcpy(c, b, n);
        int kind = (int)(rng_next(&rng) % 6);
        int edits = 1 + (int)(rng_next(&rng) % 4);
        for (int k = 0; k < edits; k++) {
            /* mostly in the header, where the structure is */
            size_t span = kind < 4 && 8 + (size_t)hl < len ? 8 + (size_t)hl : len;
            if (span == 0) break;
            size_t at = (size_t)(rng_next(&rng) % span);
            uint8_t v = (uint8_t)rng_next(&rng);
            if (kind == 0) c[at] ^= (uint8_t)(1u << (v % 8));
            else if (kind == 1) c[at] = v;
            else if (kind == 2) c[at] = (uint8_t) "{}[]\":,\\0123456789 e-."[v % 22];
            else if (kind == 3 && len > 1) { /* delete a byte */
                memmove(c + at, c + at + 1, len - at - 1);
                len--;
            } else if (kind == 4) c[at] = v;
            else len = (size_t)(rng_next(&rng) % (n + 1));
        }
        sm__st_file f;
        sm_status st = sm__st_parse(c, len, &f);
        if (st == SM_OK) {
            accepted++;
            for (size_t i = 0; i < f.n_tensors; i++) {
                assert_true(f.tensors[i].end <= f.data_size);
                assert_true(sm__st_find(&f, f.tensors[i].name) == &f.tensors[i]);
            }
            sm__st_file_free(&f);
        } else if (st != SM_ERR_FORMAT && st != SM_ERR_LIMIT) {
            fail_msg("parse: %s", sm_status_name(st));
        }
        if (it % 8 == 0) {
            write_file(bad, c, len);
            sm_subnet *s = NULL;
            sm_head *h = NULL;
            st = sm_model_load(e->be, bad, &s, &h);
            if (st == SM_OK) { /* only an unchanged file may load */
                assert_int_equal(len, n);
                assert_memory_equal(c, b, n);
                sm_head_destroy(h);
                sm_subnet_destroy(s);
            } else if (!is_refusal(st) && st != SM_ERR_SHAPE) {
                fail_msg("load: %s (%s)", sm_status_name(st), sm_last_error());
            }
        }
    }
    (void)accepted;
    free(b);
    free(c);
    model_free(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_safetensors_cases),
        cmocka_unit_test(test_safetensors_writer),
        cmocka_unit_test_setup_teardown(test_model_roundtrip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_trainer_resume, setup, teardown),
        cmocka_unit_test_setup_teardown(test_groupnorm_roundtrip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_trainer_resume_pk, setup, teardown),
        cmocka_unit_test_setup_teardown(test_trainer_resume_schedule, setup, teardown),
        cmocka_unit_test_setup_teardown(test_trainer_without_dataset, setup, teardown),
        cmocka_unit_test_setup_teardown(test_atomic_save, setup, teardown),
        cmocka_unit_test_setup_teardown(test_damaged_model_files, setup, teardown),
        cmocka_unit_test_setup_teardown(test_trainer_refusals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_arguments, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fuzz, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
