/* SPDX-License-Identifier: MIT */
/* Rotated classes (SM_TRAINER_ROTATED_CLASSES, issue 23): the rotation itself on a known
 * asymmetric image, which classes and images the pair and P x K samplers draw with the option,
 * the refusal of non-square images, the option in checkpoints, and, the option off, the same
 * bytes as before it existed (checksums recorded from the code before the option). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <unistd.h>

#include "data/dataset.h"
#include "data/image.h"
#include "data/sampler.h"
#include "siamese/siamese.h"
#include "train/settings.h"
#include "train/training.h"

#define ARCH "1x12x12:conv4k3,relu,pool2,conv4k3,relu,flatten,fc8"

/* FNV-1a, 64 bits, continued from h */
static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001b3ULL;
    return h;
}
#define FNV0 0xcbf29ce484222325ULL

/* 3 alphabets of 4, 3 and 1 classes, 4 images of side 6 each; pixels from the image's number */
static sm_dataset *small_dataset(int h, int w)
{
    static const int classes[3] = {4, 3, 1};
    sm_dataset *ds = NULL;
    assert_int_equal(sm_dataset_create(h, w, &ds), SM_OK);
    float *px = malloc((size_t)h * (size_t)w * sizeof *px);
    int n = 0;
    for (int a = 0; a < 3; a++)
        for (int c = 0; c < classes[a]; c++) {
            char label[32];
            snprintf(label, sizeof label, "%c/char%d", 'A' + a, c);
            for (int i = 0; i < 4; i++, n++) {
                for (int k = 0; k < h * w; k++) px[k] = (float)((n * 37 + k * 11) % 256) / 255.0f;
                assert_int_equal(sm_dataset_add_image(ds, label, px), SM_OK);
            }
        }
    free(px);
    return ds;
}

/* ------------------------------------------------------------------ off: as before */

/* The pair sampler's and the P x K sampler's output for seed 11 under each combination of the
 * older options, hashed. */
static uint64_t sampler_hash(sm_sampler *s, double neg, bool balanced)
{
    enum { N = 200, HW = 36 };
    static float l[N * HW], r[N * HW], lab[N];
    static size_t li[N], ri[N], idx[6];
    static float pk[6 * HW];
    sm__sampler_set_options(s, neg, balanced);
    uint64_t h = FNV0;
    assert_int_equal(sm_sampler_next(s, N, l, r, lab, li, ri), SM_OK);
    h = fnv(h, l, sizeof l), h = fnv(h, r, sizeof r), h = fnv(h, lab, sizeof lab);
    h = fnv(h, li, sizeof li), h = fnv(h, ri, sizeof ri);
    for (int b = 0; b < 20; b++) {
        assert_int_equal(sm__sampler_next_pk(s, 3, 2, pk, idx), SM_OK);
        h = fnv(h, pk, sizeof pk), h = fnv(h, idx, sizeof idx);
    }
    return h;
}

typedef struct model {
    sm_backend *be;
    sm_subnet *s;
    sm_head *h;
    sm_adam *a;
    sm_trainer *t;
    sm_dataset *ds;
} model;

static void model_make_arch(model *m, const char *arch_text, int classes, int per_class, int h,
                            int w, int threads, uint64_t seed)
{
    memset(m, 0, sizeof *m);
    assert_int_equal(sm_backend_create(SM_BACKEND_CPU, &m->be), SM_OK);
    sm_backend_set_threads(m->be, threads);
    assert_int_equal(sm_dataset_create_synthetic(classes, per_class, h, w, 5, &m->ds), SM_OK);
    sm_arch *arch;
    assert_int_equal(sm_arch_from_string(arch_text, &arch), SM_OK);
    assert_int_equal(sm_subnet_create(m->be, arch, seed, &m->s), SM_OK);
    sm_arch_destroy(arch);
    assert_int_equal(sm_head_create(m->be, sm_subnet_feature_dim(m->s), seed + 1, &m->h), SM_OK);
    assert_int_equal(sm_adam_create(m->s, m->h, &m->a), SM_OK);
    assert_int_equal(sm_trainer_create(m->s, m->h, m->a, m->ds, seed, &m->t), SM_OK);
}

static void model_make(model *m, int classes, int per_class, int side, uint64_t seed)
{
    model_make_arch(m, ARCH, classes, per_class, side, side, 1, seed);
}

/* Weights (not biases) 30 times larger than the reference's N(0, 0.01), so that this tiny net's
 * features differ between images from the first step (as tests/test_pk.c does). */
