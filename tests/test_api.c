/* SPDX-License-Identifier: MIT */
/* The public API's contract: versions, statuses, NULL handles, out-of-range options, calls in
 * the wrong order, backend selection, determinism, and what a non-finite step leaves behind. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "siamese/siamese.h"

#define TINY "1x12x12:conv4k3,relu,pool2,conv4k3,relu,flatten,fc8"

static void expect_status(sm_status got, sm_status want, const char *needle)
{
    if (got != want)
        fail_msg("got %s (%s), expected %s", sm_status_name(got), sm_last_error(),
                 sm_status_name(want));
    if (needle && !strstr(sm_last_error(), needle))
        fail_msg("message '%s' does not mention '%s'", sm_last_error(), needle);
}

static void test_versions_and_statuses(void **state)
{
    (void)state;
    assert_int_equal(sm_version_number(), SM_VERSION_NUMBER);
    assert_int_equal(sm_abi_version(), SM_ABI_MAJOR);
    char want[32];
    snprintf(want, sizeof want, "%d.%d.%d", SM_VERSION_MAJOR, SM_VERSION_MINOR, SM_VERSION_PATCH);
    assert_string_equal(sm_version_string(), want);
    for (int s = SM_OK; s <= SM_ERR_UNSUPPORTED; s++) {
        assert_true(strncmp(sm_status_name((sm_status)s), "SM_", 3) == 0);
        assert_string_not_equal(sm_status_name((sm_status)s), "SM_ERR_UNKNOWN");
        assert_true(strlen(sm_status_str((sm_status)s)) > 3);
    }
    assert_string_equal(sm_status_name((sm_status)999), "SM_ERR_UNKNOWN");
    assert_string_equal(sm_status_name(SM_ERR_IO), "SM_ERR_IO");
}

static void test_destroy_null_is_noop(void **state)
{
    (void)state;
    sm_backend_destroy(NULL);
    sm_arch_destroy(NULL);
    sm_dataset_destroy(NULL);
    sm_sampler_destroy(NULL);
    sm_subnet_destroy(NULL);
    sm_head_destroy(NULL);
    sm_adam_destroy(NULL);
    sm_trainer_destroy(NULL);
    assert_int_equal(sm_trainer_iteration(NULL), -1);
    assert_int_equal(sm_adam_steps(NULL), -1);
    assert_int_equal(sm_subnet_num_params(NULL), 0);
    assert_string_equal(sm_backend_name(NULL), "");
    assert_string_equal(sm_backend_kind_name(SM_BACKEND_CPU), "cpu");
    assert_string_equal(sm_backend_kind_name(SM_BACKEND_CUDA), "cuda");
    assert_string_equal(sm_backend_kind_name((sm_backend_kind)99), "unknown");
}

static void test_null_arguments(void **state)
{
    (void)state;
    float x = 0, y = 0;
    expect_status(sm_backend_create(SM_BACKEND_CPU, NULL), SM_ERR_INVALID_ARG, NULL);
    expect_status(sm_arch_create(1, 4, 4, NULL), SM_ERR_INVALID_ARG, NULL);
    expect_status(sm_arch_add_conv(NULL, 4, 3), SM_ERR_INVALID_ARG, NULL);
    expect_status(sm_arch_from_string(NULL, NULL), SM_ERR_INVALID_ARG, NULL);
    expect_status(sm_subnet_create(NULL, NULL, 0, NULL), SM_ERR_INVALID_ARG, NULL);
    expect_status(sm_head_create(NULL, 8, 0, NULL), SM_ERR_INVALID_ARG, NULL);
    expect_status(sm_adam_create(NULL, NULL, NULL), SM_ERR_INVALID_ARG, NULL);
    expect_status(sm_adam_set(NULL, SM_ADAM_LEARNING_RATE, 1e-3), SM_ERR_INVALID_ARG, NULL);
    expect_status(sm_trainer_create(NULL, NULL, NULL, NULL, 0, NULL), SM_ERR_INVALID_ARG, NULL);
    expect_status(sm_train_step(NULL, &x), SM_ERR_INVALID_ARG, NULL);
    expect_status(sm_train_step_batch(NULL, 1, &x, &y, &x, NULL), SM_ERR_INVALID_ARG, NULL);
    expect_status(sm_predict_pair(NULL, NULL, &x, &y, &x), SM_ERR_INVALID_ARG, NULL);
    expect_status(sm_predict_pairs(NULL, NULL, 1, &x, &y, &x), SM_ERR_INVALID_ARG, NULL);
    expect_status(sm_embed(NULL, 1, &x, &y), SM_ERR_INVALID_ARG, NULL);
    expect_status(sm_trainer_set_param(NULL, SM_TRAINER_BATCH_SIZE, 4), SM_ERR_INVALID_ARG, NULL);
    expect_status(sm_trainer_save(NULL, "x"), SM_ERR_INVALID_ARG, NULL);
    expect_status(sm_trainer_load(NULL, "x"), SM_ERR_INVALID_ARG, NULL);
    expect_status(sm_model_save(NULL, NULL, "x"), SM_ERR_INVALID_ARG, NULL);
    expect_status(sm_model_load(NULL, "x", NULL, NULL), SM_ERR_INVALID_ARG, NULL);
    expect_status(sm_dataset_open(NULL, 0, 0, NULL, 0, NULL), SM_ERR_INVALID_ARG, NULL);
    expect_status(sm_sampler_create(NULL, 0, NULL), SM_ERR_INVALID_ARG, NULL);
}

static void test_backend_selection(void **state)
{
    (void)state;
    sm_backend *be = NULL;
    expect_status(sm_backend_create((sm_backend_kind)42, &be), SM_ERR_INVALID_ARG, "42");
    assert_null(be);
    assert_int_equal(sm_backend_create(SM_BACKEND_CPU, &be), SM_OK);
    assert_string_equal(sm_backend_name(be), "cpu-blas");
    assert_int_equal(sm_backend_get_kind(be), SM_BACKEND_CPU);
    expect_status(sm_backend_set_threads(be, -1), SM_ERR_INVALID_ARG, NULL);
    expect_status(sm_backend_set_threads(be, 100000), SM_ERR_INVALID_ARG, NULL);
    assert_int_equal(sm_backend_set_threads(be, 1), SM_OK);
    assert_int_equal(sm_backend_get_threads(be), 1);
    assert_int_equal(sm_backend_set_threads(be, 0), SM_OK);
    assert_true(sm_backend_get_threads(be) >= 1);
    sm_backend_destroy(be);

    /* no cuda module is built by this configuration: a clear refusal, and auto falls back */
    sm_status s = sm_backend_probe(SM_BACKEND_CUDA);
    if (s != SM_OK) {
        expect_status(s, SM_ERR_BACKEND_UNAVAILABLE, "cuda");
        be = NULL;
        expect_status(sm_backend_create(SM_BACKEND_CUDA, &be), SM_ERR_BACKEND_UNAVAILABLE, "cuda");
        assert_null(be);
        assert_int_equal(sm_backend_create(SM_BACKEND_AUTO, &be), SM_OK);
        /* the fastest CPU backend there is: cpu-dnnl where its module loads */
        assert_string_equal(sm_backend_name(be), sm_backend_probe(SM_BACKEND_CPU_DNNL) == SM_OK
                                                     ? "cpu-dnnl"
                                                     : "cpu-blas");
        assert_non_null(strstr(sm_backend_fallback_reason(be), "cuda"));
        sm_backend_destroy(be);
    }
    assert_string_equal(sm_backend_kind_name(SM_BACKEND_CPU_DNNL), "cpu-dnnl");
    if (sm_backend_probe(SM_BACKEND_CPU_DNNL) == SM_OK) {
        assert_int_equal(sm_backend_create(SM_BACKEND_CPU_DNNL, &be), SM_OK);
        assert_string_equal(sm_backend_name(be), "cpu-dnnl");
        assert_int_equal(sm_backend_get_kind(be), SM_BACKEND_CPU_DNNL);
        assert_string_equal(sm_backend_fallback_reason(be), ""); /* forced: no fallback */
        assert_int_equal(sm_backend_set_threads(be, 1), SM_OK);
        assert_int_equal(sm_backend_get_threads(be), 1);
        assert_int_equal(sm_backend_set_threads(be, 0), SM_OK);
        assert_true(sm_backend_get_threads(be) >= 1);
        sm_backend_destroy(be);
    } else {
        expect_status(sm_backend_create(SM_BACKEND_CPU_DNNL, &be), SM_ERR_BACKEND_UNAVAILABLE,
                      "cpu-dnnl");
    }
}

