/* SPDX-License-Identifier: MIT */
/* A pair step's gradient (train/training.h): forward and backward in micro-batches, gradients
 * summed (the loss of a pair depends only on that pair, so the result is the whole batch's to
 * float rounding), then the finiteness check every step's gradient passes before Adam. The
 * sharded form, for data-parallel runs, is trainer_shards.c's. */
#include <math.h>
#include <stdatomic.h>
#include <string.h>

#include "common/error.h"
#include "train/training.h"

void sm__step_buffers_destroy(const sm_trainer *t, sm__step_buffers *b)
{
    sm_backend *be = t->subnet->be;
    if (b->ws.act) sm__workspace_destroy(t->subnet, &b->ws);
    float **bufs[] = {&b->feat,   &b->diff,    &b->ddiff,  &b->dfeat,   &b->logits,
                      &b->scores, &b->dlogits, &b->labels, &b->loss_sum};
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++) {
        sm__be_free(be, *bufs[i]);
        *bufs[i] = NULL;
    }
    b->pairs = 0;
}

sm_status sm__step_buffers_create(const sm_trainer *t, size_t pairs, sm__step_buffers *b)
{
    sm_backend *be = t->subnet->be;
    const size_t d = t->head->dim;
    memset(b, 0, sizeof *b);
    b->pairs = pairs;
    sm_status st = sm__workspace_create(t->subnet, 2 * pairs, true, &b->ws);
    if (st == SM_OK) st = sm__be_alloc_floats(be, 2 * pairs * d, &b->feat);
    if (st == SM_OK) st = sm__be_alloc_floats(be, 2 * pairs * d, &b->dfeat);
    if (st == SM_OK) st = sm__be_alloc_floats(be, pairs * d, &b->diff);
    if (st == SM_OK) st = sm__be_alloc_floats(be, pairs * d, &b->ddiff);
    if (st == SM_OK) st = sm__be_alloc_floats(be, pairs, &b->logits);
    if (st == SM_OK) st = sm__be_alloc_floats(be, pairs, &b->scores);
    if (st == SM_OK) st = sm__be_alloc_floats(be, pairs, &b->dlogits);
    if (st == SM_OK) st = sm__be_alloc_floats(be, pairs, &b->labels);
    if (st == SM_OK) st = sm__be_alloc_floats(be, 1, &b->loss_sum);
    if (st != SM_OK) sm__step_buffers_destroy(t, b);
    return st;
}

_Atomic int sm__inject_nonfinite; /* test only: see train/training.h */

/* Plants the fault sm__inject_nonfinite asks for (test only) into the finished gradients or
 * the loss total. */
static sm_status inject_fault(sm_trainer *t, int kind, double *total)
{
    const sm_backend_ops *ops = t->subnet->be->ops;
    void *ctx = t->subnet->be->ctx;
    float bad = kind == SM__INJECT_HEAD_INF ? INFINITY : NAN;
    switch (kind) {
    case SM__INJECT_SUBNET_NAN:
        return ops->upload(ctx, t->subnet->grads + t->subnet->n_params / 2, &bad, sizeof bad);
    case SM__INJECT_HEAD_INF:
        return ops->upload(ctx, t->head->grads + t->head->n_params / 2, &bad, sizeof bad);
    case SM__INJECT_LOSS_NAN: *total = NAN; return SM_OK;
    }
    return SM_OK;
}

sm_status sm__trainer_grads_part(sm_trainer *t, size_t n, size_t scale_n, const float *left,
                                 const float *right, const float *labels, double *sum,
                                 const sm__grads_hook *last)
{
    sm_subnet *s = t->subnet;
    sm_head *h = t->head;
    sm_backend *be = s->be;
    const sm_backend_ops *ops = be->ops;
    void *ctx = be->ctx;
    sm__step_buffers *b = &t->buf;
    const size_t in = sm__arch_in_size(&s->arch), d = h->dim;
    const size_t nl = s->arch.n_layers;

    SM_TRY(ops->zero(ctx, s->grads, s->n_params * sizeof(float)));
    SM_TRY(ops->zero(ctx, h->grads, h->n_params * sizeof(float)));
    double total = 0.0;
    for (size_t off = 0; off < n; off += b->pairs) {
        size_t p = n - off < b->pairs ? n - off : b->pairs;
        float *x = b->ws.act[0];
        SM_TRY(ops->upload(ctx, x, left + off * in, p * in * sizeof(float)));
        SM_TRY(ops->upload(ctx, x + p * in, right + off * in, p * in * sizeof(float)));
        SM_TRY(ops->upload(ctx, b->labels, labels + off, p * sizeof(float)));

        SM_TRY(sm__subnet_forward(s, &b->ws, 2 * p));
        SM_TRY(ops->sigmoid_fwd(ctx, 2 * p * d, b->ws.act[nl], b->feat));
        SM_TRY(sm__head_logits(h, p, b->feat, b->diff, b->logits));
        SM_TRY(ops->bce_fwd_bwd(ctx, (int)p, b->logits, b->labels, (float)(1.0 / (double)scale_n),
                                b->scores, b->loss_sum, b->dlogits));
        float part;
        SM_TRY(ops->download(ctx, &part, b->loss_sum, sizeof part));
        total += part;

        /* the last micro-batch finishes the gradients, the head's first */
        const sm__grads_hook *hook = off + p == n ? last : NULL;
        SM_TRY(sm__head_backward(h, p, b->feat, b->diff, b->dlogits, b->ddiff, b->dfeat));
        if (hook) SM_TRY(hook->done(hook->user, s->n_params));
        SM_TRY(ops->sigmoid_bwd(ctx, 2 * p * d, b->feat, b->dfeat, b->ws.grad_a));
        SM_TRY(sm__subnet_backward(s, &b->ws, 2 * p, hook));
    }
    *sum = total;
    return SM_OK;
}

sm_status sm__trainer_check_finite(sm_trainer *t, double total, float *loss)
{
    sm_subnet *s = t->subnet;
    sm_head *h = t->head;
    const sm_backend_ops *ops = s->be->ops;
    void *ctx = s->be->ctx;
    if (atomic_load_explicit(&sm__inject_nonfinite, memory_order_relaxed))
        SM_TRY(inject_fault(t, atomic_exchange(&sm__inject_nonfinite, 0), &total));
    *loss = (float)total;
    SM_RETURN_IF(!isfinite(*loss), SM_ERR_NUMERIC,
                 "the loss is not finite (%g): the step was not applied", (double)*loss);
    bool ok_s, ok_h;
    SM_TRY(ops->all_finite(ctx, s->n_params, s->grads, &ok_s));
    SM_TRY(ops->all_finite(ctx, h->n_params, h->grads, &ok_h));
    SM_RETURN_IF(!ok_s || !ok_h, SM_ERR_NUMERIC,
                 "a %s gradient is not finite: the step was not applied", ok_s ? "head" : "subnet");
    return SM_OK;
}

sm_status sm__trainer_compute_grads(sm_trainer *t, size_t n, const float *left, const float *right,
                                    const float *labels, float *loss)
{
    if (t->shards > 1 || t->comm) return sm__shards_grads(t, n, left, right, labels, loss);
    double total;
    SM_TRY(sm__trainer_grads_part(t, n, n, left, right, labels, &total, NULL));
    return sm__trainer_check_finite(t, total / (double)n, loss);
}
