/* SPDX-License-Identifier: MIT */
/* The cuda backend against cpu-blas (the reference), on a GPU: every vtable op on random inputs
 * (the gallery's l1_scores bit for bit), then whole networks (loss and every gradient at the same
 * weights and batch, a small architecture, one with GroupNorm layers and Koch's at a small batch,
 * with micro-batches so that a smaller last chunk runs on the workspace of a larger one), a few
 * Adam steps, and checkpoints saved on one backend and loaded on the other. Float32 (TF32 off)
 * must agree to a relative error well under 1e-3; what TF32 changes is printed, not asserted
 * tightly. Without a usable GPU: exit 77 (skip) with the reason, never a pass. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "train/training.h"

static sm_backend *cpu, *gpu;

/* ---- helpers ---- */

static uint64_t rng_state = 0x9E3779B97F4A7C15u;

static float urand(float lo, float hi)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return lo + (hi - lo) * (float)((rng_state >> 40) * (1.0 / 16777216.0));
}

static float *rnd(size_t n, float lo, float hi)
{
    float *p = malloc((n ? n : 1) * sizeof *p);
    assert_non_null(p);
    for (size_t i = 0; i < n; i++) p[i] = urand(lo, hi);
    return p;
}

static void *dev(sm_backend *be, const void *host, size_t bytes)
{
    void *p = NULL;
    assert_int_equal(be->ops->alloc(be->ctx, bytes ? bytes : 4, &p), SM_OK);
    if (host && bytes) assert_int_equal(be->ops->upload(be->ctx, p, host, bytes), SM_OK);
    return p;
}

static void *get(sm_backend *be, const void *d, size_t bytes)
{
    void *h = malloc(bytes ? bytes : 4);
    assert_non_null(h);
    if (bytes) assert_int_equal(be->ops->download(be->ctx, h, d, bytes), SM_OK);
    return h;
}

/* max |a - b| / max |b| (absolute where b is all zero), as test_reference_torch.c */
static double rel_err(const float *a, const float *b, size_t n)
{
    double num = 0.0, den = 0.0;
    for (size_t i = 0; i < n; i++) {
        num = fmax(num, fabs((double)a[i] - (double)b[i]));
        den = fmax(den, fabs((double)b[i]));
        if (isnan(a[i]) != isnan(b[i])) return INFINITY;
    }
    return den > 0.0 ? num / den : num;
}

static double worst_err;

/* Compares a device buffer of each backend; `tol` relative. */
static void check_close(const char *what, const void *dc, const void *dg, size_t n, double tol)
{
    float *c = get(cpu, dc, n * sizeof(float)), *g = get(gpu, dg, n * sizeof(float));
    double e = rel_err(g, c, n);
    printf("# %-34s rel err %.3g\n", what, e);
    if (e > worst_err) worst_err = e;
    if (!(e <= tol)) fail_msg("%s: relative error %g above %g", what, e, tol);
    free(c);
    free(g);
}

/* The same host data on both backends. */
typedef struct twin {
    void *c, *g;
    size_t bytes;
} twin;

static twin both(const void *host, size_t bytes)
{
    twin t = {dev(cpu, host, bytes), dev(gpu, host, bytes), bytes};
    return t;
}

static void twin_free(twin *t)
{
    cpu->ops->free(cpu->ctx, t->c);
    gpu->ops->free(gpu->ctx, t->g);
}

#define OPS(be) (be)->ops

/* ---- op parity ---- */

static void memory_ops(void **state)
{
    (void)state;
    size_t n = 1000;
    float *h = rnd(n, -1, 1);
    void *b = dev(gpu, h, n * sizeof *h); /* upload, then download below */
    float *back = get(gpu, b, n * sizeof *h);
    assert_memory_equal(back, h, n * sizeof *h);
    assert_int_equal(OPS(gpu)->zero(gpu->ctx, b, 10 * sizeof *h), SM_OK);
    free(back);
    back = get(gpu, b, n * sizeof *h);
    for (int i = 0; i < 10; i++) assert_true(back[i] == 0.0f);
    assert_true(back[10] == h[10]);
    free(back);
    free(h);
    OPS(gpu)->free(gpu->ctx, b);
}

