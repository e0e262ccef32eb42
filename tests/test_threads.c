/* SPDX-License-Identifier: MIT */
/* The concurrency rules of siamese.h, exercised: many threads predicting and embedding with one
 * trained model (const subnet + head) get exactly the single-threaded results, bit for bit;
 * trainers that share nothing but a backend and a (const) dataset train at the same time and
 * each gives the losses it gives alone; sm_last_error() is per thread. tests/test_tsan.sh runs
 * this program under ThreadSanitizer, which must report nothing.
 * No cmocka assertion is made inside a worker thread (they longjmp): workers record what they
 * saw and the main thread checks it. */
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "siamese/siamese.h"

#define TINY "1x12x12:conv4k3,relu,pool2,conv4k3,relu,flatten,fc8"
enum { IN = 144, DIM = 8, PAIRS = 37, REPS = 30, PREDICTORS = 4, TRAINERS = 3, STEPS = 4 };

typedef struct shared {
    const sm_subnet *sub;
    const sm_head *head;
    const sm_dataset *ds;
    sm_backend *be;
    float *a, *b;      /* PAIRS images each */
    float *ref_scores; /* PAIRS */
    float *ref_feat;   /* 2 * PAIRS * DIM: embeddings of a then b */
    float ref_loss[STEPS];
} shared;

typedef struct job {
    const shared *sh;
    int id;
    int mismatches;   /* results that differ from the single-threaded ones */
    sm_status failed; /* the first unexpected status */
    char detail[256];
    int error_mixups; /* sm_last_error() showing another thread's failure */
    float loss[STEPS];
} job;

static void record(job *j, sm_status st, const char *what)
{
    if (j->failed == SM_OK) {
        j->failed = st;
        snprintf(j->detail, sizeof j->detail, "%s: %s", what, sm_last_error());
    }
}

static void *predictor(void *arg)
{
    job *j = arg;
    const shared *sh = j->sh;
    float scores[PAIRS], *feat = malloc(2 * PAIRS * DIM * sizeof *feat);
    float *imgs = malloc(2 * PAIRS * IN * sizeof *imgs);
    if (!feat || !imgs) {
        record(j, SM_ERR_NOMEM, "malloc");
        free(feat), free(imgs);
        return NULL;
    }
    memcpy(imgs, sh->a, PAIRS * IN * sizeof *imgs);
    memcpy(imgs + PAIRS * IN, sh->b, PAIRS * IN * sizeof *imgs);
    char mine[32];
    snprintf(mine, sizeof mine, "%d", 900000 + j->id);
    for (int r = 0; r < REPS; r++) {
        /* a failure of our own, with a message only this thread can have caused */
        float px[IN];
        if (sm_dataset_get_image(sh->ds, (size_t)(900000 + j->id), px) != SM_ERR_INVALID_ARG)
            record(j, SM_ERR_INTERNAL, "out-of-range sm_dataset_get_image did not fail");
        sm_status st = sm_predict_pairs(sh->sub, sh->head, PAIRS, sh->a, sh->b, scores);
        if (st != SM_OK) record(j, st, "sm_predict_pairs");
        else if (memcmp(scores, sh->ref_scores, sizeof scores) != 0) j->mismatches++;
        /* one pair at a time, different chunking, the same numbers */
        int k = (r * 7 + j->id) % PAIRS;
        float one;
        st = sm_predict_pair(sh->sub, sh->head, sh->a + k * IN, sh->b + k * IN, &one);
        if (st != SM_OK) record(j, st, "sm_predict_pair");
        else if (memcmp(&one, &sh->ref_scores[k], sizeof one) != 0) j->mismatches++;
        st = sm_embed(sh->sub, 2 * PAIRS, imgs, feat);
        if (st != SM_OK) record(j, st, "sm_embed");
        else if (memcmp(feat, sh->ref_feat, 2 * PAIRS * DIM * sizeof *feat) != 0) j->mismatches++;
        if (!strstr(sm_last_error(), mine)) j->error_mixups++;
    }
    free(feat), free(imgs);
    return NULL;
}

/* A whole model of its own (on the shared backend, reading the shared dataset), trained for
 * STEPS steps. Seeds are the same in every thread, so every thread must see the same losses. */
