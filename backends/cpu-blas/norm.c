/* SPDX-License-Identifier: MIT */
/* GroupNorm forward and backward (torch.nn.GroupNorm semantics). In NCHW an image's group is
 * one contiguous run of (c / groups) * h * w floats, so forward and d(input) run one
 * (image, group) per work unit on all threads; the parameter gradients run one channel per
 * unit, each summing its images in order. Every sum is in double and belongs to one unit, so
 * the bits do not depend on the thread count, and an image's output does not depend on the
 * other images of the batch. */
#include <math.h>

#include "cpu_internal.h"
#include "parallel.h"

/* below this many floats a unit's loop is not worth a thread of its own */
enum { GRAIN_FLOATS = 1 << 14 };

typedef struct gn_job {
    const sm_norm_shape *s;
    const float *x, *dy, *gamma, *beta, *saved; /* saved: backward's stats */
    float *y, *stats, *dx, *dgamma, *dbeta;
} gn_job;

/* Sums in LANES independent double accumulators, combined in a fixed order at the end: one
 * accumulator made every add wait for the last (a chain of 4-cycle adds), which cost a quarter
 * of a preset step with three gn layers; eight chains run at the loads' pace and vectorise. The
 * order depends on the length only, so the bits still do not depend on the thread count. */
enum { LANES = 8 };

static double combine(const double *acc, double tail)
{
    return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7])) + tail;
}

static double sum_of(const float *x, size_t n)
{
    double acc[LANES] = {0}, tail = 0.0;
    size_t i = 0;
    for (; i + LANES <= n; i += LANES)
        for (size_t k = 0; k < LANES; k++) acc[k] += x[i + k];
    for (; i < n; i++) tail += x[i];
    return combine(acc, tail);
}

static double squares_about(const float *x, size_t n, double mean)
{
    double acc[LANES] = {0}, tail = 0.0;
    size_t i = 0;
    for (; i + LANES <= n; i += LANES)
        for (size_t k = 0; k < LANES; k++) {
            const double d = x[i + k] - mean;
            acc[k] += d * d;
        }
    for (; i < n; i++) tail += (x[i] - mean) * (x[i] - mean);
    return combine(acc, tail);
}

static size_t grain_for(size_t unit_floats)
{
    return unit_floats >= GRAIN_FLOATS ? 1 : GRAIN_FLOATS / (unit_floats ? unit_floats : 1);
}

static void fwd_range(void *p, size_t begin, size_t end)
{
    const gn_job *j = p;
    const sm_norm_shape *s = j->s;
    const size_t hw = (size_t)s->h * s->w, cpg = (size_t)(s->c / s->groups), m = cpg * hw;
    for (size_t u = begin; u < end; u++) { /* u = image * groups + group */
        const float *xg = j->x + u * m;
        float *yg = j->y + u * m;
        const double mean = sum_of(xg, m) / (double)m;
        const double sq = squares_about(xg, m, mean);
        const double rstd = 1.0 / sqrt(sq / (double)m + s->eps);
        j->stats[2 * u] = (float)mean;
        j->stats[2 * u + 1] = (float)rstd;
        const size_t c0 = (u % (size_t)s->groups) * cpg;
        for (size_t c = 0; c < cpg; c++) {
            const double g = j->gamma[c0 + c], b = j->beta[c0 + c];
            const float *xc = xg + c * hw;
            float *yc = yg + c * hw;
            for (size_t i = 0; i < hw; i++) yc[i] = (float)((xc[i] - mean) * rstd * g + b);
        }
    }
}

sm_status sm__cpu_groupnorm_fwd(void *ctx, const sm_norm_shape *s, const float *x,
                                const float *gamma, const float *beta, float *y, float *stats)
{
    (void)ctx;
    const size_t m = (size_t)(s->c / s->groups) * s->h * s->w;
    gn_job j = {.s = s, .x = x, .gamma = gamma, .beta = beta, .y = y, .stats = stats};
    sm__cpu_parallel_for((size_t)s->n * s->groups, grain_for(m), fwd_range, &j);
    return SM_OK;
}

