/* SPDX-License-Identifier: MIT */
/* Allocation failure across a whole life cycle: backend, arch, dataset, subnet, head, Adam,
 * trainer, two steps, predictions, embeddings, a trainer checkpoint saved and loaded back (into
 * a trainer resized in between, so the load has to resize it again), one more step, a model
 * saved and loaded, and every destroy.
 *
 * A reference run counts the allocations the cycle attempts. Then, for every n from 0 to that
 * count, the cycle runs again with the n-th allocation (and every one after it) failing. The
 * call in which it fails must return SM_ERR_NOMEM with a message, must not have written its
 * output handle, and must leave as many live allocations as it found; every call before it must
 * return SM_OK. Failures are then turned off and the same call is made again on the same
 * handles: it must succeed, and the rest of the cycle must give bit for bit what the reference
 * run gave (losses, scores, embeddings, parameters), which shows that the failed call left its
 * handles as they were. After the destroys, the library's live-allocation count must be back
 * where it started. (Leaks of libspng / libzip / OpenBLAS allocations are valgrind's and ASan's
 * business: this test runs under both in CI.) */
#include <dirent.h>
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

#include "common/alloc.h"
#include "network/network.h"
#include "siamese/siamese.h"

#define ARCH    "1x12x12:conv4k3,gn2,relu,pool2,conv4k3,relu,flatten,fc8"
#define N_PAIRS 3
#define N_EMBED 4
#define DIM     8
#define PIX     (12 * 12)

typedef struct results {
    float loss[3];
    float scores[N_PAIRS];        /* after two steps */
    float feats[N_EMBED * DIM];   /* after two steps */
    float scores_loaded[N_PAIRS]; /* the saved-and-loaded model, after three steps */
    float scores_final[N_PAIRS];  /* the trained model itself, after three steps */
    size_t n_params;
    float *params;              /* subnet ++ head after three steps (malloc'd) */
    sm_gallery_match gm[2 * 2]; /* a gallery over the loaded model, saved and loaded */
    size_t g_examples, g_labels, g_removed;
    sm_gallery_match gm8[2]; /* a u8 gallery, loaded mapped without the rows' check */
    size_t g8_examples;
} results;

typedef struct cycle {
    char dir[256];
    char ck_path[300], model_path[300], gallery_path[300];
    long fail_at; /* -1: the reference run */
    long base;    /* sm__alloc_count() when the failures were armed */
    int fired;    /* the failing allocation has happened (and was handled) */
    const char *failed_call;
} cycle;

static long attempts_since(const cycle *c) { return sm__alloc_count() - c->base; }

/* Checks one call's status; on the injected failure, checks it and makes the call again. `out`
 * (may be NULL) is the handle the call creates: it must still be NULL after a failure;
 * `on_fail` runs after a failure, before the call is made again. */
