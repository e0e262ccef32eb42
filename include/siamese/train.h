/* SPDX-License-Identifier: MIT */
/* libsiamese: training: the Adam state, the trainer and its step, checkpoints to resume
 * from, health reports with validation. Part of the API <siamese/siamese.h> includes. */
#ifndef SIAMESE_TRAIN_H
#define SIAMESE_TRAIN_H

#include "siamese/common.h"
#include "siamese/data.h"
#include "siamese/network.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------------------------------------
 * Adam, the reference's form (docs/reference.md in the source tree):
 * m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2;
 * p -= lr sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + eps)
 * ------------------------------------------------------------------------------------------- */

typedef struct sm_adam sm_adam;

typedef enum sm_adam_param {
    SM_ADAM_LEARNING_RATE = 1, /* default 6e-5, range (0, 1] */
    SM_ADAM_BETA1 = 2,         /* default 0.9,  range [0, 1) */
    SM_ADAM_BETA2 = 3,         /* default 0.99, range [0, 1) */
    SM_ADAM_EPSILON = 4,       /* default 1e-8, range (0, 1] */

    /* Since 0.3: a learning-rate schedule. The rate of the update with 1-based step number t is
     * lr * f(t), f a pure function of t and the settings below (so a resumed run continues
     * exactly); the bias correction above multiplies it as before. All off by default: f = 1,
     * the reference. With W warm-up steps and s = t - W - 1 (steps after the warm-up, from 0):
     *  - warm-up, t <= W: f = t / W, linear from 0 (step 1 runs at lr / W, step W at lr);
     *  - then SM_ADAM_SCHEDULE_CONSTANT: f = 1;
     *  - SM_ADAM_SCHEDULE_COSINE over T = SM_ADAM_SCHEDULE_STEPS steps to the floor
     *    m = SM_ADAM_MIN_LR_FACTOR: f = m + (1 - m) (1 + cos(pi min(s, T) / T)) / 2, i.e. lr at
     *    the first step after the warm-up, the floor lr * m from step W + T + 1 on (PyTorch's
     *    CosineAnnealingLR stepped once per update, with eta_min = lr * m);
     *  - SM_ADAM_SCHEDULE_STEP, S = SM_ADAM_SCHEDULE_STEPS, g = SM_ADAM_STEP_GAMMA:
     *    f = g^floor(s / S): steps W+1..W+S at lr, the next S at lr * g, ... (StepLR).
     * The cosine and step schedules need SM_ADAM_SCHEDULE_STEPS >= 1: an update without it
     * fails with SM_ERR_STATE before it changes anything. Integer keys take integral values. */
    SM_ADAM_WARMUP_STEPS = 5,   /* W, default 0 (no warm-up), integer 0..2^31-1 */
    SM_ADAM_SCHEDULE = 6,       /* an sm_adam_schedule, default SM_ADAM_SCHEDULE_CONSTANT */
    SM_ADAM_SCHEDULE_STEPS = 7, /* T (cosine) or S (step), default 0 (unset), 0..2^31-1 */
    SM_ADAM_MIN_LR_FACTOR = 8,  /* m, cosine's floor, default 0, range [0, 1] */
    SM_ADAM_STEP_GAMMA = 9,     /* g, step decay's factor, default 0.1, range (0, 1] */

    /* Since 0.3: classic L2 weight decay (Koch et al.'s per-layer L2 regulariser), a
     * coefficient per kind of weight: before the moments, g = g + lambda p for each weight
     * (the gradient of (lambda / 2) |p|^2, added to the mean loss's), exactly what
     * torch.optim.Adam(weight_decay=lambda) does. It is not AdamW's decoupled decay: the
     * decay term goes through m and v. Biases (all layers, the head's too) are never decayed.
     * Default 0 (the reference: no decay; the update is then bit-identical to one without
     * these keys), range [0, 1]. */
    SM_ADAM_WEIGHT_DECAY_CONV = 10, /* the twin's convolution weights */
    SM_ADAM_WEIGHT_DECAY_FC = 11,   /* the twin's fully connected weights */
    SM_ADAM_WEIGHT_DECAY_HEAD = 12  /* the head's weights (w of score = sigmoid(w . D + b)) */
} sm_adam_param;

/** Values of SM_ADAM_SCHEDULE (since 0.3). */
typedef enum sm_adam_schedule {
    SM_ADAM_SCHEDULE_CONSTANT = 0,
    SM_ADAM_SCHEDULE_COSINE = 1,
    SM_ADAM_SCHEDULE_STEP = 2
} sm_adam_schedule;

