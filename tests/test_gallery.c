/* SPDX-License-Identifier: MIT */
/* Galleries (include/siamese/gallery.h): enrolment and removal, identification against the
 * scores of sm_predict_pair (a label's score the mean over its examples), ties reported as ties,
 * verification at a threshold, files (round trip, another model, damage), folders and zips of
 * PNGs of any size and colour, the statuses of bad input, and non-finite feature vectors, queries
 * and models refused. Tiny models: a few seconds. */
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
#include "network/network.h"
#include "siamese/siamese.h"

enum { S = 12, PX = S * S };
#define ARCH "1x12x12:flatten,fc8"

typedef struct model {
    sm_backend *be;
    sm_subnet *sub;
    sm_head *head;
} model;

static void model_open(model *m, uint64_t seed)
{
    sm_arch *arch;
    assert_int_equal(sm_backend_create(SM_BACKEND_CPU, &m->be), SM_OK);
    sm_backend_set_threads(m->be, 1);
    assert_int_equal(sm_arch_from_string(ARCH, &arch), SM_OK);
    assert_int_equal(sm_subnet_create(m->be, arch, seed, &m->sub), SM_OK);
    sm_arch_destroy(arch);
    assert_int_equal(sm_head_create(m->be, sm_subnet_feature_dim(m->sub), seed + 1, &m->head),
                     SM_OK);
    /* weights large enough for features and scores to differ visibly */
    size_t np = sm_subnet_num_params(m->sub);
    float *w = malloc(np * sizeof *w);
    uint32_t r = (uint32_t)seed * 2654435761u + 1;
    for (size_t i = 0; i < np; i++) {
        r = r * 1664525u + 1013904223u;
        w[i] = ((float)(r >> 8) / 16777216.0f - 0.5f) * 0.6f;
    }
    assert_int_equal(sm__subnet_write_params(m->sub, w), SM_OK);
    free(w);
    size_t d = sm_head_feature_dim(m->head);
    float p[9];
    for (size_t i = 0; i < d; i++) p[i] = -5.0f - 0.1f * (float)i;
    p[d] = 2.0f;
    assert_int_equal(sm__head_write_params(m->head, p), SM_OK);
}

static void model_close(model *m)
{
    sm_head_destroy(m->head);
    sm_subnet_destroy(m->sub);
    sm_backend_destroy(m->be);
}

/* n synthetic images: class c's images are i = c * per ... */
static float *images(sm_dataset *ds, size_t first, size_t n)
{
    float *x = malloc(n * PX * sizeof *x);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(sm_dataset_get_image(ds, first + i, x + i * PX), SM_OK);
    return x;
}

/* 5 labels x 3 examples from a synthetic set (image i of class i / 4; the 4th is a query). */
static sm_gallery *gallery_of(model *m, sm_dataset *ds)
{
    sm_gallery *g;
    assert_int_equal(sm_gallery_create(m->sub, m->head, &g), SM_OK);
    for (int c = 0; c < 5; c++) {
        char label[32];
        snprintf(label, sizeof label, "alpha/char%02d", c);
        float *x = images(ds, (size_t)c * 4, 3);
        assert_int_equal(sm_gallery_enrol(g, label, 3, x), SM_OK);
        free(x);
    }
    return g;
}

