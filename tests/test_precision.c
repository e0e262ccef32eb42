/* SPDX-License-Identifier: MIT */
/* SM_BACKEND_OPT_PRECISION: cpu-blas refuses bf16 with SM_ERR_UNSUPPORTED (never a silent
 * float32 or slow path); cpu-dnnl takes it where the CPU has bf16 dot products (refuses it
 * otherwise), and its bf16 convolutions then differ from the double oracle by bf16's rounding
 * (larger than float32's, so the option is in force, and bounded) while the parameters stay
 * float32. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "backend/backend.h"
#include "backend_buffers.h"
#include "network/network.h"
#include "ref_ops.h"
#include "siamese/siamese.h"

static unsigned seed_state = 4242;

static void cpu_blas_refuses_bf16(void **state)
{
    (void)state;
    sm_backend *be;
    assert_int_equal(sm_backend_create(SM_BACKEND_CPU, &be), SM_OK);
    assert_int_equal(sm_backend_set_option(be, SM_BACKEND_OPT_PRECISION, SM_PRECISION_BF16),
                     SM_ERR_UNSUPPORTED);
    assert_non_null(strstr(sm_last_error(), "bf16"));
    int64_t v = -1;
    assert_int_equal(sm_backend_get_option(be, SM_BACKEND_OPT_PRECISION, &v), SM_OK);
    assert_int_equal(v, SM_PRECISION_FP32);
    assert_int_equal(sm_backend_set_option(be, SM_BACKEND_OPT_PRECISION, SM_PRECISION_FP32), SM_OK);
    assert_int_equal(sm_backend_set_option(be, SM_BACKEND_OPT_PRECISION, 2), SM_ERR_INVALID_ARG);
    assert_int_equal(sm_backend_set_option(be, SM_BACKEND_OPT_CONV_ALGO, 4), SM_ERR_INVALID_ARG);
    assert_int_equal(sm_backend_set_option(be, SM_BACKEND_OPT_CONV_ALGO, -1), SM_ERR_INVALID_ARG);
    sm_backend_destroy(be);
}

/* forward convolution's relative error against the oracle at the backend's settings */
static double conv_error(sm_backend *be)
{
    const int n = 4, c = 16, h = 20, w = 20, k = 24, kh = 5, kw = 5, oh = 16, ow = 16;
    size_t nx = (size_t)n * c * h * w, nw = (size_t)k * c * kh * kw, ny = (size_t)n * k * oh * ow;
    double *x = malloc(nx * sizeof *x), *wt = malloc(nw * sizeof *wt), b[24];
    double *want = malloc(ny * sizeof *want), *got = malloc(ny * sizeof *got);
    ref_fill_uniform(&seed_state, -1, 1, nx, x);
    ref_fill_uniform(&seed_state, -1, 1, nw, wt);
    ref_fill_uniform(&seed_state, -1, 1, 24, b);
    for (size_t i = 0; i < nx; i++) x[i] = (float)x[i];
    for (size_t i = 0; i < nw; i++) wt[i] = (float)wt[i];
    for (size_t i = 0; i < 24; i++) b[i] = (float)b[i];
    ref_conv(n, c, h, w, k, kh, kw, x, wt, b, want);
    sm_conv_shape s = {n, c, h, w, k, kh, kw, oh, ow, SM_CONV_DIR_FWD};
    float *dx = test_to_dev(be, x, nx), *dw = test_to_dev(be, wt, nw);
    float *db = test_to_dev(be, b, 24);
    float *dy = test_to_dev(be, want, ny);
    size_t wsb = be->ops->conv_workspace(be->ctx, &s);
    void *ws = NULL;
    if (wsb) assert_int_equal(be->ops->alloc(be->ctx, wsb, &ws), SM_OK);
    assert_int_equal(be->ops->conv_fwd(be->ctx, &s, dx, dw, db, dy, ws, wsb), SM_OK);
    test_from_dev(be, dy, ny, got);
    double e = ref_rel_err(got, want, ny);
    be->ops->free(be->ctx, ws);
    be->ops->free(be->ctx, dx), be->ops->free(be->ctx, dw), be->ops->free(be->ctx, db);
    be->ops->free(be->ctx, dy);
    free(x), free(wt), free(want), free(got);
    return e;
}