/* `cap` > s.n: the workspace is sized for a larger batch, as the core does for a last chunk */
static void conv_case(int n, int c, int h, int w, int k, int kh, int kw, int cap)
{
    sm_conv_shape s = {n, c, h, w, k, kh, kw, h - kh + 1, w - kw + 1, 0};
    sm_conv_shape sc = s;
    sc.n = cap;
    size_t nx = (size_t)n * c * h * w, nw = (size_t)k * c * kh * kw;
    size_t ny = (size_t)n * k * s.oh * s.ow;
    float *hx = rnd(nx, 0, 1), *hw = rnd(nw, -0.1f, 0.1f), *hb = rnd((size_t)k, -0.1f, 0.1f);
    float *hdy = rnd(ny, -1, 1), *hdw = rnd(nw, -1, 1), *hdb = rnd((size_t)k, -1, 1);
    twin x = both(hx, nx * 4), wt = both(hw, nw * 4), b = both(hb, (size_t)k * 4);
    twin y = both(NULL, ny * 4), dy = both(hdy, ny * 4), dx = both(NULL, nx * 4);
    twin dw = both(hdw, nw * 4), db = both(hdb, (size_t)k * 4); /* accumulated into */
    size_t wsc = OPS(cpu)->conv_workspace(cpu->ctx, &sc);
    size_t wsg = OPS(gpu)->conv_workspace(gpu->ctx, &sc);
    void *cws = dev(cpu, NULL, wsc), *gws = dev(gpu, NULL, wsg);
    printf("# conv %dx%dx%dx%d * %dx%dx%d (workspace for n=%d: %zu bytes)\n", n, c, h, w, k, kh, kw,
           cap, wsg);

    assert_int_equal(OPS(cpu)->conv_fwd(cpu->ctx, &s, x.c, wt.c, b.c, y.c, cws, wsc), SM_OK);
    assert_int_equal(OPS(gpu)->conv_fwd(gpu->ctx, &s, x.g, wt.g, b.g, y.g, gws, wsg), SM_OK);
    check_close("conv forward", y.c, y.g, ny, 1e-5);
    assert_int_equal(OPS(cpu)->conv_bwd_data(cpu->ctx, &s, dy.c, wt.c, dx.c, cws, wsc), SM_OK);
    assert_int_equal(OPS(gpu)->conv_bwd_data(gpu->ctx, &s, dy.g, wt.g, dx.g, gws, wsg), SM_OK);
    check_close("conv backward-data", dx.c, dx.g, nx, 1e-5);
    assert_int_equal(OPS(cpu)->conv_bwd_filter(cpu->ctx, &s, x.c, dy.c, dw.c, db.c, cws, wsc),
                     SM_OK);
    assert_int_equal(OPS(gpu)->conv_bwd_filter(gpu->ctx, &s, x.g, dy.g, dw.g, db.g, gws, wsg),
                     SM_OK);
    check_close("conv backward-filter (accumulated)", dw.c, dw.g, nw, 1e-5);
    check_close("conv bias gradient (accumulated)", db.c, db.g, (size_t)k, 1e-5);

    twin *all[] = {&x, &wt, &b, &y, &dy, &dx, &dw, &db};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) twin_free(all[i]);
    OPS(cpu)->free(cpu->ctx, cws);
    OPS(gpu)->free(gpu->ctx, gws);
    free(hx), free(hw), free(hb), free(hdy), free(hdw), free(hdb);
}

static void conv_ops(void **state)
{
    (void)state;
    conv_case(3, 2, 12, 11, 4, 3, 4, 3);
    conv_case(5, 3, 20, 20, 8, 5, 5, 8);      /* a last micro-batch smaller than the workspace's */
    conv_case(2, 64, 48, 48, 128, 7, 7, 2);   /* Koch's second convolution */
    conv_case(2, 1, 105, 105, 64, 10, 10, 2); /* Koch's first */
}

static void pool_case(int n, int c, int h, int w, int size)
{
    sm_pool_shape s = {n, c, h, w, size, h / size, w / size};
    size_t nx = (size_t)n * c * h * w, ny = (size_t)n * c * s.oh * s.ow;
    float *hx = malloc(nx * sizeof *hx);
    for (size_t i = 0; i < nx; i++) hx[i] = (float)(int)urand(0, 4); /* many ties */
    hx[nx / 2] = NAN;
    float *hdy = rnd(ny, -1, 1);
    twin x = both(hx, nx * 4), y = both(NULL, ny * 4), am = both(NULL, ny * 4);
    twin dy = both(hdy, ny * 4), dx = both(NULL, nx * 4);
    assert_int_equal(OPS(cpu)->maxpool_fwd(cpu->ctx, &s, x.c, y.c, am.c), SM_OK);
    assert_int_equal(OPS(gpu)->maxpool_fwd(gpu->ctx, &s, x.g, y.g, am.g), SM_OK);
    int32_t *ac = get(cpu, am.c, ny * 4), *ag = get(gpu, am.g, ny * 4);
    assert_memory_equal(ac, ag, ny * 4); /* argmax: the same element, ties and NaN included */
    check_close("maxpool forward", y.c, y.g, ny, 0);
    assert_int_equal(OPS(cpu)->maxpool_bwd(cpu->ctx, &s, dy.c, am.c, dx.c), SM_OK);
    assert_int_equal(OPS(gpu)->maxpool_bwd(gpu->ctx, &s, dy.g, am.g, dx.g), SM_OK);
    check_close("maxpool backward", dx.c, dx.g, nx, 0);
    twin *all[] = {&x, &y, &am, &dy, &dx};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) twin_free(all[i]);
    free(ac), free(ag), free(hx), free(hdy);
}

static void pool_ops(void **state)
{
    (void)state;
    pool_case(2, 3, 9, 8, 2); /* odd height: the last row is dropped */
    pool_case(1, 4, 10, 11, 3);
}

