/* SPDX-License-Identifier: MIT */
/* Element-wise ops and the Adam update, split over the backend's threads in contiguous ranges
 * (each element is computed by exactly one thread, so the bits do not depend on the count). */
#include <math.h>
#include <stdatomic.h>

#include "cpu_internal.h"
#include "parallel.h"

/* below this many elements a loop is not worth a thread */
enum { GRAIN = 1 << 15 };

typedef struct elt_job {
    const float *a, *b, *c;
    float *x, *y, *z;
    float s0, s1, s2, s3, s4;
} elt_job;

static void relu_fwd_range(void *p, size_t i0, size_t i1)
{
    const elt_job *j = p;
    const float *a = j->a;
    float *x = j->x; /* may alias a (in place) */
    for (size_t i = i0; i < i1; i++) x[i] = a[i] > 0.0f ? a[i] : 0.0f;
}

sm_status sm__cpu_relu_fwd(void *ctx, size_t n, const float *x, float *y)
{
    (void)ctx;
    elt_job j = {.a = x, .x = y};
    sm__cpu_parallel_for(n, GRAIN, relu_fwd_range, &j);
    return SM_OK;
}

static void relu_bwd_range(void *p, size_t i0, size_t i1)
{
    const elt_job *j = p;
    const float *y = j->a, *dy = j->b;
    float *dx = j->x; /* may alias dy: no restrict */
    for (size_t i = i0; i < i1; i++) dx[i] = y[i] > 0.0f ? dy[i] : 0.0f;
}

sm_status sm__cpu_relu_bwd(void *ctx, size_t n, const float *y, const float *dy, float *dx)
{
    (void)ctx;
    elt_job j = {.a = y, .b = dy, .x = dx};
    sm__cpu_parallel_for(n, GRAIN, relu_bwd_range, &j);
    return SM_OK;
}

static float sigmoidf_stable(float x)
{
    /* exp of a negative argument only, so neither branch overflows */
    if (x >= 0.0f) return 1.0f / (1.0f + expf(-x));
    float e = expf(x);
    return e / (1.0f + e);
}

static void sigmoid_fwd_range(void *p, size_t i0, size_t i1)
{
    const elt_job *j = p;
    const float *a = j->a;
    float *x = j->x;
    for (size_t i = i0; i < i1; i++) x[i] = sigmoidf_stable(a[i]);
}

sm_status sm__cpu_sigmoid_fwd(void *ctx, size_t n, const float *x, float *y)
{
    (void)ctx;
    elt_job j = {.a = x, .x = y};
    sm__cpu_parallel_for(n, GRAIN, sigmoid_fwd_range, &j);
    return SM_OK;
}

static void sigmoid_bwd_range(void *p, size_t i0, size_t i1)
{
    const elt_job *j = p;
    const float *y = j->a, *dy = j->b;
    float *dx = j->x;
    for (size_t i = i0; i < i1; i++) dx[i] = dy[i] * y[i] * (1.0f - y[i]);
}

sm_status sm__cpu_sigmoid_bwd(void *ctx, size_t n, const float *y, const float *dy, float *dx)
{
    (void)ctx;
    elt_job j = {.a = y, .b = dy, .x = dx};
    sm__cpu_parallel_for(n, GRAIN, sigmoid_bwd_range, &j);
    return SM_OK;
}

sm_status sm__cpu_bias_add(void *ctx, int rows, int cols, const float *bias, float *y)
{
    (void)ctx;
    for (int r = 0; r < rows; r++) {
        float *row = y + (size_t)r * cols;
        for (int c = 0; c < cols; c++) row[c] += bias[c];
    }
    return SM_OK;
}

sm_status sm__cpu_bias_grad(void *ctx, int rows, int cols, const float *dy, float *db)
{
    (void)ctx;
    for (int r = 0; r < rows; r++) {
        const float *row = dy + (size_t)r * cols;
        for (int c = 0; c < cols; c++) db[c] += row[c];
    }
    return SM_OK;
}

/* x = p, y = m, z = v, a = g; s0..s3 = step, b1, b2, eps */
static void adam_range(void *p, size_t i0, size_t i1)
{
    const elt_job *j = p;
    const float step = j->s0, b1 = j->s1, b2 = j->s2, eps = j->s3;
    float *pp = j->x, *m = j->y, *v = j->z;
    const float *g = j->a;
    for (size_t i = i0; i < i1; i++) {
        m[i] = b1 * m[i] + (1.0f - b1) * g[i];
        v[i] = b2 * v[i] + (1.0f - b2) * g[i] * g[i];
        pp[i] -= step * m[i] / (sqrtf(v[i]) + eps);
    }
}

/* The same with classic L2 decay: the gradient is g + wd p (p before this update). A loop of
 * its own, so that the loop without decay stays exactly as it was (bit for bit). */
static void adam_decay_range(void *p, size_t i0, size_t i1)
{
    const elt_job *j = p;
    const float step = j->s0, b1 = j->s1, b2 = j->s2, eps = j->s3, wd = j->s4;
    float *pp = j->x, *m = j->y, *v = j->z;
    const float *g = j->a;
    for (size_t i = i0; i < i1; i++) {
        const float gi = g[i] + wd * pp[i];
        m[i] = b1 * m[i] + (1.0f - b1) * gi;
        v[i] = b2 * v[i] + (1.0f - b2) * gi * gi;
        pp[i] -= step * m[i] / (sqrtf(v[i]) + eps);
    }
}

sm_status sm__cpu_adam_update(void *ctx, size_t n, float *p, const float *g, float *m, float *v,
                              float step, float b1, float b2, float eps, float wd)
{
    (void)ctx;
    elt_job j = {
        .a = g, .x = p, .y = m, .z = v, .s0 = step, .s1 = b1, .s2 = b2, .s3 = eps, .s4 = wd};
    sm__cpu_parallel_for(n, GRAIN, wd != 0.0f ? adam_decay_range : adam_range, &j);
    return SM_OK;
}

/* x * 0 is NaN exactly when x is NaN or infinite; summing keeps the loop branch-free. A range
 * that saw one sets the shared flag; none ever clears it. */
typedef struct finite_job {
    const float *x;
    _Atomic int bad;
} finite_job;

static void finite_range(void *p, size_t i0, size_t i1)
{
    finite_job *j = p;
    float acc = 0.0f;
    const float *x = j->x;
    for (size_t i = i0; i < i1; i++) acc += x[i] * 0.0f;
    if (acc != 0.0f) atomic_store_explicit(&j->bad, 1, memory_order_relaxed);
}

sm_status sm__cpu_all_finite(void *ctx, size_t n, const float *x, bool *finite)
{
    (void)ctx;
    finite_job j = {x, 0};
    sm__cpu_parallel_for(n, GRAIN, finite_range, &j);
    *finite = !atomic_load_explicit(&j.bad, memory_order_relaxed);
    return SM_OK;
}
