/* SPDX-License-Identifier: MIT */
/* Every backend op against the double-precision oracle (ref_ops.c), and every backward op
 * against central finite differences of that oracle in double precision. Runs on each
 * backend that is usable here (the data crosses with upload/download, so the same checks
 * serve a device backend). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "backend/backend.h"
#include "ref_ops.h"
#include "backend_buffers.h"
#include "test_backend.h"

static sm_backend *be;
static unsigned seed_state = 12345;

/* ---- helpers: host double <-> backend float ---- */

static float *to_dev(const double *h, size_t n) { return test_to_dev(be, h, n); }

static void from_dev(const float *d, size_t n, double *h) { test_from_dev(be, d, n, h); }

static double *rnd(size_t n, double lo, double hi)
{
    double *p = malloc((n ? n : 1) * sizeof *p);
    assert_non_null(p);
    ref_fill_uniform(&seed_state, lo, hi, n, p);
    return p;
}

static void expect_close(const char *what, const double *got, const double *want, size_t n,
                         double tol)
{
    double e = ref_rel_err(got, want, n);
    if (e > tol) fail_msg("%s [%s]: relative error %.3g > %.3g", what, be->ops->name, e, tol);
}

/* A scalar function of one array, for finite differences. */
typedef double (*scalar_fn)(void *ctx, const double *x);

/* Central differences in double with step h for every element of x. */
static void numeric_grad(scalar_fn f, void *fctx, double *x, size_t n, double h, double *g)
{
    for (size_t i = 0; i < n; i++) {
        double keep = x[i];
        x[i] = keep + h;
        double up = f(fctx, x);
        x[i] = keep - h;
        double dn = f(fctx, x);
        x[i] = keep;
        g[i] = (up - dn) / (2 * h);
    }
}

