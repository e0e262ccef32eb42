/* SPDX-License-Identifier: MIT */
/* How cpu-dnnl chooses each convolution's algorithm (backends/cpu-dnnl/conv_select.c,
 * conv_model.c), seen from outside through the ops table:
 *  - AUTO times nothing (no measurement reaches the debug log) and runs, for each of the
 *    reference network's layers and directions, the algorithm of docs/performance.md's table,
 *    whatever the batch: told by comparing its output bit for bit with forced DIRECT and FFT;
 *  - MEASURED measures a layer once: two threads sizing it at once measure it once between
 *    them, a later batch of another size measures nothing, and a full table of verdicts falls
 *    back to the rule instead of measuring on every call;
 *  - backward-data reuses backward-filter's dy spectrum only when nothing ran in between: a
 *    forward of another layer, or a zeroing, on the same workspace forces a fresh transform;
 *  - data-parallel ranks must agree on the convolution options, and MEASURED is refused. */
#include <pthread.h>
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
#include "dist_model.h"
#include "network/network.h"
#include "siamese/siamese.h"

static sm_backend *be;
static bool bf16;

/* ---- the debug log, counted ---- */

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static int measured_lines, model_lines;
static char last_measured[512];

static void on_log(void *user, sm_log_level level, const char *msg)
{
    (void)user, (void)level;
    pthread_mutex_lock(&log_lock);
    /* conv_select.c's measurement line: "...: direct X ms, fft Y ms: <verdict>" */
    if (strstr(msg, "cpu-dnnl: ") && strstr(msg, " images: direct ")) {
        measured_lines++;
        snprintf(last_measured, sizeof last_measured, "%s", msg);
    }
    if (strstr(msg, "layer choices measured already")) model_lines++;
    pthread_mutex_unlock(&log_lock);
}

static int measured_count(void)
{
    pthread_mutex_lock(&log_lock);
    int n = measured_lines;
    pthread_mutex_unlock(&log_lock);
    return n;
}

static sm_conv_shape shape_of(int n, int c, int h, int k, int kh)
{
    return (sm_conv_shape){n, c, h, h, k, kh, kh, h - kh + 1, h - kh + 1, 0};
}

/* ---- running one direction ---- */

static unsigned rng = 12345;
static float *filled(size_t n)
{
    float *h = malloc((n ? n : 1) * sizeof *h);
    assert_non_null(h);
    for (size_t i = 0; i < n; i++) {
        rng = rng * 1664525u + 1013904223u;
        h[i] = (float)((rng >> 8) & 0xffff) / 65536.0f - 0.5f;
    }
    void *d = NULL;
    assert_int_equal(be->ops->alloc(be->ctx, (n ? n : 1) * sizeof(float), &d), SM_OK);
    assert_int_equal(be->ops->upload(be->ctx, d, h, n * sizeof(float)), SM_OK);
    free(h);
    return d;
}

typedef struct operands {
    sm_conv_shape s;
    float *x, *w, *b, *dy;
    size_t nx, nw, ny;
} operands;

static operands make_operands(sm_conv_shape s)
{
    operands o = {.s = s};
    o.nx = (size_t)s.n * s.c * s.h * s.w, o.nw = (size_t)s.k * s.c * s.kh * s.kw;
    o.ny = (size_t)s.n * s.k * s.oh * s.ow;
    o.x = filled(o.nx), o.w = filled(o.nw), o.b = filled((size_t)s.k), o.dy = filled(o.ny);
    return o;
}

static void free_operands(operands *o)
{
    float *all[] = {o->x, o->w, o->b, o->dy};
    for (int i = 0; i < 4; i++) be->ops->free(be->ctx, all[i]);
}

/* Runs direction `op` (0 forward, 1 backward-data, 2 backward-filter) under `algo`; returns
 * the result (y, dx or dw then db) on the host. */