static void test_arch(void **state)
{
    (void)state;
    sm_arch *a = NULL;
    assert_int_equal(sm_arch_create_koch(&a), SM_OK);
    assert_int_equal(sm_arch_num_layers(a), 13);
    assert_int_equal(sm_arch_output_size(a), 4096);
    /* the reference's parameter counts: 6,464 + 401,536 + 262,272 + 819,456 + 26,218,496 */
    assert_int_equal(sm_arch_num_params(a), 6464 + 401536 + 262272 + 819456 + 26218496);
    char text[256];
    size_t need = 0;
    assert_int_equal(sm_arch_to_string(a, text, sizeof text, &need), SM_OK);
    assert_string_equal(text, "1x105x105:conv64k10,relu,pool2,conv128k7,relu,pool2,conv128k4,"
                              "relu,pool2,conv256k5,relu,flatten,fc4096");
    assert_int_equal(need, strlen(text));
    expect_status(sm_arch_to_string(a, text, 10, &need), SM_ERR_LIMIT, NULL);
    assert_int_equal(text[0], 0);
    sm_layer_kind k;
    int pa, pb;
    assert_int_equal(sm_arch_get_layer(a, 3, &k, &pa, &pb), SM_OK);
    assert_int_equal(k, SM_LAYER_CONV);
    assert_int_equal(pa, 128);
    assert_int_equal(pb, 7);
    expect_status(sm_arch_get_layer(a, 13, &k, &pa, &pb), SM_ERR_INVALID_ARG, "13");
    /* shape errors leave the arch unchanged */
    expect_status(sm_arch_add_conv(a, 8, 3), SM_ERR_SHAPE, "flat");
    expect_status(sm_arch_add_maxpool(a, 2), SM_ERR_SHAPE, NULL);
    assert_int_equal(sm_arch_num_layers(a), 13);
    sm_arch_destroy(a);

    assert_int_equal(sm_arch_create(1, 8, 8, &a), SM_OK);
    expect_status(sm_arch_add_fc(a, 4), SM_ERR_SHAPE, "flatten");
    expect_status(sm_arch_add_conv(a, 4, 9), SM_ERR_SHAPE, "larger");
    expect_status(sm_arch_add_conv(a, 0, 3), SM_ERR_INVALID_ARG, NULL);
    expect_status(sm_arch_add_maxpool(a, -2), SM_ERR_INVALID_ARG, NULL);
    sm_arch_destroy(a);

    const char *bad[] = {"",
                         "1x105x105",
                         "0x10x10:relu",
                         "1x10x10:conv",
                         "1x10x10:conv4k",
                         "1x10x10:pool0",
                         "1x10x10:bogus",
                         "1x10x10:fc4",
                         "1x99999x2:relu",
                         "1x10x10:conv4k3,,relu",
                         "1x10x10:conv99999999999k3"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        a = NULL;
        sm_status s = sm_arch_from_string(bad[i], &a);
        if (s == SM_OK) fail_msg("'%s' was accepted", bad[i]);
        assert_null(a);
    }
    expect_status(sm_arch_create(0, 5, 5, &a), SM_ERR_INVALID_ARG, NULL);
    expect_status(sm_arch_create(1, 5000, 5, &a), SM_ERR_INVALID_ARG, NULL);
}