static double dot(const double *a, const double *b, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

/* ---- convolution ---- */

typedef struct conv_case {
    int n, c, h, w, k, kh, kw;
    double *x, *wt, *b, *dy;
    int wrt; /* 0 x, 1 w, 2 b */
} conv_case;

static size_t conv_out(const conv_case *cc)
{
    return (size_t)cc->n * cc->k * (cc->h - cc->kh + 1) * (cc->w - cc->kw + 1);
}

static double conv_loss(void *p, const double *unused)
{
    (void)unused;
    conv_case *cc = p;
    size_t no = conv_out(cc);
    double *y = malloc(no * sizeof *y);
    ref_conv(cc->n, cc->c, cc->h, cc->w, cc->k, cc->kh, cc->kw, cc->x, cc->wt, cc->b, y);
    double l = dot(y, cc->dy, no);
    free(y);
    return l;
}

static void check_conv(int n, int c, int h, int w, int k, int kh, int kw)
{
    conv_case cc = {n, c, h, w, k, kh, kw, NULL, NULL, NULL, NULL, 0};
    size_t nx = (size_t)n * c * h * w, nw = (size_t)k * c * kh * kw, no = conv_out(&cc);
    cc.x = rnd(nx, -1, 1), cc.wt = rnd(nw, -0.5, 0.5), cc.b = rnd(k, -0.5, 0.5);
    cc.dy = rnd(no, -1, 1);
    sm_conv_shape s = {n, c, h, w, k, kh, kw, h - kh + 1, w - kw + 1, 0};

    float *dx = to_dev(cc.x, nx), *dw = to_dev(cc.wt, nw), *db = to_dev(cc.b, k);
    float *ddy = to_dev(cc.dy, no), *dout = to_dev(cc.dy, no);
    void *ws = NULL;
    size_t wsb = be->ops->conv_workspace(be->ctx, &s);
    assert_int_equal(be->ops->alloc(be->ctx, wsb ? wsb : 4, &ws), SM_OK);

    /* forward */
    double *want = malloc(no * sizeof *want), *got = malloc(no * sizeof *got);
    ref_conv(n, c, h, w, k, kh, kw, cc.x, cc.wt, cc.b, want);
    assert_int_equal(be->ops->conv_fwd(be->ctx, &s, dx, dw, db, dout, ws, wsb), SM_OK);
    from_dev(dout, no, got);
    expect_close("conv forward", got, want, no, 1e-5);

    /* backward data: dL/dx of L = <dy, conv(x)> */
    double *num = malloc(nx * sizeof *num), *ana = malloc(nx * sizeof *ana);
    float *ddx = to_dev(cc.x, nx);
    assert_int_equal(be->ops->conv_bwd_data(be->ctx, &s, ddy, dw, ddx, ws, wsb), SM_OK);
    from_dev(ddx, nx, ana);
    numeric_grad(conv_loss, &cc, cc.x, nx, 1e-6, num);
    expect_close("conv backward-data", ana, num, nx, 1e-4);

    /* backward filter + bias, accumulating onto what is already there */
    double *w0 = rnd(nw, -1, 1), *b0 = rnd(k, -1, 1);
    float *ddw = to_dev(w0, nw), *ddb = to_dev(b0, k);
    assert_int_equal(be->ops->conv_bwd_filter(be->ctx, &s, dx, ddy, ddw, ddb, ws, wsb), SM_OK);
    double *anaw = malloc(nw * sizeof *anaw), *numw = malloc(nw * sizeof *numw);
    double anab[64], numb[64];
    from_dev(ddw, nw, anaw);
    from_dev(ddb, k, anab);
    for (size_t i = 0; i < nw; i++) anaw[i] -= w0[i];
    for (int i = 0; i < k; i++) anab[i] -= b0[i];
    numeric_grad(conv_loss, &cc, cc.wt, nw, 1e-6, numw);
    numeric_grad(conv_loss, &cc, cc.b, (size_t)k, 1e-6, numb);
    expect_close("conv backward-filter", anaw, numw, nw, 1e-4);
    expect_close("conv backward-bias", anab, numb, (size_t)k, 1e-4);

    void *devs[] = {dx, dw, db, ddy, dout, ddx, ddw, ddb, ws};
    for (size_t i = 0; i < sizeof devs / sizeof *devs; i++) be->ops->free(be->ctx, devs[i]);
    free(cc.x), free(cc.wt), free(cc.b), free(cc.dy), free(want), free(got), free(num);
    free(ana), free(w0), free(b0), free(anaw), free(numw);
}

static void test_conv(void **state)
{
    (void)state;
    check_conv(2, 3, 7, 6, 4, 3, 2); /* rectangular kernel and input */
    check_conv(3, 1, 9, 9, 5, 4, 4); /* one input channel, as the first layer */
    check_conv(1, 4, 5, 5, 2, 5, 5); /* kernel covers the input: 1x1 output */
    check_conv(2, 2, 6, 8, 3, 1, 1); /* 1x1 kernel */
}

/* Batches larger than a backend's internal grouping (cpu-blas: several images per GEMM;
 * cpu-dnnl: chunks of 16 images), with a tail, run in a workspace sized for a larger batch, as
 * the trainer's last micro-batch does: every op against direct double loops. */
static void check_conv_batched(int n, int cap, int c, int h, int w, int k, int kh)
{
    const int oh = h - kh + 1, ow = w - kh + 1;
    const size_t nx = (size_t)n * c * h * w, nw = (size_t)k * c * kh * kh;
    const size_t no = (size_t)n * k * oh * ow;
    double *x = rnd(nx, -1, 1), *wt = rnd(nw, -0.5, 0.5), *b = rnd(k, -0.5, 0.5);
    double *dy = rnd(no, -1, 1), *w0 = rnd(nw, -1, 1), *b0 = rnd(k, -1, 1);
    double *y = malloc(no * sizeof *y), *dx = calloc(nx, sizeof *dx);
    double *dw = malloc(nw * sizeof *dw), *db = malloc(k * sizeof *db);
    ref_conv(n, c, h, w, k, kh, kh, x, wt, b, y);
    memcpy(dw, w0, nw * sizeof *dw);
    memcpy(db, b0, k * sizeof *db);
    for (int in = 0; in < n; in++)
        for (int ko = 0; ko < k; ko++)
            for (int yy = 0; yy < oh; yy++)
                for (int xx = 0; xx < ow; xx++) {
                    double g = dy[(((size_t)in * k + ko) * oh + yy) * ow + xx];
                    db[ko] += g;
                    for (int ci = 0; ci < c; ci++)
                        for (int i = 0; i < kh; i++)
                            for (int j = 0; j < kh; j++) {
                                size_t xi = (((size_t)in * c + ci) * h + yy + i) * w + xx + j;
                                size_t wi = (((size_t)ko * c + ci) * kh + i) * kh + j;
                                dx[xi] += wt[wi] * g;
                                dw[wi] += x[xi] * g;
                            }
                }
    sm_conv_shape big = {cap, c, h, w, k, kh, kh, oh, ow, 0}, s = big;
    s.n = n;
    size_t wsb = be->ops->conv_workspace(be->ctx, &big);
    void *ws = NULL;
    assert_int_equal(be->ops->alloc(be->ctx, wsb ? wsb : 4, &ws), SM_OK);
    float *dx_ = to_dev(x, nx), *dw_ = to_dev(wt, nw), *db_ = to_dev(b, k), *ddy = to_dev(dy, no);
    float *dout = to_dev(dy, no), *ddx = to_dev(x, nx), *ddw = to_dev(w0, nw), *ddb = to_dev(b0, k);
    double *got = malloc((no > nx ? no : nx) * sizeof *got);
    assert_int_equal(be->ops->conv_fwd(be->ctx, &s, dx_, dw_, db_, dout, ws, wsb), SM_OK);
    from_dev(dout, no, got);
    expect_close("batched conv forward", got, y, no, 1e-5);
    assert_int_equal(be->ops->conv_bwd_data(be->ctx, &s, ddy, dw_, ddx, ws, wsb), SM_OK);
    from_dev(ddx, nx, got);
    expect_close("batched conv backward-data", got, dx, nx, 1e-5);
    assert_int_equal(be->ops->conv_bwd_filter(be->ctx, &s, dx_, ddy, ddw, ddb, ws, wsb), SM_OK);
    from_dev(ddw, nw, got);
    expect_close("batched conv backward-filter", got, dw, nw, 1e-5);
    from_dev(ddb, k, got);
    expect_close("batched conv backward-bias", got, db, (size_t)k, 1e-5);
    void *devs[] = {dx_, dw_, db_, ddy, dout, ddx, ddw, ddb, ws};
    for (size_t i = 0; i < sizeof devs / sizeof *devs; i++) be->ops->free(be->ctx, devs[i]);
    free(x), free(wt), free(b), free(dy), free(w0), free(b0), free(y), free(dx), free(dw);
    free(db), free(got);
}

static void test_conv_batched(void **state)
{
    (void)state;
    check_conv_batched(30, 40, 3, 20, 20, 5, 3); /* 324 columns an image: groups and a tail */
    check_conv_batched(19, 19, 1, 40, 40, 4, 7); /* one channel, as the first layer */
    check_conv_batched(5, 64, 2, 70, 70, 3, 5);  /* one image per GEMM */
    /* one image's columns (7 x 7x7 x 104x104 floats, 14.8 MB) exceed cpu-blas's 8 MB slice:
     * channels in slices of 3, 3 and 1, products accumulated over the slices */
    check_conv_batched(2, 2, 7, 110, 110, 2, 7);
}

/* The conv ops give the same bits at 1 and 2 threads (cpu-blas runs whole images per thread
 * where one image fills a product, and sums backward-filter's partials in a fixed order). */
static void conv_bits(int threads, const sm_conv_shape *s, const double *x, const double *w,
                      const double *b, const double *dy, float *out_y, float *out_dx, float *out_dw,
                      float *out_db)
{
    const size_t nx = (size_t)s->n * s->c * s->h * s->w, nw = (size_t)s->k * s->c * s->kh * s->kw;
    const size_t ny = (size_t)s->n * s->k * s->oh * s->ow;
    assert_int_equal(sm_backend_set_threads(be, threads), SM_OK);
    size_t wsb = be->ops->conv_workspace(be->ctx, s); /* sized at this thread count */
    void *ws = NULL;
    assert_int_equal(be->ops->alloc(be->ctx, wsb ? wsb : 4, &ws), SM_OK);
    float *dx_ = to_dev(x, nx), *dw_ = to_dev(w, nw), *db_ = to_dev(b, s->k), *ddy = to_dev(dy, ny);
    float *y = to_dev(dy, ny), *gx = to_dev(x, nx), *gw = to_dev(w, nw), *gb = to_dev(b, s->k);
    assert_int_equal(be->ops->conv_fwd(be->ctx, s, dx_, dw_, db_, y, ws, wsb), SM_OK);
    assert_int_equal(be->ops->conv_bwd_data(be->ctx, s, ddy, dw_, gx, ws, wsb), SM_OK);
    assert_int_equal(be->ops->conv_bwd_filter(be->ctx, s, dx_, ddy, gw, gb, ws, wsb), SM_OK);
    assert_int_equal(be->ops->download(be->ctx, out_y, y, ny * sizeof(float)), SM_OK);
    assert_int_equal(be->ops->download(be->ctx, out_dx, gx, nx * sizeof(float)), SM_OK);
    assert_int_equal(be->ops->download(be->ctx, out_dw, gw, nw * sizeof(float)), SM_OK);
    assert_int_equal(be->ops->download(be->ctx, out_db, gb, (size_t)s->k * sizeof(float)), SM_OK);
    void *devs[] = {dx_, dw_, db_, ddy, y, gx, gw, gb, ws};
    for (size_t i = 0; i < sizeof devs / sizeof *devs; i++) be->ops->free(be->ctx, devs[i]);
    assert_int_equal(sm_backend_set_threads(be, 0), SM_OK);
}

/* cpu-blas: the same bits at 1 and 2 threads (whole images per thread, partial gradients summed
 * in order, products cut by shape). cpu-dnnl: oneDNN picks its blocking and splits its
 * reductions by the thread count, so its bits are only promised at one count: each count run
 * twice must agree with itself (tests/test_thread_count.c trains at both). */
static void test_conv_thread_count(void **state)
{
    (void)state;
    const int dnnl = sm_backend_get_kind(be) == SM_BACKEND_CPU_DNNL;
    const int counts[2][2] = {{1, 2}, {2, 2}};
    /* 66 x 66 = 4356 columns an image: one image per product; 9 images: partial runs 4, 4, 1 */
    const sm_conv_shape shapes[] = {{9, 2, 70, 70, 3, 5, 5, 66, 66, 0},  /* one image per product */
                                    {9, 3, 12, 12, 4, 3, 3, 10, 10, 0}}; /* several */
    for (size_t c = 0; c < sizeof shapes / sizeof *shapes; c++) {
        const sm_conv_shape *s = &shapes[c];
        const size_t nx = (size_t)s->n * s->c * s->h * s->w;
        const size_t nw = (size_t)s->k * s->c * s->kh * s->kw;
        const size_t ny = (size_t)s->n * s->k * s->oh * s->ow;
        double *x = rnd(nx, -1, 1), *w = rnd(nw, -0.5, 0.5), *b = rnd(s->k, -0.5, 0.5);
        double *dy = rnd(ny, -1, 1);
        float *r[2][4];
        for (int t = 0; t < 2; t++) {
            r[t][0] = malloc(ny * sizeof(float));
            r[t][1] = malloc(nx * sizeof(float));
            r[t][2] = malloc(nw * sizeof(float));
            r[t][3] = malloc((size_t)s->k * sizeof(float));
            conv_bits(counts[dnnl][t], s, x, w, b, dy, r[t][0], r[t][1], r[t][2], r[t][3]);
        }
        assert_memory_equal(r[0][0], r[1][0], ny * sizeof(float));
        assert_memory_equal(r[0][1], r[1][1], nx * sizeof(float));
        assert_memory_equal(r[0][2], r[1][2], nw * sizeof(float));
        assert_memory_equal(r[0][3], r[1][3], (size_t)s->k * sizeof(float));
        for (int t = 0; t < 2; t++)
            for (int i = 0; i < 4; i++) free(r[t][i]);
        free(x), free(w), free(b), free(dy);
    }
}

/* ---- max pooling ---- */

typedef struct pool_case {
    int n, c, h, w, s;
    double *x, *dy;
} pool_case;

static double pool_loss(void *p, const double *unused)
{
    (void)unused;
    pool_case *pc = p;
    size_t no = (size_t)pc->n * pc->c * (pc->h / pc->s) * (pc->w / pc->s);
    double *y = malloc(no * sizeof *y);
    ref_maxpool(pc->n, pc->c, pc->h, pc->w, pc->s, pc->x, y);
    double l = dot(y, pc->dy, no);
    free(y);
    return l;
}

static void check_pool(int n, int c, int h, int w, int sz)
{
    pool_case pc = {n, c, h, w, sz, NULL, NULL};
    size_t nx = (size_t)n * c * h * w, no = (size_t)n * c * (h / sz) * (w / sz);
    /* a shuffled ramp: distinct values with gaps far above the FD step, so no ties or kinks */
    pc.x = malloc(nx * sizeof *pc.x);
    for (size_t i = 0; i < nx; i++) pc.x[i] = (double)((i * 7919) % nx) / nx - 0.5;
    pc.dy = rnd(no, -1, 1);
    sm_pool_shape s = {n, c, h, w, sz, h / sz, w / sz};
    float *dx = to_dev(pc.x, nx), *dy = to_dev(pc.dy, no), *dout = to_dev(pc.dy, no);
    float *ddx = to_dev(pc.x, nx);
    void *am = NULL;
    assert_int_equal(be->ops->alloc(be->ctx, no * sizeof(int32_t), &am), SM_OK);

    double *want = malloc(no * sizeof *want), *got = malloc(no * sizeof *got);
    ref_maxpool(n, c, h, w, sz, pc.x, want);
    assert_int_equal(be->ops->maxpool_fwd(be->ctx, &s, dx, dout, am), SM_OK);
    from_dev(dout, no, got);
    expect_close("maxpool forward", got, want, no, 1e-7);

    double *ana = malloc(nx * sizeof *ana), *num = malloc(nx * sizeof *num);
    assert_int_equal(be->ops->maxpool_bwd(be->ctx, &s, dy, am, ddx), SM_OK);
    from_dev(ddx, nx, ana);
    numeric_grad(pool_loss, &pc, pc.x, nx, 1e-6, num);
    expect_close("maxpool backward", ana, num, nx, 1e-5);

    void *devs[] = {dx, dy, dout, ddx, am};
    for (size_t i = 0; i < sizeof devs / sizeof *devs; i++) be->ops->free(be->ctx, devs[i]);
    free(pc.x), free(pc.dy), free(want), free(got), free(ana), free(num);
}

static void test_maxpool(void **state)
{
    (void)state;
    check_pool(2, 3, 8, 6, 2);
    check_pool(1, 2, 7, 9, 2); /* odd sizes: the last row and column are dropped */
    check_pool(2, 1, 9, 9, 3);

    /* ties go to the first element in row-major order, a NaN wins (as PyTorch): the gradient
     * lands where the argmax says */
    const float x[8] = {1, 1, 2, 2, 0, 1, NAN, 2}, dy[2] = {10, 20};
    sm_pool_shape ps = {1, 1, 2, 4, 2, 1, 2};
    void *dx_, *dy_, *y_, *am;
    assert_int_equal(be->ops->alloc(be->ctx, sizeof x, &dx_), SM_OK);
    assert_int_equal(be->ops->alloc(be->ctx, sizeof dy, &dy_), SM_OK);
    assert_int_equal(be->ops->alloc(be->ctx, sizeof dy, &y_), SM_OK);
    assert_int_equal(be->ops->alloc(be->ctx, 2 * sizeof(int32_t), &am), SM_OK);
    assert_int_equal(be->ops->upload(be->ctx, dx_, x, sizeof x), SM_OK);
    assert_int_equal(be->ops->upload(be->ctx, dy_, dy, sizeof dy), SM_OK);
    assert_int_equal(be->ops->maxpool_fwd(be->ctx, &ps, dx_, y_, am), SM_OK);
    float y[2], g[8];
    assert_int_equal(be->ops->download(be->ctx, y, y_, sizeof y), SM_OK);
    assert_true(y[0] == 1.0f && isnan(y[1]));
    assert_int_equal(be->ops->maxpool_bwd(be->ctx, &ps, dy_, am, dx_), SM_OK);
    assert_int_equal(be->ops->download(be->ctx, g, dx_, sizeof g), SM_OK);
    const float want[8] = {10, 0, 0, 0, 0, 0, 20, 0};
    for (int i = 0; i < 8; i++) assert_true(g[i] == want[i]);
    void *bufs[] = {dx_, dy_, y_, am};
    for (int i = 0; i < 4; i++) be->ops->free(be->ctx, bufs[i]);
}

/* ---- GroupNorm ---- */

typedef struct gn_case {
    int n, c, h, w, groups;
    double *x, *gamma, *beta, *dy;
} gn_case;

static size_t gn_size(const gn_case *g) { return (size_t)g->n * g->c * g->h * g->w; }

static double gn_loss(void *p, const double *unused)
{
    (void)unused;
    gn_case *g = p;
    size_t n = gn_size(g);
    double *y = malloc(n * sizeof *y);
    ref_groupnorm(g->n, g->c, g->h, g->w, g->groups, 1e-5, g->x, g->gamma, g->beta, y);
    double l = dot(y, g->dy, n);
    free(y);
    return l;
}

static void check_groupnorm(int n, int c, int h, int w, int groups)
{
    gn_case g = {n, c, h, w, groups, NULL, NULL, NULL, NULL};
    const size_t nx = gn_size(&g), ns = 2 * (size_t)n * groups;
    /* inputs with a per-channel offset and scale, so the groups' statistics differ */
    g.x = rnd(nx, -1, 1);
    for (size_t i = 0; i < nx; i++) {
        size_t ch = i / ((size_t)h * w) % (size_t)c;
        g.x[i] = g.x[i] * (0.5 + 0.25 * (double)(ch % 3)) + 0.3 * (double)(ch % 4) - 0.4;
    }
    g.gamma = rnd((size_t)c, 0.5, 1.5), g.beta = rnd((size_t)c, -0.5, 0.5), g.dy = rnd(nx, -1, 1);
    sm_norm_shape s = {n, c, h, w, groups, 1e-5};
    float *dx_ = to_dev(g.x, nx), *dg = to_dev(g.gamma, (size_t)c), *db = to_dev(g.beta, (size_t)c);
    float *ddy = to_dev(g.dy, nx), *dout = to_dev(g.dy, nx), *dstats = to_dev(g.dy, ns);

    double *want = malloc(nx * sizeof *want), *got = malloc(nx * sizeof *got);
    ref_groupnorm(n, c, h, w, groups, 1e-5, g.x, g.gamma, g.beta, want);
    assert_int_equal(be->ops->groupnorm_fwd(be->ctx, &s, dx_, dg, db, dout, dstats), SM_OK);
    from_dev(dout, nx, got);
    expect_close("groupnorm forward", got, want, nx, 1e-6);

    /* backward: d(input), and the parameter gradients accumulated onto what is there */
    double *g0 = rnd((size_t)c, -1, 1), *b0 = rnd((size_t)c, -1, 1);
    float *ddx = to_dev(g.x, nx), *ddg = to_dev(g0, (size_t)c), *ddb = to_dev(b0, (size_t)c);
    assert_int_equal(be->ops->groupnorm_bwd(be->ctx, &s, dx_, ddy, dg, dstats, ddx, ddg, ddb),
                     SM_OK);
    double *ana = malloc(nx * sizeof *ana), *num = malloc(nx * sizeof *num);
    double anag[64], anab[64], numg[64], numb[64];
    from_dev(ddx, nx, ana);
    from_dev(ddg, (size_t)c, anag);
    from_dev(ddb, (size_t)c, anab);
    for (int i = 0; i < c; i++) anag[i] -= g0[i], anab[i] -= b0[i];
    numeric_grad(gn_loss, &g, g.x, nx, 1e-6, num);
    numeric_grad(gn_loss, &g, g.gamma, (size_t)c, 1e-6, numg);
    numeric_grad(gn_loss, &g, g.beta, (size_t)c, 1e-6, numb);
    double ex = ref_rel_err(ana, num, nx), eg = ref_rel_err(anag, numg, (size_t)c);
    double eb = ref_rel_err(anab, numb, (size_t)c);
    printf("groupnorm %dx%dx%dx%d, %d groups [%s]: backward rel err dx %.2e, dgamma %.2e, dbeta "
           "%.2e\n",
           n, c, h, w, groups, be->ops->name, ex, eg, eb);
    expect_close("groupnorm backward-data", ana, num, nx, 1e-4);
    expect_close("groupnorm backward-weight", anag, numg, (size_t)c, 1e-4);
    expect_close("groupnorm backward-bias", anab, numb, (size_t)c, 1e-4);

    /* without d(input) (a first layer): the same parameter gradients, added once more */
    assert_int_equal(be->ops->groupnorm_bwd(be->ctx, &s, dx_, ddy, dg, dstats, NULL, ddg, ddb),
                     SM_OK);
    double twice[64];
    from_dev(ddg, (size_t)c, twice);
    for (int i = 0; i < c; i++) twice[i] -= g0[i] + 2 * anag[i];
    for (int i = 0; i < c; i++) assert_true(fabs(twice[i]) <= 1e-5 * (1 + fabs(anag[i])));

    void *devs[] = {dx_, dg, db, ddy, dout, dstats, ddx, ddg, ddb};
    for (size_t i = 0; i < sizeof devs / sizeof *devs; i++) be->ops->free(be->ctx, devs[i]);
    free(g.x), free(g.gamma), free(g.beta), free(g.dy), free(want), free(got), free(g0), free(b0);
    free(ana), free(num);
}

static void test_groupnorm(void **state)
{
    (void)state;
    check_groupnorm(2, 6, 5, 4, 3); /* two channels a group */
    check_groupnorm(3, 4, 3, 3, 1); /* one group: LayerNorm over C, H, W */
    check_groupnorm(2, 5, 7, 7, 5); /* one channel a group: InstanceNorm */
    check_groupnorm(4, 8, 2, 1, 2); /* a tiny plane */
}

/* GroupNorm gives the same bits at 1 and 2 threads: forward and d(input) one (image, group)
 * per unit, the parameter gradients one channel per unit with the images summed in order. */
static void groupnorm_bits(int threads, const sm_norm_shape *s, const double *x,
                           const double *gamma, const double *beta, const double *dy, float *out)
{
    const size_t nx = (size_t)s->n * s->c * s->h * s->w, c = (size_t)s->c;
    assert_int_equal(sm_backend_set_threads(be, threads), SM_OK);
    float *dx_ = to_dev(x, nx), *dg = to_dev(gamma, c), *db = to_dev(beta, c);
    float *ddy = to_dev(dy, nx), *y = to_dev(dy, nx), *gx = to_dev(x, nx);
    float *gg = to_dev(gamma, c), *gb = to_dev(beta, c);
    float *st = to_dev(dy, 2 * (size_t)s->n * s->groups);
    assert_int_equal(be->ops->groupnorm_fwd(be->ctx, s, dx_, dg, db, y, st), SM_OK);
    assert_int_equal(be->ops->groupnorm_bwd(be->ctx, s, dx_, ddy, dg, st, gx, gg, gb), SM_OK);
    assert_int_equal(be->ops->download(be->ctx, out, y, nx * sizeof(float)), SM_OK);
    assert_int_equal(be->ops->download(be->ctx, out + nx, gx, nx * sizeof(float)), SM_OK);
    assert_int_equal(be->ops->download(be->ctx, out + 2 * nx, gg, c * sizeof(float)), SM_OK);
    assert_int_equal(be->ops->download(be->ctx, out + 2 * nx + c, gb, c * sizeof(float)), SM_OK);
    void *devs[] = {dx_, dg, db, ddy, y, gx, gg, gb, st};
    for (size_t i = 0; i < sizeof devs / sizeof *devs; i++) be->ops->free(be->ctx, devs[i]);
    assert_int_equal(sm_backend_set_threads(be, 0), SM_OK);
}

static void test_groupnorm_thread_count(void **state)
{
    (void)state;
    /* 12 (image, group) units of 4096 floats, 8 channel units of 6144: both loops split */
    const sm_norm_shape s = {6, 8, 32, 32, 2, 1e-5};
    const size_t nx = (size_t)s.n * s.c * s.h * s.w, total = 2 * nx + 2 * (size_t)s.c;
    double *x = rnd(nx, -2, 3), *gamma = rnd((size_t)s.c, 0.5, 1.5);
    double *beta = rnd((size_t)s.c, -0.5, 0.5), *dy = rnd(nx, -1, 1);
    float *r1 = malloc(total * sizeof *r1), *r2 = malloc(total * sizeof *r2);
    groupnorm_bits(1, &s, x, gamma, beta, dy, r1);
    groupnorm_bits(2, &s, x, gamma, beta, dy, r2);
    assert_memory_equal(r1, r2, total * sizeof *r1);
    free(x), free(gamma), free(beta), free(dy), free(r1), free(r2);
}

/* ---- element-wise ops ---- */

typedef struct elt_case {
    size_t n;
    double *x, *dy;
    void (*f)(size_t, const double *, double *);
} elt_case;

static double elt_loss(void *p, const double *unused)
{
    (void)unused;
    elt_case *e = p;
    double *y = malloc(e->n * sizeof *y);
    e->f(e->n, e->x, y);
    double l = dot(y, e->dy, e->n);
    free(y);
    return l;
}

static void test_relu_sigmoid(void **state)
{
    (void)state;
    const size_t n = 300;
    for (int which = 0; which < 2; which++) {
        elt_case e = {n, rnd(n, -4, 4), rnd(n, -1, 1), which ? ref_sigmoid : ref_relu};
        /* keep ReLU's inputs off its kink */
        for (size_t i = 0; i < n && !which; i++)
            if (fabs(e.x[i]) < 1e-3) e.x[i] = 0.5;
        float *dx = to_dev(e.x, n), *ddy = to_dev(e.dy, n), *dy_out = to_dev(e.x, n);
        float *ddx = to_dev(e.x, n);
        double *want = malloc(n * sizeof *want), *got = malloc(n * sizeof *got);
        double *num = malloc(n * sizeof *num);
        e.f(n, e.x, want);
        if (which) assert_int_equal(be->ops->sigmoid_fwd(be->ctx, n, dx, dy_out), SM_OK);
        else assert_int_equal(be->ops->relu_fwd(be->ctx, n, dx, dy_out), SM_OK);
        from_dev(dy_out, n, got);
        expect_close(which ? "sigmoid forward" : "relu forward", got, want, n, 1e-6);
        /* backward takes the forward's output, as the core calls it */
        if (which) assert_int_equal(be->ops->sigmoid_bwd(be->ctx, n, dy_out, ddy, ddx), SM_OK);
        else assert_int_equal(be->ops->relu_bwd(be->ctx, n, dy_out, ddy, ddx), SM_OK);
        from_dev(ddx, n, got);
        numeric_grad(elt_loss, &e, e.x, n, 1e-6, num);
        expect_close(which ? "sigmoid backward" : "relu backward", got, num, n, 1e-5);
        /* in place, as the core runs ReLU */
        if (!which) {
            assert_int_equal(be->ops->relu_fwd(be->ctx, n, dx, dx), SM_OK);
            from_dev(dx, n, got);
            e.f(n, e.x, want);
            expect_close("relu in place", got, want, n, 1e-7);
        }
        void *devs[] = {dx, ddy, dy_out, ddx};
        for (size_t i = 0; i < 4; i++) be->ops->free(be->ctx, devs[i]);
        free(e.x), free(e.dy), free(want), free(got), free(num);
    }
}

/* ---- dense ---- */

static void test_gemm_bias(void **state)
{
    (void)state;
    const int m = 5, n = 7, k = 9;
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) {
            double *a = rnd((size_t)m * k, -1, 1), *b = rnd((size_t)k * n, -1, 1);
            double *c0 = rnd((size_t)m * n, -1, 1), want[35], got[35];
            int lda = ta ? m : k, ldb = tb ? k : n;
            ref_gemm(ta, tb, m, n, k, a, lda, b, ldb, want, n);
            for (int i = 0; i < m * n; i++) want[i] = 0.5 * want[i] + 2.0 * c0[i];
            float *da = to_dev(a, (size_t)m * k), *db = to_dev(b, (size_t)k * n);
            float *dc = to_dev(c0, (size_t)m * n);
            assert_int_equal(
                be->ops->gemm(be->ctx, ta, tb, m, n, k, 0.5f, da, lda, db, ldb, 2.0f, dc, n),
                SM_OK);
            from_dev(dc, (size_t)m * n, got);
            expect_close("gemm", got, want, (size_t)m * n, 1e-6);
            be->ops->free(be->ctx, da), be->ops->free(be->ctx, db), be->ops->free(be->ctx, dc);
            free(a), free(b), free(c0);
        }
    /* bias_add and its adjoint bias_grad */
    double *y = rnd(35, -1, 1), *bias = rnd(7, -1, 1), want[35], got[35], g0[7], gw[7], gg[7];
    for (int r = 0; r < 5; r++)
        for (int c = 0; c < 7; c++) want[r * 7 + c] = y[r * 7 + c] + bias[c];
    float *dy = to_dev(y, 35), *dbias = to_dev(bias, 7);
    assert_int_equal(be->ops->bias_add(be->ctx, 5, 7, dbias, dy), SM_OK);
    from_dev(dy, 35, got);
    expect_close("bias_add", got, want, 35, 1e-7);
    ref_fill_uniform(&seed_state, -1, 1, 7, g0);
    for (int c = 0; c < 7; c++) {
        gw[c] = g0[c];
        for (int r = 0; r < 5; r++) gw[c] += y[r * 7 + c];
    }
    float *dg = to_dev(g0, 7), *dyy = to_dev(y, 35);
    assert_int_equal(be->ops->bias_grad(be->ctx, 5, 7, dyy, dg), SM_OK);
    from_dev(dg, 7, gg);
    expect_close("bias_grad", gg, gw, 7, 1e-6);
    void *devs[] = {dy, dbias, dg, dyy};
    for (size_t i = 0; i < 4; i++) be->ops->free(be->ctx, devs[i]);
    free(y), free(bias);
}

