/* SPDX-License-Identifier: MIT */
/* The settings table (train/settings.h). Rows in the order checkpoints write them; the micro-batch
 * has no fixed default (sm_trainer_create asks the backend: NAN). */
#include "train/settings.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "common/error.h"

/* The largest step counts the schedule keys take. */
#define MAX_STEPS 2147483647.0

/* ADAM(checkpoint key, what, public key, field, type, lo, lo open, hi, hi open, since,
 *      absent, group, default); TRAINER(checkpoint key, what, public call, public key, field,
 *      type, lo, hi, 0 allowed, since, absent, default) */
#define ADAM(key_, what_, api_key, field, type_, lo_, lo_open_, hi_, hi_open_, since_, absent_,    \
             group_, dflt_)                                                                        \
    {                                                                                              \
        key_, what_, SM__SET_ADAM, SM__API_ADAM, api_key, offsetof(sm_adam, field), type_, lo_,    \
            hi_, lo_open_, hi_open_, false, since_, absent_, group_, true, dflt_                   \
    }
#define TRAINER(key_, what_, api_, api_key, field, type_, lo_, hi_, zero_ok_, since_, absent_,     \
                dflt_)                                                                             \
    {                                                                                              \
        key_, what_, SM__SET_TRAINER, api_, api_key, offsetof(sm_trainer, field), type_, lo_, hi_, \
            false, false, zero_ok_, since_, absent_, NULL, true, dflt_                             \
    }

/* A trainer setting that changes neither the bits nor what the ranks send: not compared at
 * attach (TRAINER's other fields) */
#define TRAINER_LOCAL(key_, what_, api_, api_key, field, type_, lo_, hi_, zero_ok_, since_,       \
                      absent_, dflt_)                                                              \
    {                                                                                              \
        key_, what_, SM__SET_TRAINER, api_, api_key, offsetof(sm_trainer, field), type_, lo_, hi_, \
            false, false, zero_ok_, since_, absent_, NULL, false, dflt_                            \
    }

