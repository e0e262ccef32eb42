/* SPDX-License-Identifier: MIT */
/* Naive double-precision forward ops: the oracle the float backends and the finite-difference
 * gradient checks are measured against. Slow and obviously right; never optimise them. */
#ifndef SM_TESTS_REF_OPS_H
#define SM_TESTS_REF_OPS_H

#include <stddef.h>

/* x [n,c,h,w], w [k,c,kh,kw], b [k] -> y [n,k,h-kh+1,w-kw+1] */
void ref_conv(int n, int c, int h, int w, int k, int kh, int kw, const double *x, const double *wt,
              const double *b, double *y);
/* window = stride = s; y [n,c,h/s,w/s] */
void ref_maxpool(int n, int c, int h, int w, int s, const double *x, double *y);
/* GroupNorm (torch.nn.GroupNorm(groups, c)): y [n,c,h,w] from x, per-channel gamma and beta;
 * biased variance over each image's group of c / groups channels */
void ref_groupnorm(int n, int c, int h, int w, int groups, double eps, const double *x,
                   const double *gamma, const double *beta, double *y);
void ref_relu(size_t n, const double *x, double *y);
void ref_sigmoid(size_t n, const double *x, double *y);
/* row-major C = op(A) op(B), op(A) m x k */
void ref_gemm(int trans_a, int trans_b, int m, int n, int k, const double *a, int lda,
              const double *b, int ldb, double *c, int ldc);
/* y [rows, out] = x [rows, in] W^T + b, W [out, in] */
void ref_fc(int rows, int in, int out, const double *x, const double *wt, const double *b,
            double *y);
void ref_absdiff(size_t n, const double *a, const double *b, double *d);
/* mean clipped BCE of sigmoid(z) against labels (eps = 2^-23) */
double ref_bce_mean(int n, const double *z, const double *labels);

/* max |a - b| / max |b|: scale-free, and not fooled by entries near zero. */
double ref_rel_err(const double *a, const double *b, size_t n);

/* Deterministic test data: uniform in [lo, hi). */
void ref_fill_uniform(unsigned *state, double lo, double hi, size_t n, double *out);

#endif
