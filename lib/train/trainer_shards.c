/* SPDX-License-Identifier: MIT */
/* Data-parallel steps (include/siamese/comm.h): the step's gradient is the fold of K shard
 * gradients (comm/grad_exchange.h says how the ranks share the fold), each summed in
 * micro-batches from its first pair with the loss scaled by the whole batch. With N ranks,
 * rank r computes shards r K/N .. (r+1) K/N - 1 here and hands them to the exchange: the last
 * one piece by piece as its backward pass finishes them, where the exchange overlaps. */
#include <stdbool.h>
#include <stdint.h>
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

/* The last local shard's last backward pass, overlapped with the exchange: each time a part of
 * the gradient is final, it comes down into the shard's slot of sh_part and the exchange may
 * send the buckets it completes. */
typedef struct shard_watch {
    sm_trainer *t;
    float *dst;  /* the shard's G floats in sh_part */
    size_t from; /* [from, G) is down already */
} shard_watch;

/* Downloads the gradient floats [from, w->from) (subnet's, then head's coordinates). */
static sm_status download_range(shard_watch *w, size_t from)
{
    sm_subnet *s = w->t->subnet;
    sm_head *h = w->t->head;
    const sm_backend_ops *ops = s->be->ops;
    void *ctx = s->be->ctx;
    const size_t ns = s->n_params;
    if (w->from > ns) { /* the head's part */
        const size_t a = from > ns ? from : ns;
        SM_TRY(ops->download(ctx, w->dst + a, h->grads + (a - ns), (w->from - a) * sizeof(float)));
        w->from = a;
    }
    if (from < w->from)
        SM_TRY(ops->download(ctx, w->dst + from, s->grads + from,
                             (w->from - from) * sizeof(float)));
    w->from = from;
    return SM_OK;
}

static sm_status on_grads_done(void *user, size_t from)
{
    shard_watch *w = user;
    if (from >= w->from) return SM_OK;
    SM_TRY(download_range(w, from));
    sm__grad_exchange_ready(&w->t->sh_x, from);
    return SM_OK;
}

/* This rank's shards, each from zeroed gradients, into sh_part; the exchange begun. */
static sm_status local_shards(sm_trainer *t, size_t n, const float *left, const float *right,
                              const float *labels, double *losses)
{
    sm_subnet *s = t->subnet;
    sm_head *h = t->head;
    const sm_backend_ops *ops = s->be->ops;
    void *ctx = s->be->ctx;
    const size_t k = (size_t)t->shards, nr = (size_t)n_ranks(t), r = (size_t)my_rank(t);
    const size_t per = k / nr, in = sm__arch_in_size(&s->arch);
    const size_t ns = s->n_params, g = ns + h->n_params;
    for (size_t q = 0; q < per; q++) {
        const size_t sh = r * per + q, lo = shard_begin(n, k, sh), hi = shard_begin(n, k, sh + 1);
        float *p = t->sh_part + q * g;
        shard_watch w = {t, p, g};
        const sm__grads_hook hook = {on_grads_done, &w};
        const bool watch = q + 1 == per && sm__grad_exchange_overlaps(&t->sh_x);
        SM_TRY(sm__trainer_grads_part(t, hi - lo, n, left + lo * in, right + lo * in, labels + lo,
                                      &losses[q], watch ? &hook : NULL));
        if (!watch) {
            SM_TRY(ops->download(ctx, p, s->grads, ns * sizeof(float)));
            SM_TRY(ops->download(ctx, p + ns, h->grads, h->n_params * sizeof(float)));
        } else if (w.from > 0) { /* parameters before the first layer that has any: none yet */
            SM_TRY(download_range(&w, 0));
        }
    }
    return SM_OK;
}

sm_status sm__shards_grads(sm_trainer *t, size_t n, const float *left, const float *right,
                           const float *labels, float *loss)
{
    sm_subnet *s = t->subnet;
    sm_head *h = t->head;
    const sm_backend_ops *ops = s->be->ops;
    void *ctx = s->be->ctx;
    const size_t k = (size_t)t->shards, nr = (size_t)n_ranks(t);
    SM_RETURN_IF(k % nr != 0, SM_ERR_STATE,
                 "%zu gradient shards cannot be split over %zu ranks (the ranks must divide "
                 "SM_TRAINER_GRAD_SHARDS)",
                 k, nr);
    SM_RETURN_IF(n < k, SM_ERR_STATE,
                 "a batch of %zu pairs cannot be cut into %zu gradient "
                 "shards (at least one pair each)",
                 n, k);
    const size_t per = k / nr, ns = s->n_params, g = ns + h->n_params;
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
    SM_TRY(sm__grad_exchange_begin(&t->sh_x, t->comm, k, g, t->sh_part,
                                   (uint64_t)t->exchange_bucket, t->exchange_overlap));
    double losses[SM__MAX_GRAD_SHARDS];
    sm_status st = local_shards(t, n, left, right, labels, losses);
    if (st != SM_OK) {
        sm__grad_exchange_cancel(&t->sh_x);
        return st;
    }
    const float *folded;
    double total;
    SM_TRY(sm__grad_exchange_finish(&t->sh_x, losses, &folded, &total));
    SM_TRY(ops->upload(ctx, s->grads, folded, ns * sizeof(float)));
    SM_TRY(ops->upload(ctx, h->grads, folded + ns, h->n_params * sizeof(float)));
    return sm__trainer_check_finite(t, total / (double)n, loss);
}
