/* SPDX-License-Identifier: MIT */
/* Images of any kind and size (since 0.2): the grey rule for colour, palette and alpha PNGs,
 * sm_image_load_png and sm_image_resize, datasets of other sizes (28x28, non-square) through
 * sampler, trainer and prediction, and classes of uneven sizes. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <spng.h>

#include "fixtures.h"
#include "siamese/siamese.h"

/* Writes an 8-bit PNG of `channels` interleaved samples per pixel (3 RGB, 4 RGBA, 2 GA) or a
 * palette image (channels 0: `px` holds indices into a 2-entry palette with transparency). */
static int write_png8(const char *path, int w, int h, int channels, const uint8_t *px)
{
    int type = channels == 3   ? SPNG_COLOR_TYPE_TRUECOLOR
               : channels == 4 ? SPNG_COLOR_TYPE_TRUECOLOR_ALPHA
               : channels == 2 ? SPNG_COLOR_TYPE_GRAYSCALE_ALPHA
                               : SPNG_COLOR_TYPE_INDEXED;
    size_t len = (size_t)w * (size_t)h * (size_t)(channels ? channels : 1);
    spng_ctx *ctx = spng_ctx_new(SPNG_CTX_ENCODER);
    if (!ctx) return -1;
    struct spng_ihdr ihdr = {(uint32_t)w, (uint32_t)h, 8, (uint8_t)type, 0, 0, 0};
    int err = spng_set_option(ctx, SPNG_ENCODE_TO_BUFFER, 1);
    if (!err) err = spng_set_ihdr(ctx, &ihdr);
    if (!err && channels == 0) {
        struct spng_plte plte = {2, {{255, 0, 0, 0}, {0, 0, 255, 0}}};
        struct spng_trns trns = {0};
        trns.n_type3_entries = 2;
        trns.type3_alpha[0] = 255;
        trns.type3_alpha[1] = 0; /* entry 1 fully transparent: white */
        err = spng_set_plte(ctx, &plte);
        if (!err) err = spng_set_trns(ctx, &trns);
    }
    if (!err) err = spng_encode_image(ctx, px, len, SPNG_FMT_PNG, SPNG_ENCODE_FINALIZE);
    size_t n = 0;
    void *buf = err ? NULL : spng_get_png_buffer(ctx, &n, &err);
    spng_ctx_free(ctx);
    if (!buf) return -1;
    int rc = fx_write_bytes(path, buf, n);
    free(buf);
    return rc;
}

static uint8_t luma(double r, double g, double b, double a)
{
    double y = (0.299 * r + 0.587 * g + 0.114 * b) / 255.0, v = (a / 255.0) * y + 1 - a / 255.0;
    return (uint8_t)lround(v * 255.0);
}

static void test_grey_rule(void **state)
{
    (void)state;
    char *dir = fx_tempdir();
    enum { W = 4, H = 3 };
    uint8_t rgba[W * H * 4], rgb[W * H * 3], ga[W * H * 2];
    for (int i = 0; i < W * H; i++) {
        rgba[4 * i] = (uint8_t)(20 * i), rgba[4 * i + 1] = (uint8_t)(255 - 13 * i);
        rgba[4 * i + 2] = (uint8_t)(7 * i + 3), rgba[4 * i + 3] = (uint8_t)(i * 23);
        memcpy(rgb + 3 * i, rgba + 4 * i, 3);
        ga[2 * i] = (uint8_t)(i * 21), ga[2 * i + 1] = (uint8_t)(255 - i * 20);
    }
    char *p_rgba = fx_join(dir, "rgba.png"), *p_rgb = fx_join(dir, "rgb.png");
    char *p_ga = fx_join(dir, "ga.png"), *p_pal = fx_join(dir, "pal.png");
    assert_int_equal(write_png8(p_rgba, W, H, 4, rgba), 0);
    assert_int_equal(write_png8(p_rgb, W, H, 3, rgb), 0);
    assert_int_equal(write_png8(p_ga, W, H, 2, ga), 0);
    uint8_t idx[W * H];
    for (int i = 0; i < W * H; i++) idx[i] = (uint8_t)(i % 2);
    assert_int_equal(write_png8(p_pal, W, H, 0, idx), 0);

    float px[W * H];
    assert_int_equal(sm_image_read_png(p_rgba, H, W, px), SM_OK);
    for (int i = 0; i < W * H; i++)
        assert_int_equal(lroundf(px[i] * 255.0f),
                         luma(rgba[4 * i], rgba[4 * i + 1], rgba[4 * i + 2], rgba[4 * i + 3]));
    assert_int_equal(sm_image_read_png(p_rgb, H, W, px), SM_OK);
    for (int i = 0; i < W * H; i++)
        assert_int_equal(lroundf(px[i] * 255.0f),
                         luma(rgb[3 * i], rgb[3 * i + 1], rgb[3 * i + 2], 255));
    assert_int_equal(sm_image_read_png(p_ga, H, W, px), SM_OK);
    for (int i = 0; i < W * H; i++)
        assert_int_equal(lroundf(px[i] * 255.0f),
                         luma(ga[2 * i], ga[2 * i], ga[2 * i], ga[2 * i + 1]));
    /* palette: entry 0 opaque red, entry 1 transparent (white whatever its colour) */
    assert_int_equal(sm_image_read_png(p_pal, H, W, px), SM_OK);
    for (int i = 0; i < W * H; i++)
        assert_int_equal(lroundf(px[i] * 255.0f), i % 2 ? 255 : luma(255, 0, 0, 255));

    /* a colour dataset: the same levels as the files */
    char *root = fx_join(dir, "set");
    for (int c = 0; c < 2; c++)
        for (int k = 0; k < 2; k++) {
            char rel[64];
            snprintf(rel, sizeof rel, "A/c%d/%d.png", c, k);
            char *p = fx_join(root, rel);
            assert_int_equal(write_png8(p, W, H, 4, rgba), 0);
            free(p);
        }
    sm_dataset *ds = NULL;
    assert_int_equal(sm_dataset_open(root, H, W, NULL, 0, &ds), SM_OK);
    float got[W * H];
    assert_int_equal(sm_dataset_get_image(ds, 3, got), SM_OK);
    assert_int_equal(sm_image_read_png(p_rgba, H, W, px), SM_OK);
    assert_memory_equal(got, px, sizeof px);
    sm_dataset_destroy(ds);
    free(root);
    free(p_rgba), free(p_rgb), free(p_ga), free(p_pal);
    fx_rmtree(dir);
    free(dir);
}