static void test_identify_matches_pairs(void **state)
{
    (void)state;
    model m;
    model_open(&m, 3);
    sm_dataset *ds;
    assert_int_equal(sm_dataset_create_synthetic(5, 4, S, S, 7, &ds), SM_OK);
    sm_gallery *g = gallery_of(&m, ds);
    assert_int_equal(sm_gallery_num_examples(g), 15);
    assert_int_equal(sm_gallery_num_labels(g), 5);
    assert_string_equal(sm_gallery_label_name(g, 2), "alpha/char02");
    assert_int_equal(sm_gallery_label_examples(g, 2), 3);
    assert_int_equal(sm_gallery_find_label(g, "alpha/char04"), 4);
    assert_true(sm_gallery_find_label(g, "nope") == SIZE_MAX);
    assert_true(sm_gallery_bytes_per_example(g) > 8 * sizeof(float));

    /* the 5 queries (each class's 4th image) */
    float *q = malloc(5 * PX * sizeof *q);
    for (int c = 0; c < 5; c++)
        assert_int_equal(sm_dataset_get_image(ds, (size_t)c * 4 + 3, q + c * PX), SM_OK);
    sm_gallery_match mt[5 * 5];
    size_t found = 0;
    assert_int_equal(sm_gallery_identify(g, 5, q, 5, mt, &found), SM_OK);
    assert_int_equal(found, 5);
    for (int c = 0; c < 5; c++) {
        /* the label scores by hand: mean of sm_predict_pair over the 3 examples */
        double want[5];
        for (int l = 0; l < 5; l++) {
            double sum = 0;
            for (int j = 0; j < 3; j++) {
                float e[PX], s;
                assert_int_equal(sm_dataset_get_image(ds, (size_t)l * 4 + j, e), SM_OK);
                assert_int_equal(sm_predict_pair(m.sub, m.head, q + c * PX, e, &s), SM_OK);
                sum += s;
            }
            want[l] = sum / 3;
        }
        const sm_gallery_match *r = mt + c * 5;
        for (int i = 0; i < 5; i++) {
            assert_true(fabs(r[i].score - want[r[i].label]) < 1e-5);
            if (i) assert_true(r[i].score <= r[i - 1].score);
            assert_int_equal(r[i].tied, 1);
            assert_int_equal(r[i].rank, (size_t)i + 1);
        }
        /* a batch of one gives what the batch of five gave (up to the float rounding of the
         * embedding's GEMM at another batch size) */
        sm_gallery_match one[2];
        assert_int_equal(sm_gallery_identify(g, 1, q + c * PX, 2, one, NULL), SM_OK);
        assert_int_equal(one[0].label, r[0].label);
        assert_true(fabs(one[0].score - r[0].score) < 1e-6 &&
                    fabs(one[1].score - r[1].score) < 1e-6);
        /* verification: the same score, accepted at or below it */
        double vs;
        int acc;
        const char *name = sm_gallery_label_name(g, r[0].label);
        assert_int_equal(sm_gallery_verify(g, name, q + c * PX, r[0].score, &vs, &acc), SM_OK);
        assert_true(fabs(vs - r[0].score) < 1e-6);
        assert_int_equal(sm_gallery_verify(g, name, q + c * PX, vs, NULL, &acc), SM_OK);
        assert_int_equal(acc, 1);
        if (vs < 1.0) {
            assert_int_equal(sm_gallery_verify(g, name, q + c * PX, 1.0, NULL, &acc), SM_OK);
            assert_int_equal(acc, 0);
        }
    }
    /* features in, the same answer */
    float f[8];
    sm_gallery_match viaf[1];
    assert_int_equal(sm_embed(m.sub, 1, q, f), SM_OK);
    assert_int_equal(sm_gallery_identify_embeddings(g, 1, f, 1, viaf, NULL), SM_OK);
    assert_true(viaf[0].label == mt[0].label && fabs(viaf[0].score - mt[0].score) < 1e-6);

    /* removal: the label and its examples go, others keep their scores */
    size_t removed = 9;
    assert_int_equal(sm_gallery_remove(g, "alpha/char01", &removed), SM_OK);
    assert_int_equal(removed, 3);
    assert_int_equal(sm_gallery_num_examples(g), 12);
    assert_int_equal(sm_gallery_num_labels(g), 4);
    assert_string_equal(sm_gallery_label_name(g, 1), "alpha/char02");
    assert_int_equal(sm_gallery_remove(g, "alpha/char01", &removed), SM_OK);
    assert_int_equal(removed, 0);
    sm_gallery_match after[4];
    assert_int_equal(sm_gallery_identify(g, 1, q + 2 * PX, 4, after, &found), SM_OK);
    assert_int_equal(found, 4);
    for (int i = 0; i < 4; i++) {
        size_t old = after[i].label >= 1 ? after[i].label + 1 : after[i].label;
        int seen = 0;
        for (int k = 0; k < 5; k++)
            if (mt[2 * 5 + k].label == old) {
                assert_true(fabs(mt[2 * 5 + k].score - after[i].score) < 1e-6);
                seen = 1;
            }
        assert_true(seen);
    }
    /* re-enrolling adds to the end */
    float *x = images(ds, 4, 1);
    assert_int_equal(sm_gallery_enrol(g, "alpha/char01", 1, x), SM_OK);
    assert_int_equal(sm_gallery_find_label(g, "alpha/char01"), 4);
    free(x);
    free(q);
    sm_gallery_destroy(g);
    sm_dataset_destroy(ds);
    model_close(&m);
}

