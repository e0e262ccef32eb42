/* SPDX-License-Identifier: MIT */
/* Adam state: first and second moments for the subnet's and the head's parameters. */
#include <inttypes.h>
#include <math.h>

#include "common/alloc.h"
#include "common/error.h"
#include "train/settings.h"
#include "train/training.h"

SM_API sm_status sm_adam_create(sm_subnet *subnet, sm_head *head, sm_adam **out)
{
    SM_CHECK_ARG(subnet && head && out, "sm_adam_create: NULL argument");
    SM_CHECK_ARG(subnet->be == head->be,
                 "sm_adam_create: subnet and head are on different backends");
    sm_adam *a = sm__calloc(1, sizeof *a);
    if (!a) return sm__fail(SM_ERR_NOMEM, "out of memory creating Adam state");
    a->subnet = subnet;
    a->head = head;
    for (size_t i = 0; i < sm__n_settings; i++)
        if (sm__settings[i].owner == SM__SET_ADAM)
            sm__setting_put(&sm__settings[i], a, sm__settings[i].dflt);
    sm_backend *be = subnet->be;
    sm_status st = sm__be_alloc_floats(be, subnet->n_params, &a->m_sub);
    if (st == SM_OK) st = sm__be_alloc_floats(be, subnet->n_params, &a->v_sub);
    if (st == SM_OK) st = sm__be_alloc_floats(be, head->n_params, &a->m_head);
    if (st == SM_OK) st = sm__be_alloc_floats(be, head->n_params, &a->v_head);
    if (st == SM_OK) st = be->ops->zero(be->ctx, a->m_sub, subnet->n_params * sizeof(float));
    if (st == SM_OK) st = be->ops->zero(be->ctx, a->v_sub, subnet->n_params * sizeof(float));
    if (st == SM_OK) st = be->ops->zero(be->ctx, a->m_head, head->n_params * sizeof(float));
    if (st == SM_OK) st = be->ops->zero(be->ctx, a->v_head, head->n_params * sizeof(float));
    if (st != SM_OK) {
        sm_adam_destroy(a);
        return st;
    }
    *out = a;
    return SM_OK;
}

SM_API void sm_adam_destroy(sm_adam *a)
{
    if (!a) return;
    sm_backend *be = a->subnet->be;
    sm__be_free(be, a->m_sub);
    sm__be_free(be, a->v_sub);
    sm__be_free(be, a->m_head);
    sm__be_free(be, a->v_head);
    sm__free(a);
}

SM_API sm_status sm_adam_set(sm_adam *a, sm_adam_param key, double v)
{
    SM_CHECK_ARG(a, "sm_adam_set: adam is NULL");
    const sm__setting *row = sm__setting_find(SM__API_ADAM, (int)key);
    SM_CHECK_ARG(row, "unknown Adam parameter %d", (int)key);
    SM_TRY(sm__setting_check(row, v, NULL));
    sm__setting_put(row, a, v);
    return SM_OK;
}

SM_API sm_status sm_adam_get(const sm_adam *a, sm_adam_param key, double *v)
{
    SM_CHECK_ARG(a && v, "sm_adam_get: NULL argument");
    const sm__setting *row = sm__setting_find(SM__API_ADAM, (int)key);
    SM_CHECK_ARG(row, "unknown Adam parameter %d", (int)key);
    *v = sm__setting_get(row, a);
    return SM_OK;
}

SM_API int64_t sm_adam_steps(const sm_adam *a) { return a ? a->t : -1; }

sm_status sm__adam_lr_factor(const sm_adam *a, int64_t t, double *factor)
{
    if (t <= a->warmup) {
        *factor = (double)t / (double)a->warmup; /* t >= 1, so warmup >= 1 here */
        return SM_OK;
    }
    SM_RETURN_IF(a->schedule != SM_ADAM_SCHEDULE_CONSTANT && a->sched_steps < 1, SM_ERR_STATE,
                 "the %s learning-rate schedule needs SM_ADAM_SCHEDULE_STEPS >= 1",
                 a->schedule == SM_ADAM_SCHEDULE_COSINE ? "cosine" : "step");
    const int64_t s = t - a->warmup - 1; /* steps after the warm-up, from 0 */
    switch (a->schedule) {
    case SM_ADAM_SCHEDULE_COSINE: {
        const double pi = 3.14159265358979323846, m = a->min_lr_factor;
        const int64_t e = s < a->sched_steps ? s : a->sched_steps;
        *factor = m + (1.0 - m) * 0.5 * (1.0 + cos(pi * (double)e / (double)a->sched_steps));
        return SM_OK;
    }
    case SM_ADAM_SCHEDULE_STEP:
        *factor = pow(a->step_gamma, (double)(s / a->sched_steps));
        return SM_OK;
    default: *factor = 1.0; return SM_OK;
    }
}

