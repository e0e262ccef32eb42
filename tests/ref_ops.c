/* SPDX-License-Identifier: MIT */
#include "ref_ops.h"

#include <math.h>

void ref_conv(int n, int c, int h, int w, int k, int kh, int kw, const double *x, const double *wt,
              const double *b, double *y)
{
    int oh = h - kh + 1, ow = w - kw + 1;
    for (int in = 0; in < n; in++)
        for (int ik = 0; ik < k; ik++)
            for (int oy = 0; oy < oh; oy++)
                for (int ox = 0; ox < ow; ox++) {
                    double acc = b[ik];
                    for (int ic = 0; ic < c; ic++)
                        for (int i = 0; i < kh; i++)
                            for (int j = 0; j < kw; j++)
                                acc += x[((size_t)(in * c + ic) * h + oy + i) * w + ox + j] *
                                       wt[((size_t)(ik * c + ic) * kh + i) * kw + j];
                    y[((size_t)(in * k + ik) * oh + oy) * ow + ox] = acc;
                }
}

void ref_maxpool(int n, int c, int h, int w, int s, const double *x, double *y)
{
    int oh = h / s, ow = w / s;
    for (int p = 0; p < n * c; p++)
        for (int oy = 0; oy < oh; oy++)
            for (int ox = 0; ox < ow; ox++) {
                double m = -INFINITY;
                for (int i = 0; i < s; i++)
                    for (int j = 0; j < s; j++) {
                        double v = x[((size_t)p * h + oy * s + i) * w + ox * s + j];
                        if (v > m) m = v;
                    }
                y[((size_t)p * oh + oy) * ow + ox] = m;
            }
}

void ref_groupnorm(int n, int c, int h, int w, int groups, double eps, const double *x,
                   const double *gamma, const double *beta, double *y)
{
    const int cpg = c / groups;
    const size_t hw = (size_t)h * w, m = (size_t)cpg * hw;
    for (int in = 0; in < n; in++)
        for (int g = 0; g < groups; g++) {
            const size_t base = ((size_t)in * c + (size_t)g * cpg) * hw;
            double mean = 0, var = 0;
            for (size_t i = 0; i < m; i++) mean += x[base + i];
            mean /= (double)m;
            for (size_t i = 0; i < m; i++) var += (x[base + i] - mean) * (x[base + i] - mean);
            var /= (double)m;
            const double rstd = 1.0 / sqrt(var + eps);
            for (size_t i = 0; i < m; i++) {
                const int ch = g * cpg + (int)(i / hw);
                y[base + i] = (x[base + i] - mean) * rstd * gamma[ch] + beta[ch];
            }
        }
}

void ref_relu(size_t n, const double *x, double *y)
{
    for (size_t i = 0; i < n; i++) y[i] = x[i] > 0 ? x[i] : 0;
}

void ref_sigmoid(size_t n, const double *x, double *y)
{
    for (size_t i = 0; i < n; i++) y[i] = 1.0 / (1.0 + exp(-x[i]));
}

void ref_gemm(int trans_a, int trans_b, int m, int n, int k, const double *a, int lda,
              const double *b, int ldb, double *c, int ldc)
{
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            double acc = 0;
            for (int p = 0; p < k; p++) {
                double av = trans_a ? a[(size_t)p * lda + i] : a[(size_t)i * lda + p];
                double bv = trans_b ? b[(size_t)j * ldb + p] : b[(size_t)p * ldb + j];
                acc += av * bv;
            }
            c[(size_t)i * ldc + j] = acc;
        }
}

void ref_fc(int rows, int in, int out, const double *x, const double *wt, const double *b,
            double *y)
{
    ref_gemm(0, 1, rows, out, in, x, in, wt, in, y, out);
    for (int r = 0; r < rows; r++)
        for (int o = 0; o < out; o++) y[(size_t)r * out + o] += b[o];
}

void ref_absdiff(size_t n, const double *a, const double *b, double *d)
{
    for (size_t i = 0; i < n; i++) d[i] = fabs(a[i] - b[i]);
}

double ref_bce_mean(int n, const double *z, const double *labels)
{
    const double eps = 0x1p-23;
    double sum = 0;
    for (int i = 0; i < n; i++) {
        double s = 1.0 / (1.0 + exp(-z[i]));
        s = s < eps ? eps : (s > 1 - eps ? 1 - eps : s);
        sum += -(labels[i] * log(s) + (1 - labels[i]) * log(1 - s));
    }
    return sum / n;
}

void ref_fill_uniform(unsigned *state, double lo, double hi, size_t n, double *out)
{
    for (size_t i = 0; i < n; i++) {
        /* a 32-bit LCG: reproducible everywhere, good enough for test data */
        *state = *state * 1664525u + 1013904223u;
        out[i] = lo + (hi - lo) * ((*state >> 8) / 16777216.0);
    }
}

double ref_rel_err(const double *a, const double *b, size_t n)
{
    double num = 0, den = 1e-30;
    for (size_t i = 0; i < n; i++) {
        num = fmax(num, fabs(a[i] - b[i]));
        den = fmax(den, fabs(b[i]));
    }
    return num / den;
}