/** Adam state (moments, step count) for the parameters of `subnet` and `head` (borrowed: they
 *  must outlive it), with the reference's hyperparameters (the defaults of sm_adam_param:
 *  learning rate 6e-5, beta1 0.9, beta2 0.99, epsilon 1e-8). SM_ERR_INVALID_ARG (NULL, or
 *  subnet and head on different backends), SM_ERR_NOMEM. */
SM_API sm_status sm_adam_create(sm_subnet *subnet, sm_head *head, sm_adam **out);
/** Frees an Adam state (not the subnet and head it updates). NULL: no-op. */
SM_API void sm_adam_destroy(sm_adam *adam);
/** Sets / gets a hyperparameter; SM_ERR_INVALID_ARG for unknown keys or values out of range. */
SM_API sm_status sm_adam_set(sm_adam *adam, sm_adam_param key, double value);
SM_API sm_status sm_adam_get(const sm_adam *adam, sm_adam_param key, double *value);
/** Number of updates applied (t of the last update); -1 for NULL. */
SM_API int64_t sm_adam_steps(const sm_adam *adam);
/** The learning rate the update with 1-based step number `step` uses, lr * f(step) (the
 *  schedule above; without the bias correction), into `*lr`. SM_ERR_INVALID_ARG for NULL or
 *  step < 1; SM_ERR_STATE for a cosine or step schedule without SM_ADAM_SCHEDULE_STEPS.
 *  Since 0.3. */
SM_API sm_status sm_adam_lr_at(const sm_adam *adam, int64_t step, double *lr);
/** The learning rate of the last update applied (step sm_adam_steps(adam)), or of the first
 *  one before any: sm_adam_lr_at(adam, max(1, sm_adam_steps(adam)), lr). Since 0.3. */
SM_API sm_status sm_adam_current_lr(const sm_adam *adam, double *lr);

/* ---------------------------------------------------------------------------------------------
 * Training
 * ------------------------------------------------------------------------------------------- */

typedef struct sm_trainer sm_trainer;

typedef enum sm_trainer_param {
    SM_TRAINER_BATCH_SIZE = 1,  /* pairs per step, default 180, range 1..65536 */
    SM_TRAINER_MICRO_BATCH = 2, /* pairs per forward/backward chunk, 1..65536; default 16 on
                                   the CPU backends, 32 on cuda; changes memory, not the
                                   result (beyond float rounding) */
    SM_TRAINER_AUGMENT = 3,     /* since 0.2: the distortions (an OR of sm_distort_part,
                                   siamese/data.h) sm_train_step applies to each sampled image,
                                   each image its own; 0 = none, the default (the reference);
                                   SM_DISTORT_ALL = Koch et al.'s. Drawn from the trainer's own
                                   augmentation RNG (seeded from the trainer's seed, saved in
                                   checkpoints), so the pairs drawn do not change with it */
    /* since 0.3: sampling options and P x K batches (issue 11), all off by default; saved in
       checkpoints. docs/architecture.md describes the P x K step. */
    SM_TRAINER_ALPHABET_BALANCED = 20, /* 0 (default) / 1: each class drawn (for a pair or a
                                          P x K batch) by first choosing an alphabet uniformly
                                          among those that can give one, then a class in it */
    SM_TRAINER_PK_CLASSES = 21,        /* P: 0 = off (random pairs, the default); 2..4096: each step
                                   samples P distinct classes (among those with at least K
                                   images) and K distinct images of each, runs every image
                                   through the twin once, and takes the loss over all
                                   P*K*(P*K-1)/2 pairs of them (same class = similar).
                                   SM_TRAINER_BATCH_SIZE is then unused; the twin runs in
                                   chunks of 2 x min(MICRO_BATCH, BATCH_SIZE) images and the
                                   head in chunks of as many pairs. P*K at most 4096. A dataset
                                   that cannot give such a batch makes the step fail with
                                   SM_ERR_DATASET (and the reason) */
    SM_TRAINER_PK_IMAGES = 22, /* K: images per class in a P x K batch, 2..4096, default 4 */
    SM_TRAINER_PK_LOSS = 23,   /* an sm_pk_loss, default SM_PK_LOSS_BCE_BALANCED */
    /* Since 0.4: rotated classes, 0 = off (the default) / 1 = on, as most few-shot Omniglot
       results train (964 background characters give 3856 classes). On, sm_train_step samples
       from 4 classes per dataset class: the class itself and its images turned by 90, 180
       and 270 degrees counterclockwise (numpy.rot90(image, r), an exact permutation of the
       pixels), each a class of its own: a pair is similar only for the same class turned the
       same way, and the same character turned another way is a negative. A P x K batch draws
       its P distinct classes among all 4 C of them (K images of each, all turned alike).
       Class ids: v in [0, 4 C) is dataset class v mod C turned by v / C quarter turns. The
       alphabet options above treat each (alphabet, rotation) as an alphabet of its own (a
       turned script is another script): SM_TRAINER_ALPHABET_BALANCED chooses among 4 A
       alphabets, and SM_TRAINER_NEG_SAME_ALPHABET's within-alphabet negatives have the same
       turn. The turn comes before SM_TRAINER_AUGMENT's distortion, which draws as before. Only
       training sampling changes: validation (sm_trainer_set_validation) and evaluation use
       the images as they are. Off, the draws are exactly those of earlier versions (same
       seed, same bytes). Square images only: setting 1 when the subnet's input is not square
       is SM_ERR_SHAPE (and a checkpoint that sets it makes the first step SM_ERR_SHAPE).
       Saved in checkpoints */
    SM_TRAINER_ROTATED_CLASSES = 24,
    /* since 0.3: data-parallel training (siamese/comm.h) */
    SM_TRAINER_GRAD_SHARDS = 30, /* K: the batch's pairs in K groups whose gradients are summed
                                   in group order, 1..1024, default 1 (the whole batch at
                                   once, as before). A communicator's N ranks split the groups
                                   (N must divide K), and every N dividing K gives the same
                                   parameters bit for bit. A step needs at least K pairs
                                   (SM_ERR_STATE otherwise); P x K steps need K = 1. Saved in
                                   checkpoints */
    /* Since 0.5: how the ranks exchange gradients (docs/distributed.md). Neither changes the
       results: the sums are element by element, in shard order, however they are cut. Both
       saved in checkpoints. */
    SM_TRAINER_EXCHANGE_BUCKET = 31, /* bytes per bucket of the gradient exchange: the gradient
                                   travels in pieces of this size (rounded down to a multiple
                                   of 4 x the ranks), the last layers' first, each as soon as
                                   the backward pass has finished it. 0 = the whole gradient
                                   in one piece; else 64..2^40; default 4194304 (4 MiB). Every
                                   rank must use the same (compared at attach) */
    SM_TRAINER_EXCHANGE_OVERLAP = 32 /* 1 (default) / 0: run the exchange on a thread of the
                                   trainer's, overlapped with the rest of the backward pass,
                                   where the communicator allows it (sm_comm_set_serialized)
                                   and there are several ranks; 0, or a communicator that does
                                   not allow it: after the backward pass, on the stepping
                                   thread. Ranks may differ */
} sm_trainer_param;

