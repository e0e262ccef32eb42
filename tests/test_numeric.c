/* SPDX-License-Identifier: MIT */
/* Numerical faults: a non-finite gradient or loss, planted through the test-only hook
 * sm__inject_nonfinite (lib/train/training.h) after a real forward/backward pass, makes
 * sm_train_step and sm_train_step_batch return SM_ERR_NUMERIC with a message, and leaves everything
 * exactly as before the step: subnet and head parameters, Adam's m and v (bit for bit) and step
 * count, the trainer's iteration and the pair sampler's state. The loss output is not written and
 * the progress callback is not called. The next step then gives exactly the loss (and parameters)
 * an uninterrupted run gives at that iteration. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "train/training.h"
#include "data/sampler.h"
#include "siamese/siamese.h"
#include "train_state.h"

#define ARCH     "1x12x12:conv4k3,relu,pool2,conv4k3,relu,flatten,fc8"
#define PIX      (12 * 12)
#define STEPS    4 /* the uninterrupted run */
#define FAULT_AT 2 /* steps done before the faulty one */

typedef struct env {
    sm_backend *be;
    sm_dataset *ds;
} env;

typedef struct model {
    sm_subnet *s;
    sm_head *h;
    sm_adam *a;
    sm_trainer *t;
    int progress_calls;
} model;

static void on_progress(void *user, int64_t it, float loss)
{
    (void)it, (void)loss;
    ((model *)user)->progress_calls++;
}

static void model_make(const env *e, model *m)
{
    memset(m, 0, sizeof *m);
    sm_arch *arch;
    assert_int_equal(sm_arch_from_string(ARCH, &arch), SM_OK);
    assert_int_equal(sm_subnet_create(e->be, arch, 1, &m->s), SM_OK);
    sm_arch_destroy(arch);
    assert_int_equal(sm_head_create(e->be, sm_subnet_feature_dim(m->s), 2, &m->h), SM_OK);
    assert_int_equal(sm_adam_create(m->s, m->h, &m->a), SM_OK);
    assert_int_equal(sm_trainer_create(m->s, m->h, m->a, e->ds, 3, &m->t), SM_OK);
    assert_int_equal(sm_trainer_set_param(m->t, SM_TRAINER_BATCH_SIZE, 4), SM_OK);
    assert_int_equal(sm_trainer_set_param(m->t, SM_TRAINER_MICRO_BATCH, 2), SM_OK);
    assert_int_equal(sm_trainer_set_progress(m->t, on_progress, m), SM_OK);
}

static void model_free(model *m)
{
    sm_trainer_destroy(m->t);
    sm_adam_destroy(m->a);
    sm_head_destroy(m->h);
    sm_subnet_destroy(m->s);
}

static int setup(void **state)
{
    env *e = calloc(1, sizeof *e);
    if (!e || sm_backend_create(SM_BACKEND_CPU, &e->be) != SM_OK) return -1;
    sm_backend_set_threads(e->be, 1);
    if (sm_dataset_create_synthetic(20, 4, 12, 12, 5, &e->ds) != SM_OK) return -1;
    *state = e;
    return 0;
}

static int teardown(void **state)
{
    env *e = *state;
    sm_dataset_destroy(e->ds);
    sm_backend_destroy(e->be);
    free(e);
    return 0;
}

static const struct {
    int kind;
    const char *needle; /* what the message must mention */
} faults[] = {
    {SM__INJECT_SUBNET_NAN, "subnet gradient"},
    {SM__INJECT_HEAD_INF, "head gradient"},
    {SM__INJECT_LOSS_NAN, "loss"},
};

static void check_failed(sm_status st, const char *needle, float loss)
{
    if (st != SM_ERR_NUMERIC)
        fail_msg("got %s (%s), expected SM_ERR_NUMERIC", sm_status_name(st), sm_last_error());
    if (!strstr(sm_last_error(), needle) || !strstr(sm_last_error(), "not finite"))
        fail_msg("message '%s' does not say the %s is not finite", sm_last_error(), needle);
    assert_true(loss == 12345.0f);                           /* not written */
    assert_int_equal(atomic_load(&sm__inject_nonfinite), 0); /* the hook fires once */
}