static void test_ties(void **state)
{
    (void)state;
    model m;
    model_open(&m, 5);
    /* a constant model: w = 0, every score sigmoid(b); every label ties */
    float p[9] = {0};
    p[8] = 0.3f;
    assert_int_equal(sm__head_write_params(m.head, p), SM_OK);
    sm_dataset *ds;
    assert_int_equal(sm_dataset_create_synthetic(5, 4, S, S, 7, &ds), SM_OK);
    sm_gallery *g = gallery_of(&m, ds);
    float *q = images(ds, 3, 1);
    sm_gallery_match mt[3];
    assert_int_equal(sm_gallery_identify(g, 1, q, 3, mt, NULL), SM_OK);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(mt[i].rank, 1);
        assert_int_equal(mt[i].tied, 5);
        assert_int_equal(mt[i].label, (size_t)i); /* listed by name within the tie */
        assert_int_equal(mt[i].reserved[0], 0);
    }
    /* two identical labels of features: a tie for first, then the rest */
    sm_gallery *h;
    assert_int_equal(sm_gallery_create(m.sub, m.head, &h), SM_OK);
    float a[8], b[8];
    for (int i = 0; i < 8; i++) a[i] = 0.25f, b[i] = 0.75f;
    float w[9];
    for (int i = 0; i < 8; i++) w[i] = -1.0f;
    w[8] = 0;
    assert_int_equal(sm__head_write_params(m.head, w), SM_OK);
    assert_int_equal(sm_gallery_enrol_embeddings(h, "zeta", 1, a), SM_OK);
    assert_int_equal(sm_gallery_enrol_embeddings(h, "beta", 1, b), SM_OK);
    assert_int_equal(sm_gallery_enrol_embeddings(h, "alpha", 1, a), SM_OK);
    assert_int_equal(sm_gallery_identify_embeddings(h, 1, a, 2, mt, NULL), SM_OK);
    assert_string_equal(sm_gallery_label_name(h, mt[0].label), "alpha");
    assert_string_equal(sm_gallery_label_name(h, mt[1].label), "zeta");
    assert_true(mt[0].rank == 1 && mt[1].rank == 1 && mt[0].tied == 2 && mt[1].tied == 2);
    assert_int_equal(sm_gallery_identify_embeddings(h, 1, a, 3, mt, NULL), SM_OK);
    assert_true(mt[2].rank == 3 && mt[2].tied == 1);
    /* k = 1 on a tie: the one listed says it shares first place with another */
    assert_int_equal(sm_gallery_identify_embeddings(h, 1, a, 1, mt, NULL), SM_OK);
    assert_true(mt[0].rank == 1 && mt[0].tied == 2);
    sm_gallery_destroy(h);
    free(q);
    sm_gallery_destroy(g);
    sm_dataset_destroy(ds);
    model_close(&m);
}

static void test_bad_input(void **state)
{
    (void)state;
    model m;
    model_open(&m, 3);
    sm_gallery *g;
    assert_int_equal(sm_gallery_create(m.sub, m.head, &g), SM_OK);
    float img[PX];
    for (int i = 0; i < PX; i++) img[i] = 0.5f;
    sm_gallery_match mt[1];
    assert_int_equal(sm_gallery_identify(g, 1, img, 1, mt, NULL), SM_ERR_STATE);
    assert_non_null(strstr(sm_last_error(), "empty"));
    char long_label[SM_GALLERY_MAX_LABEL + 2];
    memset(long_label, 'a', sizeof long_label - 1);
    long_label[sizeof long_label - 1] = 0;
    assert_int_equal(sm_gallery_enrol(g, long_label, 1, img), SM_ERR_LIMIT);
    long_label[SM_GALLERY_MAX_LABEL] = 0;
    assert_int_equal(sm_gallery_enrol(g, long_label, 1, img), SM_OK);
    assert_int_equal(sm_gallery_enrol(g, "bad\xff", 1, img), SM_ERR_INVALID_ARG);
    assert_int_equal(sm_gallery_enrol(g, "\xc0\xaf", 1, img), SM_ERR_INVALID_ARG); /* overlong */
    assert_int_equal(sm_gallery_enrol(g, "", 1, img), SM_ERR_INVALID_ARG);
    assert_int_equal(sm_gallery_enrol(g, "x", 0, img), SM_ERR_INVALID_ARG);
    assert_int_equal(sm_gallery_enrol(g, "caf\xc3\xa9", 1, img), SM_OK);
    img[7] = 1.5f;
    assert_int_equal(sm_gallery_enrol(g, "x", 1, img), SM_ERR_INVALID_ARG);
    assert_non_null(strstr(sm_last_error(), "pixel 7"));
    img[7] = NAN;
    assert_int_equal(sm_gallery_identify(g, 1, img, 1, mt, NULL), SM_ERR_INVALID_ARG);
    img[7] = 0.5f;
    float f[8] = {0, 0, 0, 2.0f, 0, 0, 0, 0};
    assert_int_equal(sm_gallery_enrol_embeddings(g, "x", 1, f), SM_ERR_INVALID_ARG);
    assert_int_equal(sm_gallery_num_examples(g), 2);
    assert_int_equal(sm_gallery_verify(g, "nope", img, 0.5, NULL, NULL), SM_ERR_INVALID_ARG);
    assert_int_equal(sm_gallery_verify(g, "caf\xc3\xa9", img, 1.5, NULL, NULL), SM_ERR_INVALID_ARG);
    assert_int_equal(sm_gallery_verify(g, "caf\xc3\xa9", img, NAN, NULL, NULL), SM_ERR_INVALID_ARG);
    assert_int_equal(sm_gallery_identify(g, 1, img, 0, mt, NULL), SM_ERR_INVALID_ARG);
    assert_int_equal(sm_gallery_identify(NULL, 1, img, 1, mt, NULL), SM_ERR_INVALID_ARG);
    assert_int_equal(sm_gallery_create(NULL, m.head, &g), SM_ERR_INVALID_ARG);
    sm_gallery_destroy(NULL);
    assert_int_equal(sm_gallery_num_labels(NULL), 0);
    sm_gallery_destroy(g);
    model_close(&m);
}

