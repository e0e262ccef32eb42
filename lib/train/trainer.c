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
#include "train/settings.h"
#include "train/training.h"
#include "data/sampler.h"

/* Resizes what depends on batch_size and micro_batch; on failure the trainer keeps its old
 * buffers and sizes. */
static sm_status resize(sm_trainer *t, int64_t batch, int64_t micro)
{
    size_t in = sm__arch_in_size(&t->subnet->arch);
    size_t pairs = (size_t)(micro < batch ? micro : batch);
    sm__step_buffers nb = t->buf;
    int new_step = t->buf.pairs != pairs;
    if (new_step) SM_TRY(sm__step_buffers_create(t, pairs, &nb));

    float *l = t->batch_left, *r = t->batch_right, *lab = t->batch_labels;
    int new_batch = t->dataset && t->batch_cap != (size_t)batch;
    if (new_batch) {
        size_t n;
        if (!sm__mul_size((size_t)batch, in, &n) || !sm__mul_size(n, sizeof(float), &n)) {
            if (new_step) sm__step_buffers_destroy(t, &nb);
            return sm__fail(SM_ERR_LIMIT, "a batch of %lld pairs is too large", (long long)batch);
        }
        l = sm__malloc(n);
        r = sm__malloc(n);
        lab = sm__malloc((size_t)batch * sizeof(float));
        if (!l || !r || !lab) {
            sm__free(l), sm__free(r), sm__free(lab);
            if (new_step) sm__step_buffers_destroy(t, &nb);
            return sm__fail(SM_ERR_NOMEM, "out of memory for a batch of %lld pairs",
                            (long long)batch);
        }
    }
    if (new_step) {
        sm__step_buffers_destroy(t, &t->buf);
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
    SM_RETURN_IF(batch < 1 || batch > SM__MAX_BATCH || micro < 1 || micro > SM__MAX_BATCH,
                 SM_ERR_INVALID_ARG, "batch %lld / micro-batch %lld out of range 1..%d",
                 (long long)batch, (long long)micro, SM__MAX_BATCH);
    return resize(t, batch, micro);
}

static sm_status ensure_grads(sm_backend *be, float **grads, size_t n)
{
    if (*grads) return SM_OK;
    return sm__be_alloc_floats(be, n, grads);
}

/* The backend's preferred micro-batch: 16 pairs on the CPU backends keep a batch-180 step of the
 * reference network under a fifth of PyTorch's peak memory (conv outputs that feed relu -> pool are
 * not kept, lib/network/subnet.c), while the fc layer's products are wide enough not to cost much
 * more than at 32 pairs (docs/performance.md measures 8, 16 and 32); the GPU wants large chunks and
 * asks for 32. */
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
        for (size_t i = 0; i < sm__n_settings; i++) /* batch sizes: resize below */
            if (sm__settings[i].owner == SM__SET_TRAINER && !isnan(sm__settings[i].dflt))
                sm__setting_put(&sm__settings[i], t, sm__settings[i].dflt);
        sm__rng_seed(&t->aug_rng, sm__augment_seed(seed));
        if (dataset) st = sm_sampler_create(dataset, seed, &t->sampler);
        if (st == SM_OK && dataset &&
            !(t->aug_scratch = sm__malloc(sm__arch_in_size(&subnet->arch) * sizeof(float))))
            st = sm__fail(SM_ERR_NOMEM, "out of memory creating a trainer");
        if (st == SM_OK) st = resize(t, t->batch_size, default_micro_batch(subnet->be));
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
    sm__step_buffers_destroy(t, &t->buf);
    sm__step_buffers_destroy(t, &t->pk_buf);
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

/* A public setting of the trainer: the table's range, then what depends on the others. */
static sm_status set_setting(sm_trainer *t, const sm__setting *row, double v)
{
    SM_TRY(sm__setting_check(row, v, NULL));
    const int key = row->api == SM__API_PARAM ? row->key : 0;
    if (key == SM_TRAINER_BATCH_SIZE) return resize(t, (int64_t)v, t->micro_batch);
    if (key == SM_TRAINER_MICRO_BATCH) return resize(t, t->batch_size, (int64_t)v);
    if (key == SM_TRAINER_PK_CLASSES) SM_TRY(sm__settings_check_pk((int64_t)v, t->pk_images, NULL));
    if (key == SM_TRAINER_PK_IMAGES) SM_TRY(sm__settings_check_pk(t->pk_classes, (int64_t)v, NULL));
    SM_CHECK_ARG(key != SM_TRAINER_GRAD_SHARDS || !t->comm ||
                     (int64_t)v % sm_comm_size(t->comm) == 0,
                 "gradient shards %lld: the communicator's %d ranks must divide it", (long long)v,
                 t->comm ? sm_comm_size(t->comm) : 1);
    /* rotated classes turn images by quarter turns: square ones only (the dataset's images are
     * the subnet's input, sm_trainer_create checked it) */
    const sm_arch *a = &t->subnet->arch;
    SM_RETURN_IF(key == SM_TRAINER_ROTATED_CLASSES && v != 0 && a->in_h != a->in_w, SM_ERR_SHAPE,
                 "rotated classes need square images, the subnet takes %dx%d (width x height)",
                 a->in_w, a->in_h);
    sm__setting_put(row, t, v);
    sm__trainer_sampler_options(t);
    return SM_OK;
}

void sm__trainer_sampler_options(sm_trainer *t)
{
    if (!t->sampler) return;
    sm__sampler_set_options(t->sampler, t->neg_same_alphabet, t->alphabet_balanced);
    sm__sampler_set_rotated(t->sampler, t->rotated_classes);
}

SM_API sm_status sm_trainer_set_param(sm_trainer *t, sm_trainer_param key, int64_t value)
{
    SM_CHECK_ARG(t, "sm_trainer_set_param: trainer is NULL");
    const sm__setting *row = sm__setting_find(SM__API_PARAM, (int)key);
    SM_CHECK_ARG(row, "unknown trainer parameter %d", (int)key);
    return set_setting(t, row, (double)value);
}

SM_API sm_status sm_trainer_set_real(sm_trainer *t, sm_trainer_real key, double value)
{
    SM_CHECK_ARG(t, "sm_trainer_set_real: trainer is NULL");
    const sm__setting *row = sm__setting_find(SM__API_REAL, (int)key);
    SM_CHECK_ARG(row, "unknown real trainer parameter %d", (int)key);
    return set_setting(t, row, value);
}

SM_API sm_status sm_trainer_get_real(const sm_trainer *t, sm_trainer_real key, double *value)
{
    SM_CHECK_ARG(t && value, "sm_trainer_get_real: NULL argument");
    const sm__setting *row = sm__setting_find(SM__API_REAL, (int)key);
    SM_CHECK_ARG(row, "unknown real trainer parameter %d", (int)key);
    *value = sm__setting_get(row, t);
    return SM_OK;
}

SM_API sm_status sm_trainer_get_param(const sm_trainer *t, sm_trainer_param key, int64_t *value)
{
    SM_CHECK_ARG(t && value, "sm_trainer_get_param: NULL argument");
    const sm__setting *row = sm__setting_find(SM__API_PARAM, (int)key);
    SM_CHECK_ARG(row, "unknown trainer parameter %d", (int)key);
    *value = (int64_t)sm__setting_get(row, t);
    return SM_OK;
}

SM_API sm_status sm_trainer_set_progress(sm_trainer *t, sm_progress_fn fn, void *user)
{
    SM_CHECK_ARG(t, "sm_trainer_set_progress: trainer is NULL");
    t->progress = fn;
    t->progress_user = user;
    return SM_OK;
}

SM_API int64_t sm_trainer_iteration(const sm_trainer *t) { return t ? t->iteration : -1; }

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
    SM_TRY(sm__trainer_compute_grads(t, n, left, right, labels, &l));
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
    SM_TRY(sm__trainer_pk_reserve(t, p * k));
    SM_TRY(sm__sampler_next_pk(t->sampler, p, k, t->pk_img, NULL));
    if (t->augment)
        for (size_t i = 0; i < p * k; i++) {
            float *img = t->pk_img + i * in;
            sm__distort(&t->aug_rng, t->augment, img, a->in_h, a->in_w, t->aug_scratch);
            memcpy(img, t->aug_scratch, in * sizeof(float));
        }
    float l;
    SM_TRY(sm__trainer_compute_grads_pk(t, p, k, t->pk_img, (int)t->pk_loss, &l));
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

SM_API sm_status sm_train_step_batch(sm_trainer *t, size_t n, const float *left, const float *right,
                                     const float *labels, float *loss)
{
    SM_CHECK_ARG(t && left && right && labels, "sm_train_step_batch: NULL argument");
    SM_CHECK_ARG(n >= 1 && n <= SM__MAX_BATCH, "sm_train_step_batch: %zu pairs out of range 1..%d",
                 n, SM__MAX_BATCH);
    for (size_t i = 0; i < n; i++)
        SM_CHECK_ARG(labels[i] >= 0.0f && labels[i] <= 1.0f,
                     "sm_train_step_batch: label %zu is %g, expected a value in [0, 1]", i,
                     (double)labels[i]);
    return step(t, n, left, right, labels, loss);
}