/** The loss of a P x K step (since 0.3). Similar pairs are far fewer than dissimilar ones
 *  (P K(K-1)/2 against K^2 P(P-1)/2). */
typedef enum sm_pk_loss {
    SM_PK_LOSS_BCE_BALANCED = 0, /* BCE, similar and dissimilar pairs each weighted to half the
                                    loss: 0.5 mean(similar) + 0.5 mean(dissimilar) */
    SM_PK_LOSS_BCE = 1,          /* BCE, the plain mean over all pairs */
    SM_PK_LOSS_SOFTMAX = 2       /* each image a query against all the others: a softmax over
                                    the head's logits, cross-entropy against the uniform
                                    distribution over its K-1 similar images; the mean over the
                                    P*K queries. Ignores the head's bias (a shift of every
                                    logit). Costs a second head pass */
} sm_pk_loss;

/** Real-valued trainer parameters (since 0.3), set with sm_trainer_set_real. */
typedef enum sm_trainer_real {
    SM_TRAINER_NEG_SAME_ALPHABET = 1 /* in [0, 1], default 0: the probability that a dissimilar
                                        pair's second class is drawn from the first class's
                                        alphabet (uniformly among its other classes); otherwise
                                        it is drawn as without the option (any other class,
                                        which may also share the alphabet). A class alone in
                                        its alphabet falls back to that usual draw. In P x K
                                        batches: the probability that all P classes of a
                                        batch come from one alphabet (uniform among those
                                        with >= P classes of >= K images; none: the usual
                                        draw), so that its negatives are within-alphabet */
} sm_trainer_real;

/** Called after every successful step. */
typedef void (*sm_progress_fn)(void *user, int64_t iteration, float loss);

/** Ties a subnet, head, Adam state and dataset (all borrowed: they must outlive the trainer)
 *  with a pair sampler seeded by `seed`. `dataset` may be NULL if only sm_train_step_batch is
 *  used. SM_ERR_SHAPE if the dataset's images or the head do not fit the subnet,
 *  SM_ERR_INVALID_ARG if the Adam state belongs to another subnet/head. */
