/* SPDX-License-Identifier: MIT */
/* Augmentation (since 0.2): sm_image_distort's reproducibility, identity and ranges; the
 * trainer's SM_TRAINER_AUGMENT: off by default and then bit-identical to plain training, the
 * same pairs whether on or off, and exact resume from checkpoints (old files without the
 * augmentation keys included). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include <zlib.h>

#include "train/training.h"
#include "common/rng.h"
#include "data/sampler.h"
#include "siamese/siamese.h"

enum { S = 21 };

static void glyph(float *img)
{
    for (int y = 0; y < S; y++)
        for (int x = 0; x < S; x++)
            img[y * S + x] = (x == 10 || y == 6 || x + y == 30) ? 0.0f : 1.0f;
}

static void test_distort_basics(void **state)
{
    (void)state;
    float src[S * S], a[S * S], b[S * S];
    glyph(src);
    /* no parts: an exact copy, whatever the seed */
    assert_int_equal(sm_image_distort(src, S, S, 0, 123, a), SM_OK);
    assert_memory_equal(src, a, sizeof src);
    /* the same seed, the same image; another seed, another one (for most seeds) */
    assert_int_equal(sm_image_distort(src, S, S, SM_DISTORT_ALL, 7, a), SM_OK);
    assert_int_equal(sm_image_distort(src, S, S, SM_DISTORT_ALL, 7, b), SM_OK);
    assert_memory_equal(a, b, sizeof a);
    int differ = 0;
    for (uint64_t seed = 8; seed < 16; seed++) {
        assert_int_equal(sm_image_distort(src, S, S, SM_DISTORT_ALL, seed, b), SM_OK);
        differ += memcmp(a, b, sizeof a) != 0;
        for (int i = 0; i < S * S; i++) assert_true(b[i] >= 0.0f && b[i] <= 1.0f);
    }
    assert_true(differ >= 6);
    /* bad arguments */
    b[0] = -3;
    assert_int_equal(sm_image_distort(NULL, S, S, 0, 1, b), SM_ERR_INVALID_ARG);
    assert_int_equal(sm_image_distort(src, 0, S, 0, 1, b), SM_ERR_INVALID_ARG);
    assert_int_equal(sm_image_distort(src, S, 5000, 0, 1, b), SM_ERR_INVALID_ARG);
    assert_int_equal(sm_image_distort(src, S, S, 16, 1, b), SM_ERR_INVALID_ARG);
    assert_float_equal(b[0], -3, 0);
}

/* Centre of the ink (1 - value) of an image. */
static void ink_centre(const float *img, double *cx, double *cy)
{
    double m = 0, sx = 0, sy = 0;
    for (int y = 0; y < S; y++)
        for (int x = 0; x < S; x++) {
            double ink = 1.0 - img[y * S + x];
            m += ink, sx += ink * x, sy += ink * y;
        }
    *cx = sx / m, *cy = sy / m;
}

static void test_distort_ranges(void **state)
{
    (void)state;
    float dot[S * S], out[S * S];
    for (int i = 0; i < S * S; i++) dot[i] = 1.0f;
    dot[10 * S + 10] = 0.0f; /* the centre: rotation, shear and scale keep it in place */
    int moved = 0;
    for (uint64_t seed = 1; seed <= 200; seed++) {
        double cx, cy;
        assert_int_equal(sm_image_distort(dot, S, S, SM_DISTORT_SHIFT, seed, out), SM_OK);
        ink_centre(out, &cx, &cy);
        assert_true(fabs(cx - 10) <= 2.0 + 1e-9 && fabs(cy - 10) <= 2.0 + 1e-9);
        moved += fabs(cx - 10) > 0.5 || fabs(cy - 10) > 0.5;
        assert_int_equal(sm_image_distort(dot, S, S,
                                          SM_DISTORT_ROTATE | SM_DISTORT_SHEAR | SM_DISTORT_SCALE,
                                          seed, out),
                         SM_OK);
        ink_centre(out, &cx, &cy);
        assert_true(fabs(cx - 10) < 1e-6 && fabs(cy - 10) < 1e-6);
    }
    /* the shift is on about half the time and then mostly over half a pixel */
    assert_true(moved > 40 && moved < 110);

    /* a dot 8 px right of the centre: rotation alone moves it along a circle by at most 10 deg */
    float off[S * S];
    for (int i = 0; i < S * S; i++) off[i] = 1.0f;
    off[10 * S + 18] = 0.0f;
    for (uint64_t seed = 1; seed <= 100; seed++) {
        double cx, cy;
        assert_int_equal(sm_image_distort(off, S, S, SM_DISTORT_ROTATE, seed, out), SM_OK);
        ink_centre(out, &cx, &cy);
        double ang = atan2(cy - 10, cx - 10) * 180 / 3.14159265358979;
        assert_true(fabs(ang) <= 10.0 + 0.5);
        assert_float_equal(hypot(cx - 10, cy - 10), 8.0, 0.35);
        /* scale alone: 0.8..1.2 of the distance */
        assert_int_equal(sm_image_distort(off, S, S, SM_DISTORT_SCALE, seed, out), SM_OK);
        ink_centre(out, &cx, &cy);
        assert_true(cx - 10 >= 8 * 0.8 - 0.3 && cx - 10 <= 8 * 1.2 + 0.3);
    }
}