static void test_resize(void **state)
{
    (void)state;
    float src[6 * 4], dst[6 * 4], big[12 * 8];
    for (int i = 0; i < 24; i++) src[i] = (float)i / 23.0f;
    /* same size: an exact copy */
    assert_int_equal(sm_image_resize(src, 6, 4, dst, 6, 4), SM_OK);
    assert_memory_equal(src, dst, sizeof src);
    /* halving is the mean of each 2x2 block */
    float half[3 * 2];
    assert_int_equal(sm_image_resize(src, 6, 4, half, 3, 2), SM_OK);
    for (int y = 0; y < 3; y++)
        for (int x = 0; x < 2; x++) {
            float m = (src[(2 * y) * 4 + 2 * x] + src[(2 * y) * 4 + 2 * x + 1] +
                       src[(2 * y + 1) * 4 + 2 * x] + src[(2 * y + 1) * 4 + 2 * x + 1]) /
                      4;
            assert_float_equal(half[y * 2 + x], m, 1e-6);
        }
    /* growing keeps a constant image constant and stays inside the source's range */
    float flat[6 * 4];
    for (int i = 0; i < 24; i++) flat[i] = 0.25f;
    assert_int_equal(sm_image_resize(flat, 6, 4, big, 12, 8), SM_OK);
    for (int i = 0; i < 96; i++) assert_float_equal(big[i], 0.25f, 1e-6);
    assert_int_equal(sm_image_resize(src, 6, 4, big, 12, 8), SM_OK);
    for (int i = 0; i < 96; i++) assert_true(big[i] >= 0.0f && big[i] <= 1.0f);
    /* a non-integer factor preserves the mean of a shrink */
    float odd[5 * 3];
    assert_int_equal(sm_image_resize(src, 6, 4, odd, 5, 3), SM_OK);
    double ms = 0, mo = 0;
    for (int i = 0; i < 24; i++) ms += src[i] / 24.0;
    for (int i = 0; i < 15; i++) mo += odd[i] / 15.0;
    assert_float_equal(ms, mo, 1e-5);
    /* bad arguments leave the output alone */
    dst[0] = -7;
    assert_int_equal(sm_image_resize(NULL, 6, 4, dst, 6, 4), SM_ERR_INVALID_ARG);
    assert_int_equal(sm_image_resize(src, 0, 4, dst, 6, 4), SM_ERR_INVALID_ARG);
    assert_int_equal(sm_image_resize(src, 6, 4, dst, 6, 5000), SM_ERR_INVALID_ARG);
    assert_float_equal(dst[0], -7, 0);
}