#define CALL_X(c, out, on_fail, expr)                                                              \
    do {                                                                                           \
        long live0_ = sm__alloc_live();                                                            \
        sm_status st_ = (expr);                                                                    \
        if (!(c)->fired && (c)->fail_at >= 0 && attempts_since(c) > (c)->fail_at) {                \
            sm__alloc_fail_after(-1);                                                              \
            (c)->fired = 1;                                                                        \
            (c)->failed_call = #expr;                                                              \
            if (st_ != SM_ERR_NOMEM)                                                               \
                fail_msg("allocation %ld failed inside %s, which returned %s (%s), expected "      \
                         "SM_ERR_NOMEM",                                                           \
                         (c)->fail_at, #expr, sm_status_name(st_), sm_last_error());               \
            if (sm_last_error()[0] == 0) fail_msg("%s: SM_ERR_NOMEM without a message", #expr);    \
            if (sm__alloc_live() != live0_)                                                        \
                fail_msg("allocation %ld failed inside %s, which then held %ld allocations "       \
                         "more than before the call",                                              \
                         (c)->fail_at, #expr, sm__alloc_live() - live0_);                          \
            if ((out) != NULL && *(void **)(out) != NULL)                                          \
                fail_msg("%s failed but wrote its output handle", #expr);                          \
            on_fail;                                                                               \
            st_ = (expr);                                                                          \
        }                                                                                          \
        if (st_ != SM_OK)                                                                          \
            fail_msg("fail_at %ld: %s returned %s (%s)", (c)->fail_at, #expr, sm_status_name(st_), \
                     sm_last_error());                                                             \
    } while (0)

#define CALL_OUT(c, out, expr) CALL_X(c, out, (void)0, expr)
#define CALL(c, expr)          CALL_X(c, (void *)NULL, (void)0, expr)

static void run_cycle(cycle *c, results *r)
{
    sm_backend *be = NULL;
    sm_arch *arch = NULL, *arch2 = NULL;
    sm_dataset *ds = NULL;
    sm_subnet *s = NULL, *s2 = NULL;
    sm_head *h = NULL, *h2 = NULL;
    sm_adam *a = NULL;
    sm_trainer *t = NULL;
    static float left[N_EMBED * PIX], right[N_EMBED * PIX];

    memset(r, 0, sizeof *r);
    c->fired = 0;
    c->failed_call = NULL;
    const long live_start = sm__alloc_live();
    c->base = sm__alloc_count();
    sm__alloc_fail_after(c->fail_at);

    CALL_OUT(c, &be, sm_backend_create(SM_BACKEND_CPU, &be));
    CALL(c, sm_backend_set_threads(be, 1));
    CALL_OUT(c, &arch, sm_arch_from_string(ARCH, &arch));
    CALL_OUT(c, &ds, sm_dataset_create_synthetic(5, 3, 12, 12, 7, &ds));
    CALL_OUT(c, &s, sm_subnet_create(be, arch, 1, &s));
    CALL_OUT(c, &h, sm_head_create(be, sm_subnet_feature_dim(s), 2, &h));
    CALL_OUT(c, &a, sm_adam_create(s, h, &a));
    CALL_OUT(c, &t, sm_trainer_create(s, h, a, ds, 3, &t));
    CALL(c, sm_trainer_set_param(t, SM_TRAINER_BATCH_SIZE, 4));
    CALL(c, sm_trainer_set_param(t, SM_TRAINER_MICRO_BATCH, 2));
    CALL(c, sm_train_step(t, &r->loss[0]));
    CALL(c, sm_train_step(t, &r->loss[1]));

    for (size_t i = 0; i < N_EMBED; i++) {
        CALL(c, sm_dataset_get_image(ds, i, left + i * PIX));
        CALL(c, sm_dataset_get_image(ds, i + 5, right + i * PIX));
    }
    CALL(c, sm_predict_pairs(s, h, N_PAIRS, left, right, r->scores));
    CALL(c, sm_embed(s, N_EMBED, left, r->feats));

    CALL(c, sm_trainer_save(t, c->ck_path));
    /* Resized away from the checkpoint's sizes and trained on, so that the load has to resize
     * back and a load that failed halfway would show. */
    CALL(c, sm_trainer_set_param(t, SM_TRAINER_BATCH_SIZE, 6));
    CALL(c, sm_trainer_set_param(t, SM_TRAINER_MICRO_BATCH, 3));
    float detour;
    CALL(c, sm_train_step(t, &detour));
    size_t np = s->n_params + h->n_params;
    float *before = malloc(np * sizeof *before), *now = malloc(np * sizeof *now);
    assert_true(before && now);
    assert_int_equal(sm__subnet_read_params(s, before), SM_OK);
    assert_int_equal(sm__head_read_params(h, before + s->n_params), SM_OK);
    int64_t v = 0;
    CALL_X(
        c, (void *)NULL,
        {
            /* a failed load changed nothing */
            assert_int_equal(sm_trainer_get_param(t, SM_TRAINER_BATCH_SIZE, &v), SM_OK);
            assert_int_equal(v, 6);
            assert_int_equal(sm_trainer_get_param(t, SM_TRAINER_MICRO_BATCH, &v), SM_OK);
            assert_int_equal(v, 3);
            assert_int_equal(sm_trainer_iteration(t), 3);
            assert_int_equal(sm_adam_steps(a), 3);
            assert_int_equal(sm__subnet_read_params(s, now), SM_OK);
            assert_int_equal(sm__head_read_params(h, now + s->n_params), SM_OK);
            assert_memory_equal(before, now, np * sizeof *now);
        },
        sm_trainer_load(t, c->ck_path));
    free(before);
    free(now);
    CALL(c, sm_trainer_get_param(t, SM_TRAINER_BATCH_SIZE, &v));
    assert_int_equal(v, 4);
    CALL(c, sm_trainer_get_param(t, SM_TRAINER_MICRO_BATCH, &v));
    assert_int_equal(v, 2);
    assert_int_equal(sm_trainer_iteration(t), 2);
    assert_int_equal(sm_adam_steps(a), 2);
    CALL(c, sm_train_step(t, &r->loss[2]));

    CALL(c, sm_model_save(s, h, c->model_path));
    CALL_X(c, &s2, assert_null(h2), sm_model_load(be, c->model_path, &s2, &h2));
    assert_non_null(h2);
    CALL_OUT(c, &arch2, sm_subnet_get_arch(s2, &arch2));
    assert_int_equal(sm_arch_num_params(arch2), sm_subnet_num_params(s));
    CALL(c, sm_predict_pairs(s2, h2, N_PAIRS, left, right, r->scores_loaded));
    CALL(c, sm_predict_pairs(s, h, N_PAIRS, left, right, r->scores_final));

    /* a gallery over the loaded model: enrol (a new label, then the same one), identify,
     * save, load, remove; a failed enrolment leaves the gallery as it was */
    sm_gallery *g = NULL, *g2 = NULL;
    CALL_OUT(c, &g, sm_gallery_create(s2, h2, &g));
    CALL_X(c, (void *)NULL, assert_int_equal(sm_gallery_num_examples(g), 0),
           sm_gallery_enrol(g, "first", 2, left));
    CALL_X(c, (void *)NULL, assert_int_equal(sm_gallery_num_labels(g), 1),
           sm_gallery_enrol(g, "second", 1, right));
    CALL_X(c, (void *)NULL, assert_int_equal(sm_gallery_num_examples(g), 3),
           sm_gallery_enrol(g, "first", 1, left + 2 * PIX));
    CALL(c, sm_gallery_save(g, c->gallery_path));
    CALL_OUT(c, &g2, sm_gallery_load(s2, h2, c->gallery_path, &g2));
    CALL(c, sm_gallery_identify(g2, 2, right, 2, r->gm, NULL));
    CALL_X(c, (void *)NULL, assert_int_equal(sm_gallery_num_examples(g2), 4),
           sm_gallery_remove(g2, "first", &r->g_removed));
    r->g_examples = sm_gallery_num_examples(g2);
    r->g_labels = sm_gallery_num_labels(g2);
    /* a u8 gallery (its scales grow and copy with its rows), loaded without the rows' check
     * (mapped), enrolled into (the copy on first write) */
    sm_gallery *g8 = NULL, *g9 = NULL;
    sm_gallery_options go = SM_GALLERY_OPTIONS_INIT;
    go.storage = SM_STORAGE_U8;
    sm_gallery_load_options lo = SM_GALLERY_LOAD_OPTIONS_INIT;
    lo.skip_row_check = 1;
    CALL_OUT(c, &g8, sm_gallery_create_with(s2, h2, &go, &g8));
    CALL_X(c, (void *)NULL, assert_int_equal(sm_gallery_num_examples(g8), 0),
           sm_gallery_enrol(g8, "first", 2, left));
    CALL(c, sm_gallery_save(g8, c->gallery_path));
    CALL_OUT(c, &g9, sm_gallery_load_with(s2, h2, c->gallery_path, &lo, &g9));
    CALL(c, sm_gallery_identify(g9, 2, right, 1, r->gm8, NULL));
    CALL_X(c, (void *)NULL, assert_int_equal(sm_gallery_num_examples(g9), 2),
           sm_gallery_enrol(g9, "second", 1, right));
    r->g8_examples = sm_gallery_num_examples(g9);

    r->n_params = s->n_params + h->n_params;
    r->params = malloc(r->n_params * sizeof *r->params);
    assert_non_null(r->params);
    assert_int_equal(sm__subnet_read_params(s, r->params), SM_OK);
    assert_int_equal(sm__head_read_params(h, r->params + s->n_params), SM_OK);

    sm__alloc_fail_after(-1);
    sm_gallery_destroy(g9);
    sm_gallery_destroy(g8);
    sm_gallery_destroy(g2);
    sm_gallery_destroy(g);
    sm_arch_destroy(arch2);
    sm_head_destroy(h2);
    sm_subnet_destroy(s2);
    sm_trainer_destroy(t);
    sm_adam_destroy(a);
    sm_head_destroy(h);
    sm_subnet_destroy(s);
    sm_dataset_destroy(ds);
    sm_arch_destroy(arch);
    sm_backend_destroy(be);
    if (sm__alloc_live() != live_start)
        fail_msg("fail_at %ld (failed in %s): %ld allocations outlive the cycle", c->fail_at,
                 c->failed_call ? c->failed_call : "no call", sm__alloc_live() - live_start);
}

static void assert_same_results(const results *ref, const results *r, long n)
{
    if (memcmp(ref->loss, r->loss, sizeof r->loss) != 0)
        fail_msg("fail_at %ld: losses %.9g %.9g %.9g differ from the reference %.9g %.9g %.9g", n,
                 (double)r->loss[0], (double)r->loss[1], (double)r->loss[2], (double)ref->loss[0],
                 (double)ref->loss[1], (double)ref->loss[2]);
    assert_memory_equal(ref->scores, r->scores, sizeof r->scores);
    assert_memory_equal(ref->feats, r->feats, sizeof r->feats);
    assert_memory_equal(ref->scores_loaded, r->scores_loaded, sizeof r->scores_loaded);
    assert_memory_equal(ref->scores_final, r->scores_final, sizeof r->scores_final);
    assert_int_equal(ref->n_params, r->n_params);
    assert_memory_equal(ref->params, r->params, r->n_params * sizeof *r->params);
    assert_memory_equal(ref->gm, r->gm, sizeof r->gm);
    assert_true(ref->g_examples == r->g_examples && ref->g_labels == r->g_labels &&
                ref->g_removed == r->g_removed);
    assert_memory_equal(ref->gm8, r->gm8, sizeof r->gm8);
    assert_int_equal(ref->g8_examples, 3);
    assert_int_equal(r->g8_examples, 3);
}

static void clean_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) continue;
        char p[600];
        snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
        unlink(p);
    }
    closedir(d);
}

/* Entries whose name contains ".libsiamese-tmp.": what a failed save would have left behind. */
static int count_temp_files(const char *dir)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) n += strstr(de->d_name, ".libsiamese-tmp.") != NULL;
    closedir(d);
    return n;
}

