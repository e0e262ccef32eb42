/* SPDX-License-Identifier: MIT */
/* The P x K step's gradient (train/training.h): all pairs of P classes x K images each. */
#include <math.h>
#include <string.h>

#include "common/alloc.h"
#include "common/error.h"
#include "train/training.h"

/* ---------------------------------------------------------------------------------------------
 * P x K steps (docs/architecture.md): every image through the twin once for its features, the
 * head over all pairs of them, then each image once more through the twin to backpropagate its
 * summed dL/dfeature (a second forward, because keeping P*K images' activations would cost
 * P*K/(2 x micro-batch) times the memory of a pair step). When the P*K images fit one chunk,
 * the first forward's activations are still there and are used as they are.
 * ------------------------------------------------------------------------------------------- */

/* Pairs of a P x K batch in a fixed order: similar pairs first (i < j in one class), then
 * dissimilar ones (i < j in different classes), both in increasing (i, j). */
typedef struct pk_iter {
    size_t n, k; /* images, images per class */
    int similar; /* the phase */
    size_t i, j;
    int done;
} pk_iter;

static size_t pk_lo(const pk_iter *it, size_t i)
{
    return it->similar ? i + 1 : (i / it->k + 1) * it->k;
}

static size_t pk_hi(const pk_iter *it, size_t i)
{
    return it->similar ? (i / it->k + 1) * it->k : it->n;
}

/* Settles on the first valid (i, j) at or after the current one, across phases. */
static void pk_settle(pk_iter *it)
{
    for (;;) {
        while (it->i < it->n && it->j >= pk_hi(it, it->i)) {
            it->i++;
            if (it->i < it->n) it->j = pk_lo(it, it->i);
        }
        if (it->i < it->n) return;
        if (!it->similar) {
            it->done = 1;
            return;
        }
        it->similar = 0;
        it->i = 0;
        it->j = pk_lo(it, 0);
    }
}

static void pk_begin(pk_iter *it, size_t n, size_t k)
{
    *it = (pk_iter){.n = n, .k = k, .similar = 1, .i = 0, .j = 1};
    pk_settle(it);
}

static sm_status pk_grow(float **p, size_t n)
{
    float *q = sm__realloc(*p, n * sizeof(float));
    if (!q) return sm__fail(SM_ERR_NOMEM, "out of memory for a P x K batch");
    *p = q;
    return SM_OK;
}

/* Host buffers for n images and chunks of `chunk` pairs; kept (grown only). */
static sm_status pk_reserve(sm_trainer *t, size_t n, size_t chunk)
{
    const size_t in = sm__arch_in_size(&t->subnet->arch), d = t->head->dim;
    if (n > t->pk_cap_img) {
        SM_TRY(pk_grow(&t->pk_img, n * in));
        SM_TRY(pk_grow(&t->pk_feat, n * d));
        SM_TRY(pk_grow(&t->pk_dfeat, n * d));
        double *q = sm__realloc(t->pk_query, 2 * n * sizeof *q);
        if (!q) return sm__fail(SM_ERR_NOMEM, "out of memory for a P x K batch");
        t->pk_query = q;
        t->pk_cap_img = n;
    }
    if (chunk > t->pk_cap_chunk) {
        SM_TRY(pk_grow(&t->pk_pair, 2 * chunk * d));
        SM_TRY(pk_grow(&t->pk_labels, chunk));
        size_t *a = sm__realloc(t->pk_pi, chunk * sizeof *a);
        if (a) t->pk_pi = a;
        size_t *b = a ? sm__realloc(t->pk_pj, chunk * sizeof *b) : NULL;
        if (b) t->pk_pj = b;
        if (!a || !b) return sm__fail(SM_ERR_NOMEM, "out of memory for a P x K batch");
        t->pk_cap_chunk = chunk;
    }
    return SM_OK;
}

/* The softmax loss from all logits z (in pair order), on the host in double: per query i,
 * L_i = -(1/(K-1)) sum over its similar j of log softmax_j(z_i.) over all j != i; the loss is
 * the mean over the queries. z_ij = z_ji serves queries i and j, so its gradient is
 * (1/N) [(s_ij - t_ij) + (s_ji - t_ji)], s the softmax, t = 1/(K-1) on similar pairs. Replaces
 * z by that gradient; returns the loss. */
