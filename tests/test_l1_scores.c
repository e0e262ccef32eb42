/* SPDX-License-Identifier: MIT */
/* The l1_scores op (backend_plugin.h): the head's logit of many queries against many stored rows
 * in one fixed summation order. Checked here: the values against a double-precision reference
 * within a bound of float rounding, for every storage type; and the bits, which must not depend
 * on the number of queries in the call (1 vs all), a row subset given by index, the output
 * stride, the thread count (1, 2, 3) or the instruction set (C, AVX2, AVX-512, each forced
 * through SIAMESE_L1_ISA where the CPU has it), nor on the backend: cpu-dnnl compiles the same
 * loops and must agree, and so must the cuda kernel where a GPU is usable (skipped loudly here
 * otherwise). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../backends/cpu-blas/cpu_internal.h"
#include "backend/backend.h"
#include "siamese/siamese.h"

static uint64_t rng = 0x243f6a8885a308d3ull;
static uint32_t next32(void)
{
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (uint32_t)(rng >> 32);
}
static float unit(void) { return (float)(next32() >> 8) / 16777216.0f; }

static size_t esize(sm_rows_dtype dt) { return dt == SM_ROWS_F32 ? 4 : dt == SM_ROWS_U8 ? 1 : 2; }

/* The value a stored element stands for, in double (independent of the op's decoders). */
static double ref_value(sm_rows_dtype dt, const uint8_t *row, size_t d, const float *qp)
{
    uint16_t h;
    uint32_t b;
    float f;
    switch (dt) {
    case SM_ROWS_F32: memcpy(&f, row + 4 * d, 4); return f;
    case SM_ROWS_BF16:
        memcpy(&h, row + 2 * d, 2);
        b = (uint32_t)h << 16;
        memcpy(&f, &b, 4);
        return f;
    case SM_ROWS_F16: {
        memcpy(&h, row + 2 * d, 2);
        int e = (h >> 10) & 31, m = h & 1023;
        double v = e ? ldexp(1024 + m, e - 25) : ldexp(m, -24);
        return (h & 0x8000) ? -v : v;
    }
    case SM_ROWS_U8: return (double)fmaf((float)row[d], qp[1], qp[0]);
    }
    return 0;
}

/* Random rows of a type: f32 in [0, 1], bf16 and f16 bit patterns in [0, 1], u8 bytes with a
 * per-row offset and scale as a gallery writes them. */
static void random_rows(sm_rows_dtype dt, size_t n, size_t dim, uint8_t *rows, float *qp)
{
    for (size_t r = 0; r < n; r++) {
        uint8_t *p = rows + r * dim * esize(dt);
        qp[2 * r] = 0.25f * unit(), qp[2 * r + 1] = (1.0f - qp[2 * r]) / 255.0f * unit();
        for (size_t d = 0; d < dim; d++) {
            float f = unit();
            uint32_t b;
            uint16_t h;
            memcpy(&b, &f, 4);
            switch (dt) {
            case SM_ROWS_F32: memcpy(p + 4 * d, &f, 4); break;
            case SM_ROWS_BF16: h = (uint16_t)(b >> 16), memcpy(p + 2 * d, &h, 2); break;
            case SM_ROWS_F16:
                h = (uint16_t)(next32() % 0x3c01); /* 0 .. 1.0 in binary16, subnormals too */
                memcpy(p + 2 * d, &h, 2);
                break;
            case SM_ROWS_U8: p[d] = (uint8_t)next32(); break;
            }
        }
    }
}

typedef struct problem {
    sm_rows_dtype dt;
    size_t nq, n, dim;
    float *q, *w, *qp; /* host */
    uint8_t *rows;
    int32_t *idx; /* a subset: every third row, backwards */
    size_t n_idx;
} problem;

