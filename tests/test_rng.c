/* SPDX-License-Identifier: MIT */
/* The library's RNG: reproducible streams, unbiased bounded integers, a sane normal. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/rng.h"

static void test_reproducible(void **state)
{
    (void)state;
    sm__rng a, b, c;
    sm__rng_seed(&a, 42);
    sm__rng_seed(&b, 42);
    sm__rng_seed(&c, 43);
    int differ = 0;
    for (int i = 0; i < 1000; i++) {
        uint64_t x = sm__rng_u64(&a);
        assert_true(x == sm__rng_u64(&b));
        differ += x != sm__rng_u64(&c);
    }
    assert_true(differ > 990);
}

static void test_below_uniform(void **state)
{
    (void)state;
    sm__rng r;
    sm__rng_seed(&r, 7);
    enum { K = 7, N = 70000 };
    long counts[K] = {0};
    for (int i = 0; i < N; i++) {
        uint64_t v = sm__rng_below(&r, K);
        assert_true(v < K);
        counts[v]++;
    }
    /* chi-square with 6 degrees of freedom: 22.5 is the 0.1 % tail */
    double chi = 0, e = (double)N / K;
    for (int k = 0; k < K; k++) chi += (counts[k] - e) * (counts[k] - e) / e;
    assert_true(chi < 22.5);
    assert_int_equal(sm__rng_below(&r, 1), 0);
}

static void test_normal_moments(void **state)
{
    (void)state;
    sm__rng r;
    sm__rng_seed(&r, 9);
    enum { N = 200000 };
    double s = 0, s2 = 0;
    for (int i = 0; i < N; i++) {
        double x = sm__rng_normal(&r);
        assert_true(isfinite(x));
        s += x, s2 += x * x;
    }
    double mean = s / N, var = s2 / N - mean * mean;
    assert_true(fabs(mean) < 0.01);
    assert_true(fabs(var - 1.0) < 0.02);
}

static void test_uniform_range(void **state)
{
    (void)state;
    sm__rng r;
    sm__rng_seed(&r, 11);
    for (int i = 0; i < 100000; i++) {
        double u = sm__rng_uniform(&r);
        assert_true(u >= 0.0 && u < 1.0);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reproducible),
        cmocka_unit_test(test_below_uniform),
        cmocka_unit_test(test_normal_moments),
        cmocka_unit_test(test_uniform_range),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
