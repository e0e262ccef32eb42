/* SPDX-License-Identifier: MIT */
/* API misuse: every public call given NULL handles, zero / negative / huge sizes, unknown enum
 * values, mismatched handles, or called in the wrong order returns its status with a message,
 * writes no output, and leaves its handles usable. (The basic NULL checks are in test_api.c.)
 * Run under ASan/UBSan and valgrind by the 'sanitize' suite, so a crash or an out-of-bounds
 * access here is caught even when the status happens to be right. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "fixtures.h"
#include "siamese/siamese.h"

#define TINY   "1x12x12:conv4k3,relu,pool2,conv4k3,relu,flatten,fc8"
#define TINY16 "1x16x16:conv4k3,relu,pool2,conv4k3,relu,flatten,fc8"
enum { IN = 144 };

static void expect_status(sm_status got, sm_status want, const char *needle)
{
    if (got != want)
        fail_msg("got %s (%s), expected %s", sm_status_name(got), sm_last_error(),
                 sm_status_name(want));
    if (got != SM_OK && sm_last_error()[0] == '\0')
        fail_msg("%s without a message", sm_status_name(got));
    if (needle && !strstr(sm_last_error(), needle))
        fail_msg("message '%s' does not mention '%s'", sm_last_error(), needle);
}

/* A failing call must not write its outputs: the sentinel survives. */
#define SENTINEL ((void *)(uintptr_t)0x5a5a5a5a)

typedef struct model {
    sm_backend *be;
    sm_subnet *sub;
    sm_head *head;
    sm_adam *adam;
    sm_dataset *ds;
    sm_trainer *tr;
} model;

static void model_open(model *m, const char *arch_text, int side, uint64_t seed)
{
    memset(m, 0, sizeof *m);
    sm_arch *arch;
    assert_int_equal(sm_backend_create(SM_BACKEND_CPU, &m->be), SM_OK);
    assert_int_equal(sm_arch_from_string(arch_text, &arch), SM_OK);
    assert_int_equal(sm_subnet_create(m->be, arch, seed, &m->sub), SM_OK);
    sm_arch_destroy(arch); /* the subnet keeps its own copy */
    assert_int_equal(sm_head_create(m->be, sm_subnet_feature_dim(m->sub), seed + 1, &m->head),
                     SM_OK);
    assert_int_equal(sm_adam_create(m->sub, m->head, &m->adam), SM_OK);
    assert_int_equal(sm_dataset_create_synthetic(6, 3, side, side, seed, &m->ds), SM_OK);
    assert_int_equal(sm_trainer_create(m->sub, m->head, m->adam, m->ds, seed, &m->tr), SM_OK);
    assert_int_equal(sm_trainer_set_param(m->tr, SM_TRAINER_BATCH_SIZE, 4), SM_OK);
}

/* The documented order: a handle goes before everything it borrows. */
static void model_close(model *m)
{
    sm_trainer_destroy(m->tr);
    sm_adam_destroy(m->adam);
    sm_head_destroy(m->head);
    sm_subnet_destroy(m->sub);
    sm_dataset_destroy(m->ds);
    sm_backend_destroy(m->be);
}

