/* SPDX-License-Identifier: MIT */
/* Data-parallel training on in-process communicators (ranks on threads): for K = 4 gradient
 * shards, N = 1, 2 and 4 ranks give bit-identical parameters after several steps, equal to one
 * trainer alone; attach shares rank 0's state and refuses differing configurations on every
 * rank; a stalled rank makes the others fail with SM_ERR_COMM within the timeout, and the
 * communicator then fails at once; checkpoints are written by rank 0 only and resume with any
 * N dividing K exactly; a gradient whose size the ranks do not divide gives the same parameters
 * too, its padding zeros; a rank woken late from a collective copies nothing once a peer timed
 * out and returned. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "comm/comm_impl.h"
#include "dist_model.h"
#include "train/training.h"
#include "siamese/siamese.h"

enum { K = 4, BATCH = 24, MICRO = 4, STEPS = 4 };

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* One rank's job, run on its own thread (cmocka asserts stay on the main thread). */
typedef struct rank_job {
    sm_comm *comm;
    int steps;
    int64_t batch, shards;
    uint64_t init_seed;
    const char *load, *save; /* checkpoints, optional */
    int stall;               /* never step: sleep `stall` ms and return */
    double timeout_s;
    const char *arch;   /* default DM_ARCH_TINY */
    int plain;          /* no augmentation (SM_DISTORT_ALL otherwise) */
    int stale_exchange; /* before every step but the first: NaN bytes in the send blocks */
    int64_t bucket;     /* SM_TRAINER_EXCHANGE_BUCKET when > 0 (-1: 0, one bucket) */
    int overlap;        /* SM_TRAINER_EXCHANGE_OVERLAP: 0 default (on), 1 on, -1 off; 2: on for
                           rank 0 only */
    int overlapped;     /* result: the last step's exchange ran on the exchange's thread */
    /* results */
    sm_status st_attach, st_step, st_again;
    double t_step; /* seconds in the failing step */
    char msg[512];
    float *params;
    size_t n;
    size_t pad_nonzero; /* bytes of the last gathered gradient's padding that are not 0 */
    float losses[16];
} rank_job;

/* The gathered gradient past the G floats of the parameters: the N slices' padding, which
 * only zeros may fill (lib/train/trainer_shards.c). */
static size_t padding_nonzero(const sm_trainer *t)
{
    const size_t g = t->subnet->n_params + t->head->n_params;
    const size_t nr = t->comm ? (size_t)sm_comm_size(t->comm) : 1;
    /* the last bucket's slices (the whole gradient's when it is one bucket) reach past g */
    const size_t top = t->sh_x.n_buckets ? (t->sh_x.n_buckets - 1) * t->sh_x.bucket : 0;
    const size_t l = (g - top + nr - 1) / nr;
    const unsigned char *pad = (const unsigned char *)(t->sh_x.full + g);
    size_t bad = 0;
    for (size_t i = 0; t->sh_x.full && i < (top + nr * l - g) * sizeof(float); i++)
        bad += pad[i] != 0;
    return bad;
}