static sm_status train_own_model(sm_backend *be, const sm_dataset *ds, float loss[STEPS])
{
    sm_arch *arch = NULL;
    sm_subnet *sub = NULL;
    sm_head *head = NULL;
    sm_adam *adam = NULL;
    sm_trainer *tr = NULL;
    sm_status st = sm_arch_from_string(TINY, &arch);
    if (st == SM_OK) st = sm_subnet_create(be, arch, 11, &sub);
    if (st == SM_OK) st = sm_head_create(be, DIM, 12, &head);
    if (st == SM_OK) st = sm_adam_create(sub, head, &adam);
    if (st == SM_OK) st = sm_adam_set(adam, SM_ADAM_LEARNING_RATE, 1e-2);
    if (st == SM_OK) st = sm_trainer_create(sub, head, adam, ds, 13, &tr);
    if (st == SM_OK) st = sm_trainer_set_param(tr, SM_TRAINER_BATCH_SIZE, 10);
    if (st == SM_OK) st = sm_trainer_set_param(tr, SM_TRAINER_MICRO_BATCH, 4);
    for (int i = 0; i < STEPS && st == SM_OK; i++) st = sm_train_step(tr, &loss[i]);
    sm_trainer_destroy(tr);
    sm_adam_destroy(adam);
    sm_head_destroy(head);
    sm_subnet_destroy(sub);
    sm_arch_destroy(arch);
    return st;
}

static void *trainer(void *arg)
{
    job *j = arg;
    sm_status st = train_own_model(j->sh->be, j->sh->ds, j->loss);
    if (st != SM_OK) record(j, st, "training");
    else if (memcmp(j->loss, j->sh->ref_loss, sizeof j->loss) != 0) j->mismatches++;
    return NULL;
}

static void test_concurrent_predict_and_train(void **state)
{
    (void)state;
    shared sh;
    memset(&sh, 0, sizeof sh);
    sm_backend *be;
    sm_arch *arch;
    sm_subnet *sub;
    sm_head *head;
    sm_adam *adam;
    sm_trainer *tr;
    sm_dataset *ds;
    assert_int_equal(sm_backend_create(SM_BACKEND_CPU, &be), SM_OK);
    assert_int_equal(sm_dataset_create_synthetic(8, 4, 12, 12, 3, &ds), SM_OK);
    assert_int_equal(sm_arch_from_string(TINY, &arch), SM_OK);
    assert_int_equal(sm_subnet_create(be, arch, 5, &sub), SM_OK);
    assert_int_equal(sm_head_create(be, DIM, 6, &head), SM_OK);
    assert_int_equal(sm_adam_create(sub, head, &adam), SM_OK);
    assert_int_equal(sm_adam_set(adam, SM_ADAM_LEARNING_RATE, 1e-2), SM_OK);
    assert_int_equal(sm_trainer_create(sub, head, adam, ds, 7, &tr), SM_OK);
    assert_int_equal(sm_trainer_set_param(tr, SM_TRAINER_BATCH_SIZE, 8), SM_OK);
    float loss;
    for (int i = 0; i < 3; i++) assert_int_equal(sm_train_step(tr, &loss), SM_OK);
    /* training is over: from here on the model is only read */
    sm_trainer_destroy(tr);

    sh.sub = sub, sh.head = head, sh.ds = ds, sh.be = be;
    sh.a = malloc(PAIRS * IN * sizeof *sh.a);
    sh.b = malloc(PAIRS * IN * sizeof *sh.b);
    sh.ref_scores = malloc(PAIRS * sizeof *sh.ref_scores);
    sh.ref_feat = malloc(2 * PAIRS * DIM * sizeof *sh.ref_feat);
    assert_non_null(sh.a), assert_non_null(sh.b), assert_non_null(sh.ref_scores);
    assert_non_null(sh.ref_feat);
    size_t n = sm_dataset_num_images(ds);
    for (size_t i = 0; i < PAIRS; i++) {
        assert_int_equal(sm_dataset_get_image(ds, i % n, sh.a + i * IN), SM_OK);
        assert_int_equal(sm_dataset_get_image(ds, (i * 5 + 3) % n, sh.b + i * IN), SM_OK);
    }
    /* single-threaded references */
    assert_int_equal(sm_predict_pairs(sub, head, PAIRS, sh.a, sh.b, sh.ref_scores), SM_OK);
    assert_int_equal(sm_embed(sub, PAIRS, sh.a, sh.ref_feat), SM_OK);
    assert_int_equal(sm_embed(sub, PAIRS, sh.b, sh.ref_feat + PAIRS * DIM), SM_OK);
    for (int k = 0; k < PAIRS; k++) {
        float one;
        assert_int_equal(sm_predict_pair(sub, head, sh.a + k * IN, sh.b + k * IN, &one), SM_OK);
        assert_memory_equal(&one, &sh.ref_scores[k], sizeof one);
    }
    assert_int_equal(train_own_model(be, ds, sh.ref_loss), SM_OK);
    for (int i = 0; i < STEPS; i++) assert_true(isfinite(sh.ref_loss[i]));

    /* predictors and trainers, all at once */
    pthread_t th[PREDICTORS + TRAINERS];
    job jobs[PREDICTORS + TRAINERS];
    memset(jobs, 0, sizeof jobs);
    for (int i = 0; i < PREDICTORS + TRAINERS; i++) {
        jobs[i].sh = &sh;
        jobs[i].id = i;
        int rc = pthread_create(&th[i], NULL, i < PREDICTORS ? predictor : trainer, &jobs[i]);
        assert_int_equal(rc, 0);
    }
    for (int i = 0; i < PREDICTORS + TRAINERS; i++) assert_int_equal(pthread_join(th[i], NULL), 0);
    for (int i = 0; i < PREDICTORS + TRAINERS; i++) {
        const job *j = &jobs[i];
        if (j->failed != SM_OK)
            fail_msg("thread %d: %s (%s)", i, sm_status_name(j->failed), j->detail);
        if (j->mismatches)
            fail_msg("thread %d (%s): %d results differ from the single-threaded ones", i,
                     i < PREDICTORS ? "predictor" : "trainer", j->mismatches);
        if (j->error_mixups)
            fail_msg("thread %d: sm_last_error() showed another thread's error %d times", i,
                     j->error_mixups);
    }
    /* the model was not changed by all that reading */
    float again[PAIRS];
    assert_int_equal(sm_predict_pairs(sub, head, PAIRS, sh.a, sh.b, again), SM_OK);
    assert_memory_equal(again, sh.ref_scores, sizeof again);

    free(sh.a), free(sh.b), free(sh.ref_scores), free(sh.ref_feat);
    sm_adam_destroy(adam);
    sm_head_destroy(head);
    sm_subnet_destroy(sub);
    sm_arch_destroy(arch);
    sm_dataset_destroy(ds);
    sm_backend_destroy(be);
}

