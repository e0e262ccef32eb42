/* SPDX-License-Identifier: MIT */
/* The data-parallel gradient exchange (lib/comm/grad_exchange.c), without a model:
 *  - the slices (sm__shard_slice): for every gradient size g in 0..64 and rank count nr in
 *    1..16, slice j starts at j ceil(g/nr) (or at g once that passes g), holds at most
 *    ceil(g/nr) floats, and the slices cover [0, g) once, in order. g = 5, nr = 4 used to give
 *    slice 3 a start of 6 and a count of -1 (a size_t underflow: the padding was left unzeroed);
 *  - the fold on the in-process communicator: N = 1, 2, 4 ranks on threads, K = 4 shards, for
 *    gradient sizes that N divides and that it does not, give every rank the left fold
 *    P0 + P1 + P2 + P3 of one process bit for bit, and the losses' sum in shard order;
 *  - the same in buckets of 1 float to more than the gradient, with the exchange's thread
 *    (the last shard announced piece by piece from its end, NaN until then) and without; a
 *    communicator that does not allow the thread runs the exchange inline; a cancelled step
 *    ends within one collective's timeout. */
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include "comm/grad_exchange.h"
#include "siamese/siamese.h"

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

static void test_bucket_floats(void **state)
{
    (void)state;
    /* 0 or at least the gradient: one bucket of the whole gradient, rounded up to N floats */
    assert_int_equal(sm__exchange_bucket_floats(0, 37, 4), 40);
    assert_int_equal(sm__exchange_bucket_floats(1u << 30, 37, 4), 40);
    assert_int_equal(sm__exchange_bucket_floats(0, 0, 2), 2);
    /* bytes to floats, down to a multiple of N, at least N */
    assert_int_equal(sm__exchange_bucket_floats(64, 1000, 1), 16);
    assert_int_equal(sm__exchange_bucket_floats(64, 1000, 3), 15);
    assert_int_equal(sm__exchange_bucket_floats(7, 1000, 4), 4);
    assert_int_equal(sm__exchange_bucket_floats(4u << 20, 27712321, 2), 1048576);
}

enum { BIG_G = 1001 };

typedef struct bucket_job {
    sm_comm *comm;
    size_t g;
    uint64_t bucket;
    bool overlap, overlapped;
    float *got;
    double loss;
    sm_status st;
} bucket_job;

/* One rank: the shards before the last are whole at begin; the last is written from its end
 * in uneven pieces, each announced (as a backward pass does), before finish. Until then its
 * floats are NaN, so a bucket sent too early shows. */
static void *bucket_rank(void *arg)
{
    bucket_job *j = arg;
    const size_t nr = j->comm ? (size_t)sm_comm_size(j->comm) : 1;
    const size_t r = j->comm ? (size_t)sm_comm_rank(j->comm) : 0, per = K / nr, g = j->g;
    float *part = malloc(per * g * sizeof(float));
    double losses[K];
    for (size_t q = 0; q < per; q++) {
        for (size_t e = 0; e < g; e++)
            part[q * g + e] = q + 1 < per ? shard_value(r * per + q, e) : NAN;
        losses[q] = 0.1 * (double)(r * per + q + 1);
    }
    sm__grad_exchange x;
    memset(&x, 0, sizeof x);
    j->st = sm__grad_exchange_begin(&x, j->comm, K, g, part, j->bucket, j->overlap);
    j->overlapped = j->st == SM_OK && sm__grad_exchange_overlaps(&x);
    float *last = part + (per - 1) * g;
    for (size_t from = g, piece = 1; j->st == SM_OK && from > 0; piece = piece * 3 + 1) {
        const size_t a = from > piece ? from - piece : 0;
        for (size_t e = a; e < from; e++) last[e] = shard_value(r * per + per - 1, e);
        sm__grad_exchange_ready(&x, a);
        from = a;
    }
    const float *folded = NULL;
    if (j->st == SM_OK) j->st = sm__grad_exchange_finish(&x, losses, &folded, &j->loss);
    j->got = malloc(g * sizeof(float));
    if (j->st == SM_OK) memcpy(j->got, folded, g * sizeof(float));
    sm__grad_exchange_free(&x);
    free(part);
    return NULL;
}

/* Buckets of every size, with and without the exchange's thread, give the bits of one process,
 * for gradient sizes the ranks and buckets divide and that they do not. */