static void *rank_main(void *arg)
{
    rank_job *j = arg;
    if (j->stall) {
        usleep((useconds_t)j->stall * 1000);
        return NULL;
    }
    dm_model m;
    j->st_attach = j->st_step = j->st_again = SM_ERR_INTERNAL;
    if (dm_create(&m, j->arch ? j->arch : DM_ARCH_TINY, j->batch ? j->batch : BATCH, MICRO,
                  j->shards ? j->shards : K, j->plain ? 0 : SM_DISTORT_ALL, j->init_seed) != SM_OK)
        return NULL;
    if (j->load && sm_trainer_load(m.tr, j->load) != SM_OK) {
        snprintf(j->msg, sizeof j->msg, "load: %s", sm_last_error());
        dm_destroy(&m);
        return NULL;
    }
    if (j->comm && j->timeout_s > 0) sm_comm_set_timeout(j->comm, j->timeout_s);
    if (j->bucket)
        sm_trainer_set_param(m.tr, SM_TRAINER_EXCHANGE_BUCKET, j->bucket > 0 ? j->bucket : 0);
    if (j->overlap)
        sm_trainer_set_param(m.tr, SM_TRAINER_EXCHANGE_OVERLAP,
                             j->overlap == 1 || (j->overlap == 2 && j->comm &&
                                                 sm_comm_rank(j->comm) == 0));
    j->st_attach = j->comm ? sm_trainer_attach_comm(m.tr, j->comm) : SM_OK;
    if (j->st_attach != SM_OK) snprintf(j->msg, sizeof j->msg, "%s", sm_last_error());
    j->st_step = SM_OK;
    for (int s = 0; s < j->steps && j->st_attach == SM_OK && j->st_step == SM_OK; s++) {
        /* what an earlier step left in the exchange's buffers must not reach this one's */
        if (j->stale_exchange && s > 0 && m.tr->sh_x.send) /* alone, there is none */
            memset(m.tr->sh_x.send, 0xff, m.tr->sh_x.cap_block);
        double t0 = now_s();
        j->st_step = sm_train_step(m.tr, &j->losses[s]);
        j->t_step = now_s() - t0;
        if (j->st_step != SM_OK) {
            snprintf(j->msg, sizeof j->msg, "%s", sm_last_error());
            double t1 = now_s();
            float l;
            j->st_again = sm_train_step(m.tr, &l);
            j->t_step = t1 - t0;
            if (now_s() - t1 > 0.1) j->st_again = SM_ERR_INTERNAL; /* not "at once" */
        }
    }
    if (j->save && j->st_step == SM_OK) j->st_step = sm_trainer_save(m.tr, j->save);
    /* every rank counts the same iterations (a resumed one continues the checkpoint's) */
    if (j->st_step == SM_OK && !j->load && sm_trainer_iteration(m.tr) != j->steps)
        j->st_step = SM_ERR_INTERNAL;
    j->pad_nonzero = padding_nonzero(m.tr);
    j->overlapped = m.tr->sh_x.overlap;
    dm_params(&m, &j->params, &j->n);
    dm_destroy(&m);
    return NULL;
}

/* Runs n ranks (n = 0: one trainer with no communicator) through `steps` steps. */
static void run_ranks(int n, rank_job *jobs, const rank_job *tmpl)
{
    sm_comm *comms[8] = {0};
    if (n > 0) assert_int_equal(sm_comm_local_create(n, comms), SM_OK);
    int ranks = n > 0 ? n : 1;
    pthread_t th[8];
    for (int r = 0; r < ranks; r++) {
        jobs[r] = *tmpl;
        jobs[r].comm = comms[r];
        if (n > 0) {
            assert_int_equal(sm_comm_rank(comms[r]), r);
            assert_int_equal(sm_comm_size(comms[r]), n);
        }
        assert_int_equal(pthread_create(&th[r], NULL, rank_main, &jobs[r]), 0);
    }
    for (int r = 0; r < ranks; r++) pthread_join(th[r], NULL);
    for (int r = 0; r < n; r++) sm_comm_destroy(comms[r]);
}

static void free_jobs(rank_job *jobs, int n)
{
    for (int r = 0; r < n; r++) free(jobs[r].params);
}

static void test_bit_identical_over_ranks(void **state)
{
    (void)state;
    rank_job ref[1], jobs[4];
    rank_job tmpl = {.steps = STEPS, .init_seed = 5};
    run_ranks(0, ref, &tmpl); /* one trainer, K = 4, no communicator */
    assert_int_equal(ref[0].st_step, SM_OK);
    assert_non_null(ref[0].params);
    const int sizes[] = {1, 2, 4};
    for (size_t i = 0; i < 3; i++) {
        int n = sizes[i];
        /* every rank starts from other parameters: attach gives them rank 0's */
        rank_job t = tmpl;
        run_ranks(n, jobs, &t);
        for (int r = 0; r < n; r++) {
            assert_int_equal(jobs[r].st_attach, SM_OK);
            assert_int_equal(jobs[r].st_step, SM_OK);
            assert_int_equal(jobs[r].n, ref[0].n);
            assert_memory_equal(jobs[r].params, ref[0].params, ref[0].n * sizeof(float));
            assert_memory_equal(jobs[r].losses, ref[0].losses, STEPS * sizeof(float));
        }
        printf("N = %d ranks, K = %d shards, %d steps of %d pairs (%s): parameters "
               "bit-identical to one trainer (hash %016llx)\n",
               n, K, STEPS, BATCH, DM_ARCH_TINY,
               (unsigned long long)dm_hash(ref[0].params, ref[0].n));
        free_jobs(jobs, n);
    }
    /* K = 1 (the default) is the step as it always was; K = 4 is another (fixed) fold */
    rank_job one[1];
    tmpl.shards = 1;
    run_ranks(0, one, &tmpl);
    assert_int_equal(one[0].st_step, SM_OK);
    assert_memory_not_equal(one[0].params, ref[0].params, ref[0].n * sizeof(float));
    free_jobs(one, 1);
    free_jobs(ref, 1);
}