static void widen_subnet(model *m)
{
    float *w = malloc(m->s->n_params * sizeof *w);
    assert_int_equal(sm__subnet_read_params(m->s, w), SM_OK);
    for (size_t l = 0; l < m->s->arch.n_layers; l++) {
        const sm__layer *ly = &m->s->arch.layers[l];
        for (size_t i = 0; i < ly->n_w; i++) w[ly->w_off + i] *= 30.0f;
    }
    assert_int_equal(sm__subnet_write_params(m->s, w), SM_OK);
    free(w);
}

static void model_free(model *m)
{
    sm_trainer_destroy(m->t);
    sm_adam_destroy(m->a);
    sm_head_destroy(m->h);
    sm_subnet_destroy(m->s);
    sm_dataset_destroy(m->ds);
    sm_backend_destroy(m->be);
}

/* Two steps of a trainer (pairs, or P x K with pk), without and with augmentation: the
 * sampled batch (un-augmented: exact on every machine), both RNG states, and, printed only
 * (float arithmetic differs between machines), the parameters. */
static uint64_t trainer_hash(bool pk, bool augment, bool balanced, double neg)
{
    model m;
    model_make(&m, 30, 4, 12, 3);
    widen_subnet(&m);
    assert_int_equal(sm_trainer_set_param(m.t, SM_TRAINER_BATCH_SIZE, 8), SM_OK);
    if (pk) {
        assert_int_equal(sm_trainer_set_param(m.t, SM_TRAINER_PK_CLASSES, 3), SM_OK);
        assert_int_equal(sm_trainer_set_param(m.t, SM_TRAINER_PK_IMAGES, 2), SM_OK);
    }
    assert_int_equal(sm_trainer_set_param(m.t, SM_TRAINER_AUGMENT, augment ? SM_DISTORT_ALL : 0),
                     SM_OK);
    assert_int_equal(sm_trainer_set_param(m.t, SM_TRAINER_ALPHABET_BALANCED, balanced), SM_OK);
    assert_int_equal(sm_trainer_set_real(m.t, SM_TRAINER_NEG_SAME_ALPHABET, neg), SM_OK);
    for (int i = 0; i < 2; i++) assert_int_equal(sm_train_step(m.t, NULL), SM_OK);
    uint64_t h = FNV0, st[4];
    const size_t in = 144;
    if (!augment) {
        if (pk) h = fnv(h, m.t->pk_img, 6 * in * sizeof(float));
        else {
            h = fnv(h, m.t->batch_left, 8 * in * sizeof(float));
            h = fnv(h, m.t->batch_right, 8 * in * sizeof(float));
            h = fnv(h, m.t->batch_labels, 8 * sizeof(float));
        }
    }
    sm__sampler_get_state(m.t->sampler, st);
    h = fnv(h, st, sizeof st);
    h = fnv(h, m.t->aug_rng.s, sizeof m.t->aug_rng.s);
    float *w = malloc((m.s->n_params + m.h->n_params) * sizeof *w);
    assert_int_equal(sm__subnet_read_params(m.s, w), SM_OK);
    assert_int_equal(sm__head_read_params(m.h, w + m.s->n_params), SM_OK);
    printf("  params pk=%d augment=%d balanced=%d neg=%g: %016" PRIx64 "\n", pk, augment, balanced,
           neg, fnv(FNV0, w, (m.s->n_params + m.h->n_params) * sizeof *w));
    free(w);
    model_free(&m);
    return h;
}

/* Recorded from the code before SM_TRAINER_ROTATED_CLASSES existed (commit 93dfbf6). */
static const uint64_t sampler_before[2][2] = {
    {0x63e48da8c3095313ULL, 0xe0e17829ee4e5feaULL}, /* not balanced; neg 0, 0.5 */
    {0x4e874d0bc78f1a00ULL, 0x52d5fc5aee39e141ULL}, /* balanced */
};
static const uint64_t trainer_before[2][2][2] = {
    /* pairs: without and with augmentation; options off, then balanced with neg 0.5 */
    {{0x48e12610bebc7b13ULL, 0x06a2f1fcf4b4e231ULL},
     {0x52e415167aef2d5aULL, 0x4295836fd8dbb052ULL}},
    /* P x K */
    {{0x12b1fcad16ca7616ULL, 0x01d0f125eb7066c1ULL},
     {0xe361012c1b0fbd48ULL, 0xd7435c9f7576b9b2ULL}},
};

static void test_off_unchanged(void **state)
{
    (void)state;
    sm_dataset *ds = small_dataset(6, 6);
    const double negs[2] = {0.0, 0.5};
    for (int bal = 0; bal < 2; bal++)
        for (int ni = 0; ni < 2; ni++) {
            sm_sampler *s;
            assert_int_equal(sm_sampler_create(ds, 11, &s), SM_OK);
            const uint64_t h = sampler_hash(s, negs[ni], bal);
            printf("sampler balanced=%d neg=%g: %016" PRIx64 "\n", bal, negs[ni], h);
            assert_true(h == sampler_before[bal][ni]);
            sm_sampler_destroy(s);
        }
    sm_dataset_destroy(ds);
    for (int pk = 0; pk < 2; pk++)
        for (int aug = 0; aug < 2; aug++)
            for (int opt = 0; opt < 2; opt++) {
                const uint64_t h = trainer_hash(pk, aug, opt, opt ? 0.5 : 0.0);
                printf("trainer pk=%d augment=%d options=%d: %016" PRIx64 "\n", pk, aug, opt, h);
                assert_true(h == trainer_before[pk][aug][opt]);
            }
}

