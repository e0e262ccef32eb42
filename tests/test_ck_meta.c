/* SPDX-License-Identifier: MIT */
/* The checkpoint writer's metadata store has fixed slots: built here with fewer slots than a
 * trainer checkpoint has keys, sm_trainer_save must fail with SM_ERR_LIMIT (and write nothing)
 * instead of writing past its arrays; a model file (fewer keys) still saves. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#define CK_META_SLOTS 12
#include "train/checkpoint.c"

#define ARCH "1x12x12:conv4k3,relu,pool2,flatten,fc8"

static void test_full_store_is_limit(void **state)
{
    (void)state;
    sm_backend *be;
    sm_arch *arch;
    sm_subnet *sub;
    sm_head *head;
    sm_adam *adam;
    sm_trainer *tr;
    assert_int_equal(sm_backend_create(SM_BACKEND_CPU, &be), SM_OK);
    assert_int_equal(sm_arch_from_string(ARCH, &arch), SM_OK);
    assert_int_equal(sm_subnet_create(be, arch, 1, &sub), SM_OK);
    assert_int_equal(sm_head_create(be, sm_subnet_feature_dim(sub), 2, &head), SM_OK);
    assert_int_equal(sm_adam_create(sub, head, &adam), SM_OK);
    assert_int_equal(sm_trainer_create(sub, head, adam, NULL, 3, &tr), SM_OK);
    char path[256];
    const char *tmp = getenv("TMPDIR");
    snprintf(path, sizeof path, "%s/sm_ck_meta_%d.safetensors", tmp && *tmp ? tmp : "/tmp",
             (int)getpid());
    unlink(path);
    assert_int_equal(sm_trainer_save(tr, path), SM_ERR_LIMIT);
    assert_non_null(strstr(sm_last_error(), "metadata keys"));
    assert_int_not_equal(access(path, F_OK), 0);
    assert_int_equal(sm_model_save(sub, head, path), SM_OK);
    unlink(path);
    sm_trainer_destroy(tr);
    sm_adam_destroy(adam);
    sm_head_destroy(head);
    sm_subnet_destroy(sub);
    sm_arch_destroy(arch);
    sm_backend_destroy(be);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_full_store_is_limit)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
