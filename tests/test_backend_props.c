/* SPDX-License-Identifier: MIT */
/* The dispatch layer's side of the backend table: properties with their defaults filled in, and
 * the settings a backend leaves out (NULL slots, or settings it does not honour) answered by
 * dispatch without calling the backend. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "backend/backend.h"
#include "network/network.h"
#include "siamese/siamese.h"

#define TINY "1x12x12:conv4k3,relu,pool2,conv4k3,relu,flatten,fc8"

static void cpu_blas_takes_the_defaults(void **state)
{
    (void)state;
    sm_backend *be;
    assert_int_equal(sm_backend_create(SM_BACKEND_CPU, &be), SM_OK);
    const sm_backend_props *p = sm__backend_props(be);
    assert_int_equal(p->train_pairs, 16);
    assert_int_equal(p->predict_pairs, 16);
    assert_int_equal(p->embed_images, 64);
    assert_true(p->honours & SM_BACKEND_HONOURS_THREADS);
    assert_false(p->honours & SM_BACKEND_HONOURS_TF32);
    int64_t v = -1;
    assert_int_equal(sm_backend_set_option(be, SM_BACKEND_OPT_TF32, 1), SM_OK); /* no effect */
    assert_int_equal(sm_backend_get_option(be, SM_BACKEND_OPT_TF32, &v), SM_OK);
    assert_int_equal(v, 0);

    /* a trainer's default micro-batch is the backend's */
    sm_arch *arch;
    sm_subnet *sub;
    sm_head *head;
    sm_adam *adam;
    sm_trainer *tr;
    assert_int_equal(sm_arch_from_string(TINY, &arch), SM_OK);
    assert_int_equal(sm_subnet_create(be, arch, 1, &sub), SM_OK);
    assert_int_equal(sm_head_create(be, sm_subnet_feature_dim(sub), 2, &head), SM_OK);
    assert_int_equal(sm_adam_create(sub, head, &adam), SM_OK);
    assert_int_equal(sm_trainer_create(sub, head, adam, NULL, 3, &tr), SM_OK);
    assert_int_equal(sm_trainer_get_param(tr, SM_TRAINER_MICRO_BATCH, &v), SM_OK);
    assert_int_equal(v, p->train_pairs);
    assert_int_equal(sm__subnet_embed_chunk(sub), 64);
    sm_trainer_destroy(tr);
    sm_adam_destroy(adam);
    sm_head_destroy(head);
    sm_subnet_destroy(sub);
    sm_arch_destroy(arch);
    sm_backend_destroy(be);
}

static sm_status must_not_set_threads(void *ctx, int threads)
{
    (void)ctx, (void)threads;
    fail_msg("set_threads called for a backend that does not honour threads");
    return SM_ERR_INTERNAL;
}

static int must_not_get_threads(void *ctx)
{
    (void)ctx;
    fail_msg("get_threads called for a backend that does not honour threads");
    return -1;
}

static sm_status must_not_set_option(void *ctx, sm_backend_option key, int64_t value)
{
    (void)ctx, (void)key, (void)value;
    fail_msg("set_option called for an option the backend does not honour");
    return SM_ERR_INTERNAL;
}

static int64_t must_not_get_option(void *ctx, sm_backend_option key)
{
    (void)ctx, (void)key;
    fail_msg("get_option called for an option the backend does not honour");
    return -1;
}

/* Only the settings are exercised: no op is called on these tables. */
static const sm_backend_ops honours_nothing = {
    .abi_version = SM_BACKEND_ABI_VERSION,
    .name = "fake",
    .kind = SM_BACKEND_CPU,
    .props = {.honours = 0},
    .set_threads = must_not_set_threads,
    .get_threads = must_not_get_threads,
    .set_option = must_not_set_option,
    .get_option = must_not_get_option,
};

static const sm_backend_ops honours_all_without_slots = {
    .abi_version = SM_BACKEND_ABI_VERSION,
    .name = "fake",
    .kind = SM_BACKEND_CPU,
    .props = {.honours = SM_BACKEND_HONOURS_THREADS | SM_BACKEND_HONOURS_TF32},
};

static void settings_default_in_dispatch(void **state)
{
    (void)state;
    const sm_backend_ops *tables[] = {&honours_nothing, &honours_all_without_slots};
    for (size_t i = 0; i < sizeof tables / sizeof *tables; i++) {
        sm_backend be = {.ops = tables[i], .props = tables[i]->props};
        int64_t v = -1;
        assert_int_equal(sm_backend_set_threads(&be, 4), SM_OK);
        assert_int_equal(sm_backend_get_threads(&be), 1);
        assert_int_equal(sm_backend_set_threads(&be, -1), SM_ERR_INVALID_ARG); /* still checked */
        assert_int_equal(sm_backend_set_option(&be, SM_BACKEND_OPT_TF32, 1), SM_OK);
        assert_int_equal(sm_backend_get_option(&be, SM_BACKEND_OPT_TF32, &v), SM_OK);
        assert_int_equal(v, 0);
        assert_int_equal(sm_backend_set_option(&be, SM_BACKEND_OPT_TF32, 2), SM_ERR_INVALID_ARG);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(cpu_blas_takes_the_defaults),
        cmocka_unit_test(settings_default_in_dispatch),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