static float *run_op(const operands *o, int op, int algo, size_t *count)
{
    assert_int_equal(sm_backend_set_option(be, SM_BACKEND_OPT_CONV_ALGO, algo), SM_OK);
    const sm_conv_shape *s = &o->s;
    size_t wsb = be->ops->conv_workspace(be->ctx, s);
    void *ws = NULL;
    if (wsb) assert_int_equal(be->ops->alloc(be->ctx, wsb, &ws), SM_OK);
    size_t n = op == 0 ? o->ny : op == 1 ? o->nx : o->nw + (size_t)s->k;
    float *out = NULL;
    assert_int_equal(be->ops->alloc(be->ctx, n * sizeof(float), (void **)&out), SM_OK);
    assert_int_equal(be->ops->zero(be->ctx, out, n * sizeof(float)), SM_OK);
    if (op == 0)
        assert_int_equal(be->ops->conv_fwd(be->ctx, s, o->x, o->w, o->b, out, ws, wsb), SM_OK);
    else if (op == 1)
        assert_int_equal(be->ops->conv_bwd_data(be->ctx, s, o->dy, o->w, out, ws, wsb), SM_OK);
    else
        assert_int_equal(
            be->ops->conv_bwd_filter(be->ctx, s, o->x, o->dy, out, out + o->nw, ws, wsb), SM_OK);
    float *host = malloc(n * sizeof *host);
    assert_non_null(host);
    assert_int_equal(be->ops->download(be->ctx, host, out, n * sizeof(float)), SM_OK);
    be->ops->free(be->ctx, out);
    be->ops->free(be->ctx, ws);
    *count = n;
    return host;
}

/* 'D' or 'F': which forced algorithm AUTO's output equals bit for bit ('?' for neither) */
static char auto_ran(const operands *o, int op)
{
    size_t n;
    float *a = run_op(o, op, SM_CONV_ALGO_AUTO, &n);
    float *d = run_op(o, op, SM_CONV_ALGO_DIRECT, &n);
    float *f = run_op(o, op, SM_CONV_ALGO_FFT, &n);
    /* the two algorithms must differ somewhere, or the comparison tells nothing */
    assert_true(memcmp(d, f, n * sizeof *d) != 0);
    char got = !memcmp(a, d, n * sizeof *a) ? 'D' : !memcmp(a, f, n * sizeof *a) ? 'F' : '?';
    free(a), free(d), free(f);
    return got;
}

/* Koch et al.'s four layers; per precision, forward / backward-data / backward-filter as
 * docs/performance.md's table chose them by timing (conv1's backward-data is never run in
 * training: the rule keeps it direct) */
static const struct {
    int c, h, k, kh;
    const char *fp32, *bf16;
} koch[] = {
    {1, 105, 64, 10, "DDD", "DDD"},
    {64, 48, 128, 7, "FFF", "FFF"},
    {128, 21, 128, 4, "FFD", "DFD"},
    {128, 9, 256, 5, "FFD", "DFD"},
};

static void auto_runs_the_rule_and_times_nothing(void **state)
{
    (void)state;
    const int before = measured_count();
    for (int prec = 0; prec < (bf16 ? 2 : 1); prec++) {
        assert_int_equal(sm_backend_set_option(be, SM_BACKEND_OPT_PRECISION, prec), SM_OK);
        for (size_t l = 0; l < sizeof koch / sizeof *koch; l++) {
            /* two batches: the choice is the layer's, not the batch's */
            for (int n = 1; n <= 3; n += 2) {
                operands o =
                    make_operands(shape_of(n, koch[l].c, koch[l].h, koch[l].k, koch[l].kh));
                const char *want = prec ? koch[l].bf16 : koch[l].fp32;
                for (int op = 0; op < 3; op++) {
                    char got = auto_ran(&o, op);
                    printf("%s conv%zu, %d images, %s: %c (want %c)\n", prec ? "bf16" : "fp32",
                           l + 1, n,
                           op == 0   ? "forward"
                           : op == 1 ? "backward-data"
                                     : "backward-filter",
                           got, want[op]);
                    assert_int_equal(got, want[op]);
                }
                free_operands(&o);
            }
        }
    }
    assert_int_equal(sm_backend_set_option(be, SM_BACKEND_OPT_PRECISION, 0), SM_OK);
    if (measured_count() != before) fail_msg("AUTO measured: %s", last_measured);
}

/* ---- MEASURED ---- */

static void *size_layer(void *arg)
{
    const sm_conv_shape *s = arg;
    (void)be->ops->conv_workspace(be->ctx, s);
    return NULL;
}

