/* SPDX-License-Identifier: MIT */
/* The twin subnetwork: parameters, initialisation, and the layer-list forward and backward.
 * The core owns the order of ops; the backend only runs them. */
#include <string.h>

#include "common/alloc.h"
#include "common/error.h"
#include "network/network.h"
#include "common/rng.h"

/* n values uploaded to dst: draws from N(0, std^2), or `value` when rng is NULL. */
static sm_status init_values(sm_backend *be, float *dst, size_t n, double std, sm__rng *rng,
                             float value)
{
    enum { CHUNK = 1 << 16 };
    if (n == 0) return SM_OK;
    float *tmp = sm__malloc((n < CHUNK ? n : CHUNK) * sizeof *tmp);
    if (!tmp) return sm__fail(SM_ERR_NOMEM, "out of memory initialising weights");
    sm_status s = SM_OK;
    for (size_t done = 0; done < n && s == SM_OK; done += CHUNK) {
        size_t m = n - done < CHUNK ? n - done : CHUNK;
        for (size_t i = 0; i < m; i++) tmp[i] = rng ? (float)(std * sm__rng_normal(rng)) : value;
        s = be->ops->upload(be->ctx, dst + done, tmp, m * sizeof *tmp);
    }
    sm__free(tmp);
    return s;
}

sm_status sm__init_normal(sm_backend *be, float *dst, size_t n, double std, sm__rng *rng)
{
    return init_values(be, dst, n, std, rng, 0.0f);
}

sm_status sm__init_fill(sm_backend *be, float *dst, size_t n, float value)
{
    return init_values(be, dst, n, 0.0, NULL, value);
}

/* The reference initialisation: every weight and bias from N(0, 0.01^2), one stream in
 * state_dict order, except GroupNorm's weight and bias, which start at 1 and 0 (PyTorch's
 * init: normalisation layers start as the identity) and draw nothing, so the other layers get
 * the same numbers as in the same arch without its groupnorm layers. */
sm_status sm__init_reference(sm_subnet *s, sm__rng *rng)
{
    for (size_t i = 0; i < s->arch.n_layers; i++) {
        const sm__layer *l = &s->arch.layers[i];
        if (l->kind == SM_LAYER_GROUPNORM) {
            SM_TRY(sm__init_fill(s->be, s->params + l->w_off, l->n_w, 1.0f));
            SM_TRY(sm__init_fill(s->be, s->params + l->b_off, l->n_b, 0.0f));
        } else {
            SM_TRY(sm__init_normal(s->be, s->params + l->w_off, l->n_w, 0.01, rng));
            SM_TRY(sm__init_normal(s->be, s->params + l->b_off, l->n_b, 0.01, rng));
        }
    }
    return SM_OK;
}

SM_API sm_status sm_subnet_create(sm_backend *be, const sm_arch *arch, uint64_t seed,
                                  sm_subnet **out)
{
    SM_CHECK_ARG(be && arch && out, "sm_subnet_create: NULL argument");
    SM_RETURN_IF(arch->n_layers == 0 || arch->n_params == 0, SM_ERR_SHAPE,
                 "sm_subnet_create: the arch has no layers with parameters");
    const sm__layer *last = &arch->layers[arch->n_layers - 1];
    SM_RETURN_IF(last->out_h != 1 || last->out_w != 1 ||
                     (last->kind != SM_LAYER_FC && last->kind != SM_LAYER_FLATTEN &&
                      last->kind != SM_LAYER_RELU),
                 SM_ERR_SHAPE, "sm_subnet_create: the arch must end in a flat layer (fc)");
    sm_subnet *s = sm__calloc(1, sizeof *s);
    if (!s) return sm__fail(SM_ERR_NOMEM, "out of memory creating a subnet");
    s->be = be;
    sm_status st = sm__arch_copy(&s->arch, arch);
    if (st == SM_OK) {
        s->n_params = arch->n_params;
        st = sm__be_alloc_floats(be, s->n_params, &s->params);
    }
    if (st == SM_OK) {
        /* One stream over all tensors in state_dict order: the same seed gives the same
         * weights on every backend. */
        sm__rng rng;
        sm__rng_seed(&rng, seed);
        st = sm__init_reference(s, &rng);
    }
    if (st != SM_OK) {
        sm_subnet_destroy(s);
        return st;
    }
    *out = s;
    return SM_OK;
}

SM_API void sm_subnet_destroy(sm_subnet *s)
{
    if (!s) return;
    sm__be_free(s->be, s->params);
    sm__be_free(s->be, s->grads);
    sm__arch_clear(&s->arch);
    sm__free(s);
}