static void test_faulty_step_changes_nothing(void **state)
{
    env *e = *state;
    /* the uninterrupted run */
    model ref;
    model_make(e, &ref);
    float ref_loss[STEPS];
    for (int i = 0; i < STEPS; i++) assert_int_equal(sm_train_step(ref.t, &ref_loss[i]), SM_OK);
    train_state ref_end;
    train_state_take(ref.t, &ref_end);
    model_free(&ref);

    for (size_t f = 0; f < sizeof faults / sizeof *faults; f++) {
        model m;
        model_make(e, &m);
        float loss;
        for (int i = 0; i < FAULT_AT; i++) {
            assert_int_equal(sm_train_step(m.t, &loss), SM_OK);
            assert_memory_equal(&loss, &ref_loss[i], sizeof loss);
        }
        train_state before, after;
        train_state_take(m.t, &before);
        /* twice in a row: a failed step is repeatable and still changes nothing */
        for (int rep = 0; rep < 2; rep++) {
            atomic_store(&sm__inject_nonfinite, faults[f].kind);
            loss = 12345.0f;
            sm_status st = sm_train_step(m.t, &loss);
            check_failed(st, faults[f].needle, loss);
            train_state_take(m.t, &after);
            assert_true(train_state_equal(&before, &after));
            train_state_free(&after);
            assert_int_equal(m.progress_calls, FAULT_AT);
        }
        /* the run goes on as if nothing had happened */
        for (int i = FAULT_AT; i < STEPS; i++) {
            assert_int_equal(sm_train_step(m.t, &loss), SM_OK);
            if (memcmp(&loss, &ref_loss[i], sizeof loss) != 0)
                fail_msg("fault %d: step %d gave loss %.9g, the uninterrupted run %.9g",
                         faults[f].kind, i + 1, (double)loss, (double)ref_loss[i]);
        }
        assert_int_equal(m.progress_calls, STEPS);
        train_state_take(m.t, &after);
        assert_true(train_state_equal(&ref_end, &after));
        train_state_free(&after);
        train_state_free(&before);
        model_free(&m);
    }
    train_state_free(&ref_end);
}

/* The same through sm_train_step_batch (caller-provided pairs, no sampler involved). */
static void test_faulty_batch_step_changes_nothing(void **state)
{
    env *e = *state;
    enum { N = 5 };
    static float left[N * PIX], right[N * PIX];
    float labels[N];
    sm_sampler *smp;
    assert_int_equal(sm_sampler_create(e->ds, 11, &smp), SM_OK);
    assert_int_equal(sm_sampler_next(smp, N, left, right, labels, NULL, NULL), SM_OK);
    sm_sampler_destroy(smp);

    model ref;
    model_make(e, &ref);
    float ref_loss[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(sm_train_step_batch(ref.t, N, left, right, labels, &ref_loss[i]), SM_OK);
    train_state ref_end;
    train_state_take(ref.t, &ref_end);
    model_free(&ref);

    for (size_t f = 0; f < sizeof faults / sizeof *faults; f++) {
        model m;
        model_make(e, &m);
        float loss;
        assert_int_equal(sm_train_step_batch(m.t, N, left, right, labels, &loss), SM_OK);
        train_state before, after;
        train_state_take(m.t, &before);
        atomic_store(&sm__inject_nonfinite, faults[f].kind);
        loss = 12345.0f;
        check_failed(sm_train_step_batch(m.t, N, left, right, labels, &loss), faults[f].needle,
                     loss);
        train_state_take(m.t, &after);
        assert_true(train_state_equal(&before, &after));
        train_state_free(&after);
        assert_int_equal(sm_train_step_batch(m.t, N, left, right, labels, &loss), SM_OK);
        assert_memory_equal(&loss, &ref_loss[1], sizeof loss);
        train_state_take(m.t, &after);
        assert_true(train_state_equal(&ref_end, &after));
        train_state_free(&after);
        train_state_free(&before);
        model_free(&m);
    }
    train_state_free(&ref_end);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_faulty_step_changes_nothing),
        cmocka_unit_test(test_faulty_batch_step_changes_nothing),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