/* GroupNorm: forward (y and the per-(image, group) statistics), backward (d(input), and dgamma,
 * dbeta accumulated onto what is there), and the GPU's results twice over: the same bits (its
 * sums are fixed-order block reductions). Groups of fewer and of more values than a block has
 * threads. */
static void groupnorm_case(int n, int c, int h, int w, int groups)
{
    sm_norm_shape s = {n, c, h, w, groups, 1e-5};
    size_t nx = (size_t)n * c * h * w, ns = 2 * (size_t)n * groups;
    float *hx = rnd(nx, -1, 3), *hg = rnd((size_t)c, 0.5f, 1.5f), *hb = rnd((size_t)c, -0.5f, 0.5f);
    float *hdy = rnd(nx, -1, 1), *hdg = rnd((size_t)c, -1, 1), *hdb = rnd((size_t)c, -1, 1);
    twin x = both(hx, nx * 4), g = both(hg, (size_t)c * 4), b = both(hb, (size_t)c * 4);
    twin y = both(NULL, nx * 4), st = both(NULL, ns * 4), dy = both(hdy, nx * 4);
    twin dx = both(NULL, nx * 4), dg = both(hdg, (size_t)c * 4), db = both(hdb, (size_t)c * 4);
    printf("# groupnorm %dx%dx%dx%d, %d groups\n", n, c, h, w, groups);
    assert_int_equal(OPS(cpu)->groupnorm_fwd(cpu->ctx, &s, x.c, g.c, b.c, y.c, st.c), SM_OK);
    assert_int_equal(OPS(gpu)->groupnorm_fwd(gpu->ctx, &s, x.g, g.g, b.g, y.g, st.g), SM_OK);
    check_close("groupnorm forward", y.c, y.g, nx, 1e-5);
    check_close("groupnorm statistics", st.c, st.g, ns, 1e-5);
    assert_int_equal(OPS(cpu)->groupnorm_bwd(cpu->ctx, &s, x.c, dy.c, g.c, st.c, dx.c, dg.c, db.c),
                     SM_OK);
    assert_int_equal(OPS(gpu)->groupnorm_bwd(gpu->ctx, &s, x.g, dy.g, g.g, st.g, dx.g, dg.g, db.g),
                     SM_OK);
    check_close("groupnorm backward-data", dx.c, dx.g, nx, 1e-5);
    check_close("groupnorm weight gradient (accumulated)", dg.c, dg.g, (size_t)c, 1e-5);
    check_close("groupnorm bias gradient (accumulated)", db.c, db.g, (size_t)c, 1e-5);
    /* once more on the GPU: the same bits (dgamma, dbeta reset to their first values) */
    float *y1 = get(gpu, y.g, nx * 4), *dx1 = get(gpu, dx.g, nx * 4), *dg1 = get(gpu, dg.g, c * 4);
    assert_int_equal(OPS(gpu)->upload(gpu->ctx, dg.g, hdg, (size_t)c * 4), SM_OK);
    assert_int_equal(OPS(gpu)->groupnorm_fwd(gpu->ctx, &s, x.g, g.g, b.g, y.g, st.g), SM_OK);
    assert_int_equal(OPS(gpu)->groupnorm_bwd(gpu->ctx, &s, x.g, dy.g, g.g, st.g, dx.g, dg.g, db.g),
                     SM_OK);
    float *y2 = get(gpu, y.g, nx * 4), *dx2 = get(gpu, dx.g, nx * 4), *dg2 = get(gpu, dg.g, c * 4);
    assert_memory_equal(y1, y2, nx * 4);
    assert_memory_equal(dx1, dx2, nx * 4);
    assert_memory_equal(dg1, dg2, (size_t)c * 4);
    twin *all[] = {&x, &g, &b, &y, &st, &dy, &dx, &dg, &db};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) twin_free(all[i]);
    free(hx), free(hg), free(hb), free(hdy), free(hdg), free(hdb);
    free(y1), free(dx1), free(dg1), free(y2), free(dx2), free(dg2);
}

static void groupnorm_ops(void **state)
{
    (void)state;
    groupnorm_case(3, 8, 12, 11, 4);   /* 264 values a group */
    groupnorm_case(2, 64, 48, 48, 32); /* 4608 a group, 2 x 2304 a channel */
    groupnorm_case(5, 6, 3, 3, 6);     /* 9 values a group: fewer than a block's threads */
}