SM_API sm_status sm_subnet_get_arch(const sm_subnet *s, sm_arch **out)
{
    SM_CHECK_ARG(s && out, "sm_subnet_get_arch: NULL argument");
    sm_arch *a = sm__calloc(1, sizeof *a);
    if (!a) return sm__fail(SM_ERR_NOMEM, "out of memory copying an arch");
    sm_status st = sm__arch_copy(a, &s->arch);
    if (st != SM_OK) {
        sm__free(a);
        return st;
    }
    *out = a;
    return SM_OK;
}

SM_API size_t sm_subnet_num_params(const sm_subnet *s) { return s ? s->n_params : 0; }

SM_API size_t sm_subnet_feature_dim(const sm_subnet *s)
{
    return s ? sm_arch_output_size(&s->arch) : 0;
}

/* ---- workspace ---- */

static sm_conv_shape conv_shape(const sm__layer *l, size_t n)
{
    sm_conv_shape cs = {(int)n, l->in_c, l->in_h,  l->in_w,  l->out_c,
                        l->b,   l->b,    l->out_h, l->out_w, 0};
    return cs;
}

static sm_pool_shape pool_shape(const sm__layer *l, size_t n)
{
    sm_pool_shape ps = {(int)n, l->in_c, l->in_h, l->in_w, l->a, l->out_h, l->out_w};
    return ps;
}

/* GroupNorm's eps: PyTorch's default */
#define SM_GROUPNORM_EPS 1e-5

static sm_norm_shape norm_shape(const sm__layer *l, size_t n)
{
    sm_norm_shape ns = {(int)n, l->in_c, l->in_h, l->in_w, l->a, SM_GROUPNORM_EPS};
    return ns;
}

/* Floats of statistics a groupnorm layer keeps per image (mean and rstd per group); 0 for
 * other layers. */
static size_t stats_per_image(const sm__layer *l)
{
    return l->kind == SM_LAYER_GROUPNORM ? 2 * (size_t)l->a : 0;
}

/* Whether layer i is a conv or groupnorm whose output only feeds ReLU then max-pool. The
 * backward pass needs nothing of that output (both layers' backward read their input, and
 * groupnorm its statistics): ReLU commutes with the max, so the ReLU mask at a window's argmax
 * is (pooled value > 0) and the pool can apply it (sm__layer_plan). Training then keeps such an
 * output only while the forward pass runs, in gradient memory that is idle until the backward
 * pass; for Koch's net that drops conv1-3's outputs, ~3.4 MB of ~5.2 MB of saved activations
 * per image. */
static bool feeds_relu_then_pool(const sm_arch *a, size_t i)
{
    return i + 2 < a->n_layers &&
           (a->layers[i].kind == SM_LAYER_CONV || a->layers[i].kind == SM_LAYER_GROUPNORM) &&
           a->layers[i + 1].kind == SM_LAYER_RELU && a->layers[i + 2].kind == SM_LAYER_MAXPOOL;
}

static void plan_layers(const sm_arch *a, bool for_training, sm__layer_plan *plan)
{
    for (size_t i = 0; i < a->n_layers; i++) {
        sm_layer_kind k = a->layers[i].kind;
        bool dropped = feeds_relu_then_pool(a, i);
        sm__layer_plan *p = &plan[i];
        p->in_place = k == SM_LAYER_RELU || k == SM_LAYER_FLATTEN;
        p->output_in_grad_buffer = for_training && dropped;
        p->keep_output = for_training && !p->in_place && !dropped;
        p->relu_folded_into_pool = i >= 1 && feeds_relu_then_pool(a, i - 1);
        p->pool_applies_relu = i >= 2 && feeds_relu_then_pool(a, i - 2);
        p->passes_grad = i > 0 && !p->in_place; /* nobody wants d(input images) */
    }
}

void sm__workspace_destroy(const sm_subnet *s, sm__workspace *ws)
{
    sm_backend *be = s->be;
    if (ws->act) {
        sm__be_free(be, ws->act[0]);
        /* the other outputs are the input's buffer, a gradient buffer or a ping-pong buffer */
        for (size_t i = 0; ws->plan && i < s->arch.n_layers; i++)
            if (ws->plan[i].keep_output) sm__be_free(be, ws->act[i + 1]);
    }
    for (size_t i = 0; ws->argmax && ws->training && i < s->arch.n_layers; i++)
        sm__be_free(be, ws->argmax[i]);
    for (size_t i = 0; ws->stats && ws->training && i < s->arch.n_layers; i++)
        sm__be_free(be, ws->stats[i]);
    sm__be_free(be, ws->ping[0]);
    sm__be_free(be, ws->ping[1]);
    sm__be_free(be, ws->shared_argmax);
    sm__be_free(be, ws->shared_stats);
    sm__free(ws->act);
    sm__free(ws->argmax);
    sm__free(ws->stats);
    sm__free(ws->plan);
    sm__be_free(be, ws->grad_a);
    sm__be_free(be, ws->grad_b);
    sm__be_free(be, ws->conv_ws);
    memset(ws, 0, sizeof *ws);
}