/* ---- head ops ---- */

typedef struct absdiff_case {
    size_t n;
    double *a, *b, *dd;
} absdiff_case;

static double absdiff_loss(void *p, const double *unused)
{
    (void)unused;
    absdiff_case *c = p;
    double *d = malloc(c->n * sizeof *d);
    ref_absdiff(c->n, c->a, c->b, d);
    double l = dot(d, c->dd, c->n);
    free(d);
    return l;
}

static void test_absdiff(void **state)
{
    (void)state;
    const size_t n = 200;
    absdiff_case c = {n, rnd(n, 0, 1), rnd(n, 0, 1), rnd(n, -1, 1)};
    for (size_t i = 0; i < n; i++)
        if (fabs(c.a[i] - c.b[i]) < 1e-3) c.a[i] = c.b[i] + 0.01; /* off the kink */
    float *da = to_dev(c.a, n), *db = to_dev(c.b, n), *ddd = to_dev(c.dd, n);
    float *dout = to_dev(c.a, n), *ga = to_dev(c.a, n), *gb = to_dev(c.a, n);
    double *want = malloc(n * sizeof *want), *got = malloc(n * sizeof *got);
    double *num = malloc(n * sizeof *num);
    ref_absdiff(n, c.a, c.b, want);
    assert_int_equal(be->ops->absdiff_fwd(be->ctx, n, da, db, dout), SM_OK);
    from_dev(dout, n, got);
    expect_close("absdiff forward", got, want, n, 1e-6);
    assert_int_equal(be->ops->absdiff_bwd(be->ctx, n, da, db, ddd, ga, gb), SM_OK);
    from_dev(ga, n, got);
    numeric_grad(absdiff_loss, &c, c.a, n, 1e-6, num);
    expect_close("absdiff backward (a)", got, num, n, 1e-5);
    from_dev(gb, n, got);
    numeric_grad(absdiff_loss, &c, c.b, n, 1e-6, num);
    expect_close("absdiff backward (b)", got, num, n, 1e-5);
    void *devs[] = {da, db, ddd, dout, ga, gb};
    for (size_t i = 0; i < 6; i++) be->ops->free(be->ctx, devs[i]);
    free(c.a), free(c.b), free(c.dd), free(want), free(got), free(num);
}

