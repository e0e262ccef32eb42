/* SPDX-License-Identifier: MIT */
/* The pair sampler (docs/reference.md): balance, what similar and dissimilar pairs hold, reproducibility,
 * resuming from a saved RNG state, and the datasets it must refuse. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "data/sampler.h"
#include "siamese/siamese.h"

#define H  3
#define W  2
#define HW (H * W)

/* Adds an image whose pixels encode its index, so a drawn image can be traced back. */
static void add(sm_dataset *ds, const char *label)
{
    size_t i = sm_dataset_num_images(ds);
    float px[HW];
    px[0] = (float)(i % 256) / 255.0f;
    px[1] = (float)(i / 256) / 255.0f;
    for (int k = 2; k < HW; k++) px[k] = (float)k / 255.0f;
    assert_int_equal(sm_dataset_add_image(ds, label, px), SM_OK);
}

/* Classes with 5, 3, 1, 2, 4 and 7 images (class "c/solo" has one), added interleaved. */
static sm_dataset *make_dataset(void)
{
    static const char *labels[] = {"a/five", "b/three", "c/solo", "d/two", "e/four", "f/seven"};
    static const int counts[] = {5, 3, 1, 2, 4, 7};
    sm_dataset *ds = NULL;
    assert_int_equal(sm_dataset_create(H, W, &ds), SM_OK);
    for (int round = 0; round < 7; round++)
        for (int c = 0; c < 6; c++)
            if (round < counts[c]) add(ds, labels[c]);
    return ds;
}

typedef struct draw {
    float *left, *right, *labels;
    size_t *li, *ri;
    size_t n;
} draw;

static draw draw_new(size_t n)
{
    draw d = {malloc(n * HW * sizeof(float)), malloc(n * HW * sizeof(float)),
              malloc(n * sizeof(float)),      malloc(n * sizeof(size_t)),
              malloc(n * sizeof(size_t)),     n};
    assert_true(d.left && d.right && d.labels && d.li && d.ri);
    return d;
}

static void draw_free(draw *d)
{
    free(d->left);
    free(d->right);
    free(d->labels);
    free(d->li);
    free(d->ri);
}

static void next(sm_sampler *s, draw *d)
{
    assert_int_equal(sm_sampler_next(s, d->n, d->left, d->right, d->labels, d->li, d->ri), SM_OK);
}

static void assert_draws_equal(const draw *a, const draw *b)
{
    assert_int_equal(a->n, b->n);
    assert_memory_equal(a->labels, b->labels, a->n * sizeof(float));
    assert_memory_equal(a->li, b->li, a->n * sizeof(size_t));
    assert_memory_equal(a->ri, b->ri, a->n * sizeof(size_t));
    assert_memory_equal(a->left, b->left, a->n * HW * sizeof(float));
    assert_memory_equal(a->right, b->right, a->n * HW * sizeof(float));
}

static void test_pairs(void **state)
{
    (void)state;
    sm_dataset *ds = make_dataset();
    size_t solo = 2;
    assert_string_equal(sm_dataset_class_name(ds, solo), "c/solo");
    sm_sampler *s = NULL;
    assert_int_equal(sm_sampler_create(ds, 42, &s), SM_OK);
    draw d = draw_new(10000);
    next(s, &d);

    size_t similar = 0, solo_dissimilar = 0;
    size_t class_similar[6] = {0}, class_dissimilar[6] = {0};
    float px[HW];
    for (size_t k = 0; k < d.n; k++) {
        size_t ca = sm_dataset_image_class(ds, d.li[k]), cb = sm_dataset_image_class(ds, d.ri[k]);
        assert_true(ca < 6 && cb < 6);
        if (d.labels[k] == 1.0f) {
            similar++;
            assert_int_equal(ca, cb);
            assert_int_not_equal(d.li[k], d.ri[k]);
            assert_int_not_equal(ca, solo);
            class_similar[ca]++;
        } else {
            assert_true(d.labels[k] == 0.0f);
            assert_int_not_equal(ca, cb);
            class_dissimilar[ca]++;
            class_dissimilar[cb]++;
            solo_dissimilar += ca == solo || cb == solo;
        }
        /* The images are the dataset's images at the reported indices. */
        assert_int_equal(sm_dataset_get_image(ds, d.li[k], px), SM_OK);
        assert_memory_equal(px, d.left + k * HW, sizeof px);
        assert_int_equal(sm_dataset_get_image(ds, d.ri[k], px), SM_OK);
        assert_memory_equal(px, d.right + k * HW, sizeof px);
    }
    /* Binomial(10000, 1/2): standard deviation 50; 5 of them is a 1-in-1.7-million miss. */
    assert_true(similar > 5000 - 250 && similar < 5000 + 250);
    /* Similar: uniform over the 5 classes with >= 2 images (about 1000 each). */
    for (size_t c = 0; c < 6; c++)
        if (c != solo) assert_true(class_similar[c] > 800 && class_similar[c] < 1200);
    /* Dissimilar: every class, the single-image one included, in 1/3 of the pairs each. */
    assert_true(solo_dissimilar > 0);
    size_t dissimilar = d.n - similar;
    for (size_t c = 0; c < 6; c++)
        assert_true(fabs((double)class_dissimilar[c] - dissimilar / 3.0) < 0.1 * dissimilar);
    draw_free(&d);
    sm_sampler_destroy(s);
    sm_dataset_destroy(ds);
}