SM_API sm_status sm_trainer_create(sm_subnet *subnet, sm_head *head, sm_adam *adam,
                                   const sm_dataset *dataset, uint64_t seed, sm_trainer **out);
/** Frees a trainer and its workspaces; the subnet, head, Adam state and dataset it borrowed
 *  stay. NULL: no-op. */
SM_API void sm_trainer_destroy(sm_trainer *trainer);
/** Sets a trainer parameter (sm_trainer_param gives ranges and defaults). SM_ERR_INVALID_ARG for
 *  an unknown key or a value out of range; SM_ERR_NOMEM when new workspaces cannot be
 *  allocated (the trainer keeps its old sizes). */
SM_API sm_status sm_trainer_set_param(sm_trainer *trainer, sm_trainer_param key, int64_t value);
/** Reads a trainer parameter into `*value`. SM_ERR_INVALID_ARG for NULL or an unknown key. */
SM_API sm_status sm_trainer_get_param(const sm_trainer *trainer, sm_trainer_param key,
                                      int64_t *value);
/** Sets / reads a real-valued trainer parameter (sm_trainer_real gives ranges and defaults).
 *  SM_ERR_INVALID_ARG for NULL, an unknown key or a value out of range (NaN included). Since
 *  0.3. */
SM_API sm_status sm_trainer_set_real(sm_trainer *trainer, sm_trainer_real key, double value);
SM_API sm_status sm_trainer_get_real(const sm_trainer *trainer, sm_trainer_real key, double *value);
/** Installs the progress callback called after every successful step (NULL removes it).
 *  It runs on the thread that calls sm_train_step. */
SM_API sm_status sm_trainer_set_progress(sm_trainer *trainer, sm_progress_fn fn, void *user);
/** Completed iterations (0 before the first step); -1 for NULL. */
SM_API int64_t sm_trainer_iteration(const sm_trainer *trainer);

/** One iteration: samples a batch of pairs (distorted when SM_TRAINER_AUGMENT is set), forward,
 *  clipped BCE (mean over the batch), backward, one Adam update. With SM_TRAINER_PK_CLASSES
 *  set, a P x K batch instead (each image distorted once when augmenting), its loss as
 *  SM_TRAINER_PK_LOSS says; SM_ERR_DATASET if the dataset cannot give one. Modifies the trainer, its subnet,
 *  head and Adam state: no other thread may use any of them (predict with the model, step another
 *  trainer of the same subnet) during the call. `loss` (optional) receives the batch loss. Calls
 *  the progress callback on success. Statuses: SM_ERR_NUMERIC if the loss or a gradient is not
 *  finite; SM_ERR_STATE without a dataset; SM_ERR_INVALID_ARG (NULL trainer); SM_ERR_DEVICE.
 *  A step that fails before its Adam update changes nothing: parameters, moments, step count
 *  and sampler are as before. The update itself is two backend calls, the subnet's and then the
 *  head's; if the device fails between them (SM_ERR_DEVICE from the head's update; today only
 *  the cuda backend's update can fail, the CPU backends' cannot), the step is half applied: the
 *  subnet's parameters and Adam moments have taken this step's update, the head's have not,
 *  and the step count, iteration and sampler are as before. The two SM_ERR_DEVICE cases look
 *  the same to the caller, so after SM_ERR_DEVICE do not step on or save over the last good
 *  checkpoint: reload it with sm_trainer_load (which restores subnet, head, Adam state and
 *  sampler together), or, if the device keeps failing, into a model and trainer on a new
 *  backend. Since 0.4 a step whose update starts also clears the head's calibration
 *  (sm_head_calibrate): the weights it was fitted on have moved, so the model reads as
 *  uncalibrated until it is calibrated again. */
SM_API sm_status sm_train_step(sm_trainer *trainer, float *loss);
/** One iteration on pairs the caller provides (left[i], right[i], labels[i] in [0, 1], 1 =
 *  similar), each image of the subnet's input shape. Does not advance the sampler.
 *  SM_ERR_INVALID_ARG for NULL buffers, n outside 1..65536 or a label outside [0, 1]; otherwise
 *  as sm_train_step. Never augments (distort them first with sm_image_distort). */
SM_API sm_status sm_train_step_batch(sm_trainer *trainer, size_t n_pairs, const float *left,
                                     const float *right, const float *labels, float *loss);