/* One channel plane of one image: sum of dy and of dy * xhat, xhat = (x - mean) * rstd. */
static void plane_sums(const float *x, const float *dy, size_t hw, double mean, double rstd,
                       double *sdy, double *sdyx)
{
    double a[LANES] = {0}, b[LANES] = {0}, ta = 0.0, tb = 0.0;
    size_t i = 0;
    for (; i + LANES <= hw; i += LANES)
        for (size_t k = 0; k < LANES; k++) {
            a[k] += dy[i + k];
            b[k] += dy[i + k] * ((x[i + k] - mean) * rstd);
        }
    for (; i < hw; i++) {
        ta += dy[i];
        tb += dy[i] * ((x[i] - mean) * rstd);
    }
    *sdy = combine(a, ta);
    *sdyx = combine(b, tb);
}

/* d(input) per (image, group): dx = rstd (gamma dy - mean(gamma dy) - xhat mean(gamma dy xhat)) */
static void bwd_data_range(void *p, size_t begin, size_t end)
{
    const gn_job *j = p;
    const sm_norm_shape *s = j->s;
    const size_t hw = (size_t)s->h * s->w, cpg = (size_t)(s->c / s->groups), m = cpg * hw;
    for (size_t u = begin; u < end; u++) {
        const float *xg = j->x + u * m, *dyg = j->dy + u * m;
        float *dxg = j->dx + u * m;
        const double mean = j->saved[2 * u], rstd = j->saved[2 * u + 1];
        const size_t c0 = (u % (size_t)s->groups) * cpg;
        double a = 0.0, b = 0.0;
        for (size_t c = 0; c < cpg; c++) {
            double sdy, sdyx;
            plane_sums(xg + c * hw, dyg + c * hw, hw, mean, rstd, &sdy, &sdyx);
            a += j->gamma[c0 + c] * sdy;
            b += j->gamma[c0 + c] * sdyx;
        }
        a /= (double)m;
        b /= (double)m;
        for (size_t c = 0; c < cpg; c++) {
            const double g = j->gamma[c0 + c];
            const float *xc = xg + c * hw, *dyc = dyg + c * hw;
            float *dxc = dxg + c * hw;
            for (size_t i = 0; i < hw; i++)
                dxc[i] = (float)(rstd * (g * dyc[i] - a - (xc[i] - mean) * rstd * b));
        }
    }
}

/* The parameter gradients per channel: the images' sums added in image order. */
static void bwd_param_range(void *p, size_t begin, size_t end)
{
    const gn_job *j = p;
    const sm_norm_shape *s = j->s;
    const size_t hw = (size_t)s->h * s->w, cpg = (size_t)(s->c / s->groups);
    for (size_t c = begin; c < end; c++) {
        const size_t g = c / cpg;
        double acc_g = 0.0, acc_b = 0.0;
        for (size_t n = 0; n < (size_t)s->n; n++) {
            const size_t u = n * (size_t)s->groups + g, off = (n * (size_t)s->c + c) * hw;
            double sdy, sdyx;
            plane_sums(j->x + off, j->dy + off, hw, j->saved[2 * u], j->saved[2 * u + 1], &sdy,
                       &sdyx);
            acc_g += sdyx;
            acc_b += sdy;
        }
        j->dgamma[c] += (float)acc_g;
        j->dbeta[c] += (float)acc_b;
    }
}

sm_status sm__cpu_groupnorm_bwd(void *ctx, const sm_norm_shape *s, const float *x, const float *dy,
                                const float *gamma, const float *stats, float *dx, float *dgamma,
                                float *dbeta)
{
    (void)ctx;
    const size_t hw = (size_t)s->h * s->w, m = (size_t)(s->c / s->groups) * hw;
    gn_job j = {.s = s,
                .x = x,
                .dy = dy,
                .gamma = gamma,
                .saved = stats,
                .dx = dx,
                .dgamma = dgamma,
                .dbeta = dbeta};
    sm__cpu_parallel_for((size_t)s->c, grain_for((size_t)s->n * hw), bwd_param_range, &j);
    if (dx) sm__cpu_parallel_for((size_t)s->n * s->groups, grain_for(m), bwd_data_range, &j);
    return SM_OK;
}