/* Limits are atomics: threads may read and set them while others work. */
static void *limit_setter(void *arg)
{
    int *bad = arg;
    for (int i = 0; i < 2000; i++) {
        if (sm_set_limit(SM_LIMIT_IMAGE_SIDE, (uint64_t)(4096 + (i & 1))) != SM_OK) (*bad)++;
        uint64_t v = sm_get_limit(SM_LIMIT_IMAGE_SIDE);
        if (v != 4096 && v != 4097) (*bad)++;
    }
    return NULL;
}

static void test_limits_from_threads(void **state)
{
    (void)state;
    pthread_t th[3];
    int bad[3] = {0, 0, 0};
    for (int i = 0; i < 3; i++)
        assert_int_equal(pthread_create(&th[i], NULL, limit_setter, &bad[i]), 0);
    for (int i = 0; i < 3; i++) assert_int_equal(pthread_join(th[i], NULL), 0);
    for (int i = 0; i < 3; i++) assert_int_equal(bad[i], 0);
    assert_int_equal(sm_set_limit(SM_LIMIT_IMAGE_SIDE, 4096), SM_OK);
}

/* Backends created and destroyed from several threads at once (auto resolution included). */
static void *backend_churn(void *arg)
{
    int *bad = arg;
    for (int i = 0; i < 20; i++) {
        sm_backend *be = NULL;
        if (sm_backend_create(i % 2 ? SM_BACKEND_AUTO : SM_BACKEND_CPU, &be) != SM_OK) (*bad)++;
        sm_backend_destroy(be);
    }
    return NULL;
}

static void test_backends_from_threads(void **state)
{
    (void)state;
    pthread_t th[4];
    int bad[4] = {0, 0, 0, 0};
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&th[i], NULL, backend_churn, &bad[i]), 0);
    for (int i = 0; i < 4; i++) assert_int_equal(pthread_join(th[i], NULL), 0);
    for (int i = 0; i < 4; i++) assert_int_equal(bad[i], 0);
}

/* Evaluations only read their handles: threads evaluating one model on one dataset at once
 * get the single-threaded results exactly. */
typedef struct eval_job {
    const sm_subnet *sub;
    const sm_head *head;
    const sm_dataset *ds;
    sm_eval_result ver, shot;
    sm_status st;
} eval_job;

static void *evaluator(void *arg)
{
    eval_job *j = arg;
    j->st = sm_verification_accuracy(j->sub, j->head, j->ds, 60, 3, &j->ver);
    if (j->st == SM_OK)
        j->st = sm_oneshot_episodes(j->sub, j->head, j->ds, 4, 1, 5, 1, 3, &j->shot);
    return NULL;
}