/* Allocates `per_image` floats (or int32s) times `cap` images on the backend. */
static sm_status alloc_images(sm_backend *be, size_t per_image, size_t cap, void **out)
{
    size_t n;
    SM_RETURN_IF(!sm__mul_size(per_image, cap, &n) || !sm__mul_size(n, sizeof(float), &n),
                 SM_ERR_LIMIT, "activation buffer size overflows");
    return be->ops->alloc(be->ctx, n, out);
}

/* Floats per image each gradient buffer must hold, from the walk sm__subnet_backward makes:
 * grad_a starts with d(output) and the two swap after every layer that passes a gradient on.
 * Sizing each for what lands in it, rather than both for the largest activation, keeps the
 * biggest gradient (conv1's output, for Koch) in one buffer only. */
static void grad_sizes(const sm_arch *a, const sm__layer_plan *plan, size_t need[2])
{
    int cur = 0;
    need[0] = a->n_layers ? sm__layer_out_size(&a->layers[a->n_layers - 1]) : 0;
    need[1] = 0;
    for (size_t i = a->n_layers; i-- > 0;) {
        if (!plan[i].passes_grad) continue;
        size_t in = sm__layer_out_size(&a->layers[i - 1]);
        if (in > need[cur ^ 1]) need[cur ^ 1] = in;
        cur ^= 1;
    }
    if (!need[1]) need[1] = 1;
}

size_t sm__workspace_image_bytes(const sm_subnet *s)
{
    const sm_arch *a = &s->arch;
    size_t floats = sm__arch_in_size(a), largest = 0;
    for (size_t i = 0; i < a->n_layers; i++) {
        const size_t o = sm__layer_out_size(&a->layers[i]);
        floats += o; /* kept, or the argmax of a pool (as many int32s) */
        if (a->layers[i].kind == SM_LAYER_MAXPOOL) floats += o;
        floats += stats_per_image(&a->layers[i]);
        if (o > largest) largest = o;
    }
    return (floats + 2 * largest) * sizeof(float); /* and the two gradient buffers */
}