/* Buckets of 16 floats (about 30 for this model) to one, with the exchange's thread, without,
 * and on some ranks only: the parameters of one trainer, bit for bit. */
static void test_buckets_and_overlap_bit_identical(void **state)
{
    (void)state;
    rank_job ref[1], jobs[4];
    rank_job tmpl = {.steps = STEPS, .init_seed = 5};
    run_ranks(0, ref, &tmpl);
    assert_int_equal(ref[0].st_step, SM_OK);
    const struct {
        int64_t bucket;
        int overlap;
    } cases[] = {{64, 1}, {64, -1}, {-1, 1}, {1000, 2}, {68, 1}};
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++)
        for (int n = 2; n <= 4; n *= 2) {
            rank_job t = tmpl;
            t.bucket = cases[c].bucket, t.overlap = cases[c].overlap;
            run_ranks(n, jobs, &t);
            for (int r = 0; r < n; r++) {
                assert_int_equal(jobs[r].st_attach, SM_OK);
                assert_int_equal(jobs[r].st_step, SM_OK);
                assert_int_equal(jobs[r].overlapped,
                                 t.overlap == 1 || (t.overlap == 2 && r == 0));
                assert_memory_equal(jobs[r].params, ref[0].params, ref[0].n * sizeof(float));
                assert_memory_equal(jobs[r].losses, ref[0].losses, STEPS * sizeof(float));
                assert_int_equal(jobs[r].pad_nonzero, 0);
            }
            printf("N = %d, buckets of %lld bytes (0: one), overlap %s: bit-identical to one "
                   "trainer\n",
                   n, (long long)(t.bucket > 0 ? t.bucket : 0),
                   t.overlap == 1 ? "on" : t.overlap == 2 ? "rank 0" : "off");
            free_jobs(jobs, n);
        }
    free_jobs(ref, 1);
}

static void test_attach_shares_rank0_state(void **state)
{
    (void)state;
    rank_job jobs[2];
    rank_job tmpl = {.steps = 0, .init_seed = 5};
    sm_comm *c[2];
    assert_int_equal(sm_comm_local_create(2, c), SM_OK);
    pthread_t th[2];
    for (int r = 0; r < 2; r++) {
        jobs[r] = tmpl;
        jobs[r].comm = c[r];
        jobs[r].init_seed = 5 + 100 * (uint64_t)r; /* different initial parameters */
        assert_int_equal(pthread_create(&th[r], NULL, rank_main, &jobs[r]), 0);
    }
    for (int r = 0; r < 2; r++) pthread_join(th[r], NULL);
    assert_int_equal(jobs[0].st_attach, SM_OK);
    assert_int_equal(jobs[1].st_attach, SM_OK);
    assert_memory_equal(jobs[0].params, jobs[1].params, jobs[0].n * sizeof(float));
    free_jobs(jobs, 2);
    sm_comm_destroy(c[0]);
    sm_comm_destroy(c[1]);
}

