/* SPDX-License-Identifier: MIT */
/* Data-parallel steps (include/siamese/comm.h): the step's gradient is the left fold
 * P0 + P1 + ... + P(K-1) of K shard gradients, each summed in micro-batches from its first
 * pair with the loss scaled by the whole batch. With N ranks, rank r computes shards
 * r K/N .. (r+1) K/N - 1. The gradient (G floats: subnet, then head) is cut into N slices of
 * L = ceil(G/N) floats, zeros past G (sm__shard_slice: with G = 5 and N = 4, slice 3 is all
 * padding); an all-to-all sends slice j of each local shard gradient to rank j, which folds its
 * K slices in shard order; an all-gather then gives every rank the whole folded gradient. The
 * collectives only move bytes, and one process (N = 1) runs the same fold on the same numbers,
 * so every N dividing K gives the same bits. Bytes sent per rank and step:
 * (N-1) (K/N) L x 4 (+ K/N losses) in the all-to-all, (N-1) L x 4 in the all-gather. */
#include <string.h>

#include "common/alloc.h"
#include "comm/comm_impl.h"
#include "common/error.h"
#include "network/model.h"

static int n_ranks(const sm_trainer *t) { return t->comm ? t->comm->ops.size : 1; }
static int my_rank(const sm_trainer *t) { return t->comm ? t->comm->ops.rank : 0; }

void sm__shard_slice(size_t g, size_t nr, size_t j, size_t *begin, size_t *count)
{
    const size_t l = (g + nr - 1) / nr;
    /* j l may pass g (g = 5, nr = 4: l = 2, slice 3 would start at 6): such a slice is empty */
    const size_t b = j < nr && j * l < g ? j * l : g;
    *begin = b;
    *count = g - b < l ? g - b : l;
}

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
    sm__free(t->sh_send);
    sm__free(t->sh_recv);
    sm__free(t->sh_full);
    t->sh_part = t->sh_full = NULL;
    t->sh_send = t->sh_recv = NULL;
    t->sh_cap_part = t->sh_cap_block = t->sh_cap_full = 0;
}

static sm_status grow(void **p, size_t *cap, size_t bytes)
{
    if (bytes <= *cap) return SM_OK;
    void *q = sm__realloc(*p, bytes);
    if (!q) return sm__fail(SM_ERR_NOMEM, "out of memory for the gradient exchange (%zu bytes)",
                            bytes);
    *p = q;
    *cap = bytes;
    return SM_OK;
}

/* Block layout of the all-to-all, per destination rank: `per` losses (double), then `per`
 * slices of L floats. */
static size_t block_bytes(size_t per, size_t l)
{
    return per * sizeof(double) + per * l * sizeof(float);
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
                 "SM_TRAINER_GRAD_SHARDS)", k, nr);
    SM_RETURN_IF(n < k, SM_ERR_STATE, "a batch of %zu pairs cannot be cut into %zu gradient "
                 "shards (at least one pair each)", n, k);
    const size_t per = k / nr, in = sm__arch_in_size(&s->arch);
    const size_t ns = s->n_params, g = ns + h->n_params;
    const size_t l = (g + nr - 1) / nr; /* slice length (sm__shard_slice's) */
    const size_t bb = block_bytes(per, l);
    size_t part_bytes, all_bytes;
    SM_RETURN_IF(!sm__mul_size(per * g, sizeof(float), &part_bytes) ||
                     !sm__mul_size(nr, bb, &all_bytes),
                 SM_ERR_LIMIT, "the gradient exchange's buffers are too large");
    SM_TRY(grow((void **)&t->sh_part, &t->sh_cap_part, part_bytes));
    size_t cap_send = t->sh_cap_block, cap_recv = t->sh_cap_block;
    SM_TRY(grow((void **)&t->sh_send, &cap_send, all_bytes));
    SM_TRY(grow((void **)&t->sh_recv, &cap_recv, all_bytes));
    t->sh_cap_block = cap_send < cap_recv ? cap_send : cap_recv;
    SM_TRY(grow((void **)&t->sh_full, &t->sh_cap_full, nr * l * sizeof(float)));

    /* 1. this rank's shards, each from zeroed gradients */
    double losses[1024]; /* per <= SM_TRAINER_GRAD_SHARDS's maximum */
    for (size_t q = 0; q < per; q++) {
        const size_t sh = r * per + q, lo = shard_begin(n, k, sh), hi = shard_begin(n, k, sh + 1);
        SM_TRY(sm__trainer_grads_part(t, hi - lo, n, left + lo * in, right + lo * in,
                                      labels + lo, &losses[q]));
        float *p = t->sh_part + q * g;
        SM_TRY(ops->download(ctx, p, s->grads, ns * sizeof(float)));
        SM_TRY(ops->download(ctx, p + ns, h->grads, h->n_params * sizeof(float)));
    }
    /* 2. slice j of every local shard to rank j (here too when alone: the same fold follows) */
    for (size_t j = 0; j < nr; j++) {
        unsigned char *blk = t->sh_send + j * bb;
        memcpy(blk, losses, per * sizeof(double));
        float *dst = (float *)(void *)(blk + per * sizeof(double));
        size_t e0, ne;
        sm__shard_slice(g, nr, j, &e0, &ne);
        for (size_t q = 0; q < per; q++) {
            float *d = dst + q * l;
            if (ne) memcpy(d, t->sh_part + q * g + e0, ne * sizeof(float));
            /* the padding is folded and gathered too: zeros, not stale bytes */
            if (ne < l) memset(d + ne, 0, (l - ne) * sizeof(float));
        }
    }
    if (t->comm) SM_TRY(sm__comm_alltoall(t->comm, t->sh_send, t->sh_recv, bb,
                                         "the gradient exchange (all-to-all)"));
    else memcpy(t->sh_recv, t->sh_send, bb);
    /* 3. fold this rank's slice over the K shards in shard order: source rank i's block holds
     * shards i K/N .. (i+1) K/N - 1 */
    float *acc = t->sh_full + r * l;
    double total = 0.0;
    for (size_t i = 0; i < nr; i++) {
        const unsigned char *blk = t->sh_recv + i * bb;
        const float *src = (const float *)(const void *)(blk + per * sizeof(double));
        for (size_t q = 0; q < per; q++) {
            double lq;
            memcpy(&lq, blk + q * sizeof(double), sizeof lq);
            total += lq;
            const float *v = src + q * l;
            if (i == 0 && q == 0) memcpy(acc, v, l * sizeof(float));
            else
                for (size_t e = 0; e < l; e++) acc[e] += v[e];
        }
    }
    /* 4. every rank's folded slice to every rank */
    if (t->comm) {
        SM_TRY(sm__comm_allgather(t->comm, acc, t->sh_send, l * sizeof(float),
                                  "the gradient exchange (all-gather)"));
        memcpy(t->sh_full, t->sh_send, nr * l * sizeof(float));
    }
    SM_TRY(ops->upload(ctx, s->grads, t->sh_full, ns * sizeof(float)));
    SM_TRY(ops->upload(ctx, h->grads, t->sh_full + ns, h->n_params * sizeof(float)));
    return sm__trainer_check_finite(t, total / (double)n, loss);
}
