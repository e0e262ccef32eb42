/* SPDX-License-Identifier: MIT */
/* Evaluation (since 0.2): verification accuracy as docs/reference.md defines it, N-way k-shot episodes,
 * the official run format read from folders and zips the test writes, and the rule that a
 * model with constant output scores chance, never 100 %. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "common/alloc.h"
#include "fixtures.h"
#include "network/network.h"
#include "siamese/siamese.h"

enum { S = 12 };
#define ARCH "1x12x12:conv4k3,relu,pool2,conv4k3,relu,flatten,fc8"

typedef struct model {
    sm_backend *be;
    sm_subnet *sub;
    sm_head *head;
} model;

/* identity = 0: a small random CNN. identity = 1: features = sigmoid(pixels) (one fc layer
 * holding the identity), a "model" that finds near copies, for checking what wins a trial. */
static void model_open(model *m, int identity)
{
    sm_arch *arch;
    assert_int_equal(sm_backend_create(SM_BACKEND_CPU, &m->be), SM_OK);
    assert_int_equal(sm_arch_from_string(identity ? "1x12x12:flatten,fc144" : ARCH, &arch), SM_OK);
    assert_int_equal(sm_subnet_create(m->be, arch, 3, &m->sub), SM_OK);
    sm_arch_destroy(arch);
    assert_int_equal(sm_head_create(m->be, sm_subnet_feature_dim(m->sub), 4, &m->head), SM_OK);
    if (identity) {
        size_t n = sm_subnet_num_params(m->sub);
        float *p = calloc(n, sizeof *p);
        for (size_t i = 0; i < S * S; i++) p[i * S * S + i] = 4.0f;
        assert_int_equal(sm__subnet_write_params(m->sub, p), SM_OK);
        free(p);
    }
}

static void model_close(model *m)
{
    sm_head_destroy(m->head);
    sm_subnet_destroy(m->sub);
    sm_backend_destroy(m->be);
}

/* Head weights all `w`, bias `b`. w = 0: every score is sigmoid(b), the constant model;
 * w < 0: identical images score highest. */
static void set_head(model *m, float w, float b)
{
    size_t d = sm_head_feature_dim(m->head);
    float p[S * S + 1];
    for (size_t i = 0; i < d; i++) p[i] = w;
    p[d] = b;
    assert_int_equal(sm__head_write_params(m->head, p), SM_OK);
}

static void test_verification(void **state)
{
    (void)state;
    model m;
    model_open(&m, 0);
    sm_dataset *ds;
    assert_int_equal(sm_dataset_create_synthetic(10, 4, S, S, 2, &ds), SM_OK);
    /* the definition by hand: the sampler's pairs, round(score) == label */
    enum { N = 300 };
    sm_sampler *smp;
    assert_int_equal(sm_sampler_create(ds, 9, &smp), SM_OK);
    float *l = malloc(N * S * S * sizeof *l), *r = malloc(N * S * S * sizeof *r);
    float lab[N], sc[N];
    assert_int_equal(sm_sampler_next(smp, N, l, r, lab, NULL, NULL), SM_OK);
    assert_int_equal(sm_predict_pairs(m.sub, m.head, N, l, r, sc), SM_OK);
    int right = 0;
    for (int i = 0; i < N; i++) right += (sc[i] >= 0.5f) == (lab[i] == 1.0f);
    sm_eval_result res = SM_EVAL_RESULT_INIT;
    assert_int_equal(sm_verification_accuracy(m.sub, m.head, ds, N, 9, &res), SM_OK);
    assert_int_equal(res.struct_size, sizeof res);
    assert_int_equal(res.kind, SM_EVAL_VERIFICATION);
    assert_int_equal(res.trials, N);
    assert_float_equal(res.correct, right, 0);
    assert_float_equal(res.accuracy, right / (double)N, 1e-12);
    assert_float_equal(res.chance, 0.5, 0);
    assert_string_equal(sm_eval_kind_name(res.kind), "random-pair verification");
    assert_string_equal(sm_eval_kind_name((sm_eval_kind)99), "unknown");
    /* the constant model: every pair "same" (score 0.5 rounds up): the share of similar pairs */
    set_head(&m, 0, 0);
    assert_int_equal(sm_verification_accuracy(m.sub, m.head, ds, N, 9, &res), SM_OK);
    int similar = 0;
    for (int i = 0; i < N; i++) similar += lab[i] == 1.0f;
    assert_float_equal(res.accuracy, similar / (double)N, 1e-12);
    assert_float_equal(res.score_std, 0, 0);
    /* bad arguments: nothing written */
    sm_eval_result keep = res;
    assert_int_equal(sm_verification_accuracy(m.sub, m.head, ds, 0, 9, &res), SM_ERR_INVALID_ARG);
    assert_int_equal(sm_verification_accuracy(NULL, m.head, ds, 5, 9, &res), SM_ERR_INVALID_ARG);
    assert_int_equal(sm_verification_accuracy(m.sub, m.head, NULL, 5, 9, &res), SM_ERR_INVALID_ARG);
    assert_int_equal(sm_verification_accuracy(m.sub, m.head, ds, 5, 9, NULL), SM_ERR_INVALID_ARG);
    sm_eval_result small = SM_EVAL_RESULT_INIT;
    small.struct_size = 8;
    assert_int_equal(sm_verification_accuracy(m.sub, m.head, ds, 5, 9, &small), SM_ERR_INVALID_ARG);
    assert_non_null(strstr(sm_last_error(), "struct_size"));
    assert_memory_equal(&keep, &res, sizeof res);
    free(l), free(r);
    sm_sampler_destroy(smp);
    sm_dataset_destroy(ds);
    model_close(&m);
}