static void identify_all(sm_gallery *g, const float *q, sm_gallery_match *mt)
{
    assert_int_equal(sm_gallery_identify(g, 5, q, 3, mt, NULL), SM_OK);
}

static void test_files(void **state)
{
    (void)state;
    model m, other;
    model_open(&m, 3);
    model_open(&other, 11);
    char *dir = fx_tempdir();
    char *path = fx_join(dir, "g.gallery");
    sm_dataset *ds;
    assert_int_equal(sm_dataset_create_synthetic(5, 4, S, S, 7, &ds), SM_OK);
    sm_gallery *g = gallery_of(&m, ds), *back = NULL;
    float *extra = images(ds, 19, 1);
    assert_int_equal(sm_gallery_enrol(g, "alpha/char00", 1, extra), SM_OK);
    free(extra);
    assert_int_equal(sm_gallery_save(g, path), SM_OK);
    assert_int_equal(sm_gallery_load(m.sub, m.head, path, &back), SM_OK);
    assert_int_equal(sm_gallery_num_examples(back), 16);
    assert_int_equal(sm_gallery_num_labels(back), 5);
    for (size_t l = 0; l < 5; l++) {
        assert_string_equal(sm_gallery_label_name(back, l), sm_gallery_label_name(g, l));
        assert_int_equal(sm_gallery_label_examples(back, l), sm_gallery_label_examples(g, l));
    }
    float *q = images(ds, 0, 5);
    sm_gallery_match a[15], b[15];
    identify_all(g, q, a);
    identify_all(back, q, b);
    for (int i = 0; i < 15; i++)
        assert_true(a[i].label == b[i].label && a[i].score == b[i].score && a[i].rank == b[i].rank);
    sm_gallery_destroy(back);

    /* another model: refused, whatever its shapes */
    back = NULL;
    assert_int_equal(sm_gallery_load(other.sub, other.head, path, &back), SM_ERR_SHAPE);
    assert_null(back);
    assert_non_null(strstr(sm_last_error(), "another model"));
    /* damage: every 97th byte flipped in turn, the file cut short */
    size_t n = 0;
    uint8_t *bytes = fx_read_bytes(path, &n);
    char *bad = fx_join(dir, "bad.gallery");
    for (size_t i = 0; i < n; i += 97) {
        bytes[i] ^= 0x20;
        assert_int_equal(fx_write_bytes(bad, bytes, n), 0);
        sm_status st = sm_gallery_load(m.sub, m.head, bad, &back);
        assert_true(st == SM_ERR_FORMAT || st == SM_ERR_LIMIT || st == SM_ERR_VERSION);
        assert_true(sm_last_error()[0] != 0);
        bytes[i] ^= 0x20;
    }
    assert_int_equal(fx_write_bytes(bad, bytes, n - 5), 0);
    assert_int_equal(sm_gallery_load(m.sub, m.head, bad, &back), SM_ERR_FORMAT);
    /* a model file is not a gallery */
    assert_int_equal(sm_model_save(m.sub, m.head, bad), SM_OK);
    assert_int_equal(sm_gallery_load(m.sub, m.head, bad, &back), SM_ERR_FORMAT);
    assert_non_null(strstr(sm_last_error(), "not a libsiamese gallery"));
    assert_int_equal(sm_gallery_load(m.sub, m.head, "/nonexistent/x.gallery", &back), SM_ERR_IO);
    /* an empty gallery saves and loads */
    sm_gallery *e;
    assert_int_equal(sm_gallery_create(m.sub, m.head, &e), SM_OK);
    assert_int_equal(sm_gallery_save(e, bad), SM_OK);
    sm_gallery_destroy(e);
    assert_int_equal(sm_gallery_load(m.sub, m.head, bad, &e), SM_OK);
    assert_int_equal(sm_gallery_num_examples(e), 0);
    sm_gallery_destroy(e);
    /* a save that cannot happen leaves the old file */
    assert_int_equal(sm_gallery_save(g, "/nonexistent/dir/x.gallery"), SM_ERR_IO);

    free(bytes);
    free(bad);
    free(q);
    sm_gallery_destroy(g);
    sm_dataset_destroy(ds);
    fx_rmtree(dir);
    free(path);
    free(dir);
    model_close(&other);
    model_close(&m);
}