SM_API sm_status sm_adam_lr_at(const sm_adam *a, int64_t step, double *lr)
{
    SM_CHECK_ARG(a && lr, "sm_adam_lr_at: NULL argument");
    SM_CHECK_ARG(step >= 1, "sm_adam_lr_at: step %" PRId64 " is not >= 1", step);
    double f = 1.0;
    SM_TRY(sm__adam_lr_factor(a, step, &f));
    *lr = a->lr * f;
    return SM_OK;
}

SM_API sm_status sm_adam_current_lr(const sm_adam *a, double *lr)
{
    SM_CHECK_ARG(a && lr, "sm_adam_current_lr: NULL argument");
    return sm_adam_lr_at(a, a->t > 1 ? a->t : 1, lr);
}

/* Weight decay by kind: the subnet's buffer is updated in runs of consecutive parameters that
 * share a coefficient (layer weights with their kind's, biases with 0). The update is element
 * by element, so splitting it changes no value; without decay it is one call, as before. */
typedef struct adam_run {
    sm_adam *a;
    float step;
    size_t start, end; /* the pending run [start, end) of the subnet's buffer */
    float wd;
} adam_run;

static sm_status run_flush(adam_run *r)
{
    sm_adam *a = r->a;
    sm_backend *be = a->subnet->be;
    const size_t o = r->start, n = r->end - r->start;
    r->start = r->end;
    if (n == 0) return SM_OK;
    return be->ops->adam_update(be->ctx, n, a->subnet->params + o, a->subnet->grads + o,
                                a->m_sub + o, a->v_sub + o, r->step, (float)a->beta1,
                                (float)a->beta2, (float)a->eps, r->wd);
}

/* Appends [off, off + n) with coefficient wd: extends the pending run or starts a new one. */
static sm_status run_add(adam_run *r, size_t off, size_t n, float wd)
{
    if (n == 0) return SM_OK;
    if (off != r->end || wd != r->wd) {
        SM_TRY(run_flush(r));
        r->start = off, r->wd = wd;
    }
    r->end = off + n;
    return SM_OK;
}

static sm_status update_subnet(sm_adam *a, float step)
{
    const sm_subnet *sn = a->subnet;
    adam_run r = {a, step, 0, 0, 0.0f};
    if (a->wd_conv == 0 && a->wd_fc == 0) {
        r.end = sn->n_params;
        return run_flush(&r);
    }
    for (size_t i = 0; i < sn->arch.n_layers; i++) {
        const sm__layer *l = &sn->arch.layers[i];
        const double wd = l->kind == SM_LAYER_CONV ? a->wd_conv
                          : l->kind == SM_LAYER_FC ? a->wd_fc
                                                   : 0.0;
        SM_TRY(run_add(&r, l->w_off, l->n_w, (float)wd));
        SM_TRY(run_add(&r, l->b_off, l->n_b, 0.0f));
    }
    return run_flush(&r);
}

sm_status sm__adam_apply(sm_adam *a)
{
    sm_backend *be = a->subnet->be;
    const int64_t t = a->t + 1;
    double f = 1.0;
    SM_TRY(sm__adam_lr_factor(a, t, &f));
    /* The reference's form (docs/reference.md): bias corrections folded into the step size,
     * eps not rescaled; f = 1 without a schedule, and lr * 1 is lr exactly */
    double step =
        a->lr * f * sqrt(1.0 - pow(a->beta2, (double)t)) / (1.0 - pow(a->beta1, (double)t));
    /* the weights move: a calibration folded into them (sm_head_calibrate) no longer holds */
    a->head->cal = (sm__calibration){0};
    SM_TRY(update_subnet(a, (float)step));
    /* the head: dim weights, then the bias (never decayed) */
    const sm_head *h = a->head;
    const float b1 = (float)a->beta1, b2 = (float)a->beta2, eps = (float)a->eps;
    if (a->wd_head == 0) {
        SM_TRY(be->ops->adam_update(be->ctx, h->n_params, h->params, h->grads, a->m_head, a->v_head,
                                    (float)step, b1, b2, eps, 0.0f));
    } else {
        SM_TRY(be->ops->adam_update(be->ctx, h->dim, h->params, h->grads, a->m_head, a->v_head,
                                    (float)step, b1, b2, eps, (float)a->wd_head));
        SM_TRY(be->ops->adam_update(be->ctx, h->n_params - h->dim, h->params + h->dim,
                                    h->grads + h->dim, a->m_head + h->dim, a->v_head + h->dim,
                                    (float)step, b1, b2, eps, 0.0f));
    }
    a->t = t;
    return SM_OK;
}