static void problem_make(problem *p, sm_rows_dtype dt, size_t nq, size_t n, size_t dim)
{
    memset(p, 0, sizeof *p);
    p->dt = dt, p->nq = nq, p->n = n, p->dim = dim;
    p->q = malloc(nq * dim * sizeof *p->q);
    p->w = malloc((dim + 1) * sizeof *p->w);
    p->qp = malloc(2 * n * sizeof *p->qp);
    p->rows = malloc(n * dim * esize(dt));
    p->idx = malloc(n * sizeof *p->idx);
    assert_true(p->q && p->w && p->qp && p->rows && p->idx);
    for (size_t i = 0; i < nq * dim; i++) p->q[i] = unit();
    /* weights of both signs and a spread of sizes, as a trained head has */
    for (size_t d = 0; d <= dim; d++) p->w[d] = (unit() - 0.3f) * (d % 5 ? 1.0f : 8.0f);
    random_rows(dt, n, dim, p->rows, p->qp);
    for (size_t i = n; i-- > 0;)
        if (i % 3 == 1) p->idx[p->n_idx++] = (int32_t)i;
}

static void problem_free(problem *p)
{
    free(p->q), free(p->w), free(p->qp), free(p->rows), free(p->idx);
}

static void *to_dev(sm_backend *be, const void *h, size_t bytes)
{
    void *d = NULL;
    assert_int_equal(be->ops->alloc(be->ctx, bytes ? bytes : 1, &d), SM_OK);
    assert_int_equal(be->ops->upload(be->ctx, d, h, bytes), SM_OK);
    return d;
}

/* out (host, nq x ld) = the op on `be` for queries [q0, q0 + nq) against all rows or the
 * subset; ld >= rows scored. */
static void run(sm_backend *be, const problem *p, size_t q0, size_t nq, int subset, size_t ld,
                float *out)
{
    const size_t n = subset ? p->n_idx : p->n;
    float *dq = to_dev(be, p->q + q0 * p->dim, nq * p->dim * sizeof(float));
    float *dw = to_dev(be, p->w, (p->dim + 1) * sizeof(float));
    float *dqp = to_dev(be, p->qp, 2 * p->n * sizeof(float));
    void *drows = to_dev(be, p->rows, p->n * p->dim * esize(p->dt));
    int32_t *didx = subset ? to_dev(be, p->idx, p->n_idx * sizeof(int32_t)) : NULL;
    float *dout = NULL;
    assert_int_equal(sm__be_alloc_floats(be, nq * ld, &dout), SM_OK);
    sm_l1_shape s = {nq, n, p->dim, p->dt, ld};
    assert_int_equal(
        sm__be_l1_scores(be, &s, dq, drows, p->dt == SM_ROWS_U8 ? dqp : NULL, didx, dw, dout),
        SM_OK);
    float *tmp = malloc(nq * ld * sizeof *tmp);
    assert_non_null(tmp);
    assert_int_equal(be->ops->download(be->ctx, tmp, dout, nq * ld * sizeof(float)), SM_OK);
    for (size_t i = 0; i < nq; i++) memcpy(out + i * n, tmp + i * ld, n * sizeof(float));
    free(tmp);
    sm__be_free(be, dq), sm__be_free(be, dw), sm__be_free(be, dqp), sm__be_free(be, drows);
    sm__be_free(be, didx), sm__be_free(be, dout);
}

/* Every logit against the double-precision sum, within the float rounding of 16-lane sums:
 * at most (dim / 16 + 5) roundings of partial sums bounded by the sum of |terms|. */
static void check_reference(const problem *p, const float *out)
{
    for (size_t q = 0; q < p->nq; q++)
        for (size_t i = 0; i < p->n; i++) {
            const uint8_t *row = p->rows + i * p->dim * esize(p->dt);
            double z = p->w[p->dim], mag = fabs(p->w[p->dim]);
            for (size_t d = 0; d < p->dim; d++) {
                double t = p->w[d] * fabs((double)p->q[q * p->dim + d] -
                                          ref_value(p->dt, row, d, p->qp + 2 * i));
                z += t, mag += fabs(t);
            }
            double tol = ((double)p->dim / 16 + 5) * 2 * 0x1p-24 * mag + 1e-30;
            double got = out[q * p->n + i];
            if (!(fabs(got - z) <= tol))
                fail_msg("dtype %d dim %zu: logit (%zu, %zu) = %.9g, reference %.9g (tol %.3g)",
                         (int)p->dt, p->dim, q, i, got, z, tol);
        }
}