/* GroupNorm in the architecture language (0.4): text round trip, parameters (a weight and a
 * bias per channel), and what is refused, by the text form and by sm_arch_add_groupnorm. */
static void test_arch_groupnorm(void **state)
{
    (void)state;
    const char *text = "1x12x12:conv8k3,gn4,relu,pool2,conv8k3,gn2,relu,flatten,fc16";
    sm_arch *a = NULL;
    assert_int_equal(sm_arch_from_string(text, &a), SM_OK);
    char back[128];
    assert_int_equal(sm_arch_to_string(a, back, sizeof back, NULL), SM_OK);
    assert_string_equal(back, text);
    sm_layer_kind k;
    int pa, pb;
    assert_int_equal(sm_arch_get_layer(a, 1, &k, &pa, &pb), SM_OK);
    assert_int_equal(k, SM_LAYER_GROUPNORM);
    assert_int_equal(pa, 4);
    assert_int_equal(pb, 0);
    /* conv 8*9+8, gn 8+8, conv 8*8*9+8, gn 8+8, fc 16*(8*3*3)+16 */
    assert_int_equal(sm_arch_num_params(a), 80 + 16 + 584 + 16 + 1168);
    assert_int_equal(sm_arch_output_size(a), 16);
    sm_arch_destroy(a);

    /* the API: groups must divide the channels; not on a flat input; at least 1 */
    assert_int_equal(sm_arch_create(3, 8, 8, &a), SM_OK);
    assert_int_equal(sm_arch_add_groupnorm(a, 3), SM_OK); /* on the input: 1 channel a group */
    assert_int_equal(sm_arch_add_groupnorm(a, 1), SM_OK);
    assert_int_equal(sm_arch_add_conv(a, 8, 3), SM_OK);
    expect_status(sm_arch_add_groupnorm(a, 3), SM_ERR_SHAPE, "divide");
    expect_status(sm_arch_add_groupnorm(a, 16), SM_ERR_SHAPE, "divide");
    expect_status(sm_arch_add_groupnorm(a, 0), SM_ERR_INVALID_ARG, NULL);
    expect_status(sm_arch_add_groupnorm(a, -2), SM_ERR_INVALID_ARG, NULL);
    expect_status(sm_arch_add_groupnorm(NULL, 2), SM_ERR_INVALID_ARG, NULL);
    assert_int_equal(sm_arch_num_layers(a), 3); /* unchanged by the refusals */
    assert_int_equal(sm_arch_add_groupnorm(a, 8), SM_OK);
    assert_int_equal(sm_arch_add_flatten(a), SM_OK);
    expect_status(sm_arch_add_groupnorm(a, 1), SM_ERR_SHAPE, "flat");
    assert_int_equal(sm_arch_add_relu(a), SM_OK);
    expect_status(sm_arch_add_groupnorm(a, 1), SM_ERR_SHAPE, "flat");
    assert_int_equal(sm_arch_add_fc(a, 4), SM_OK);
    expect_status(sm_arch_add_groupnorm(a, 1), SM_ERR_SHAPE, "flat");
    assert_int_equal(sm_arch_to_string(a, back, sizeof back, NULL), SM_OK);
    assert_string_equal(back, "3x8x8:gn3,gn1,conv8k3,gn8,flatten,relu,fc4");
    sm_arch_destroy(a);

    /* the text form: the same refusals, and malformed tokens */
    const struct {
        const char *text;
        sm_status want;
    } cases[] = {
        {"1x10x10:conv8k3,gn3", SM_ERR_SHAPE},
        {"1x10x10:conv8k3,flatten,gn1", SM_ERR_SHAPE},
        {"1x10x10:conv8k3,flatten,fc4,gn1", SM_ERR_SHAPE},
        {"1x10x10:conv8k3,gn0", SM_ERR_INVALID_ARG},
        {"1x10x10:conv8k3,gn", SM_ERR_INVALID_ARG},
        {"1x10x10:conv8k3,gn2x", SM_ERR_INVALID_ARG},
        {"1x10x10:conv8k3,gn-2", SM_ERR_INVALID_ARG},
        {"1x10x10:conv8k3,gn99999999999", SM_ERR_INVALID_ARG},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        a = NULL;
        sm_status st = sm_arch_from_string(cases[i].text, &a);
        if (st != cases[i].want)
            fail_msg("'%s': %s (%s), expected %s", cases[i].text, sm_status_name(st),
                     sm_last_error(), sm_status_name(cases[i].want));
        assert_null(a);
    }
}

