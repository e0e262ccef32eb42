/* SPDX-License-Identifier: MIT */
/* Resource limits (sm_set_limit): inputs that claim huge sizes are refused with SM_ERR_LIMIT
 * before the allocation, with a message that names the file, the size claimed, the limit and
 * how to raise it; raising the limit makes the same input load where it is valid. Every test
 * restores the default limits. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "common/alloc.h"
#include "fixtures.h"
#include "siamese/siamese.h"

#define SIDE 8

static const sm_limit ALL[] = {SM_LIMIT_FILE_BYTES, SM_LIMIT_ENTRY_BYTES, SM_LIMIT_DATASET_BYTES,
                               SM_LIMIT_IMAGE_SIDE};
static uint64_t defaults[4];

static int setup(void **state)
{
    char *tmp = fx_tempdir();
    if (!tmp) return -1;
    *state = tmp;
    return 0;
}

static int teardown(void **state)
{
    for (int i = 0; i < 4; i++) sm_set_limit(ALL[i], defaults[i]);
    fx_rmtree(*state);
    free(*state);
    return 0;
}

/* The last error mentions every one of the NULL-terminated strings. */
static void expect_message(const char *first, ...)
{
    const char *msg = sm_last_error();
    va_list ap;
    va_start(ap, first);
    for (const char *s = first; s; s = va_arg(ap, const char *))
        if (!strstr(msg, s)) fail_msg("'%s' is not in the message '%s'", s, msg);
    va_end(ap);
}

static char *path_in(void **state, const char *name)
{
    char *p = fx_join(*state, name);
    assert_non_null(p);
    return p;
}

/* Writes an 8x8 grey PNG at dir/rel. */
static void write_png(const char *dir, const char *rel, unsigned seed)
{
    uint8_t grey[SIDE * SIDE];
    fx_pattern(grey, SIDE, SIDE, seed);
    char *p = fx_join(dir, rel);
    assert_non_null(p);
    assert_int_equal(fx_write_png(p, SIDE, SIDE, FX_GREY, 8, grey), 0);
    free(p);
}

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* Appends a PNG chunk (length, type, data, CRC) at out + *n. */
static void put_chunk(uint8_t *out, size_t *n, const char *type, const uint8_t *data, uint32_t len)
{
    put_be32(out + *n, len);
    memcpy(out + *n + 4, type, 4);
    if (len) memcpy(out + *n + 8, data, len);
    uLong crc = crc32(0L, out + *n + 4, 4 + len);
    put_be32(out + *n + 8 + len, (uint32_t)crc);
    *n += 12 + len;
}

/* ---------------------------------------------------------------- SM_LIMIT_ENTRY_BYTES */

/* A valid 8x8 PNG that carries `pad` bytes of zeros in a private ancillary chunk, so that it
 * is large and compresses to almost nothing. */
static uint8_t *padded_png(size_t pad, size_t *n)
{
    size_t small_n = 0;
    uint8_t grey[SIDE * SIDE];
    fx_pattern(grey, SIDE, SIDE, 3);
    uint8_t *small = fx_encode_png(SIDE, SIDE, FX_GREY, 8, grey, &small_n);
    assert_non_null(small);
    uint8_t *out = calloc(1, small_n + pad + 12);
    uint8_t *zeros = calloc(1, pad);
    assert_non_null(out);
    assert_non_null(zeros);
    size_t head = 8 + 25; /* signature + IHDR chunk */
    memcpy(out, small, head);
    *n = head;
    put_chunk(out, n, "zzZz", zeros, (uint32_t)pad);
    memcpy(out + *n, small + head, small_n - head);
    *n += small_n - head;
    free(zeros);
    free(small);
    return out;
}