static void test_mismatch_refused_on_every_rank(void **state)
{
    (void)state;
    rank_job jobs[2];
    sm_comm *c[2];
    assert_int_equal(sm_comm_local_create(2, c), SM_OK);
    pthread_t th[2];
    for (int r = 0; r < 2; r++) {
        jobs[r] = (rank_job){.steps = 1, .init_seed = 5, .comm = c[r]};
        if (r == 1) jobs[r].batch = BATCH + 4;
        assert_int_equal(pthread_create(&th[r], NULL, rank_main, &jobs[r]), 0);
    }
    for (int r = 0; r < 2; r++) pthread_join(th[r], NULL);
    for (int r = 0; r < 2; r++) {
        assert_int_equal(jobs[r].st_attach, SM_ERR_STATE);
        assert_non_null(strstr(jobs[r].msg, "rank 1 has the batch size = 28, rank 0 has 24"));
    }
    printf("refused on both ranks: %s\n", jobs[0].msg);
    free_jobs(jobs, 2);
    sm_comm_destroy(c[0]);
    sm_comm_destroy(c[1]);

    /* 3 ranks do not divide K = 4: refused on every rank */
    sm_comm *c3[3];
    rank_job j3[3];
    assert_int_equal(sm_comm_local_create(3, c3), SM_OK);
    pthread_t t3[3];
    for (int r = 0; r < 3; r++) {
        j3[r] = (rank_job){.steps = 1, .init_seed = 5, .comm = c3[r]};
        assert_int_equal(pthread_create(&t3[r], NULL, rank_main, &j3[r]), 0);
    }
    for (int r = 0; r < 3; r++) pthread_join(t3[r], NULL);
    for (int r = 0; r < 3; r++) {
        assert_int_equal(j3[r].st_attach, SM_ERR_INVALID_ARG);
        sm_comm_destroy(c3[r]);
    }
    free_jobs(j3, 3);
}

static void test_stalled_rank_times_out(void **state)
{
    (void)state;
    const double timeout = 0.5;
    rank_job jobs[2];
    sm_comm *c[2];
    assert_int_equal(sm_comm_local_create(2, c), SM_OK);
    pthread_t th[2];
    /* both attach, then rank 1 stops calling (a hung peer) */
    jobs[0] = (rank_job){.steps = 3, .init_seed = 5, .comm = c[0], .timeout_s = timeout};
    jobs[1] = (rank_job){.steps = 0, .init_seed = 5, .comm = c[1], .timeout_s = timeout};
    for (int r = 0; r < 2; r++)
        assert_int_equal(pthread_create(&th[r], NULL, rank_main, &jobs[r]), 0);
    for (int r = 0; r < 2; r++) pthread_join(th[r], NULL);
    assert_int_equal(jobs[0].st_attach, SM_OK);
    assert_int_equal(jobs[0].st_step, SM_ERR_COMM);
    assert_non_null(strstr(jobs[0].msg, "timed out"));
    assert_true(jobs[0].t_step >= timeout * 0.9 && jobs[0].t_step < timeout + 1.0);
    assert_int_equal(jobs[0].st_again, SM_ERR_COMM); /* at once */
    assert_int_equal(sm_comm_failed(c[0]), 1);
    printf("stalled peer: SM_ERR_COMM after %.3f s (timeout %.1f s): %s\n", jobs[0].t_step, timeout,
           jobs[0].msg);
    free_jobs(jobs, 2);
    sm_comm_destroy(c[0]);
    sm_comm_destroy(c[1]);

    /* a rank that never arrives at all: attach itself times out */
    assert_int_equal(sm_comm_local_create(2, c), SM_OK);
    jobs[0] = (rank_job){.steps = 1, .init_seed = 5, .comm = c[0], .timeout_s = 0.3};
    jobs[1] = (rank_job){.stall = 700};
    for (int r = 0; r < 2; r++)
        assert_int_equal(pthread_create(&th[r], NULL, rank_main, &jobs[r]), 0);
    for (int r = 0; r < 2; r++) pthread_join(th[r], NULL);
    assert_int_equal(jobs[0].st_attach, SM_ERR_COMM);
    /* the late rank finds the communicator failed and returns at once */
    sm_comm_set_timeout(c[1], 30);
    double t0 = now_s();
    assert_int_equal(sm_comm_barrier(c[1]), SM_ERR_COMM);
    assert_true(now_s() - t0 < 0.1);
    free_jobs(jobs, 2);
    sm_comm_destroy(c[0]);
    sm_comm_destroy(c[1]);
}