static double pk_softmax(sm_trainer *t, size_t n, size_t k, float *z)
{
    double *mx = t->pk_query, *sum = t->pk_query + n;
    for (size_t i = 0; i < n; i++) mx[i] = -INFINITY, sum[i] = 0.0;
    pk_iter it;
    size_t r = 0;
    for (pk_begin(&it, n, k); !it.done; it.j++, pk_settle(&it), r++) {
        mx[it.i] = fmax(mx[it.i], (double)z[r]);
        mx[it.j] = fmax(mx[it.j], (double)z[r]);
    }
    r = 0;
    for (pk_begin(&it, n, k); !it.done; it.j++, pk_settle(&it), r++) {
        sum[it.i] += exp((double)z[r] - mx[it.i]);
        sum[it.j] += exp((double)z[r] - mx[it.j]);
    }
    const double tgt = 1.0 / (double)(k - 1);
    double total = 0.0;
    r = 0;
    for (pk_begin(&it, n, k); !it.done; it.j++, pk_settle(&it), r++) {
        double li = (double)z[r] - mx[it.i] - log(sum[it.i]);
        double lj = (double)z[r] - mx[it.j] - log(sum[it.j]);
        double ty = it.similar ? tgt : 0.0;
        if (it.similar) total -= tgt * (li + lj);
        z[r] = (float)(((exp(li) - ty) + (exp(lj) - ty)) / (double)n);
    }
    return total / (double)n;
}

size_t sm__pk_one_pass_bytes = SM__PK_ONE_PASS_BYTES;

/* The buffers a batch of n images runs in: the trainer's when they hold n images; else, when
 * a workspace for all n fits SM__PK_ONE_PASS_BYTES, buffers for the whole batch (made once,
 * kept); else the trainer's, in chunks. */
static sm_status pk_buffers(sm_trainer *t, size_t n, sm__step_buffers **out)
{
    *out = &t->buf;
    if (n <= t->buf.ws.cap) return SM_OK;
    size_t bytes;
    if (!sm__mul_size(sm__workspace_image_bytes(t->subnet), n, &bytes) ||
        bytes > sm__pk_one_pass_bytes)
        return SM_OK;
    if (t->pk_buf.ws.cap < n) {
        sm__step_buffers nb;
        SM_TRY(sm__step_buffers_create(t, (n + 1) / 2, &nb));
        sm__step_buffers_destroy(t, &t->pk_buf);
        t->pk_buf = nb;
    }
    *out = &t->pk_buf;
    return SM_OK;
}