static void test_zero_negative_and_huge_sizes(void **state)
{
    (void)state;
    sm_arch *a = SENTINEL;
    expect_status(sm_arch_create(-1, 8, 8, &a), SM_ERR_INVALID_ARG, NULL);
    expect_status(sm_arch_create(1, 0, 8, &a), SM_ERR_INVALID_ARG, NULL);
    expect_status(sm_arch_create(1, 8, -8, &a), SM_ERR_INVALID_ARG, NULL);
    expect_status(sm_arch_create(65, 8, 8, &a), SM_ERR_INVALID_ARG, NULL);
    expect_status(sm_arch_create(1, 4097, 8, &a), SM_ERR_INVALID_ARG, NULL);
    assert_ptr_equal(a, SENTINEL);
    assert_int_equal(sm_arch_create(1, 8, 8, &a), SM_OK);
    expect_status(sm_arch_add_conv(a, -4, 3), SM_ERR_INVALID_ARG, NULL);
    expect_status(sm_arch_add_conv(a, 4, 0), SM_ERR_INVALID_ARG, NULL);
    expect_status(sm_arch_add_conv(a, 4, -3), SM_ERR_INVALID_ARG, NULL);
    expect_status(sm_arch_add_conv(a, 1 << 30, 3), SM_ERR_INVALID_ARG, NULL);
    expect_status(sm_arch_add_maxpool(a, 0), SM_ERR_INVALID_ARG, NULL);
    expect_status(sm_arch_add_maxpool(a, 9), SM_ERR_SHAPE, NULL);
    assert_int_equal(sm_arch_add_flatten(a), SM_OK);
    expect_status(sm_arch_add_fc(a, 0), SM_ERR_INVALID_ARG, NULL);
    expect_status(sm_arch_add_fc(a, -1), SM_ERR_INVALID_ARG, NULL);
    expect_status(sm_arch_add_fc(a, (1 << 24) + 1), SM_ERR_INVALID_ARG, NULL);
    assert_int_equal(sm_arch_num_layers(a), 1);
    sm_layer_kind k = SM_LAYER_FC;
    expect_status(sm_arch_get_layer(a, SIZE_MAX, &k, NULL, NULL), SM_ERR_INVALID_ARG, NULL);
    assert_int_equal(k, SM_LAYER_FC);
    assert_int_equal(sm_arch_get_layer(a, 0, NULL, NULL, NULL), SM_OK); /* outputs optional */
    assert_int_equal(sm_arch_input_shape(a, NULL, NULL, NULL), SM_OK);
    expect_status(sm_arch_input_shape(NULL, NULL, NULL, NULL), SM_ERR_INVALID_ARG, NULL);
    sm_arch_destroy(a);

    sm_dataset *ds = SENTINEL;
    expect_status(sm_dataset_create(0, 5, &ds), SM_ERR_INVALID_ARG, NULL);
    expect_status(sm_dataset_create(5, -1, &ds), SM_ERR_INVALID_ARG, NULL);
    expect_status(sm_dataset_create(100000, 5, &ds), SM_ERR_INVALID_ARG, NULL);
    expect_status(sm_dataset_create_synthetic(0, 3, 8, 8, 1, &ds), SM_ERR_INVALID_ARG, NULL);
    expect_status(sm_dataset_create_synthetic(3, -1, 8, 8, 1, &ds), SM_ERR_INVALID_ARG, NULL);
    expect_status(sm_dataset_create_synthetic(3, 3, 0, 0, 1, &ds), SM_ERR_INVALID_ARG, NULL);
    expect_status(sm_dataset_create_synthetic(3, 3, -8, 8, 1, &ds), SM_ERR_INVALID_ARG, NULL);
    expect_status(sm_dataset_open("/nonexistent", -1, 105, NULL, 0, &ds), SM_ERR_INVALID_ARG, NULL);
    expect_status(sm_dataset_open("/nonexistent", 0, 105, NULL, 0, &ds), SM_ERR_INVALID_ARG, NULL);
    expect_status(sm_dataset_open("/nonexistent", 0, 0, NULL, 2, &ds), SM_ERR_INVALID_ARG, NULL);
    const char *empty_name[] = {""};
    expect_status(sm_dataset_open("/nonexistent", 0, 0, empty_name, 1, &ds), SM_ERR_INVALID_ARG,
                  NULL);
    assert_ptr_equal(ds, SENTINEL);
    float px[4];
    expect_status(sm_image_read_png("/nonexistent.png", 0, 2, px), SM_ERR_INVALID_ARG, NULL);
    expect_status(sm_image_read_png("/nonexistent.png", 2, -2, px), SM_ERR_INVALID_ARG, NULL);
    expect_status(sm_image_read_png("/nonexistent.png", 2, 2, NULL), SM_ERR_INVALID_ARG, NULL);

    sm_backend *be;
    assert_int_equal(sm_backend_create(SM_BACKEND_CPU, &be), SM_OK);
    sm_head *h = SENTINEL;
    expect_status(sm_head_create(be, 0, 1, &h), SM_ERR_INVALID_ARG, NULL);
    expect_status(sm_head_create(be, SIZE_MAX, 1, &h), SM_ERR_INVALID_ARG, NULL);
    expect_status(sm_head_create(be, ((size_t)1 << 24) + 1, 1, &h), SM_ERR_INVALID_ARG, NULL);
    assert_ptr_equal(h, SENTINEL);
    expect_status(sm_backend_set_threads(be, -5), SM_ERR_INVALID_ARG, NULL);
    expect_status(sm_backend_set_threads(be, 1025), SM_ERR_INVALID_ARG, NULL);
    assert_int_equal(sm_backend_get_threads(NULL), 0);
    assert_int_equal(sm_backend_get_kind(NULL), SM_BACKEND_AUTO);
    sm_backend_destroy(be);

    expect_status(sm_set_limit((sm_limit)0, 5), SM_ERR_INVALID_ARG, NULL);
    expect_status(sm_set_limit((sm_limit)99, 5), SM_ERR_INVALID_ARG, "99");
    expect_status(sm_set_limit((sm_limit)-1, 5), SM_ERR_INVALID_ARG, NULL);
    expect_status(sm_set_limit(SM_LIMIT_IMAGE_SIDE, 0), SM_ERR_INVALID_ARG, NULL);
    assert_int_equal(sm_get_limit((sm_limit)0), 0);
    assert_int_equal(sm_get_limit((sm_limit)99), 0);
    assert_int_equal(sm_get_limit((sm_limit)-7), 0);
    assert_int_equal(sm_get_limit(SM_LIMIT_IMAGE_SIDE), 4096);
}

