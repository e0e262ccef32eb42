/* SPDX-License-Identifier: MIT */
/* Training health: the smoothed loss, validation accuracy every so often, and plain-words
 * warnings about the classic failures (docs/evaluation.md gives the thresholds and why).
 * Validation has its own sampler, seeded afresh for each report, and only reads the model:
 * the training RNG streams and parameters are exactly what they would be without it. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "common/error.h"
#include "train/training.h"

#define EMA_WEIGHT 0.02 /* per step: a time constant of about 50 steps */
#define STUCK_AFTER                                                                                \
    500                   /* iterations before "stuck" or "collapsed" may be said: an
                                   untrained network gives nearly equal scores too */
#define STUCK_BAND   0.02 /* |smoothed loss - ln 2| below this is "not moved" */
#define COLLAPSE_STD 1e-3 /* validation score std below this is "constant" */
#define LN2          0.69314718055994531

SM_API sm_status sm_trainer_set_health(sm_trainer *t, int64_t every, sm_health_fn fn, void *user)
{
    SM_CHECK_ARG(t, "sm_trainer_set_health: trainer is NULL");
    SM_CHECK_ARG(!fn || (every >= 1 && every <= INT32_MAX),
                 "sm_trainer_set_health: every %lld out of range 1..2^31-1", (long long)every);
    t->health = fn;
    t->health_user = user;
    t->health_every = fn ? every : 0;
    return SM_OK;
}

SM_API sm_status sm_trainer_set_validation(sm_trainer *t, const sm_dataset *ds, size_t n_pairs,
                                           uint64_t seed)
{
    SM_CHECK_ARG(t, "sm_trainer_set_validation: trainer is NULL");
    if (!ds) {
        t->val = NULL;
        t->val_pairs = 0;
        return SM_OK;
    }
    SM_CHECK_ARG(n_pairs >= 1 && n_pairs <= SM__MAX_VAL_PAIRS,
                 "sm_trainer_set_validation: %zu pairs out of range 1..%d", n_pairs,
                 SM__MAX_VAL_PAIRS);
    int h, w;
    SM_TRY(sm_dataset_image_size(ds, &h, &w));
    const sm_arch *a = &t->subnet->arch;
    SM_RETURN_IF(a->in_c != 1 || a->in_h != h || a->in_w != w, SM_ERR_SHAPE,
                 "validation images are 1x%dx%d, the subnet takes %dx%dx%d", h, w, a->in_c, a->in_h,
                 a->in_w);
    sm_sampler *probe = NULL; /* can it give pairs at all? */
    SM_TRY(sm_sampler_create(ds, seed, &probe));
    sm_sampler_destroy(probe);
    t->val = ds;
    t->val_pairs = n_pairs;
    t->val_seed = seed;
    return SM_OK;
}

/* Appends a sentence to the report's message. */
static void say(sm_trainer *t, const char *text)
{
    size_t used = strlen(t->health_msg);
    snprintf(t->health_msg + used, sizeof t->health_msg - used, "%s%s", used ? " " : "", text);
}

void sm__health_after_step(sm_trainer *t, float loss)
{
    t->smoothed_loss = isnan(t->smoothed_loss)
                           ? (double)loss
                           : (1.0 - EMA_WEIGHT) * t->smoothed_loss + EMA_WEIGHT * (double)loss;
    if (!t->health || t->iteration % t->health_every != 0) return;

    sm_health h;
    memset(&h, 0, sizeof h);
    h.struct_size = sizeof h;
    h.iteration = t->iteration;
    h.loss = loss;
    h.smoothed_loss = (float)t->smoothed_loss;
    h.val_accuracy = h.val_score_mean = h.val_score_std = NAN;
    h.val_status = SM_OK;
    t->health_msg[0] = '\0';
    char text[512];
    if (t->val) {
        sm_eval_result r = SM_EVAL_RESULT_INIT;
        h.val_status =
            sm_verification_accuracy(t->subnet, t->head, t->val, t->val_pairs, t->val_seed, &r);
        if (h.val_status == SM_OK) {
            h.flags |= SM_HEALTH_HAS_VALIDATION;
            h.val_accuracy = r.accuracy;
            h.val_score_mean = r.score_mean;
            h.val_score_std = r.score_std;
            h.val_pairs = r.trials;
            if (t->iteration >= STUCK_AFTER && r.score_std < COLLAPSE_STD) {
                h.flags |= SM_HEALTH_COLLAPSED;
                snprintf(text, sizeof text,
                         "The validation scores have collapsed to a constant (mean %.4f, std "
                         "%.2g): the network gives every pair the same score, so its accuracy "
                         "is chance. Lower the learning rate, or restart with another seed; "
                         "check that the images are not all alike.",
                         r.score_mean, r.score_std);
                say(t, text);
            }
        } else {
            h.flags |= SM_HEALTH_VALIDATION_FAILED;
            snprintf(text, sizeof text, "Validation failed (%s): %s", sm_status_name(h.val_status),
                     sm_last_error());
            say(t, text);
        }
    }
    if (t->iteration >= STUCK_AFTER && fabs(t->smoothed_loss - LN2) < STUCK_BAND) {
        h.flags |= SM_HEALTH_STUCK;
        snprintf(text, sizeof text,
                 "After %lld iterations the loss has not moved from ln 2 = 0.693 (smoothed "
                 "%.3f): the network still answers 50/50 for every pair (\"stuck at 50 %%\"). "
                 "Lower the learning rate (for example by 10x), and check the labels (1 = same "
                 "class) and the images (values in [0, 1], 1 = white background).",
                 (long long)t->iteration, t->smoothed_loss);
        say(t, text);
    }
    h.message = t->health_msg;
    t->health(t->health_user, &h);
}