/* ------------------------------------------------------------------ the rotation */

/* Pixel i of an image of side n turned by r quarter turns counterclockwise is pixel
 * src_of(r, n, i) of the original (numpy.rot90(img, r)), for the checks on bigger images; the
 * 3 x 3 test below spells the answer out by hand instead. */
static size_t src_of(unsigned r, size_t n, size_t i)
{
    size_t y = i / n, x = i % n, m = n - 1;
    switch (r) {
    case 1: return x * n + (m - y);
    case 2: return (m - y) * n + (m - x);
    case 3: return (m - x) * n + y;
    }
    return i;
}

/* Image `index` of ds turned by r, as the sampler should give it. */
static void expected_image(const sm_dataset *ds, size_t index, unsigned r, float *out)
{
    int h, w;
    assert_int_equal(sm_dataset_image_size(ds, &h, &w), SM_OK);
    assert_int_equal(h, w);
    const size_t n = (size_t)w;
    float *img = malloc(n * n * sizeof *img);
    assert_int_equal(sm_dataset_get_image(ds, index, img), SM_OK);
    for (size_t i = 0; i < n * n; i++) out[i] = img[src_of(r, n, i)];
    free(img);
}

/* Two classes of two 3 x 3 images each; image n's pixel k (row-major, k = 0..8) is
 * (10 n + k + 1) / 255, so every pixel of every image is distinct. */
static sm_dataset *tiny_dataset(void)
{
    sm_dataset *ds = NULL;
    assert_int_equal(sm_dataset_create(3, 3, &ds), SM_OK);
    const char *labels[2] = {"A/x", "B/y"};
    for (int n = 0; n < 4; n++) {
        float px[9];
        for (int k = 0; k < 9; k++) px[k] = (float)(10 * n + k + 1) / 255.0f;
        assert_int_equal(sm_dataset_add_image(ds, labels[n / 2], px), SM_OK);
    }
    return ds;
}

/* The 3 x 3 image 1 2 3 / 4 5 6 / 7 8 9 (row by row) turned counterclockwise by 0, 90, 180 and
 * 270 degrees, worked out by hand. */
static const int turned[4][9] = {
    {1, 2, 3, 4, 5, 6, 7, 8, 9},
    {3, 6, 9, 2, 5, 8, 1, 4, 7}, /* 90: the right column becomes the top row */
    {9, 8, 7, 6, 5, 4, 3, 2, 1}, /* 180 */
    {7, 4, 1, 8, 5, 2, 9, 6, 3}, /* 270: the left column, bottom up, becomes the top row */
};

static void assert_turned(const float *img, size_t index, unsigned r)
{
    for (int k = 0; k < 9; k++) {
        const float want = (float)(10 * (int)index + turned[r][k]) / 255.0f;
        if (img[k] != want)
            fail_msg("image %zu turned %u: pixel %d is %g, expected %g", index, r, k,
                     (double)img[k] * 255, (double)want * 255);
    }
}