const sm__setting sm__settings[] = {
    ADAM("adam_lr", "learning rate", SM_ADAM_LEARNING_RATE, lr, SM__T_DOUBLE, 0, true, 1, false, 1,
         0, NULL, 6e-5),
    ADAM("adam_beta1", "beta1", SM_ADAM_BETA1, beta1, SM__T_DOUBLE, 0, false, 1, true, 1, 0, NULL,
         0.9),
    ADAM("adam_beta2", "beta2", SM_ADAM_BETA2, beta2, SM__T_DOUBLE, 0, false, 1, true, 1, 0, NULL,
         0.99),
    ADAM("adam_eps", "epsilon", SM_ADAM_EPSILON, eps, SM__T_DOUBLE, 0, true, 1, false, 1, 0, NULL,
         1e-8),
    /* the schedule and weight decay (format 3): a file holds all eight keys or none */
    ADAM("adam_warmup_steps", "warm-up steps", SM_ADAM_WARMUP_STEPS, warmup, SM__T_I64, 0, false,
         MAX_STEPS, false, 3, 0, "schedule", 0),
    ADAM("adam_schedule", "schedule", SM_ADAM_SCHEDULE, schedule, SM__T_INT, 0, false, 2, false, 3,
         SM_ADAM_SCHEDULE_CONSTANT, "schedule", SM_ADAM_SCHEDULE_CONSTANT),
    ADAM("adam_schedule_steps", "schedule steps", SM_ADAM_SCHEDULE_STEPS, sched_steps, SM__T_I64, 0,
         false, MAX_STEPS, false, 3, 0, "schedule", 0),
    ADAM("adam_min_lr_factor", "minimum learning-rate factor", SM_ADAM_MIN_LR_FACTOR, min_lr_factor,
         SM__T_DOUBLE, 0, false, 1, false, 3, 0, "schedule", 0),
    ADAM("adam_step_gamma", "step decay gamma", SM_ADAM_STEP_GAMMA, step_gamma, SM__T_DOUBLE, 0,
         true, 1, false, 3, 0.1, "schedule", 0.1),
    ADAM("adam_weight_decay_conv", "conv weight decay", SM_ADAM_WEIGHT_DECAY_CONV, wd_conv,
         SM__T_DOUBLE, 0, false, 1, false, 3, 0, "schedule", 0),
    ADAM("adam_weight_decay_fc", "fc weight decay", SM_ADAM_WEIGHT_DECAY_FC, wd_fc, SM__T_DOUBLE, 0,
         false, 1, false, 3, 0, "schedule", 0),
    ADAM("adam_weight_decay_head", "head weight decay", SM_ADAM_WEIGHT_DECAY_HEAD, wd_head,
         SM__T_DOUBLE, 0, false, 1, false, 3, 0, "schedule", 0),
    TRAINER("batch_size", "batch size", SM__API_PARAM, SM_TRAINER_BATCH_SIZE, batch_size, SM__T_I64,
            1, SM__MAX_BATCH, false, 1, 0, 180),
    TRAINER("micro_batch", "micro-batch", SM__API_PARAM, SM_TRAINER_MICRO_BATCH, micro_batch,
            SM__T_I64, 1, SM__MAX_BATCH, false, 1, 0, NAN),
    /* format 2; its RNG state, augment_state, is the trainer's state (checkpoint.c) */
    TRAINER("augment", "augmentation (an OR of sm_distort_part)", SM__API_PARAM, SM_TRAINER_AUGMENT,
            augment, SM__T_UNSIGNED, 0, SM_DISTORT_ALL, false, 2, 0, 0),
    TRAINER("alphabet_balanced", "alphabet-balanced sampling", SM__API_PARAM,
            SM_TRAINER_ALPHABET_BALANCED, alphabet_balanced, SM__T_BOOL, 0, 1, false, 3, 0, 0),
    TRAINER("neg_same_alphabet", "fraction of negatives within the alphabet", SM__API_REAL,
            SM_TRAINER_NEG_SAME_ALPHABET, neg_same_alphabet, SM__T_DOUBLE, 0, 1, false, 3, 0, 0),
    TRAINER("pk_classes", "P x K batches: P classes", SM__API_PARAM, SM_TRAINER_PK_CLASSES,
            pk_classes, SM__T_I64, 2, SM__MAX_PK_IMAGES, true, 3, 0, 0),
    TRAINER("pk_images", "P x K batches: K images per class", SM__API_PARAM, SM_TRAINER_PK_IMAGES,
            pk_images, SM__T_I64, 2, SM__MAX_PK_IMAGES, false, 3, 4, 4),
    TRAINER("pk_loss", "P x K loss (an sm_pk_loss)", SM__API_PARAM, SM_TRAINER_PK_LOSS, pk_loss,
            SM__T_I64, SM_PK_LOSS_BCE_BALANCED, SM_PK_LOSS_SOFTMAX, false, 3,
            SM_PK_LOSS_BCE_BALANCED, SM_PK_LOSS_BCE_BALANCED),
    TRAINER("grad_shards", "gradient shards", SM__API_PARAM, SM_TRAINER_GRAD_SHARDS, shards,
            SM__T_I64, 1, SM__MAX_GRAD_SHARDS, false, 3, 1, 1),
    /* format 4 (0.4); absent: off, as every file from before it */
    TRAINER("rotated_classes", "rotated classes", SM__API_PARAM, SM_TRAINER_ROTATED_CLASSES,
            rotated_classes, SM__T_BOOL, 0, 1, false, 4, 0, 0),
    /* 0.5: the exchange's buckets (the ranks must cut alike: compared) and its thread (not) */
    TRAINER("exchange_bucket_bytes", "gradient exchange bucket bytes", SM__API_PARAM,
            SM_TRAINER_EXCHANGE_BUCKET, exchange_bucket, SM__T_I64, 64, 1099511627776.0, true, 5,
            SM__EXCHANGE_BUCKET_DEFAULT, SM__EXCHANGE_BUCKET_DEFAULT),
    TRAINER_LOCAL("exchange_overlap", "overlapped gradient exchange", SM__API_PARAM,
                  SM_TRAINER_EXCHANGE_OVERLAP, exchange_overlap, SM__T_BOOL, 0, 1, false, 5, 1, 1),
};
const size_t sm__n_settings = sizeof sm__settings / sizeof *sm__settings;
_Static_assert(sizeof sm__settings / sizeof *sm__settings <= SM__MAX_SETTINGS,
               "raise SM__MAX_SETTINGS");

