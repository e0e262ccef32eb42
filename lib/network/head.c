/* SPDX-License-Identifier: MIT */
/* The FC head: score = sigmoid(w . |F1 - F2| + b). Parameters: dim weights, then the bias. */
#include "common/alloc.h"
#include "common/error.h"
#include "network/network.h"
#include "common/rng.h"

SM_API sm_status sm_head_create(sm_backend *be, size_t dim, uint64_t seed, sm_head **out)
{
    SM_CHECK_ARG(be && out, "sm_head_create: NULL argument");
    SM_CHECK_ARG(dim >= 1 && dim <= ((size_t)1 << 24), "head feature dim %zu out of range", dim);
    sm_head *h = sm__calloc(1, sizeof *h);
    if (!h) return sm__fail(SM_ERR_NOMEM, "out of memory creating a head");
    h->be = be;
    h->dim = dim;
    h->n_params = dim + 1;
    sm_status st = sm__be_alloc_floats(be, h->n_params, &h->params);
    if (st == SM_OK) {
        sm__rng rng;
        sm__rng_seed(&rng, seed);
        st = sm__init_normal(be, h->params, h->n_params, 0.01, &rng);
    }
    if (st != SM_OK) {
        sm_head_destroy(h);
        return st;
    }
    *out = h;
    return SM_OK;
}

SM_API void sm_head_destroy(sm_head *h)
{
    if (!h) return;
    sm__be_free(h->be, h->params);
    sm__be_free(h->be, h->grads);
    sm__free(h);
}

SM_API size_t sm_head_feature_dim(const sm_head *h) { return h ? h->dim : 0; }

sm_status sm__head_read_params(const sm_head *h, float *host)
{
    return h->be->ops->download(h->be->ctx, host, h->params, h->n_params * sizeof(float));
}

sm_status sm__head_write_params(sm_head *h, const float *host)
{
    return h->be->ops->upload(h->be->ctx, h->params, host, h->n_params * sizeof(float));
}

sm_status sm__head_read_grads(const sm_head *h, float *host)
{
    SM_RETURN_IF(!h->grads, SM_ERR_STATE, "the head has no gradients (no trainer yet)");
    return h->be->ops->download(h->be->ctx, host, h->grads, h->n_params * sizeof(float));
}

sm_status sm__head_logits(const sm_head *h, size_t pairs, const float *feat, float *diff,
                          float *logits)
{
    const sm_backend_ops *ops = h->be->ops;
    void *ctx = h->be->ctx;
    const size_t d = h->dim;
    SM_TRY(ops->absdiff_fwd(ctx, pairs * d, feat, feat + pairs * d, diff));
    SM_TRY(ops->gemm(ctx, false, false, (int)pairs, 1, (int)d, 1.0f, diff, (int)d, h->params, 1,
                     0.0f, logits, 1));
    return ops->bias_add(ctx, (int)pairs, 1, h->params + d, logits);
}

sm_status sm__head_backward(sm_head *h, size_t pairs, const float *feat, const float *diff,
                            const float *dlogits, float *ddiff, float *dfeat)
{
    const sm_backend_ops *ops = h->be->ops;
    void *ctx = h->be->ctx;
    const size_t d = h->dim;
    /* dw += diff^T dlogits; db += sum(dlogits); ddiff = dlogits w^T */
    SM_TRY(ops->gemm(ctx, true, false, (int)d, 1, (int)pairs, 1.0f, diff, (int)d, dlogits, 1, 1.0f,
                     h->grads, 1));
    SM_TRY(ops->bias_grad(ctx, (int)pairs, 1, dlogits, h->grads + d));
    SM_TRY(ops->gemm(ctx, false, false, (int)pairs, (int)d, 1, 1.0f, dlogits, 1, h->params, (int)d,
                     0.0f, ddiff, (int)d));
    return ops->absdiff_bwd(ctx, pairs * d, feat, feat + pairs * d, ddiff, dfeat,
                            dfeat + pairs * d);
}