sm_status sm__workspace_create(const sm_subnet *s, size_t cap, bool for_training, sm__workspace *ws)
{
    const sm_arch *a = &s->arch;
    sm_backend *be = s->be;
    memset(ws, 0, sizeof *ws);
    ws->cap = cap;
    ws->training = for_training;
    ws->act = sm__calloc(a->n_layers + 1, sizeof *ws->act);
    ws->argmax = sm__calloc(a->n_layers, sizeof *ws->argmax);
    ws->stats = sm__calloc(a->n_layers, sizeof *ws->stats);
    ws->plan = sm__calloc(a->n_layers, sizeof *ws->plan);
    if (!ws->act || !ws->argmax || !ws->stats || !ws->plan) {
        sm__workspace_destroy(s, ws);
        return sm__fail(SM_ERR_NOMEM, "out of memory creating a workspace");
    }
    plan_layers(a, for_training, ws->plan);
    sm_status st = alloc_images(be, sm__arch_in_size(a), cap, (void **)&ws->act[0]);

    size_t max_pool = 0, max_ws = 0, max_transient = 0, max_stats = 0;
    for (size_t i = 0; i < a->n_layers; i++) {
        const sm__layer *l = &a->layers[i];
        size_t o = sm__layer_out_size(l);
        if (ws->plan[i].output_in_grad_buffer && o > max_transient) max_transient = o;
        if (l->kind == SM_LAYER_MAXPOOL && o > max_pool) max_pool = o;
        if (stats_per_image(l) > max_stats) max_stats = stats_per_image(l);
        if (l->kind == SM_LAYER_CONV) {
            sm_conv_shape cs = conv_shape(l, cap);
            /* the first layer's input gradient is never computed, inference runs forward only */
            cs.dirs = SM_CONV_DIR_FWD |
                      (for_training ? SM_CONV_DIR_BWD_FILTER |
                                          (ws->plan[i].passes_grad ? SM_CONV_DIR_BWD_DATA : 0u)
                                    : 0u);
            size_t b = be->ops->conv_workspace(be->ctx, &cs);
            if (b > max_ws) max_ws = b;
        }
    }
    /* Inference keeps no activations: outputs alternate between two buffers, each sized for
     * the outputs that land in it (for Koch's net conv1's output in one, pool1's in the other:
     * 1.8 MB less per image than two of the largest). Training keeps the outputs the backward
     * pass reads. */
    size_t ping_need[2] = {0, 0};
    for (size_t i = 0, p = 1; i < a->n_layers; i++) {
        if (ws->plan[i].in_place) continue;
        p ^= 1;
        size_t o = sm__layer_out_size(&a->layers[i]);
        if (o > ping_need[p]) ping_need[p] = o;
    }
    if (st == SM_OK && !for_training) {
        st = alloc_images(be, ping_need[0] ? ping_need[0] : 1, cap, (void **)&ws->ping[0]);
        if (st == SM_OK)
            st = alloc_images(be, ping_need[1] ? ping_need[1] : 1, cap, (void **)&ws->ping[1]);
        if (st == SM_OK && max_pool)
            st = alloc_images(be, max_pool, cap, (void **)&ws->shared_argmax);
        if (st == SM_OK && max_stats)
            st = alloc_images(be, max_stats, cap, (void **)&ws->shared_stats);
    }
    /* Gradient buffers first: the larger one also holds the transient conv outputs during the
     * forward pass (it is idle until the backward pass starts). */
    size_t grad_need[2];
    grad_sizes(a, ws->plan, grad_need);
    int big = grad_need[1] > grad_need[0];
    if (grad_need[big] < max_transient) grad_need[big] = max_transient;
    if (st == SM_OK && for_training) st = alloc_images(be, grad_need[0], cap, (void **)&ws->grad_a);
    if (st == SM_OK && for_training) st = alloc_images(be, grad_need[1], cap, (void **)&ws->grad_b);
    float *transient = big ? ws->grad_b : ws->grad_a;

    int cur = 1;
    for (size_t i = 0; i < a->n_layers && st == SM_OK; i++) {
        const sm__layer *l = &a->layers[i];
        const sm__layer_plan *p = &ws->plan[i];
        if (p->in_place) {
            ws->act[i + 1] = ws->act[i];
        } else if (p->keep_output) {
            st = alloc_images(be, sm__layer_out_size(l), cap, (void **)&ws->act[i + 1]);
        } else if (p->output_in_grad_buffer) {
            ws->act[i + 1] = transient;
        } else { /* inference */
            cur ^= 1;
            ws->act[i + 1] = ws->ping[cur];
        }
        if (st == SM_OK && l->kind == SM_LAYER_MAXPOOL) {
            if (for_training)
                st = alloc_images(be, sm__layer_out_size(l), cap, (void **)&ws->argmax[i]);
            else ws->argmax[i] = ws->shared_argmax;
        }
        /* per image, so a micro-batch of any size up to cap has its own statistics */
        if (st == SM_OK && l->kind == SM_LAYER_GROUPNORM) {
            if (for_training)
                st = alloc_images(be, stats_per_image(l), cap, (void **)&ws->stats[i]);
            else ws->stats[i] = ws->shared_stats;
        }
    }
    if (st == SM_OK && max_ws) st = be->ops->alloc(be->ctx, max_ws, &ws->conv_ws);
    ws->conv_ws_bytes = max_ws;
    if (st != SM_OK) {
        sm__workspace_destroy(s, ws);
        return st;
    }
    return SM_OK;
}

/* ---- forward / backward ---- */

sm_status sm__subnet_forward(const sm_subnet *s, sm__workspace *ws, size_t n)
{
    const sm_backend_ops *ops = s->be->ops;
    void *ctx = s->be->ctx;
    for (size_t i = 0; i < s->arch.n_layers; i++) {
        const sm__layer *l = &s->arch.layers[i];
        const float *x = ws->act[i];
        float *y = ws->act[i + 1];
        const float *w = s->params + l->w_off, *b = s->params + l->b_off;
        size_t out = sm__layer_out_size(l);
        switch (l->kind) {
        case SM_LAYER_CONV: {
            sm_conv_shape cs = conv_shape(l, n);
            SM_TRY(ops->conv_fwd(ctx, &cs, x, w, b, y, ws->conv_ws, ws->conv_ws_bytes));
            break;
        }
        case SM_LAYER_RELU: SM_TRY(ops->relu_fwd(ctx, n * out, x, y)); break;
        case SM_LAYER_MAXPOOL: {
            sm_pool_shape ps = pool_shape(l, n);
            SM_TRY(ops->maxpool_fwd(ctx, &ps, x, y, ws->argmax[i]));
            break;
        }
        case SM_LAYER_GROUPNORM: {
            sm_norm_shape ns = norm_shape(l, n);
            SM_TRY(ops->groupnorm_fwd(ctx, &ns, x, w, b, y, ws->stats[i]));
            break;
        }
        case SM_LAYER_FLATTEN: break;
        case SM_LAYER_FC:
            SM_TRY(ops->gemm(ctx, false, true, (int)n, l->out_c, l->in_c, 1.0f, x, l->in_c, w,
                             l->in_c, 0.0f, y, l->out_c));
            SM_TRY(ops->bias_add(ctx, (int)n, l->out_c, b, y));
            break;
        }
    }
    return SM_OK;
}

