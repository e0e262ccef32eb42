/* SPDX-License-Identifier: MIT */
/* The trainer: one iteration = sample a batch of pairs, forward and backward in micro-batches
 * (gradients summed; the loss of a pair depends only on that pair, so the result is the whole
 * batch's to float rounding), one Adam update. Buffers are allocated when the trainer is
 * created or resized, never per step. */
#include <math.h>
#include <stdatomic.h>
#include <string.h>

#include "common/alloc.h"
#include "common/error.h"
#include "data/image.h"
#include "network/model.h"
#include "data/sampler.h"

#define SM_MAX_BATCH 65536
#define SM_MAX_PK_IMAGES 4096
#define SM_MAX_GRAD_SHARDS 1024

static void step_buffers_destroy(const sm_trainer *t, sm__step_buffers *b)
{
    sm_backend *be = t->subnet->be;
    if (b->ws.act) sm__workspace_destroy(t->subnet, &b->ws);
    float **bufs[] = {&b->feat, &b->diff, &b->ddiff, &b->dfeat, &b->logits,
                      &b->scores, &b->dlogits, &b->labels, &b->loss_sum};
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++) {
        sm__be_free(be, *bufs[i]);
        *bufs[i] = NULL;
    }
    b->pairs = 0;
}

static sm_status step_buffers_create(const sm_trainer *t, size_t pairs, sm__step_buffers *b)
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
    if (st != SM_OK) step_buffers_destroy(t, b);
    return st;
}

/* Resizes what depends on batch_size and micro_batch; on failure the trainer keeps its old
 * buffers and sizes. */
static sm_status resize(sm_trainer *t, int64_t batch, int64_t micro)
{
    size_t in = sm__arch_in_size(&t->subnet->arch);
    size_t pairs = (size_t)(micro < batch ? micro : batch);
    sm__step_buffers nb = t->buf;
    int new_step = t->buf.pairs != pairs;
    if (new_step) SM_TRY(step_buffers_create(t, pairs, &nb));

    float *l = t->batch_left, *r = t->batch_right, *lab = t->batch_labels;
    int new_batch = t->dataset && t->batch_cap != (size_t)batch;
    if (new_batch) {
        size_t n;
        if (!sm__mul_size((size_t)batch, in, &n) || !sm__mul_size(n, sizeof(float), &n)) {
            if (new_step) step_buffers_destroy(t, &nb);
            return sm__fail(SM_ERR_LIMIT, "a batch of %lld pairs is too large", (long long)batch);
        }
        l = sm__malloc(n);
        r = sm__malloc(n);
        lab = sm__malloc((size_t)batch * sizeof(float));
        if (!l || !r || !lab) {
            sm__free(l), sm__free(r), sm__free(lab);
            if (new_step) step_buffers_destroy(t, &nb);
            return sm__fail(SM_ERR_NOMEM, "out of memory for a batch of %lld pairs",
                            (long long)batch);
        }
    }
    if (new_step) {
        step_buffers_destroy(t, &t->buf);
        t->buf = nb;
    }
    if (new_batch) {
        sm__free(t->batch_left), sm__free(t->batch_right), sm__free(t->batch_labels);
        t->batch_left = l, t->batch_right = r, t->batch_labels = lab;
        t->batch_cap = (size_t)batch;
    }
    t->batch_size = batch;
    t->micro_batch = micro;
    return SM_OK;
}

sm_status sm__trainer_resize(sm_trainer *t, int64_t batch, int64_t micro)
{
    SM_RETURN_IF(batch < 1 || batch > SM_MAX_BATCH || micro < 1 || micro > SM_MAX_BATCH,
                 SM_ERR_INVALID_ARG, "batch %lld / micro-batch %lld out of range 1..%d",
                 (long long)batch, (long long)micro, SM_MAX_BATCH);
    return resize(t, batch, micro);
}

static sm_status ensure_grads(sm_backend *be, float **grads, size_t n)
{
    if (*grads) return SM_OK;
    return sm__be_alloc_floats(be, n, grads);
}

/* The backend's preferred micro-batch: 16 pairs on the CPU backends keep a batch-180 step of
 * the reference network under a fifth of PyTorch's peak memory (conv outputs that feed
 * relu -> pool are not kept, lib/subnet.c), while the fc layer's products are wide enough not
 * to cost much more than at 32 pairs (docs/performance.md measures 8, 16 and 32); the GPU wants
 * large chunks and asks for 32. */