static void dnnl_bf16(void **state)
{
    (void)state;
    sm_backend *be;
    if (sm_backend_create(SM_BACKEND_CPU_DNNL, &be) != SM_OK) {
        printf("SKIPPED: *** cpu-dnnl is not available, its bf16 checks did NOT run: %s ***\n",
               sm_last_error());
        skip();
    }
    assert_int_equal(sm_backend_set_option(be, SM_BACKEND_OPT_CONV_ALGO, SM_CONV_ALGO_DIRECT),
                     SM_OK);
    double fp32 = conv_error(be);
    sm_status st = sm_backend_set_option(be, SM_BACKEND_OPT_PRECISION, SM_PRECISION_BF16);
    if (st == SM_ERR_UNSUPPORTED) {
        /* a CPU without bf16 dot products: the refusal names the reason */
        printf("this CPU has no bf16 dot products: %s\n", sm_last_error());
        assert_non_null(strstr(sm_last_error(), "AVX512_BF16"));
        sm_backend_destroy(be);
        return;
    }
    assert_int_equal(st, SM_OK);
    int64_t v = -1;
    assert_int_equal(sm_backend_get_option(be, SM_BACKEND_OPT_PRECISION, &v), SM_OK);
    assert_int_equal(v, SM_PRECISION_BF16);
    double bf16 = conv_error(be);
    print_message("forward convolution, relative error: fp32 %.2e, bf16 %.2e\n", fp32, bf16);
    assert_true(fp32 < 1e-5);
    /* bf16 keeps 8 bits of mantissa: its rounding is seen (so bf16 is in force) but bounded */
    assert_true(bf16 > 1e-4 && bf16 < 2e-2);
    sm_backend_destroy(be);
}

/* The same steps in float32 and bf16 on a tiny network: every bf16 loss finite and within bf16's
 * rounding of the float32 one, the two runs not bit-identical (bf16 is in force). */
enum { STEPS = 20, PAIRS = 8 };

static int train_losses(int precision, float *losses)
{
    sm_backend *be;
    if (sm_backend_create(SM_BACKEND_CPU_DNNL, &be) != SM_OK) return -1;
    assert_int_equal(sm_backend_set_option(be, SM_BACKEND_OPT_CONV_ALGO, SM_CONV_ALGO_DIRECT),
                     SM_OK);
    if (sm_backend_set_option(be, SM_BACKEND_OPT_PRECISION, precision) != SM_OK) {
        sm_backend_destroy(be);
        return -1;
    }
    sm_arch *arch;
    assert_int_equal(
        sm_arch_from_string("1x20x20:conv6k5,relu,pool2,conv8k3,relu,flatten,fc16", &arch), SM_OK);
    sm_subnet *sub;
    sm_head *head;
    sm_adam *adam;
    sm_trainer *tr;
    assert_int_equal(sm_subnet_create(be, arch, 7, &sub), SM_OK);
    assert_int_equal(sm_subnet_init(sub, SM_INIT_HE, 7), SM_OK);
    assert_int_equal(sm_head_create(be, sm_subnet_feature_dim(sub), 7, &head), SM_OK);
    assert_int_equal(sm_adam_create(sub, head, &adam), SM_OK);
    assert_int_equal(sm_trainer_create(sub, head, adam, NULL, 7, &tr), SM_OK);
    static float a[PAIRS * 400], b[PAIRS * 400], labels[PAIRS];
    unsigned seed = 99;
    double tmp[400];
    for (int p = 0; p < PAIRS; p++) {
        ref_fill_uniform(&seed, 0, 1, 400, tmp);
        for (int i = 0; i < 400; i++) a[p * 400 + i] = (float)tmp[i];
        labels[p] = (float)(p % 2);
        ref_fill_uniform(&seed, 0, 1, 400, tmp);
        for (int i = 0; i < 400; i++) b[p * 400 + i] = p % 2 ? a[p * 400 + i] : (float)tmp[i];
    }
    for (int step = 0; step < STEPS; step++)
        assert_int_equal(sm_train_step_batch(tr, PAIRS, a, b, labels, &losses[step]), SM_OK);
    sm_trainer_destroy(tr);
    sm_adam_destroy(adam);
    sm_head_destroy(head);
    sm_subnet_destroy(sub);
    sm_arch_destroy(arch);
    sm_backend_destroy(be);
    return 0;
}

static void dnnl_bf16_trains(void **state)
{
    (void)state;
    float fp32[STEPS], bf16[STEPS];
    if (train_losses(SM_PRECISION_FP32, fp32) != 0 || train_losses(SM_PRECISION_BF16, bf16) != 0)
        skip();
    double worst = 0.0;
    bool differ = false;
    for (int i = 0; i < STEPS; i++) {
        assert_true(isfinite(bf16[i]));
        worst = fmax(worst, fabs((double)bf16[i] - fp32[i]));
        differ |= bf16[i] != fp32[i];
    }
    print_message("%d steps: loss fp32 %.5f -> %.5f, bf16 %.5f -> %.5f, largest gap %.2e\n", STEPS,
                  fp32[0], fp32[STEPS - 1], bf16[0], bf16[STEPS - 1], worst);
    assert_true(differ);
    assert_true(worst < 0.02);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(cpu_blas_refuses_bf16),
        cmocka_unit_test(dnnl_bf16),
        cmocka_unit_test(dnnl_bf16_trains),
    };
    return cmocka_run_group_tests_name("precision", tests, NULL, NULL);
}
