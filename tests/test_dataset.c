/* SPDX-License-Identifier: MIT */
/* Datasets: loading Omniglot-like folders and zips (generated here), refusing bad input with the
 * right status and a message naming the file, in-memory datasets, synthetic glyphs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/alloc.h"
#include "fixtures.h"
#include "siamese/siamese.h"

#define H 12
#define W 10

/* The files of the reference tree: class folder, file name, PNG bit depth. */
typedef struct spec {
    const char *cls;
    const char *file;
    int depth;
} spec;

/* In the order the library must list them: by class, then by file name. */
static const spec TREE[] = {
    {"Alpha/character01", "img_a.png", 1},   {"Alpha/character01", "img_b.png", 8},
    {"Alpha/character01", "img_c.png", 4},   {"Alpha/character02", "img_a.png", 2},
    {"Alpha/character02", "img_b.png", 16},  {"Beta/character01", "x1.png", 8},
    {"Beta/character01", "x2.png", 1},       {"Gamma/character05", "0001_01.png", 8},
    {"Gamma/character05", "0001_02.png", 8},
};
#define N_TREE (sizeof TREE / sizeof TREE[0])

typedef struct fixture {
    char *tmp;  /* the temporary folder, removed afterwards */
    char *root; /* tmp/data/images_background: the tree */
} fixture;

static char *path3(const char *a, const char *b, const char *c)
{
    char *ab = fx_join(a, b);
    char *abc = fx_join(ab, c);
    free(ab);
    return abc;
}

static void write_file_spec(const char *root, size_t i)
{
    uint8_t grey[H * W];
    fx_pattern(grey, W, H, (unsigned)i);
    char *p = path3(root, TREE[i].cls, TREE[i].file);
    assert_int_equal(fx_write_png(p, W, H, FX_GREY, TREE[i].depth, grey), 0);
    free(p);
}

/* The tree, with files the loader must skip: not PNG, hidden, too shallow, macOS forks. */
static void write_tree(const char *root)
{
    /* Written in reverse: the order on disk must not matter. */
    for (size_t i = N_TREE; i-- > 0;) write_file_spec(root, i);
    char *p = path3(root, "Beta/character01", "notes.txt");
    assert_int_equal(fx_write_bytes(p, "hello", 5), 0);
    free(p);
    p = path3(root, "Alpha/character01", "._img_a.png");
    assert_int_equal(fx_write_bytes(p, "junk", 4), 0);
    free(p);
    p = path3(root, "Alpha/.cache", "junk.png");
    assert_int_equal(fx_write_bytes(p, "junk", 4), 0);
    free(p);
    p = fx_join(root, "README.png");
    assert_int_equal(fx_write_bytes(p, "junk", 4), 0);
    free(p);
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    if (!f) return -1;
    f->tmp = fx_tempdir();
    if (!f->tmp) return -1;
    char *data = fx_join(f->tmp, "data");
    f->root = fx_join(data, "images_background");
    free(data);
    write_tree(f->root);
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
    sm__alloc_fail_after(-1);
    return rc;
}

static char *tmp_path(const fixture *f, const char *name) { return fx_join(f->tmp, name); }

/* Checks a dataset loaded from the whole tree: names, order, labels, pixels, sources. */
static void check_tree_dataset(const sm_dataset *ds)
{
    assert_int_equal(sm_dataset_num_images(ds), N_TREE);
    assert_int_equal(sm_dataset_num_classes(ds), 4);
    assert_int_equal(sm_dataset_num_alphabets(ds), 3);
    assert_string_equal(sm_dataset_alphabet_name(ds, 0), "Alpha");
    assert_string_equal(sm_dataset_alphabet_name(ds, 1), "Beta");
    assert_string_equal(sm_dataset_alphabet_name(ds, 2), "Gamma");
    assert_null(sm_dataset_alphabet_name(ds, 3));
    assert_string_equal(sm_dataset_class_name(ds, 0), "Alpha/character01");
    assert_string_equal(sm_dataset_class_name(ds, 3), "Gamma/character05");
    assert_null(sm_dataset_class_name(ds, 4));
    int h = 0, w = 0;
    assert_int_equal(sm_dataset_image_size(ds, &h, &w), SM_OK);
    assert_int_equal(h, H);
    assert_int_equal(w, W);
    float px[H * W];
    for (size_t i = 0; i < N_TREE; i++) {
        size_t c = sm_dataset_image_class(ds, i);
        assert_true(c < 4);
        assert_string_equal(sm_dataset_class_name(ds, c), TREE[i].cls);
        const char *src = sm_dataset_image_source(ds, i);
        char *tail = fx_join(TREE[i].cls, TREE[i].file);
        size_t ls = strlen(src), lt = strlen(tail);
        assert_true(ls > lt && strcmp(src + ls - lt, tail) == 0);
        free(tail);
        assert_int_equal(sm_dataset_get_image(ds, i, px), SM_OK);
        uint8_t grey[H * W];
        fx_pattern(grey, W, H, (unsigned)i);
        for (int k = 0; k < H * W; k++)
            assert_true(px[k] == (float)fx_expected_level(grey[k], TREE[i].depth) / 255.0f);
    }
    assert_int_equal(sm_dataset_image_class(ds, N_TREE), SIZE_MAX);
    assert_null(sm_dataset_image_source(ds, N_TREE));
    assert_int_equal(sm_dataset_get_image(ds, N_TREE, px), SM_ERR_INVALID_ARG);
}