static void test_rotation_pixels(void **state)
{
    (void)state;
    sm_dataset *ds = tiny_dataset();
    sm_sampler *s;
    assert_int_equal(sm_sampler_create(ds, 3, &s), SM_OK);
    sm__sampler_set_rotated(s, true);
    enum { N = 400 };
    float *l = malloc(N * 9 * sizeof *l), *r = malloc(N * 9 * sizeof *r), lab[N];
    size_t li[N], ri[N], lc[N], rc[N];
    assert_int_equal(sm__sampler_next_classes(s, N, l, r, lab, li, ri, lc, rc), SM_OK);
    int seen[8] = {0};
    size_t turned_negatives = 0;
    for (size_t k = 0; k < N; k++) {
        const size_t idx[2] = {li[k], ri[k]}, cls[2] = {lc[k], rc[k]};
        const float *img[2] = {l + k * 9, r + k * 9};
        for (int j = 0; j < 2; j++) {
            assert_true(cls[j] < 8);
            seen[cls[j]] = 1;
            assert_int_equal(sm_dataset_image_class(ds, idx[j]), cls[j] % 2); /* its base */
            assert_turned(img[j], idx[j], (unsigned)(cls[j] / 2));
        }
        if (lab[k] == 1.0f) {
            assert_int_equal(lc[k], rc[k]); /* same base class and same turn */
            assert_true(li[k] != ri[k]);
        } else {
            assert_true(lc[k] != rc[k]);
            turned_negatives += lc[k] % 2 == rc[k] % 2; /* the same character turned otherwise */
        }
    }
    for (int c = 0; c < 8; c++) assert_true(seen[c]);
    assert_true(turned_negatives > 0);

    /* P x K: the same images, each class's K images turned alike */
    float pk[4 * 9];
    size_t idx[4], cls[4];
    for (int b = 0; b < 50; b++) {
        assert_int_equal(sm__sampler_next_pk_classes(s, 2, 2, pk, idx, cls), SM_OK);
        assert_true(cls[0] == cls[1] && cls[2] == cls[3] && cls[0] != cls[2]);
        for (int i = 0; i < 4; i++) assert_turned(pk + i * 9, idx[i], (unsigned)(cls[i] / 2));
    }
    /* off again: the images as they are */
    sm__sampler_set_rotated(s, false);
    assert_int_equal(sm__sampler_next_classes(s, N, l, r, lab, li, ri, lc, rc), SM_OK);
    for (size_t k = 0; k < N; k++) {
        assert_true(lc[k] < 2 && rc[k] < 2);
        assert_turned(l + k * 9, li[k], 0);
        assert_turned(r + k * 9, ri[k], 0);
    }
    free(l), free(r);
    sm_sampler_destroy(s);
    sm_dataset_destroy(ds);
}

/* P x K batches over the 8 classes (3 alphabets) of small_dataset, rotated: 32 classes. */
static void test_pk_rotated(void **state)
{
    (void)state;
    sm_dataset *ds = small_dataset(6, 6);
    const size_t nc = sm_dataset_num_classes(ds);
    assert_int_equal(nc, 8);
    sm_sampler *s;
    assert_int_equal(sm_sampler_create(ds, 9, &s), SM_OK);
    /* 9 classes of 4: more than the dataset has, until its rotations count */
    size_t idx[64], cls[64];
    float *img = malloc(64 * 36 * sizeof *img), want[36];
    assert_int_equal(sm__sampler_next_pk_classes(s, 9, 4, img, idx, cls), SM_ERR_DATASET);
    sm__sampler_set_rotated(s, true);
    int seen[32] = {0};
    size_t rotated = 0, total = 0;
    const size_t shapes[3][2] = {{3, 2}, {9, 4}, {32, 2}};
    for (int sh = 0; sh < 3; sh++) {
        const size_t p = shapes[sh][0], k = shapes[sh][1];
        for (int b = 0; b < 100; b++) {
            assert_int_equal(sm__sampler_next_pk_classes(s, p, k, img, idx, cls), SM_OK);
            for (size_t q = 0; q < p; q++) {
                for (size_t q2 = 0; q2 < q; q2++) assert_true(cls[q * k] != cls[q2 * k]);
                for (size_t i = 0; i < k; i++) {
                    const size_t j = q * k + i, c = cls[j];
                    assert_true(c < 4 * nc);
                    assert_int_equal(c, cls[q * k]); /* K images of one class, one turn */
                    assert_int_equal(sm_dataset_image_class(ds, idx[j]), c % nc);
                    for (size_t i2 = 0; i2 < i; i2++) assert_true(idx[q * k + i2] != idx[j]);
                    expected_image(ds, idx[j], (unsigned)(c / nc), want);
                    assert_memory_equal(img + j * 36, want, sizeof want);
                    seen[c] = 1;
                    rotated += c >= nc;
                    total++;
                }
            }
        }
    }
    for (int c = 0; c < 32; c++) assert_true(seen[c]);
    assert_true(rotated > total / 2); /* 3/4 of the classes are turned ones */
    /* 33 classes: more than even the rotations give */
    sm_status st = sm__sampler_next_pk_classes(s, 17, 2, NULL, NULL, NULL);
    assert_int_equal(st, SM_OK);
    float *big = malloc(33 * 2 * 36 * sizeof *big);
    assert_int_equal(sm__sampler_next_pk(s, 33, 2, big, NULL), SM_ERR_DATASET);
    assert_non_null(strstr(sm_last_error(), "such classes"));
    free(big), free(img);
    sm_sampler_destroy(s);
    sm_dataset_destroy(ds);
}

/* |observed - expected| within 4.5 binomial standard deviations */
static void assert_binomial(size_t hits, size_t n, double p)
{
    double obs = (double)hits / (double)n, sd = sqrt(p * (1 - p) / (double)n);
    if (fabs(obs - p) > 4.5 * sd + 1e-9)
        fail_msg("observed %.4f over %zu, expected %.4f", obs, n, p);
}

