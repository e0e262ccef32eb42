/* SPDX-License-Identifier: MIT */
/* Training health (since 0.2): reports every N iterations with the smoothed loss and the
 * validation accuracy, the "stuck at ln 2" and "collapsed" warnings, and validation that
 * leaves training bit-identical. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "network/network.h"
#include "siamese/siamese.h"

#define ARCH "1x10x10:conv2k3,relu,flatten,fc4"

typedef struct rig {
    sm_backend *be;
    sm_subnet *sub;
    sm_head *head;
    sm_adam *adam;
    sm_dataset *ds, *val;
    sm_trainer *tr;
} rig;

static void rig_open(rig *r, double lr)
{
    sm_arch *arch;
    assert_int_equal(sm_backend_create(SM_BACKEND_CPU, &r->be), SM_OK);
    assert_int_equal(sm_backend_set_threads(r->be, 1), SM_OK);
    assert_int_equal(sm_arch_from_string(ARCH, &arch), SM_OK);
    assert_int_equal(sm_subnet_create(r->be, arch, 21, &r->sub), SM_OK);
    sm_arch_destroy(arch);
    assert_int_equal(sm_head_create(r->be, 4, 22, &r->head), SM_OK);
    assert_int_equal(sm_adam_create(r->sub, r->head, &r->adam), SM_OK);
    assert_int_equal(sm_adam_set(r->adam, SM_ADAM_LEARNING_RATE, lr), SM_OK);
    assert_int_equal(sm_dataset_create_synthetic(6, 3, 10, 10, 3, &r->ds), SM_OK);
    assert_int_equal(sm_dataset_create_synthetic(5, 3, 10, 10, 99, &r->val), SM_OK);
    assert_int_equal(sm_trainer_create(r->sub, r->head, r->adam, r->ds, 5, &r->tr), SM_OK);
    assert_int_equal(sm_trainer_set_param(r->tr, SM_TRAINER_BATCH_SIZE, 2), SM_OK);
}

static void rig_close(rig *r)
{
    sm_trainer_destroy(r->tr);
    sm_adam_destroy(r->adam);
    sm_head_destroy(r->head);
    sm_subnet_destroy(r->sub);
    sm_dataset_destroy(r->ds);
    sm_dataset_destroy(r->val);
    sm_backend_destroy(r->be);
}

typedef struct seen {
    int calls;
    sm_health last;
    char message[1024];
    unsigned any_flags;
} seen;

static void on_health(void *user, const sm_health *h)
{
    seen *s = user;
    s->calls++;
    s->last = *h;
    s->any_flags |= h->flags;
    assert_non_null(h->message);
    snprintf(s->message, sizeof s->message, "%s", h->message);
    s->last.message = s->message;
}

static void test_reports_and_identical_training(void **state)
{
    (void)state;
    rig a, b;
    rig_open(&a, 1e-2);
    rig_open(&b, 1e-2);
    seen s = {0};
    assert_int_equal(sm_trainer_set_validation(b.tr, b.val, 40, 7), SM_OK);
    assert_int_equal(sm_trainer_set_health(b.tr, 3, on_health, &s), SM_OK);
    float la, lb;
    for (int i = 0; i < 10; i++) {
        assert_int_equal(sm_train_step(a.tr, &la), SM_OK);
        assert_int_equal(sm_train_step(b.tr, &lb), SM_OK);
        assert_memory_equal(&la, &lb, sizeof la);
    }
    assert_int_equal(s.calls, 3); /* iterations 3, 6, 9 */
    assert_int_equal(s.last.iteration, 9);
    assert_int_equal(s.last.struct_size, sizeof(sm_health));
    assert_true(s.last.flags & SM_HEALTH_HAS_VALIDATION);
    assert_int_equal(s.last.val_pairs, 40);
    assert_int_equal(s.last.val_status, SM_OK);
    assert_true(s.last.val_accuracy >= 0 && s.last.val_accuracy <= 1);
    assert_true(isfinite(s.last.smoothed_loss));
    /* the same as measuring by hand */
    sm_eval_result r = SM_EVAL_RESULT_INIT;
    size_t n = sm_subnet_num_params(a.sub) + 5;
    float *pa = malloc(n * sizeof *pa), *pb = malloc(n * sizeof *pb);
    assert_int_equal(sm__subnet_read_params(a.sub, pa), SM_OK);
    assert_int_equal(sm__head_read_params(a.head, pa + n - 5), SM_OK);
    assert_int_equal(sm__subnet_read_params(b.sub, pb), SM_OK);
    assert_int_equal(sm__head_read_params(b.head, pb + n - 5), SM_OK);
    assert_memory_equal(pa, pb, n * sizeof *pa); /* validation changed nothing */
    /* turning it off */
    assert_int_equal(sm_trainer_set_health(b.tr, 1, NULL, NULL), SM_OK);
    assert_int_equal(sm_train_step(b.tr, &lb), SM_OK);
    assert_int_equal(s.calls, 3);
    assert_int_equal(sm_trainer_set_validation(b.tr, NULL, 0, 0), SM_OK);
    (void)r;
    free(pa), free(pb);
    rig_close(&a);
    rig_close(&b);
}

