/* SPDX-License-Identifier: MIT */
/* Data-parallel steps (include/siamese/comm.h): the step's gradient is the fold of K shard
 * gradients (comm/grad_exchange.h says how the ranks share the fold), each summed in
 * micro-batches from its first pair with the loss scaled by the whole batch. With N ranks,
 * rank r computes shards r K/N .. (r+1) K/N - 1 here and hands them to the exchange. */
#include <string.h>

#include "comm/comm_impl.h"
#include "comm/grad_exchange.h"
#include "common/alloc.h"
#include "common/error.h"
#include "train/training.h"

static int n_ranks(const sm_trainer *t) { return t->comm ? t->comm->ops.size : 1; }
static int my_rank(const sm_trainer *t) { return t->comm ? t->comm->ops.rank : 0; }

/* Pairs of shard s of a batch of n pairs in K shards. */
static size_t shard_begin(size_t n, size_t k, size_t s) { return s * n / k; }

void sm__shards_local_pairs(const sm_trainer *t, size_t n, size_t *lo, size_t *hi)
{
    const size_t k = (size_t)t->shards, per = k / (size_t)n_ranks(t), r = (size_t)my_rank(t);
    if (!t->comm || k % (size_t)n_ranks(t) != 0) {
        *lo = 0, *hi = n;
        return;
    }
    *lo = shard_begin(n, k, r * per);
    *hi = shard_begin(n, k, (r + 1) * per);
}

void sm__shards_free(sm_trainer *t)
{
    sm__free(t->sh_part);
    t->sh_part = NULL;
    t->sh_cap_part = 0;
    sm__grad_exchange_free(&t->sh_x);
}

sm_status sm__shards_grads(sm_trainer *t, size_t n, const float *left, const float *right,
                           const float *labels, float *loss)
{
    sm_subnet *s = t->subnet;
    sm_head *h = t->head;
    const sm_backend_ops *ops = s->be->ops;
    void *ctx = s->be->ctx;
    const size_t k = (size_t)t->shards, nr = (size_t)n_ranks(t), r = (size_t)my_rank(t);
    SM_RETURN_IF(k % nr != 0, SM_ERR_STATE,
                 "%zu gradient shards cannot be split over %zu ranks (the ranks must divide "
                 "SM_TRAINER_GRAD_SHARDS)",
                 k, nr);
    SM_RETURN_IF(n < k, SM_ERR_STATE,
                 "a batch of %zu pairs cannot be cut into %zu gradient "
                 "shards (at least one pair each)",
                 n, k);
    const size_t per = k / nr, in = sm__arch_in_size(&s->arch);
    const size_t ns = s->n_params, g = ns + h->n_params;
    size_t part_bytes;
    SM_RETURN_IF(!sm__mul_size(per * g, sizeof(float), &part_bytes), SM_ERR_LIMIT,
                 "the gradient exchange's buffers are too large");
    if (part_bytes > t->sh_cap_part) {
        float *p = sm__realloc(t->sh_part, part_bytes);
        SM_RETURN_IF(!p, SM_ERR_NOMEM, "out of memory for the gradient exchange (%zu bytes)",
                     part_bytes);
        t->sh_part = p;
        t->sh_cap_part = part_bytes;
    }
    /* this rank's shards, each from zeroed gradients */
    double losses[SM__MAX_GRAD_SHARDS];
    for (size_t q = 0; q < per; q++) {
        const size_t sh = r * per + q, lo = shard_begin(n, k, sh), hi = shard_begin(n, k, sh + 1);
        SM_TRY(sm__trainer_grads_part(t, hi - lo, n, left + lo * in, right + lo * in, labels + lo,
                                      &losses[q]));
        float *p = t->sh_part + q * g;
        SM_TRY(ops->download(ctx, p, s->grads, ns * sizeof(float)));
        SM_TRY(ops->download(ctx, p + ns, h->grads, h->n_params * sizeof(float)));
    }
    const float *folded;
    double total;
    SM_TRY(sm__grad_exchange_fold(&t->sh_x, t->comm, k, g, t->sh_part, losses, &folded, &total));
    SM_TRY(ops->upload(ctx, s->grads, folded, ns * sizeof(float)));
    SM_TRY(ops->upload(ctx, h->grads, folded + ns, h->n_params * sizeof(float)));
    return sm__trainer_check_finite(t, total / (double)n, loss);
}