/* (alphabet, turn) is an alphabet of its own for --neg-same-alphabet and --alphabet-balanced. */
static void test_alphabet_options(void **state)
{
    (void)state;
    sm_dataset *ds = small_dataset(6, 6); /* alphabets A (4 classes), B (3), C (1) */
    const size_t nc = 8;
    enum { N = 20000 };
    float *l = malloc(N * 36 * sizeof *l), *r = malloc(N * 36 * sizeof *r), *lab = malloc(N * 4);
    size_t *li = malloc(N * sizeof *li), *ri = malloc(N * sizeof *ri);
    size_t *lc = malloc(N * sizeof *lc), *rc = malloc(N * sizeof *rc);
#define ALPHA(c) (ds->classes[(c) % nc].alphabet)

    /* negatives within the alphabet, f = 1: the second class has the first's alphabet and
     * turn (C's lone class: the usual draw, any other class) */
    sm_sampler *s;
    assert_int_equal(sm_sampler_create(ds, 21, &s), SM_OK);
    sm__sampler_set_rotated(s, true);
    sm__sampler_set_options(s, 1.0, false);
    assert_int_equal(sm__sampler_next_classes(s, N, l, r, lab, li, ri, lc, rc), SM_OK);
    size_t lone = 0;
    for (size_t k = 0; k < N; k++) {
        if (lab[k] == 1.0f) continue;
        if (ALPHA(lc[k]) == 2) {
            lone++;
            continue;
        }
        assert_int_equal(ALPHA(lc[k]), ALPHA(rc[k]));
        assert_int_equal(lc[k] / nc, rc[k] / nc);
    }
    assert_true(lone > 0);
    /* P x K, f = 1: all P classes of a batch from one alphabet, one turn */
    size_t cls[6];
    for (int b = 0; b < 200; b++) {
        assert_int_equal(sm__sampler_next_pk_classes(s, 3, 2, NULL, NULL, cls), SM_OK);
        for (int i = 1; i < 6; i++) {
            assert_int_equal(ALPHA(cls[i]), ALPHA(cls[0]));
            assert_int_equal(cls[i] / nc, cls[0] / nc);
        }
    }
    sm_sampler_destroy(s);

    /* alphabet-balanced: a negative's first class comes from each of the 12 (alphabet, turn)
     * alphabets with probability 1/12 (C's one class 1/12 of the time, not 4/32) */
    assert_int_equal(sm_sampler_create(ds, 22, &s), SM_OK);
    sm__sampler_set_rotated(s, true);
    sm__sampler_set_options(s, 0.0, true);
    assert_int_equal(sm__sampler_next_classes(s, N, l, r, lab, li, ri, lc, rc), SM_OK);
    size_t neg = 0, in_c = 0, per_turn[4] = {0};
    for (size_t k = 0; k < N; k++) {
        if (lab[k] == 1.0f) continue;
        neg++;
        in_c += ALPHA(lc[k]) == 2;
        per_turn[lc[k] / nc]++;
    }
    assert_binomial(in_c, neg, 1.0 / 3.0);
    for (int t = 0; t < 4; t++) assert_binomial(per_turn[t], neg, 0.25);
    /* P x K alphabet-balanced, P = 2: each class an (alphabet, turn) first, so C's one class
     * (in its 4 turns) is drawn far more often than its 4 of the 32 classes would be */
    size_t pk_c = 0, pk_all = 0, cls4[4];
    for (int b = 0; b < 500; b++) {
        assert_int_equal(sm__sampler_next_pk_classes(s, 2, 2, NULL, NULL, cls4), SM_OK);
        for (int q = 0; q < 2; q++) pk_c += ALPHA(cls4[q * 2]) == 2, pk_all++;
    }
    assert_true(pk_c > pk_all / 5); /* about 1/3 (the second class less), 1/8 unbalanced */
    sm_sampler_destroy(s);
#undef ALPHA
    free(l), free(r), free(lab), free(li), free(ri), free(lc), free(rc);
    sm_dataset_destroy(ds);
}

/* ------------------------------------------------------------------ the trainer */

/* The trainer's batch is the rotated sample, then distorted: replayed here with a sampler of
 * the trainer's seed and the augmentation RNG, the same bytes; and the augmentation RNG draws
 * as it does without rotation. */