typedef struct bce_case {
    int n;
    double *z, *y;
} bce_case;

static double bce_loss(void *p, const double *unused)
{
    (void)unused;
    bce_case *c = p;
    return ref_bce_mean(c->n, c->z, c->y);
}

static void test_bce(void **state)
{
    (void)state;
    enum { N = 40 };
    bce_case c = {N, rnd(N, -6, 6), rnd(N, 0, 1)};
    for (int i = 0; i < N; i++) c.y[i] = c.y[i] < 0.5 ? 0 : 1;
    float *dz = to_dev(c.z, N), *dy = to_dev(c.y, N), *ds = to_dev(c.z, N);
    float *dl = to_dev(c.z, 1), *dg = to_dev(c.z, N);
    double got[N], num[N], sc[N], loss;
    assert_int_equal(be->ops->bce_fwd_bwd(be->ctx, N, dz, dy, 1.0f / N, ds, dl, dg), SM_OK);
    from_dev(dl, 1, &loss);
    double want = ref_bce_mean(N, c.z, c.y);
    double lm = loss / N;
    expect_close("bce loss", &lm, &want, 1, 1e-6);
    from_dev(dg, N, got);
    numeric_grad(bce_loss, &c, c.z, N, 1e-6, num);
    expect_close("bce dlogits", got, num, N, 1e-5);
    from_dev(ds, N, sc);
    for (int i = 0; i < N; i++) assert_true(fabs(sc[i] - 1.0 / (1.0 + exp(-c.z[i]))) < 1e-6);

    /* saturated logits: the clip holds the loss at -log(2^-23) and passes no gradient */
    double zs[2] = {40, -40}, ys[2] = {0, 1};
    float *dzs = to_dev(zs, 2), *dys = to_dev(ys, 2);
    assert_int_equal(be->ops->bce_fwd_bwd(be->ctx, 2, dzs, dys, 0.5f, ds, dl, dg), SM_OK);
    from_dev(dl, 1, &loss);
    from_dev(dg, 2, got);
    assert_true(fabs(loss - 2 * 23 * log(2.0)) < 1e-4);
    assert_true(got[0] == 0.0 && got[1] == 0.0);
    void *devs[] = {dz, dy, ds, dl, dg, dzs, dys};
    for (size_t i = 0; i < 7; i++) be->ops->free(be->ctx, devs[i]);
    free(c.z), free(c.y);
}