static void open_ok(const char *path, sm_dataset **ds)
{
    sm_status st = sm_dataset_open(path, H, W, NULL, 0, ds);
    if (st != SM_OK) fail_msg("open '%s': %s: %s", path, sm_status_name(st), sm_last_error());
}

static void test_open_folder(void **state)
{
    fixture *f = *state;
    sm_dataset *ds = NULL;
    open_ok(f->root, &ds); /* ROOT absent */
    check_tree_dataset(ds);
    sm_dataset_destroy(ds);
    char *data = tmp_path(f, "data"); /* ROOT present */
    open_ok(data, &ds);
    check_tree_dataset(ds);
    char *first = path3(f->root, TREE[0].cls, TREE[0].file);
    assert_string_equal(sm_dataset_image_source(ds, 0), first);
    free(first);
    sm_dataset_destroy(ds);
    free(data);
}

static void test_open_zip_variants(void **state)
{
    fixture *f = *state;
    char *data = tmp_path(f, "data");
    const struct {
        const char *prefix;
        int dir_entries;
    } variants[] = {{"", 0}, {"", 1}, {"images_background/", 0}, {"images_background/", 1}};
    for (size_t v = 0; v < sizeof variants / sizeof variants[0]; v++) {
        char *zip = tmp_path(f, "set.zip");
        assert_int_equal(fx_zip_tree(f->root, zip, variants[v].prefix, variants[v].dir_entries, 0),
                         0);
        /* What macOS adds: must be skipped, it is not a PNG at all. */
        assert_int_equal(
            fx_zip_add(zip, "__MACOSX/images_background/Alpha/character01/._x.png", "junk", 4), 0);
        sm_dataset *ds = NULL;
        open_ok(zip, &ds);
        check_tree_dataset(ds);
        const char *src = sm_dataset_image_source(ds, 0);
        assert_int_equal(strncmp(src, zip, strlen(zip)), 0);
        assert_int_equal(src[strlen(zip)], ':');
        sm_dataset_destroy(ds);
        assert_int_equal(fx_rmtree(zip), 0);
        free(zip);
    }
    free(data);
}

static void test_default_size(void **state)
{
    fixture *f = *state;
    char *dir = tmp_path(f, "big");
    uint8_t *grey = malloc(105 * 105);
    assert_non_null(grey);
    const char *files[] = {"A/c1/1.png", "A/c1/2.png", "A/c2/1.png"};
    for (unsigned i = 0; i < 3; i++) {
        fx_pattern(grey, 105, 105, i);
        char *p = fx_join(dir, files[i]);
        assert_int_equal(fx_write_png(p, 105, 105, FX_GREY, 1, grey), 0);
        free(p);
    }
    free(grey);
    sm_dataset *ds = NULL;
    assert_int_equal(sm_dataset_open(dir, 0, 0, NULL, 0, &ds), SM_OK);
    assert_int_equal(sm_dataset_num_images(ds), 3);
    int h, w;
    assert_int_equal(sm_dataset_image_size(ds, &h, &w), SM_OK);
    assert_int_equal(h, 105);
    assert_int_equal(w, 105);
    sm_dataset_destroy(ds);
    free(dir);
}