static void test_unknown_enum_values(void **state)
{
    (void)state;
    expect_status(sm_backend_probe((sm_backend_kind)-1), SM_ERR_INVALID_ARG, NULL);
    expect_status(sm_backend_probe((sm_backend_kind)77), SM_ERR_INVALID_ARG, "77");
    assert_string_equal(sm_status_name((sm_status)-1), "SM_ERR_UNKNOWN");
    assert_true(strlen(sm_status_str((sm_status)12345)) > 0);
    model m;
    model_open(&m, TINY, 12, 1);
    double v = 42;
    expect_status(sm_adam_get(m.adam, (sm_adam_param)0, &v), SM_ERR_INVALID_ARG, NULL);
    expect_status(sm_adam_get(m.adam, SM_ADAM_BETA1, NULL), SM_ERR_INVALID_ARG, NULL);
    assert_true(v == 42);
    expect_status(sm_adam_set(m.adam, SM_ADAM_EPSILON, INFINITY), SM_ERR_INVALID_ARG, NULL);
    expect_status(sm_adam_set(m.adam, SM_ADAM_LEARNING_RATE, -1e-3), SM_ERR_INVALID_ARG, NULL);
    int64_t iv = 42;
    expect_status(sm_trainer_get_param(m.tr, (sm_trainer_param)-3, &iv), SM_ERR_INVALID_ARG, NULL);
    expect_status(sm_trainer_get_param(m.tr, SM_TRAINER_BATCH_SIZE, NULL), SM_ERR_INVALID_ARG,
                  NULL);
    assert_int_equal(iv, 42);
    expect_status(sm_trainer_set_param(m.tr, SM_TRAINER_MICRO_BATCH, INT64_MAX), SM_ERR_INVALID_ARG,
                  NULL);
    expect_status(sm_trainer_set_param(m.tr, SM_TRAINER_BATCH_SIZE, INT64_MIN), SM_ERR_INVALID_ARG,
                  NULL);
    assert_int_equal(sm_trainer_get_param(m.tr, SM_TRAINER_BATCH_SIZE, &iv), SM_OK);
    assert_int_equal(iv, 4);
    expect_status(sm_trainer_set_progress(NULL, NULL, NULL), SM_ERR_INVALID_ARG, NULL);
    float loss;
    assert_int_equal(sm_train_step(m.tr, &loss), SM_OK); /* still usable */
    model_close(&m);
}

static void test_arch_to_string_buffers(void **state)
{
    (void)state;
    sm_arch *a;
    assert_int_equal(sm_arch_from_string(TINY, &a), SM_OK);
    size_t need = 0;
    /* cap 0 and no buffer: a size query */
    expect_status(sm_arch_to_string(a, NULL, 0, &need), SM_ERR_LIMIT, NULL);
    assert_int_equal(need, strlen(TINY));
    expect_status(sm_arch_to_string(a, NULL, 0, NULL), SM_ERR_LIMIT, NULL);
    expect_status(sm_arch_to_string(a, NULL, 64, &need), SM_ERR_INVALID_ARG, NULL);
    expect_status(sm_arch_to_string(NULL, NULL, 0, &need), SM_ERR_INVALID_ARG, NULL);
    char *buf = malloc(need + 1); /* exact sizes, so ASan sees any write past the end */
    memset(buf, 'x', need + 1);
    expect_status(sm_arch_to_string(a, buf, 1, NULL), SM_ERR_LIMIT, NULL);
    assert_int_equal(buf[0], 0);
    for (size_t cap = 2; cap <= need; cap++) {
        char *small = malloc(cap);
        expect_status(sm_arch_to_string(a, small, cap, NULL), SM_ERR_LIMIT, NULL);
        assert_int_equal(small[0], 0);
        free(small);
    }
    assert_int_equal(sm_arch_to_string(a, buf, need + 1, NULL), SM_OK);
    assert_string_equal(buf, TINY);
    free(buf);
    sm_arch_destroy(a);

    /* text the parser must refuse without reading past the end */
    const char *bad[] = {"koch,",
                         "1x12x12:",
                         "1x12x12:relu,",
                         "1x12x12:,",
                         "-1x12x12:relu",
                         "1x12x12:conv4k3,relu,pool2,conv4k3,relu,flatten,fc8,fc",
                         "1x12x12:fc8",
                         "1x12x12:conv4k13",
                         "1x12x12:pool13",
                         "1x12x12:conv4k3x",
                         "1x12x12:flatten,conv1k1",
                         "  1x12x12:relu"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        a = SENTINEL;
        sm_status s = sm_arch_from_string(bad[i], &a);
        /* "1x12x12:" (no layers) is a valid empty arch; the rest must fail */
        if (s == SM_OK) {
            assert_int_equal(sm_arch_num_layers(a), 0);
            sm_arch_destroy(a);
            continue;
        }
        assert_ptr_equal(a, SENTINEL);
    }
}

