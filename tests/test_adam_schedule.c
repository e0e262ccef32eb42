/* SPDX-License-Identifier: MIT */
/* Adam's learning-rate schedule and per-layer-kind L2 weight decay (0.3), against values
 * computed here independently of the library:
 *  - the schedule's rate at chosen steps against the closed forms of include/siamese/train.h
 *    (warm-up t / W; cosine m + (1 - m)(1 + cos(pi s / T)) / 2; step g^floor(s / S));
 *  - three Adam updates of a tiny model with warm-up and three different decay coefficients
 *    against the update computed in double precision from the same parameters and gradients
 *    (g' = g + lambda p for conv weights, fc weights and head weights with their own lambda,
 *    biases undecayed): parameters and both moments, element by element. The layout of the
 *    flat parameter buffer is written out here by hand (PyTorch's state_dict order), not read
 *    from the library;
 *  - settings out of range are refused with SM_ERR_INVALID_ARG and leave the value as it was;
 *  - a cosine or step schedule without its length refuses to step and changes nothing. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "train/training.h"
#include "siamese/siamese.h"

/* 1x5x5 -> conv 2 filters 3x3 (18 weights, 2 biases) -> 2x3x3 -> flatten 18 -> fc 3 (54
 * weights, 3 biases); head: 3 weights, 1 bias. */
#define ARCH "1x5x5:conv2k3,relu,flatten,fc3"
enum { N_SUB = 18 + 2 + 54 + 3, N_HEAD = 3 + 1 };

typedef struct model {
    sm_backend *be;
    sm_subnet *s;
    sm_head *h;
    sm_adam *a;
    sm_trainer *t;
} model;

static void model_open(model *m)
{
    memset(m, 0, sizeof *m);
    assert_int_equal(sm_backend_create(SM_BACKEND_CPU, &m->be), SM_OK);
    sm_arch *arch;
    assert_int_equal(sm_arch_from_string(ARCH, &arch), SM_OK);
    assert_int_equal(sm_subnet_create(m->be, arch, 7, &m->s), SM_OK);
    sm_arch_destroy(arch);
    assert_int_equal(sm_head_create(m->be, sm_subnet_feature_dim(m->s), 8, &m->h), SM_OK);
    assert_int_equal(sm_adam_create(m->s, m->h, &m->a), SM_OK);
    /* the trainer allocates the gradient buffers */
    assert_int_equal(sm_trainer_create(m->s, m->h, m->a, NULL, 9, &m->t), SM_OK);
}

static void model_close(model *m)
{
    sm_trainer_destroy(m->t);
    sm_adam_destroy(m->a);
    sm_head_destroy(m->h);
    sm_subnet_destroy(m->s);
    sm_backend_destroy(m->be);
}

static void expect_rel(double got, double want, double tol)
{
    if (!(fabs(got - want) <= tol * fabs(want)))
        fail_msg("got %.17g, want %.17g (relative tolerance %g)", got, want, tol);
}

static double lr_at(const sm_adam *a, int64_t t)
{
    double lr = -1;
    assert_int_equal(sm_adam_lr_at(a, t, &lr), SM_OK);
    return lr;
}

/* ---- the schedule ---- */