static int64_t default_micro_batch(const sm_backend *be)
{
    return sm__backend_props(be)->train_pairs;
}

SM_API sm_status sm_trainer_create(sm_subnet *subnet, sm_head *head, sm_adam *adam,
                                   const sm_dataset *dataset, uint64_t seed, sm_trainer **out)
{
    SM_CHECK_ARG(subnet && head && adam && out, "sm_trainer_create: NULL argument");
    SM_CHECK_ARG(adam->subnet == subnet && adam->head == head,
                 "sm_trainer_create: the Adam state belongs to another subnet or head");
    SM_RETURN_IF(head->dim != sm_subnet_feature_dim(subnet), SM_ERR_SHAPE,
                 "head takes %zu features, the subnet gives %zu", head->dim,
                 sm_subnet_feature_dim(subnet));
    if (dataset) {
        int h, w;
        SM_TRY(sm_dataset_image_size(dataset, &h, &w));
        const sm_arch *a = &subnet->arch;
        SM_RETURN_IF(a->in_c != 1 || a->in_h != h || a->in_w != w, SM_ERR_SHAPE,
                     "dataset images are 1x%dx%d, the subnet takes %dx%dx%d", h, w, a->in_c,
                     a->in_h, a->in_w);
    }
    /* A failed create leaves the subnet and head as it found them: gradient buffers it made
     * are freed again (a trainer that existed before keeps the ones it uses). */
    const bool own_sg = !subnet->grads, own_hg = !head->grads;
    sm_trainer *t = NULL;
    sm_status st = ensure_grads(subnet->be, &subnet->grads, subnet->n_params);
    if (st == SM_OK) st = ensure_grads(head->be, &head->grads, head->n_params);
    if (st == SM_OK) {
        t = sm__calloc(1, sizeof *t);
        if (!t) st = sm__fail(SM_ERR_NOMEM, "out of memory creating a trainer");
    }
    if (t) {
        t->subnet = subnet, t->head = head, t->adam = adam, t->dataset = dataset, t->seed = seed;
        t->smoothed_loss = NAN;
        t->pk_images = 4;
        t->shards = 1;
        sm__rng_seed(&t->aug_rng, sm__augment_seed(seed));
        if (dataset) st = sm_sampler_create(dataset, seed, &t->sampler);
        if (st == SM_OK && dataset &&
            !(t->aug_scratch = sm__malloc(sm__arch_in_size(&subnet->arch) * sizeof(float))))
            st = sm__fail(SM_ERR_NOMEM, "out of memory creating a trainer");
        if (st == SM_OK) st = resize(t, 180, default_micro_batch(subnet->be));
    }
    if (st != SM_OK) {
        sm_trainer_destroy(t);
        if (own_sg) sm__be_free(subnet->be, subnet->grads), subnet->grads = NULL;
        if (own_hg) sm__be_free(head->be, head->grads), head->grads = NULL;
        return st;
    }
    *out = t;
    return SM_OK;
}

SM_API void sm_trainer_destroy(sm_trainer *t)
{
    if (!t) return;
    step_buffers_destroy(t, &t->buf);
    sm__free(t->batch_left);
    sm__free(t->batch_right);
    sm__free(t->batch_labels);
    sm__free(t->aug_scratch);
    float *pk[] = {t->pk_img, t->pk_feat, t->pk_dfeat, t->pk_pair, t->pk_labels};
    for (size_t i = 0; i < sizeof pk / sizeof *pk; i++) sm__free(pk[i]);
    sm__free(t->pk_pi);
    sm__free(t->pk_pj);
    sm__free(t->pk_query);
    sm__free(t->pk_z);
    sm_sampler_destroy(t->sampler);
    sm__shards_free(t);
    sm__free(t);
}

