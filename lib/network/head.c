/* SPDX-License-Identifier: MIT */
/* The FC head: score = sigmoid(w . |F1 - F2| + b). Parameters: dim weights, then the bias.
 * Calibration (since 0.4) folds a Platt scaling into them: w' = A w, b' = A b + B. */
#include <float.h>
#include <math.h>

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

bool sm__calibration_valid(double scale, double shift)
{
    return isfinite(scale) && scale > 0.0 && isfinite(shift);
}

/* x as a float, 0 when it is not finite there */
static int to_float(double x, float *out)
{
    float f = (float)x;
    *out = f;
    return isfinite(f);
}

SM_API sm_status sm_head_calibrate(sm_head *h, double scale, double shift, size_t n_pairs)
{
    SM_CHECK_ARG(h, "sm_head_calibrate: head is NULL");
    SM_CHECK_ARG(sm__calibration_valid(scale, shift),
                 "sm_head_calibrate: scale %g, shift %g: the scale must be finite and above 0, "
                 "the shift finite",
                 scale, shift);
    /* what the head then records: this fold after any earlier one */
    sm__calibration c = {true, scale, shift, n_pairs};
    if (h->cal.on) {
        c.scale = scale * h->cal.scale;
        c.shift = scale * h->cal.shift + shift;
    }
    SM_CHECK_ARG(sm__calibration_valid(c.scale, c.shift),
                 "sm_head_calibrate: scale %g and shift %g after the head's earlier calibration "
                 "(scale %g, shift %g) are not finite",
                 scale, shift, h->cal.scale, h->cal.shift);
    float *p = sm__malloc(h->n_params * sizeof *p);
    if (!p) return sm__fail(SM_ERR_NOMEM, "sm_head_calibrate: out of memory");
    sm_status st = sm__head_read_params(h, p);
    int ok = 1;
    for (size_t j = 0; j < h->dim && st == SM_OK; j++) ok &= to_float(scale * (double)p[j], &p[j]);
    if (st == SM_OK) ok &= to_float(scale * (double)p[h->dim] + shift, &p[h->dim]);
    if (st == SM_OK && !ok)
        st = sm__fail(SM_ERR_INVALID_ARG,
                      "sm_head_calibrate: scale %g, shift %g would make the head's weights "
                      "overflow float; the head is unchanged",
                      scale, shift);
    if (st == SM_OK) st = sm__head_write_params(h, p);
    if (st == SM_OK) h->cal = c;
    sm__free(p);
    return st;
}

SM_API sm_status sm_head_calibration(const sm_head *h, int *calibrated, double *scale,
                                     double *shift, size_t *n_pairs)
{
    SM_CHECK_ARG(h, "sm_head_calibration: head is NULL");
    if (calibrated) *calibrated = h->cal.on;
    if (scale) *scale = h->cal.on ? h->cal.scale : 1.0;
    if (shift) *shift = h->cal.on ? h->cal.shift : 0.0;
    if (n_pairs) *n_pairs = h->cal.on ? h->cal.pairs : 0;
    return SM_OK;
}

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