static void test_model_mismatches(void **state)
{
    (void)state;
    model m;
    model_open(&m, TINY, 12, 1);
    sm_backend *be2;
    assert_int_equal(sm_backend_create(SM_BACKEND_CPU, &be2), SM_OK);
    sm_head *h2, *wide;
    assert_int_equal(sm_head_create(be2, 8, 3, &h2), SM_OK);
    assert_int_equal(sm_head_create(m.be, 9, 3, &wide), SM_OK);
    float img[IN] = {0}, s = 42;
    sm_adam *ad = SENTINEL;
    expect_status(sm_adam_create(m.sub, h2, &ad), SM_ERR_INVALID_ARG, "backends");
    assert_ptr_equal(ad, SENTINEL);
    expect_status(sm_predict_pair(m.sub, h2, img, img, &s), SM_ERR_INVALID_ARG, "backends");
    expect_status(sm_predict_pair(m.sub, wide, img, img, &s), SM_ERR_SHAPE, NULL);
    assert_true(s == 42);
    /* a model file from a subnet and a head that do not fit together would not load again */
    char *dir = fx_tempdir(), *path = fx_join(dir, "m.safetensors");
    expect_status(sm_model_save(m.sub, wide, path), SM_ERR_SHAPE, NULL);
    expect_status(sm_model_save(m.sub, m.head, ""), SM_ERR_INVALID_ARG, NULL);
    expect_status(sm_trainer_save(m.tr, ""), SM_ERR_INVALID_ARG, NULL);
    expect_status(sm_model_save(m.sub, m.head, dir), SM_ERR_IO, NULL); /* a folder */
    sm_subnet *ls = SENTINEL;
    sm_head *lh = SENTINEL;
    expect_status(sm_model_load(m.be, path, &ls, &lh), SM_ERR_IO, NULL); /* never written */
    expect_status(sm_model_load(m.be, "", &ls, &lh), SM_ERR_IO, NULL);
    expect_status(sm_model_load(m.be, path, NULL, &lh), SM_ERR_INVALID_ARG, NULL);
    assert_ptr_equal(ls, SENTINEL);
    assert_ptr_equal(lh, SENTINEL);

    /* subnets that cannot be: no parameters, not flat */
    sm_arch *a;
    sm_subnet *sub = SENTINEL;
    assert_int_equal(sm_arch_from_string("1x4x4:relu,flatten", &a), SM_OK);
    expect_status(sm_subnet_create(m.be, a, 1, &sub), SM_ERR_SHAPE, NULL);
    sm_arch_destroy(a);
    assert_int_equal(sm_arch_from_string("1x4x4:conv2k3", &a), SM_OK);
    expect_status(sm_subnet_create(m.be, a, 1, &sub), SM_ERR_SHAPE, "flat");
    sm_arch_destroy(a);
    assert_ptr_equal(sub, SENTINEL);

    /* a trainer whose dataset is not greyscale-compatible with a 3-channel subnet */
    sm_subnet *rgb;
    sm_head *rh;
    sm_adam *ra;
    sm_trainer *rt = SENTINEL;
    assert_int_equal(sm_arch_from_string("3x12x12:conv2k3,relu,flatten,fc4", &a), SM_OK);
    assert_int_equal(sm_subnet_create(m.be, a, 1, &rgb), SM_OK);
    sm_arch_destroy(a);
    assert_int_equal(sm_head_create(m.be, 4, 1, &rh), SM_OK);
    assert_int_equal(sm_adam_create(rgb, rh, &ra), SM_OK);
    expect_status(sm_trainer_create(rgb, rh, ra, m.ds, 1, &rt), SM_ERR_SHAPE, NULL);
    expect_status(sm_trainer_create(rgb, rh, m.adam, NULL, 1, &rt), SM_ERR_INVALID_ARG, "Adam");
    assert_ptr_equal(rt, SENTINEL);
    sm_adam_destroy(ra);
    sm_head_destroy(rh);
    sm_subnet_destroy(rgb);

    free(path);
    fx_rmtree(dir);
    free(dir);
    sm_head_destroy(wide);
    sm_head_destroy(h2);
    sm_backend_destroy(be2);
    model_close(&m);
}

/* n so large that n * (floats per image) * sizeof(float) does not fit in size_t: the call must
 * refuse it before it touches the (necessarily smaller) buffers. */