/** Saves everything needed to resume exactly (subnet, head, Adam moments and hyperparameters,
 *  iteration, sampler RNG state, batch sizes; since 0.2 the augmentation setting and its RNG state;
 *  since 0.3 the gradient shards; since 0.4 rotated classes and the head's calibration, when it
 *  has one) as one safetensors file, atomically (temporary file, fsync, rename): a failure leaves
 *  any existing file untouched, and SM_OK means the new file is in place (a folder that cannot be
 *  synced after the rename is a warning through the log callback: the rename may not survive a
 *  power loss). Temporary files that killed saves of
 *  this library left beside `path` are removed, and no other file (docs/checkpoint-format.md).
 *  Health reports' smoothed loss is not saved: it starts afresh after a load. With a communicator
 *  attached (siamese/comm.h), rank 0 writes and the other ranks return SM_OK without writing. */
SM_API sm_status sm_trainer_save(const sm_trainer *trainer, const char *path);
/** Restores a file written by sm_trainer_save into this trainer. The file must match the
 *  subnet's architecture (SM_ERR_SHAPE otherwise); a model-only file is SM_ERR_FORMAT. The
 *  head's calibration becomes the file's (none when the file has none). Other statuses as
 *  sm_model_load. On any error nothing in memory changed. Modifies the subnet,
 *  head and Adam state as sm_train_step does (same threading rules). */
SM_API sm_status sm_trainer_load(sm_trainer *trainer, const char *path);

/* ---------------------------------------------------------------------------------------------
 * Training health (since 0.2): every so often the trainer measures itself and warns in plain
 * words about the classic failures. Thresholds (docs/evaluation.md):
 *  - SM_HEALTH_STUCK: from iteration 500 on, the smoothed loss (an exponential moving average
 *    of the batch losses with weight 0.02 per step) is within 0.02 of ln 2 = 0.693: the network
 *    still answers 50/50 for every pair ("stuck at 50 %").
 *  - SM_HEALTH_COLLAPSED: from iteration 500 on, the validation scores' standard deviation is
 *    below 1e-3: the scores collapsed to a constant (the accuracy then is chance). (A freshly
 *    initialised network gives nearly equal scores too, hence the wait.)
 *  - SM_HEALTH_VALIDATION_FAILED: measuring the validation set failed (the status is in the
 *    report); the training step itself had succeeded and stays applied.
 * ------------------------------------------------------------------------------------------- */

typedef enum sm_health_flag {
    SM_HEALTH_HAS_VALIDATION = 1, /* the val_* fields hold a fresh measurement */
    SM_HEALTH_STUCK = 2,
    SM_HEALTH_COLLAPSED = 4,
    SM_HEALTH_VALIDATION_FAILED = 8
} sm_health_flag;

/** One health report, valid only during the callback. Fields are only ever appended;
 *  `struct_size` says how many bytes the library filled. */
typedef struct sm_health {
    size_t struct_size;
    int64_t iteration;     /* completed iterations */
    float loss;            /* this iteration's batch loss */
    float smoothed_loss;   /* the moving average described above */
    double val_accuracy;   /* verification accuracy on the validation pairs (with the flag) */
    double val_score_mean; /* mean and std of their scores */
    double val_score_std;
    uint64_t val_pairs;   /* pairs measured (0 without validation) */
    unsigned flags;       /* an OR of sm_health_flag */
    sm_status val_status; /* SM_OK, or why validation failed */
    const char *message;  /* plain-words warnings and advice, "" when all is well */
} sm_health;

/** Receives health reports, on the thread that called sm_train_step. It must not call back
 *  into the trainer. */
typedef void (*sm_health_fn)(void *user, const sm_health *health);

/** Asks for a health report after every `every` successful iterations (1..2^31; fn NULL: no
 *  reports, the default). Reports come from sm_train_step and sm_train_step_batch. Since 0.2. */
SM_API sm_status sm_trainer_set_health(sm_trainer *trainer, int64_t every, sm_health_fn fn,
                                       void *user);
/** Measures verification accuracy on `n_pairs` (1..65536) random pairs of `dataset` (borrowed:
 *  it must outlive the trainer or be replaced; NULL: no validation) for each health report,
 *  the same pairs each time (a sampler seeded by `seed` each time), with sm_verification_accuracy.
 *  Validation has its own sampler and never touches the training RNG streams: training with
 *  and without it gives bit-identical parameters. SM_ERR_SHAPE if the images do not fit the
 *  subnet, SM_ERR_DATASET if the dataset cannot give pairs, SM_ERR_INVALID_ARG. Since 0.2. */
SM_API sm_status sm_trainer_set_validation(sm_trainer *trainer, const sm_dataset *dataset,
                                           size_t n_pairs, uint64_t seed);

#ifdef __cplusplus
}
#endif

#endif