static void test_buckets_overlapped_fold(void **state)
{
    (void)state;
    const size_t sizes[] = {1, 5, 37, BIG_G};
    const uint64_t buckets[] = {0, 4, 12, 64, 400, 4 * BIG_G, 1u << 20};
    float *want = malloc(BIG_G * sizeof(float));
    for (size_t si = 0; si < sizeof sizes / sizeof *sizes; si++) {
        const size_t g = sizes[si];
        for (size_t e = 0; e < g; e++) {
            float acc = shard_value(0, e);
            for (size_t q = 1; q < K; q++) acc += shard_value(q, e);
            want[e] = acc;
        }
        const double want_loss = ((0.1 + 0.2) + 0.30000000000000004) + 0.4;
        for (size_t bi = 0; bi < sizeof buckets / sizeof *buckets; bi++)
            for (int ov = 0; ov < 2; ov++)
                for (int nr = 1; nr <= 4; nr *= 2) {
                    sm_comm *c[4];
                    assert_int_equal(sm_comm_local_create(nr, c), SM_OK);
                    bucket_job jobs[4];
                    pthread_t th[4];
                    for (int r = 0; r < nr; r++) {
                        jobs[r] = (bucket_job){.comm = nr > 1 ? c[r] : NULL, .g = g,
                                               .bucket = buckets[bi], .overlap = ov};
                        assert_int_equal(pthread_create(&th[r], NULL, bucket_rank, &jobs[r]), 0);
                    }
                    for (int r = 0; r < nr; r++) pthread_join(th[r], NULL);
                    for (int r = 0; r < nr; r++) {
                        assert_int_equal(jobs[r].st, SM_OK);
                        assert_int_equal(jobs[r].overlapped, ov && nr > 1);
                        if (memcmp(jobs[r].got, want, g * sizeof(float)) != 0)
                            fail_msg("G = %zu, N = %d, bucket %llu bytes, overlap %d, rank %d: "
                                     "not the fold of one process",
                                     g, nr, (unsigned long long)buckets[bi], ov, r);
                        assert_true(jobs[r].loss == want_loss);
                        free(jobs[r].got);
                    }
                    for (int r = 0; r < nr; r++) sm_comm_destroy(c[r]);
                }
    }
    free(want);
}

/* A communicator that does not allow the exchange's thread: no overlap, the same bits. */
static void test_not_serialized_runs_inline(void **state)
{
    (void)state;
    sm_comm *c[2];
    assert_int_equal(sm_comm_local_create(2, c), SM_OK);
    assert_int_equal(sm_comm_serialized(c[0]), 1);
    assert_int_equal(sm_comm_set_serialized(c[0], 2), SM_ERR_INVALID_ARG);
    assert_int_equal(sm_comm_set_serialized(NULL, 1), SM_ERR_INVALID_ARG);
    assert_int_equal(sm_comm_serialized(NULL), -1);
    for (int r = 0; r < 2; r++) assert_int_equal(sm_comm_set_serialized(c[r], 0), SM_OK);
    bucket_job jobs[2];
    pthread_t th[2];
    for (int r = 0; r < 2; r++) {
        jobs[r] = (bucket_job){.comm = c[r], .g = 37, .bucket = 16, .overlap = true};
        assert_int_equal(pthread_create(&th[r], NULL, bucket_rank, &jobs[r]), 0);
    }
    for (int r = 0; r < 2; r++) pthread_join(th[r], NULL);
    for (int r = 0; r < 2; r++) {
        assert_int_equal(jobs[r].st, SM_OK);
        assert_false(jobs[r].overlapped);
        free(jobs[r].got);
    }
    for (int r = 0; r < 2; r++) sm_comm_destroy(c[r]);
}

typedef struct cancel_job {
    sm_comm *comm;
    int rank_ready; /* announce the whole gradient before cancelling */
    double t_cancel;
} cancel_job;

/* A rank whose backward fails cancels: a bucket in flight ends (here: times out, its peer
 * never sends it), no other starts, and the exchange can be freed and begun again. */
static void *cancel_rank(void *arg)
{
    cancel_job *j = arg;
    float part[64] = {0};
    sm__grad_exchange x;
    memset(&x, 0, sizeof x);
    if (sm__grad_exchange_begin(&x, j->comm, 2, 64, part, 16, true) == SM_OK) {
        if (j->rank_ready) sm__grad_exchange_ready(&x, 0);
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        const double t0 = (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
        sm__grad_exchange_cancel(&x);
        clock_gettime(CLOCK_MONOTONIC, &ts);
        j->t_cancel = (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec - t0;
        sm__grad_exchange_cancel(&x); /* again: nothing */
    }
    sm__grad_exchange_free(&x);
    return NULL;
}

static void test_cancel(void **state)
{
    (void)state;
    sm_comm *c[2];
    assert_int_equal(sm_comm_local_create(2, c), SM_OK);
    for (int r = 0; r < 2; r++) assert_int_equal(sm_comm_set_timeout(c[r], 0.3), SM_OK);
    cancel_job jobs[2] = {{c[0], 1, -1}, {c[1], 0, -1}};
    pthread_t th[2];
    for (int r = 0; r < 2; r++)
        assert_int_equal(pthread_create(&th[r], NULL, cancel_rank, &jobs[r]), 0);
    for (int r = 0; r < 2; r++) pthread_join(th[r], NULL);
    for (int r = 0; r < 2; r++) {
        assert_true(jobs[r].t_cancel >= 0);
        assert_true(jobs[r].t_cancel < 2.0); /* at most the one collective's timeout */
    }
    for (int r = 0; r < 2; r++) sm_comm_destroy(c[r]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_slices_cover_the_gradient),
        cmocka_unit_test(test_slice_past_the_end_is_empty),
        cmocka_unit_test(test_fold_over_local_ranks),
        cmocka_unit_test(test_bucket_floats),
        cmocka_unit_test(test_buckets_overlapped_fold),
        cmocka_unit_test(test_not_serialized_runs_inline),
        cmocka_unit_test(test_cancel),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