static void test_defaults_are_constant(void **state)
{
    (void)state;
    model m;
    model_open(&m);
    const sm_adam_param keys[] = {SM_ADAM_WARMUP_STEPS,    SM_ADAM_SCHEDULE,
                                  SM_ADAM_SCHEDULE_STEPS,  SM_ADAM_MIN_LR_FACTOR,
                                  SM_ADAM_STEP_GAMMA,      SM_ADAM_WEIGHT_DECAY_CONV,
                                  SM_ADAM_WEIGHT_DECAY_FC, SM_ADAM_WEIGHT_DECAY_HEAD};
    const double want[] = {0, SM_ADAM_SCHEDULE_CONSTANT, 0, 0, 0.1, 0, 0, 0};
    for (size_t i = 0; i < 8; i++) {
        double v = -1;
        assert_int_equal(sm_adam_get(m.a, keys[i], &v), SM_OK);
        assert_true(v == want[i]);
    }
    /* exactly the learning rate, at every step: the reference */
    const int64_t steps[] = {1, 2, 10000, INT64_MAX};
    for (size_t i = 0; i < 4; i++) assert_true(lr_at(m.a, steps[i]) == 6e-5);
    double lr = -1;
    assert_int_equal(sm_adam_current_lr(m.a, &lr), SM_OK);
    assert_true(lr == 6e-5);
    assert_int_equal(sm_adam_lr_at(m.a, 0, &lr), SM_ERR_INVALID_ARG);
    assert_int_equal(sm_adam_lr_at(m.a, -5, &lr), SM_ERR_INVALID_ARG);
    assert_int_equal(sm_adam_lr_at(NULL, 1, &lr), SM_ERR_INVALID_ARG);
    assert_int_equal(sm_adam_lr_at(m.a, 1, NULL), SM_ERR_INVALID_ARG);
    assert_int_equal(sm_adam_current_lr(NULL, &lr), SM_ERR_INVALID_ARG);
    model_close(&m);
}

static void test_warmup(void **state)
{
    (void)state;
    model m;
    model_open(&m);
    assert_int_equal(sm_adam_set(m.a, SM_ADAM_LEARNING_RATE, 1e-3), SM_OK);
    assert_int_equal(sm_adam_set(m.a, SM_ADAM_WARMUP_STEPS, 4), SM_OK);
    /* linear from 0: step t of W runs at t / W */
    expect_rel(lr_at(m.a, 1), 0.25e-3, 1e-15);
    expect_rel(lr_at(m.a, 2), 0.5e-3, 1e-15);
    expect_rel(lr_at(m.a, 3), 0.75e-3, 1e-15);
    assert_true(lr_at(m.a, 4) == 1e-3);
    assert_true(lr_at(m.a, 5) == 1e-3);
    assert_true(lr_at(m.a, 1000000) == 1e-3);
    model_close(&m);
}

static void test_cosine(void **state)
{
    (void)state;
    model m;
    model_open(&m);
    const double lr = 1e-3, mf = 0.2, r = sqrt(0.5); /* cos(pi/4) = -cos(3 pi/4) = sqrt(1/2) */
    assert_int_equal(sm_adam_set(m.a, SM_ADAM_LEARNING_RATE, lr), SM_OK);
    assert_int_equal(sm_adam_set(m.a, SM_ADAM_WARMUP_STEPS, 2), SM_OK);
    assert_int_equal(sm_adam_set(m.a, SM_ADAM_SCHEDULE, SM_ADAM_SCHEDULE_COSINE), SM_OK);
    assert_int_equal(sm_adam_set(m.a, SM_ADAM_SCHEDULE_STEPS, 4), SM_OK);
    assert_int_equal(sm_adam_set(m.a, SM_ADAM_MIN_LR_FACTOR, mf), SM_OK);
    expect_rel(lr_at(m.a, 1), lr / 2, 1e-15);                             /* warm-up */
    assert_true(lr_at(m.a, 2) == lr);                                     /* its end */
    expect_rel(lr_at(m.a, 3), lr, 1e-15);                                 /* s = 0 */
    expect_rel(lr_at(m.a, 4), lr * (mf + (1 - mf) * (1 + r) / 2), 1e-14); /* s = 1 */
    expect_rel(lr_at(m.a, 5), lr * (mf + (1 - mf) / 2), 1e-14);           /* s = 2: halfway */
    expect_rel(lr_at(m.a, 6), lr * (mf + (1 - mf) * (1 - r) / 2), 1e-14); /* s = 3 */
    expect_rel(lr_at(m.a, 7), lr * mf, 1e-14);                            /* s = T: the floor */
    expect_rel(lr_at(m.a, 8), lr * mf, 1e-14);                            /* and after it */
    expect_rel(lr_at(m.a, INT64_MAX), lr * mf, 1e-14);
    /* a floor of 0 reaches 0 */
    assert_int_equal(sm_adam_set(m.a, SM_ADAM_MIN_LR_FACTOR, 0), SM_OK);
    assert_true(fabs(lr_at(m.a, 7)) < 1e-20);
    model_close(&m);
}