static void test_reproducible(void **state)
{
    (void)state;
    sm_dataset *ds = make_dataset();
    sm_sampler *s1 = NULL, *s2 = NULL, *s3 = NULL;
    assert_int_equal(sm_sampler_create(ds, 7, &s1), SM_OK);
    assert_int_equal(sm_sampler_create(ds, 7, &s2), SM_OK);
    assert_int_equal(sm_sampler_create(ds, 8, &s3), SM_OK);
    draw a = draw_new(300), b = draw_new(300), c = draw_new(300);
    next(s1, &a);
    next(s2, &b);
    next(s3, &c);
    assert_draws_equal(&a, &b);
    assert_true(memcmp(a.li, c.li, a.n * sizeof(size_t)) != 0 ||
                memcmp(a.ri, c.ri, a.n * sizeof(size_t)) != 0);

    /* Drawing in chunks gives the same sequence as one big draw; index outputs are optional. */
    sm_sampler_destroy(s2);
    assert_int_equal(sm_sampler_create(ds, 7, &s2), SM_OK);
    assert_int_equal(sm_sampler_next(s2, 100, b.left, b.right, b.labels, b.li, NULL), SM_OK);
    assert_int_equal(sm_sampler_next(s2, 0, NULL, NULL, NULL, NULL, NULL), SM_OK);
    assert_int_equal(sm_sampler_next(s2, 200, b.left + 100 * HW, b.right + 100 * HW, b.labels + 100,
                                     NULL, b.ri + 100),
                     SM_OK);
    assert_memory_equal(a.left, b.left, a.n * HW * sizeof(float));
    assert_memory_equal(a.right, b.right, a.n * HW * sizeof(float));
    assert_memory_equal(a.labels, b.labels, a.n * sizeof(float));
    assert_memory_equal(a.li, b.li, 100 * sizeof(size_t));
    assert_memory_equal(a.ri + 100, b.ri + 100, 200 * sizeof(size_t));

    draw_free(&a);
    draw_free(&b);
    draw_free(&c);
    sm_sampler_destroy(s1);
    sm_sampler_destroy(s2);
    sm_sampler_destroy(s3);
    sm_dataset_destroy(ds);
}

static void test_resume_state(void **state)
{
    (void)state;
    sm_dataset *ds = make_dataset();
    sm_sampler *s1 = NULL, *s2 = NULL;
    assert_int_equal(sm_sampler_create(ds, 1234, &s1), SM_OK);
    assert_int_equal(sm_sampler_create(ds, 99, &s2), SM_OK);
    draw warm = draw_new(77), a = draw_new(150), b = draw_new(150);
    next(s1, &warm);
    uint64_t st[4];
    sm__sampler_get_state(s1, st);
    next(s1, &a);
    sm__sampler_set_state(s2, st);
    next(s2, &b);
    assert_draws_equal(&a, &b);
    uint64_t st1[4], st2[4];
    sm__sampler_get_state(s1, st1);
    sm__sampler_get_state(s2, st2);
    assert_memory_equal(st1, st2, sizeof st1);
    draw_free(&warm);
    draw_free(&a);
    draw_free(&b);
    sm_sampler_destroy(s1);
    sm_sampler_destroy(s2);
    sm_dataset_destroy(ds);
}