static void test_alphabet_selection(void **state)
{
    fixture *f = *state;
    sm_dataset *ds = NULL;
    const char *bg[] = {"Gamma", "Beta"};
    assert_int_equal(sm_dataset_open(f->root, H, W, bg, 2, &ds), SM_OK);
    assert_int_equal(sm_dataset_num_alphabets(ds), 2);
    assert_int_equal(sm_dataset_num_classes(ds), 2);
    assert_int_equal(sm_dataset_num_images(ds), 4);
    assert_string_equal(sm_dataset_alphabet_name(ds, 0), "Beta");
    assert_string_equal(sm_dataset_class_name(ds, 1), "Gamma/character05");
    sm_dataset_destroy(ds);

    const char *alpha[] = {"Alpha"};
    assert_int_equal(sm_dataset_open(f->root, H, W, alpha, 1, &ds), SM_OK);
    assert_int_equal(sm_dataset_num_classes(ds), 2);
    assert_int_equal(sm_dataset_num_images(ds), 5);
    sm_dataset_destroy(ds);

    /* A prefix of a real name is not that name. */
    const char *unknown[] = {"Alpha", "Bet"};
    ds = NULL;
    assert_int_equal(sm_dataset_open(f->root, H, W, unknown, 2, &ds), SM_ERR_DATASET);
    assert_null(ds);
    assert_non_null(strstr(sm_last_error(), "'Bet'"));

    const char *one[] = {"Beta"}; /* a single class */
    assert_int_equal(sm_dataset_open(f->root, H, W, one, 1, &ds), SM_ERR_DATASET);
    assert_null(ds);
}

/* A fresh two-class tree plus one extra file, opened as folder and as zip: both must fail with
 * `status` and a message naming the extra file. `truncated`: 0 a whole file, 1 one cut in
 * half, 1 + FX_DAMAGE_* one damaged that way. */
static void expect_bad_file(fixture *f, const char *name, int w, int h, int color, int depth,
                            int truncated, sm_status status, const char *detail)
{
    char *dir = tmp_path(f, "bad");
    uint8_t grey[64 * 64];
    fx_pattern(grey, W, H, 1);
    const char *good[] = {"A/c1/1.png", "A/c1/2.png", "A/c2/1.png"};
    for (int i = 0; i < 3; i++) {
        char *p = fx_join(dir, good[i]);
        assert_int_equal(fx_write_png(p, W, H, FX_GREY, 8, grey), 0);
        free(p);
    }
    char *rel = fx_join("A/c2", name);
    char *p = fx_join(dir, rel);
    fx_pattern(grey, w, h, 2);
    if (truncated > 1) /* an FX_DAMAGE_* kind + 1 */
        assert_int_equal(fx_write_damaged_png(p, w, h, truncated - 1), 0);
    else if (truncated) assert_int_equal(fx_write_truncated_png(p, w, h), 0);
    else assert_int_equal(fx_write_png(p, w, h, color, depth, grey), 0);

    sm_dataset *ds = NULL;
    for (int as_zip = 0; as_zip < 2; as_zip++) {
        char *zip = tmp_path(f, "bad.zip");
        if (as_zip) assert_int_equal(fx_zip_tree(dir, zip, "root/", 0, 0), 0);
        sm_status st = sm_dataset_open(as_zip ? zip : dir, H, W, NULL, 0, &ds);
        if (st != status)
            fail_msg("%s (%s): got %s: %s", name, as_zip ? "zip" : "folder", sm_status_name(st),
                     sm_last_error());
        assert_null(ds);
        assert_non_null(strstr(sm_last_error(), rel));
        if (detail) assert_non_null(strstr(sm_last_error(), detail));
        free(zip);
    }
    /* The same file on its own. */
    float px[H * W];
    assert_int_equal(sm_image_read_png(p, H, W, px), status);
    assert_non_null(strstr(sm_last_error(), name));
    free(p);
    free(rel);
    assert_int_equal(fx_rmtree(dir), 0);
    free(dir);
}