typedef struct model {
    sm_backend *be;
    sm_arch *arch;
    sm_subnet *sub;
    sm_head *head;
    sm_adam *adam;
    sm_trainer *tr;
    sm_dataset *ds;
} model;

static void model_open(model *m, uint64_t seed, int with_data)
{
    memset(m, 0, sizeof *m);
    assert_int_equal(sm_backend_create(SM_BACKEND_CPU, &m->be), SM_OK);
    assert_int_equal(sm_arch_from_string(TINY, &m->arch), SM_OK);
    assert_int_equal(sm_subnet_create(m->be, m->arch, seed, &m->sub), SM_OK);
    assert_int_equal(sm_head_create(m->be, sm_subnet_feature_dim(m->sub), seed + 1, &m->head),
                     SM_OK);
    assert_int_equal(sm_adam_create(m->sub, m->head, &m->adam), SM_OK);
    if (with_data) assert_int_equal(sm_dataset_create_synthetic(12, 4, 12, 12, 5, &m->ds), SM_OK);
    assert_int_equal(sm_trainer_create(m->sub, m->head, m->adam, m->ds, seed, &m->tr), SM_OK);
    assert_int_equal(sm_trainer_set_param(m->tr, SM_TRAINER_BATCH_SIZE, 6), SM_OK);
}