SM_API sm_status sm_trainer_set_param(sm_trainer *t, sm_trainer_param key, int64_t value)
{
    SM_CHECK_ARG(t, "sm_trainer_set_param: trainer is NULL");
    switch (key) {
    case SM_TRAINER_BATCH_SIZE:
        SM_CHECK_ARG(value >= 1 && value <= SM_MAX_BATCH, "batch size %lld out of range 1..%d",
                     (long long)value, SM_MAX_BATCH);
        return resize(t, value, t->micro_batch);
    case SM_TRAINER_MICRO_BATCH:
        SM_CHECK_ARG(value >= 1 && value <= SM_MAX_BATCH, "micro-batch %lld out of range 1..%d",
                     (long long)value, SM_MAX_BATCH);
        return resize(t, t->batch_size, value);
    case SM_TRAINER_AUGMENT:
        SM_CHECK_ARG(value >= 0 && value <= SM_DISTORT_ALL,
                     "augmentation %lld is not an OR of sm_distort_part (0..%d)", (long long)value,
                     SM_DISTORT_ALL);
        t->augment = (unsigned)value;
        return SM_OK;
    case SM_TRAINER_ALPHABET_BALANCED:
        SM_CHECK_ARG(value == 0 || value == 1, "alphabet-balanced %lld: expected 0 or 1",
                     (long long)value);
        t->alphabet_balanced = value == 1;
        if (t->sampler)
            sm__sampler_set_options(t->sampler, t->neg_same_alphabet, t->alphabet_balanced);
        return SM_OK;
    case SM_TRAINER_PK_CLASSES:
        SM_CHECK_ARG(value == 0 || (value >= 2 && value <= SM_MAX_PK_IMAGES),
                     "P x K batches: P = %lld classes, expected 0 (off) or 2..%d (a batch needs "
                     "two classes for dissimilar pairs)", (long long)value, SM_MAX_PK_IMAGES);
        SM_CHECK_ARG(value * t->pk_images <= SM_MAX_PK_IMAGES,
                     "P x K batches: P x K = %lld x %lld images, more than %d",
                     (long long)value, (long long)t->pk_images, SM_MAX_PK_IMAGES);
        t->pk_classes = value;
        return SM_OK;
    case SM_TRAINER_PK_IMAGES:
        SM_CHECK_ARG(value >= 2 && value <= SM_MAX_PK_IMAGES,
                     "P x K batches: K = %lld images per class, expected 2..%d (a class needs "
                     "two images for similar pairs)", (long long)value, SM_MAX_PK_IMAGES);
        SM_CHECK_ARG(value * t->pk_classes <= SM_MAX_PK_IMAGES,
                     "P x K batches: P x K = %lld x %lld images, more than %d",
                     (long long)t->pk_classes, (long long)value, SM_MAX_PK_IMAGES);
        t->pk_images = value;
        return SM_OK;
    case SM_TRAINER_PK_LOSS:
        SM_CHECK_ARG(value == SM_PK_LOSS_BCE_BALANCED || value == SM_PK_LOSS_BCE ||
                         value == SM_PK_LOSS_SOFTMAX,
                     "P x K loss %lld is not an sm_pk_loss", (long long)value);
        t->pk_loss = value;
        return SM_OK;
    case SM_TRAINER_GRAD_SHARDS:
        SM_CHECK_ARG(value >= 1 && value <= SM_MAX_GRAD_SHARDS,
                     "gradient shards %lld out of range 1..%d", (long long)value,
                     SM_MAX_GRAD_SHARDS);
        SM_CHECK_ARG(!t->comm || value % sm_comm_size(t->comm) == 0,
                     "gradient shards %lld: the communicator's %d ranks must divide it",
                     (long long)value, sm_comm_size(t->comm));
        t->shards = value;
        return SM_OK;
    }
    return sm__fail(SM_ERR_INVALID_ARG, "unknown trainer parameter %d", (int)key);
}

SM_API sm_status sm_trainer_set_real(sm_trainer *t, sm_trainer_real key, double value)
{
    SM_CHECK_ARG(t, "sm_trainer_set_real: trainer is NULL");
    switch (key) {
    case SM_TRAINER_NEG_SAME_ALPHABET:
        SM_CHECK_ARG(value >= 0.0 && value <= 1.0,
                     "negatives within the alphabet: fraction %g out of range [0, 1]", value);
        t->neg_same_alphabet = value;
        if (t->sampler)
            sm__sampler_set_options(t->sampler, t->neg_same_alphabet, t->alphabet_balanced);
        return SM_OK;
    }
    return sm__fail(SM_ERR_INVALID_ARG, "unknown real trainer parameter %d", (int)key);
}

SM_API sm_status sm_trainer_get_real(const sm_trainer *t, sm_trainer_real key, double *value)
{
    SM_CHECK_ARG(t && value, "sm_trainer_get_real: NULL argument");
    switch (key) {
    case SM_TRAINER_NEG_SAME_ALPHABET: *value = t->neg_same_alphabet; return SM_OK;
    }
    return sm__fail(SM_ERR_INVALID_ARG, "unknown real trainer parameter %d", (int)key);
}