/* A dataset of `alphabets` x `classes` classes of `per` images each, every class its own
 * pattern and the images of a class identical but for one pixel. */
static sm_dataset *make_set(int alphabets, int classes, int per)
{
    sm_dataset *ds;
    assert_int_equal(sm_dataset_create(S, S, &ds), SM_OK);
    uint8_t g[S * S];
    float img[S * S];
    for (int a = 0; a < alphabets; a++)
        for (int c = 0; c < classes; c++) {
            fx_pattern(g, S, S, (unsigned)(a * 100 + c + 1));
            for (int k = 0; k < per; k++) {
                for (int i = 0; i < S * S; i++) img[i] = g[i] / 255.0f;
                img[k % (S * S)] = 0.5f;
                char label[32];
                snprintf(label, sizeof label, "alpha%d/char%02d", a, c);
                assert_int_equal(sm_dataset_add_image(ds, label, img), SM_OK);
            }
        }
    return ds;
}

static void test_episodes(void **state)
{
    (void)state;
    model m;
    model_open(&m, 1);
    sm_dataset *ds = make_set(3, 6, 4);
    sm_eval_result a = SM_EVAL_RESULT_INIT, b = SM_EVAL_RESULT_INIT;
    /* seeded: the same numbers again */
    assert_int_equal(sm_oneshot_episodes(m.sub, m.head, ds, 5, 2, 10, 1, 42, &a), SM_OK);
    assert_int_equal(sm_oneshot_episodes(m.sub, m.head, ds, 5, 2, 10, 1, 42, &b), SM_OK);
    assert_memory_equal(&a, &b, sizeof a);
    assert_int_equal(a.kind, SM_EVAL_EPISODES_WITHIN);
    assert_int_equal(a.trials, 50);
    assert_int_equal(a.episodes, 10);
    assert_int_equal(a.n_way, 5);
    assert_int_equal(a.k_shot, 2);
    assert_float_equal(a.chance, 0.2, 1e-12);
    assert_true(a.accuracy >= 0 && a.accuracy <= 1);
    /* constant output: exactly chance, every trial a full tie */
    set_head(&m, 0, 0.3f);
    for (int within = 0; within < 2; within++) {
        assert_int_equal(sm_oneshot_episodes(m.sub, m.head, ds, 5, 1, 20, within, 1, &a), SM_OK);
        assert_float_equal(a.accuracy, 0.2, 1e-12);
        assert_int_equal(a.tied, a.trials);
        assert_int_equal(a.kind, within ? SM_EVAL_EPISODES_WITHIN : SM_EVAL_EPISODES_BETWEEN);
    }
    /* a model that scores identical features highest: near-identical images are found */
    set_head(&m, -1, 0);
    assert_int_equal(sm_oneshot_episodes(m.sub, m.head, ds, 6, 1, 10, 0, 7, &a), SM_OK);
    if (a.accuracy <= 0.9) fail_msg("accuracy %g", a.accuracy);
    /* requests the dataset cannot serve, and bad arguments: nothing written */
    sm_eval_result keep = a;
    assert_int_equal(sm_oneshot_episodes(m.sub, m.head, ds, 7, 1, 3, 1, 1, &a), SM_ERR_DATASET);
    assert_non_null(strstr(sm_last_error(), "the most any alphabet has is 6"));
    assert_int_equal(sm_oneshot_episodes(m.sub, m.head, ds, 19, 1, 3, 0, 1, &a), SM_ERR_DATASET);
    assert_int_equal(sm_oneshot_episodes(m.sub, m.head, ds, 5, 4, 3, 0, 1, &a), SM_ERR_DATASET);
    assert_non_null(strstr(sm_last_error(), "at least 5 images"));
    assert_int_equal(sm_oneshot_episodes(m.sub, m.head, ds, 1, 1, 3, 0, 1, &a), SM_ERR_INVALID_ARG);
    assert_int_equal(sm_oneshot_episodes(m.sub, m.head, ds, 5, 0, 3, 0, 1, &a), SM_ERR_INVALID_ARG);
    assert_int_equal(sm_oneshot_episodes(m.sub, m.head, ds, 5, 101, 3, 0, 1, &a),
                     SM_ERR_INVALID_ARG);
    assert_int_equal(sm_oneshot_episodes(m.sub, m.head, ds, 5, 1, 0, 0, 1, &a), SM_ERR_INVALID_ARG);
    assert_int_equal(sm_oneshot_episodes(m.sub, m.head, ds, 5, 1, SIZE_MAX, 0, 1, &a),
                     SM_ERR_INVALID_ARG);
    assert_int_equal(sm_oneshot_episodes(m.sub, NULL, ds, 5, 1, 3, 0, 1, &a), SM_ERR_INVALID_ARG);
    assert_memory_equal(&keep, &a, sizeof a);
    sm_dataset_destroy(ds);
    model_close(&m);
}