static void test_enrol_path(void **state)
{
    (void)state;
    model m;
    model_open(&m, 3);
    char *dir = fx_tempdir();
    char *root = fx_join(dir, "tree");
    uint8_t grey[40 * 30];
    struct {
        const char *rel;
        int w, h, color;
    } files[] = {
        {"Latin/a/1.png", S, S, FX_GREY},
        {"Latin/a/2.png", 40, 30, FX_RGB},
        {"Latin/b/1.png", S, S, FX_GREY_ALPHA},
        {"solo/x.png", 20, 20, FX_GREY},
        {"top.png", S, S, FX_GREY}, /* at the top: no label, ignored */
    };
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        char *p = fx_join(root, files[i].rel);
        fx_pattern(grey, files[i].w, files[i].h, (unsigned)i);
        assert_int_equal(fx_write_png(p, files[i].w, files[i].h, files[i].color, 8, grey), 0);
        free(p);
    }
    char *readme = fx_join(root, "Latin/notes.txt");
    assert_int_equal(fx_write_bytes(readme, "x", 1), 0);
    sm_gallery *g;
    assert_int_equal(sm_gallery_create(m.sub, m.head, &g), SM_OK);
    size_t n = 0;
    assert_int_equal(sm_gallery_enrol_path(g, root, &n), SM_OK);
    assert_int_equal(n, 4);
    assert_int_equal(sm_gallery_num_labels(g), 3);
    assert_string_equal(sm_gallery_label_name(g, 0), "Latin/a");
    assert_int_equal(sm_gallery_label_examples(g, 0), 2);
    assert_string_equal(sm_gallery_label_name(g, 1), "Latin/b");
    assert_string_equal(sm_gallery_label_name(g, 2), "solo");
    /* the same through a zip (one folder deeper: the label is still the last two folders) */
    char *zip = fx_join(dir, "t.zip");
    assert_int_equal(fx_zip_tree(root, zip, "images_background/", 0, 0), 0);
    sm_gallery *z;
    assert_int_equal(sm_gallery_create(m.sub, m.head, &z), SM_OK);
    assert_int_equal(sm_gallery_enrol_path(z, zip, &n), SM_OK);
    assert_int_equal(n, 5); /* top.png is now in a folder: label "images_background" */
    assert_string_equal(sm_gallery_label_name(z, 0), "Latin/a");
    assert_string_equal(sm_gallery_label_name(z, 2), "images_background/solo");
    assert_string_equal(sm_gallery_label_name(z, 3), "images_background");
    /* the image of "solo" read by sm_image_load_png identifies as solo */
    float img[PX];
    char *solo = fx_join(root, "solo/x.png");
    assert_int_equal(sm_image_load_png(solo, S, S, img), SM_OK);
    sm_gallery_match mt[1];
    assert_int_equal(sm_gallery_identify(g, 1, img, 1, mt, NULL), SM_OK);
    assert_string_equal(sm_gallery_label_name(g, mt[0].label), "solo");
    assert_true(mt[0].tied == 1);
    /* a damaged PNG: refused naming it, the gallery as it was */
    char *broken = fx_join(root, "Latin/c/1.png");
    assert_int_equal(fx_write_truncated_png(broken, S, S), 0);
    assert_int_equal(sm_gallery_enrol_path(g, root, &n), SM_ERR_FORMAT);
    assert_non_null(strstr(sm_last_error(), "1.png"));
    assert_int_equal(sm_gallery_num_examples(g), 4);
    assert_int_equal(sm_gallery_num_labels(g), 3);
    /* nothing to enrol */
    char *empty = fx_join(dir, "empty");
    assert_int_equal(fx_mkdirs(empty), 0);
    assert_int_equal(sm_gallery_enrol_path(g, empty, &n), SM_ERR_DATASET);
    assert_int_equal(sm_gallery_enrol_path(g, "/nonexistent/x", &n), SM_ERR_IO);
    sm_gallery_destroy(z);
    sm_gallery_destroy(g);
    fx_rmtree(dir);
    free(empty), free(broken), free(solo), free(zip), free(readme), free(root), free(dir);
    model_close(&m);
}

/* Feature vectors outside [0, 1], NaN and infinities included, are refused whole: a NaN row
 * scores NaN, which compares false and so blocks better labels from the top k, and a gallery
 * holding one saves to a file its loader refuses. */