static void test_zip_bomb(void **state)
{
    char *zip = path_in(state, "bomb.zip");
    size_t n = 0;
    uint8_t *big = padded_png((size_t)3 << 20, &n); /* 3 MiB, deflated to a few KiB */
    assert_int_equal(fx_zip_add(zip, "A/c1/bomb.png", big, n), 0);
    free(big);
    uint8_t grey[SIDE * SIDE];
    fx_pattern(grey, SIDE, SIDE, 4);
    size_t pn = 0;
    uint8_t *png = fx_encode_png(SIDE, SIDE, FX_GREY, 8, grey, &pn);
    assert_int_equal(fx_zip_add(zip, "A/c2/ok.png", png, pn), 0);
    free(png);

    sm_dataset *ds = NULL;
    assert_int_equal(sm_set_limit(SM_LIMIT_ENTRY_BYTES, (uint64_t)1 << 20), SM_OK);
    assert_int_equal(sm_dataset_open(zip, SIDE, SIDE, NULL, 0, &ds), SM_ERR_LIMIT);
    assert_null(ds);
    char claimed[32];
    snprintf(claimed, sizeof claimed, "%zu", n);
    expect_message(zip, "bomb.png", claimed, "1048576", "sm_set_limit(SM_LIMIT_ENTRY_BYTES)", NULL);

    assert_int_equal(sm_set_limit(SM_LIMIT_ENTRY_BYTES, (uint64_t)4 << 20), SM_OK);
    assert_int_equal(sm_dataset_open(zip, SIDE, SIDE, NULL, 0, &ds), SM_OK);
    assert_int_equal(sm_dataset_num_images(ds), 2);
    sm_dataset_destroy(ds);
    free(zip);
}

/* Sets the uncompressed size of every entry in the zip's local and central headers to `size`:
 * the entry then decompresses to more than it claims. */
static void lie_about_sizes(const char *zip, uint32_t size)
{
    size_t n = 0;
    uint8_t *b = fx_read_bytes(zip, &n);
    assert_non_null(b);
    int patched = 0;
    for (size_t i = 0; i + 46 <= n; i++) {
        if (memcmp(b + i, "PK\3\4", 4) == 0) { /* local header: size at 22 */
            memcpy(b + i + 22, (uint8_t[]){size, size >> 8, size >> 16, size >> 24}, 4);
            patched++;
        } else if (memcmp(b + i, "PK\1\2", 4) == 0) { /* central header: size at 24 */
            memcpy(b + i + 24, (uint8_t[]){size, size >> 8, size >> 16, size >> 24}, 4);
            patched++;
        }
    }
    assert_true(patched >= 2);
    assert_int_equal(fx_write_bytes(zip, b, n), 0);
    free(b);
}

static void test_zip_entry_lies_about_its_size(void **state)
{
    char *zip = path_in(state, "liar.zip");
    uint8_t *zeros = calloc(1, (size_t)8 << 20);
    assert_non_null(zeros);
    assert_int_equal(fx_zip_add(zip, "A/c1/zeros.png", zeros, (size_t)8 << 20), 0);
    assert_int_equal(fx_zip_add(zip, "A/c2/zeros.png", zeros, 2000), 0);
    free(zeros);
    lie_about_sizes(zip, 1000);
    assert_int_equal(sm_set_limit(SM_LIMIT_ENTRY_BYTES, 4096), SM_OK);
    sm_dataset *ds = NULL;
    /* 1000 bytes are allowed and read, then the entry goes on: damaged, not 8 MiB in memory */
    assert_int_equal(sm_dataset_open(zip, SIDE, SIDE, NULL, 0, &ds), SM_ERR_FORMAT);
    assert_null(ds);
    expect_message("zeros.png", NULL);
    free(zip);
}

static void test_folder_png_over_entry_limit(void **state)
{
    const char *dir = *state;
    write_png(dir, "A/c1/1.png", 1);
    write_png(dir, "A/c2/1.png", 2);
    char *p = fx_join(dir, "A/c1/1.png");
    size_t size = 0;
    free(fx_read_bytes(p, &size));
    assert_int_equal(sm_set_limit(SM_LIMIT_ENTRY_BYTES, size - 1), SM_OK);
    sm_dataset *ds = NULL;
    float px[SIDE * SIDE];
    assert_int_equal(sm_dataset_open(dir, SIDE, SIDE, NULL, 0, &ds), SM_ERR_LIMIT);
    expect_message("1.png", "SM_LIMIT_ENTRY_BYTES", NULL);
    assert_int_equal(sm_image_read_png(p, SIDE, SIDE, px), SM_ERR_LIMIT);
    expect_message(p, "sm_set_limit(SM_LIMIT_ENTRY_BYTES)", NULL);
    assert_int_equal(sm_set_limit(SM_LIMIT_ENTRY_BYTES, size), SM_OK);
    assert_int_equal(sm_image_read_png(p, SIDE, SIDE, px), SM_OK);
    assert_int_equal(sm_dataset_open(dir, SIDE, SIDE, NULL, 0, &ds), SM_OK);
    sm_dataset_destroy(ds);
    free(p);
}