static char *temp_path(const char *name)
{
    const char *dir = getenv("TMPDIR");
    char *p = malloc(4096);
    snprintf(p, 4096, "%s/sm_comm_%d_%s", dir && *dir ? dir : "/tmp", (int)getpid(), name);
    return p;
}

static void test_checkpoint_resume_any_n(void **state)
{
    (void)state;
    char *ck = temp_path("ck.safetensors");
    unlink(ck);
    /* the uninterrupted run: 2 + 3 steps with one trainer */
    rank_job ref[1], jobs[4];
    rank_job tmpl = {.steps = 5, .init_seed = 5};
    run_ranks(0, ref, &tmpl);
    assert_int_equal(ref[0].st_step, SM_OK);
    /* 2 steps on 2 ranks, saved (rank 0 writes, rank 1 writes nothing) */
    tmpl.steps = 2;
    tmpl.save = ck;
    run_ranks(2, jobs, &tmpl);
    assert_int_equal(jobs[0].st_step, SM_OK);
    assert_int_equal(jobs[1].st_step, SM_OK);
    free_jobs(jobs, 2);
    assert_int_equal(access(ck, F_OK), 0);
    /* resume with 1 (no communicator) and 4 ranks: 3 more steps each */
    const int resume[] = {0, 4};
    for (size_t i = 0; i < 2; i++) {
        int n = resume[i];
        rank_job t = {.steps = 3, .init_seed = 99, .load = ck};
        run_ranks(n, jobs, &t);
        for (int r = 0; r < (n ? n : 1); r++) {
            assert_int_equal(jobs[r].st_step, SM_OK);
            assert_memory_equal(jobs[r].params, ref[0].params, ref[0].n * sizeof(float));
        }
        free_jobs(jobs, n ? n : 1);
    }
    printf("saved at N = 2 after 2 steps, resumed at N = 1 and N = 4 for 3: equal to 5 "
           "uninterrupted steps\n");
    free_jobs(ref, 1);
    unlink(ck);
    free(ck);
}

/* A gradient of G = 5 floats over N = 4 ranks: slices of 2, the last one all padding (its
 * start, 6, past G). Every N dividing K still gives one trainer's parameters, and the padding
 * that is folded and gathered is zeros even when the exchange's buffers hold NaN bytes from
 * before (it used to be left as it was: a size_t underflow skipped the zeroing). */
static void test_gradient_not_divisible_by_ranks(void **state)
{
    (void)state;
    rank_job ref[1], jobs[4];
    rank_job tmpl = {
        .steps = 3, .init_seed = 5, .arch = "1x1x2:flatten,fc1", .plain = 1, .stale_exchange = 1};
    run_ranks(0, ref, &tmpl);
    assert_int_equal(ref[0].st_step, SM_OK);
    assert_non_null(ref[0].params);
    const size_t g = ref[0].n;
    assert_true(3 * ((g + 3) / 4) > g); /* the shape under test: slice 3 starts past G */
    const int sizes[] = {2, 4};
    for (size_t i = 0; i < 2; i++) {
        int n = sizes[i];
        run_ranks(n, jobs, &tmpl);
        for (int r = 0; r < n; r++) {
            assert_int_equal(jobs[r].st_attach, SM_OK);
            assert_int_equal(jobs[r].st_step, SM_OK);
            assert_int_equal(jobs[r].n, g);
            if (jobs[r].pad_nonzero)
                printf("N = %d, rank %d: %zu bytes of the gathered gradient's padding not "
                       "zero\n",
                       n, r, jobs[r].pad_nonzero);
            assert_int_equal(jobs[r].pad_nonzero, 0);
            assert_memory_equal(jobs[r].params, ref[0].params, g * sizeof(float));
            assert_memory_equal(jobs[r].losses, ref[0].losses, 3 * sizeof(float));
        }
        free_jobs(jobs, n);
    }
    printf("G = %zu floats over N = 2 and 4 ranks (K = %d): parameters bit-identical to one "
           "trainer, padding zeros\n",
           g, K);
    free_jobs(ref, 1);
}

