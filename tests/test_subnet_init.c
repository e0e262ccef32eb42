/* SPDX-License-Identifier: MIT */
/* sm_subnet_init (0.3): He et al.'s scheme draws each layer's weights with std sqrt(2 / fan_in)
 * and zero biases; the reference scheme is exactly what sm_subnet_create draws; both are
 * reproducible by seed; bad arguments change nothing. The layout of the flat parameter buffer
 * is written out here by hand (PyTorch's state_dict order), not read from the library. Last,
 * the reason for the scheme: a three-layer twin's features keep a spread under He's weights
 * where the reference's N(0, 0.01^2) squeezes them to sigmoid(~0) = 0.5. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "network/network.h"
#include "siamese/siamese.h"

/* 1x20x20 -> conv16k5 (400 w, 16 b) -> 16x16x16 -> pool2 -> 16x8x8 -> conv32k3 (4608 w, 32 b)
 * -> 32x6x6 = 1152 -> fc64 (73728 w, 64 b) */
#define ARCH "1x20x20:conv16k5,relu,pool2,conv32k3,relu,flatten,fc64"
typedef struct tensor {
    size_t off, n;
    double fan_in;
} tensor;
static const tensor weights[] = {{0, 400, 25}, {416, 4608, 144}, {5056, 73728, 1152}};
static const tensor biases[] = {{400, 16, 0}, {5024, 32, 0}, {78784, 64, 0}};
enum { N_PARAMS = 78848 };

static sm_backend *be;

static sm_subnet *make(uint64_t seed)
{
    sm_arch *arch;
    sm_subnet *s;
    assert_int_equal(sm_arch_from_string(ARCH, &arch), SM_OK);
    assert_int_equal(sm_subnet_create(be, arch, seed, &s), SM_OK);
    sm_arch_destroy(arch);
    assert_int_equal(sm_subnet_num_params(s), N_PARAMS);
    return s;
}

static int setup(void **state)
{
    (void)state;
    return sm_backend_create(SM_BACKEND_CPU, &be) == SM_OK ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    sm_backend_destroy(be);
    return 0;
}

static void test_he_scale_per_layer(void **state)
{
    (void)state;
    sm_subnet *s = make(3);
    assert_int_equal(sm_subnet_init(s, SM_INIT_HE, 11), SM_OK);
    for (size_t t = 0; t < 3; t++) {
        const float *w = s->params + weights[t].off;
        double sum = 0, sq = 0;
        for (size_t i = 0; i < weights[t].n; i++) {
            sum += w[i];
            sq += (double)w[i] * w[i];
        }
        double n = (double)weights[t].n, mean = sum / n, sd = sqrt(sq / n - mean * mean);
        double want = sqrt(2.0 / weights[t].fan_in);
        /* the sample std's own spread is want / sqrt(2n): 5 of those, at least 1 % */
        double tol = fmax(5.0 / sqrt(2.0 * n), 0.01);
        if (fabs(sd / want - 1.0) > tol)
            fail_msg("weights %zu: std %.5f, want %.5f (+- %.1f %%)", t, sd, want, 100 * tol);
        if (fabs(mean) > 5.0 * want / sqrt(n))
            fail_msg("weights %zu: mean %.5f, want 0 (std %.5f)", t, mean, want);
        const float *b = s->params + biases[t].off;
        for (size_t i = 0; i < biases[t].n; i++)
            if (b[i] != 0.0f || signbit(b[i])) fail_msg("bias %zu[%zu] is %g, not +0", t, i, b[i]);
    }
    sm_subnet_destroy(s);
}

static void test_reproducible_by_seed(void **state)
{
    (void)state;
    sm_subnet *a = make(1), *b = make(2);
    assert_int_equal(sm_subnet_init(a, SM_INIT_HE, 5), SM_OK);
    assert_int_equal(sm_subnet_init(b, SM_INIT_HE, 5), SM_OK);
    assert_memory_equal(a->params, b->params, N_PARAMS * sizeof(float));
    assert_int_equal(sm_subnet_init(b, SM_INIT_HE, 6), SM_OK);
    assert_memory_not_equal(a->params, b->params, 400 * sizeof(float));
    sm_subnet_destroy(a);
    sm_subnet_destroy(b);
}

static void test_reference_is_what_create_draws(void **state)
{
    (void)state;
    sm_subnet *a = make(7), *b = make(8);
    assert_int_equal(sm_subnet_init(b, SM_INIT_HE, 7), SM_OK);
    assert_int_equal(sm_subnet_init(b, SM_INIT_REFERENCE, 7), SM_OK);
    assert_memory_equal(a->params, b->params, N_PARAMS * sizeof(float));
    sm_subnet_destroy(a);
    sm_subnet_destroy(b);
}

