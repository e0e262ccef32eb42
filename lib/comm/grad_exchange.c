/* SPDX-License-Identifier: MIT */
/* The data-parallel gradient exchange (comm/grad_exchange.h). */
#include "comm/grad_exchange.h"

#include <string.h>

#include "comm/comm_impl.h"
#include "common/alloc.h"
#include "common/error.h"

void sm__shard_slice(size_t g, size_t nr, size_t j, size_t *begin, size_t *count)
{
    const size_t l = (g + nr - 1) / nr;
    /* j l may pass g (g = 5, nr = 4: l = 2, slice 3 would start at 6): such a slice is empty */
    const size_t b = j < nr && j * l < g ? j * l : g;
    *begin = b;
    *count = g - b < l ? g - b : l;
}

void sm__grad_exchange_free(sm__grad_exchange *x)
{
    sm__free(x->send);
    sm__free(x->recv);
    sm__free(x->full);
    memset(x, 0, sizeof *x);
}

static sm_status grow(void **p, size_t *cap, size_t bytes)
{
    if (bytes <= *cap) return SM_OK;
    void *q = sm__realloc(*p, bytes);
    if (!q)
        return sm__fail(SM_ERR_NOMEM, "out of memory for the gradient exchange (%zu bytes)", bytes);
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

sm_status sm__grad_exchange_fold(sm__grad_exchange *x, sm_comm *comm, size_t shards, size_t g,
                                 const float *part, const double *losses, const float **folded,
                                 double *loss_sum)
{
    const size_t k = shards, nr = comm ? (size_t)comm->ops.size : 1;
    const size_t r = comm ? (size_t)comm->ops.rank : 0;
    SM_RETURN_IF(k == 0 || k % nr != 0, SM_ERR_STATE,
                 "%zu gradient shards cannot be split over %zu ranks (the ranks must divide "
                 "SM_TRAINER_GRAD_SHARDS)",
                 k, nr);
    const size_t per = k / nr, l = (g + nr - 1) / nr; /* the last slices may be padding */
    const size_t bb = block_bytes(per, l);
    size_t all_bytes, full_bytes;
    SM_RETURN_IF(!sm__mul_size(nr, bb, &all_bytes) ||
                     !sm__mul_size(nr * l, sizeof(float), &full_bytes),
                 SM_ERR_LIMIT, "the gradient exchange's buffers are too large");
    size_t cap_send = x->cap_block, cap_recv = x->cap_block;
    SM_TRY(grow((void **)&x->send, &cap_send, all_bytes));
    SM_TRY(grow((void **)&x->recv, &cap_recv, all_bytes));
    x->cap_block = cap_send < cap_recv ? cap_send : cap_recv;
    SM_TRY(grow((void **)&x->full, &x->cap_full, full_bytes));

    /* 1. slice j of every local shard to rank j (here too when alone: the same fold follows) */
    for (size_t j = 0; j < nr; j++) {
        unsigned char *blk = x->send + j * bb;
        memcpy(blk, losses, per * sizeof(double));
        float *dst = (float *)(void *)(blk + per * sizeof(double));
        size_t e0, count;
        sm__shard_slice(g, nr, j, &e0, &count);
        for (size_t q = 0; q < per; q++) {
            float *d = dst + q * l;
            if (count) memcpy(d, part + q * g + e0, count * sizeof(float));
            if (count < l) memset(d + count, 0, (l - count) * sizeof(float));
        }
    }
    if (comm)
        SM_TRY(sm__comm_alltoall(comm, x->send, x->recv, bb, "the gradient exchange (all-to-all)"));
    else memcpy(x->recv, x->send, bb);
    /* 2. fold this rank's slice over the K shards in shard order: source rank i's block holds
     * shards i K/N .. (i+1) K/N - 1 */
    float *acc = x->full + r * l;
    double total = 0.0;
    for (size_t i = 0; i < nr; i++) {
        const unsigned char *blk = x->recv + i * bb;
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
    /* 3. every rank's folded slice to every rank (the send buffer is free again) */
    if (comm) {
        SM_TRY(sm__comm_allgather(comm, acc, x->send, l * sizeof(float),
                                  "the gradient exchange (all-gather)"));
        memcpy(x->full, x->send, nr * l * sizeof(float));
    }
    *folded = x->full;
    *loss_sum = total;
    return SM_OK;
}