static void measured_once_per_layer(void **state)
{
    (void)state;
    assert_int_equal(sm_backend_set_option(be, SM_BACKEND_OPT_CONV_ALGO, SM_CONV_ALGO_MEASURED),
                     SM_OK);
    /* a layer no other test sizes; direct takes over 2 ms, so both algorithms are timed */
    sm_conv_shape s = shape_of(8, 48, 30, 96, 5);
    const int before = measured_count();
    pthread_t t[2];
    for (int i = 0; i < 2; i++) assert_int_equal(pthread_create(&t[i], NULL, size_layer, &s), 0);
    for (int i = 0; i < 2; i++) pthread_join(t[i], NULL);
    assert_int_equal(measured_count() - before, 3); /* forward, backward-data, backward-filter */
    /* the last micro-batch of another size: the layer's verdict, no new measurement */
    sm_conv_shape last = s;
    last.n = 4;
    (void)be->ops->conv_workspace(be->ctx, &last);
    operands o = make_operands(last);
    size_t n;
    free(run_op(&o, 0, SM_CONV_ALGO_MEASURED, &n));
    free_operands(&o);
    assert_int_equal(measured_count() - before, 3);
}

static void full_table_falls_back_to_the_rule(void **state)
{
    (void)state;
    assert_int_equal(sm_backend_set_option(be, SM_BACKEND_OPT_CONV_ALGO, SM_CONV_ALGO_MEASURED),
                     SM_OK);
    /* 3 verdicts per layer: 90 tiny layers fill the table of 256 whatever came before */
    for (int c = 1; c <= 90; c++) {
        sm_conv_shape s = shape_of(1, c, 8, 2, 3);
        (void)be->ops->conv_workspace(be->ctx, &s);
    }
    sm_conv_shape extra = shape_of(1, 91, 8, 2, 3);
    const int before = measured_count();
    for (int i = 0; i < 3; i++) (void)be->ops->conv_workspace(be->ctx, &extra);
    assert_int_equal(measured_count(), before);
    assert_true(model_lines > 0);
}

/* ---- the dy spectrum's reuse ---- */

static void reuse_only_right_after_backward_filter(void **state)
{
    (void)state;
    assert_int_equal(sm_backend_set_option(be, SM_BACKEND_OPT_CONV_ALGO, SM_CONV_ALGO_FFT), SM_OK);
    operands a = make_operands(shape_of(2, 6, 16, 5, 5));
    operands b = make_operands(shape_of(2, 3, 20, 4, 3));
    size_t wa = be->ops->conv_workspace(be->ctx, &a.s);
    size_t wb = be->ops->conv_workspace(be->ctx, &b.s);
    size_t wsb = wa > wb ? wa : wb;
    void *ws = NULL;
    assert_int_equal(be->ops->alloc(be->ctx, wsb, &ws), SM_OK);
    float *dx = NULL, *dw = NULL, *db = NULL, *y = NULL;
    assert_int_equal(be->ops->alloc(be->ctx, a.nx * sizeof(float), (void **)&dx), SM_OK);
    assert_int_equal(be->ops->alloc(be->ctx, a.nw * sizeof(float), (void **)&dw), SM_OK);
    assert_int_equal(be->ops->alloc(be->ctx, (size_t)a.s.k * sizeof(float), (void **)&db), SM_OK);
    assert_int_equal(be->ops->alloc(be->ctx, b.ny * sizeof(float), (void **)&y), SM_OK);
    float *want = malloc(a.nx * sizeof *want), *got = malloc(a.nx * sizeof *got);
    assert_true(want && got);
    /* dx from scratch: backward-data with nothing before it */
    assert_int_equal(be->ops->conv_fwd(be->ctx, &b.s, b.x, b.w, b.b, y, ws, wsb), SM_OK);
    assert_int_equal(be->ops->conv_bwd_data(be->ctx, &a.s, a.dy, a.w, dx, ws, wsb), SM_OK);
    assert_int_equal(be->ops->download(be->ctx, want, dx, a.nx * sizeof(float)), SM_OK);
    for (int order = 0; order < 3; order++) {
        assert_int_equal(be->ops->conv_bwd_filter(be->ctx, &a.s, a.x, a.dy, dw, db, ws, wsb),
                         SM_OK);
        /* 0: the core's order (reused, the same bits); 1: another layer's forward on the same
         * workspace in between; 2: the workspace zeroed in between */
        if (order == 1)
            assert_int_equal(be->ops->conv_fwd(be->ctx, &b.s, b.x, b.w, b.b, y, ws, wsb), SM_OK);
        if (order == 2) assert_int_equal(be->ops->zero(be->ctx, ws, wsb), SM_OK);
        assert_int_equal(be->ops->conv_bwd_data(be->ctx, &a.s, a.dy, a.w, dx, ws, wsb), SM_OK);
        assert_int_equal(be->ops->download(be->ctx, got, dx, a.nx * sizeof(float)), SM_OK);
        if (memcmp(got, want, a.nx * sizeof *got) != 0)
            fail_msg("order %d: backward-data used a stale dy spectrum", order);
    }
    free(want), free(got);
    float *all[] = {dx, dw, db, y};
    for (int i = 0; i < 4; i++) be->ops->free(be->ctx, all[i]);
    be->ops->free(be->ctx, ws);
    free_operands(&a), free_operands(&b);
}