static void eltwise_ops(void **state)
{
    (void)state;
    size_t n = 10007;
    float *hx = rnd(n, -30, 30), *hdy = rnd(n, -1, 1);
    hx[0] = 0.0f, hx[1] = 100.0f, hx[2] = -100.0f;
    twin x = both(hx, n * 4), y = both(NULL, n * 4), dy = both(hdy, n * 4), dx = both(NULL, n * 4);
    assert_int_equal(OPS(cpu)->relu_fwd(cpu->ctx, n, x.c, y.c), SM_OK);
    assert_int_equal(OPS(gpu)->relu_fwd(gpu->ctx, n, x.g, y.g), SM_OK);
    check_close("relu forward", y.c, y.g, n, 0);
    assert_int_equal(OPS(cpu)->relu_bwd(cpu->ctx, n, y.c, dy.c, dx.c), SM_OK);
    assert_int_equal(OPS(gpu)->relu_bwd(gpu->ctx, n, y.g, dy.g, dx.g), SM_OK);
    check_close("relu backward", dx.c, dx.g, n, 0);
    assert_int_equal(OPS(cpu)->sigmoid_fwd(cpu->ctx, n, x.c, y.c), SM_OK);
    assert_int_equal(OPS(gpu)->sigmoid_fwd(gpu->ctx, n, x.g, y.g), SM_OK);
    check_close("sigmoid forward", y.c, y.g, n, 1e-6);
    assert_int_equal(OPS(cpu)->sigmoid_bwd(cpu->ctx, n, y.c, dy.c, dx.c), SM_OK);
    assert_int_equal(OPS(gpu)->sigmoid_bwd(gpu->ctx, n, y.g, dy.g, dx.g), SM_OK);
    check_close("sigmoid backward", dx.c, dx.g, n, 1e-6);
    /* in place, as the core calls them */
    assert_int_equal(OPS(cpu)->relu_fwd(cpu->ctx, n, x.c, x.c), SM_OK);
    assert_int_equal(OPS(gpu)->relu_fwd(gpu->ctx, n, x.g, x.g), SM_OK);
    check_close("relu forward in place", x.c, x.g, n, 0);
    twin *all[] = {&x, &y, &dy, &dx};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) twin_free(all[i]);
    free(hx), free(hdy);
}

static void gemm_ops(void **state)
{
    (void)state;
    const int m = 7, n = 5, k = 9, pad = 3;
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) {
            int ar = ta ? k : m, ac = ta ? m : k, br = tb ? n : k, bc = tb ? k : n;
            int lda = ac + pad, ldb = bc + pad, ldc = n + pad;
            float *ha = rnd((size_t)ar * lda, -1, 1), *hb = rnd((size_t)br * ldb, -1, 1);
            float *hc = rnd((size_t)m * ldc, -1, 1);
            twin a = both(ha, (size_t)ar * lda * 4), b = both(hb, (size_t)br * ldb * 4);
            twin c = both(hc, (size_t)m * ldc * 4);
            assert_int_equal(
                OPS(cpu)->gemm(cpu->ctx, ta, tb, m, n, k, 0.7f, a.c, lda, b.c, ldb, 0.3f, c.c, ldc),
                SM_OK);
            assert_int_equal(
                OPS(gpu)->gemm(gpu->ctx, ta, tb, m, n, k, 0.7f, a.g, lda, b.g, ldb, 0.3f, c.g, ldc),
                SM_OK);
            char what[64];
            snprintf(what, sizeof what, "gemm %c%c (padded lds)", ta ? 'T' : 'N', tb ? 'T' : 'N');
            check_close(what, c.c, c.g, (size_t)m * ldc, 1e-5);
            twin_free(&a), twin_free(&b), twin_free(&c);
            free(ha), free(hb), free(hc);
        }
    /* the fc shapes of Koch's head at batch 64: 9216 -> 4096 */
    const int M = 64, N = 4096, K = 9216;
    float *ha = rnd((size_t)M * K, 0, 1), *hw = rnd((size_t)N * K, -0.01f, 0.01f);
    twin a = both(ha, (size_t)M * K * 4), w = both(hw, (size_t)N * K * 4);
    twin c = both(NULL, (size_t)M * N * 4);
    assert_int_equal(
        OPS(cpu)->gemm(cpu->ctx, false, true, M, N, K, 1.0f, a.c, K, w.c, K, 0.0f, c.c, N), SM_OK);
    assert_int_equal(
        OPS(gpu)->gemm(gpu->ctx, false, true, M, N, K, 1.0f, a.g, K, w.g, K, 0.0f, c.g, N), SM_OK);
    check_close("gemm NT 64x4096x9216", c.c, c.g, (size_t)M * N, 1e-5);
    twin_free(&a), twin_free(&w), twin_free(&c);
    free(ha), free(hw);
}