static void model_close(model *m)
{
    sm_trainer_destroy(m->tr);
    sm_adam_destroy(m->adam);
    sm_head_destroy(m->head);
    sm_subnet_destroy(m->sub);
    sm_arch_destroy(m->arch);
    sm_dataset_destroy(m->ds);
    sm_backend_destroy(m->be);
}

static void test_options_out_of_range(void **state)
{
    (void)state;
    model m;
    model_open(&m, 1, 1);
    int64_t v;
    expect_status(sm_trainer_set_param(m.tr, SM_TRAINER_BATCH_SIZE, 0), SM_ERR_INVALID_ARG, NULL);
    expect_status(sm_trainer_set_param(m.tr, SM_TRAINER_BATCH_SIZE, 1 << 30), SM_ERR_INVALID_ARG,
                  NULL);
    expect_status(sm_trainer_set_param(m.tr, SM_TRAINER_MICRO_BATCH, -3), SM_ERR_INVALID_ARG, NULL);
    expect_status(sm_trainer_set_param(m.tr, (sm_trainer_param)77, 3), SM_ERR_INVALID_ARG, "77");
    assert_int_equal(sm_trainer_get_param(m.tr, SM_TRAINER_BATCH_SIZE, &v), SM_OK);
    assert_int_equal(v, 6);
    expect_status(sm_adam_set(m.adam, SM_ADAM_LEARNING_RATE, 0), SM_ERR_INVALID_ARG, NULL);
    expect_status(sm_adam_set(m.adam, SM_ADAM_LEARNING_RATE, NAN), SM_ERR_INVALID_ARG, NULL);
    expect_status(sm_adam_set(m.adam, SM_ADAM_BETA1, 1.0), SM_ERR_INVALID_ARG, NULL);
    expect_status(sm_adam_set(m.adam, SM_ADAM_BETA2, -0.1), SM_ERR_INVALID_ARG, NULL);
    expect_status(sm_adam_set(m.adam, SM_ADAM_EPSILON, 2), SM_ERR_INVALID_ARG, NULL);
    expect_status(sm_adam_set(m.adam, (sm_adam_param)99, 0.1), SM_ERR_INVALID_ARG, NULL);
    double lr;
    assert_int_equal(sm_adam_get(m.adam, SM_ADAM_LEARNING_RATE, &lr), SM_OK);
    assert_true(lr == 6e-5);
    float l[2] = {0.5f, 2.0f}, img[2 * 144] = {0};
    expect_status(sm_train_step_batch(m.tr, 2, img, img, l, NULL), SM_ERR_INVALID_ARG, "label 1");
    expect_status(sm_train_step_batch(m.tr, 0, img, img, l, NULL), SM_ERR_INVALID_ARG, NULL);
    model_close(&m);
}