static void test_bad_files(void **state)
{
    fixture *f = *state;
    expect_bad_file(f, "broken.png", W, H, FX_GREY, 8, 1, SM_ERR_FORMAT, NULL);
    /* damage libspng alone would let through: every CRC is checked, each file read to IEND */
    expect_bad_file(f, "idat-crc.png", W, H, FX_GREY, 8, 1 + FX_DAMAGE_IDAT_CRC, SM_ERR_FORMAT,
                    "CRC");
    expect_bad_file(f, "text-crc.png", W, H, FX_GREY, 8, 1 + FX_DAMAGE_TEXT_CRC, SM_ERR_FORMAT,
                    "CRC");
    expect_bad_file(f, "no-iend.png", W, H, FX_GREY, 8, 1 + FX_DAMAGE_NO_IEND, SM_ERR_FORMAT,
                    "IEND");
    expect_bad_file(f, "wrong.png", 7, 9, FX_GREY, 8, 0, SM_ERR_SHAPE, "is 7x9, expected 10x12");
    expect_bad_file(f, "swapped.png", H, W, FX_GREY, 1, 0, SM_ERR_SHAPE, "is 12x10");
    /* colour and alpha are converted since 0.2 (test_images.c); their size is still checked */
    expect_bad_file(f, "colour.png", 7, 9, FX_RGB, 8, 0, SM_ERR_SHAPE, "is 7x9, expected 10x12");
    expect_bad_file(f, "alpha.png", 7, 9, FX_GREY_ALPHA, 8, 0, SM_ERR_SHAPE, "is 7x9");
}

static void test_bad_paths(void **state)
{
    fixture *f = *state;
    sm_dataset *ds = NULL;
    char *missing = tmp_path(f, "no-such-set");
    assert_int_equal(sm_dataset_open(missing, H, W, NULL, 0, &ds), SM_ERR_IO);
    assert_non_null(strstr(sm_last_error(), missing));
    assert_null(ds);
    free(missing);

    char *empty = tmp_path(f, "empty");
    assert_int_equal(fx_mkdirs(empty), 0);
    assert_int_equal(sm_dataset_open(empty, H, W, NULL, 0, &ds), SM_ERR_DATASET);
    assert_non_null(strstr(sm_last_error(), empty));
    assert_null(ds);

    /* One class only. */
    uint8_t grey[H * W] = {0};
    char *p = fx_join(empty, "A/c1/1.png");
    assert_int_equal(fx_write_png(p, W, H, FX_GREY, 8, grey), 0);
    free(p);
    p = fx_join(empty, "A/c1/2.png");
    assert_int_equal(fx_write_png(p, W, H, FX_GREY, 8, grey), 0);
    free(p);
    assert_int_equal(sm_dataset_open(empty, H, W, NULL, 0, &ds), SM_ERR_DATASET);
    assert_non_null(strstr(sm_last_error(), "A/c1"));
    free(empty);

    /* Not a zip, and a zip cut short. */
    char *junk = tmp_path(f, "junk.zip");
    assert_int_equal(fx_write_bytes(junk, "this is not a zip file at all", 29), 0);
    assert_int_equal(sm_dataset_open(junk, H, W, NULL, 0, &ds), SM_ERR_FORMAT);
    assert_non_null(strstr(sm_last_error(), junk));
    char *zip = tmp_path(f, "good.zip");
    assert_int_equal(fx_zip_tree(f->root, zip, "", 1, 0), 0);
    size_t n = 0;
    uint8_t *bytes = fx_read_bytes(zip, &n);
    assert_non_null(bytes);
    assert_int_equal(fx_write_bytes(junk, bytes, n / 2), 0);
    assert_int_equal(sm_dataset_open(junk, H, W, NULL, 0, &ds), SM_ERR_FORMAT);
    assert_null(ds);
    free(bytes);
    free(zip);
    free(junk);
}

/* A zip whose stored data no longer matches its checksum. */
static void test_damaged_zip_entry(void **state)
{
    fixture *f = *state;
    char *zip = tmp_path(f, "stored.zip");
    assert_int_equal(fx_zip_tree(f->root, zip, "r/", 0, 1), 0);
    size_t n = 0;
    uint8_t *bytes = fx_read_bytes(zip, &n);
    assert_non_null(bytes);
    /* Damage the last pixel data of the first PNG in the archive, after its header. */
    size_t at = 0;
    for (size_t i = 0; i + 8 < n; i++)
        if (memcmp(bytes + i, "IDAT", 4) == 0) {
            at = i + 8;
            break;
        }
    assert_true(at > 0);
    bytes[at] ^= 0x55;
    assert_int_equal(fx_write_bytes(zip, bytes, n), 0);
    free(bytes);
    sm_dataset *ds = NULL;
    assert_int_equal(sm_dataset_open(zip, H, W, NULL, 0, &ds), SM_ERR_FORMAT);
    assert_null(ds);
    assert_non_null(strstr(sm_last_error(), zip));
    free(zip);
}