/* ------------------------------------------------------------------ run files */

/* Writes run `name` under `root`: n candidates class01.png.., n queries item01.png.. where
 * item i shows candidate perm[i]'s pattern; class_labels.txt says so. */
static void write_run(const char *root, const char *name, int n, unsigned base, const char *eol)
{
    char rel[256];
    uint8_t g[S * S];
    char *labels = calloc(1, 64 * (size_t)n + 1);
    for (int i = 0; i < n; i++) {
        int c = (i * 7 + 3) % n; /* a permutation when gcd(7, n) = 1 */
        fx_pattern(g, S, S, base + (unsigned)i);
        snprintf(rel, sizeof rel, "%s/training/class%02d.png", name, i + 1);
        char *p = fx_join(root, rel);
        assert_int_equal(fx_write_png(p, S, S, FX_GREY, 8, g), 0);
        free(p);
        fx_pattern(g, S, S, base + (unsigned)c);
        g[0] ^= 1; /* a near copy */
        snprintf(rel, sizeof rel, "%s/test/item%02d.png", name, i + 1);
        p = fx_join(root, rel);
        assert_int_equal(fx_write_png(p, S, S, FX_GREY, 8, g), 0);
        free(p);
        char line[128];
        const char *end = eol[0] != 'x' ? eol : i + 1 < n ? "\n" : "";
        snprintf(line, sizeof line, "%s/test/item%02d.png %s/training/class%02d.png%s", name, i + 1,
                 name, c + 1, end);
        strcat(labels, line);
    }
    snprintf(rel, sizeof rel, "%s/class_labels.txt", name);
    char *p = fx_join(root, rel);
    assert_int_equal(fx_write_bytes(p, labels, strlen(labels)), 0);
    free(p);
    free(labels);
}