static void test_concurrent_evaluation(void **state)
{
    (void)state;
    sm_backend *be;
    sm_arch *arch;
    sm_subnet *sub;
    sm_head *head;
    sm_dataset *ds;
    assert_int_equal(sm_backend_create(SM_BACKEND_CPU, &be), SM_OK);
    assert_int_equal(sm_arch_from_string(TINY, &arch), SM_OK);
    assert_int_equal(sm_subnet_create(be, arch, 5, &sub), SM_OK);
    assert_int_equal(sm_head_create(be, DIM, 6, &head), SM_OK);
    assert_int_equal(sm_dataset_create_synthetic(12, 3, 12, 12, 8, &ds), SM_OK);
    eval_job ref = {sub, head, ds, SM_EVAL_RESULT_INIT, SM_EVAL_RESULT_INIT, SM_OK};
    evaluator(&ref);
    assert_int_equal(ref.st, SM_OK);
    enum { N = 3 };
    eval_job jobs[N];
    pthread_t th[N];
    for (int i = 0; i < N; i++) {
        jobs[i] = ref;
        memset(&jobs[i].ver.kind, 0, sizeof jobs[i].ver - sizeof jobs[i].ver.struct_size);
        assert_int_equal(pthread_create(&th[i], NULL, evaluator, &jobs[i]), 0);
    }
    for (int i = 0; i < N; i++) assert_int_equal(pthread_join(th[i], NULL), 0);
    for (int i = 0; i < N; i++) {
        assert_int_equal(jobs[i].st, SM_OK);
        assert_memory_equal(&jobs[i].ver, &ref.ver, sizeof ref.ver);
        assert_memory_equal(&jobs[i].shot, &ref.shot, sizeof ref.shot);
    }
    sm_dataset_destroy(ds);
    sm_head_destroy(head);
    sm_subnet_destroy(sub);
    sm_arch_destroy(arch);
    sm_backend_destroy(be);
}

/* Many threads identifying and verifying against one gallery (const) get the single-threaded
 * answers (gallery.h: "many identifying threads, one enrolling"). */
typedef struct gallery_job {
    const sm_gallery *g;
    const float *queries; /* 4 images */
    sm_gallery_match m[4 * 3];
    double score;
    sm_status st;
} gallery_job;

static void *identifier(void *arg)
{
    gallery_job *j = arg;
    for (int r = 0; r < 5 && j->st == SM_OK; r++) {
        j->st = sm_gallery_identify(j->g, 4, j->queries, 3, j->m, NULL);
        if (j->st == SM_OK) j->st = sm_gallery_verify(j->g, "c1", j->queries, 0.5, &j->score, NULL);
    }
    return NULL;
}

static void test_concurrent_gallery(void **state)
{
    (void)state;
    sm_backend *be;
    sm_arch *arch;
    sm_subnet *sub;
    sm_head *head;
    sm_gallery *g;
    assert_int_equal(sm_backend_create(SM_BACKEND_CPU, &be), SM_OK);
    assert_int_equal(sm_arch_from_string(TINY, &arch), SM_OK);
    assert_int_equal(sm_subnet_create(be, arch, 5, &sub), SM_OK);
    assert_int_equal(sm_head_create(be, DIM, 6, &head), SM_OK);
    assert_int_equal(sm_gallery_create(sub, head, &g), SM_OK);
    float *img = malloc(12 * IN * sizeof *img);
    assert_non_null(img);
    for (int i = 0; i < 12 * IN; i++) img[i] = (float)((i * 37) % 101) / 100.0f;
    for (int c = 0; c < 4; c++) {
        char label[8];
        snprintf(label, sizeof label, "c%d", c);
        assert_int_equal(sm_gallery_enrol(g, label, 2, img + c * 2 * IN), SM_OK);
    }
    gallery_job ref = {g, img + 8 * IN, {{0}}, 0, SM_OK};
    identifier(&ref);
    assert_int_equal(ref.st, SM_OK);
    enum { N = 4 };
    gallery_job jobs[N];
    pthread_t th[N];
    for (int i = 0; i < N; i++) {
        jobs[i] = (gallery_job){g, img + 8 * IN, {{0}}, 0, SM_OK};
        assert_int_equal(pthread_create(&th[i], NULL, identifier, &jobs[i]), 0);
    }
    for (int i = 0; i < N; i++) assert_int_equal(pthread_join(th[i], NULL), 0);
    for (int i = 0; i < N; i++) {
        assert_int_equal(jobs[i].st, SM_OK);
        assert_memory_equal(jobs[i].m, ref.m, sizeof ref.m);
        assert_true(jobs[i].score == ref.score);
    }
    free(img);
    sm_gallery_destroy(g);
    sm_head_destroy(head);
    sm_subnet_destroy(sub);
    sm_arch_destroy(arch);
    sm_backend_destroy(be);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_concurrent_predict_and_train),
        cmocka_unit_test(test_limits_from_threads),
        cmocka_unit_test(test_backends_from_threads),
        cmocka_unit_test(test_concurrent_evaluation),
        cmocka_unit_test(test_concurrent_gallery),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
