/* SPDX-License-Identifier: MIT */
/* Inference: embeddings and pair scores. Each call builds its own inference workspace (two
 * alternating activation buffers, no gradients), so concurrent calls on the same const model
 * do not share scratch memory. */
#include "common/alloc.h"
#include "common/error.h"
#include "network/network.h"

/* Pairs per forward, which bounds memory whatever n is: the backend's preference (the GPU wants
 * large chunks; on the CPU 16 pairs, 32 images as a training micro-batch, ran 150 predictions
 * 5 % faster than 32 on cpu-dnnl, the same on cpu-blas, in 72 MB less). */
static size_t predict_chunk(const sm_subnet *s)
{
    return (size_t)sm__backend_props(s->be)->predict_pairs;
}

size_t sm__subnet_embed_chunk(const sm_subnet *s)
{
    return (size_t)sm__backend_props(s->be)->embed_images;
}

typedef struct predict_bufs {
    sm__workspace ws;
    float *feat, *diff, *logits, *scores;
} predict_bufs;

static void bufs_destroy(const sm_subnet *s, predict_bufs *b)
{
    if (b->ws.act) sm__workspace_destroy(s, &b->ws);
    sm__be_free(s->be, b->feat);
    sm__be_free(s->be, b->diff);
    sm__be_free(s->be, b->logits);
    sm__be_free(s->be, b->scores);
}

/* Refuses an n whose buffers (n images of `in` floats, n results of `out` floats) could not
 * even exist: n * size * sizeof(float) must fit in size_t, or the pointer arithmetic over the
 * caller's buffers would wrap. */
static sm_status check_count(const char *fn, size_t n, size_t in, size_t out)
{
    size_t bytes;
    SM_RETURN_IF(!sm__mul_size(n, in, &bytes) || !sm__mul_size(bytes, sizeof(float), &bytes) ||
                     !sm__mul_size(n, out, &bytes) || !sm__mul_size(bytes, sizeof(float), &bytes),
                 SM_ERR_INVALID_ARG, "%s: %zu images is more than any buffer can hold", fn, n);
    return SM_OK;
}

static sm_status bufs_create(const sm_subnet *s, size_t images, size_t pairs, predict_bufs *b)
{
    *b = (predict_bufs){0};
    size_t d = sm_subnet_feature_dim(s);
    sm_status st = sm__workspace_create(s, images, false, &b->ws);
    if (st == SM_OK) st = sm__be_alloc_floats(s->be, images * d, &b->feat);
    if (st == SM_OK && pairs) st = sm__be_alloc_floats(s->be, pairs * d, &b->diff);
    if (st == SM_OK && pairs) st = sm__be_alloc_floats(s->be, pairs, &b->logits);
    if (st == SM_OK && pairs) st = sm__be_alloc_floats(s->be, pairs, &b->scores);
    if (st != SM_OK) bufs_destroy(s, b);
    return st;
}

SM_API sm_status sm_embed(const sm_subnet *s, size_t n, const float *images, float *features)
{
    SM_CHECK_ARG(s && images && features, "sm_embed: NULL argument");
    if (n == 0) return SM_OK;
    const sm_backend_ops *ops = s->be->ops;
    void *ctx = s->be->ctx;
    const size_t in = sm__arch_in_size(&s->arch), d = sm_subnet_feature_dim(s);
    SM_TRY(check_count("sm_embed", n, in, d));
    const size_t chunk = n < 2 * predict_chunk(s) ? n : 2 * predict_chunk(s);
    predict_bufs b;
    SM_TRY(bufs_create(s, chunk, 0, &b));
    sm_status st = SM_OK;
    for (size_t off = 0; off < n && st == SM_OK; off += chunk) {
        size_t m = n - off < chunk ? n - off : chunk;
        st = ops->upload(ctx, b.ws.act[0], images + off * in, m * in * sizeof(float));
        if (st == SM_OK) st = sm__subnet_forward(s, &b.ws, m);
        if (st == SM_OK) st = ops->sigmoid_fwd(ctx, m * d, b.ws.act[s->arch.n_layers], b.feat);
        if (st == SM_OK) st = ops->download(ctx, features + off * d, b.feat, m * d * sizeof(float));
    }
    bufs_destroy(s, &b);
    return st;
}

/* The pairs' scores, or with `logits` their logits w . |F1 - F2| + b (the sigmoid left out). */
static sm_status predict(const char *fn, const sm_subnet *s, const sm_head *h, size_t n,
                         const float *a, const float *b_img, bool logits, float *out)
{
    SM_CHECK_ARG(s && h && a && b_img && out, "%s: NULL argument", fn);
    SM_RETURN_IF(h->dim != sm_subnet_feature_dim(s), SM_ERR_SHAPE,
                 "head takes %zu features, the subnet gives %zu", h->dim, sm_subnet_feature_dim(s));
    SM_CHECK_ARG(s->be == h->be, "%s: subnet and head are on different backends", fn);
    if (n == 0) return SM_OK;
    const sm_backend_ops *ops = s->be->ops;
    void *ctx = s->be->ctx;
    const size_t in = sm__arch_in_size(&s->arch), d = h->dim;
    SM_TRY(check_count(fn, n, in, 1));
    const size_t chunk = n < predict_chunk(s) ? n : predict_chunk(s);
    predict_bufs b;
    SM_TRY(bufs_create(s, 2 * chunk, chunk, &b));
    sm_status st = SM_OK;
    for (size_t off = 0; off < n && st == SM_OK; off += chunk) {
        size_t p = n - off < chunk ? n - off : chunk;
        float *x = b.ws.act[0];
        st = ops->upload(ctx, x, a + off * in, p * in * sizeof(float));
        if (st == SM_OK)
            st = ops->upload(ctx, x + p * in, b_img + off * in, p * in * sizeof(float));
        if (st == SM_OK) st = sm__subnet_forward(s, &b.ws, 2 * p);
        if (st == SM_OK) st = ops->sigmoid_fwd(ctx, 2 * p * d, b.ws.act[s->arch.n_layers], b.feat);
        if (st == SM_OK) st = sm__head_logits(h, p, b.feat, b.diff, b.logits);
        /* the score is the plain sigmoid; the clip only guards the training loss's logs */
        if (st == SM_OK && !logits) st = ops->sigmoid_fwd(ctx, p, b.logits, b.scores);
        if (st == SM_OK)
            st = ops->download(ctx, out + off, logits ? b.logits : b.scores, p * sizeof(float));
    }
    bufs_destroy(s, &b);
    return st;
}

SM_API sm_status sm_predict_pairs(const sm_subnet *s, const sm_head *h, size_t n, const float *a,
                                  const float *b_img, float *scores)
{
    return predict("sm_predict_pairs", s, h, n, a, b_img, false, scores);
}

SM_API sm_status sm_predict_pairs_logits(const sm_subnet *s, const sm_head *h, size_t n,
                                         const float *a, const float *b_img, float *logits)
{
    return predict("sm_predict_pairs_logits", s, h, n, a, b_img, true, logits);
}

SM_API sm_status sm_predict_pair(const sm_subnet *s, const sm_head *h, const float *a,
                                 const float *b, float *score)
{
    SM_CHECK_ARG(s && h && a && b && score, "sm_predict_pair: NULL argument");
    return sm_predict_pairs(s, h, 1, a, b, score);
}