static void test_stuck_and_collapsed(void **state)
{
    (void)state;
    rig a;
    rig_open(&a, 1e-9); /* learns nothing: the loss stays at ln 2, the scores at 0.5 */
    seen s = {0};
    assert_int_equal(sm_trainer_set_validation(a.tr, a.val, 30, 1), SM_OK);
    assert_int_equal(sm_trainer_set_health(a.tr, 100, on_health, &s), SM_OK);
    float loss;
    for (int i = 0; i < 400; i++) assert_int_equal(sm_train_step(a.tr, &loss), SM_OK);
    assert_int_equal(s.calls, 4);
    assert_int_equal(s.any_flags & (SM_HEALTH_STUCK | SM_HEALTH_COLLAPSED), 0); /* too early */
    assert_string_equal(s.message, "");
    for (int i = 0; i < 100; i++) assert_int_equal(sm_train_step(a.tr, &loss), SM_OK);
    assert_int_equal(s.last.iteration, 500);
    assert_true(s.last.flags & SM_HEALTH_STUCK);
    assert_true(s.last.flags & SM_HEALTH_COLLAPSED);
    assert_float_equal(s.last.smoothed_loss, 0.693, 0.02);
    assert_non_null(strstr(s.message, "stuck at 50 %"));
    assert_non_null(strstr(s.message, "learning rate"));
    assert_non_null(strstr(s.message, "collapsed"));
    rig_close(&a);
}

static void test_bad_arguments(void **state)
{
    (void)state;
    rig a;
    rig_open(&a, 1e-3);
    seen s = {0};
    assert_int_equal(sm_trainer_set_health(NULL, 1, on_health, &s), SM_ERR_INVALID_ARG);
    assert_int_equal(sm_trainer_set_health(a.tr, 0, on_health, &s), SM_ERR_INVALID_ARG);
    assert_int_equal(sm_trainer_set_health(a.tr, -5, on_health, &s), SM_ERR_INVALID_ARG);
    assert_int_equal(sm_trainer_set_validation(NULL, a.val, 10, 1), SM_ERR_INVALID_ARG);
    assert_int_equal(sm_trainer_set_validation(a.tr, a.val, 0, 1), SM_ERR_INVALID_ARG);
    assert_int_equal(sm_trainer_set_validation(a.tr, a.val, 65537, 1), SM_ERR_INVALID_ARG);
    sm_dataset *one;
    float img[100] = {0};
    assert_int_equal(sm_dataset_create(10, 10, &one), SM_OK);
    assert_int_equal(sm_dataset_add_image(one, "A/a", img), SM_OK);
    assert_int_equal(sm_trainer_set_validation(a.tr, one, 10, 1), SM_ERR_DATASET);
    sm_dataset_destroy(one);
    rig_close(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reports_and_identical_training),
        cmocka_unit_test(test_stuck_and_collapsed),
        cmocka_unit_test(test_bad_arguments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
