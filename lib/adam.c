/* SPDX-License-Identifier: MIT */
/* Adam state: first and second moments for the subnet's and the head's parameters. */
#include <math.h>

#include "alloc.h"
#include "error.h"
#include "model.h"

SM_API sm_status sm_adam_create(sm_subnet *subnet, sm_head *head, sm_adam **out)
{
    SM_CHECK_ARG(subnet && head && out, "sm_adam_create: NULL argument");
    SM_CHECK_ARG(subnet->be == head->be, "sm_adam_create: subnet and head are on different backends");
    sm_adam *a = sm__calloc(1, sizeof *a);
    if (!a) return sm__fail(SM_ERR_NOMEM, "out of memory creating Adam state");
    a->subnet = subnet;
    a->head = head;
    a->lr = 6e-5;
    a->beta1 = 0.9;
    a->beta2 = 0.99;
    a->eps = 1e-8;
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
    SM_CHECK_ARG(isfinite(v), "sm_adam_set: value is not finite");
    switch (key) {
    case SM_ADAM_LEARNING_RATE:
        SM_CHECK_ARG(v > 0 && v <= 1, "learning rate %g out of range (0, 1]", v);
        a->lr = v;
        return SM_OK;
    case SM_ADAM_BETA1:
        SM_CHECK_ARG(v >= 0 && v < 1, "beta1 %g out of range [0, 1)", v);
        a->beta1 = v;
        return SM_OK;
    case SM_ADAM_BETA2:
        SM_CHECK_ARG(v >= 0 && v < 1, "beta2 %g out of range [0, 1)", v);
        a->beta2 = v;
        return SM_OK;
    case SM_ADAM_EPSILON:
        SM_CHECK_ARG(v > 0 && v <= 1, "epsilon %g out of range (0, 1]", v);
        a->eps = v;
        return SM_OK;
    }
    return sm__fail(SM_ERR_INVALID_ARG, "unknown Adam parameter %d", (int)key);
}

SM_API sm_status sm_adam_get(const sm_adam *a, sm_adam_param key, double *v)
{
    SM_CHECK_ARG(a && v, "sm_adam_get: NULL argument");
    switch (key) {
    case SM_ADAM_LEARNING_RATE: *v = a->lr; return SM_OK;
    case SM_ADAM_BETA1: *v = a->beta1; return SM_OK;
    case SM_ADAM_BETA2: *v = a->beta2; return SM_OK;
    case SM_ADAM_EPSILON: *v = a->eps; return SM_OK;
    }
    return sm__fail(SM_ERR_INVALID_ARG, "unknown Adam parameter %d", (int)key);
}

SM_API int64_t sm_adam_steps(const sm_adam *a) { return a ? a->t : -1; }

sm_status sm__adam_apply(sm_adam *a)
{
    sm_backend *be = a->subnet->be;
    const int64_t t = a->t + 1;
    /* SPEC.md's form: bias corrections folded into the step size, eps not rescaled */
    double step = a->lr * sqrt(1.0 - pow(a->beta2, (double)t)) / (1.0 - pow(a->beta1, (double)t));
    SM_TRY(be->ops->adam_update(be->ctx, a->subnet->n_params, a->subnet->params, a->subnet->grads,
                                a->m_sub, a->v_sub, (float)step, (float)a->beta1,
                                (float)a->beta2, (float)a->eps));
    SM_TRY(be->ops->adam_update(be->ctx, a->head->n_params, a->head->params, a->head->grads,
                                a->m_head, a->v_head, (float)step, (float)a->beta1,
                                (float)a->beta2, (float)a->eps));
    a->t = t;
    return SM_OK;
}
