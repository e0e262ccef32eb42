/* SPDX-License-Identifier: MIT */
/* Opening at another size (sm_dataset_open_with's resize, sm_oneshot_runs_open_with), leaving
 * alphabets out (exclude) and the seeded split by alphabet (sm_dataset_split_alphabets). */
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

#define BIG   40
#define SMALL 20

/* Five alphabets A0..A4, alphabet a holding a + 2 classes of 2 images each, 40x40. */
static const char *const ALPHABETS[] = {"A0", "A1", "A2", "A3", "A4"};
#define N_ALPHABETS 5

typedef struct fixture {
    char *tmp, *root;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    if (!f || !(f->tmp = fx_tempdir())) return -1;
    f->root = fx_join(f->tmp, "images_background");
    unsigned seed = 1;
    for (int a = 0; a < N_ALPHABETS; a++)
        for (int c = 0; c < a + 2; c++)
            for (int i = 0; i < 2; i++) {
                char rel[128];
                snprintf(rel, sizeof rel, "%s/character%02d/img%d.png", ALPHABETS[a], c + 1, i);
                char *p = fx_join(f->root, rel);
                uint8_t grey[BIG * BIG];
                fx_pattern(grey, BIG, BIG, seed++);
                if (fx_write_png(p, BIG, BIG, FX_GREY, 8, grey)) return -1;
                free(p);
            }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    int rc = fx_rmtree(f->tmp);
    free(f->tmp);
    free(f->root);
    free(f);
    return rc;
}

/* What the dataset stores for a value v and gives back: round(v * 255) / 255, rounded as
 * sm_dataset_add_image does (halves up; averaging 2x2 8-bit pixels makes many exact halves). */
static float stored(float v) { return (float)(uint8_t)((double)v * 255.0 + 0.5) / 255.0f; }

/* The alphabet of image i ("A3/character01" -> "A3"). */
static void alphabet_of(const sm_dataset *ds, size_t i, char *out, size_t cap)
{
    const char *cls = sm_dataset_class_name(ds, sm_dataset_image_class(ds, i));
    assert_non_null(cls);
    size_t n = strcspn(cls, "/");
    assert_true(n < cap);
    memcpy(out, cls, n);
    out[n] = '\0';
}

static void test_resize_at_open(void **state)
{
    fixture *f = *state;
    sm_dataset *big = NULL, *small = NULL;
    /* the default still refuses another size, naming the file */
    assert_int_equal(sm_dataset_open(f->root, SMALL, SMALL, NULL, 0, &small), SM_ERR_SHAPE);
    assert_null(small);
    assert_non_null(strstr(sm_last_error(), ".png"));
    sm_dataset_options opt = SM_DATASET_OPTIONS_INIT;
    assert_int_equal(sm_dataset_open_with(f->root, SMALL, SMALL, NULL, 0, &opt, &small),
                     SM_ERR_SHAPE);
    assert_null(small);

    assert_int_equal(sm_dataset_open(f->root, BIG, BIG, NULL, 0, &big), SM_OK);
    opt.resize = 1;
    assert_int_equal(sm_dataset_open_with(f->root, SMALL, SMALL, NULL, 0, &opt, &small), SM_OK);
    int h = 0, w = 0;
    assert_int_equal(sm_dataset_image_size(small, &h, &w), SM_OK);
    assert_int_equal(h, SMALL);
    assert_int_equal(w, SMALL);
    assert_int_equal(sm_dataset_num_images(small), sm_dataset_num_images(big));
    assert_int_equal(sm_dataset_num_classes(small), sm_dataset_num_classes(big));
    float src[BIG * BIG], want[SMALL * SMALL], got[SMALL * SMALL];
    for (size_t i = 0; i < sm_dataset_num_images(big); i++) {
        assert_string_equal(sm_dataset_image_source(small, i), sm_dataset_image_source(big, i));
        assert_int_equal(sm_dataset_get_image(big, i, src), SM_OK);
        assert_int_equal(sm_image_resize(src, BIG, BIG, want, SMALL, SMALL), SM_OK);
        assert_int_equal(sm_dataset_get_image(small, i, got), SM_OK);
        for (size_t k = 0; k < SMALL * SMALL; k++) {
            assert_true(got[k] == stored(want[k]));
        }
    }
    sm_dataset_destroy(small);
    small = NULL;

    /* resizing to the files' own size keeps them exactly */
    assert_int_equal(sm_dataset_open_with(f->root, BIG, BIG, NULL, 0, &opt, &small), SM_OK);
    float same[BIG * BIG];
    for (size_t i = 0; i < sm_dataset_num_images(big); i++) {
        assert_int_equal(sm_dataset_get_image(big, i, src), SM_OK);
        assert_int_equal(sm_dataset_get_image(small, i, same), SM_OK);
        assert_memory_equal(src, same, sizeof same);
    }
    sm_dataset_destroy(small);
    sm_dataset_destroy(big);

    /* NULL options: sm_dataset_open; an older caller's smaller struct reads as resize 0 */
    small = NULL;
    assert_int_equal(sm_dataset_open_with(f->root, SMALL, SMALL, NULL, 0, NULL, &small),
                     SM_ERR_SHAPE);
    sm_dataset_options old = {sizeof(size_t), 1, NULL, 0};
    assert_int_equal(sm_dataset_open_with(f->root, SMALL, SMALL, NULL, 0, &old, &small),
                     SM_ERR_SHAPE);
    old.struct_size = 0;
    assert_int_equal(sm_dataset_open_with(f->root, SMALL, SMALL, NULL, 0, &old, &small),
                     SM_ERR_INVALID_ARG);
    opt.resize = 2;
    assert_int_equal(sm_dataset_open_with(f->root, SMALL, SMALL, NULL, 0, &opt, &small),
                     SM_ERR_INVALID_ARG);
    assert_null(small);
}

