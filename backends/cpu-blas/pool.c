/* SPDX-License-Identifier: MIT */
/* Max pooling, window = stride; the argmax of each window is kept for the backward scatter
 * (darknet's maxpool_layer.c). Ties go to the first element in row-major order, as PyTorch.
 * One (n, c) plane per work unit, so the planes run on all threads. */
#include <string.h>

#include "cpu_internal.h"
#include "parallel.h"

typedef struct pool_job {
    const sm_pool_shape *s;
    const float *in;
    float *out;
    int32_t *argmax;
    const int32_t *argmax_in;
} pool_job;

/* The 2x2 window every pooling layer of the reference network uses, as selects the compiler
 * can vectorise: the same comparisons in the same order as the general loop below (ties keep
 * the earlier element, a NaN always wins), so the same outputs and argmax. */
static void fwd_plane_2x2(const sm_pool_shape *s, const float *restrict xp, float *restrict yp,
                          int32_t *restrict ap)
{
    const int w = s->w, oh = s->oh, ow = s->ow;
    for (int oy = 0; oy < oh; oy++) {
        const float *r0 = xp + (size_t)(2 * oy) * w, *r1 = r0 + w;
        float *yr = yp + (size_t)oy * ow;
        int32_t *ar = ap + (size_t)oy * ow;
        const int32_t base = 2 * oy * w;
        for (int ox = 0; ox < ow; ox++) {
            float v0 = r0[2 * ox], v1 = r0[2 * ox + 1], v2 = r1[2 * ox], v3 = r1[2 * ox + 1];
            float bv = v0;
            int32_t bi = base + 2 * ox;
            int t1 = (v1 > bv) | (v1 != v1);
            bv = t1 ? v1 : bv;
            bi = t1 ? base + 2 * ox + 1 : bi;
            int t2 = (v2 > bv) | (v2 != v2);
            bv = t2 ? v2 : bv;
            bi = t2 ? base + w + 2 * ox : bi;
            int t3 = (v3 > bv) | (v3 != v3);
            bv = t3 ? v3 : bv;
            bi = t3 ? base + w + 2 * ox + 1 : bi;
            yr[ox] = bv;
            ar[ox] = bi;
        }
    }
}

static void fwd_range(void *p, size_t begin, size_t end)
{
    const pool_job *j = p;
    const sm_pool_shape *s = j->s;
    const int k = s->size;
    if (k == 2) {
        for (size_t pl = begin; pl < end; pl++)
            fwd_plane_2x2(s, j->in + pl * s->h * s->w, j->out + pl * s->oh * s->ow,
                          j->argmax + pl * s->oh * s->ow);
        return;
    }
    for (size_t pl = begin; pl < end; pl++) {
        const float *xp = j->in + pl * s->h * s->w;
        float *yp = j->out + pl * s->oh * s->ow;
        int32_t *ap = j->argmax + pl * s->oh * s->ow;
        for (int oy = 0; oy < s->oh; oy++)
            for (int ox = 0; ox < s->ow; ox++) {
                int best = (oy * k) * s->w + ox * k;
                float bv = xp[best];
                for (int i = 0; i < k; i++)
                    for (int jj = 0; jj < k; jj++) {
                        int idx = (oy * k + i) * s->w + ox * k + jj;
                        /* NaN propagates, as in PyTorch, so a bad value is not hidden */
                        if (xp[idx] > bv || xp[idx] != xp[idx]) {
                            bv = xp[idx];
                            best = idx;
                        }
                    }
                yp[oy * s->ow + ox] = bv;
                ap[oy * s->ow + ox] = best;
            }
    }
}

sm_status sm__cpu_maxpool_fwd(void *ctx, const sm_pool_shape *s, const float *x, float *y,
                              int32_t *argmax)
{
    (void)ctx;
    pool_job j = {s, x, y, argmax, NULL};
    sm__cpu_parallel_for((size_t)s->n * s->c, 4, fwd_range, &j);
    return SM_OK;
}

static void bwd_range(void *p, size_t begin, size_t end)
{
    const pool_job *j = p;
    const sm_pool_shape *s = j->s;
    const size_t in_plane = (size_t)s->h * s->w, out_plane = (size_t)s->oh * s->ow;
    for (size_t pl = begin; pl < end; pl++) {
        const float *dyp = j->in + pl * out_plane;
        const int32_t *ap = j->argmax_in + pl * out_plane;
        float *dxp = j->out + pl * in_plane;
        memset(dxp, 0, in_plane * sizeof(float));
        for (size_t o = 0; o < out_plane; o++) dxp[ap[o]] += dyp[o];
    }
}

sm_status sm__cpu_maxpool_bwd(void *ctx, const sm_pool_shape *s, const float *dy,
                              const int32_t *argmax, float *dx)
{
    (void)ctx;
    pool_job j = {s, dy, dx, NULL, argmax};
    sm__cpu_parallel_for((size_t)s->n * s->c, 4, bwd_range, &j);
    return SM_OK;
}