static void test_zip_entry_limit(void **state)
{
    fixture *f = *state;
    char *zip = tmp_path(f, "huge.zip");
    assert_int_equal(fx_zip_tree(f->root, zip, "", 0, 0), 0);
    size_t big = ((size_t)64 << 20) + 1;
    uint8_t *zeros = calloc(big, 1);
    assert_non_null(zeros);
    assert_int_equal(fx_zip_add(zip, "Alpha/character01/huge.png", zeros, big), 0);
    free(zeros);
    sm_dataset *ds = NULL;
    assert_int_equal(sm_dataset_open(zip, H, W, NULL, 0, &ds), SM_ERR_LIMIT);
    assert_null(ds);
    assert_non_null(strstr(sm_last_error(), "huge.png"));
    fx_rmtree(zip);
    free(zip);
}

static void test_null_args(void **state)
{
    fixture *f = *state;
    sm_dataset *ds = NULL;
    assert_int_equal(sm_dataset_open(NULL, H, W, NULL, 0, &ds), SM_ERR_INVALID_ARG);
    assert_int_equal(sm_dataset_open(f->root, H, W, NULL, 0, NULL), SM_ERR_INVALID_ARG);
    assert_int_equal(sm_dataset_open(f->root, H, W, NULL, 1, &ds), SM_ERR_INVALID_ARG);
    const char *nul[] = {NULL};
    assert_int_equal(sm_dataset_open(f->root, H, W, nul, 1, &ds), SM_ERR_INVALID_ARG);
    assert_int_equal(sm_dataset_open(f->root, -1, W, NULL, 0, &ds), SM_ERR_INVALID_ARG);
    assert_int_equal(sm_dataset_open(f->root, 0, W, NULL, 0, &ds), SM_ERR_INVALID_ARG);
    assert_int_equal(sm_dataset_open(f->root, H, 5000, NULL, 0, &ds), SM_ERR_INVALID_ARG);
    assert_null(ds);
    float px[H * W];
    assert_int_equal(sm_image_read_png(NULL, H, W, px), SM_ERR_INVALID_ARG);
    assert_int_equal(sm_image_read_png(f->root, H, W, NULL), SM_ERR_INVALID_ARG);
    assert_int_equal(sm_image_read_png(f->root, 0, W, px), SM_ERR_INVALID_ARG);

    assert_int_equal(sm_dataset_num_images(NULL), 0);
    assert_int_equal(sm_dataset_num_classes(NULL), 0);
    assert_int_equal(sm_dataset_num_alphabets(NULL), 0);
    assert_int_equal(sm_dataset_image_size(NULL, NULL, NULL), SM_ERR_INVALID_ARG);
    assert_int_equal(sm_dataset_get_image(NULL, 0, px), SM_ERR_INVALID_ARG);
    assert_int_equal(sm_dataset_image_class(NULL, 0), SIZE_MAX);
    assert_null(sm_dataset_class_name(NULL, 0));
    assert_null(sm_dataset_alphabet_name(NULL, 0));
    assert_null(sm_dataset_image_source(NULL, 0));
    sm_dataset_destroy(NULL);
}

static void test_read_png(void **state)
{
    fixture *f = *state;
    float px[H * W];
    for (size_t i = 0; i < N_TREE; i++) {
        char *p = path3(f->root, TREE[i].cls, TREE[i].file);
        assert_int_equal(sm_image_read_png(p, H, W, px), SM_OK);
        uint8_t grey[H * W];
        fx_pattern(grey, W, H, (unsigned)i);
        for (int k = 0; k < H * W; k++)
            assert_true(px[k] == (float)fx_expected_level(grey[k], TREE[i].depth) / 255.0f);
        free(p);
    }
    char *missing = tmp_path(f, "missing.png");
    assert_int_equal(sm_image_read_png(missing, H, W, px), SM_ERR_IO);
    assert_non_null(strstr(sm_last_error(), missing));
    free(missing);
    assert_int_equal(sm_image_read_png(f->root, H, W, px), SM_ERR_IO); /* a folder */
}