static void test_trainer_rotate_then_augment(void **state)
{
    (void)state;
    const uint64_t seed = 3;
    const size_t in = 144;
    for (int pk = 0; pk < 2; pk++) {
        model m, off;
        model_make(&m, 30, 4, 12, seed);
        model_make(&off, 30, 4, 12, seed);
        model *both[2] = {&m, &off};
        for (int i = 0; i < 2; i++) {
            sm_trainer *t = both[i]->t;
            assert_int_equal(sm_trainer_set_param(t, SM_TRAINER_BATCH_SIZE, 8), SM_OK);
            assert_int_equal(sm_trainer_set_param(t, SM_TRAINER_AUGMENT, SM_DISTORT_ALL), SM_OK);
            if (pk) {
                assert_int_equal(sm_trainer_set_param(t, SM_TRAINER_PK_IMAGES, 2), SM_OK);
                assert_int_equal(sm_trainer_set_param(t, SM_TRAINER_PK_CLASSES, 4), SM_OK);
            }
        }
        assert_int_equal(sm_trainer_set_param(m.t, SM_TRAINER_ROTATED_CLASSES, 1), SM_OK);
        assert_int_equal(sm_train_step(m.t, NULL), SM_OK);
        assert_int_equal(sm_train_step(off.t, NULL), SM_OK);
        assert_memory_equal(m.t->aug_rng.s, off.t->aug_rng.s, sizeof m.t->aug_rng.s);

        /* replay */
        sm_sampler *s;
        assert_int_equal(sm_sampler_create(m.ds, seed, &s), SM_OK);
        sm__sampler_set_rotated(s, true);
        sm__rng aug;
        sm__rng_seed(&aug, sm__augment_seed(seed));
        float *a = malloc(8 * in * sizeof *a), *b = malloc(8 * in * sizeof *b), lab[8];
        float *out = malloc(in * sizeof *out);
        size_t cl[8], cr[8];
        if (pk) {
            assert_int_equal(sm__sampler_next_pk_classes(s, 4, 2, a, NULL, cl), SM_OK);
            for (size_t i = 0; i < 8; i++) {
                sm__distort(&aug, SM_DISTORT_ALL, a + i * in, 12, 12, out);
                assert_memory_equal(out, m.t->pk_img + i * in, in * sizeof *out);
            }
        } else {
            assert_int_equal(sm__sampler_next_classes(s, 8, a, b, lab, NULL, NULL, cl, cr), SM_OK);
            for (size_t k = 0; k < 8; k++) {
                sm__distort(&aug, SM_DISTORT_ALL, a + k * in, 12, 12, out);
                assert_memory_equal(out, m.t->batch_left + k * in, in * sizeof *out);
                sm__distort(&aug, SM_DISTORT_ALL, b + k * in, 12, 12, out);
                assert_memory_equal(out, m.t->batch_right + k * in, in * sizeof *out);
            }
            assert_memory_equal(lab, m.t->batch_labels, sizeof lab);
        }
        free(a), free(b), free(out);
        sm_sampler_destroy(s);
        model_free(&m), model_free(&off);
    }
}

static float *params_of(const model *m, size_t *n)
{
    *n = m->s->n_params + m->h->n_params;
    float *w = malloc(*n * sizeof *w);
    assert_int_equal(sm__subnet_read_params(m->s, w), SM_OK);
    assert_int_equal(sm__head_read_params(m->h, w + m->s->n_params), SM_OK);
    return w;
}

/* Same seed, same bytes: two runs, and runs on 1 and 2 threads. */
static void test_deterministic(void **state)
{
    (void)state;
    for (int pk = 0; pk < 2; pk++) {
        float *w[3];
        size_t n = 0;
        const int threads[3] = {1, 1, 2};
        for (int run = 0; run < 3; run++) {
            model m;
            model_make_arch(&m, ARCH, 30, 4, 12, 12, threads[run], 7);
            widen_subnet(&m);
            assert_int_equal(sm_trainer_set_param(m.t, SM_TRAINER_BATCH_SIZE, 8), SM_OK);
            assert_int_equal(sm_trainer_set_param(m.t, SM_TRAINER_AUGMENT, SM_DISTORT_ALL), SM_OK);
            assert_int_equal(sm_trainer_set_param(m.t, SM_TRAINER_ROTATED_CLASSES, 1), SM_OK);
            if (pk) assert_int_equal(sm_trainer_set_param(m.t, SM_TRAINER_PK_CLASSES, 3), SM_OK);
            for (int i = 0; i < 3; i++) assert_int_equal(sm_train_step(m.t, NULL), SM_OK);
            w[run] = params_of(&m, &n);
            model_free(&m);
        }
        assert_memory_equal(w[0], w[1], n * sizeof(float));
        assert_memory_equal(w[0], w[2], n * sizeof(float));
        for (int run = 0; run < 3; run++) free(w[run]);
    }
}