static void test_size_overflow(void **state)
{
    (void)state;
    model m;
    model_open(&m, TINY, 12, 1);
    float a[IN] = {0}, b[IN] = {0}, out[8] = {0}, lab[1] = {0};
    size_t huge[] = {SIZE_MAX, SIZE_MAX / 2, SIZE_MAX / sizeof(float) / IN + 1,
                     SIZE_MAX / sizeof(float) / 8 + 1, (SIZE_MAX >> 2) + 1};
    for (size_t i = 0; i < sizeof huge / sizeof *huge; i++) {
        sm_status s = sm_predict_pairs(m.sub, m.head, huge[i], a, b, out);
        if (s != SM_ERR_INVALID_ARG && s != SM_ERR_LIMIT)
            fail_msg("sm_predict_pairs(n=%zu) gave %s", huge[i], sm_status_name(s));
        s = sm_embed(m.sub, huge[i], a, out);
        if (s != SM_ERR_INVALID_ARG && s != SM_ERR_LIMIT)
            fail_msg("sm_embed(n=%zu) gave %s", huge[i], sm_status_name(s));
        s = sm_train_step_batch(m.tr, huge[i], a, b, lab, NULL);
        if (s != SM_ERR_INVALID_ARG && s != SM_ERR_LIMIT)
            fail_msg("sm_train_step_batch(n=%zu) gave %s", huge[i], sm_status_name(s));
    }
    sm_sampler *sp;
    assert_int_equal(sm_sampler_create(m.ds, 1, &sp), SM_OK);
    size_t li[1];
    for (size_t i = 0; i < sizeof huge / sizeof *huge; i++) {
        sm_status s = sm_sampler_next(sp, huge[i], a, b, lab, li, NULL);
        if (s != SM_ERR_INVALID_ARG && s != SM_ERR_LIMIT)
            fail_msg("sm_sampler_next(n=%zu) gave %s", huge[i], sm_status_name(s));
    }
    /* n = 0 is a no-op everywhere */
    assert_int_equal(sm_sampler_next(sp, 0, NULL, NULL, NULL, NULL, NULL), SM_OK);
    assert_int_equal(sm_embed(m.sub, 0, a, out), SM_OK);
    assert_int_equal(sm_predict_pairs(m.sub, m.head, 0, a, b, out), SM_OK);
    expect_status(sm_sampler_next(sp, 1, NULL, b, lab, NULL, NULL), SM_ERR_INVALID_ARG, NULL);
    expect_status(sm_sampler_next(NULL, 1, a, b, lab, NULL, NULL), SM_ERR_INVALID_ARG, NULL);
    assert_int_equal(sm_sampler_next(sp, 1, a, b, lab, li, NULL), SM_OK);
    sm_sampler_destroy(sp);
    /* everything still works */
    assert_int_equal(sm_predict_pairs(m.sub, m.head, 1, a, b, out), SM_OK);
    assert_true(out[0] > 0.0f && out[0] < 1.0f);
    model_close(&m);
}

/* Images added to a dataset while a sampler (or a trainer) uses it: the sampler sees them. */
static void test_sampler_after_add_image(void **state)
{
    (void)state;
    sm_dataset *ds;
    assert_int_equal(sm_dataset_create(4, 4, &ds), SM_OK);
    float px[16];
    sm_sampler *sp = SENTINEL;
    expect_status(sm_sampler_create(ds, 1, &sp), SM_ERR_DATASET, NULL); /* empty */
    for (int i = 0; i < 16; i++) px[i] = (float)i / 15.0f;
    assert_int_equal(sm_dataset_add_image(ds, "a/one", px), SM_OK);
    assert_int_equal(sm_dataset_add_image(ds, "a/two", px), SM_OK);
    expect_status(sm_sampler_create(ds, 1, &sp), SM_ERR_DATASET, "two images");
    assert_ptr_equal(sp, SENTINEL);
    px[0] = NAN;
    expect_status(sm_dataset_add_image(ds, "a/one", px), SM_ERR_INVALID_ARG, NULL);
    px[0] = 1.5f;
    expect_status(sm_dataset_add_image(ds, "a/one", px), SM_ERR_INVALID_ARG, NULL);
    px[0] = 0.0f;
    expect_status(sm_dataset_add_image(ds, "", px), SM_ERR_INVALID_ARG, NULL);
    expect_status(sm_dataset_add_image(ds, NULL, px), SM_ERR_INVALID_ARG, NULL);
    expect_status(sm_dataset_add_image(ds, "a/one", NULL), SM_ERR_INVALID_ARG, NULL);
    assert_int_equal(sm_dataset_num_images(ds), 2);
    assert_int_equal(sm_dataset_add_image(ds, "a/one", px), SM_OK);
    assert_int_equal(sm_sampler_create(ds, 1, &sp), SM_OK);

    enum { N = 40 };
    float l[N * 16], r[N * 16], lab[N], got[16];
    size_t li[N], ri[N];
    assert_int_equal(sm_sampler_next(sp, N, l, r, lab, li, ri), SM_OK);
    /* many more images (the pixel store is reallocated) and new classes, then sample again */
    for (int k = 0; k < 200; k++) {
        char label[32];
        snprintf(label, sizeof label, "b/c%d", k % 7);
        for (int i = 0; i < 16; i++) px[i] = (float)((i * 7 + k) % 16) / 15.0f;
        assert_int_equal(sm_dataset_add_image(ds, label, px), SM_OK);
    }
    assert_int_equal(sm_sampler_next(sp, N, l, r, lab, li, ri), SM_OK);
    size_t n = sm_dataset_num_images(ds);
    int saw_new = 0;
    for (int k = 0; k < N; k++) {
        assert_true(li[k] < n && ri[k] < n && li[k] != ri[k]);
        saw_new += li[k] >= 3 || ri[k] >= 3;
        assert_int_equal(sm_dataset_get_image(ds, li[k], got), SM_OK);
        assert_memory_equal(got, l + k * 16, sizeof got);
        assert_int_equal(sm_dataset_get_image(ds, ri[k], got), SM_OK);
        assert_memory_equal(got, r + k * 16, sizeof got);
        size_t cl = sm_dataset_image_class(ds, li[k]), cr = sm_dataset_image_class(ds, ri[k]);
        assert_int_equal(lab[k] == 1.0f, cl == cr);
    }
    assert_true(saw_new > 0);
    /* out-of-range queries */
    assert_int_equal(sm_dataset_image_class(ds, n), SIZE_MAX);
    assert_null(sm_dataset_class_name(ds, SIZE_MAX));
    assert_null(sm_dataset_alphabet_name(ds, 99));
    assert_null(sm_dataset_image_source(ds, n));
    assert_string_equal(sm_dataset_image_source(ds, 0), "");
    expect_status(sm_dataset_get_image(ds, n, got), SM_ERR_INVALID_ARG, NULL);
    expect_status(sm_dataset_get_image(ds, 0, NULL), SM_ERR_INVALID_ARG, NULL);
    expect_status(sm_dataset_image_size(NULL, NULL, NULL), SM_ERR_INVALID_ARG, NULL);
    assert_int_equal(sm_dataset_num_classes(NULL), 0);
    assert_null(sm_dataset_class_name(NULL, 0));
    sm_sampler_destroy(sp);
    sm_dataset_destroy(ds);
}