static void check_runs(const char *path, model *m, size_t want_runs, size_t per_run)
{
    sm_oneshot_runs *runs = NULL;
    sm_status st = sm_oneshot_runs_open(path, S, S, &runs);
    if (st != SM_OK) fail_msg("%s: %s: %s", path, sm_status_name(st), sm_last_error());
    assert_int_equal(sm_oneshot_runs_count(runs), want_runs);
    assert_int_equal(sm_oneshot_runs_num_trials(runs), want_runs * per_run);
    const char *name;
    size_t nc, nq, ans;
    assert_int_equal(sm_oneshot_run_info(runs, 0, &name, &nc, &nq), SM_OK);
    assert_string_equal(name, "run01");
    assert_int_equal(nc, per_run);
    assert_int_equal(nq, per_run);
    float img[S * S], want[S * S];
    assert_int_equal(sm_oneshot_run_image(runs, 0, 1, 0, img, &ans), SM_OK);
    assert_int_equal(ans, 3); /* item01 -> class04 */
    assert_int_equal(sm_oneshot_run_image(runs, 0, 0, 3, want, &ans), SM_OK);
    assert_int_equal(ans, SIZE_MAX);
    int close_px = 0;
    for (int i = 0; i < S * S; i++) close_px += fabsf(img[i] - want[i]) < 0.01f;
    assert_true(close_px == S * S);
    assert_int_equal(sm_oneshot_run_info(runs, want_runs, NULL, NULL, NULL), SM_ERR_INVALID_ARG);
    assert_int_equal(sm_oneshot_run_image(runs, 0, 1, per_run, img, NULL), SM_ERR_INVALID_ARG);

    sm_eval_result r = SM_EVAL_RESULT_INIT;
    set_head(m, -1, 0);
    assert_int_equal(sm_oneshot_evaluate_runs(m->sub, m->head, runs, &r), SM_OK);
    assert_int_equal(r.kind, SM_EVAL_ONESHOT_RUNS);
    assert_int_equal(r.trials, want_runs * per_run);
    assert_int_equal(r.episodes, want_runs);
    assert_int_equal(r.n_way, (int)per_run);
    assert_true(r.accuracy > 0.9);
    /* constant output scores chance: 1/n */
    set_head(m, 0, 0);
    assert_int_equal(sm_oneshot_evaluate_runs(m->sub, m->head, runs, &r), SM_OK);
    assert_float_equal(r.accuracy, 1.0 / (double)per_run, 1e-12);
    assert_float_equal(r.chance, 1.0 / (double)per_run, 1e-12);
    sm_oneshot_runs_destroy(runs);
}

static void test_runs_read(void **state)
{
    (void)state;
    model m;
    model_open(&m, 1);
    char *dir = fx_tempdir();
    /* runs directly in a folder, LF, CRLF and no final newline */
    char *flat = fx_join(dir, "flat");
    write_run(flat, "run01", 5, 10, "\n");
    write_run(flat, "run02", 5, 50, "\r\n");
    write_run(flat, "run03", 5, 90, "x");
    check_runs(flat, &m, 3, 5);
    /* one run folder given directly */
    char *single = fx_join(flat, "run01");
    check_runs(single, &m, 1, 5);
    /* inside one folder (all_runs/runNN), in a zip, with and without folder entries */
    char *nested = fx_join(dir, "nested");
    char *all = fx_join(nested, "all_runs");
    write_run(all, "run01", 20, 200, "\n");
    write_run(all, "run02", 20, 300, "\n");
    check_runs(nested, &m, 2, 20);
    char *zip = fx_join(dir, "all_runs.zip");
    assert_int_equal(fx_zip_tree(nested, zip, "", 1, 0), 0);
    check_runs(zip, &m, 2, 20);
    char *zip2 = fx_join(dir, "flat.zip");
    assert_int_equal(fx_zip_tree(flat, zip2, "", 0, 1), 0);
    check_runs(zip2, &m, 3, 5);
    /* the model's input must match */
    sm_oneshot_runs *runs;
    assert_int_equal(sm_oneshot_runs_open(zip, 0, 0, &runs), SM_ERR_SHAPE);
    assert_non_null(strstr(sm_last_error(), "class01.png"));
    free(flat), free(single), free(nested), free(all), free(zip), free(zip2);
    fx_rmtree(dir);
    free(dir);
    model_close(&m);
}

