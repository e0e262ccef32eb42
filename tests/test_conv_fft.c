/* SPDX-License-Identifier: MIT */
/* cpu-dnnl's frequency-domain convolutions (backends/cpu-dnnl/conv_fft.c) against a
 * double-precision oracle, beside oneDNN's direct ones on the same data: the three directions
 * on the reference network's layer shapes and on odd sizes, batches across the FFT's chunk of
 * 32 images, accumulation into dw and db, and the cached kernel spectrum noticing new weights.
 * Prints each tensor's relative error (max |got - want| / max |want|), the figures
 * docs/performance.md quotes, and fails when FFT's exceeds TOL. */
#include <math.h>
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
#include "network/network.h"
#include "ref_ops.h"
#include "siamese/siamese.h"

/* float32 transforms of up to 105 points and products over up to 128 channels: about 100
 * times float32's epsilon, well inside what the gradient and reference checks allow */
#define TOL 2e-5

static sm_backend *be;
static unsigned seed_state = 777;

typedef struct shape {
    int n, c, h, w, k, kh, kw;
} shape;

static double *rnd(size_t n)
{
    double *p = malloc((n ? n : 1) * sizeof *p);
    assert_non_null(p);
    ref_fill_uniform(&seed_state, -1.0, 1.0, n, p);
    return p;
}

static float *to_dev(const double *h, size_t n) { return test_to_dev(be, h, n); }

static void from_dev(const float *d, size_t n, double *h) { test_from_dev(be, d, n, h); }

/* dx = full convolution of dy with w; dw = correlation of x with dy; db = sum dy (double) */
static void ref_backward(const shape *s, const double *x, const double *w, const double *dy,
                         double *dx, double *dw, double *db)
{
    int oh = s->h - s->kh + 1, ow = s->w - s->kw + 1;
    memset(dx, 0, sizeof *dx * (size_t)s->n * s->c * s->h * s->w);
    memset(dw, 0, sizeof *dw * (size_t)s->k * s->c * s->kh * s->kw);
    memset(db, 0, sizeof *db * (size_t)s->k);
    for (int n = 0; n < s->n; n++)
        for (int k = 0; k < s->k; k++)
            for (int i = 0; i < oh; i++)
                for (int j = 0; j < ow; j++) {
                    double g = dy[(((size_t)n * s->k + k) * oh + i) * ow + j];
                    db[k] += g;
                    for (int c = 0; c < s->c; c++)
                        for (int p = 0; p < s->kh; p++)
                            for (int q = 0; q < s->kw; q++) {
                                size_t xi = (((size_t)n * s->c + c) * s->h + i + p) * s->w + j + q;
                                size_t wi = (((size_t)k * s->c + c) * s->kh + p) * s->kw + q;
                                dx[xi] += w[wi] * g;
                                dw[wi] += x[xi] * g;
                            }
                }
}

typedef struct errs {
    double y, dx, dw, db;
} errs;

/* One algorithm on the backend; dw and db start from `dw0`, `db0` (accumulation). */
static errs run(const shape *s, int algo, const double *x, const double *w, const double *b,
                const double *dy, const double *dw0, const double *db0, const double *y_want,
                const double *dx_want, const double *dw_want, const double *db_want)
{
    assert_int_equal(sm_backend_set_option(be, SM_BACKEND_OPT_CONV_ALGO, algo), SM_OK);
    sm_conv_shape cs = {
        s->n, s->c, s->h, s->w, s->k, s->kh, s->kw, s->h - s->kh + 1, s->w - s->kw + 1, 0};
    size_t nx = (size_t)s->n * s->c * s->h * s->w, nw = (size_t)s->k * s->c * s->kh * s->kw;
    size_t ny = (size_t)s->n * s->k * cs.oh * cs.ow;
    float *dx_ = to_dev(x, nx), *dw_ = to_dev(w, nw), *db_ = to_dev(b, (size_t)s->k);
    float *ddy = to_dev(dy, ny), *dy_ = to_dev(dy, ny);
    float *ddx = to_dev(x, nx), *ddw = to_dev(dw0, nw), *ddb = to_dev(db0, (size_t)s->k);
    size_t wsb = be->ops->conv_workspace(be->ctx, &cs);
    void *ws = NULL;
    if (wsb) assert_int_equal(be->ops->alloc(be->ctx, wsb, &ws), SM_OK);
    assert_int_equal(be->ops->conv_fwd(be->ctx, &cs, dx_, dw_, db_, dy_, ws, wsb), SM_OK);
    assert_int_equal(be->ops->conv_bwd_data(be->ctx, &cs, ddy, dw_, ddx, ws, wsb), SM_OK);
    assert_int_equal(be->ops->conv_bwd_filter(be->ctx, &cs, dx_, ddy, ddw, ddb, ws, wsb), SM_OK);
    double *y = malloc(ny * sizeof *y), *dx = malloc(nx * sizeof *dx);
    double *dw = malloc(nw * sizeof *dw), *db = malloc((size_t)s->k * sizeof *db);
    from_dev(dy_, ny, y), from_dev(ddx, nx, dx), from_dev(ddw, nw, dw);
    from_dev(ddb, (size_t)s->k, db);
    errs e = {ref_rel_err(y, y_want, ny), ref_rel_err(dx, dx_want, nx),
              ref_rel_err(dw, dw_want, nw), ref_rel_err(db, db_want, (size_t)s->k)};
    free(y), free(dx), free(dw), free(db);
    be->ops->free(be->ctx, ws);
    float *all[] = {dx_, dw_, db_, ddy, dy_, ddx, ddw, ddb};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) be->ops->free(be->ctx, all[i]);
    return e;
}