/* ---------------------------------------------------------------- SM_LIMIT_IMAGE_SIDE */

/* A PNG whose IHDR claims w x h, 8-bit grey, with one tiny IDAT: the header is valid (CRCs
 * right), the pixels are not there. */
static size_t huge_png(uint8_t *out, uint32_t w, uint32_t h)
{
    static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    memcpy(out, sig, 8);
    size_t n = 8;
    uint8_t ihdr[13] = {0};
    put_be32(ihdr, w);
    put_be32(ihdr + 4, h);
    ihdr[8] = 8; /* depth 8, colour 0 (grey), compression 0, filter 0, no interlace */
    put_chunk(out, &n, "IHDR", ihdr, 13);
    uint8_t raw[2] = {0, 0}, z[64];
    uLongf zn = sizeof z;
    assert_int_equal(compress(z, &zn, raw, sizeof raw), Z_OK);
    put_chunk(out, &n, "IDAT", z, (uint32_t)zn);
    put_chunk(out, &n, "IEND", NULL, 0);
    return n;
}

static void test_png_header_claims_huge_image(void **state)
{
    char *p = path_in(state, "huge.png");
    uint8_t buf[256];
    size_t n = huge_png(buf, 100000, 100000);
    assert_int_equal(fx_write_bytes(p, buf, n), 0);
    float px[SIDE * SIDE];
    assert_int_equal(sm_image_read_png(p, SIDE, SIDE, px), SM_ERR_LIMIT);
    expect_message(p, "100000x100000", "4096", "sm_set_limit(SM_LIMIT_IMAGE_SIDE)", NULL);
    /* raised: the header passes and the file is judged for what it is, not the expected size */
    assert_int_equal(sm_set_limit(SM_LIMIT_IMAGE_SIDE, 100000), SM_OK);
    assert_int_equal(sm_image_read_png(p, SIDE, SIDE, px), SM_ERR_SHAPE);
    free(p);
}

static void test_png_side_limit_on_valid_image(void **state)
{
    const char *dir = *state;
    write_png(dir, "A/c1/1.png", 1);
    write_png(dir, "A/c2/1.png", 2);
    assert_int_equal(sm_set_limit(SM_LIMIT_IMAGE_SIDE, SIDE - 1), SM_OK);
    sm_dataset *ds = NULL;
    assert_int_equal(sm_dataset_open(dir, SIDE, SIDE, NULL, 0, &ds), SM_ERR_LIMIT);
    expect_message("1.png", "8x8", "SM_LIMIT_IMAGE_SIDE", NULL);
    assert_int_equal(sm_set_limit(SM_LIMIT_IMAGE_SIDE, SIDE), SM_OK);
    assert_int_equal(sm_dataset_open(dir, SIDE, SIDE, NULL, 0, &ds), SM_OK);
    assert_int_equal(sm_dataset_num_images(ds), 2);
    sm_dataset_destroy(ds);
}

/* ---------------------------------------------------------------- SM_LIMIT_FILE_BYTES */

static void save_small_model(const char *path)
{
    sm_backend *be = NULL;
    sm_arch *a = NULL;
    sm_subnet *s = NULL;
    sm_head *h = NULL;
    assert_int_equal(sm_backend_create(SM_BACKEND_CPU, &be), SM_OK);
    assert_int_equal(sm_arch_from_string("1x6x6:conv2k3,relu,flatten,fc4", &a), SM_OK);
    assert_int_equal(sm_subnet_create(be, a, 1, &s), SM_OK);
    assert_int_equal(sm_head_create(be, sm_subnet_feature_dim(s), 2, &h), SM_OK);
    assert_int_equal(sm_model_save(s, h, path), SM_OK);
    sm_head_destroy(h);
    sm_subnet_destroy(s);
    sm_arch_destroy(a);
    sm_backend_destroy(be);
}

static sm_status load(const char *path)
{
    sm_backend *be = NULL;
    sm_subnet *s = NULL;
    sm_head *h = NULL;
    assert_int_equal(sm_backend_create(SM_BACKEND_CPU, &be), SM_OK);
    sm_status st = sm_model_load(be, path, &s, &h);
    if (st == SM_OK) {
        assert_non_null(s);
        assert_non_null(h);
    } else {
        assert_null(s);
        assert_null(h);
    }
    sm_head_destroy(h);
    sm_subnet_destroy(s);
    sm_backend_destroy(be);
    return st;
}