/* Writes a 3-candidate run whose class_labels.txt is `labels`, and expects `want` with
 * `needle` in the message. */
static void expect_bad_labels(const char *labels, sm_status want, const char *needle)
{
    char *dir = fx_tempdir();
    write_run(dir, "run01", 3, 1, "\n");
    char *p = fx_join(dir, "run01/class_labels.txt");
    assert_int_equal(fx_write_bytes(p, labels, strlen(labels)), 0);
    sm_oneshot_runs *runs = (sm_oneshot_runs *)(uintptr_t)1;
    sm_status st = sm_oneshot_runs_open(dir, S, S, &runs);
    if (st != want)
        fail_msg("labels '%s': got %s (%s)", labels, sm_status_name(st), sm_last_error());
    assert_ptr_equal(runs, (sm_oneshot_runs *)(uintptr_t)1);
    if (needle && !strstr(sm_last_error(), needle))
        fail_msg("labels '%s': message '%s' lacks '%s'", labels, sm_last_error(), needle);
    assert_non_null(strstr(sm_last_error(), "class_labels.txt"));
    free(p);
    fx_rmtree(dir);
    free(dir);
}

static void test_runs_malformed(void **state)
{
    (void)state;
#define OK1 "run01/test/item01.png run01/training/class01.png\n"
    expect_bad_labels("", SM_ERR_FORMAT, "no query");
    expect_bad_labels("\n", SM_ERR_FORMAT, "line 1: empty line");
    expect_bad_labels(OK1 "\n", SM_ERR_FORMAT, "line 2: empty line");
    expect_bad_labels(OK1 "run01/test/item02.png  run01/training/class02.png\n", SM_ERR_FORMAT,
                      "line 2");
    expect_bad_labels("run01/test/item01.png\trun01/training/class01.png\n", SM_ERR_FORMAT,
                      "line 1");
    expect_bad_labels("run01/test/item01.png\n", SM_ERR_FORMAT, "line 1");
    expect_bad_labels("run01/training/class01.png run01/test/item01.png\n", SM_ERR_FORMAT,
                      "line 1");
    expect_bad_labels("run02/test/item01.png run02/training/class01.png\n", SM_ERR_FORMAT,
                      "line 1");
    expect_bad_labels("run01/test/../test/item01.png run01/training/class01.png\n", SM_ERR_FORMAT,
                      "line 1");
    expect_bad_labels("run01/test/item09.png run01/training/class01.png\n", SM_ERR_FORMAT,
                      "does not exist");
    expect_bad_labels("run01/test/item01.png run01/training/class09.png\n", SM_ERR_FORMAT,
                      "does not exist");
    expect_bad_labels(OK1 OK1, SM_ERR_FORMAT, "listed twice");
    expect_bad_labels("run01/test/item01.txt run01/training/class01.png\n", SM_ERR_FORMAT,
                      "line 1");
    expect_bad_labels(OK1 "run01/test/item02.png run01/training/class02.png\r\r\n", SM_ERR_FORMAT,
                      "line 2");
    const char nul[] = "run01/test/item01.png run01/training/class01.png";
    char with_nul[sizeof nul + 1];
    memcpy(with_nul, nul, sizeof nul);
    with_nul[5] = '\0'; /* strlen stops here: "run01" alone */
    expect_bad_labels(with_nul, SM_ERR_FORMAT, "line 1");
    char *huge = malloc(6000);
    memset(huge, 'a', 5999);
    huge[5999] = 0;
    expect_bad_labels(huge, SM_ERR_FORMAT, "longer than");
    free(huge);
}