/* A trainer created on a dataset that cannot give pairs yet fails cleanly; once it can, a
 * trainer trains, and keeps training while images are added. */
static void test_trainer_wrong_order(void **state)
{
    (void)state;
    model m;
    model_open(&m, TINY, 12, 2);
    sm_dataset *ds;
    assert_int_equal(sm_dataset_create(12, 12, &ds), SM_OK);
    float px[IN];
    for (int i = 0; i < IN; i++) px[i] = (float)(i % 3) / 2.0f;
    assert_int_equal(sm_dataset_add_image(ds, "x/1", px), SM_OK);
    sm_trainer *t = SENTINEL;
    expect_status(sm_trainer_create(m.sub, m.head, m.adam, ds, 1, &t), SM_ERR_DATASET, NULL);
    assert_ptr_equal(t, SENTINEL);
    assert_int_equal(sm_dataset_add_image(ds, "x/1", px), SM_OK);
    assert_int_equal(sm_dataset_add_image(ds, "x/2", px), SM_OK);
    assert_int_equal(sm_trainer_create(m.sub, m.head, m.adam, ds, 1, &t), SM_OK);
    assert_int_equal(sm_trainer_set_param(t, SM_TRAINER_BATCH_SIZE, 3), SM_OK);
    float loss;
    assert_int_equal(sm_train_step(t, &loss), SM_OK);
    for (int i = 0; i < 20; i++)
        assert_int_equal(sm_dataset_add_image(ds, i % 2 ? "y/1" : "y/2", px), SM_OK);
    assert_int_equal(sm_train_step(t, &loss), SM_OK);
    assert_true(isfinite(loss));
    /* save before any step of the other trainer: fine, and loadable */
    char *dir = fx_tempdir(), *path = fx_join(dir, "t.safetensors");
    assert_int_equal(sm_trainer_save(m.tr, path), SM_OK);
    assert_int_equal(sm_trainer_load(t, path), SM_OK);
    sm_trainer_destroy(t);
    sm_dataset_destroy(ds);
    free(path);
    fx_rmtree(dir);
    free(dir);
    model_close(&m);
}

/* sm_trainer_load of a checkpoint written for another image size (another architecture):
 * SM_ERR_SHAPE, and the trainer is exactly as before. */