static void test_checkpoint_over_file_limit(void **state)
{
    char *p = path_in(state, "model.safetensors");
    save_small_model(p);
    size_t size = 0;
    free(fx_read_bytes(p, &size));
    assert_int_equal(sm_set_limit(SM_LIMIT_FILE_BYTES, 100), SM_OK);
    assert_int_equal(load(p), SM_ERR_LIMIT);
    char claimed[32];
    snprintf(claimed, sizeof claimed, "%zu bytes", size);
    expect_message(p, claimed, "100", "sm_set_limit(SM_LIMIT_FILE_BYTES)", NULL);
    assert_int_equal(sm_set_limit(SM_LIMIT_FILE_BYTES, size), SM_OK);
    assert_int_equal(load(p), SM_OK);
    free(p);
}

static void test_checkpoint_header_claims_terabytes(void **state)
{
    char *p = path_in(state, "huge-header.safetensors");
    uint8_t buf[16] = {0};
    uint64_t claim = (uint64_t)4 << 40; /* 4 TiB of JSON header */
    for (int i = 0; i < 8; i++) buf[i] = (uint8_t)(claim >> (8 * i));
    memcpy(buf + 8, "{}      ", 8);
    assert_int_equal(fx_write_bytes(p, buf, sizeof buf), 0);
    assert_int_equal(load(p), SM_ERR_LIMIT);
    expect_message(p, "4398046511104", NULL);
    /* every byte of 0xff: the largest length there is */
    memset(buf, 0xff, 8);
    assert_int_equal(fx_write_bytes(p, buf, sizeof buf), 0);
    assert_int_equal(load(p), SM_ERR_LIMIT);
    free(p);
}

/* ---------------------------------------------------------------- SM_LIMIT_DATASET_BYTES */

/* Two alphabets of two classes with `per_class` images each, in a folder. */
static void write_tree(const char *dir, int per_class)
{
    static const char *const classes[] = {"A/c1", "A/c2", "B/c1", "B/c2"};
    char rel[64];
    for (int c = 0; c < 4; c++)
        for (int i = 0; i < per_class; i++) {
            snprintf(rel, sizeof rel, "%s/%02d.png", classes[c], i);
            write_png(dir, rel, (unsigned)(c * 100 + i));
        }
}

static void test_dataset_over_limit(void **state)
{
    char *dir = path_in(state, "tree"), *zip = path_in(state, "tree.zip");
    write_tree(dir, 3); /* 12 images of 64 bytes */
    assert_int_equal(fx_zip_tree(dir, zip, "", 0, 0), 0);
    const char *paths[2] = {dir, zip};
    for (int k = 0; k < 2; k++) {
        sm_dataset *ds = NULL;
        assert_int_equal(sm_set_limit(SM_LIMIT_DATASET_BYTES, 11 * SIDE * SIDE), SM_OK);
        assert_int_equal(sm_dataset_open(paths[k], SIDE, SIDE, NULL, 0, &ds), SM_ERR_LIMIT);
        assert_null(ds);
        expect_message(paths[k], "12 images", "704", "sm_set_limit(SM_LIMIT_DATASET_BYTES)", NULL);
        /* one alphabet (6 images) fits: only selected images count */
        const char *alpha[1] = {"B"};
        assert_int_equal(sm_dataset_open(paths[k], SIDE, SIDE, alpha, 1, &ds), SM_OK);
        assert_int_equal(sm_dataset_num_images(ds), 6);
        sm_dataset_destroy(ds);
        ds = NULL;
        assert_int_equal(sm_set_limit(SM_LIMIT_DATASET_BYTES, 12 * SIDE * SIDE), SM_OK);
        assert_int_equal(sm_dataset_open(paths[k], SIDE, SIDE, NULL, 0, &ds), SM_OK);
        assert_int_equal(sm_dataset_num_images(ds), 12);
        sm_dataset_destroy(ds);
    }
    free(zip);
    free(dir);
}

/* A zip listing far more images than the limit allows is refused while it is listed, before a
 * per-image structure exists for each (nor any image is decoded). */