/* ---- Adam and the finiteness check ---- */

/* Without decay (wd = 0), and with classic L2 decay: the gradient is g + wd p. */
static void test_adam_update(void **state)
{
    (void)state;
    for (int k = 0; k < 2; k++) {
        enum { N = 100 };
        double *p = rnd(N, -1, 1), *g = rnd(N, -1, 1), *m = rnd(N, -0.1, 0.1), *v = rnd(N, 0, 0.01);
        double wp[N], wm[N], wv[N], got[N];
        const double step = 1e-3, b1 = 0.9, b2 = 0.99, eps = 1e-8, wd = k ? 0.25 : 0.0;
        for (int i = 0; i < N; i++) {
            double gi = g[i] + wd * p[i];
            wm[i] = b1 * m[i] + (1 - b1) * gi;
            wv[i] = b2 * v[i] + (1 - b2) * gi * gi;
            wp[i] = p[i] - step * wm[i] / (sqrt(wv[i]) + eps);
        }
        float *dp = to_dev(p, N), *dg = to_dev(g, N), *dm = to_dev(m, N), *dv = to_dev(v, N);
        assert_int_equal(be->ops->adam_update(be->ctx, N, dp, dg, dm, dv, (float)step, (float)b1,
                                              (float)b2, (float)eps, (float)wd),
                         SM_OK);
        from_dev(dp, N, got);
        expect_close("adam params", got, wp, N, 1e-6);
        from_dev(dm, N, got);
        expect_close("adam m", got, wm, N, 1e-6);
        from_dev(dv, N, got);
        expect_close("adam v", got, wv, N, 1e-6);
        void *devs[] = {dp, dg, dm, dv};
        for (size_t i = 0; i < 4; i++) be->ops->free(be->ctx, devs[i]);
        free(p), free(g), free(m), free(v);
    }
}