static void test_load_png_any_size(void **state)
{
    (void)state;
    char *dir = fx_tempdir();
    enum { W = 50, H = 30 };
    uint8_t grey[W * H];
    fx_pattern(grey, W, H, 3);
    char *p = fx_join(dir, "mine.png");
    assert_int_equal(fx_write_png(p, W, H, FX_GREY, 8, grey), 0);
    float full[W * H], fitted[28 * 28], want[28 * 28];
    /* at its own size: the stored levels */
    assert_int_equal(sm_image_load_png(p, H, W, full), SM_OK);
    for (int i = 0; i < W * H; i++) assert_float_equal(full[i], grey[i] / 255.0f, 1e-7);
    /* at another size: exactly sm_image_resize of the decoded image */
    assert_int_equal(sm_image_load_png(p, 28, 28, fitted), SM_OK);
    assert_int_equal(sm_image_resize(full, H, W, want, 28, 28), SM_OK);
    assert_memory_equal(fitted, want, sizeof want);
    /* colour of any size too */
    uint8_t rgb[W * H * 3];
    for (int i = 0; i < W * H * 3; i++) rgb[i] = (uint8_t)(i * 7);
    char *pc = fx_join(dir, "colour.png");
    assert_int_equal(write_png8(pc, W, H, 3, rgb), 0);
    assert_int_equal(sm_image_load_png(pc, 105, 105, NULL), SM_ERR_INVALID_ARG);
    float *big = malloc(105 * 105 * sizeof *big);
    assert_int_equal(sm_image_load_png(pc, 105, 105, big), SM_OK);
    free(big);
    /* failures write nothing */
    char *missing = fx_join(dir, "none.png"), *broken = fx_join(dir, "broken.png");
    assert_int_equal(fx_write_truncated_png(broken, 8, 8), 0);
    fitted[0] = -1;
    assert_int_equal(sm_image_load_png(missing, 28, 28, fitted), SM_ERR_IO);
    assert_non_null(strstr(sm_last_error(), "none.png"));
    assert_int_equal(sm_image_load_png(broken, 28, 28, fitted), SM_ERR_FORMAT);
    assert_non_null(strstr(sm_last_error(), "broken.png"));
    assert_int_equal(sm_image_load_png(p, 0, 28, fitted), SM_ERR_INVALID_ARG);
    assert_int_equal(sm_image_load_png(NULL, 28, 28, fitted), SM_ERR_INVALID_ARG);
    uint64_t side = sm_get_limit(SM_LIMIT_IMAGE_SIDE);
    assert_int_equal(sm_set_limit(SM_LIMIT_IMAGE_SIDE, 40), SM_OK);
    assert_int_equal(sm_image_load_png(p, 28, 28, fitted), SM_ERR_LIMIT);
    assert_int_equal(sm_set_limit(SM_LIMIT_IMAGE_SIDE, side), SM_OK);
    assert_float_equal(fitted[0], -1, 0);
    free(missing), free(broken), free(p), free(pc);
    fx_rmtree(dir);
    free(dir);
}

/* Trains a few steps and predicts at a size other than 105x105. */
static void train_at(int h, int w, const char *arch_text)
{
    sm_backend *be;
    sm_arch *arch;
    sm_subnet *sub;
    sm_head *head;
    sm_adam *adam;
    sm_trainer *tr;
    sm_dataset *ds;
    assert_int_equal(sm_backend_create(SM_BACKEND_CPU, &be), SM_OK);
    assert_int_equal(sm_arch_from_string(arch_text, &arch), SM_OK);
    assert_int_equal(sm_dataset_create_synthetic(6, 3, h, w, 5, &ds), SM_OK);
    assert_int_equal(sm_subnet_create(be, arch, 1, &sub), SM_OK);
    assert_int_equal(sm_head_create(be, sm_subnet_feature_dim(sub), 2, &head), SM_OK);
    assert_int_equal(sm_adam_create(sub, head, &adam), SM_OK);
    assert_int_equal(sm_trainer_create(sub, head, adam, ds, 3, &tr), SM_OK);
    assert_int_equal(sm_trainer_set_param(tr, SM_TRAINER_BATCH_SIZE, 8), SM_OK);
    assert_int_equal(sm_trainer_set_param(tr, SM_TRAINER_AUGMENT, SM_DISTORT_ALL), SM_OK);
    float loss;
    for (int i = 0; i < 3; i++) assert_int_equal(sm_train_step(tr, &loss), SM_OK);
    assert_true(isfinite(loss));
    size_t n = (size_t)h * (size_t)w;
    float *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b), score = -1;
    assert_int_equal(sm_dataset_get_image(ds, 0, a), SM_OK);
    assert_int_equal(sm_dataset_get_image(ds, 5, b), SM_OK);
    assert_int_equal(sm_predict_pair(sub, head, a, b, &score), SM_OK);
    assert_true(score > 0 && score < 1);
    sm_eval_result r = SM_EVAL_RESULT_INIT;
    assert_int_equal(sm_verification_accuracy(sub, head, ds, 20, 1, &r), SM_OK);
    assert_int_equal(r.trials, 20);
    assert_int_equal(sm_oneshot_episodes(sub, head, ds, 3, 1, 2, 0, 1, &r), SM_OK);
    assert_int_equal(r.trials, 6);
    /* a dataset of another size does not fit */
    sm_dataset *other;
    assert_int_equal(sm_dataset_create_synthetic(4, 2, h + 1, w, 5, &other), SM_OK);
    assert_int_equal(sm_verification_accuracy(sub, head, other, 20, 1, &r), SM_ERR_SHAPE);
    assert_int_equal(sm_trainer_set_validation(tr, other, 10, 1), SM_ERR_SHAPE);
    sm_dataset_destroy(other);
    free(a), free(b);
    sm_trainer_destroy(tr);
    sm_adam_destroy(adam);
    sm_head_destroy(head);
    sm_subnet_destroy(sub);
    sm_dataset_destroy(ds);
    sm_arch_destroy(arch);
    sm_backend_destroy(be);
}