static void test_memory_dataset(void **state)
{
    (void)state;
    sm_dataset *ds = NULL;
    assert_int_equal(sm_dataset_create(0, 4, &ds), SM_ERR_INVALID_ARG);
    assert_int_equal(sm_dataset_create(4, 4097, &ds), SM_ERR_INVALID_ARG);
    assert_int_equal(sm_dataset_create(3, 4, NULL), SM_ERR_INVALID_ARG);
    assert_int_equal(sm_dataset_create(3, 4, &ds), SM_OK);
    assert_int_equal(sm_dataset_num_images(ds), 0);
    assert_int_equal(sm_dataset_num_classes(ds), 0);

    float px[12], back[12];
    for (int i = 0; i < 12; i++) px[i] = (float)(i * 20) / 255.0f;
    assert_int_equal(sm_dataset_add_image(ds, "Zeta/c2", px), SM_OK);
    px[0] = 0.5f; /* stored as round(127.5) = 128 */
    px[1] = 1.0f;
    assert_int_equal(sm_dataset_add_image(ds, "Alpha/c1", px), SM_OK);
    assert_int_equal(sm_dataset_add_image(ds, "digits", px), SM_OK);
    assert_int_equal(sm_dataset_add_image(ds, "Zeta/c2", px), SM_OK);

    assert_int_equal(sm_dataset_num_images(ds), 4);
    assert_int_equal(sm_dataset_num_classes(ds), 3);
    /* Classes and alphabets sorted by name; images keep their order. */
    assert_string_equal(sm_dataset_class_name(ds, 0), "Alpha/c1");
    assert_string_equal(sm_dataset_class_name(ds, 1), "Zeta/c2");
    assert_string_equal(sm_dataset_class_name(ds, 2), "digits");
    assert_int_equal(sm_dataset_image_class(ds, 0), 1);
    assert_int_equal(sm_dataset_image_class(ds, 1), 0);
    assert_int_equal(sm_dataset_image_class(ds, 2), 2);
    assert_int_equal(sm_dataset_image_class(ds, 3), 1);
    assert_int_equal(sm_dataset_num_alphabets(ds), 3);
    assert_string_equal(sm_dataset_alphabet_name(ds, 0), ""); /* "digits" has no alphabet */
    assert_string_equal(sm_dataset_alphabet_name(ds, 1), "Alpha");
    assert_string_equal(sm_dataset_alphabet_name(ds, 2), "Zeta");
    assert_string_equal(sm_dataset_image_source(ds, 0), "");

    assert_int_equal(sm_dataset_get_image(ds, 0, back), SM_OK);
    for (int i = 0; i < 12; i++) assert_true(back[i] == (float)(i * 20) / 255.0f);
    assert_int_equal(sm_dataset_get_image(ds, 1, back), SM_OK);
    assert_true(back[0] == 128.0f / 255.0f);
    assert_true(back[1] == 1.0f);

    /* Refused values leave the dataset as it was. */
    px[5] = NAN;
    assert_int_equal(sm_dataset_add_image(ds, "New/c", px), SM_ERR_INVALID_ARG);
    px[5] = 1.0001f;
    assert_int_equal(sm_dataset_add_image(ds, "New/c", px), SM_ERR_INVALID_ARG);
    px[5] = -0.001f;
    assert_int_equal(sm_dataset_add_image(ds, "New/c", px), SM_ERR_INVALID_ARG);
    px[5] = INFINITY;
    assert_int_equal(sm_dataset_add_image(ds, "New/c", px), SM_ERR_INVALID_ARG);
    px[5] = 0.0f;
    assert_int_equal(sm_dataset_add_image(ds, "", px), SM_ERR_INVALID_ARG);
    assert_int_equal(sm_dataset_add_image(ds, NULL, px), SM_ERR_INVALID_ARG);
    assert_int_equal(sm_dataset_add_image(ds, "a/b", NULL), SM_ERR_INVALID_ARG);
    assert_int_equal(sm_dataset_add_image(NULL, "a/b", px), SM_ERR_INVALID_ARG);
    assert_int_equal(sm_dataset_num_images(ds), 4);
    assert_int_equal(sm_dataset_num_classes(ds), 3);
    sm_dataset_destroy(ds);
}