SM_API sm_status sm_trainer_get_param(const sm_trainer *t, sm_trainer_param key, int64_t *value)
{
    SM_CHECK_ARG(t && value, "sm_trainer_get_param: NULL argument");
    switch (key) {
    case SM_TRAINER_BATCH_SIZE: *value = t->batch_size; return SM_OK;
    case SM_TRAINER_MICRO_BATCH: *value = t->micro_batch; return SM_OK;
    case SM_TRAINER_AUGMENT: *value = (int64_t)t->augment; return SM_OK;
    case SM_TRAINER_ALPHABET_BALANCED: *value = t->alphabet_balanced; return SM_OK;
    case SM_TRAINER_PK_CLASSES: *value = t->pk_classes; return SM_OK;
    case SM_TRAINER_PK_IMAGES: *value = t->pk_images; return SM_OK;
    case SM_TRAINER_PK_LOSS: *value = t->pk_loss; return SM_OK;
    case SM_TRAINER_GRAD_SHARDS: *value = t->shards; return SM_OK;
    }
    return sm__fail(SM_ERR_INVALID_ARG, "unknown trainer parameter %d", (int)key);
}

SM_API sm_status sm_trainer_set_progress(sm_trainer *t, sm_progress_fn fn, void *user)
{
    SM_CHECK_ARG(t, "sm_trainer_set_progress: trainer is NULL");
    t->progress = fn;
    t->progress_user = user;
    return SM_OK;
}

SM_API int64_t sm_trainer_iteration(const sm_trainer *t) { return t ? t->iteration : -1; }

_Atomic int sm__inject_nonfinite; /* test only: see model.h */

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

static sm_status check_finite(sm_trainer *t, double total, float *loss);

sm_status sm__trainer_grads_part(sm_trainer *t, size_t n, size_t scale_n, const float *left,
                                 const float *right, const float *labels, double *sum)
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

        SM_TRY(sm__head_backward(h, p, b->feat, b->diff, b->dlogits, b->ddiff, b->dfeat));
        SM_TRY(ops->sigmoid_bwd(ctx, 2 * p * d, b->feat, b->dfeat, b->ws.grad_a));
        SM_TRY(sm__subnet_backward(s, &b->ws, 2 * p));
    }
    *sum = total;
    return SM_OK;
}

/* Forward + backward over n pairs in micro-batches; gradients end in subnet/head grads. */
static sm_status compute_grads(sm_trainer *t, size_t n, const float *left, const float *right,
                               const float *labels, float *loss)
{
    if (t->shards > 1 || t->comm) return sm__shards_grads(t, n, left, right, labels, loss);
    double total;
    SM_TRY(sm__trainer_grads_part(t, n, n, left, right, labels, &total));
    return check_finite(t, total / (double)n, loss);
}

/* The loss and the gradients must be finite (test faults are planted here). */
static sm_status check_finite(sm_trainer *t, double total, float *loss)
{
    return sm__trainer_check_finite(t, total, loss);
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

sm_status sm__trainer_compute_grads(sm_trainer *t, size_t n, const float *left,
                                    const float *right, const float *labels, float *loss)
{
    return compute_grads(t, n, left, right, labels, loss);
}

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
    size_t n, k;   /* images, images per class */
    int similar;   /* the phase */
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

static sm_status compute_grads_pk(sm_trainer *t, size_t p, size_t k, const float *images,
                                  int mode, float *loss)
{
    sm_subnet *s = t->subnet;
    sm_head *h = t->head;
    const sm_backend_ops *ops = s->be->ops;
    void *ctx = s->be->ctx;
    sm__step_buffers *b = &t->buf;
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
                memcpy(t->pk_pair + (q + r) * d, t->pk_feat + t->pk_pj[r] * d,
                       d * sizeof(float));
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
        SM_TRY(sm__subnet_backward(s, &b->ws, c));
    }
    return check_finite(t, total, loss);
}

sm_status sm__trainer_compute_grads_pk(sm_trainer *t, size_t p, size_t k, const float *images,
                                       int loss_mode, float *loss)
{
    SM_TRY(pk_reserve(t, p * k, t->buf.pairs));
    return compute_grads_pk(t, p, k, images, loss_mode, loss);
}

/* After the gradients: the Adam update and what follows a successful step. */
static sm_status apply(sm_trainer *t, float l, float *loss)
{
    SM_TRY(sm__adam_apply(t->adam));
    t->iteration++;
    if (loss) *loss = l;
    if (t->progress) t->progress(t->progress_user, t->iteration, l);
    sm__health_after_step(t, l);
    return SM_OK;
}

