/* Workspaces are allocated when a trainer is created or resized, never per step: after one
 * warm-up step, further steps (full and partial micro-batches) make no allocation through the
 * library's allocator. On cpu-blas every buffer goes through it; SIAMESE_TEST_BACKEND=cpu-dnnl
 * runs the same steps there (its module allocates with its own calls, which this cannot see,
 * so there it checks the core only). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "alloc.h"
#include "siamese/siamese.h"
#include "test_backend.h"

static void steps_allocate_nothing(void **state)
{
    (void)state;
    sm_backend *be;
    sm_arch *arch;
    sm_subnet *sub;
    sm_head *head;
    sm_adam *adam;
    sm_dataset *ds;
    sm_trainer *tr;
    assert_int_equal(sm_backend_create(test_cpu_backend(), &be), SM_OK);
    assert_int_equal(sm_arch_from_string("1x24x24:conv8k5,relu,pool2,conv8k3,relu,pool2,"
                                         "conv16k3,relu,flatten,fc32",
                                         &arch),
                     SM_OK);
    assert_int_equal(sm_subnet_create(be, arch, 1, &sub), SM_OK);
    assert_int_equal(sm_head_create(be, sm_subnet_feature_dim(sub), 2, &head), SM_OK);
    assert_int_equal(sm_adam_create(sub, head, &adam), SM_OK);
    assert_int_equal(sm_dataset_create_synthetic(6, 4, 24, 24, 3, &ds), SM_OK);
    assert_int_equal(sm_trainer_create(sub, head, adam, ds, 4, &tr), SM_OK);
    assert_int_equal(sm_trainer_set_param(tr, SM_TRAINER_BATCH_SIZE, 11), SM_OK);
    assert_int_equal(sm_trainer_set_param(tr, SM_TRAINER_MICRO_BATCH, 4), SM_OK); /* 4+4+3 */
    float loss;
    assert_int_equal(sm_train_step(tr, &loss), SM_OK);
    long before = sm__alloc_count();
    for (int i = 0; i < 3; i++) assert_int_equal(sm_train_step(tr, &loss), SM_OK);
    assert_int_equal(sm__alloc_count() - before, 0);
    sm_trainer_destroy(tr);
    sm_dataset_destroy(ds);
    sm_adam_destroy(adam);
    sm_head_destroy(head);
    sm_subnet_destroy(sub);
    sm_arch_destroy(arch);
    sm_backend_destroy(be);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(steps_allocate_nothing)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
