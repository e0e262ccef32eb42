/* SPDX-License-Identifier: MIT */
/* The data-parallel gradient exchange (lib/comm/grad_exchange.c), without a model:
 *  - the slices (sm__shard_slice): for every gradient size g in 0..64 and rank count nr in
 *    1..16, slice j starts at j ceil(g/nr) (or at g once that passes g), holds at most
 *    ceil(g/nr) floats, and the slices cover [0, g) once, in order. g = 5, nr = 4 used to give
 *    slice 3 a start of 6 and a count of -1 (a size_t underflow: the padding was left unzeroed);
 *  - the fold on the in-process communicator: N = 1, 2, 4 ranks on threads, K = 4 shards, for
 *    gradient sizes that N divides and that it does not, give every rank the left fold
 *    P0 + P1 + P2 + P3 of one process bit for bit, and the losses' sum in shard order. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "comm/grad_exchange.h"

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
                assert_int_equal(b, next);                  /* in order, no gap or overlap */
                assert_true(c <= l);
                assert_true(c <= g - b);           /* inside [0, g) */
                assert_true(c == l || b + c == g); /* only the end is short */
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

enum { K = 4, MAX_G = 37 };

/* shard q's gradient: values of mixed magnitudes, so that the order of the sums shows */
static float shard_value(size_t q, size_t e)
{
    unsigned x = (unsigned)(q * 7919 + e * 104729 + 17);
    x ^= x << 13, x ^= x >> 17, x ^= x << 5;
    return (float)((double)(x % 20001) - 10000.0) * (e % 3 == 0 ? 1e-7f : 1.0f);
}

typedef struct rank_job {
    sm_comm *comm;
    size_t g;
    float got[MAX_G];
    double loss;
    sm_status st;
} rank_job;

static void *rank_main(void *arg)
{
    rank_job *j = arg;
    const size_t nr = (size_t)sm_comm_size(j->comm), r = (size_t)sm_comm_rank(j->comm);
    const size_t per = K / nr;
    float part[K * MAX_G];
    double losses[K];
    for (size_t q = 0; q < per; q++) {
        for (size_t e = 0; e < j->g; e++) part[q * j->g + e] = shard_value(r * per + q, e);
        losses[q] = 0.1 * (double)(r * per + q + 1);
    }
    sm__grad_exchange x;
    memset(&x, 0, sizeof x);
    const float *folded = NULL;
    j->st = sm__grad_exchange_fold(&x, nr > 1 ? j->comm : NULL, K, j->g, part, losses, &folded,
                                   &j->loss);
    if (j->st == SM_OK) memcpy(j->got, folded, j->g * sizeof(float));
    sm__grad_exchange_free(&x);
    return NULL;
}

static void test_fold_over_local_ranks(void **state)
{
    (void)state;
    const size_t sizes[] = {1, 5, 8, 37};
    for (size_t si = 0; si < sizeof sizes / sizeof *sizes; si++) {
        const size_t g = sizes[si];
        float want[MAX_G];
        for (size_t e = 0; e < g; e++) {
            float acc = shard_value(0, e);
            for (size_t q = 1; q < K; q++) acc += shard_value(q, e);
            want[e] = acc;
        }
        const double want_loss = ((0.1 + 0.2) + 0.30000000000000004) + 0.4;
        for (int nr = 1; nr <= 4; nr *= 2) {
            sm_comm *c[4];
            assert_int_equal(sm_comm_local_create(nr, c), SM_OK);
            rank_job jobs[4];
            pthread_t th[4];
            for (int r = 0; r < nr; r++) {
                jobs[r] = (rank_job){.comm = c[r], .g = g};
                assert_int_equal(pthread_create(&th[r], NULL, rank_main, &jobs[r]), 0);
            }
            for (int r = 0; r < nr; r++) pthread_join(th[r], NULL);
            for (int r = 0; r < nr; r++) {
                assert_int_equal(jobs[r].st, SM_OK);
                if (memcmp(jobs[r].got, want, g * sizeof(float)) != 0)
                    fail_msg("G = %zu, N = %d, rank %d: not the fold of one process", g, nr, r);
                assert_true(jobs[r].loss == want_loss);
            }
            for (int r = 0; r < nr; r++) sm_comm_destroy(c[r]);
        }
    }
    /* N must divide K */
    sm__grad_exchange x;
    memset(&x, 0, sizeof x);
    const float *folded;
    double loss;
    float part[4] = {0};
    double losses[4] = {0};
    assert_int_equal(sm__grad_exchange_fold(&x, NULL, 0, 4, part, losses, &folded, &loss),
                     SM_ERR_STATE);
    sm__grad_exchange_free(&x);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_slices_cover_the_gradient),
        cmocka_unit_test(test_slice_past_the_end_is_empty),
        cmocka_unit_test(test_fold_over_local_ranks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