const sm__setting *sm__setting_find(sm__set_api api, int key)
{
    for (size_t i = 0; i < sm__n_settings; i++)
        if (sm__settings[i].api == api && sm__settings[i].key == key) return &sm__settings[i];
    return NULL;
}

double sm__setting_get(const sm__setting *s, const void *owner)
{
    const char *p = (const char *)owner + s->off;
    switch (s->type) {
    case SM__T_DOUBLE: return *(const double *)(const void *)p;
    case SM__T_I64: return (double)*(const int64_t *)(const void *)p;
    case SM__T_INT: return *(const int *)(const void *)p;
    case SM__T_UNSIGNED: return *(const unsigned *)(const void *)p;
    case SM__T_BOOL: return *(const bool *)(const void *)p ? 1 : 0;
    }
    return 0;
}

void sm__setting_put(const sm__setting *s, void *owner, double v)
{
    char *p = (char *)owner + s->off;
    switch (s->type) {
    case SM__T_DOUBLE: *(double *)(void *)p = v; break;
    case SM__T_I64: *(int64_t *)(void *)p = (int64_t)v; break;
    case SM__T_INT: *(int *)(void *)p = (int)v; break;
    case SM__T_UNSIGNED: *(unsigned *)(void *)p = (unsigned)v; break;
    case SM__T_BOOL: *(bool *)(void *)p = v != 0; break;
    }
}

sm_status sm__setting_check(const sm__setting *s, double v, const char *path)
{
    const bool integer = s->type != SM__T_DOUBLE;
    bool ok = isfinite(v) && (s->lo_open ? v > s->lo : v >= s->lo) &&
              (s->hi_open ? v < s->hi : v <= s->hi) && (!integer || v == floor(v));
    if (!ok && s->zero_ok && v == 0) ok = true;
    if (ok) return SM_OK;
    const sm_status st = path ? SM_ERR_FORMAT : SM_ERR_INVALID_ARG;
    char range[96];
    if (integer)
        snprintf(range, sizeof range, "an integer in %s%.17g..%.17g", s->zero_ok ? "{0} or " : "",
                 s->lo, s->hi);
    else
        snprintf(range, sizeof range, "a number in %c%g, %g%c", s->lo_open ? '(' : '[', s->lo,
                 s->hi, s->hi_open ? ')' : ']');
    if (path)
        return sm__fail(st, "checkpoint '%s': %s (%s) %.17g is not %s", path, s->ck_key, s->what, v,
                        range);
    return sm__fail(st, "%s %.17g out of range: expected %s", s->what, v, range);
}

sm_status sm__settings_check_pk(int64_t p, int64_t k, const char *path)
{
    if (p != 1 && p * k <= SM__MAX_PK_IMAGES) return SM_OK;
    if (path)
        return sm__fail(SM_ERR_FORMAT, "checkpoint '%s': P x K = %lld x %lld is out of range", path,
                        (long long)p, (long long)k);
    return sm__fail(SM_ERR_INVALID_ARG, "P x K batches: P x K = %lld x %lld images, more than %d",
                    (long long)p, (long long)k, SM__MAX_PK_IMAGES);
}