static void test_step_decay(void **state)
{
    (void)state;
    model m;
    model_open(&m);
    const double lr = 1e-3;
    assert_int_equal(sm_adam_set(m.a, SM_ADAM_LEARNING_RATE, lr), SM_OK);
    assert_int_equal(sm_adam_set(m.a, SM_ADAM_SCHEDULE, SM_ADAM_SCHEDULE_STEP), SM_OK);
    assert_int_equal(sm_adam_set(m.a, SM_ADAM_SCHEDULE_STEPS, 3), SM_OK);
    assert_int_equal(sm_adam_set(m.a, SM_ADAM_STEP_GAMMA, 0.5), SM_OK);
    /* powers of two: exact */
    assert_true(lr_at(m.a, 1) == lr);
    assert_true(lr_at(m.a, 3) == lr);
    assert_true(lr_at(m.a, 4) == lr * 0.5);
    assert_true(lr_at(m.a, 6) == lr * 0.5);
    assert_true(lr_at(m.a, 7) == lr * 0.25);
    assert_true(lr_at(m.a, 31) == lr / 1024); /* floor(30 / 3) = 10 */
    /* with a warm-up of 2 the decay counts from its end */
    assert_int_equal(sm_adam_set(m.a, SM_ADAM_WARMUP_STEPS, 2), SM_OK);
    assert_true(lr_at(m.a, 1) == lr * 0.5);
    assert_true(lr_at(m.a, 5) == lr);
    assert_true(lr_at(m.a, 6) == lr * 0.5);
    /* gamma 0.1 */
    assert_int_equal(sm_adam_set(m.a, SM_ADAM_STEP_GAMMA, 0.1), SM_OK);
    expect_rel(lr_at(m.a, 12), lr * 1e-3, 1e-14); /* s = 12 - 2 - 1 = 9: 0.1^3 */
    expect_rel(lr_at(m.a, 11), lr * 1e-2, 1e-14); /* s = 8: 0.1^2 */
    model_close(&m);
}

/* Settings out of range: SM_ERR_INVALID_ARG with a message, the value unchanged. */
static void test_bad_values(void **state)
{
    (void)state;
    model m;
    model_open(&m);
    const struct {
        sm_adam_param key;
        double value;
    } bad[] = {
        {SM_ADAM_WARMUP_STEPS, -1},
        {SM_ADAM_WARMUP_STEPS, 1.5},
        {SM_ADAM_WARMUP_STEPS, 3e9},
        {SM_ADAM_WARMUP_STEPS, NAN},
        {SM_ADAM_WARMUP_STEPS, INFINITY},
        {SM_ADAM_SCHEDULE, -1},
        {SM_ADAM_SCHEDULE, 3},
        {SM_ADAM_SCHEDULE, 0.5},
        {SM_ADAM_SCHEDULE, NAN},
        {SM_ADAM_SCHEDULE_STEPS, -1},
        {SM_ADAM_SCHEDULE_STEPS, 2.5},
        {SM_ADAM_SCHEDULE_STEPS, 1e12},
        {SM_ADAM_MIN_LR_FACTOR, -0.1},
        {SM_ADAM_MIN_LR_FACTOR, 1.5},
        {SM_ADAM_MIN_LR_FACTOR, NAN},
        {SM_ADAM_STEP_GAMMA, 0},
        {SM_ADAM_STEP_GAMMA, -0.5},
        {SM_ADAM_STEP_GAMMA, 1.01},
        {SM_ADAM_STEP_GAMMA, NAN},
        {SM_ADAM_WEIGHT_DECAY_CONV, -1e-3},
        {SM_ADAM_WEIGHT_DECAY_CONV, 2},
        {SM_ADAM_WEIGHT_DECAY_CONV, NAN},
        {SM_ADAM_WEIGHT_DECAY_FC, -1e-3},
        {SM_ADAM_WEIGHT_DECAY_FC, INFINITY},
        {SM_ADAM_WEIGHT_DECAY_HEAD, -1e-3},
        {SM_ADAM_WEIGHT_DECAY_HEAD, 1e6},
        {(sm_adam_param)13, 0},
        {(sm_adam_param)0, 0},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        double before = -7, after = -8;
        int known = bad[i].key >= SM_ADAM_LEARNING_RATE && bad[i].key <= SM_ADAM_WEIGHT_DECAY_HEAD;
        if (known) assert_int_equal(sm_adam_get(m.a, bad[i].key, &before), SM_OK);
        if (sm_adam_set(m.a, bad[i].key, bad[i].value) != SM_ERR_INVALID_ARG)
            fail_msg("key %d value %g was accepted", (int)bad[i].key, bad[i].value);
        assert_true(strlen(sm_last_error()) > 0);
        if (known) {
            assert_int_equal(sm_adam_get(m.a, bad[i].key, &after), SM_OK);
            assert_true(before == after);
        }
    }
    /* the edges are accepted */
    assert_int_equal(sm_adam_set(m.a, SM_ADAM_WARMUP_STEPS, 2147483647.0), SM_OK);
    assert_int_equal(sm_adam_set(m.a, SM_ADAM_SCHEDULE_STEPS, 2147483647.0), SM_OK);
    assert_int_equal(sm_adam_set(m.a, SM_ADAM_MIN_LR_FACTOR, 1), SM_OK);
    assert_int_equal(sm_adam_set(m.a, SM_ADAM_STEP_GAMMA, 1), SM_OK);
    assert_int_equal(sm_adam_set(m.a, SM_ADAM_WEIGHT_DECAY_HEAD, 1), SM_OK);
    model_close(&m);
}