/* Many classes added out of order: indices stay consistent. */
static void test_memory_many_classes(void **state)
{
    (void)state;
    sm_dataset *ds = NULL;
    assert_int_equal(sm_dataset_create(1, 2, &ds), SM_OK);
    char label[32];
    float px[2];
    for (int i = 0; i < 300; i++) {
        int c = (i * 37) % 100;
        snprintf(label, sizeof label, "al%d/c%03d", c % 7, c);
        px[0] = (float)c / 255.0f;
        px[1] = (float)(i % 256) / 255.0f;
        assert_int_equal(sm_dataset_add_image(ds, label, px), SM_OK);
    }
    assert_int_equal(sm_dataset_num_classes(ds), 100);
    assert_int_equal(sm_dataset_num_alphabets(ds), 7);
    for (size_t c = 1; c < 100; c++)
        assert_true(strcmp(sm_dataset_class_name(ds, c - 1), sm_dataset_class_name(ds, c)) < 0);
    for (size_t i = 0; i < 300; i++) {
        assert_int_equal(sm_dataset_get_image(ds, i, px), SM_OK);
        int c = (int)lrintf(px[0] * 255.0f);
        snprintf(label, sizeof label, "al%d/c%03d", c % 7, c);
        assert_string_equal(sm_dataset_class_name(ds, sm_dataset_image_class(ds, i)), label);
    }
    sm_dataset_destroy(ds);
}

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static double sq_dist(const float *a, const float *b, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++) s += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
    return s;
}

static void test_synthetic(void **state)
{
    (void)state;
    sm_dataset *a = NULL, *b = NULL, *c = NULL;
    double t0 = now_s();
    assert_int_equal(sm_dataset_create_synthetic(100, 10, 105, 105, 7, &a), SM_OK);
    double elapsed = now_s() - t0;
    /* "Well under a second" natively; generous here for valgrind and slow CI. */
    assert_true(elapsed < 20.0);
    assert_int_equal(sm_dataset_create_synthetic(100, 10, 105, 105, 7, &b), SM_OK);
    assert_int_equal(sm_dataset_create_synthetic(100, 10, 105, 105, 8, &c), SM_OK);
    assert_int_equal(sm_dataset_num_images(a), 1000);
    assert_int_equal(sm_dataset_num_classes(a), 100);
    assert_int_equal(sm_dataset_num_alphabets(a), 10);
    assert_string_equal(sm_dataset_class_name(a, 0), "synth00/char000");
    assert_string_equal(sm_dataset_class_name(a, 99), "synth09/char099");
    assert_string_equal(sm_dataset_alphabet_name(a, 9), "synth09");
    assert_string_equal(sm_dataset_image_source(a, 0), "");

    size_t n = 105 * 105;
    float *x = malloc(n * sizeof *x), *y = malloc(n * sizeof *y);
    assert_non_null(x);
    assert_non_null(y);
    int differs = 0;
    for (size_t i = 0; i < 1000; i += 37) {
        assert_int_equal(sm_dataset_image_class(a, i), i / 10);
        assert_int_equal(sm_dataset_get_image(a, i, x), SM_OK);
        assert_int_equal(sm_dataset_get_image(b, i, y), SM_OK);
        assert_memory_equal(x, y, n * sizeof *x);
        assert_int_equal(sm_dataset_get_image(c, i, y), SM_OK);
        differs |= memcmp(x, y, n * sizeof *x) != 0;
        size_t ink = 0, paper = 0;
        for (size_t k = 0; k < n; k++) {
            assert_true(x[k] >= 0.0f && x[k] <= 1.0f);
            ink += x[k] == 0.0f;
            paper += x[k] == 1.0f;
        }
        assert_true(ink > 50);      /* visible strokes */
        assert_true(paper > n / 2); /* mostly white */
    }
    assert_true(differs);

    /* Images of a class are closer to each other than to other classes, on average. */
    double within = 0, between = 0;
    int nw = 0, nb = 0;
    for (size_t cls = 0; cls < 20; cls++) {
        assert_int_equal(sm_dataset_get_image(a, cls * 10, x), SM_OK);
        assert_int_equal(sm_dataset_get_image(a, cls * 10 + 1, y), SM_OK);
        within += sq_dist(x, y, n);
        nw++;
        assert_int_equal(sm_dataset_get_image(a, ((cls + 1) % 20) * 10 + 1, y), SM_OK);
        between += sq_dist(x, y, n);
        nb++;
    }
    assert_true(within / nw < 0.7 * (between / nb));
    free(x);
    free(y);
    sm_dataset_destroy(a);
    sm_dataset_destroy(b);
    sm_dataset_destroy(c);

    /* Odd sizes and more than 1000 classes. */
    assert_int_equal(sm_dataset_create_synthetic(1005, 1, 9, 31, 1, &a), SM_OK);
    assert_int_equal(sm_dataset_num_alphabets(a), 101);
    assert_string_equal(sm_dataset_class_name(a, 1004), "synth100/char1004");
    assert_string_equal(sm_dataset_class_name(a, 0), "synth000/char0000");
    sm_dataset_destroy(a);

    assert_int_equal(sm_dataset_create_synthetic(0, 10, 105, 105, 1, &a), SM_ERR_INVALID_ARG);
    assert_int_equal(sm_dataset_create_synthetic(10, 0, 105, 105, 1, &a), SM_ERR_INVALID_ARG);
    assert_int_equal(sm_dataset_create_synthetic(10, 2, 0, 105, 1, &a), SM_ERR_INVALID_ARG);
    assert_int_equal(sm_dataset_create_synthetic(10, 2, 105, 105, 1, NULL), SM_ERR_INVALID_ARG);
}

