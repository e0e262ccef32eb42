/* SPDX-License-Identifier: MIT */
/* The cuda backend's algorithm ranking (backends/cuda/algo_select.c) on synthetic result lists,
 * compiled here directly against the cuDNN headers: no GPU, no CUDA call. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "algo_select.h"

#define OK     CUDNN_STATUS_SUCCESS
#define DET    CUDNN_DETERMINISTIC
#define NONDET CUDNN_NON_DETERMINISTIC
#define BIG    ((size_t)1 << 40)

/* results tagged DEFAULT math (what cuDNN may answer for float data) must be kept with TF32
 * off and run under FMA math; the old FMA-only filter made this list empty */
static void default_math_is_accepted(void **state)
{
    (void)state;
    smc_algo_result r[] = {
        {CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM, OK, -1, 0, CUDNN_DEFAULT_MATH, DET},
        {CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM, OK, -1, 100, CUDNN_DEFAULT_MATH, DET},
    };
    smc_algo_choice c[8];
    int n = smc_algo_rank(SMC_FWD, r, 2, false, BIG, c, 8);
    assert_int_equal(n, 2);
    assert_int_equal(c[0].algo, CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM);
    assert_int_equal(c[0].math, CUDNN_FMA_MATH);
    assert_int_equal(c[1].math, CUDNN_FMA_MATH);
    assert_false(c[0].fallback);
    /* TF32 on: the reported math type is what runs */
    n = smc_algo_rank(SMC_FWD, r, 2, true, BIG, c, 8);
    assert_int_equal(n, 2);
    assert_int_equal(c[0].math, CUDNN_DEFAULT_MATH);
}

static void tensor_op_is_skipped_without_tf32(void **state)
{
    (void)state;
    smc_algo_result r[] = {
        {CUDNN_CONVOLUTION_BWD_DATA_ALGO_1, OK, -1, 0, CUDNN_TENSOR_OP_MATH, DET},
        {CUDNN_CONVOLUTION_BWD_DATA_ALGO_0, OK, -1, 0, CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION, DET},
        {CUDNN_CONVOLUTION_BWD_DATA_ALGO_1, OK, -1, 0, CUDNN_FMA_MATH, DET},
    };
    smc_algo_choice c[8];
    int n = smc_algo_rank(SMC_BWD_DATA, r, 3, false, BIG, c, 8);
    assert_int_equal(n, 1);
    assert_int_equal(c[0].algo, CUDNN_CONVOLUTION_BWD_DATA_ALGO_1);
    assert_int_equal(c[0].math, CUDNN_FMA_MATH);
    /* TF32 on: the tensor-op result first (cuDNN's order), one entry per algorithm */
    n = smc_algo_rank(SMC_BWD_DATA, r, 3, true, BIG, c, 8);
    assert_int_equal(n, 2);
    assert_int_equal(c[0].math, CUDNN_TENSOR_OP_MATH);
    assert_int_equal(c[1].algo, CUDNN_CONVOLUTION_BWD_DATA_ALGO_0);
}

/* an empty list, or one with nothing usable: the fixed algorithm per direction */
static void empty_list_falls_back(void **state)
{
    (void)state;
    smc_algo_choice c[4];
    assert_int_equal(smc_algo_rank(SMC_FWD, NULL, 0, false, BIG, c, 4), 1);
    assert_true(c[0].fallback);
    assert_int_equal(c[0].algo, CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM);
    assert_int_equal(c[0].math, CUDNN_FMA_MATH);
    smc_algo_result bad[] = {
        {CUDNN_CONVOLUTION_BWD_FILTER_ALGO_0, CUDNN_STATUS_NOT_SUPPORTED, -1, 0, CUDNN_FMA_MATH,
         DET},
        {CUDNN_CONVOLUTION_BWD_FILTER_ALGO_3, OK, -1, 0, CUDNN_TENSOR_OP_MATH, DET},
    };
    assert_int_equal(smc_algo_rank(SMC_BWD_FILTER, bad, 2, false, BIG, c, 4), 1);
    assert_true(c[0].fallback);
    assert_int_equal(c[0].algo, CUDNN_CONVOLUTION_BWD_FILTER_ALGO_1);
    assert_int_equal(smc_algo_rank(SMC_BWD_DATA, bad, 0, true, BIG, c, 4), 1);
    assert_int_equal(c[0].algo, CUDNN_CONVOLUTION_BWD_DATA_ALGO_1);
    assert_int_equal(c[0].math, CUDNN_DEFAULT_MATH);
}

/* a candidate whose workspace query failed carries that status: skipped, the rest kept */
static void failed_candidate_is_skipped(void **state)
{
    (void)state;
    smc_algo_result r[] = {
        {CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM, CUDNN_STATUS_BAD_PARAM, -1, 0,
         CUDNN_FMA_MATH, DET},
        {CUDNN_CONVOLUTION_FWD_ALGO_GEMM, OK, -1, 64, CUDNN_FMA_MATH, DET},
    };
    smc_algo_choice c[4];
    assert_int_equal(smc_algo_rank(SMC_FWD, r, 2, false, BIG, c, 4), 1);
    assert_int_equal(c[0].algo, CUDNN_CONVOLUTION_FWD_ALGO_GEMM);
}