static void test_nonfinite_embeddings(void **state)
{
    (void)state;
    model m;
    model_open(&m, 3);
    char *dir = fx_tempdir();
    char *path = fx_join(dir, "g.gallery");
    sm_gallery *g, *back = NULL;
    assert_int_equal(sm_gallery_create(m.sub, m.head, &g), SM_OK);
    float lo[8], hi[3 * 8];
    for (int i = 0; i < 8; i++) lo[i] = 0.1f;
    for (int r = 0; r < 3; r++)
        for (int i = 0; i < 8; i++) hi[r * 8 + i] = 0.9f - 0.01f * (float)r;
    assert_int_equal(sm_gallery_enrol_embeddings(g, "low", 1, lo), SM_OK);
    const float bad[] = {NAN, INFINITY, -INFINITY};
    for (size_t v = 0; v < sizeof bad / sizeof *bad; v++) {
        float rows[3 * 8];
        memcpy(rows, hi, sizeof rows);
        rows[1 * 8 + 5] = bad[v]; /* row 2 of 3 */
        /* a new label and an enrolled one: neither gains a row, the first included */
        assert_int_equal(sm_gallery_enrol_embeddings(g, "high", 3, rows), SM_ERR_INVALID_ARG);
        assert_non_null(strstr(sm_last_error(), "feature vector 1 "));
        assert_int_equal(sm_gallery_enrol_embeddings(g, "low", 3, rows), SM_ERR_INVALID_ARG);
        assert_int_equal(sm_gallery_num_examples(g), 1);
        assert_int_equal(sm_gallery_num_labels(g), 1);
        assert_int_equal(sm_gallery_label_examples(g, 0), 1);
        assert_true(sm_gallery_find_label(g, "high") == SIZE_MAX);
    }
    /* the good rows afterwards: enrolled, found, saved and loaded */
    assert_int_equal(sm_gallery_enrol_embeddings(g, "high", 3, hi), SM_OK);
    assert_int_equal(sm_gallery_num_examples(g), 4);
    sm_gallery_match mt[2], again[2];
    assert_int_equal(sm_gallery_identify_embeddings(g, 1, hi, 2, mt, NULL), SM_OK);
    assert_string_equal(sm_gallery_label_name(g, mt[0].label), "high");
    assert_string_equal(sm_gallery_label_name(g, mt[1].label), "low");
    assert_true(mt[0].rank == 1 && mt[0].tied == 1 && mt[0].score > mt[1].score);
    /* a non-finite query: refused naming it, the caller's matches untouched */
    float q[2 * 8];
    memcpy(q, hi, sizeof q);
    for (size_t v = 0; v < sizeof bad / sizeof *bad; v++) {
        q[8 + 3] = bad[v];
        memset(again, 0x5a, sizeof again);
        assert_int_equal(sm_gallery_identify_embeddings(g, 2, q, 1, again, NULL),
                         SM_ERR_INVALID_ARG);
        assert_non_null(strstr(sm_last_error(), "query 1 "));
        assert_int_equal(again[0].rank, 0x5a5a5a5a5a5a5a5aull);
    }
    float img[PX];
    for (int i = 0; i < PX; i++) img[i] = 0.5f;
    img[9] = INFINITY;
    double score = -1;
    assert_int_equal(sm_gallery_identify(g, 1, img, 1, again, NULL), SM_ERR_INVALID_ARG);
    assert_int_equal(sm_gallery_verify(g, "high", img, 0.5, &score, NULL), SM_ERR_INVALID_ARG);
    img[9] = NAN;
    assert_int_equal(sm_gallery_verify(g, "high", img, 0.5, &score, NULL), SM_ERR_INVALID_ARG);
    assert_non_null(strstr(sm_last_error(), "pixel 9"));
    assert_true(score == -1);
    assert_int_equal(sm_gallery_save(g, path), SM_OK);
    assert_int_equal(sm_gallery_load(m.sub, m.head, path, &back), SM_OK);
    assert_int_equal(sm_gallery_num_examples(back), 4);
    assert_int_equal(sm_gallery_identify_embeddings(back, 1, hi, 2, again, NULL), SM_OK);
    assert_true(again[0].label == mt[0].label && again[0].score == mt[0].score &&
                again[1].label == mt[1].label && again[1].score == mt[1].score);
    sm_gallery_destroy(back);
    sm_gallery_destroy(g);
    fx_rmtree(dir);
    free(path), free(dir);
    model_close(&m);
}

/* A model whose parameters are not finite embeds good images as NaN: enrolment from images or
 * from a folder is refused (SM_ERR_NUMERIC, the gallery unchanged, so it still saves to a file
 * that loads), and so are identification and verification, whether the subnet gives the query
 * a NaN feature vector or the head a NaN score. */