sm_status sm__subnet_backward(sm_subnet *s, sm__workspace *ws, size_t n,
                              const sm__grads_hook *hook)
{
    const sm_backend_ops *ops = s->be->ops;
    void *ctx = s->be->ctx;
    float *g = ws->grad_a, *other = ws->grad_b;
    for (size_t i = s->arch.n_layers; i-- > 0;) {
        const sm__layer *l = &s->arch.layers[i];
        const float *x = ws->act[i];
        const sm__layer_plan *p = &ws->plan[i];
        const float *w = s->params + l->w_off;
        float *dw = s->grads + l->w_off, *db = s->grads + l->b_off;
        switch (l->kind) {
        case SM_LAYER_CONV: {
            sm_conv_shape cs = conv_shape(l, n);
            SM_TRY(ops->conv_bwd_filter(ctx, &cs, x, g, dw, db, ws->conv_ws, ws->conv_ws_bytes));
            if (hook) SM_TRY(hook->done(hook->user, l->w_off));
            if (p->passes_grad)
                SM_TRY(ops->conv_bwd_data(ctx, &cs, g, w, other, ws->conv_ws, ws->conv_ws_bytes));
            break;
        }
        case SM_LAYER_RELU:
            /* in place, and the output > 0 exactly where the input > 0 */
            if (!p->relu_folded_into_pool)
                SM_TRY(ops->relu_bwd(ctx, n * sm__layer_out_size(l), ws->act[i + 1], g, g));
            break;
        case SM_LAYER_MAXPOOL: {
            if (!p->passes_grad) break;
            if (p->pool_applies_relu)
                SM_TRY(ops->relu_bwd(ctx, n * sm__layer_out_size(l), ws->act[i + 1], g, g));
            sm_pool_shape ps = pool_shape(l, n);
            SM_TRY(ops->maxpool_bwd(ctx, &ps, g, ws->argmax[i], other));
            break;
        }
        case SM_LAYER_GROUPNORM: {
            /* the parameter gradients always; d(input) unless this is the first layer */
            sm_norm_shape ns = norm_shape(l, n);
            SM_TRY(ops->groupnorm_bwd(ctx, &ns, x, g, w, ws->stats[i],
                                      p->passes_grad ? other : NULL, dw, db));
            if (hook) SM_TRY(hook->done(hook->user, l->w_off));
            break;
        }
        case SM_LAYER_FLATTEN: break;
        case SM_LAYER_FC:
            /* dW += g^T x; db += colsum(g); then the hook (the parameter gradients are done),
             * then dx = g W */
            SM_TRY(ops->gemm(ctx, true, false, l->out_c, l->in_c, (int)n, 1.0f, g, l->out_c, x,
                             l->in_c, 1.0f, dw, l->in_c));
            SM_TRY(ops->bias_grad(ctx, (int)n, l->out_c, g, db));
            if (hook) SM_TRY(hook->done(hook->user, l->w_off));
            if (p->passes_grad)
                SM_TRY(ops->gemm(ctx, false, false, (int)n, l->in_c, l->out_c, 1.0f, g, l->out_c, w,
                                 l->in_c, 0.0f, other, l->in_c));
            break;
        }
        if (!p->passes_grad) continue; /* the gradient stays where it is */
        float *t = g;
        g = other;
        other = t;
    }
    return SM_OK;
}

sm_status sm__subnet_read_params(const sm_subnet *s, float *host)
{
    return s->be->ops->download(s->be->ctx, host, s->params, s->n_params * sizeof(float));
}

sm_status sm__subnet_write_params(sm_subnet *s, const float *host)
{
    return s->be->ops->upload(s->be->ctx, s->params, host, s->n_params * sizeof(float));
}

sm_status sm__subnet_read_grads(const sm_subnet *s, float *host)
{
    SM_RETURN_IF(!s->grads, SM_ERR_STATE, "the subnet has no gradients (no trainer yet)");
    return s->be->ops->download(s->be->ctx, host, s->grads, s->n_params * sizeof(float));
}