static int n_isas(void)
{
    unsetenv("SIAMESE_L1_ISA");
    return sm__cpu_l1_isa() + 1;
}

static const char *isa_names[] = {"c", "avx2", "avx512"};

/* All the ways one backend may compute a problem, each bit-identical to `want` (nq x n, and
 * nq x n_idx for the subset, which must also equal `want`'s columns). */
static void check_backend(sm_backend *be, const problem *p, const float *want, int cpu)
{
    const size_t n = p->n, ni = p->n_idx;
    float *got = malloc(p->nq * n * sizeof *got), *sub = malloc(p->nq * (ni ? ni : 1) * 4);
    assert_true(got && sub);
    const int isas = cpu ? n_isas() : 1, threads[] = {1, 2, 3};
    for (int isa = 0; isa < isas; isa++)
        for (int t = 0; t < (cpu ? 3 : 1); t++) {
            if (cpu) {
                setenv("SIAMESE_L1_ISA", isa_names[isa], 1);
                assert_int_equal(sm_backend_set_threads(be, threads[t]), SM_OK);
            }
            /* all queries at once, with a wider output stride */
            run(be, p, 0, p->nq, 0, n + 3, got);
            if (memcmp(got, want, p->nq * n * sizeof *got))
                fail_msg("%s dtype %d dim %zu isa %s threads %d: Q = %zu differs", be->ops->name,
                         (int)p->dt, p->dim, isa_names[isa], threads[t], p->nq);
            /* one query at a time */
            for (size_t q = 0; q < p->nq; q++) {
                run(be, p, q, 1, 0, n, got);
                if (memcmp(got, want + q * n, n * sizeof *got))
                    fail_msg("%s dtype %d dim %zu isa %s threads %d: query %zu alone differs",
                             be->ops->name, (int)p->dt, p->dim, isa_names[isa], threads[t], q);
            }
            /* a subset of the rows, by index */
            if (ni) {
                run(be, p, 0, p->nq, 1, ni, sub);
                for (size_t q = 0; q < p->nq; q++)
                    for (size_t k = 0; k < ni; k++)
                        if (memcmp(&sub[q * ni + k], &want[q * n + (size_t)p->idx[k]], 4))
                            fail_msg("%s dtype %d dim %zu isa %s: row %d by index differs",
                                     be->ops->name, (int)p->dt, p->dim, isa_names[isa], p->idx[k]);
            }
        }
    unsetenv("SIAMESE_L1_ISA");
    free(got), free(sub);
}

typedef struct shape {
    size_t nq, n, dim;
} shape;

static const shape shapes[] = {
    {1, 1, 1},     {3, 5, 7},    {9, 13, 16},  {6, 19, 33},
    {17, 22, 130}, {5, 9, 4096}, {64, 11, 65}, {7, 70, 700},
};