static void test_trainer_load_other_size(void **state)
{
    (void)state;
    model small, big;
    model_open(&small, TINY, 12, 3);
    model_open(&big, TINY16, 16, 4);
    float loss;
    assert_int_equal(sm_train_step(small.tr, &loss), SM_OK);
    assert_int_equal(sm_train_step(big.tr, &loss), SM_OK);
    char *dir = fx_tempdir(), *p12 = fx_join(dir, "12.safetensors"),
         *p16 = fx_join(dir, "16.safetensors");
    char *pm = fx_join(dir, "model.safetensors");
    assert_int_equal(sm_trainer_save(small.tr, p12), SM_OK);
    assert_int_equal(sm_trainer_save(big.tr, p16), SM_OK);
    assert_int_equal(sm_model_save(big.sub, big.head, pm), SM_OK);

    float img[256], before[8], after[8];
    for (int i = 0; i < 256; i++) img[i] = (float)(i % 11) / 10.0f;
    assert_int_equal(sm_embed(big.sub, 1, img, before), SM_OK);
    expect_status(sm_trainer_load(big.tr, p12), SM_ERR_SHAPE, "1x12x12");
    expect_status(sm_trainer_load(big.tr, pm), SM_ERR_FORMAT, NULL); /* a model, not a trainer */
    expect_status(sm_trainer_load(big.tr, ""), SM_ERR_IO, NULL);
    assert_int_equal(sm_trainer_iteration(big.tr), 1);
    assert_int_equal(sm_adam_steps(big.adam), 1);
    assert_int_equal(sm_embed(big.sub, 1, img, after), SM_OK);
    assert_memory_equal(before, after, sizeof before);
    /* and it still trains and loads its own file */
    assert_int_equal(sm_train_step(big.tr, &loss), SM_OK);
    assert_int_equal(sm_trainer_load(big.tr, p16), SM_OK);
    assert_int_equal(sm_trainer_iteration(big.tr), 1);
    assert_int_equal(sm_embed(big.sub, 1, img, after), SM_OK);
    assert_memory_equal(before, after, sizeof before);
    /* a trainer file loads as a model too */
    sm_subnet *ls;
    sm_head *lh;
    assert_int_equal(sm_model_load(big.be, p16, &ls, &lh), SM_OK);
    assert_int_equal(sm_embed(ls, 1, img, after), SM_OK);
    assert_memory_equal(before, after, sizeof before);
    sm_head_destroy(lh);
    sm_subnet_destroy(ls);

    fx_rmtree(dir);
    free(dir), free(p12), free(p16), free(pm);
    model_close(&big);
    model_close(&small);
}

/* Several trainers, Adam states and models on one backend, destroyed in the documented order
 * (each handle before what it borrows); and handles whose owners are still alive survive the
 * destruction of their siblings. ASan/valgrind check that nothing dangles. */
static void test_destroy_order(void **state)
{
    (void)state;
    sm_backend *be;
    assert_int_equal(sm_backend_create(SM_BACKEND_CPU, &be), SM_OK);
    sm_arch *a;
    assert_int_equal(sm_arch_from_string(TINY, &a), SM_OK);
    sm_subnet *s;
    sm_head *h;
    sm_adam *ad;
    sm_dataset *ds;
    sm_trainer *t1, *t2;
    assert_int_equal(sm_subnet_create(be, a, 1, &s), SM_OK);
    sm_arch_destroy(a); /* the subnet copied it */
    assert_int_equal(sm_head_create(be, 8, 1, &h), SM_OK);
    assert_int_equal(sm_adam_create(s, h, &ad), SM_OK);
    assert_int_equal(sm_dataset_create_synthetic(5, 3, 12, 12, 1, &ds), SM_OK);
    assert_int_equal(sm_trainer_create(s, h, ad, ds, 1, &t1), SM_OK);
    assert_int_equal(sm_trainer_create(s, h, ad, NULL, 2, &t2), SM_OK);
    assert_int_equal(sm_trainer_set_param(t1, SM_TRAINER_BATCH_SIZE, 4), SM_OK);
    float loss, img[IN] = {0}, f[8];
    assert_int_equal(sm_train_step(t1, &loss), SM_OK);
    sm_trainer_destroy(t1);
    /* the other trainer still has its gradients */
    float l[2 * IN] = {0}, r[2 * IN] = {0}, lab[2] = {1, 0};
    assert_int_equal(sm_train_step_batch(t2, 2, l, r, lab, &loss), SM_OK);
    sm_trainer_destroy(t2);
    sm_arch *copy;
    assert_int_equal(sm_subnet_get_arch(s, &copy), SM_OK);
    assert_int_equal(sm_arch_num_layers(copy), 7);
    sm_arch_destroy(copy);
    assert_int_equal(sm_embed(s, 1, img, f), SM_OK);
    sm_adam_destroy(ad);
    assert_int_equal(sm_embed(s, 1, img, f), SM_OK);
    sm_head_destroy(h);
    sm_subnet_destroy(s);
    sm_dataset_destroy(ds);
    sm_backend_destroy(be);
}

/* The 0.2 calls (evaluation, augmentation, images, health) on NULL, mismatched and absurd
 * arguments: a status with a message, no output written, the handles still usable. */