static void bias_and_head_ops(void **state)
{
    (void)state;
    const int rows = 6, cols = 37;
    size_t n = (size_t)rows * cols;
    float *hy = rnd(n, -1, 1), *hb = rnd((size_t)cols, -1, 1), *hz = rnd(n, -1, 1);
    hz[3] = hy[3]; /* |a - b| at 0: gradient 0 */
    twin y = both(hy, n * 4), b = both(hb, (size_t)cols * 4), z = both(hz, n * 4);
    twin d = both(NULL, n * 4), da = both(NULL, n * 4), db = both(NULL, n * 4);
    assert_int_equal(OPS(cpu)->bias_add(cpu->ctx, rows, cols, b.c, y.c), SM_OK);
    assert_int_equal(OPS(gpu)->bias_add(gpu->ctx, rows, cols, b.g, y.g), SM_OK);
    check_close("bias_add", y.c, y.g, n, 0);
    assert_int_equal(OPS(cpu)->bias_grad(cpu->ctx, rows, cols, y.c, b.c), SM_OK);
    assert_int_equal(OPS(gpu)->bias_grad(gpu->ctx, rows, cols, y.g, b.g), SM_OK);
    check_close("bias_grad (accumulated)", b.c, b.g, (size_t)cols, 1e-6);
    assert_int_equal(OPS(cpu)->absdiff_fwd(cpu->ctx, n, y.c, z.c, d.c), SM_OK);
    assert_int_equal(OPS(gpu)->absdiff_fwd(gpu->ctx, n, y.g, z.g, d.g), SM_OK);
    check_close("absdiff forward", d.c, d.g, n, 0);
    assert_int_equal(OPS(cpu)->absdiff_bwd(cpu->ctx, n, y.c, z.c, z.c, da.c, db.c), SM_OK);
    assert_int_equal(OPS(gpu)->absdiff_bwd(gpu->ctx, n, y.g, z.g, z.g, da.g, db.g), SM_OK);
    check_close("absdiff backward a", da.c, da.g, n, 0);
    check_close("absdiff backward b", db.c, db.g, n, 0);
    twin *all[] = {&y, &b, &z, &d, &da, &db};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) twin_free(all[i]);
    free(hy), free(hb), free(hz);
}

/* Gallery scores (l1_scores): the kernel keeps the CPU's summation order, so the bits must be
 * equal (tolerance 0), for every storage type, a dimension with a tail, and a row list. */
static void l1_scores_op(void **state)
{
    (void)state;
    static const size_t shapes[][3] = {{7, 45, 100}, {5, 33, 4096}, {1, 1, 3}};
    for (size_t k = 0; k < sizeof shapes / sizeof *shapes; k++)
        for (int dt = SM_ROWS_F32; dt <= SM_ROWS_U8; dt++) {
            const size_t nq = shapes[k][0], n = shapes[k][1], dim = shapes[k][2];
            const size_t es = dt == SM_ROWS_F32 ? 4 : dt == SM_ROWS_U8 ? 1 : 2;
            float *hq = rnd(nq * dim, 0, 1), *hw = rnd(dim + 1, -1, 1),
                  *hqp = rnd(2 * n, 0, 0.003f);
            uint8_t *hr = malloc(n * dim * es);
            int32_t *hidx = malloc(n * sizeof *hidx);
            assert_true(hr && hidx);
            for (size_t i = 0; i < n * dim; i++) {
                float f = urand(0, 1);
                uint32_t b;
                memcpy(&b, &f, 4);
                uint16_t h = dt == SM_ROWS_BF16 ? (uint16_t)(b >> 16) : (uint16_t)(b % 0x3c01);
                if (dt == SM_ROWS_F32) memcpy(hr + 4 * i, &f, 4);
                else if (dt == SM_ROWS_U8) hr[i] = (uint8_t)b;
                else memcpy(hr + 2 * i, &h, 2);
            }
            for (size_t i = 0; i < n; i++) hidx[i] = (int32_t)(n - 1 - i);
            twin q = both(hq, nq * dim * 4), w = both(hw, (dim + 1) * 4), qp = both(hqp, 2 * n * 4);
            twin r = both(hr, n * dim * es), idx = both(hidx, n * 4), o = both(NULL, nq * n * 4);
            for (int sub = 0; sub < 2; sub++) {
                sm_l1_shape s = {nq, n, dim, (sm_rows_dtype)dt, n};
                assert_int_equal(
                    OPS(cpu)->l1_scores(cpu->ctx, &s, q.c, r.c, qp.c, sub ? idx.c : NULL, w.c, o.c),
                    SM_OK);
                assert_int_equal(
                    OPS(gpu)->l1_scores(gpu->ctx, &s, q.g, r.g, qp.g, sub ? idx.g : NULL, w.g, o.g),
                    SM_OK);
                char what[64];
                snprintf(what, sizeof what, "l1_scores %zux%zux%zu type %d%s", nq, n, dim, dt,
                         sub ? " (list)" : "");
                check_close(what, o.c, o.g, nq * n, 0);
            }
            twin *all[] = {&q, &w, &qp, &r, &idx, &o};
            for (size_t i = 0; i < sizeof all / sizeof *all; i++) twin_free(all[i]);
            free(hq), free(hw), free(hqp), free(hr), free(hidx);
        }
}