/* A cosine (or step) schedule without SM_ADAM_SCHEDULE_STEPS: within the warm-up fine, after
 * it the step is refused with SM_ERR_STATE and nothing changes. */
static void test_schedule_needs_length(void **state)
{
    (void)state;
    model m;
    model_open(&m);
    assert_int_equal(sm_adam_set(m.a, SM_ADAM_WARMUP_STEPS, 1), SM_OK);
    assert_int_equal(sm_adam_set(m.a, SM_ADAM_SCHEDULE, SM_ADAM_SCHEDULE_COSINE), SM_OK);
    double lr;
    assert_int_equal(sm_adam_lr_at(m.a, 1, &lr), SM_OK);
    assert_int_equal(sm_adam_lr_at(m.a, 2, &lr), SM_ERR_STATE);
    assert_non_null(strstr(sm_last_error(), "SM_ADAM_SCHEDULE_STEPS"));

    enum { P = 2, PIX = 25 };
    float left[P * PIX], right[P * PIX], labels[P] = {1, 0}, loss;
    for (int i = 0; i < P * PIX; i++) left[i] = (float)(i % 7) / 7, right[i] = (float)(i % 5) / 5;
    assert_int_equal(sm_train_step_batch(m.t, P, left, right, labels, &loss), SM_OK);
    float before[N_SUB], after[N_SUB];
    assert_int_equal(sm__subnet_read_params(m.s, before), SM_OK);
    assert_int_equal(sm_train_step_batch(m.t, P, left, right, labels, &loss), SM_ERR_STATE);
    assert_int_equal(sm__subnet_read_params(m.s, after), SM_OK);
    assert_memory_equal(before, after, sizeof before);
    assert_int_equal(sm_adam_steps(m.a), 1);
    assert_int_equal(sm_trainer_iteration(m.t), 1);
    /* with the length the run goes on */
    assert_int_equal(sm_adam_set(m.a, SM_ADAM_SCHEDULE_STEPS, 10), SM_OK);
    assert_int_equal(sm_train_step_batch(m.t, P, left, right, labels, &loss), SM_OK);
    assert_int_equal(sm_adam_steps(m.a), 2);
    model_close(&m);
}

/* ---- weight decay ---- */

static uint64_t rs = 0x9e3779b97f4a7c15ULL;
static double urand(double lo, double hi)
{
    rs ^= rs << 13, rs ^= rs >> 7, rs ^= rs << 17;
    return lo + (hi - lo) * (double)(rs >> 11) / 9007199254740992.0;
}