static void test_refused_datasets(void **state)
{
    (void)state;
    sm_sampler *s = NULL;
    sm_dataset *ds = NULL;
    assert_int_equal(sm_sampler_create(NULL, 1, &s), SM_ERR_INVALID_ARG);
    assert_int_equal(sm_dataset_create(H, W, &ds), SM_OK);
    assert_int_equal(sm_sampler_create(ds, 1, NULL), SM_ERR_INVALID_ARG);
    assert_int_equal(sm_sampler_create(ds, 1, &s), SM_ERR_DATASET); /* empty */
    add(ds, "one/class");
    add(ds, "one/class");
    add(ds, "one/class");
    assert_int_equal(sm_sampler_create(ds, 1, &s), SM_ERR_DATASET); /* a single class */
    assert_null(s);
    sm_dataset_destroy(ds);

    assert_int_equal(sm_dataset_create(H, W, &ds), SM_OK);
    add(ds, "x/a");
    add(ds, "x/b");
    add(ds, "x/c");
    assert_int_equal(sm_sampler_create(ds, 1, &s), SM_ERR_DATASET); /* no class with 2 images */
    assert_non_null(strstr(sm_last_error(), "two images"));
    assert_null(s);

    /* Images added later are seen by an existing sampler. */
    add(ds, "x/b");
    assert_int_equal(sm_sampler_create(ds, 1, &s), SM_OK);
    draw d = draw_new(200);
    next(s, &d);
    for (size_t k = 0; k < d.n; k++)
        if (d.labels[k] == 1.0f) assert_int_equal(sm_dataset_image_class(ds, d.li[k]), 1);
    add(ds, "x/a");
    next(s, &d);
    size_t seen_a = 0;
    for (size_t k = 0; k < d.n; k++)
        if (d.labels[k] == 1.0f) seen_a += sm_dataset_image_class(ds, d.li[k]) == 0;
    assert_true(seen_a > 0);

    assert_int_equal(sm_sampler_next(NULL, 1, d.left, d.right, d.labels, NULL, NULL),
                     SM_ERR_INVALID_ARG);
    assert_int_equal(sm_sampler_next(s, 1, NULL, d.right, d.labels, NULL, NULL),
                     SM_ERR_INVALID_ARG);
    assert_int_equal(sm_sampler_next(s, 1, d.left, d.right, NULL, NULL, NULL), SM_ERR_INVALID_ARG);
    assert_int_equal(sm_sampler_next(s, SIZE_MAX / 2, d.left, d.right, d.labels, NULL, NULL),
                     SM_ERR_INVALID_ARG);
    draw_free(&d);
    sm_sampler_destroy(s);
    sm_sampler_destroy(NULL);
    sm_dataset_destroy(ds);
}

/* A sampler over loaded images: a synthetic set, the one the examples and training tests use. */
static void test_synthetic_source(void **state)
{
    (void)state;
    sm_dataset *ds = NULL;
    assert_int_equal(sm_dataset_create_synthetic(20, 4, 16, 16, 3, &ds), SM_OK);
    sm_sampler *s = NULL;
    assert_int_equal(sm_sampler_create(ds, 5, &s), SM_OK);
    float *l = malloc(64 * 256 * sizeof(float)), *r = malloc(64 * 256 * sizeof(float));
    float labels[64];
    assert_non_null(l);
    assert_non_null(r);
    assert_int_equal(sm_sampler_next(s, 64, l, r, labels, NULL, NULL), SM_OK);
    for (size_t i = 0; i < 64 * 256; i++) assert_true(l[i] >= 0.0f && l[i] <= 1.0f);
    free(l);
    free(r);
    sm_sampler_destroy(s);
    sm_dataset_destroy(ds);
}

static void test_alloc_failures(void **state)
{
    (void)state;
    sm_dataset *ds = make_dataset();
    for (long k = 0;; k++) {
        sm_sampler *s = NULL;
        sm__alloc_fail_after(k);
        sm_status st = sm_sampler_create(ds, 1, &s);
        sm__alloc_fail_after(-1);
        if (st == SM_OK) {
            sm_sampler_destroy(s);
            break;
        }
        assert_int_equal(st, SM_ERR_NOMEM);
        assert_null(s);
    }
    sm_dataset_destroy(ds);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pairs),
        cmocka_unit_test(test_reproducible),
        cmocka_unit_test(test_resume_state),
        cmocka_unit_test(test_refused_datasets),
        cmocka_unit_test(test_synthetic_source),
        cmocka_unit_test(test_alloc_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