static void test_runs_bad_files(void **state)
{
    (void)state;
    sm_oneshot_runs *runs = NULL;
    char *dir = fx_tempdir();
    /* missing path, empty folder, a run with one candidate, a broken PNG */
    char *missing = fx_join(dir, "none");
    assert_int_equal(sm_oneshot_runs_open(missing, S, S, &runs), SM_ERR_IO);
    assert_int_equal(sm_oneshot_runs_open(dir, S, S, &runs), SM_ERR_DATASET);
    assert_non_null(strstr(sm_last_error(), "no one-shot runs"));
    char *one = fx_join(dir, "one");
    write_run(one, "run01", 1, 1, "\n");
    assert_int_equal(sm_oneshot_runs_open(one, S, S, &runs), SM_ERR_FORMAT);
    assert_non_null(strstr(sm_last_error(), "at least 2"));
    char *broken = fx_join(dir, "broken");
    write_run(broken, "run01", 3, 1, "\n");
    char *p = fx_join(broken, "run01/test/item02.png");
    assert_int_equal(fx_write_truncated_png(p, S, S), 0);
    assert_int_equal(sm_oneshot_runs_open(broken, S, S, &runs), SM_ERR_FORMAT);
    assert_non_null(strstr(sm_last_error(), "item02.png"));
    /* a zip that is not one */
    char *notzip = fx_join(dir, "not.zip");
    assert_int_equal(fx_write_bytes(notzip, "hello", 5), 0);
    assert_int_equal(sm_oneshot_runs_open(notzip, S, S, &runs), SM_ERR_FORMAT);
    /* limits: pixels beyond SM_LIMIT_DATASET_BYTES are refused before decoding */
    char *good = fx_join(dir, "good");
    write_run(good, "run01", 3, 1, "\n");
    uint64_t saved = sm_get_limit(SM_LIMIT_DATASET_BYTES);
    assert_int_equal(sm_set_limit(SM_LIMIT_DATASET_BYTES, 5 * S * S), SM_OK);
    assert_int_equal(sm_oneshot_runs_open(good, S, S, &runs), SM_ERR_LIMIT);
    assert_int_equal(sm_set_limit(SM_LIMIT_DATASET_BYTES, saved), SM_OK);
    /* arguments */
    assert_int_equal(sm_oneshot_runs_open(NULL, S, S, &runs), SM_ERR_INVALID_ARG);
    assert_int_equal(sm_oneshot_runs_open(good, S, S, NULL), SM_ERR_INVALID_ARG);
    assert_int_equal(sm_oneshot_runs_open(good, -1, S, &runs), SM_ERR_INVALID_ARG);
    assert_int_equal(sm_oneshot_runs_open(good, S, 5000, &runs), SM_ERR_INVALID_ARG);
    assert_null(runs);
    assert_int_equal(sm_oneshot_runs_count(NULL), 0);
    assert_int_equal(sm_oneshot_runs_num_trials(NULL), 0);
    sm_oneshot_runs_destroy(NULL);
    model m;
    model_open(&m, 0);
    sm_eval_result r = SM_EVAL_RESULT_INIT;
    assert_int_equal(sm_oneshot_evaluate_runs(m.sub, m.head, NULL, &r), SM_ERR_INVALID_ARG);
    assert_int_equal(sm_oneshot_runs_open(good, S, S, &runs), SM_OK);
    assert_int_equal(sm_oneshot_evaluate_runs(m.sub, m.head, runs, NULL), SM_ERR_INVALID_ARG);
    assert_int_equal(sm_oneshot_evaluate_runs(NULL, m.head, runs, &r), SM_ERR_INVALID_ARG);
    float img[S * S];
    assert_int_equal(sm_oneshot_run_image(runs, 0, 0, 0, NULL, NULL), SM_ERR_INVALID_ARG);
    assert_int_equal(sm_oneshot_run_image(runs, 1, 0, 0, img, NULL), SM_ERR_INVALID_ARG);
    assert_int_equal(sm_oneshot_run_image(runs, 0, 0, 3, img, NULL), SM_ERR_INVALID_ARG);
    sm_oneshot_runs_destroy(runs);
    model_close(&m);
    free(missing), free(one), free(broken), free(p), free(notzip), free(good);
    fx_rmtree(dir);
    free(dir);
}

/* Every allocation of each call failing in turn: SM_ERR_NOMEM with a message, or success,
 * never a crash, a leak or a written output. */
typedef sm_status (*call_fn)(void *ctx);

