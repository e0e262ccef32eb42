/* SPDX-License-Identifier: MIT */
#include "train_state.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "train/training.h"
#include "data/sampler.h"

static void download(sm_backend *be, float *dst, const float *src, size_t n)
{
    assert_int_equal(be->ops->download(be->ctx, dst, src, n * sizeof *dst), SM_OK);
}

void train_state_take(const sm_trainer *t, train_state *out)
{
    sm_backend *be = t->subnet->be;
    out->ns = t->subnet->n_params;
    out->nh = t->head->n_params;
    size_t n = out->ns + out->nh;
    out->params = malloc(n * sizeof(float));
    out->m = malloc(n * sizeof(float));
    out->v = malloc(n * sizeof(float));
    assert_true(out->params && out->m && out->v);
    download(be, out->params, t->subnet->params, out->ns);
    download(be, out->params + out->ns, t->head->params, out->nh);
    download(be, out->m, t->adam->m_sub, out->ns);
    download(be, out->m + out->ns, t->adam->m_head, out->nh);
    download(be, out->v, t->adam->v_sub, out->ns);
    download(be, out->v + out->ns, t->adam->v_head, out->nh);
    out->adam_t = sm_adam_steps(t->adam);
    out->iteration = sm_trainer_iteration(t);
    memset(out->sampler, 0, sizeof out->sampler);
    if (t->sampler) sm__sampler_get_state(t->sampler, out->sampler);
}

void train_state_free(train_state *s)
{
    free(s->params);
    free(s->m);
    free(s->v);
}

int train_state_equal(const train_state *a, const train_state *b)
{
    size_t n = (a->ns + a->nh) * sizeof(float);
    return a->ns == b->ns && a->nh == b->nh && memcmp(a->params, b->params, n) == 0 &&
           memcmp(a->m, b->m, n) == 0 && memcmp(a->v, b->v, n) == 0 && a->adam_t == b->adam_t &&
           a->iteration == b->iteration && memcmp(a->sampler, b->sampler, sizeof a->sampler) == 0;
}