static void test_other_sizes(void **state)
{
    (void)state;
    train_at(28, 28, "1x28x28:conv8k5,relu,pool2,conv8k3,relu,flatten,fc16");
    train_at(20, 36, "1x20x36:conv6k3,relu,pool2,conv8k3,relu,flatten,fc12");
}

static void test_uneven_classes(void **state)
{
    (void)state;
    enum { S = 10 };
    float img[S * S];
    sm_dataset *ds;
    assert_int_equal(sm_dataset_create(S, S, &ds), SM_OK);
    /* one image each in three classes: no similar pair can exist */
    for (int c = 0; c < 3; c++) {
        for (int i = 0; i < S * S; i++) img[i] = (float)((i + c) % 7) / 6.0f;
        char label[16];
        snprintf(label, sizeof label, "A/s%d", c);
        assert_int_equal(sm_dataset_add_image(ds, label, img), SM_OK);
    }
    sm_sampler *smp = (sm_sampler *)(uintptr_t)1;
    assert_int_equal(sm_sampler_create(ds, 1, &smp), SM_ERR_DATASET);
    assert_non_null(strstr(sm_last_error(), "at least two images"));
    assert_ptr_equal(smp, (sm_sampler *)(uintptr_t)1);
    /* a class with five images joins: similar pairs come from it only */
    for (int k = 0; k < 5; k++) {
        for (int i = 0; i < S * S; i++) img[i] = (float)((i * (k + 2)) % 11) / 10.0f;
        assert_int_equal(sm_dataset_add_image(ds, "B/big", img), SM_OK);
    }
    assert_int_equal(sm_sampler_create(ds, 1, &smp), SM_OK);
    enum { N = 400 };
    float *l = malloc(N * S * S * sizeof *l), *r = malloc(N * S * S * sizeof *r), lab[N];
    size_t li[N], ri[N];
    assert_int_equal(sm_sampler_next(smp, N, l, r, lab, li, ri), SM_OK);
    size_t big = 3; /* "B/big" sorts after the A classes */
    int similar = 0, seen_single = 0;
    for (int i = 0; i < N; i++) {
        size_t ca = sm_dataset_image_class(ds, li[i]), cb = sm_dataset_image_class(ds, ri[i]);
        if (lab[i] == 1.0f) {
            similar++;
            assert_int_equal(ca, big);
            assert_int_equal(cb, big);
            assert_true(li[i] != ri[i]);
        } else {
            assert_true(ca != cb);
            seen_single |= ca != big;
        }
    }
    assert_true(similar > N / 4 && similar < 3 * N / 4);
    assert_true(seen_single); /* single-image classes still serve dissimilar pairs */
    free(l), free(r);
    sm_sampler_destroy(smp);

    /* episodes need k_shot + 1 images per class: only one class has them */
    sm_backend *be;
    sm_arch *arch;
    sm_subnet *sub;
    sm_head *head;
    assert_int_equal(sm_backend_create(SM_BACKEND_CPU, &be), SM_OK);
    assert_int_equal(sm_arch_from_string("1x10x10:conv4k3,relu,flatten,fc8", &arch), SM_OK);
    assert_int_equal(sm_subnet_create(be, arch, 1, &sub), SM_OK);
    assert_int_equal(sm_head_create(be, 8, 2, &head), SM_OK);
    sm_eval_result res = SM_EVAL_RESULT_INIT;
    res.trials = 77;
    assert_int_equal(sm_oneshot_episodes(sub, head, ds, 2, 1, 5, 0, 1, &res), SM_ERR_DATASET);
    assert_non_null(strstr(sm_last_error(), "2 classes of at least 2 images"));
    assert_int_equal(res.trials, 77);
    sm_head_destroy(head);
    sm_subnet_destroy(sub);
    sm_arch_destroy(arch);
    sm_backend_destroy(be);
    sm_dataset_destroy(ds);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_grey_rule),         cmocka_unit_test(test_resize),
        cmocka_unit_test(test_load_png_any_size), cmocka_unit_test(test_other_sizes),
        cmocka_unit_test(test_uneven_classes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
