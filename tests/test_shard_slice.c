/* SPDX-License-Identifier: MIT */
/* The gradient's slices of a data-parallel step (sm__shard_slice, lib/trainer_shards.c): for
 * every gradient size g in 0..64 and rank count nr in 1..16, slice j starts at j ceil(g/nr) (or
 * at g once that passes g), holds at most ceil(g/nr) floats, and the slices cover [0, g) once,
 * in order. g = 5, nr = 4 used to give slice 3 a start of 6 and a count of -1 (a size_t
 * underflow: the padding was left unzeroed). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "network/model.h"

static void test_slices_cover_the_gradient(void **state)
{
    (void)state;
    for (size_t g = 0; g <= 64; g++) {
        for (size_t nr = 1; nr <= 16; nr++) {
            const size_t l = (g + nr - 1) / nr;
            size_t next = 0;
            for (size_t j = 0; j < nr; j++) {
                size_t b = SIZE_MAX, c = SIZE_MAX;
                sm__shard_slice(g, nr, j, &b, &c);
                assert_int_equal(b, j * l < g ? j * l : g); /* where the fold puts it */
                assert_int_equal(b, next);                   /* in order, no gap or overlap */
                assert_true(c <= l);
                assert_true(c <= g - b);                     /* inside [0, g) */
                assert_true(c == l || b + c == g);           /* only the end is short */
                next = b + c;
            }
            assert_int_equal(next, g);
        }
    }
}

static void test_slice_past_the_end_is_empty(void **state)
{
    (void)state;
    size_t b, c;
    sm__shard_slice(5, 4, 2, &b, &c); /* l = 2: [4, 5), one float and one of padding */
    assert_int_equal(b, 4);
    assert_int_equal(c, 1);
    sm__shard_slice(5, 4, 3, &b, &c); /* would start at 6 > 5: all padding */
    assert_int_equal(b, 5);
    assert_int_equal(c, 0);
    sm__shard_slice(0, 3, 1, &b, &c);
    assert_int_equal(b, 0);
    assert_int_equal(c, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_slices_cover_the_gradient),
        cmocka_unit_test(test_slice_past_the_end_is_empty),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