static void test_mismatches(void **state)
{
    (void)state;
    model m;
    model_open(&m, 1, 0);
    /* a head of the wrong width, an Adam state of another model, a dataset of another size */
    sm_head *h2;
    sm_adam *a2;
    sm_trainer *t2 = NULL;
    sm_dataset *ds;
    assert_int_equal(sm_head_create(m.be, 5, 1, &h2), SM_OK);
    assert_int_equal(sm_adam_create(m.sub, h2, &a2), SM_OK);
    expect_status(sm_trainer_create(m.sub, h2, a2, NULL, 0, &t2), SM_ERR_SHAPE, "features");
    expect_status(sm_trainer_create(m.sub, m.head, a2, NULL, 0, &t2), SM_ERR_INVALID_ARG, "Adam");
    float img[144] = {0}, s;
    expect_status(sm_predict_pair(m.sub, h2, img, img, &s), SM_ERR_SHAPE, NULL);
    assert_int_equal(sm_dataset_create_synthetic(4, 3, 20, 20, 1, &ds), SM_OK);
    expect_status(sm_trainer_create(m.sub, m.head, m.adam, ds, 0, &t2), SM_ERR_SHAPE, "20");
    assert_null(t2);
    /* no dataset: sm_train_step is a state error, sm_train_step_batch works */
    expect_status(sm_train_step(m.tr, &s), SM_ERR_STATE, "dataset");
    sm_dataset_destroy(ds);
    sm_adam_destroy(a2);
    sm_head_destroy(h2);
    model_close(&m);
}

static void run_losses(uint64_t seed, int micro, float *out, int n)
{
    model m;
    model_open(&m, seed, 1);
    assert_int_equal(sm_adam_set(m.adam, SM_ADAM_LEARNING_RATE, 1e-2), SM_OK);
    assert_int_equal(sm_trainer_set_param(m.tr, SM_TRAINER_MICRO_BATCH, micro), SM_OK);
    for (int i = 0; i < n; i++) assert_int_equal(sm_train_step(m.tr, &out[i]), SM_OK);
    assert_int_equal(sm_trainer_iteration(m.tr), n);
    assert_int_equal(sm_adam_steps(m.adam), n);
    model_close(&m);
}

static void test_determinism_and_micro_batches(void **state)
{
    (void)state;
    float a[5], b[5], c[5], d[5];
    run_losses(3, 32, a, 5);
    run_losses(3, 32, b, 5);
    run_losses(4, 32, c, 5);
    run_losses(3, 4, d, 5);
    int differ = 0;
    for (int i = 0; i < 5; i++) {
        assert_true(a[i] == b[i]); /* same seed: the same losses, bit for bit */
        differ += a[i] != c[i];
        assert_true(fabsf(a[i] - d[i]) < 1e-5f); /* micro-batches: the same to rounding */
    }
    assert_true(differ > 0);
}

static void test_nonfinite_step_changes_nothing(void **state)
{
    (void)state;
    model m;
    model_open(&m, 2, 0);
    enum { P = 3, IN = 144 };
    float left[P * IN], right[P * IN], labels[P] = {1, 0, 1}, loss;
    for (int i = 0; i < P * IN; i++) left[i] = (float)(i % 7) / 7, right[i] = (float)(i % 5) / 5;
    assert_int_equal(sm_train_step_batch(m.tr, P, left, right, labels, &loss), SM_OK);
    size_t np = sm_subnet_num_params(m.sub);
    float *before = malloc(np * sizeof *before), *after = malloc(np * sizeof *after);
    float a0[P], a1[P];
    assert_int_equal(sm_predict_pairs(m.sub, m.head, P, left, right, a0), SM_OK);
    /* read the weights through a model save would be nicer; embeddings do as a fingerprint */
    assert_int_equal(sm_embed(m.sub, 1, left, before), SM_OK);
    left[5] = NAN;
    expect_status(sm_train_step_batch(m.tr, P, left, right, labels, &loss), SM_ERR_NUMERIC,
                  "not applied");
    left[5] = INFINITY;
    expect_status(sm_train_step_batch(m.tr, P, left, right, labels, &loss), SM_ERR_NUMERIC, NULL);
    left[5] = 0.5f;
    assert_int_equal(sm_trainer_iteration(m.tr), 1);
    assert_int_equal(sm_adam_steps(m.adam), 1);
    assert_int_equal(sm_predict_pairs(m.sub, m.head, P, left, right, a1), SM_OK);
    assert_memory_equal(a0, a1, sizeof a0);
    assert_int_equal(sm_embed(m.sub, 1, left, after), SM_OK);
    assert_memory_equal(before, after, sm_subnet_feature_dim(m.sub) * sizeof(float));
    free(before), free(after);
    model_close(&m);
}