typedef struct rig {
    sm_backend *be;
    sm_subnet *sub;
    sm_head *head;
    sm_adam *adam;
    sm_dataset *ds;
    sm_trainer *tr;
} rig;

#define ARCH "1x16x16:conv4k3,relu,pool2,conv4k3,relu,flatten,fc8"

static void rig_open(rig *r, unsigned augment)
{
    sm_arch *arch;
    assert_int_equal(sm_backend_create(SM_BACKEND_CPU, &r->be), SM_OK);
    assert_int_equal(sm_backend_set_threads(r->be, 1), SM_OK);
    assert_int_equal(sm_arch_from_string(ARCH, &arch), SM_OK);
    assert_int_equal(sm_subnet_create(r->be, arch, 11, &r->sub), SM_OK);
    sm_arch_destroy(arch);
    assert_int_equal(sm_head_create(r->be, 8, 12, &r->head), SM_OK);
    assert_int_equal(sm_adam_create(r->sub, r->head, &r->adam), SM_OK);
    assert_int_equal(sm_adam_set(r->adam, SM_ADAM_LEARNING_RATE, 1e-2), SM_OK);
    assert_int_equal(sm_dataset_create_synthetic(8, 4, 16, 16, 3, &r->ds), SM_OK);
    assert_int_equal(sm_trainer_create(r->sub, r->head, r->adam, r->ds, 5, &r->tr), SM_OK);
    assert_int_equal(sm_trainer_set_param(r->tr, SM_TRAINER_BATCH_SIZE, 6), SM_OK);
    if (augment) assert_int_equal(sm_trainer_set_param(r->tr, SM_TRAINER_AUGMENT, augment), SM_OK);
}

static void rig_close(rig *r)
{
    sm_trainer_destroy(r->tr);
    sm_adam_destroy(r->adam);
    sm_head_destroy(r->head);
    sm_subnet_destroy(r->sub);
    sm_dataset_destroy(r->ds);
    sm_backend_destroy(r->be);
}

static float *params(const rig *r)
{
    size_t n = sm_subnet_num_params(r->sub);
    float *p = malloc((n + 9) * sizeof *p);
    assert_int_equal(sm__subnet_read_params(r->sub, p), SM_OK);
    assert_int_equal(sm__head_read_params(r->head, p + n), SM_OK);
    return p;
}

static void test_trainer_augment(void **state)
{
    (void)state;
    rig plain, zero, aug;
    rig_open(&plain, 0);
    rig_open(&zero, 0);
    rig_open(&aug, SM_DISTORT_ALL);
    int64_t v = -1;
    assert_int_equal(sm_trainer_get_param(plain.tr, SM_TRAINER_AUGMENT, &v), SM_OK);
    assert_int_equal(v, 0); /* off by default */
    assert_int_equal(sm_trainer_set_param(zero.tr, SM_TRAINER_AUGMENT, 0), SM_OK);
    assert_int_equal(sm_trainer_set_param(zero.tr, SM_TRAINER_AUGMENT, 16), SM_ERR_INVALID_ARG);
    assert_int_equal(sm_trainer_set_param(zero.tr, SM_TRAINER_AUGMENT, -1), SM_ERR_INVALID_ARG);
    assert_int_equal(sm_trainer_get_param(aug.tr, SM_TRAINER_AUGMENT, &v), SM_OK);
    assert_int_equal(v, SM_DISTORT_ALL);

    /* plain training against sm_train_step_batch on the sampler's own pairs: what 0.1 did */
    rig ref;
    rig_open(&ref, 0);
    sm_sampler *smp;
    assert_int_equal(sm_sampler_create(ref.ds, 5, &smp), SM_OK);
    float l[6 * 256], rr[6 * 256], lab[6], loss;
    for (int i = 0; i < 4; i++) {
        assert_int_equal(sm_train_step(plain.tr, &loss), SM_OK);
        assert_int_equal(sm_train_step(zero.tr, &loss), SM_OK);
        assert_int_equal(sm_train_step(aug.tr, &loss), SM_OK);
        assert_int_equal(sm_sampler_next(smp, 6, l, rr, lab, NULL, NULL), SM_OK);
        assert_int_equal(sm_train_step_batch(ref.tr, 6, l, rr, lab, &loss), SM_OK);
    }
    sm_sampler_destroy(smp);
    size_t n = sm_subnet_num_params(plain.sub) + 9;
    float *pp = params(&plain), *pz = params(&zero), *pa = params(&aug), *pr = params(&ref);
    assert_memory_equal(pp, pz, n * sizeof *pp);
    assert_memory_equal(pp, pr, n * sizeof *pp);
    assert_true(memcmp(pp, pa, n * sizeof *pp) != 0);
    /* augmentation draws from its own RNG: the sampler drew the same pairs */
    uint64_t s1[4], s2[4];
    sm__sampler_get_state(plain.tr->sampler, s1);
    sm__sampler_get_state(aug.tr->sampler, s2);
    assert_memory_equal(s1, s2, sizeof s1);
    free(pp), free(pz), free(pa), free(pr);
    rig_close(&ref);
    rig_close(&plain);
    rig_close(&zero);
    rig_close(&aug);
}