static void test_exclude(void **state)
{
    fixture *f = *state;
    sm_dataset *ds = NULL;
    const char *out[] = {"A1", "A3"};
    sm_dataset_options opt = SM_DATASET_OPTIONS_INIT;
    opt.exclude = out;
    opt.n_exclude = 2;
    assert_int_equal(sm_dataset_open_with(f->root, BIG, BIG, NULL, 0, &opt, &ds), SM_OK);
    assert_int_equal(sm_dataset_num_alphabets(ds), 3);
    assert_int_equal(sm_dataset_num_classes(ds), 2 + 4 + 6);
    char a[16];
    for (size_t i = 0; i < sm_dataset_num_images(ds); i++) {
        alphabet_of(ds, i, a, sizeof a);
        assert_true(strcmp(a, "A1") != 0 && strcmp(a, "A3") != 0);
    }
    sm_dataset_destroy(ds);
    ds = NULL;

    /* with a selection: excluding a name outside it is an error, as is an unknown name */
    const char *sel[] = {"A0", "A1", "A2"};
    assert_int_equal(sm_dataset_open_with(f->root, BIG, BIG, sel, 3, &opt, &ds), SM_ERR_DATASET);
    assert_non_null(strstr(sm_last_error(), "'A3'"));
    const char *typo[] = {"A9"};
    opt.exclude = typo;
    opt.n_exclude = 1;
    assert_int_equal(sm_dataset_open_with(f->root, BIG, BIG, NULL, 0, &opt, &ds), SM_ERR_DATASET);
    assert_non_null(strstr(sm_last_error(), "'A9'"));
    opt.exclude = NULL;
    assert_int_equal(sm_dataset_open_with(f->root, BIG, BIG, NULL, 0, &opt, &ds),
                     SM_ERR_INVALID_ARG);
    assert_null(ds);
}

static void test_split(void **state)
{
    fixture *f = *state;
    sm_dataset *ds = NULL, *tr = NULL, *va = NULL, *tr2 = NULL, *va2 = NULL;
    assert_int_equal(sm_dataset_open(f->root, BIG, BIG, NULL, 0, &ds), SM_OK);
    assert_int_equal(sm_dataset_split_alphabets(ds, 2, 7, &tr, &va), SM_OK);
    assert_int_equal(sm_dataset_num_alphabets(va), 2);
    assert_int_equal(sm_dataset_num_alphabets(tr), 3);
    assert_int_equal(sm_dataset_num_images(tr) + sm_dataset_num_images(va),
                     sm_dataset_num_images(ds));
    /* no alphabet on both sides; pixels and sources carried over */
    for (size_t k = 0; k < 2; k++)
        for (size_t j = 0; j < 3; j++)
            assert_string_not_equal(sm_dataset_alphabet_name(va, k),
                                    sm_dataset_alphabet_name(tr, j));
    float a[BIG * BIG], b[BIG * BIG];
    for (size_t i = 0; i < sm_dataset_num_images(va); i++) {
        const char *src = sm_dataset_image_source(va, i);
        size_t j = 0;
        while (j < sm_dataset_num_images(ds) && strcmp(sm_dataset_image_source(ds, j), src)) j++;
        assert_true(j < sm_dataset_num_images(ds));
        assert_int_equal(sm_dataset_get_image(va, i, a), SM_OK);
        assert_int_equal(sm_dataset_get_image(ds, j, b), SM_OK);
        assert_memory_equal(a, b, sizeof a);
    }
    /* the same seed, the same split; the documented rule picks these */
    assert_int_equal(sm_dataset_split_alphabets(ds, 2, 7, &tr2, &va2), SM_OK);
    for (size_t k = 0; k < 2; k++)
        assert_string_equal(sm_dataset_alphabet_name(va, k), sm_dataset_alphabet_name(va2, k));
    sm_dataset_destroy(tr2);
    sm_dataset_destroy(va2);
    /* other seeds reach other splits */
    int differs = 0;
    for (uint64_t s = 0; s < 20 && !differs; s++) {
        assert_int_equal(sm_dataset_split_alphabets(ds, 2, s, &tr2, &va2), SM_OK);
        differs = strcmp(sm_dataset_alphabet_name(va, 0), sm_dataset_alphabet_name(va2, 0)) ||
                  strcmp(sm_dataset_alphabet_name(va, 1), sm_dataset_alphabet_name(va2, 1));
        sm_dataset_destroy(tr2);
        sm_dataset_destroy(va2);
    }
    assert_true(differs);

    /* bad counts */
    tr2 = va2 = NULL;
    assert_int_equal(sm_dataset_split_alphabets(ds, 0, 1, &tr2, &va2), SM_ERR_INVALID_ARG);
    assert_int_equal(sm_dataset_split_alphabets(ds, 5, 1, &tr2, &va2), SM_ERR_INVALID_ARG);
    assert_non_null(strstr(sm_last_error(), "at least one must stay"));
    assert_int_equal(sm_dataset_split_alphabets(NULL, 1, 1, &tr2, &va2), SM_ERR_INVALID_ARG);
    assert_int_equal(sm_dataset_split_alphabets(ds, 1, 1, NULL, &va2), SM_ERR_INVALID_ARG);
    assert_null(tr2);
    assert_null(va2);
    sm_dataset_destroy(tr);
    sm_dataset_destroy(va);
    sm_dataset_destroy(ds);
}