static void bce_op(void **state)
{
    (void)state;
    const int n = 300; /* more than one block's threads */
    float *hz = rnd((size_t)n, -8, 8), *hl = malloc(n * sizeof *hl);
    for (int i = 0; i < n; i++) hl[i] = i % 3 == 0 ? 0.0f : (i % 3 == 1 ? 1.0f : 0.3f);
    hz[0] = 40.0f, hz[1] = -40.0f, hz[2] = 17.0f; /* the clip is active */
    twin z = both(hz, n * 4), l = both(hl, n * 4), s = both(NULL, n * 4);
    twin loss = both(NULL, 4), dz = both(NULL, n * 4);
    float scale = 1.0f / n;
    assert_int_equal(OPS(cpu)->bce_fwd_bwd(cpu->ctx, n, z.c, l.c, scale, s.c, loss.c, dz.c), SM_OK);
    assert_int_equal(OPS(gpu)->bce_fwd_bwd(gpu->ctx, n, z.g, l.g, scale, s.g, loss.g, dz.g), SM_OK);
    check_close("bce scores", s.c, s.g, (size_t)n, 1e-6);
    check_close("bce loss sum", loss.c, loss.g, 1, 1e-6);
    check_close("bce dlogits", dz.c, dz.g, (size_t)n, 1e-6);
    /* no gradient wanted: dlogits NULL, the loss still written; twice gives the same bits */
    float first, second;
    assert_int_equal(OPS(gpu)->bce_fwd_bwd(gpu->ctx, n, z.g, l.g, scale, s.g, loss.g, NULL), SM_OK);
    assert_int_equal(OPS(gpu)->download(gpu->ctx, &first, loss.g, 4), SM_OK);
    assert_int_equal(OPS(gpu)->bce_fwd_bwd(gpu->ctx, n, z.g, l.g, scale, s.g, loss.g, NULL), SM_OK);
    assert_int_equal(OPS(gpu)->download(gpu->ctx, &second, loss.g, 4), SM_OK);
    assert_memory_equal(&first, &second, 4);
    twin *all[] = {&z, &l, &s, &loss, &dz};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) twin_free(all[i]);
    free(hz), free(hl);
}

static void adam_and_finite_ops(void **state)
{
    (void)state;
    size_t n = 5000;
    float *hp = rnd(n, -0.1f, 0.1f), *hg = rnd(n, -1e-3f, 1e-3f);
    twin p = both(hp, n * 4), g = both(hg, n * 4), m = both(NULL, n * 4), v = both(NULL, n * 4);
    assert_int_equal(OPS(cpu)->zero(cpu->ctx, m.c, n * 4), SM_OK);
    assert_int_equal(OPS(cpu)->zero(cpu->ctx, v.c, n * 4), SM_OK);
    assert_int_equal(OPS(gpu)->zero(gpu->ctx, m.g, n * 4), SM_OK);
    assert_int_equal(OPS(gpu)->zero(gpu->ctx, v.g, n * 4), SM_OK);
    for (int t = 1; t <= 4; t++) {
        float step = (float)(6e-5 * sqrt(1 - pow(0.99, t)) / (1 - pow(0.9, t)));
        float wd = t > 2 ? 0.01f : 0.0f; /* both kernels: without and with L2 decay */
        assert_int_equal(
            OPS(cpu)->adam_update(cpu->ctx, n, p.c, g.c, m.c, v.c, step, 0.9f, 0.99f, 1e-8f, wd),
            SM_OK);
        assert_int_equal(
            OPS(gpu)->adam_update(gpu->ctx, n, p.g, g.g, m.g, v.g, step, 0.9f, 0.99f, 1e-8f, wd),
            SM_OK);
    }
    check_close("adam parameters (4 steps, 2 with decay)", p.c, p.g, n, 1e-6);
    check_close("adam m", m.c, m.g, n, 1e-6);
    check_close("adam v", v.c, v.g, n, 1e-6);

    size_t big = 100003;
    float *hx = rnd(big, -1, 1);
    twin x = both(hx, big * 4);
    bool fin = false;
    assert_int_equal(OPS(gpu)->all_finite(gpu->ctx, big, x.g, &fin), SM_OK);
    assert_true(fin);
    hx[big - 1] = NAN;
    assert_int_equal(OPS(gpu)->upload(gpu->ctx, x.g, hx, big * 4), SM_OK);
    assert_int_equal(OPS(gpu)->all_finite(gpu->ctx, big, x.g, &fin), SM_OK);
    assert_false(fin);
    hx[big - 1] = 0.0f, hx[big / 2] = INFINITY;
    assert_int_equal(OPS(gpu)->upload(gpu->ctx, x.g, hx, big * 4), SM_OK);
    assert_int_equal(OPS(gpu)->all_finite(gpu->ctx, big, x.g, &fin), SM_OK);
    assert_false(fin);
    twin *all[] = {&p, &g, &m, &v, &x};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) twin_free(all[i]);
    free(hp), free(hg), free(hx);
}

/* ---- whole networks ---- */

typedef struct model {
    sm_subnet *sub;
    sm_head *head;
    sm_adam *adam;
    sm_trainer *tr;
} model;

static void model_make(sm_backend *be, const sm_arch *arch, int64_t micro, model *m)
{
    assert_int_equal(sm_subnet_create(be, arch, 11, &m->sub), SM_OK);
    assert_int_equal(sm_head_create(be, sm_subnet_feature_dim(m->sub), 12, &m->head), SM_OK);
    assert_int_equal(sm_adam_create(m->sub, m->head, &m->adam), SM_OK);
    assert_int_equal(sm_trainer_create(m->sub, m->head, m->adam, NULL, 13, &m->tr), SM_OK);
    assert_int_equal(sm_trainer_set_param(m->tr, SM_TRAINER_MICRO_BATCH, micro), SM_OK);
}

