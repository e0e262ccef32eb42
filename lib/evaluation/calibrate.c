/* SPDX-License-Identifier: MIT */
/* Platt scaling with balanced classes (include/siamese/evaluation.h, sm_calibrate_fit;
 * docs/evaluation.md, "Calibration").
 *
 * Fits p = sigmoid(A z + B) to labelled pairs' logits z by minimising a weighted binary
 * cross-entropy against Platt's smoothed targets: t+ = (N+ + 1) / (N+ + 2) for same-class
 * pairs, t- = 1 / (N- + 2) for different-class ones (Platt 1999), so that separable data still
 * give a finite fit. Each class weighs half of the loss (weight 1 / (2 N+) and 1 / (2 N-)), so
 * the fit does not depend on how many pairs of each kind were drawn and p = 0.5 is the
 * balanced decision point. The minimisation is Newton's method with a backtracking line search
 * (Armijo), a tiny ridge on the Hessian's diagonal and a log-sum-exp free of overflow: the
 * robust version of Lin, Lin and Weng (2007, "A note on Platt's probabilistic outputs for
 * support vector machines"), all in double. The logits are standardised first (mean 0,
 * deviation 1) so that the Hessian is well scaled whatever the model's logit range; A and B
 * are mapped back at the end. */
#include <math.h>

#include "common/error.h"
#include "siamese/siamese.h"

#define MAX_ITER    100
#define MIN_STEP    1e-10 /* the line search gives up below this step */
#define RIDGE       1e-12 /* added to the Hessian's diagonal (Lin et al.'s sigma) */
#define GRAD_TOL    1e-10 /* converged: both gradient components below this (mean loss) */
#define GRAD_ACCEPT 1e-6  /* a fit whose line search stalls is kept below this */

typedef struct fit_data {
    size_t n;
    const float *z, *y;
    double mu, inv_sd; /* x = (z - mu) * inv_sd */
    double t[2], w[2]; /* target and weight of a different-class [0] and same-class [1] pair */
} fit_data;

/* log(1 + e^u), free of overflow */
static double softplus(double u) { return u > 0 ? u + log1p(exp(-u)) : log1p(exp(u)); }

static double sigmoid(double u)
{
    if (u >= 0) return 1.0 / (1.0 + exp(-u));
    const double e = exp(u);
    return e / (1.0 + e);
}

static double loss(const fit_data *d, double a, double b)
{
    double f = 0;
    for (size_t i = 0; i < d->n; i++) {
        const int k = d->y[i] == 1.0f;
        const double u = a * (((double)d->z[i] - d->mu) * d->inv_sd) + b;
        f += d->w[k] * (softplus(u) - d->t[k] * u);
    }
    return f;
}

/* The gradient g and the Hessian (h11, h12, h22) of the loss at (a, b). */
static void derivatives(const fit_data *d, double a, double b, double g[2], double h[3])
{
    g[0] = g[1] = h[0] = h[1] = h[2] = 0;
    for (size_t i = 0; i < d->n; i++) {
        const int k = d->y[i] == 1.0f;
        const double x = ((double)d->z[i] - d->mu) * d->inv_sd;
        const double p = sigmoid(a * x + b), r = d->w[k] * (p - d->t[k]);
        const double c = d->w[k] * p * (1.0 - p);
        g[0] += r * x;
        g[1] += r;
        h[0] += c * x * x;
        h[1] += c * x;
        h[2] += c;
    }
}

static double max_abs(const double g[2]) { return fmax(fabs(g[0]), fabs(g[1])); }

SM_API sm_status sm_calibrate_fit(size_t n, const float *logits, const float *labels, double *scale,
                                  double *shift)
{
    SM_CHECK_ARG(logits && labels && scale && shift, "sm_calibrate_fit: NULL argument");
    SM_CHECK_ARG(n >= 2, "sm_calibrate_fit: %zu labelled pairs; a fit needs at least 2", n);
    size_t count[2] = {0, 0};
    double sum = 0;
    for (size_t i = 0; i < n; i++) {
        SM_CHECK_ARG(isfinite(logits[i]), "sm_calibrate_fit: logit %zu is %g, not finite", i,
                     (double)logits[i]);
        SM_CHECK_ARG(labels[i] == 0.0f || labels[i] == 1.0f,
                     "sm_calibrate_fit: label %zu is %g, expected 0 or 1", i, (double)labels[i]);
        count[labels[i] == 1.0f]++;
        sum += logits[i];
    }
    SM_CHECK_ARG(count[0] > 0 && count[1] > 0,
                 "sm_calibrate_fit: %zu same-class and %zu different-class pairs; a fit needs "
                 "pairs of both kinds",
                 count[1], count[0]);
    fit_data d = {n, logits, labels, sum / (double)n, 0, {0, 0}, {0, 0}};
    double var = 0;
    for (size_t i = 0; i < n; i++) var += ((double)logits[i] - d.mu) * ((double)logits[i] - d.mu);
    const double sd = sqrt(var / (double)n);
    SM_CHECK_ARG(sd > 0 && isfinite(1.0 / sd),
                 "sm_calibrate_fit: the %zu logits are all equal (%g): they do not tell the two "
                 "kinds of pair apart, so there is nothing to calibrate",
                 n, (double)logits[0]);
    d.inv_sd = 1.0 / sd;
    for (int k = 0; k < 2; k++) d.w[k] = 0.5 / (double)count[k];
    d.t[1] = ((double)count[1] + 1.0) / ((double)count[1] + 2.0);
    d.t[0] = 1.0 / ((double)count[0] + 2.0);

    /* from the best constant: p = the weighted mean target */
    const double mean_t = 0.5 * (d.t[0] + d.t[1]);
    double a = 0, b = log(mean_t / (1.0 - mean_t)), f = loss(&d, a, b);
    double g[2], h[3];
    for (int it = 0; it < MAX_ITER; it++) {
        derivatives(&d, a, b, g, h);
        if (max_abs(g) < GRAD_TOL) break;
        const double h11 = h[0] + RIDGE, h22 = h[2] + RIDGE, h12 = h[1];
        const double det = h11 * h22 - h12 * h12;
        const double da = -(h22 * g[0] - h12 * g[1]) / det;
        const double db = -(h11 * g[1] - h12 * g[0]) / det;
        const double gd = g[0] * da + g[1] * db;
        double step = 1.0, na = a, nb = b, nf = f;
        for (; step >= MIN_STEP; step /= 2) {
            na = a + step * da, nb = b + step * db;
            nf = loss(&d, na, nb);
            if (nf < f + 1e-4 * step * gd) break;
        }
        if (step < MIN_STEP) break; /* no decrease left within rounding */
        a = na, b = nb, f = nf;
    }
    derivatives(&d, a, b, g, h);
    SM_RETURN_IF(!(max_abs(g) < GRAD_ACCEPT), SM_ERR_NUMERIC,
                 "sm_calibrate_fit: Newton's method did not converge on %zu pairs (gradient %g)", n,
                 max_abs(g));
    const double A = a * d.inv_sd, B = b - a * d.mu * d.inv_sd;
    SM_CHECK_ARG(isfinite(A) && isfinite(B) && A > 0,
                 "sm_calibrate_fit: the fitted scale is %g: the logits do not rank same-class "
                 "pairs above different-class ones, so a calibration would invert the model",
                 A);
    *scale = A;
    *shift = B;
    return SM_OK;
}