static void each_allocation_fails(const char *what, call_fn fn, void *ctx, void (*undo)(void *))
{
    long live = sm__alloc_live();
    long base = sm__alloc_count();
    assert_int_equal(fn(ctx), SM_OK);
    undo(ctx);
    long total = sm__alloc_count() - base;
    assert_int_equal(sm__alloc_live(), live);
    for (long n = 0; n < total; n++) {
        sm__alloc_fail_after(n);
        sm_status st = fn(ctx);
        sm__alloc_fail_after(-1);
        if (st != SM_OK && st != SM_ERR_NOMEM)
            fail_msg("%s, allocation %ld failing: %s (%s)", what, n, sm_status_name(st),
                     sm_last_error());
        if (st == SM_ERR_NOMEM) assert_true(sm_last_error()[0] != '\0');
        undo(ctx);
        if (sm__alloc_live() != live) fail_msg("%s, allocation %ld failing: a leak", what, n);
    }
}

typedef struct alloc_ctx {
    const char *path;
    sm_oneshot_runs *runs;
    model *m;
    sm_dataset *ds;
    sm_eval_result r;
    float px[S * S];
} alloc_ctx;

static sm_status open_runs(void *p)
{
    alloc_ctx *c = p;
    return sm_oneshot_runs_open(c->path, S, S, &c->runs);
}
static void close_runs(void *p)
{
    alloc_ctx *c = p;
    sm_oneshot_runs_destroy(c->runs);
    c->runs = NULL;
}
static sm_status eval_runs(void *p)
{
    alloc_ctx *c = p;
    return sm_oneshot_evaluate_runs(c->m->sub, c->m->head, c->runs, &c->r);
}
static sm_status episodes(void *p)
{
    alloc_ctx *c = p;
    return sm_oneshot_episodes(c->m->sub, c->m->head, c->ds, 3, 2, 2, 1, 1, &c->r);
}
static sm_status verification(void *p)
{
    alloc_ctx *c = p;
    return sm_verification_accuracy(c->m->sub, c->m->head, c->ds, 40, 1, &c->r);
}
static sm_status load_png(void *p)
{
    alloc_ctx *c = p;
    return sm_image_load_png(c->path, S, S, c->px);
}
static void nothing(void *p) { (void)p; }

static void test_allocation_failures(void **state)
{
    (void)state;
    model m;
    model_open(&m, 0);
    char *dir = fx_tempdir();
    char *runs_dir = fx_join(dir, "runs"), *zip = fx_join(dir, "runs.zip");
    write_run(runs_dir, "run01", 3, 1, "\n");
    write_run(runs_dir, "run02", 3, 9, "\n");
    assert_int_equal(fx_zip_tree(runs_dir, zip, "", 1, 0), 0);
    alloc_ctx c = {.m = &m, .r = SM_EVAL_RESULT_INIT};
    c.path = runs_dir;
    each_allocation_fails("sm_oneshot_runs_open (folder)", open_runs, &c, close_runs);
    c.path = zip;
    each_allocation_fails("sm_oneshot_runs_open (zip)", open_runs, &c, close_runs);
    assert_int_equal(open_runs(&c), SM_OK);
    each_allocation_fails("sm_oneshot_evaluate_runs", eval_runs, &c, nothing);
    close_runs(&c);
    c.ds = make_set(2, 4, 3);
    each_allocation_fails("sm_oneshot_episodes", episodes, &c, nothing);
    each_allocation_fails("sm_verification_accuracy", verification, &c, nothing);
    sm_dataset_destroy(c.ds);
    char *png = fx_join(dir, "a.png");
    uint8_t g[20 * 30];
    fx_pattern(g, 30, 20, 4);
    assert_int_equal(fx_write_png(png, 30, 20, FX_GREY, 8, g), 0);
    c.path = png;
    each_allocation_fails("sm_image_load_png", load_png, &c, nothing);
    free(png), free(runs_dir), free(zip);
    fx_rmtree(dir);
    free(dir);
    model_close(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_verification),   cmocka_unit_test(test_episodes),
        cmocka_unit_test(test_runs_read),      cmocka_unit_test(test_runs_malformed),
        cmocka_unit_test(test_runs_bad_files), cmocka_unit_test(test_allocation_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