static void download(sm_backend_ops const *ops, void *ctx, const float *dev, size_t n, double *out)
{
    float tmp[128];
    assert_true(n <= 128);
    assert_int_equal(ops->download(ctx, tmp, dev, n * sizeof(float)), SM_OK);
    for (size_t i = 0; i < n; i++) out[i] = tmp[i];
}

static void expect_close_arr(const char *what, const double *got, const double *want, size_t n,
                             double abs_tol, double rel_tol)
{
    for (size_t i = 0; i < n; i++)
        if (!(fabs(got[i] - want[i]) <= abs_tol + rel_tol * fabs(want[i])))
            fail_msg("%s[%zu]: got %.9g, want %.9g", what, i, got[i], want[i]);
}

static void test_decay_update(void **state)
{
    (void)state;
    model m;
    model_open(&m);
    assert_int_equal((int)m.s->n_params, N_SUB);
    assert_int_equal((int)m.h->n_params, N_HEAD);
    const double lr = 1e-2, b1 = 0.9, b2 = 0.99, eps = 1e-8;
    const double wconv = 0.1, wfc = 0.25, whead = 0.5;
    assert_int_equal(sm_adam_set(m.a, SM_ADAM_LEARNING_RATE, lr), SM_OK);
    assert_int_equal(sm_adam_set(m.a, SM_ADAM_WARMUP_STEPS, 2), SM_OK);
    assert_int_equal(sm_adam_set(m.a, SM_ADAM_WEIGHT_DECAY_CONV, wconv), SM_OK);
    assert_int_equal(sm_adam_set(m.a, SM_ADAM_WEIGHT_DECAY_FC, wfc), SM_OK);
    assert_int_equal(sm_adam_set(m.a, SM_ADAM_WEIGHT_DECAY_HEAD, whead), SM_OK);

    /* the coefficient of every parameter, by hand: conv weight, conv bias, fc weight, fc bias;
     * head weights, head bias */
    double lam[N_SUB + N_HEAD];
    for (int i = 0; i < N_SUB + N_HEAD; i++)
        lam[i] = i < 18 ? wconv : i < 20 ? 0 : i < 74 ? wfc : i < 77 ? 0 : i < 80 ? whead : 0;

    /* parameters exactly representable in float, so the double reference starts equal */
    double p[N_SUB + N_HEAD], mm[N_SUB + N_HEAD] = {0}, vv[N_SUB + N_HEAD] = {0};
    float pf[N_SUB + N_HEAD];
    for (int i = 0; i < N_SUB + N_HEAD; i++) pf[i] = (float)urand(-1, 1), p[i] = pf[i];
    assert_int_equal(sm__subnet_write_params(m.s, pf), SM_OK);
    assert_int_equal(sm__head_write_params(m.h, pf + N_SUB), SM_OK);
    const sm_backend_ops *ops = m.be->ops;
    void *ctx = m.be->ctx;

    for (int t = 1; t <= 3; t++) {
        float gf[N_SUB + N_HEAD];
        for (int i = 0; i < N_SUB + N_HEAD; i++) gf[i] = (float)urand(-0.05, 0.05);
        assert_int_equal(ops->upload(ctx, m.s->grads, gf, N_SUB * sizeof(float)), SM_OK);
        assert_int_equal(ops->upload(ctx, m.h->grads, gf + N_SUB, N_HEAD * sizeof(float)), SM_OK);
        assert_int_equal(sm__adam_apply(m.a), SM_OK);

        const double f = t == 1 ? 0.5 : 1.0; /* warm-up of 2 */
        const double step = lr * f * sqrt(1 - pow(b2, t)) / (1 - pow(b1, t));
        for (int i = 0; i < N_SUB + N_HEAD; i++) {
            double g = gf[i] + lam[i] * p[i];
            mm[i] = b1 * mm[i] + (1 - b1) * g;
            vv[i] = b2 * vv[i] + (1 - b2) * g * g;
            p[i] -= step * mm[i] / (sqrt(vv[i]) + eps);
        }
        double got[N_SUB + N_HEAD];
        char what[32];
        download(ops, ctx, m.s->params, N_SUB, got);
        download(ops, ctx, m.h->params, N_HEAD, got + N_SUB);
        snprintf(what, sizeof what, "p (step %d)", t);
        expect_close_arr(what, got, p, N_SUB + N_HEAD, 1e-6, 1e-6);
        download(ops, ctx, m.a->m_sub, N_SUB, got);
        download(ops, ctx, m.a->m_head, N_HEAD, got + N_SUB);
        snprintf(what, sizeof what, "m (step %d)", t);
        expect_close_arr(what, got, mm, N_SUB + N_HEAD, 1e-9, 1e-5);
        download(ops, ctx, m.a->v_sub, N_SUB, got);
        download(ops, ctx, m.a->v_head, N_HEAD, got + N_SUB);
        snprintf(what, sizeof what, "v (step %d)", t);
        expect_close_arr(what, got, vv, N_SUB + N_HEAD, 1e-12, 1e-5);
    }
    assert_int_equal(sm_adam_steps(m.a), 3);
    model_close(&m);
}