/* One-shot runs at another size: the same images as sm_image_resize of the files'. */
static void test_runs_resized(void **state)
{
    fixture *f = *state;
    char *runs = fx_join(f->tmp, "runs");
    char *dir = fx_join(runs, "run01");
    uint8_t grey[BIG * BIG];
    for (int c = 0; c < 2; c++) {
        char rel[64];
        snprintf(rel, sizeof rel, "training/class%02d.png", c + 1);
        char *p = fx_join(dir, rel);
        fx_pattern(grey, BIG, BIG, 100u + (unsigned)c);
        assert_int_equal(fx_write_png(p, BIG, BIG, FX_GREY, 8, grey), 0);
        free(p);
        snprintf(rel, sizeof rel, "test/item%02d.png", c + 1);
        p = fx_join(dir, rel);
        fx_pattern(grey, BIG, BIG, 200u + (unsigned)c);
        assert_int_equal(fx_write_png(p, BIG, BIG, FX_GREY, 8, grey), 0);
        free(p);
    }
    const char labels[] = "run01/test/item01.png run01/training/class02.png\n"
                          "run01/test/item02.png run01/training/class01.png\n";
    char *lp = fx_join(dir, "class_labels.txt");
    assert_int_equal(fx_write_bytes(lp, labels, sizeof labels - 1), 0);
    free(lp);

    sm_oneshot_runs *big = NULL, *small = NULL;
    assert_int_equal(sm_oneshot_runs_open(runs, SMALL, SMALL, &small), SM_ERR_SHAPE);
    sm_dataset_options opt = SM_DATASET_OPTIONS_INIT;
    assert_int_equal(sm_oneshot_runs_open_with(runs, SMALL, SMALL, &opt, &small), SM_ERR_SHAPE);
    opt.resize = 1;
    assert_int_equal(sm_oneshot_runs_open(runs, BIG, BIG, &big), SM_OK);
    assert_int_equal(sm_oneshot_runs_open_with(runs, SMALL, SMALL, &opt, &small), SM_OK);
    float src[BIG * BIG], want[SMALL * SMALL], got[SMALL * SMALL];
    for (int q = 0; q < 2; q++)
        for (size_t i = 0; i < 2; i++) {
            size_t ans_big = 0, ans_small = 0;
            assert_int_equal(sm_oneshot_run_image(big, 0, q, i, src, q ? &ans_big : NULL), SM_OK);
            assert_int_equal(sm_oneshot_run_image(small, 0, q, i, got, q ? &ans_small : NULL),
                             SM_OK);
            assert_int_equal(ans_big, ans_small);
            assert_int_equal(sm_image_resize(src, BIG, BIG, want, SMALL, SMALL), SM_OK);
            for (size_t k = 0; k < SMALL * SMALL; k++) {
                assert_true(got[k] == stored(want[k]));
            }
        }
    const char *x[] = {"A0"};
    opt.exclude = x;
    opt.n_exclude = 1;
    sm_oneshot_runs *bad = NULL;
    assert_int_equal(sm_oneshot_runs_open_with(runs, SMALL, SMALL, &opt, &bad), SM_ERR_INVALID_ARG);
    assert_null(bad);
    sm_oneshot_runs_destroy(small);
    sm_oneshot_runs_destroy(big);
    free(dir);
    free(runs);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_resize_at_open, setup, teardown),
        cmocka_unit_test_setup_teardown(test_exclude, setup, teardown),
        cmocka_unit_test_setup_teardown(test_split, setup, teardown),
        cmocka_unit_test_setup_teardown(test_runs_resized, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