static void test_nonfinite_model(void **state)
{
    (void)state;
    model m;
    model_open(&m, 3);
    sm_dataset *ds;
    assert_int_equal(sm_dataset_create_synthetic(5, 4, S, S, 7, &ds), SM_OK);
    sm_gallery *g = gallery_of(&m, ds), *back = NULL;
    const size_t np = sm_subnet_num_params(m.sub);
    float *good = malloc(np * sizeof *good), *nan = malloc(np * sizeof *nan);
    assert_int_equal(sm__subnet_read_params(m.sub, good), SM_OK);
    for (size_t i = 0; i < np; i++) nan[i] = NAN;
    assert_int_equal(sm__subnet_write_params(m.sub, nan), SM_OK);

    float *x = images(ds, 0, 3);
    assert_int_equal(sm_gallery_enrol(g, "broken", 3, x), SM_ERR_NUMERIC);
    assert_non_null(strstr(sm_last_error(), "image 0 "));
    assert_int_equal(sm_gallery_enrol(g, "alpha/char00", 3, x), SM_ERR_NUMERIC);
    assert_int_equal(sm_gallery_num_examples(g), 15);
    assert_int_equal(sm_gallery_num_labels(g), 5);
    assert_int_equal(sm_gallery_label_examples(g, 0), 3);
    assert_true(sm_gallery_find_label(g, "broken") == SIZE_MAX);
    sm_gallery_match mt[2];
    memset(mt, 0x5a, sizeof mt);
    double score = -1;
    int accept = -1;
    assert_int_equal(sm_gallery_identify(g, 1, x, 2, mt, NULL), SM_ERR_NUMERIC);
    assert_int_equal(mt[0].rank, 0x5a5a5a5a5a5a5a5aull);
    assert_int_equal(sm_gallery_verify(g, "alpha/char00", x, 0.5, &score, &accept), SM_ERR_NUMERIC);
    assert_true(score == -1 && accept == -1);
    /* a folder of PNGs: refused naming the file, nothing enrolled */
    char *dir = fx_tempdir();
    char *a = fx_join(dir, "tree/a/1.png"), *b = fx_join(dir, "tree/b/2.png");
    char *root = fx_join(dir, "tree");
    uint8_t grey[PX];
    fx_pattern(grey, S, S, 1);
    assert_int_equal(fx_write_png(a, S, S, FX_GREY, 8, grey), 0);
    assert_int_equal(fx_write_png(b, S, S, FX_GREY, 8, grey), 0);
    size_t n = 99;
    assert_int_equal(sm_gallery_enrol_path(g, root, &n), SM_ERR_NUMERIC);
    assert_non_null(strstr(sm_last_error(), "1.png"));
    assert_int_equal(n, 99);
    assert_int_equal(sm_gallery_num_examples(g), 15);
    assert_int_equal(sm_gallery_num_labels(g), 5);
    assert_int_equal(sm__subnet_write_params(m.sub, good), SM_OK);

    /* a NaN in the head: the features are fine, every score NaN */
    float hp[9], hnan[9];
    assert_int_equal(sm__head_read_params(m.head, hp), SM_OK);
    memcpy(hnan, hp, sizeof hp);
    hnan[2] = NAN;
    assert_int_equal(sm__head_write_params(m.head, hnan), SM_OK);
    assert_int_equal(sm_gallery_identify(g, 1, x, 2, mt, NULL), SM_ERR_NUMERIC);
    assert_int_equal(mt[0].rank, 0x5a5a5a5a5a5a5a5aull);
    float f[8];
    assert_int_equal(sm_embed(m.sub, 1, x, f), SM_OK);
    assert_int_equal(sm_gallery_identify_embeddings(g, 1, f, 2, mt, NULL), SM_ERR_NUMERIC);
    assert_int_equal(sm_gallery_verify(g, "alpha/char00", x, 0.5, &score, &accept), SM_ERR_NUMERIC);
    assert_true(score == -1 && accept == -1);
    assert_int_equal(sm__head_write_params(m.head, hp), SM_OK);

    /* the model repaired, the gallery is as it was: it works, saves and loads */
    assert_int_equal(sm_gallery_enrol_path(g, root, &n), SM_OK);
    assert_int_equal(n, 2);
    assert_int_equal(sm_gallery_identify(g, 1, x, 2, mt, NULL), SM_OK);
    assert_string_equal(sm_gallery_label_name(g, mt[0].label), "alpha/char00");
    char *path = fx_join(dir, "g.gallery");
    assert_int_equal(sm_gallery_save(g, path), SM_OK);
    assert_int_equal(sm_gallery_load(m.sub, m.head, path, &back), SM_OK);
    assert_int_equal(sm_gallery_num_examples(back), 17);
    sm_gallery_destroy(back);
    sm_gallery_destroy(g);
    fx_rmtree(dir);
    free(path), free(root), free(a), free(b), free(dir);
    free(x), free(good), free(nan);
    sm_dataset_destroy(ds);
    model_close(&m);
}