/* Decay really moves the moments: the same gradients with and without it give first moments
 * that differ by (1 - b1) lambda p for weights and not at all for biases. */
static void test_decay_spares_biases(void **state)
{
    (void)state;
    model a, b;
    model_open(&a);
    model_open(&b);
    assert_int_equal(sm_adam_set(b.a, SM_ADAM_WEIGHT_DECAY_CONV, 0.5), SM_OK);
    assert_int_equal(sm_adam_set(b.a, SM_ADAM_WEIGHT_DECAY_FC, 0.5), SM_OK);
    assert_int_equal(sm_adam_set(b.a, SM_ADAM_WEIGHT_DECAY_HEAD, 0.5), SM_OK);
    float pf[N_SUB + N_HEAD], gf[N_SUB + N_HEAD];
    for (int i = 0; i < N_SUB + N_HEAD; i++)
        pf[i] = (float)urand(0.5, 1), gf[i] = (float)urand(-0.01, 0.01);
    model *ms[2] = {&a, &b};
    for (int k = 0; k < 2; k++) {
        model *m = ms[k];
        assert_int_equal(sm__subnet_write_params(m->s, pf), SM_OK);
        assert_int_equal(sm__head_write_params(m->h, pf + N_SUB), SM_OK);
        assert_int_equal(m->be->ops->upload(m->be->ctx, m->s->grads, gf, N_SUB * 4), SM_OK);
        assert_int_equal(m->be->ops->upload(m->be->ctx, m->h->grads, gf + N_SUB, N_HEAD * 4),
                         SM_OK);
        assert_int_equal(sm__adam_apply(m->a), SM_OK);
    }
    double ma[N_SUB + N_HEAD], mb[N_SUB + N_HEAD];
    download(a.be->ops, a.be->ctx, a.a->m_sub, N_SUB, ma);
    download(a.be->ops, a.be->ctx, a.a->m_head, N_HEAD, ma + N_SUB);
    download(b.be->ops, b.be->ctx, b.a->m_sub, N_SUB, mb);
    download(b.be->ops, b.be->ctx, b.a->m_head, N_HEAD, mb + N_SUB);
    for (int i = 0; i < N_SUB + N_HEAD; i++) {
        const int bias = (i >= 18 && i < 20) || (i >= 74 && i < 77) || i == N_SUB + 3;
        if (bias) assert_true(ma[i] == mb[i]);
        else expect_rel(mb[i] - ma[i], 0.1 * 0.5 * pf[i], 1e-4);
    }
    model_close(&a);
    model_close(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults_are_constant),
        cmocka_unit_test(test_warmup),
        cmocka_unit_test(test_cosine),
        cmocka_unit_test(test_step_decay),
        cmocka_unit_test(test_bad_values),
        cmocka_unit_test(test_schedule_needs_length),
        cmocka_unit_test(test_decay_update),
        cmocka_unit_test(test_decay_spares_biases),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