/* ---- data-parallel ranks and the options ---- */

typedef struct rank_job {
    sm_comm *comm;
    int algo;
    sm_status st;
    char msg[512];
} rank_job;

static void *attach_rank(void *arg)
{
    rank_job *j = arg;
    dm_model m;
    j->st = dm_create(&m, "1x12x12:conv4k3,relu,flatten,fc8", 8, 4, 2, 0, 3);
    if (j->st == SM_OK) j->st = sm_backend_set_option(m.be, SM_BACKEND_OPT_CONV_ALGO, j->algo);
    if (j->st == SM_OK) j->st = sm_trainer_attach_comm(m.tr, j->comm);
    snprintf(j->msg, sizeof j->msg, "%s", sm_last_error());
    if (m.tr) dm_destroy(&m);
    return NULL;
}

static void attach_with(int algo0, int algo1, sm_status want, const char *says)
{
    sm_comm *c[2];
    assert_int_equal(sm_comm_local_create(2, c), SM_OK);
    rank_job j[2] = {{c[0], algo0, SM_OK, ""}, {c[1], algo1, SM_OK, ""}};
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&t[i], NULL, attach_rank, &j[i]), 0);
    for (int i = 0; i < 2; i++) pthread_join(t[i], NULL);
    for (int i = 0; i < 2; i++) {
        printf("rank %d, algo %d: %s %s\n", i, j[i].algo, sm_status_name(j[i].st), j[i].msg);
        assert_int_equal(j[i].st, want);
        if (says) assert_non_null(strstr(j[i].msg, says));
    }
    for (int i = 0; i < 2; i++) sm_comm_destroy(c[i]);
}

static void ranks_agree_on_the_algorithm(void **state)
{
    (void)state;
    dm_backend = SM_BACKEND_CPU_DNNL;
    attach_with(SM_CONV_ALGO_AUTO, SM_CONV_ALGO_AUTO, SM_OK, NULL);
    attach_with(SM_CONV_ALGO_AUTO, SM_CONV_ALGO_FFT, SM_ERR_STATE, "convolution algorithm");
    attach_with(SM_CONV_ALGO_MEASURED, SM_CONV_ALGO_MEASURED, SM_ERR_INVALID_ARG,
                "SM_CONV_ALGO_MEASURED");
}

int main(void)
{
    sm_set_log_callback(on_log, NULL, SM_LOG_DEBUG);
    if (sm_backend_create(SM_BACKEND_CPU_DNNL, &be) != SM_OK) {
        printf("SKIPPED: *** the cpu-dnnl backend is not available, so the algorithm choice "
               "checks did NOT run: %s ***\n",
               sm_last_error());
        return 77;
    }
    bf16 = sm_backend_set_option(be, SM_BACKEND_OPT_PRECISION, SM_PRECISION_BF16) == SM_OK;
    assert_int_equal(sm_backend_set_option(be, SM_BACKEND_OPT_PRECISION, 0), SM_OK);
    printf("bf16 %s on this CPU\n", bf16 ? "runs" : "is refused: fp32 choices only");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(auto_runs_the_rule_and_times_nothing),
        cmocka_unit_test(reuse_only_right_after_backward_filter),
        cmocka_unit_test(measured_once_per_layer),
        cmocka_unit_test(full_table_falls_back_to_the_rule),
        cmocka_unit_test(ranks_agree_on_the_algorithm),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    sm_backend_destroy(be);
    return failed;
}