static void test_roc(void **state)
{
    (void)state;
    /* scores 0.1 .. 0.8; same-class pairs at 0.4, 0.6, 0.7, 0.8; different at 0.1 .. 0.5 */
    const float sc[] = {0.1f, 0.2f, 0.3f, 0.4f, 0.4f, 0.5f, 0.6f, 0.7f, 0.8f};
    const float lb[] = {0, 0, 0, 0, 1, 0, 1, 1, 1};
    sm_roc *r;
    assert_int_equal(sm_roc_create(9, sc, lb, &r), SM_OK);
    assert_int_equal(sm_roc_num_points(r), 9); /* 8 distinct scores + infinity */
    double t, far, frr;
    assert_int_equal(sm_roc_point(r, 0, &t, &far, &frr), SM_OK);
    assert_true(t == (double)0.1f && far == 1.0 && frr == 0.0);
    assert_int_equal(sm_roc_point(r, 3, &t, &far, &frr), SM_OK); /* t = 0.4: 0.4 accepted */
    assert_true(t == (double)0.4f && fabs(far - 2.0 / 5) < 1e-12 && frr == 0.0);
    assert_int_equal(sm_roc_point(r, 4, &t, &far, &frr), SM_OK); /* t = 0.5 */
    assert_true(fabs(far - 1.0 / 5) < 1e-12 && fabs(frr - 1.0 / 4) < 1e-12);
    assert_int_equal(sm_roc_point(r, 8, &t, &far, &frr), SM_OK);
    assert_true(isinf(t) && far == 0.0 && frr == 1.0);
    assert_int_equal(sm_roc_point(r, 9, &t, &far, &frr), SM_ERR_INVALID_ARG);
    /* EER: t = 0.5 gives FAR 0.2, FRR 0.25, the closest pair */
    double eer;
    assert_int_equal(sm_roc_eer(r, &eer, &t), SM_OK);
    assert_true(t == (double)0.5f && fabs(eer - 0.225) < 1e-12);
    /* target FAR 0: the lowest threshold accepting no different pair is 0.6 */
    assert_int_equal(sm_roc_threshold_at_far(r, 0.0, &t, &far, &frr), SM_OK);
    assert_true(t == (double)0.6f && far == 0.0 && fabs(frr - 0.25) < 1e-12);
    assert_int_equal(sm_roc_threshold_at_far(r, 0.4, &t, &far, NULL), SM_OK);
    assert_true(t == (double)0.4f && fabs(far - 0.4) < 1e-12);
    assert_int_equal(sm_roc_threshold_at_far(r, 1.5, &t, NULL, NULL), SM_ERR_INVALID_ARG);
    sm_roc_destroy(r);
    /* refusals */
    const float one_kind[] = {1, 1};
    assert_int_equal(sm_roc_create(2, sc, one_kind, &r), SM_ERR_INVALID_ARG);
    const float bad[] = {0.5f, 1.5f};
    assert_int_equal(sm_roc_create(2, bad, lb + 3, &r), SM_ERR_INVALID_ARG);
    const float badl[] = {0, 2};
    assert_int_equal(sm_roc_create(2, sc, badl, &r), SM_ERR_INVALID_ARG);
    sm_roc_destroy(NULL);

    /* the verification pairs: scores as sm_verification_accuracy judges them, and its accuracy
     * at 0.5 is sm_verification_accuracy's exactly */
    model m;
    model_open(&m, 3);
    sm_dataset *ds;
    assert_int_equal(sm_dataset_create_synthetic(6, 4, S, S, 7, &ds), SM_OK);
    enum { N = 200 };
    float ps[N], pl[N];
    assert_int_equal(sm_verification_scores(m.sub, m.head, ds, N, 5, ps, pl), SM_OK);
    sm_eval_result a = SM_EVAL_RESULT_INIT, b = SM_EVAL_RESULT_INIT;
    assert_int_equal(sm_verification_accuracy(m.sub, m.head, ds, N, 5, &a), SM_OK);
    assert_int_equal(sm_verification_accuracy_at(m.sub, m.head, ds, N, 5, 0.5, &b), SM_OK);
    assert_true(a.accuracy == b.accuracy && a.correct == b.correct);
    double right = 0;
    for (int i = 0; i < N; i++) right += (ps[i] >= 0.5f) == (pl[i] == 1.0f);
    assert_true(right == a.correct);
    assert_int_equal(sm_roc_create(N, ps, pl, &r), SM_OK);
    assert_int_equal(sm_roc_eer(r, &eer, &t), SM_OK);
    assert_true(eer >= 0 && eer <= 0.5 + 1e-12);
    assert_int_equal(sm_verification_accuracy_at(m.sub, m.head, ds, N, 5, t, &b), SM_OK);
    right = 0;
    for (int i = 0; i < N; i++) right += ((double)ps[i] >= t) == (pl[i] == 1.0f);
    assert_true(right == b.correct);
    assert_int_equal(sm_verification_accuracy_at(m.sub, m.head, ds, N, 5, 2.0, &b),
                     SM_ERR_INVALID_ARG);
    sm_roc_destroy(r);
    sm_dataset_destroy(ds);
    model_close(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_identify_matches_pairs),
        cmocka_unit_test(test_ties),
        cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_files),
        cmocka_unit_test(test_enrol_path),
        cmocka_unit_test(test_nonfinite_embeddings),
        cmocka_unit_test(test_nonfinite_model),
        cmocka_unit_test(test_roc),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