static void test_cpu_paths_agree(void **state)
{
    (void)state;
    sm_backend *be = NULL, *dnnl = NULL;
    assert_int_equal(sm_backend_create(SM_BACKEND_CPU, &be), SM_OK);
    if (sm_backend_probe(SM_BACKEND_CPU_DNNL) == SM_OK)
        assert_int_equal(sm_backend_create(SM_BACKEND_CPU_DNNL, &dnnl), SM_OK);
    else printf("SKIPPED (part): cpu-dnnl is not available: %s\n", sm_last_error());
    printf("instruction sets checked on this CPU:");
    for (int i = 0; i < n_isas(); i++) printf(" %s", isa_names[i]);
    printf("\n");
    for (size_t k = 0; k < sizeof shapes / sizeof *shapes; k++)
        for (int dt = SM_ROWS_F32; dt <= SM_ROWS_U8; dt++) {
            problem p;
            problem_make(&p, (sm_rows_dtype)dt, shapes[k].nq, shapes[k].n, shapes[k].dim);
            float *want = malloc(p.nq * p.n * sizeof *want);
            assert_non_null(want);
            setenv("SIAMESE_L1_ISA", "c", 1);
            assert_int_equal(sm_backend_set_threads(be, 1), SM_OK);
            run(be, &p, 0, p.nq, 0, p.n, want);
            unsetenv("SIAMESE_L1_ISA");
            check_reference(&p, want);
            check_backend(be, &p, want, 1);
            if (dnnl) check_backend(dnnl, &p, want, 1);
            free(want);
            problem_free(&p);
        }
    sm_backend_destroy(dnnl);
    sm_backend_destroy(be);
}

/* The cuda kernel keeps the CPU's order: the same bits. */
static void test_cuda_agrees(void **state)
{
    (void)state;
    if (sm_backend_probe(SM_BACKEND_CUDA) != SM_OK) {
        printf("SKIPPED: *** no usable GPU, so the cuda kernel's agreement with the CPU was NOT "
               "checked: %s ***\n",
               sm_last_error());
        skip();
    }
    sm_backend *cpu = NULL, *gpu = NULL;
    assert_int_equal(sm_backend_create(SM_BACKEND_CPU, &cpu), SM_OK);
    assert_int_equal(sm_backend_create(SM_BACKEND_CUDA, &gpu), SM_OK);
    for (size_t k = 0; k < sizeof shapes / sizeof *shapes; k++)
        for (int dt = SM_ROWS_F32; dt <= SM_ROWS_U8; dt++) {
            problem p;
            problem_make(&p, (sm_rows_dtype)dt, shapes[k].nq, shapes[k].n, shapes[k].dim);
            float *want = malloc(p.nq * p.n * sizeof *want);
            assert_non_null(want);
            run(cpu, &p, 0, p.nq, 0, p.n, want);
            check_backend(gpu, &p, want, 0);
            free(want);
            problem_free(&p);
        }
    sm_backend_destroy(gpu);
    sm_backend_destroy(cpu);
}

/* Bad shapes are refused by the dispatch layer, before any backend sees them. */
static void test_bad_shapes(void **state)
{
    (void)state;
    sm_backend *be = NULL;
    assert_int_equal(sm_backend_create(SM_BACKEND_CPU, &be), SM_OK);
    float q[4] = {0}, w[5] = {0}, out[4];
    float rows[4] = {0}; /* one row of 4 floats */
    sm_l1_shape s = {1, 1, 4, SM_ROWS_F32, 1};
    assert_int_equal(sm__be_l1_scores(be, &s, q, rows, NULL, NULL, w, out), SM_OK);
    s.ld_out = 0;
    assert_int_equal(sm__be_l1_scores(be, &s, q, rows, NULL, NULL, w, out), SM_ERR_INVALID_ARG);
    s = (sm_l1_shape){1, 1, 4, SM_ROWS_U8, 1};
    assert_int_equal(sm__be_l1_scores(be, &s, q, rows, NULL, NULL, w, out), SM_ERR_INVALID_ARG);
    s = (sm_l1_shape){1, 1, 0, SM_ROWS_F32, 1};
    assert_int_equal(sm__be_l1_scores(be, &s, q, rows, NULL, NULL, w, out), SM_ERR_INVALID_ARG);
    s = (sm_l1_shape){1, 1, 4, (sm_rows_dtype)9, 1};
    assert_int_equal(sm__be_l1_scores(be, &s, q, rows, NULL, NULL, w, out), SM_ERR_INVALID_ARG);
    sm_backend_destroy(be);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cpu_paths_agree),
        cmocka_unit_test(test_cuda_agrees),
        cmocka_unit_test(test_bad_shapes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