static void test_all_finite(void **state)
{
    (void)state;
    double x[50];
    ref_fill_uniform(&seed_state, -1e30, 1e30, 50, x);
    float *d = to_dev(x, 50);
    bool ok = false;
    assert_int_equal(be->ops->all_finite(be->ctx, 50, d, &ok), SM_OK);
    assert_true(ok);
    const float bad[3] = {NAN, INFINITY, -INFINITY};
    for (int i = 0; i < 3; i++) {
        float keep;
        assert_int_equal(be->ops->download(be->ctx, &keep, d + 17, sizeof keep), SM_OK);
        assert_int_equal(be->ops->upload(be->ctx, d + 17, &bad[i], sizeof bad[i]), SM_OK);
        assert_int_equal(be->ops->all_finite(be->ctx, 50, d, &ok), SM_OK);
        assert_false(ok);
        assert_int_equal(be->ops->upload(be->ctx, d + 17, &keep, sizeof keep), SM_OK);
    }
    be->ops->free(be->ctx, d);
}

static int run_on(sm_backend_kind kind)
{
    sm_status st =
        kind == test_cpu_backend() ? test_backend_create(&be) : sm_backend_create(kind, &be);
    if (st != SM_OK) {
        printf("backend %d not usable here (%s): its op checks are skipped\n", (int)kind,
               sm_last_error());
        return -1;
    }
    printf("checking the ops of backend %s\n", sm_backend_name(be));
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conv),
        cmocka_unit_test(test_conv_batched),
        cmocka_unit_test(test_conv_thread_count),
        cmocka_unit_test(test_maxpool),
        cmocka_unit_test(test_groupnorm),
        cmocka_unit_test(test_groupnorm_thread_count),
        cmocka_unit_test(test_relu_sigmoid),
        cmocka_unit_test(test_gemm_bias),
        cmocka_unit_test(test_absdiff),
        cmocka_unit_test(test_bce),
        cmocka_unit_test(test_adam_update),
        cmocka_unit_test(test_all_finite),
    };
    int failed = cmocka_run_group_tests_name(sm_backend_name(be), tests, NULL, NULL);
    sm_backend_destroy(be);
    return failed;
}

int main(void)
{
    sm_backend_kind cpu = test_cpu_backend(); /* SIAMESE_TEST_BACKEND; 77 when not built */
    int failed = run_on(cpu);
    if (cpu != SM_BACKEND_CPU) return failed; /* the cuda checks ride on the cpu-blas run */
    int cuda = run_on(SM_BACKEND_CUDA);
    if (cuda > 0) failed += cuda;
    return failed;
}