static void deterministic_first_then_gemm_family(void **state)
{
    (void)state;
    smc_algo_result r[] = {
        {CUDNN_CONVOLUTION_FWD_ALGO_FFT, OK, -1, 0, CUDNN_DEFAULT_MATH, DET},
        {CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD_NONFUSED, OK, -1, 0, CUDNN_DEFAULT_MATH, DET},
        {CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM, OK, -1, 0, CUDNN_DEFAULT_MATH, NONDET},
        {CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM, OK, -1, 0, CUDNN_FMA_MATH, DET},
    };
    smc_algo_choice c[8];
    int n = smc_algo_rank(SMC_FWD, r, 4, false, BIG, c, 8);
    assert_int_equal(n, 4);
    assert_int_equal(c[0].algo, CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM);
    assert_int_equal(c[1].algo, CUDNN_CONVOLUTION_FWD_ALGO_FFT);
    assert_int_equal(c[2].algo, CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD_NONFUSED);
    assert_int_equal(c[3].algo, CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM);
    assert_false(c[3].deterministic);
    /* TF32 on: cuDNN's order within the deterministic ones */
    n = smc_algo_rank(SMC_FWD, r, 4, true, BIG, c, 8);
    assert_int_equal(c[0].algo, CUDNN_CONVOLUTION_FWD_ALGO_FFT);
    /* measured faster than every GEMM-family one: FFT keeps its place */
    smc_algo_result t[] = {
        {CUDNN_CONVOLUTION_FWD_ALGO_FFT, OK, 1.0f, 0, CUDNN_DEFAULT_MATH, DET},
        {CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM, OK, 2.0f, 0, CUDNN_DEFAULT_MATH, DET},
    };
    n = smc_algo_rank(SMC_FWD, t, 2, false, BIG, c, 8);
    assert_int_equal(c[0].algo, CUDNN_CONVOLUTION_FWD_ALGO_FFT);
    t[0].time = 3.0f; /* measured slower */
    n = smc_algo_rank(SMC_FWD, t, 2, false, BIG, c, 8);
    assert_int_equal(c[0].algo, CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM);
}

static void workspace_budget(void **state)
{
    (void)state;
    smc_algo_result r[] = {
        {CUDNN_CONVOLUTION_BWD_FILTER_ALGO_1, OK, -1, 5000, CUDNN_FMA_MATH, DET},
        {CUDNN_CONVOLUTION_BWD_FILTER_ALGO_0, OK, -1, 100, CUDNN_FMA_MATH, NONDET},
    };
    smc_algo_choice c[4];
    assert_int_equal(smc_algo_rank(SMC_BWD_FILTER, r, 2, false, 1000, c, 4), 1);
    assert_int_equal(c[0].algo, CUDNN_CONVOLUTION_BWD_FILTER_ALGO_0);
    assert_int_equal(c[0].memory, 100);
    assert_int_equal(smc_workspace_budget((size_t)4 << 30), (size_t)512 << 20);
    assert_int_equal(smc_workspace_budget((size_t)141 << 30), (size_t)1 << 30);
    /* room for one: the best */
    assert_int_equal(smc_algo_rank(SMC_BWD_FILTER, r, 2, false, BIG, c, 1), 1);
    assert_int_equal(c[0].algo, CUDNN_CONVOLUTION_BWD_FILTER_ALGO_1);
}

static void names_and_families(void **state)
{
    (void)state;
    assert_string_equal(smc_algo_name(SMC_FWD, 1), "IMPLICIT_PRECOMP_GEMM");
    assert_string_equal(smc_algo_name(SMC_BWD_FILTER, 3), "ALGO_3");
    assert_string_equal(smc_algo_name(SMC_BWD_DATA, 99), "unknown");
    assert_int_equal(smc_algo_family_of(SMC_BWD_FILTER, CUDNN_CONVOLUTION_BWD_FILTER_ALGO_3),
                     SMC_FAMILY_GEMM);
    assert_int_equal(smc_algo_family_of(SMC_BWD_DATA, CUDNN_CONVOLUTION_BWD_DATA_ALGO_FFT_TILING),
                     SMC_FAMILY_FFT);
    assert_int_equal(smc_algo_family_of(SMC_FWD, CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD),
                     SMC_FAMILY_WINOGRAD);
    assert_true(smc_family_tolerance(SMC_FAMILY_GEMM) < smc_family_tolerance(SMC_FAMILY_FFT));
    assert_string_equal(smc_math_name(CUDNN_DEFAULT_MATH), "DEFAULT");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(default_math_is_accepted),
        cmocka_unit_test(tensor_op_is_skipped_without_tf32),
        cmocka_unit_test(empty_list_falls_back),
        cmocka_unit_test(failed_candidate_is_skipped),
        cmocka_unit_test(deterministic_first_then_gemm_family),
        cmocka_unit_test(workspace_budget),
        cmocka_unit_test(names_and_families),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