static void test_predict_and_embed(void **state)
{
    (void)state;
    model m;
    model_open(&m, 5, 1);
    enum { N = 70, IN = 144 }; /* more than one chunk */
    float *a = malloc(N * IN * sizeof *a), *b = malloc(N * IN * sizeof *b), s[N], one;
    for (int i = 0; i < N; i++) {
        assert_int_equal(
            sm_dataset_get_image(m.ds, (size_t)i % sm_dataset_num_images(m.ds), a + i * IN), SM_OK);
        assert_int_equal(sm_dataset_get_image(
                             m.ds, (size_t)(i * 7 + 3) % sm_dataset_num_images(m.ds), b + i * IN),
                         SM_OK);
    }
    assert_int_equal(sm_predict_pairs(m.sub, m.head, N, a, b, s), SM_OK);
    for (int i = 0; i < N; i += 9) {
        assert_int_equal(sm_predict_pair(m.sub, m.head, a + i * IN, b + i * IN, &one), SM_OK);
        assert_true(fabsf(one - s[i]) < 1e-6f);
        assert_true(s[i] > 0.0f && s[i] < 1.0f);
    }
    /* a pair of identical images has |F1 - F2| = 0: the score is sigmoid(b) */
    assert_int_equal(sm_predict_pair(m.sub, m.head, a, a, &one), SM_OK);
    float fa[8], fb[8];
    assert_int_equal(sm_embed(m.sub, 1, a, fa), SM_OK);
    assert_int_equal(sm_embed(m.sub, 1, a, fb), SM_OK);
    assert_memory_equal(fa, fb, sizeof fa);
    for (int i = 0; i < 8; i++) assert_true(fa[i] > 0.0f && fa[i] < 1.0f);
    assert_int_equal(sm_predict_pairs(m.sub, m.head, 0, a, b, s), SM_OK);
    free(a), free(b);
    model_close(&m);
}

static int log_calls;
static void on_log(void *user, sm_log_level level, const char *msg)
{
    (void)user, (void)level, (void)msg;
    log_calls++;
}

static int progress_calls;
static void on_progress(void *user, int64_t it, float loss)
{
    (void)user;
    assert_int_equal(it, progress_calls + 1);
    assert_true(isfinite(loss));
    progress_calls++;
}

static void test_callbacks(void **state)
{
    (void)state;
    sm_set_log_callback(on_log, NULL, SM_LOG_DEBUG);
    sm_backend *be;
    assert_int_equal(sm_backend_create(SM_BACKEND_AUTO, &be), SM_OK);
    sm_backend_destroy(be);
    sm_set_log_callback(NULL, NULL, SM_LOG_INFO);
    if (sm_backend_probe(SM_BACKEND_CUDA) != SM_OK) assert_true(log_calls >= 1);
    model m;
    model_open(&m, 1, 1);
    assert_int_equal(sm_trainer_set_progress(m.tr, on_progress, NULL), SM_OK);
    for (int i = 0; i < 3; i++) assert_int_equal(sm_train_step(m.tr, NULL), SM_OK);
    assert_int_equal(progress_calls, 3);
    model_close(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_versions_and_statuses),
        cmocka_unit_test(test_destroy_null_is_noop),
        cmocka_unit_test(test_null_arguments),
        cmocka_unit_test(test_backend_selection),
        cmocka_unit_test(test_arch),
        cmocka_unit_test(test_arch_groupnorm),
        cmocka_unit_test(test_options_out_of_range),
        cmocka_unit_test(test_mismatches),
        cmocka_unit_test(test_determinism_and_micro_batches),
        cmocka_unit_test(test_nonfinite_step_changes_nothing),
        cmocka_unit_test(test_predict_and_embed),
        cmocka_unit_test(test_callbacks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