/* The setting travels in checkpoints, and a resumed run draws what a straight one does. */
static void test_checkpoint(void **state)
{
    (void)state;
    char path[] = "/tmp/sm_rotated_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    model a, b;
    model_make(&a, 30, 4, 12, 4);
    model_make(&b, 30, 4, 12, 4);
    assert_int_equal(sm_trainer_set_param(a.t, SM_TRAINER_ROTATED_CLASSES, 1), SM_OK);
    assert_int_equal(sm_trainer_set_param(a.t, SM_TRAINER_PK_CLASSES, 3), SM_OK);
    assert_int_equal(sm_trainer_set_param(a.t, SM_TRAINER_PK_IMAGES, 2), SM_OK);
    for (int i = 0; i < 2; i++) assert_int_equal(sm_train_step(a.t, NULL), SM_OK);
    assert_int_equal(sm_trainer_save(a.t, path), SM_OK);
    int64_t v = -1;
    assert_int_equal(sm_trainer_get_param(b.t, SM_TRAINER_ROTATED_CLASSES, &v), SM_OK);
    assert_int_equal(v, 0);
    assert_int_equal(sm_trainer_load(b.t, path), SM_OK);
    assert_int_equal(sm_trainer_get_param(b.t, SM_TRAINER_ROTATED_CLASSES, &v), SM_OK);
    assert_int_equal(v, 1);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(sm_train_step(a.t, NULL), SM_OK);
        assert_int_equal(sm_train_step(b.t, NULL), SM_OK);
        assert_memory_equal(a.t->pk_img, b.t->pk_img, 6 * 144 * sizeof(float));
    }
    size_t n;
    float *wa = params_of(&a, &n), *wb = params_of(&b, &n);
    assert_memory_equal(wa, wb, n * sizeof(float));
    free(wa), free(wb);
    /* and off again: a checkpoint with 0 turns it off in a trainer that had it on */
    assert_int_equal(sm_trainer_set_param(b.t, SM_TRAINER_ROTATED_CLASSES, 0), SM_OK);
    assert_int_equal(sm_trainer_save(b.t, path), SM_OK);
    assert_int_equal(sm_trainer_load(a.t, path), SM_OK);
    assert_int_equal(sm_trainer_get_param(a.t, SM_TRAINER_ROTATED_CLASSES, &v), SM_OK);
    assert_int_equal(v, 0);
    unlink(path);
    model_free(&a), model_free(&b);
}

/* Non-square images: refused at set time (the subnet's input), and by the sampler at its next
 * draw, which then changes nothing. */
static void test_non_square_refused(void **state)
{
    (void)state;
    model m;
    model_make_arch(&m, "1x12x10:conv4k3,relu,flatten,fc8", 12, 3, 12, 10, 1, 2);
    assert_int_equal(sm_trainer_set_param(m.t, SM_TRAINER_ROTATED_CLASSES, 1), SM_ERR_SHAPE);
    assert_non_null(strstr(sm_last_error(), "square"));
    int64_t v = -1;
    assert_int_equal(sm_trainer_get_param(m.t, SM_TRAINER_ROTATED_CLASSES, &v), SM_OK);
    assert_int_equal(v, 0);
    assert_int_equal(sm_trainer_set_param(m.t, SM_TRAINER_ROTATED_CLASSES, 0), SM_OK);
    /* as a checkpoint could set it: the first step refuses, changing nothing */
    m.t->rotated_classes = true;
    sm__trainer_sampler_options(m.t);
    uint64_t before[4], after[4];
    sm__sampler_get_state(m.t->sampler, before);
    assert_int_equal(sm_train_step(m.t, NULL), SM_ERR_SHAPE);
    assert_non_null(strstr(sm_last_error(), "square"));
    assert_int_equal(sm_trainer_iteration(m.t), 0);
    assert_int_equal(sm_trainer_set_param(m.t, SM_TRAINER_PK_IMAGES, 3), SM_OK);
    assert_int_equal(sm_trainer_set_param(m.t, SM_TRAINER_PK_CLASSES, 2), SM_OK);
    assert_int_equal(sm_train_step(m.t, NULL), SM_ERR_SHAPE);
    sm__sampler_get_state(m.t->sampler, after);
    assert_memory_equal(before, after, sizeof before);
    m.t->rotated_classes = false;
    sm__trainer_sampler_options(m.t);
    assert_int_equal(sm_train_step(m.t, NULL), SM_OK); /* P x K, as they are */
    assert_int_equal(sm_trainer_set_param(m.t, SM_TRAINER_PK_CLASSES, 0), SM_OK);
    assert_int_equal(sm_train_step(m.t, NULL), SM_OK);
    model_free(&m);
}

typedef struct val_seen {
    int reports;
    double acc, mean, std;
} val_seen;

static void on_health(void *user, const sm_health *h)
{
    val_seen *v = user;
    if (!(h->flags & SM_HEALTH_HAS_VALIDATION)) return;
    v->reports++;
    v->acc = h->val_accuracy, v->mean = h->val_score_mean, v->std = h->val_score_std;
}