static void test_zip_with_many_entries(void **state)
{
    char *zip = path_in(state, "many.zip");
    enum { N = 400 };
    char *dir = path_in(state, "many");
    uint8_t grey[SIDE * SIDE];
    fx_pattern(grey, SIDE, SIDE, 9);
    size_t pn = 0;
    uint8_t *png = fx_encode_png(SIDE, SIDE, FX_GREY, 8, grey, &pn);
    assert_non_null(png);
    char name[64];
    for (int i = 0; i < N; i++) {
        snprintf(name, sizeof name, "A/c%d/%03d.png", i % 2, i);
        char *p = fx_join(dir, name);
        assert_int_equal(fx_write_bytes(p, png, pn), 0);
        free(p);
    }
    free(png);
    assert_int_equal(fx_zip_tree(dir, zip, "", 0, 1), 0);
    assert_int_equal(sm_set_limit(SM_LIMIT_DATASET_BYTES, 10 * SIDE * SIDE), SM_OK);
    sm_dataset *ds = NULL;
    long before = sm__alloc_count();
    assert_int_equal(sm_dataset_open(zip, SIDE, SIDE, NULL, 0, &ds), SM_ERR_LIMIT);
    long allocs = sm__alloc_count() - before;
    expect_message(zip, "at least 11 images", "SM_LIMIT_DATASET_BYTES", NULL);
    assert_true(allocs < N / 4); /* listing all would take two per entry */
    assert_int_equal(sm_set_limit(SM_LIMIT_DATASET_BYTES, N * SIDE * SIDE), SM_OK);
    assert_int_equal(sm_dataset_open(zip, SIDE, SIDE, NULL, 0, &ds), SM_OK);
    assert_int_equal(sm_dataset_num_images(ds), N);
    sm_dataset_destroy(ds);
    free(dir);
    free(zip);
}

static void test_in_memory_dataset_over_limit(void **state)
{
    (void)state;
    sm_dataset *ds = NULL;
    float px[SIDE * SIDE];
    for (int i = 0; i < SIDE * SIDE; i++) px[i] = 0.5f;
    assert_int_equal(sm_set_limit(SM_LIMIT_DATASET_BYTES, 3 * SIDE * SIDE), SM_OK);
    assert_int_equal(sm_dataset_create(SIDE, SIDE, &ds), SM_OK);
    for (int i = 0; i < 3; i++) assert_int_equal(sm_dataset_add_image(ds, "A/x", px), SM_OK);
    assert_int_equal(sm_dataset_add_image(ds, "A/x", px), SM_ERR_LIMIT);
    expect_message("SM_LIMIT_DATASET_BYTES", NULL);
    assert_int_equal(sm_dataset_num_images(ds), 3);
    assert_int_equal(sm_set_limit(SM_LIMIT_DATASET_BYTES, 4 * SIDE * SIDE), SM_OK);
    assert_int_equal(sm_dataset_add_image(ds, "A/x", px), SM_OK);
    assert_int_equal(sm_dataset_num_images(ds), 4);
    sm_dataset_destroy(ds);
    assert_int_equal(sm_set_limit(SM_LIMIT_DATASET_BYTES, 1), SM_OK);
    assert_int_equal(sm_dataset_create_synthetic(2, 2, 16, 16, 1, &ds), SM_ERR_LIMIT);
}

static void test_limit_api(void **state)
{
    (void)state;
    assert_int_equal(sm_get_limit(SM_LIMIT_FILE_BYTES), (uint64_t)16 << 30);
    assert_int_equal(sm_get_limit(SM_LIMIT_ENTRY_BYTES), (uint64_t)64 << 20);
    assert_int_equal(sm_get_limit(SM_LIMIT_DATASET_BYTES), (uint64_t)16 << 30);
    assert_int_equal(sm_get_limit(SM_LIMIT_IMAGE_SIDE), 4096);
    assert_int_equal(sm_set_limit(SM_LIMIT_IMAGE_SIDE, 0), SM_ERR_INVALID_ARG);
    assert_int_equal(sm_set_limit((sm_limit)99, 5), SM_ERR_INVALID_ARG);
    assert_int_equal(sm_get_limit((sm_limit)0), 0);
}

int main(void)
{
    for (int i = 0; i < 4; i++) defaults[i] = sm_get_limit(ALL[i]);
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_limit_api),
        T(test_zip_bomb),
        T(test_zip_entry_lies_about_its_size),
        T(test_folder_png_over_entry_limit),
        T(test_png_header_claims_huge_image),
        T(test_png_side_limit_on_valid_image),
        T(test_checkpoint_over_file_limit),
        T(test_checkpoint_header_claims_terabytes),
        T(test_dataset_over_limit),
        T(test_zip_with_many_entries),
        T(test_in_memory_dataset_over_limit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