static sm_status step(sm_trainer *t, size_t n, const float *left, const float *right,
                      const float *labels, float *loss)
{
    float l;
    SM_TRY(compute_grads(t, n, left, right, labels, &l));
    return apply(t, l, loss);
}

/* Samples a P x K batch, distorts each image once when augmenting, and steps on it. */
static sm_status step_pk(sm_trainer *t, float *loss)
{
    SM_RETURN_IF(t->shards > 1 || t->comm, SM_ERR_STATE,
                 "P x K steps take neither gradient shards (%lld) nor a communicator",
                 (long long)t->shards);
    const sm_arch *a = &t->subnet->arch;
    const size_t in = sm__arch_in_size(a);
    const size_t p = (size_t)t->pk_classes, k = (size_t)t->pk_images;
    SM_TRY(pk_reserve(t, p * k, t->buf.pairs));
    SM_TRY(sm__sampler_next_pk(t->sampler, p, k, t->pk_img, NULL));
    if (t->augment)
        for (size_t i = 0; i < p * k; i++) {
            float *img = t->pk_img + i * in;
            sm__distort(&t->aug_rng, t->augment, img, a->in_h, a->in_w, t->aug_scratch);
            memcpy(img, t->aug_scratch, in * sizeof(float));
        }
    float l;
    SM_TRY(compute_grads_pk(t, p, k, t->pk_img, (int)t->pk_loss, &l));
    return apply(t, l, loss);
}

uint64_t sm__augment_seed(uint64_t trainer_seed) { return trainer_seed ^ 0x6175676d656e7473ULL; }

/* Distorts every image of the sampled batch, each with its own draw: left then right, pair by
 * pair. A rank of a data-parallel run distorts only its own shards' pairs and skips the draws
 * of the others (the same pairs, so the same images, as one process). */
static void augment_batch(sm_trainer *t, size_t n)
{
    const sm_arch *a = &t->subnet->arch;
    const size_t in = sm__arch_in_size(a);
    size_t lo, hi;
    sm__shards_local_pairs(t, n, &lo, &hi);
    for (size_t k = 0; k < n; k++) {
        float *imgs[2] = {t->batch_left + k * in, t->batch_right + k * in};
        for (int j = 0; j < 2; j++) {
            if (k < lo || k >= hi) { /* another rank's pair: only the same draws */
                sm__distort_skip(&t->aug_rng);
                continue;
            }
            sm__distort(&t->aug_rng, t->augment, imgs[j], a->in_h, a->in_w, t->aug_scratch);
            memcpy(imgs[j], t->aug_scratch, in * sizeof(float));
        }
    }
}

SM_API sm_status sm_train_step(sm_trainer *t, float *loss)
{
    SM_CHECK_ARG(t, "sm_train_step: trainer is NULL");
    SM_RETURN_IF(!t->sampler, SM_ERR_STATE,
                 "sm_train_step: the trainer has no dataset (use sm_train_step_batch)");
    uint64_t saved[4];
    sm__sampler_get_state(t->sampler, saved);
    const sm__rng aug_saved = t->aug_rng;
    size_t n = (size_t)t->batch_size;
    sm_status st;
    if (t->pk_classes > 0) {
        st = step_pk(t, loss);
    } else {
        st = sm_sampler_next(t->sampler, n, t->batch_left, t->batch_right, t->batch_labels, NULL,
                             NULL);
        if (st == SM_OK && t->augment) augment_batch(t, n);
        if (st == SM_OK) st = step(t, n, t->batch_left, t->batch_right, t->batch_labels, loss);
    }
    /* a step that failed had no effect at all, the sampler and the augmentation included */
    if (st != SM_OK) {
        sm__sampler_set_state(t->sampler, saved);
        t->aug_rng = aug_saved;
    }
    return st;
}

SM_API sm_status sm_train_step_batch(sm_trainer *t, size_t n, const float *left,
                                     const float *right, const float *labels, float *loss)
{
    SM_CHECK_ARG(t && left && right && labels, "sm_train_step_batch: NULL argument");
    SM_CHECK_ARG(n >= 1 && n <= SM_MAX_BATCH, "sm_train_step_batch: %zu pairs out of range 1..%d",
                 n, SM_MAX_BATCH);
    for (size_t i = 0; i < n; i++)
        SM_CHECK_ARG(labels[i] >= 0.0f && labels[i] <= 1.0f,
                     "sm_train_step_batch: label %zu is %g, expected a value in [0, 1]", i,
                     (double)labels[i]);
    return step(t, n, left, right, labels, loss);
}
