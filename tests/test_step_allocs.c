/* SPDX-License-Identifier: MIT */
/* Workspaces are allocated when a trainer is created or resized, never per step: after one
 * warm-up step, further steps (full and partial micro-batches) make no allocation through the
 * library's allocator. On cpu-blas every buffer goes through it; SIAMESE_TEST_BACKEND=cpu-dnnl
 * runs the same steps there (its module allocates with its own calls, which this cannot see,
 * so there it checks the core only). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "common/alloc.h"
#include "network/network.h"
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
    assert_int_equal(test_backend_create(&be), SM_OK);
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

/* A conv whose output only feeds relu -> pool keeps no buffer of its own in a training
 * workspace: it lives in the larger gradient buffer during the forward pass (lib/network/subnet.c).
 * A conv followed by relu -> flatten keeps its output (the ReLU mask needs it). The gradients
 * through the shared path are checked by net_gradcheck and reference_torch. */
static void pooled_conv_outputs_share_gradient_memory(void **state)
{
    (void)state;
    sm_backend *be;
    sm_arch *arch;
    sm_subnet *sub;
    assert_int_equal(test_backend_create(&be), SM_OK);
    assert_int_equal(sm_arch_from_string("1x24x24:conv8k5,relu,pool2,conv8k3,relu,pool2,"
                                         "conv16k3,relu,flatten,fc32",
                                         &arch),
                     SM_OK);
    assert_int_equal(sm_subnet_create(be, arch, 1, &sub), SM_OK);
    sm__workspace ws;
    assert_int_equal(sm__workspace_create(sub, 6, true, &ws), SM_OK);
    float *larger = ws.act[1]; /* conv1 -> relu -> pool: transient, in a gradient buffer */
    assert_true(larger == ws.grad_a || larger == ws.grad_b);
    assert_ptr_equal(ws.act[2], larger);
    assert_ptr_equal(ws.act[4], larger);        /* conv2 -> relu -> pool: transient */
    assert_ptr_not_equal(ws.act[3], larger);    /* pool outputs are kept */
    assert_ptr_not_equal(ws.act[7], ws.grad_a); /* conv3 -> relu -> flatten: kept */
    assert_ptr_not_equal(ws.act[7], ws.grad_b);
    sm__workspace_destroy(sub, &ws);
    assert_int_equal(sm__workspace_create(sub, 6, false, &ws), SM_OK); /* inference: unchanged */
    assert_null(ws.grad_a);
    sm__workspace_destroy(sub, &ws);
    sm_subnet_destroy(sub);
    sm_arch_destroy(arch);
    sm_backend_destroy(be);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(steps_allocate_nothing),
                                       cmocka_unit_test(pooled_conv_outputs_share_gradient_memory)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