/* Held-out alphabets stay out in every turn (the trainer only sees the training part of the
 * split), and validation measures unrotated pairs: exactly sm_verification_accuracy's. */
static void test_validation_unrotated(void **state)
{
    (void)state;
    model m;
    model_make(&m, 30, 4, 12, 6); /* 3 alphabets of 10 classes */
    sm_dataset *tr = NULL, *val = NULL;
    assert_int_equal(sm_dataset_split_alphabets(m.ds, 1, 1, &tr, &val), SM_OK);
    const char *held = sm_dataset_alphabet_name(val, 0);
    sm_trainer *t;
    assert_int_equal(sm_trainer_create(m.s, m.h, m.a, tr, 6, &t), SM_OK);
    assert_int_equal(sm_trainer_set_param(t, SM_TRAINER_ROTATED_CLASSES, 1), SM_OK);
    assert_int_equal(sm_trainer_set_param(t, SM_TRAINER_BATCH_SIZE, 16), SM_OK);
    val_seen seen = {0, 0, 0, 0};
    assert_int_equal(sm_trainer_set_health(t, 1, on_health, &seen), SM_OK);
    assert_int_equal(sm_trainer_set_validation(t, val, 64, 99), SM_OK);
    assert_int_equal(sm_train_step(t, NULL), SM_OK);
    assert_int_equal(seen.reports, 1);
    sm_eval_result r = SM_EVAL_RESULT_INIT;
    assert_int_equal(sm_verification_accuracy(m.s, m.h, val, 64, 99, &r), SM_OK);
    assert_true(r.accuracy == seen.acc && r.score_mean == seen.mean && r.score_std == seen.std);
    /* every class the trainer's sampler draws, in every turn, is of a training alphabet */
    enum { N = 500 };
    float *l = malloc(N * 144 * sizeof *l), *rr = malloc(N * 144 * sizeof *rr), lab[N];
    size_t li[N], ri[N], lc[N], rc[N];
    assert_int_equal(sm__sampler_next_classes(t->sampler, N, l, rr, lab, li, ri, lc, rc), SM_OK);
    const size_t nc = sm_dataset_num_classes(tr);
    assert_int_equal(nc, 20);
    int turns_seen[4] = {0};
    for (size_t k = 0; k < N; k++) {
        const size_t img[2] = {li[k], ri[k]}, cls[2] = {lc[k], rc[k]};
        for (int j = 0; j < 2; j++) {
            const char *name = sm_dataset_class_name(tr, sm_dataset_image_class(tr, img[j]));
            assert_true(strncmp(name, held, strlen(held)) != 0);
            turns_seen[cls[j] / nc] = 1;
        }
    }
    for (int i = 0; i < 4; i++) assert_true(turns_seen[i]);
    free(l), free(rr);
    sm_trainer_destroy(t);
    sm_dataset_destroy(tr), sm_dataset_destroy(val);
    model_free(&m);
}

/* The row in the settings table (tests/test_settings.c goes through every row: set, read,
 * range, checkpoint, data-parallel ranks). */
static void test_setting_row(void **state)
{
    (void)state;
    const sm__setting *row = sm__setting_find(SM__API_PARAM, SM_TRAINER_ROTATED_CLASSES);
    assert_non_null(row);
    assert_string_equal(row->ck_key, "rotated_classes");
    assert_true(row->dflt == 0 && row->absent == 0 && row->since == 4 && row->compared);
    model m;
    model_make(&m, 6, 2, 12, 1);
    int64_t v = -1;
    assert_int_equal(sm_trainer_get_param(m.t, SM_TRAINER_ROTATED_CLASSES, &v), SM_OK);
    assert_int_equal(v, 0);
    assert_int_equal(sm_trainer_set_param(m.t, SM_TRAINER_ROTATED_CLASSES, 2), SM_ERR_INVALID_ARG);
    assert_int_equal(sm_trainer_set_param(m.t, SM_TRAINER_ROTATED_CLASSES, -1), SM_ERR_INVALID_ARG);
    assert_int_equal(sm_trainer_set_param(m.t, SM_TRAINER_ROTATED_CLASSES, 1), SM_OK);
    assert_int_equal(sm_trainer_get_param(m.t, SM_TRAINER_ROTATED_CLASSES, &v), SM_OK);
    assert_int_equal(v, 1);
    model_free(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_off_unchanged),
        cmocka_unit_test(test_rotation_pixels),
        cmocka_unit_test(test_pk_rotated),
        cmocka_unit_test(test_alphabet_options),
        cmocka_unit_test(test_trainer_rotate_then_augment),
        cmocka_unit_test(test_deterministic),
        cmocka_unit_test(test_checkpoint),
        cmocka_unit_test(test_non_square_refused),
        cmocka_unit_test(test_validation_unrotated),
        cmocka_unit_test(test_setting_row),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