static void model_free(model *m)
{
    sm_trainer_destroy(m->tr);
    sm_adam_destroy(m->adam);
    sm_head_destroy(m->head);
    sm_subnet_destroy(m->sub);
}

/* Per-tensor worst error of a subnet-sized and head-sized array pair. */
static double compare_model_arrays(const sm_subnet *s, const float *g, const float *c, size_t dim,
                                   const float *gh, const float *ch, const char *what)
{
    double worst = 0.0;
    for (size_t i = 0; i < s->arch.n_layers; i++) {
        const sm__layer *l = &s->arch.layers[i];
        if (!l->n_w) continue;
        double ew = rel_err(g + l->w_off, c + l->w_off, l->n_w);
        double eb = rel_err(g + l->b_off, c + l->b_off, l->n_b);
        printf("#   %s layer %zu: weight %.3g, bias %.3g\n", what, i, ew, eb);
        worst = fmax(worst, fmax(ew, eb));
    }
    double hw = rel_err(gh, ch, dim), hb = rel_err(gh + dim, ch + dim, 1);
    printf("#   %s head: weight %.3g, bias %.3g\n", what, hw, hb);
    return fmax(worst, fmax(hw, hb));
}

/* `tol_adam` bounds the parameters after the Adam steps: Adam divides each gradient by its own
 * magnitude, so a parameter whose gradient is almost zero moves by about +-lr on either backend,
 * in whichever direction rounding gives it; among millions of parameters a few such flips are
 * expected, worth 2 lr per step against weights of N(0, 0.01^2). */
static void network_case(const char *arch_text, size_t pairs, int64_t micro, double tol,
                         double tol_adam)
{
    sm_arch *arch = NULL;
    assert_int_equal(sm_arch_from_string(arch_text, &arch), SM_OK);
    size_t in = sm__arch_in_size(arch);
    float *left = rnd(pairs * in, 0, 1), *right = rnd(pairs * in, 0, 1);
    float *labels = malloc(pairs * sizeof *labels);
    for (size_t i = 0; i < pairs; i++) labels[i] = (float)(i % 2);
    model mc, mg;
    model_make(cpu, arch, micro, &mc);
    model_make(gpu, arch, micro, &mg);
    size_t ns = sm_subnet_num_params(mc.sub), dim = sm_subnet_feature_dim(mc.sub);
    float *sc = malloc(ns * 4), *sg = malloc(ns * 4), *hc = malloc((dim + 1) * 4),
          *hg = malloc((dim + 1) * 4);
    printf("# network %s, %zu pairs, micro-batch %lld\n", arch_text, pairs, (long long)micro);

    /* the initial weights come from the host RNG: identical */
    assert_int_equal(sm__subnet_read_params(mc.sub, sc), SM_OK);
    assert_int_equal(sm__subnet_read_params(mg.sub, sg), SM_OK);
    assert_memory_equal(sc, sg, ns * 4);

    float lc, lg;
    assert_int_equal(sm__trainer_compute_grads(mc.tr, pairs, left, right, labels, &lc), SM_OK);
    assert_int_equal(sm__trainer_compute_grads(mg.tr, pairs, left, right, labels, &lg), SM_OK);
    double el = fabs((double)lg - lc) / fabs((double)lc);
    printf("#   loss cpu %.7f cuda %.7f rel err %.3g\n", (double)lc, (double)lg, el);
    assert_true(el <= tol);
    assert_int_equal(sm__subnet_read_grads(mc.sub, sc), SM_OK);
    assert_int_equal(sm__subnet_read_grads(mg.sub, sg), SM_OK);
    assert_int_equal(sm__head_read_grads(mc.head, hc), SM_OK);
    assert_int_equal(sm__head_read_grads(mg.head, hg), SM_OK);
    double eg = compare_model_arrays(mc.sub, sg, sc, dim, hg, hc, "gradient");
    printf("#   worst gradient rel err (float32): %.3g\n", eg);
    if (!(eg <= tol)) fail_msg("gradients: relative error %g above %g", eg, tol);

    /* TF32: reported, with only a loose sanity bound (10 mantissa bits in the products) */
    assert_int_equal(sm_backend_set_option(gpu, SM_BACKEND_OPT_TF32, 1), SM_OK);
    float lt;
    assert_int_equal(sm__trainer_compute_grads(mg.tr, pairs, left, right, labels, &lt), SM_OK);
    assert_int_equal(sm__subnet_read_grads(mg.sub, sg), SM_OK);
    assert_int_equal(sm__head_read_grads(mg.head, hg), SM_OK);
    double et = compare_model_arrays(mc.sub, sg, sc, dim, hg, hc, "gradient TF32");
    printf("#   TF32: loss rel err %.3g, worst gradient rel err %.3g\n",
           fabs((double)lt - lc) / fabs((double)lc), et);
    assert_int_equal(sm_backend_set_option(gpu, SM_BACKEND_OPT_TF32, 0), SM_OK);
    assert_true(et < 0.1);

    /* three Adam steps on the same batch */
    for (int k = 0; k < 3; k++) {
        assert_int_equal(sm_train_step_batch(mc.tr, pairs, left, right, labels, &lc), SM_OK);
        assert_int_equal(sm_train_step_batch(mg.tr, pairs, left, right, labels, &lg), SM_OK);
        printf("#   step %d loss cpu %.7f cuda %.7f\n", k + 1, (double)lc, (double)lg);
        assert_true(fabs((double)lg - lc) <= tol * fabs((double)lc));
    }
    assert_int_equal(sm__subnet_read_params(mc.sub, sc), SM_OK);
    assert_int_equal(sm__subnet_read_params(mg.sub, sg), SM_OK);
    assert_int_equal(sm__head_read_params(mc.head, hc), SM_OK);
    assert_int_equal(sm__head_read_params(mg.head, hg), SM_OK);
    double ep = compare_model_arrays(mc.sub, sg, sc, dim, hg, hc, "params after 3 Adam steps");
    if (!(ep <= tol_adam))
        fail_msg("parameters after Adam: relative error %g above %g", ep, tol_adam);

    /* checkpoints: cuda -> cpu and cpu -> cuda, predictions agree */
    char path[] = "/tmp/sm-cuda-parity-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    float *pg = malloc(pairs * 4), *pc = malloc(pairs * 4);
    for (int dir = 0; dir < 2; dir++) {
        model *from = dir ? &mc : &mg;
        sm_backend *to = dir ? gpu : cpu;
        assert_int_equal(sm_model_save(from->sub, from->head, path), SM_OK);
        sm_subnet *ls = NULL;
        sm_head *lh = NULL;
        assert_int_equal(sm_model_load(to, path, &ls, &lh), SM_OK);
        assert_int_equal(sm_predict_pairs(from->sub, from->head, pairs, left, right, pg), SM_OK);
        assert_int_equal(sm_predict_pairs(ls, lh, pairs, left, right, pc), SM_OK);
        double e = rel_err(pc, pg, pairs);
        printf("#   checkpoint %s: prediction rel err %.3g\n", dir ? "cpu -> cuda" : "cuda -> cpu",
               e);
        assert_true(e <= tol);
        sm_head_destroy(lh);
        sm_subnet_destroy(ls);
    }
    unlink(path);
    model_free(&mc);
    model_free(&mg);
    sm_arch_destroy(arch);
    free(left), free(right), free(labels), free(sc), free(sg), free(hc), free(hg), free(pg),
        free(pc);
}