/* Every allocation failure is reported as SM_ERR_NOMEM and leaks nothing (run under valgrind). */
static void test_alloc_failures(void **state)
{
    fixture *f = *state;
    char *zip = tmp_path(f, "nomem.zip");
    assert_int_equal(fx_zip_tree(f->root, zip, "r/", 0, 0), 0);
    const char *paths[] = {f->root, zip};
    for (int which = 0; which < 3; which++) {
        for (long k = 0;; k++) {
            sm__alloc_fail_after(k);
            sm_dataset *ds = NULL;
            sm_status st = which < 2 ? sm_dataset_open(paths[which], H, W, NULL, 0, &ds)
                                     : sm_dataset_create_synthetic(3, 3, 16, 16, 1, &ds);
            sm__alloc_fail_after(-1);
            if (st == SM_OK) {
                assert_true(k > 3);
                if (which < 2) check_tree_dataset(ds);
                sm_dataset_destroy(ds);
                break;
            }
            if (st != SM_ERR_NOMEM)
                fail_msg("after %ld allocations: %s: %s", k, sm_status_name(st), sm_last_error());
            assert_null(ds);
        }
    }
    /* add_image: a failed add leaves the dataset unchanged and usable. */
    sm_dataset *ds = NULL;
    assert_int_equal(sm_dataset_create(2, 2, &ds), SM_OK);
    float px[4] = {0, 0.25f, 0.5f, 1};
    char label[16];
    for (int i = 0; i < 40; i++) {
        snprintf(label, sizeof label, "a%d/c%d", i % 3, (i * 7) % 11);
        for (long k = 0;; k++) {
            size_t before = sm_dataset_num_images(ds), classes = sm_dataset_num_classes(ds);
            sm__alloc_fail_after(k);
            sm_status st = sm_dataset_add_image(ds, label, px);
            sm__alloc_fail_after(-1);
            if (st == SM_OK) break;
            assert_int_equal(st, SM_ERR_NOMEM);
            assert_int_equal(sm_dataset_num_images(ds), before);
            assert_int_equal(sm_dataset_num_classes(ds), classes);
        }
    }
    assert_int_equal(sm_dataset_num_images(ds), 40);
    for (size_t i = 0; i < 40; i++) {
        snprintf(label, sizeof label, "a%d/c%d", (int)i % 3, ((int)i * 7) % 11);
        assert_string_equal(sm_dataset_class_name(ds, sm_dataset_image_class(ds, i)), label);
    }
    sm_dataset_destroy(ds);
    free(zip);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_open_folder, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_zip_variants, setup, teardown),
        cmocka_unit_test_setup_teardown(test_default_size, setup, teardown),
        cmocka_unit_test_setup_teardown(test_alphabet_selection, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_files, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_paths, setup, teardown),
        cmocka_unit_test_setup_teardown(test_damaged_zip_entry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_zip_entry_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_null_args, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_png, setup, teardown),
        cmocka_unit_test(test_memory_dataset),
        cmocka_unit_test(test_memory_many_classes),
        cmocka_unit_test(test_synthetic),
        cmocka_unit_test_setup_teardown(test_alloc_failures, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