static void check(const shape *s)
{
    int oh = s->h - s->kh + 1, ow = s->w - s->kw + 1;
    size_t nx = (size_t)s->n * s->c * s->h * s->w, nw = (size_t)s->k * s->c * s->kh * s->kw;
    size_t ny = (size_t)s->n * s->k * oh * ow;
    double *x = rnd(nx), *w = rnd(nw), *b = rnd((size_t)s->k), *dy = rnd(ny);
    double *dw0 = rnd(nw), *db0 = rnd((size_t)s->k);
    double *y = malloc(ny * sizeof *y), *dx = malloc(nx * sizeof *dx);
    double *dw = malloc(nw * sizeof *dw), *db = malloc((size_t)s->k * sizeof *db);
    ref_conv(s->n, s->c, s->h, s->w, s->k, s->kh, s->kw, x, w, b, y);
    ref_backward(s, x, w, dy, dx, dw, db);
    for (size_t i = 0; i < nw; i++) dw[i] += (double)(float)dw0[i];
    for (int i = 0; i < s->k; i++) db[i] += (double)(float)db0[i];
    errs d = run(s, SM_CONV_ALGO_DIRECT, x, w, b, dy, dw0, db0, y, dx, dw, db);
    errs f = run(s, SM_CONV_ALGO_FFT, x, w, b, dy, dw0, db0, y, dx, dw, db);
    print_message("%3d x %3dx%3dx%3d -> %3d, %2dx%-2d | direct: y %.2e dx %.2e dw %.2e db %.2e | "
                  "fft: y %.2e dx %.2e dw %.2e db %.2e\n",
                  s->n, s->c, s->h, s->w, s->k, s->kh, s->kw, d.y, d.dx, d.dw, d.db, f.y, f.dx,
                  f.dw, f.db);
    assert_true(f.y < TOL && f.dx < TOL && f.dw < TOL && f.db < TOL);
    free(x), free(w), free(b), free(dy), free(dw0), free(db0);
    free(y), free(dx), free(dw), free(db);
}

static void reference_layers(void **state)
{
    (void)state;
    /* the reference network's four convolutions, at two images (conv2 is the one FFT is for) */
    const shape s[] = {{2, 1, 105, 105, 64, 10, 10},
                       {2, 64, 48, 48, 128, 7, 7},
                       {2, 128, 21, 21, 128, 4, 4},
                       {2, 128, 9, 9, 256, 5, 5}};
    for (size_t i = 0; i < sizeof s / sizeof *s; i++) check(&s[i]);
}

static void odd_sizes_and_chunks(void **state)
{
    (void)state;
    /* odd and unequal sides (no Nyquist column), a kernel as large as the input, and batches
     * that cross the FFT's 32-image chunk with a tail */
    const shape s[] = {{3, 3, 13, 11, 5, 5, 3},
                       {2, 2, 7, 9, 3, 7, 9},
                       {37, 4, 12, 12, 6, 3, 3},
                       {70, 2, 10, 8, 3, 4, 4}};
    for (size_t i = 0; i < sizeof s / sizeof *s; i++) check(&s[i]);
}

/* The kernel's spectrum is cached across calls; new weights in the same buffer must be seen. */
static void cached_spectrum_sees_new_weights(void **state)
{
    (void)state;
    assert_int_equal(sm_backend_set_option(be, SM_BACKEND_OPT_CONV_ALGO, SM_CONV_ALGO_FFT), SM_OK);
    shape s = {2, 3, 10, 10, 4, 3, 3};
    sm_conv_shape cs = {2, 3, 10, 10, 4, 3, 3, 8, 8, 0};
    size_t nx = 600, nw = 108, ny = 512;
    double *x = rnd(nx), *w1 = rnd(nw), *w2 = rnd(nw), *b = rnd(4);
    double *want = malloc(ny * sizeof *want), *got = malloc(ny * sizeof *got);
    float *dx = to_dev(x, nx), *dw = to_dev(w1, nw), *db = to_dev(b, 4), *dy = to_dev(x, ny);
    size_t wsb = be->ops->conv_workspace(be->ctx, &cs);
    void *ws = NULL;
    assert_int_equal(be->ops->alloc(be->ctx, wsb, &ws), SM_OK);
    assert_int_equal(be->ops->conv_fwd(be->ctx, &cs, dx, dw, db, dy, ws, wsb), SM_OK);
    /* only one weight changes: the spectrum must still be made again */
    w2[0] = w1[0] + 0.5;
    for (size_t i = 1; i < nw; i++) w2[i] = w1[i];
    float v = (float)w2[0];
    assert_int_equal(be->ops->upload(be->ctx, dw, &v, sizeof v), SM_OK);
    assert_int_equal(be->ops->conv_fwd(be->ctx, &cs, dx, dw, db, dy, ws, wsb), SM_OK);
    from_dev(dy, ny, got);
    double *w2f = malloc(nw * sizeof *w2f);
    for (size_t i = 0; i < nw; i++) w2f[i] = (float)w2[i];
    ref_conv(s.n, s.c, s.h, s.w, s.k, s.kh, s.kw, x, w2f, b, want);
    assert_true(ref_rel_err(got, want, ny) < TOL);
    be->ops->free(be->ctx, ws);
    be->ops->free(be->ctx, dx), be->ops->free(be->ctx, dw), be->ops->free(be->ctx, db);
    be->ops->free(be->ctx, dy);
    free(x), free(w1), free(w2), free(w2f), free(b), free(want), free(got);
}