static sm_status compute_grads_pk(sm_trainer *t, size_t p, size_t k, const float *images, int mode,
                                  float *loss)
{
    sm_subnet *s = t->subnet;
    sm_head *h = t->head;
    const sm_backend_ops *ops = s->be->ops;
    void *ctx = s->be->ctx;
    sm__step_buffers *b;
    SM_TRY(pk_buffers(t, p * k, &b));
    const size_t in = sm__arch_in_size(&s->arch), d = h->dim, nl = s->arch.n_layers;
    const size_t n = p * k, cap = b->ws.cap, chunk = b->pairs;
    const double n_sim = (double)p * (double)(k * (k - 1) / 2);
    const double n_dis = (double)k * (double)k * (double)(p * (p - 1) / 2);
    const double w_sim = mode == SM_PK_LOSS_BCE ? 1.0 / (n_sim + n_dis) : 0.5 / n_sim;
    const double w_dis = mode == SM_PK_LOSS_BCE ? 1.0 / (n_sim + n_dis) : 0.5 / n_dis;
    SM_TRY(pk_reserve(t, n, chunk));

    SM_TRY(ops->zero(ctx, s->grads, s->n_params * sizeof(float)));
    SM_TRY(ops->zero(ctx, h->grads, h->n_params * sizeof(float)));
    /* 1. features of every image (sigmoid outputs), to the host */
    for (size_t off = 0; off < n; off += cap) {
        size_t c = n - off < cap ? n - off : cap;
        SM_TRY(ops->upload(ctx, b->ws.act[0], images + off * in, c * in * sizeof(float)));
        SM_TRY(sm__subnet_forward(s, &b->ws, c));
        SM_TRY(ops->sigmoid_fwd(ctx, c * d, b->ws.act[nl], b->feat));
        SM_TRY(ops->download(ctx, t->pk_feat + off * d, b->feat, c * d * sizeof(float)));
    }
    /* 2. the head over all pairs, in chunks; dL/dfeature summed per image on the host. The
     * softmax loss needs every logit first: a pass that only collects them, then the host
     * computes each pair's dL/dlogit, then the backward pass (the head's forward recomputed). */
    const size_t n_pairs = n * (n - 1) / 2;
    const bool softmax = mode == SM_PK_LOSS_SOFTMAX;
    if (softmax && n_pairs > t->pk_cap_z) {
        SM_TRY(pk_grow(&t->pk_z, n_pairs));
        t->pk_cap_z = n_pairs;
    }
    memset(t->pk_dfeat, 0, n * d * sizeof(float));
    double total = 0.0;
    for (int pass = softmax ? 0 : 1; pass < 2; pass++) {
        pk_iter it;
        size_t done = 0;
        for (pk_begin(&it, n, k); !it.done;) {
            size_t q = 0, q_sim = 0;
            for (; q < chunk && !it.done; q++) {
                t->pk_pi[q] = it.i, t->pk_pj[q] = it.j;
                t->pk_labels[q] = it.similar ? 1.0f : 0.0f;
                q_sim += (size_t)it.similar;
                it.j++;
                pk_settle(&it);
            }
            for (size_t r = 0; r < q; r++) {
                memcpy(t->pk_pair + r * d, t->pk_feat + t->pk_pi[r] * d, d * sizeof(float));
                memcpy(t->pk_pair + (q + r) * d, t->pk_feat + t->pk_pj[r] * d, d * sizeof(float));
            }
            SM_TRY(ops->upload(ctx, b->feat, t->pk_pair, 2 * q * d * sizeof(float)));
            SM_TRY(sm__head_logits(h, q, b->feat, b->diff, b->logits));
            if (softmax && pass == 0) {
                SM_TRY(ops->download(ctx, t->pk_z + done, b->logits, q * sizeof(float)));
                done += q;
                continue;
            }
            if (softmax) {
                SM_TRY(ops->upload(ctx, b->dlogits, t->pk_z + done, q * sizeof(float)));
            } else {
                SM_TRY(ops->upload(ctx, b->labels, t->pk_labels, q * sizeof(float)));
                /* similar pairs lead the chunk: one BCE call per weight */
                const size_t part_off[2] = {0, q_sim}, part_n[2] = {q_sim, q - q_sim};
                const double part_w[2] = {w_sim, w_dis};
                for (int g = 0; g < 2; g++) {
                    if (!part_n[g]) continue;
                    size_t o = part_off[g];
                    SM_TRY(ops->bce_fwd_bwd(ctx, (int)part_n[g], b->logits + o, b->labels + o,
                                            (float)part_w[g], b->scores + o, b->loss_sum,
                                            b->dlogits + o));
                    float part;
                    SM_TRY(ops->download(ctx, &part, b->loss_sum, sizeof part));
                    total += (double)part * part_w[g];
                }
            }
            done += q;
            SM_TRY(sm__head_backward(h, q, b->feat, b->diff, b->dlogits, b->ddiff, b->dfeat));
            SM_TRY(ops->download(ctx, t->pk_pair, b->dfeat, 2 * q * d * sizeof(float)));
            for (size_t r = 0; r < q; r++) {
                float *di = t->pk_dfeat + t->pk_pi[r] * d, *dj = t->pk_dfeat + t->pk_pj[r] * d;
                const float *gi = t->pk_pair + r * d, *gj = t->pk_pair + (q + r) * d;
                for (size_t e = 0; e < d; e++) di[e] += gi[e], dj[e] += gj[e];
            }
        }
        if (softmax && pass == 0) total = pk_softmax(t, n, k, t->pk_z);
    }
    /* 3. backpropagate each image's dL/dfeature through the twin */
    for (size_t off = 0; off < n; off += cap) {
        size_t c = n - off < cap ? n - off : cap;
        if (n > cap) {
            SM_TRY(ops->upload(ctx, b->ws.act[0], images + off * in, c * in * sizeof(float)));
            SM_TRY(sm__subnet_forward(s, &b->ws, c));
        }
        SM_TRY(ops->sigmoid_fwd(ctx, c * d, b->ws.act[nl], b->feat));
        SM_TRY(ops->upload(ctx, b->dfeat, t->pk_dfeat + off * d, c * d * sizeof(float)));
        SM_TRY(ops->sigmoid_bwd(ctx, c * d, b->feat, b->dfeat, b->ws.grad_a));
        SM_TRY(sm__subnet_backward(s, &b->ws, c, NULL));
    }
    return sm__trainer_check_finite(t, total, loss);
}

sm_status sm__trainer_pk_reserve(sm_trainer *t, size_t n) { return pk_reserve(t, n, t->buf.pairs); }

sm_status sm__trainer_compute_grads_pk(sm_trainer *t, size_t p, size_t k, const float *images,
                                       int loss_mode, float *loss)
{
    SM_TRY(pk_reserve(t, p * k, t->buf.pairs));
    return compute_grads_pk(t, p, k, images, loss_mode, loss);
}