static void test_v02_calls(void **state)
{
    (void)state;
    model m, other;
    model_open(&m, TINY, 12, 1);
    model_open(&other, TINY16, 16, 2);
    sm_eval_result r = SM_EVAL_RESULT_INIT, keep;
    r.trials = 1234;
    keep = r;
    /* a dataset of another size, a head of another model's backend, a NULL dataset */
    expect_status(sm_verification_accuracy(m.sub, m.head, other.ds, 10, 1, &r), SM_ERR_SHAPE, "16");
    expect_status(sm_verification_accuracy(m.sub, other.head, m.ds, 10, 1, &r), SM_ERR_INVALID_ARG,
                  "different backends");
    expect_status(sm_oneshot_episodes(m.sub, m.head, other.ds, 2, 1, 1, 0, 1, &r), SM_ERR_SHAPE,
                  NULL);
    expect_status(sm_oneshot_episodes(m.sub, m.head, m.ds, 7, 1, 1, 0, 1, &r), SM_ERR_DATASET, "6");
    expect_status(sm_oneshot_episodes(m.sub, m.head, m.ds, 2, 3, 1, 0, 1, &r), SM_ERR_DATASET,
                  "4 images");
    expect_status(sm_oneshot_episodes(m.sub, m.head, m.ds, 2, 1, 1, 0, 1, NULL), SM_ERR_INVALID_ARG,
                  NULL);
    expect_status(
        sm_oneshot_episodes(m.sub, m.head, m.ds, INT32_MAX, INT32_MAX, SIZE_MAX, 0, 1, &r),
        SM_ERR_INVALID_ARG, NULL);
    assert_memory_equal(&r, &keep, sizeof r);
    /* runs */
    sm_oneshot_runs *runs = SENTINEL;
    expect_status(sm_oneshot_runs_open("/nonexistent/runs", 0, 0, &runs), SM_ERR_IO, "runs");
    expect_status(sm_oneshot_runs_open("/", -3, 0, &runs), SM_ERR_INVALID_ARG, NULL);
    assert_ptr_equal(runs, SENTINEL);
    const char *name = SENTINEL;
    expect_status(sm_oneshot_run_info(NULL, 0, &name, NULL, NULL), SM_ERR_INVALID_ARG, NULL);
    assert_ptr_equal(name, SENTINEL);
    /* images and augmentation */
    float px[IN], out[IN];
    for (int i = 0; i < IN; i++) px[i] = 0.5f, out[i] = -2.0f;
    expect_status(sm_image_distort(px, 12, 12, 0x100, 1, out), SM_ERR_INVALID_ARG, "bits");
    expect_status(sm_image_distort(px, -12, 12, 1, 1, out), SM_ERR_INVALID_ARG, NULL);
    expect_status(sm_image_resize(px, 12, 12, out, 0, 12), SM_ERR_INVALID_ARG, NULL);
    expect_status(sm_image_load_png("/nonexistent.png", 12, 12, out), SM_ERR_IO, NULL);
    expect_status(sm_image_load_png("/", 12, 12, out), SM_ERR_IO, NULL);
    assert_float_equal(out[0], -2.0f, 0);
    sm_arch *arch = SENTINEL;
    expect_status(sm_arch_create_laptop(NULL), SM_ERR_INVALID_ARG, NULL);
    expect_status(sm_arch_from_string("Laptop", &arch), SM_ERR_INVALID_ARG, "laptop");
    assert_ptr_equal(arch, SENTINEL);
    /* trainer parameters and health */
    int64_t v = 77;
    expect_status(sm_trainer_set_param(m.tr, SM_TRAINER_AUGMENT, 1 << 20), SM_ERR_INVALID_ARG,
                  "augmentation");
    expect_status(sm_trainer_get_param(NULL, SM_TRAINER_AUGMENT, &v), SM_ERR_INVALID_ARG, NULL);
    assert_int_equal(v, 77);
    expect_status(sm_trainer_set_health(m.tr, INT64_MAX, (sm_health_fn)1, NULL), SM_ERR_INVALID_ARG,
                  NULL);
    expect_status(sm_trainer_set_validation(m.tr, other.ds, 10, 1), SM_ERR_SHAPE, NULL);
    /* still usable */
    float loss;
    expect_status(sm_train_step(m.tr, &loss), SM_OK, NULL);
    expect_status(sm_verification_accuracy(m.sub, m.head, m.ds, 10, 1, &r), SM_OK, NULL);
    model_close(&m);
    model_close(&other);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_zero_negative_and_huge_sizes),
        cmocka_unit_test(test_unknown_enum_values),
        cmocka_unit_test(test_arch_to_string_buffers),
        cmocka_unit_test(test_model_mismatches),
        cmocka_unit_test(test_size_overflow),
        cmocka_unit_test(test_sampler_after_add_image),
        cmocka_unit_test(test_trainer_wrong_order),
        cmocka_unit_test(test_trainer_load_other_size),
        cmocka_unit_test(test_destroy_order),
        cmocka_unit_test(test_v02_calls),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