/* Backward-filter then backward-data on one dy reuses dy's spectrum; a dy changed in between
 * (same buffer, same workspace) must not be. */
static void dy_spectrum_reuse_sees_new_dy(void **state)
{
    (void)state;
    assert_int_equal(sm_backend_set_option(be, SM_BACKEND_OPT_CONV_ALGO, SM_CONV_ALGO_FFT), SM_OK);
    shape s = {3, 4, 11, 11, 5, 3, 3};
    sm_conv_shape cs = {3, 4, 11, 11, 5, 3, 3, 9, 9, 0};
    size_t nx = 3 * 4 * 121, nw = 5 * 4 * 9, ny = 3 * 5 * 81;
    double *x = rnd(nx), *w = rnd(nw), *dy1 = rnd(ny), *dy2 = rnd(ny), *zeros = calloc(nw, 8);
    double *dx = malloc(nx * sizeof *dx), *dwr = malloc(nw * sizeof *dwr), db[5];
    double *got = malloc(nx * sizeof *got);
    float *d_x = to_dev(x, nx), *d_w = to_dev(w, nw), *d_dy = to_dev(dy1, ny);
    float *d_dx = to_dev(x, nx), *d_dw = to_dev(zeros, nw), *d_db = to_dev(zeros, 5);
    size_t wsb = be->ops->conv_workspace(be->ctx, &cs);
    void *ws = NULL;
    assert_int_equal(be->ops->alloc(be->ctx, wsb, &ws), SM_OK);
    for (int round = 0; round < 2; round++) {
        const double *dy = round ? dy2 : dy1;
        assert_int_equal(be->ops->conv_bwd_filter(be->ctx, &cs, d_x, d_dy, d_dw, d_db, ws, wsb),
                         SM_OK);
        if (round) { /* the same buffer now holds other values */
            float *tmp = malloc(ny * sizeof *tmp);
            for (size_t i = 0; i < ny; i++) tmp[i] = (float)dy2[i];
            assert_int_equal(be->ops->upload(be->ctx, d_dy, tmp, ny * sizeof *tmp), SM_OK);
            free(tmp);
        }
        assert_int_equal(be->ops->conv_bwd_data(be->ctx, &cs, d_dy, d_w, d_dx, ws, wsb), SM_OK);
        from_dev(d_dx, nx, got);
        double *dyf = malloc(ny * sizeof *dyf), *wf = malloc(nw * sizeof *wf);
        for (size_t i = 0; i < ny; i++) dyf[i] = (float)dy[i];
        for (size_t i = 0; i < nw; i++) wf[i] = (float)w[i];
        ref_backward(&s, x, wf, dyf, dx, dwr, db);
        assert_true(ref_rel_err(got, dx, nx) < TOL);
        free(dyf), free(wf);
    }
    be->ops->free(be->ctx, ws);
    float *all[] = {d_x, d_w, d_dy, d_dx, d_dw, d_db};
    for (size_t i = 0; i < 6; i++) be->ops->free(be->ctx, all[i]);
    free(x), free(w), free(dy1), free(dy2), free(zeros), free(dx), free(dwr), free(got);
}

int main(void)
{
    if (sm_backend_create(SM_BACKEND_CPU_DNNL, &be) != SM_OK) {
        printf("SKIPPED: *** the cpu-dnnl backend is not available, so the FFT convolution "
               "checks did NOT run: %s ***\n",
               sm_last_error());
        return 77;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(reference_layers),
        cmocka_unit_test(odd_sizes_and_chunks),
        cmocka_unit_test(cached_spectrum_sees_new_weights),
        cmocka_unit_test(dy_spectrum_reuse_sees_new_dy),
    };
    int failed = cmocka_run_group_tests_name("conv_fft", tests, NULL, NULL);
    sm_backend_destroy(be);
    return failed;
}
