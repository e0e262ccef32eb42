/* SPDX-License-Identifier: MIT */
/* Learning: a short training run on generated glyphs reaches clearly better-than-chance
 * verification accuracy on classes it never saw (the reference's protocol: 5 x 150 random pairs). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <cmocka.h>

#include "siamese/siamese.h"

#define ARCH "1x32x32:conv8k5,relu,pool2,conv16k5,relu,pool2,flatten,fc64"

static double accuracy(const sm_subnet *sub, const sm_head *head, const sm_dataset *ds,
                       uint64_t seed)
{
    enum { BATCHES = 5, P = 150, IN = 32 * 32 };
    float *a = malloc(P * IN * sizeof *a), *b = malloc(P * IN * sizeof *b);
    float labels[P], scores[P];
    sm_sampler *smp;
    assert_int_equal(sm_sampler_create(ds, seed, &smp), SM_OK);
    int right = 0;
    for (int k = 0; k < BATCHES; k++) {
        assert_int_equal(sm_sampler_next(smp, P, a, b, labels, NULL, NULL), SM_OK);
        assert_int_equal(sm_predict_pairs(sub, head, P, a, b, scores), SM_OK);
        for (int i = 0; i < P; i++) right += (scores[i] >= 0.5f) == (labels[i] >= 0.5f);
    }
    sm_sampler_destroy(smp);
    free(a), free(b);
    return (double)right / (BATCHES * P);
}

static void test_learns_held_out_classes(void **state)
{
    (void)state;
    sm_backend *be;
    sm_arch *arch;
    sm_subnet *sub;
    sm_head *head;
    sm_adam *adam;
    sm_trainer *tr;
    sm_dataset *train, *test;
    assert_int_equal(sm_backend_create(SM_BACKEND_CPU, &be), SM_OK);
    assert_int_equal(sm_arch_from_string(ARCH, &arch), SM_OK);
    assert_int_equal(sm_subnet_create(be, arch, 11, &sub), SM_OK);
    assert_int_equal(sm_head_create(be, sm_subnet_feature_dim(sub), 12, &head), SM_OK);
    assert_int_equal(sm_adam_create(sub, head, &adam), SM_OK);
    assert_int_equal(sm_adam_set(adam, SM_ADAM_LEARNING_RATE, 1e-3), SM_OK);
    /* different generator seeds: the test classes are figures the network never saw */
    assert_int_equal(sm_dataset_create_synthetic(500, 6, 32, 32, 1, &train), SM_OK);
    assert_int_equal(sm_dataset_create_synthetic(40, 10, 32, 32, 2, &test), SM_OK);
    assert_int_equal(sm_trainer_create(sub, head, adam, train, 13, &tr), SM_OK);
    assert_int_equal(sm_trainer_set_param(tr, SM_TRAINER_BATCH_SIZE, 32), SM_OK);

    double before = accuracy(sub, head, test, 99);
    clock_t t0 = clock();
    float loss = 0, first = 0;
    const int steps = 800;
    for (int i = 0; i < steps; i++) {
        assert_int_equal(sm_train_step(tr, &loss), SM_OK);
        if (i == 0) first = loss;
    }
    double after = accuracy(sub, head, test, 99);
    printf("held-out verification accuracy: %.1f %% before, %.1f %% after %d steps of 32 pairs "
           "(loss %.3f -> %.3f, %.1f s CPU)\n",
           100 * before, 100 * after, steps, (double)first, (double)loss,
           (double)(clock() - t0) / CLOCKS_PER_SEC);
    assert_true(after >= 0.70);
    assert_true(loss < first);

    sm_trainer_destroy(tr);
    sm_dataset_destroy(train);
    sm_dataset_destroy(test);
    sm_adam_destroy(adam);
    sm_head_destroy(head);
    sm_subnet_destroy(sub);
    sm_arch_destroy(arch);
    sm_backend_destroy(be);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_learns_held_out_classes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