static char *find(char *hay, size_t n, const char *needle)
{
    size_t k = strlen(needle);
    for (size_t i = 0; i + k <= n; i++)
        if (memcmp(hay + i, needle, k) == 0) return hay + i;
    return NULL;
}

/* Renames a metadata key in place (same length) and rewrites the crc32 to match. */
static void rename_key(const char *path, const char *from, const char *to)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    assert_int_equal(fread(b, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    b[n] = 0;
    char *k = find(b, (size_t)n, from);
    assert_non_null(k);
    memcpy(k, to, strlen(to));
    char *c = find(b, (size_t)n, "\"crc32\":\"");
    assert_non_null(c);
    size_t pos = (size_t)(c - b) + 9;
    for (size_t i = 0; i < 8; i++) b[pos + i] = '0';
    char hex[9];
    snprintf(hex, sizeof hex, "%08lx", crc32(0, (const Bytef *)b, (uInt)n));
    for (size_t i = 0; i < 8; i++) b[pos + i] = hex[i];
    f = fopen(path, "wb");
    assert_int_equal(fwrite(b, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    free(b);
}

static void strip_augment_keys(const char *path)
{
    rename_key(path, "\"augment\":", "\"xugment\":");
    rename_key(path, "\"augment_state\":", "\"xugment_state\":");
}

static void test_resume_with_augment(void **state)
{
    (void)state;
    char path[] = "/tmp/sm-augment-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    rig a, b;
    rig_open(&a, SM_DISTORT_ALL);
    rig_open(&b, 0); /* the load restores the augmentation setting too */
    float loss;
    for (int i = 0; i < 2; i++) assert_int_equal(sm_train_step(a.tr, &loss), SM_OK);
    assert_int_equal(sm_trainer_save(a.tr, path), SM_OK);
    assert_int_equal(sm_trainer_load(b.tr, path), SM_OK);
    int64_t v;
    assert_int_equal(sm_trainer_get_param(b.tr, SM_TRAINER_AUGMENT, &v), SM_OK);
    assert_int_equal(v, SM_DISTORT_ALL);
    float la, lb;
    for (int i = 0; i < 3; i++) {
        assert_int_equal(sm_train_step(a.tr, &la), SM_OK);
        assert_int_equal(sm_train_step(b.tr, &lb), SM_OK);
        assert_memory_equal(&la, &lb, sizeof la);
    }
    size_t n = sm_subnet_num_params(a.sub) + 9;
    float *pa = params(&a), *pb = params(&b);
    assert_memory_equal(pa, pb, n * sizeof *pa);
    free(pa), free(pb);

    /* A file of 0.1 has no augmentation keys: it loads with augmentation off and the
     * augmentation RNG seeded from the file's seed. Make one by renaming the keys (unknown
     * keys are ignored) and fixing the checksum. */
    rig c;
    rig_open(&c, SM_DISTORT_SHIFT);
    assert_int_equal(sm_trainer_save(a.tr, path), SM_OK);
    strip_augment_keys(path);
    assert_int_equal(sm_trainer_load(c.tr, path), SM_OK);
    assert_int_equal(sm_trainer_get_param(c.tr, SM_TRAINER_AUGMENT, &v), SM_OK);
    assert_int_equal(v, 0);
    sm__rng fresh;
    sm__rng_seed(&fresh, sm__augment_seed(5));
    assert_memory_equal(&fresh, &c.tr->aug_rng, sizeof fresh);
    /* only one of the two keys: refused */
    assert_int_equal(sm_trainer_save(a.tr, path), SM_OK);
    rename_key(path, "\"augment\":", "\"xugment\":");
    assert_int_equal(sm_trainer_load(c.tr, path), SM_ERR_FORMAT);
    assert_non_null(strstr(sm_last_error(), "augment"));
    rig_close(&c);
    rig_close(&a);
    rig_close(&b);
    unlink(path);
}

/* A step that fails leaves the augmentation RNG where it was. */
static void test_failed_step_keeps_rng(void **state)
{
    (void)state;
    rig a;
    rig_open(&a, SM_DISTORT_ALL);
    sm__rng before = a.tr->aug_rng;
    sm__inject_nonfinite = SM__INJECT_LOSS_NAN;
    float loss;
    assert_int_equal(sm_train_step(a.tr, &loss), SM_ERR_NUMERIC);
    assert_memory_equal(&before, &a.tr->aug_rng, sizeof before);
    assert_int_equal(sm_train_step(a.tr, &loss), SM_OK);
    assert_true(memcmp(&before, &a.tr->aug_rng, sizeof before) != 0);
    rig_close(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_distort_basics),        cmocka_unit_test(test_distort_ranges),
        cmocka_unit_test(test_trainer_augment),       cmocka_unit_test(test_resume_with_augment),
        cmocka_unit_test(test_failed_step_keeps_rng),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