static void small_network(void **state)
{
    (void)state;
    network_case("1x28x28:conv8k5,relu,pool2,conv16k3,relu,pool2,flatten,fc32", 10, 4, 1e-4, 1e-3);
}

/* GroupNorm before relu + pool, and before relu + pool once more */
static void groupnorm_network(void **state)
{
    (void)state;
    network_case("1x28x28:conv8k5,gn4,relu,pool2,conv16k3,gn8,relu,pool2,flatten,fc32", 10, 4, 1e-4,
                 1e-3);
}

static void koch_network(void **state)
{
    (void)state;
    network_case("koch", 6, 4, 1e-4, 1e-2); /* chunks of 4 and 2 pairs */
}

/* The library's log: each conv plan's chosen cuDNN algorithm, math type, workspace and expected
 * tolerance, so that a parity failure can be explained from this output alone. */
static void on_log(void *user, sm_log_level level, const char *message)
{
    (void)user;
    (void)level;
    printf("# log: %s\n", message);
}

int main(void)
{
    sm_set_log_callback(on_log, NULL, SM_LOG_INFO);
    if (sm_backend_probe(SM_BACKEND_CUDA) != SM_OK) {
        fprintf(stderr, "SKIPPED: cuda backend not usable here: %s\n", sm_last_error());
        return 77;
    }
    if (sm_backend_create(SM_BACKEND_CPU, &cpu) != SM_OK ||
        sm_backend_create(SM_BACKEND_CUDA, &gpu) != SM_OK) {
        fprintf(stderr, "cannot create the backends: %s\n", sm_last_error());
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(memory_ops),
        cmocka_unit_test(conv_ops),
        cmocka_unit_test(pool_ops),
        cmocka_unit_test(groupnorm_ops),
        cmocka_unit_test(eltwise_ops),
        cmocka_unit_test(gemm_ops),
        cmocka_unit_test(bias_and_head_ops),
        cmocka_unit_test(l1_scores_op),
        cmocka_unit_test(bce_op),
        cmocka_unit_test(adam_and_finite_ops),
        cmocka_unit_test(small_network),
        cmocka_unit_test(groupnorm_network),
        cmocka_unit_test(koch_network),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    printf("# worst op rel err: %.3g\n", worst_err);
    sm_backend_destroy(gpu);
    sm_backend_destroy(cpu);
    return rc;
}