static void test_every_allocation_fails_in_turn(void **state)
{
    (void)state;
    cycle c;
    memset(&c, 0, sizeof c);
    const char *tmp = getenv("TMPDIR");
    snprintf(c.dir, sizeof c.dir, "%s/sm-allocfail-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    assert_non_null(mkdtemp(c.dir));
    snprintf(c.ck_path, sizeof c.ck_path, "%s/trainer.safetensors", c.dir);
    snprintf(c.model_path, sizeof c.model_path, "%s/model.safetensors", c.dir);
    snprintf(c.gallery_path, sizeof c.gallery_path, "%s/g.gallery", c.dir);

    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    results ref, r;
    c.fail_at = -1;
    long before = sm__alloc_count();
    run_cycle(&c, &ref);
    const long total = sm__alloc_count() - before;
    assert_true(total > 20);
    assert_true(ref.loss[0] > 0 && ref.loss[2] > 0);

    long by_call = 0, seen_nomem = 0;
    for (long n = 0; n <= total; n++) {
        clean_dir(c.dir);
        c.fail_at = n;
        run_cycle(&c, &r);
        assert_same_results(&ref, &r, n);
        free(r.params);
        assert_int_equal(count_temp_files(c.dir), 0);
        if (n < total && !c.fired) fail_msg("allocation %ld of %ld never happened", n, total);
        seen_nomem += c.fired;
        by_call += c.failed_call != NULL;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    print_message("[ info     ] %ld allocations in the cycle; each failed in turn (%ld "
                  "SM_ERR_NOMEM) in %.1f s\n",
                  total, seen_nomem,
                  (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec));
    assert_int_equal(seen_nomem, total);
    (void)by_call;
    free(ref.params);
    clean_dir(c.dir);
    rmdir(c.dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_allocation_fails_in_turn),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