/* Collective semantics of the local communicator and the public calls. */
typedef struct coll_job {
    sm_comm *c;
    int ok;
} coll_job;

static void *coll_main(void *arg)
{
    coll_job *j = arg;
    int r = sm_comm_rank(j->c), n = sm_comm_size(j->c);
    int mine = 10 + r, all[4] = {0}, b = r == 2 ? 42 : -1;
    j->ok = sm_comm_allgather(j->c, &mine, all, sizeof mine) == SM_OK &&
            sm_comm_broadcast(j->c, &b, sizeof b, 2) == SM_OK && sm_comm_barrier(j->c) == SM_OK;
    for (int i = 0; i < n; i++) j->ok &= all[i] == 10 + i;
    j->ok &= b == 42;
    uint64_t bytes, ns;
    sm_comm_stats(j->c, &bytes, &ns);
    j->ok &= bytes > 0;
    return NULL;
}

static void test_collectives(void **state)
{
    (void)state;
    sm_comm *c[4];
    coll_job j[4];
    pthread_t th[4];
    assert_int_equal(sm_comm_local_create(4, c), SM_OK);
    for (int r = 0; r < 4; r++) {
        j[r] = (coll_job){c[r], 0};
        assert_int_equal(pthread_create(&th[r], NULL, coll_main, &j[r]), 0);
    }
    for (int r = 0; r < 4; r++) {
        pthread_join(th[r], NULL);
        assert_true(j[r].ok);
        assert_int_equal(sm_comm_failed(c[r]), 0);
        sm_comm_destroy(c[r]);
    }
    /* arguments */
    assert_int_equal(sm_comm_local_create(0, c), SM_ERR_INVALID_ARG);
    assert_int_equal(sm_comm_rank(NULL), -1);
    assert_int_equal(sm_comm_size(NULL), -1);
    assert_int_equal(sm_comm_failed(NULL), -1);
    sm_comm_destroy(NULL);
    sm_comm_ops ops = {
        .struct_size = sizeof ops, .version = SM_COMM_OPS_VERSION, .size = 2, .rank = 2};
    sm_comm *x;
    assert_int_equal(sm_comm_create(&ops, NULL, &x), SM_ERR_INVALID_ARG);
    ops.version = SM_COMM_OPS_VERSION + 1;
    assert_int_equal(sm_comm_create(&ops, NULL, &x), SM_ERR_VERSION);
    assert_int_equal(sm_comm_open("tcp", NULL, -1, &x), SM_ERR_INVALID_ARG);
    assert_int_equal(sm_comm_open("nccl", NULL, -1, &x), SM_ERR_INVALID_ARG);
    /* one rank: every collective is a copy; a trainer attaches as if alone */
    assert_int_equal(sm_comm_local_create(1, c), SM_OK);
    assert_int_equal(sm_comm_set_timeout(c[0], 0), SM_ERR_INVALID_ARG);
    assert_int_equal(sm_comm_barrier(c[0]), SM_OK);
    sm_comm_destroy(c[0]);
}

/* The late rank of lib/comm/comm_local.c: 3 ranks pass an all-gather's first barrier, the last is
 * held (by the test hook, without the lock) between its wake-up and its copy, the other two
 * copy, time out in the second barrier and return, and their callers poison and free their send
 * buffers. Only then is the late rank let go: it must see the failure and copy nothing (it used
 * to copy the freed buffers: poison in its recv, and a use-after-free under ASan). */
enum { LATE_RANKS = 3, LATE_RANK = 2, LATE_BYTES = 4096, LATE_POISON = 0xa5 };

static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int armed; /* the late rank is in the collective under test (not the warm-up barrier) */
    int held;  /* the hook held it */
    int gone;  /* early ranks back, their buffers poisoned and freed */
} late = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, 0};

static void hold_late_rank(int rank, int phase)
{
    if (rank != LATE_RANK || phase != SM__COMM_LOCAL_WOKEN) return;
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 10; /* a bound, should the early ranks never return */
    pthread_mutex_lock(&late.mu);
    if (late.armed) {
        late.held = 1;
        while (late.gone < LATE_RANKS - 1)
            if (pthread_cond_timedwait(&late.cv, &late.mu, &until) == ETIMEDOUT) break;
    }
    pthread_mutex_unlock(&late.mu);
}