static void test_bad_arguments_change_nothing(void **state)
{
    (void)state;
    sm_subnet *s = make(4);
    float *before = malloc(N_PARAMS * sizeof *before);
    assert_non_null(before);
    memcpy(before, s->params, N_PARAMS * sizeof *before);
    assert_int_equal(sm_subnet_init(NULL, SM_INIT_HE, 1), SM_ERR_INVALID_ARG);
    assert_int_equal(sm_subnet_init(s, (sm_init)2, 1), SM_ERR_INVALID_ARG);
    assert_non_null(strstr(sm_last_error(), "unknown scheme"));
    assert_int_equal(sm_subnet_init(s, (sm_init)-1, 1), SM_ERR_INVALID_ARG);
    assert_memory_equal(before, s->params, N_PARAMS * sizeof *before);
    free(before);
    sm_subnet_destroy(s);
}

/* Spread of sigmoid(subnet(x)) over 8 random images and all 64 features. */
static double feature_spread(sm_subnet *s)
{
    enum { N = 8, PIX = 400, DIM = 64 };
    static float images[N * PIX], feat[N * DIM];
    uint32_t x = 12345;
    for (size_t i = 0; i < N * PIX; i++) {
        x = x * 1664525u + 1013904223u;
        images[i] = (float)(x >> 8) / (float)(1u << 24);
    }
    assert_int_equal(sm_embed(s, N, images, feat), SM_OK);
    double sum = 0, sq = 0;
    for (size_t i = 0; i < N * DIM; i++) {
        sum += feat[i];
        sq += (double)feat[i] * feat[i];
    }
    double mean = sum / (N * DIM);
    return sqrt(sq / (N * DIM) - mean * mean);
}

static void test_he_keeps_features_apart(void **state)
{
    (void)state;
    sm_subnet *s = make(9);
    double ref = feature_spread(s);
    assert_int_equal(sm_subnet_init(s, SM_INIT_HE, 9), SM_OK);
    double he = feature_spread(s);
    /* measured: reference 0.0023, He 0.20 */
    if (!(ref < 0.01 && he > 0.05 && he > 20 * ref))
        fail_msg("feature spread: reference %g, He %g", ref, he);
    sm_subnet_destroy(s);
}

/* GroupNorm's weight and bias start at 1 and 0 under both schemes and draw nothing from the
 * seed's stream: every other layer gets exactly the numbers it gets in the same arch without
 * the groupnorm layers (0.4). */
static void test_groupnorm_init(void **state)
{
    (void)state;
    const char *with = "1x20x20:conv16k5,gn4,relu,pool2,conv32k3,gn8,relu,flatten,fc64";
    sm_arch *arch;
    sm_subnet *g, *plain = make(7);
    assert_int_equal(sm_arch_from_string(with, &arch), SM_OK);
    assert_int_equal(sm_subnet_create(be, arch, 7, &g), SM_OK);
    sm_arch_destroy(arch);
    assert_int_equal(sm_subnet_num_params(g), N_PARAMS + 2 * 16 + 2 * 32);
    float *pg = malloc((N_PARAMS + 96) * sizeof *pg), *pp = malloc(N_PARAMS * sizeof *pp);
    for (int scheme = 0; scheme < 2; scheme++) {
        if (scheme) {
            assert_int_equal(sm_subnet_init(g, SM_INIT_HE, 9), SM_OK);
            assert_int_equal(sm_subnet_init(plain, SM_INIT_HE, 9), SM_OK);
        }
        assert_int_equal(sm__subnet_read_params(g, pg), SM_OK);
        assert_int_equal(sm__subnet_read_params(plain, pp), SM_OK);
        /* conv1 (416), gn 16 + 16, conv2 (4640), gn 32 + 32, fc (73792) */
        assert_memory_equal(pg, pp, 416 * sizeof *pg);
        for (int i = 0; i < 16; i++) assert_true(pg[416 + i] == 1.0f && pg[432 + i] == 0.0f);
        assert_memory_equal(pg + 448, pp + 416, 4640 * sizeof *pg);
        for (int i = 0; i < 32; i++) assert_true(pg[5088 + i] == 1.0f && pg[5120 + i] == 0.0f);
        assert_memory_equal(pg + 5152, pp + 5056, 73792 * sizeof *pg);
    }
    free(pg), free(pp);
    sm_subnet_destroy(g);
    sm_subnet_destroy(plain);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_he_scale_per_layer),
        cmocka_unit_test(test_reproducible_by_seed),
        cmocka_unit_test(test_reference_is_what_create_draws),
        cmocka_unit_test(test_bad_arguments_change_nothing),
        cmocka_unit_test(test_he_keeps_features_apart),
        cmocka_unit_test(test_groupnorm_init),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