/* memset through a volatile pointer: a store just before free() is otherwise dropped */
static void *(*volatile poison_fill)(void *, int, size_t) = memset;

typedef struct late_job {
    sm_comm *c;
    sm_status st_warm, st;
    unsigned char recv[LATE_RANKS * LATE_BYTES];
} late_job;

static void *late_main(void *arg)
{
    late_job *j = arg;
    const int r = sm_comm_rank(j->c);
    /* every thread running (default timeout) before the short deadline starts */
    j->st_warm = sm_comm_barrier(j->c);
    sm_comm_set_timeout(j->c, 0.3);
    unsigned char *send = malloc(LATE_BYTES);
    if (!send) return NULL;
    memset(send, 'a' + r, LATE_BYTES);
    if (r == LATE_RANK) {
        pthread_mutex_lock(&late.mu);
        late.armed = 1;
        pthread_mutex_unlock(&late.mu);
    }
    j->st = sm_comm_allgather(j->c, send, j->recv, LATE_BYTES);
    if (r != LATE_RANK) poison_fill(send, LATE_POISON, LATE_BYTES); /* the caller's again */
    free(send);
    if (r != LATE_RANK) {
        pthread_mutex_lock(&late.mu);
        late.gone++;
        pthread_cond_broadcast(&late.cv);
        pthread_mutex_unlock(&late.mu);
    }
    return NULL;
}

static void test_late_rank_copies_nothing_after_timeout(void **state)
{
    (void)state;
    sm_comm *c[LATE_RANKS];
    static late_job j[LATE_RANKS];
    pthread_t th[LATE_RANKS];
    assert_int_equal(sm_comm_local_create(LATE_RANKS, c), SM_OK);
    sm__comm_local_test_delay = hold_late_rank; /* before the threads: they only read it */
    for (int r = 0; r < LATE_RANKS; r++) {
        memset(&j[r], 0, sizeof j[r]);
        j[r].c = c[r];
        j[r].st_warm = j[r].st = SM_ERR_INTERNAL;
        assert_int_equal(pthread_create(&th[r], NULL, late_main, &j[r]), 0);
    }
    for (int r = 0; r < LATE_RANKS; r++) pthread_join(th[r], NULL);
    sm__comm_local_test_delay = NULL;
    assert_true(late.held); /* the window was reproduced */
    assert_int_equal(late.gone, LATE_RANKS - 1);
    for (int r = 0; r < LATE_RANKS; r++) {
        assert_int_equal(j[r].st_warm, SM_OK);
        assert_int_equal(j[r].st, SM_ERR_COMM);
        assert_int_equal(sm_comm_failed(c[r]), 1);
    }
    /* the late rank copied nothing: neither the poison nor anything else */
    size_t copied = 0, poison = 0;
    for (size_t i = 0; i < sizeof j[LATE_RANK].recv; i++) {
        copied += j[LATE_RANK].recv[i] != 0;
        poison += j[LATE_RANK].recv[i] == LATE_POISON;
    }
    if (copied)
        printf("late rank: %zu bytes copied after its peers returned, %zu of them freed "
               "buffers' poison\n",
               copied, poison);
    assert_int_equal(copied, 0);
    for (int r = 0; r < LATE_RANKS; r++) sm_comm_destroy(c[r]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_collectives),
        cmocka_unit_test(test_bit_identical_over_ranks),
        cmocka_unit_test(test_buckets_and_overlap_bit_identical),
        cmocka_unit_test(test_attach_shares_rank0_state),
        cmocka_unit_test(test_mismatch_refused_on_every_rank),
        cmocka_unit_test(test_stalled_rank_times_out),
        cmocka_unit_test(test_checkpoint_resume_any_n),
        cmocka_unit_test(test_gradient_not_divisible_by_ranks),
        cmocka_unit_test(test_late_rank_copies_nothing_after_timeout),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
