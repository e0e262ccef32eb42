/* SPDX-License-Identifier: MIT */
/* Private: Adam's state and the trainer as the core sees them (the network is
 * network/network.h). Adam's moments mirror the parameters: m_sub/v_sub the subnet's buffer,
 * m_head/v_head the head's (one adam_update per model). */
#ifndef SM_LIB_TRAIN_TRAINING_H
#define SM_LIB_TRAIN_TRAINING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "comm/grad_exchange.h"
#include "common/rng.h"
#include "network/network.h"
#include "siamese/siamese.h"

/* The trainer's limits, the one place they are written (set_param, checkpoints, the shard
 * exchange's per-rank arrays). */
#define SM__MAX_BATCH       65536 /* pairs per batch and per micro-batch */
#define SM__MAX_PK_IMAGES   4096  /* P x K */
#define SM__MAX_GRAD_SHARDS 1024  /* K gradient shards */
#define SM__MAX_VAL_PAIRS   65536 /* validation pairs (sm_trainer_set_validation) */
/* SM_TRAINER_EXCHANGE_BUCKET's default (docs/distributed.md measures 1 to 64 MiB) */
#define SM__EXCHANGE_BUCKET_DEFAULT 4194304
/* A P x K batch whose training workspace (sm__workspace_image_bytes per image) fits this runs
 * every image through the twin once forward and once backward; a larger one runs in the
 * trainer's micro-batch chunks, forward twice (trainer_pk.c). A rule of the batch's shape, so
 * the same settings give the same bits on every machine. */
#define SM__PK_ONE_PASS_BYTES ((size_t)256 << 20)
/* TEST ONLY: the budget in force (tests/test_pk.c sets 0 to run the chunked path); never set by
 * the library. */
extern size_t sm__pk_one_pass_bytes;

struct sm_adam {
    sm_subnet *subnet;
    sm_head *head;
    double lr, beta1, beta2, eps;
    /* since 0.3 (sm_adam_param gives the meaning and defaults) */
    int64_t warmup, sched_steps;
    int schedule; /* an sm_adam_schedule */
    double min_lr_factor, step_gamma;
    double wd_conv, wd_fc, wd_head;
    int64_t t;                              /* updates applied */
    float *m_sub, *v_sub, *m_head, *v_head; /* backend buffers, zero-initialised */
};

/* One Adam update of subnet and head from their gradients; t advances on success.
 * SM_ERR_STATE (nothing changed) for a schedule that lacks its length. */
sm_status sm__adam_apply(sm_adam *a);
/* f(t) of the schedule (sm_adam_param), t >= 1; SM_ERR_STATE as above. */
sm_status sm__adam_lr_factor(const sm_adam *a, int64_t t, double *factor);

/* Backend buffers for one micro-batch of P pairs (2P images). */
typedef struct sm__step_buffers {
    size_t pairs;
    sm__workspace ws;
    float *feat;                               /* 2P x D sigmoid features: lefts, then rights */
    float *diff;                               /* P x D */
    float *ddiff;                              /* P x D */
    float *dfeat;                              /* 2P x D */
    float *logits, *scores, *dlogits, *labels; /* P each */
    float *loss_sum;                           /* 1 */
} sm__step_buffers;

struct sm_trainer {
    sm_subnet *subnet;
    sm_head *head;
    sm_adam *adam;
    const sm_dataset *dataset;
    sm_sampler *sampler; /* NULL without a dataset */
    int64_t iteration;
    int64_t batch_size, micro_batch;
    uint64_t seed;
    sm_progress_fn progress;
    void *progress_user;

    sm__step_buffers buf; /* sized for min(micro_batch, batch_size) pairs; rebuilt when that
                            * changes */
    float *batch_left, *batch_right, *batch_labels; /* host: one sampled batch */
    size_t batch_cap;                               /* pairs the batch buffers hold */

    /* augmentation (since 0.2): its own RNG, so the sampler's pairs do not depend on it */
    unsigned augment; /* an OR of sm_distort_part; 0 = off */
    sm__rng aug_rng;
    float *aug_scratch; /* one image; allocated with the sampler */

    /* sampling options and P x K batches (since 0.3; all off by default) */
    double neg_same_alphabet; /* fraction of negatives within the alphabet, 0 = off */
    bool alphabet_balanced;
    int64_t pk_classes;   /* P; 0 = random pairs */
    int64_t pk_images;    /* K */
    int64_t pk_loss;      /* sm_pk_loss */
    bool rotated_classes; /* since 0.4: each class's 90, 180 and 270 degree turns are classes */
    /* backend buffers for a whole P x K batch at once (pk_buf.pairs = ceil(P K / 2)), made by
     * its first step when it fits SM__PK_ONE_PASS_BYTES and is larger than `buf` */
    sm__step_buffers pk_buf;
    /* host buffers of a P x K step, grown on demand */
    float *pk_img;             /* P*K images */
    float *pk_feat, *pk_dfeat; /* P*K x D: sigmoid features, dL/dfeature */
    float *pk_pair;            /* 2 x pairs x D: one chunk's features, then its dfeat */
    float *pk_labels;          /* pairs */
    size_t *pk_pi, *pk_pj;     /* pairs: the chunk's two image indices */
    double *pk_query;          /* 2 x P*K: softmax mode's per-query max and sum */
    float *pk_z;               /* all pairs: softmax mode's logits, then dL/dlogit */
    size_t pk_cap_img, pk_cap_chunk, pk_cap_z;

    /* data-parallel training (since 0.3, train/trainer_shards.c) */
    int64_t shards; /* K gradient shards, 1 = the whole batch at once */
    sm_comm *comm;  /* borrowed; NULL = alone */
    int64_t exchange_bucket; /* since 0.5: bytes per bucket of the exchange, 0 = one bucket */
    bool exchange_overlap;   /* since 0.5: the exchange's thread, where the communicator allows */
    float *sh_part; /* host: this rank's K/N shard gradients, G floats each */
    size_t sh_cap_part;
    sm__grad_exchange sh_x; /* the exchange's buffers */

    /* health reports and validation (since 0.2); none of it touches the training RNGs */
    sm_health_fn health;
    void *health_user;
    int64_t health_every;
    const sm_dataset *val;
    size_t val_pairs;
    uint64_t val_seed;
    double smoothed_loss; /* EMA of batch losses; NAN before the first step */
    char health_msg[1024];
};

/* step_grads.c: the backend buffers of a step for `pairs` pairs (2 x pairs images); on failure
 * none is left. Destroy frees them (safe on zeroed ones). */
sm_status sm__step_buffers_create(const sm_trainer *t, size_t pairs, sm__step_buffers *b);
void sm__step_buffers_destroy(const sm_trainer *t, sm__step_buffers *b);

/* The augmentation RNG's seed for a trainer seed (a stream apart from the sampler's). */
uint64_t sm__augment_seed(uint64_t trainer_seed);
/* After a successful step: updates the smoothed loss and sends a health report when one is
 * due (lib/train/health.c). */
void sm__health_after_step(sm_trainer *t, float loss);

/* Passes the sampling options (neg_same_alphabet, alphabet_balanced, rotated_classes) on to
 * the sampler, when there is one. */
void sm__trainer_sampler_options(sm_trainer *t);

/* Sets batch size and micro-batch together, all or nothing (for checkpoint loading). */
sm_status sm__trainer_resize(sm_trainer *t, int64_t batch, int64_t micro);

/* Runs forward + backward on given pairs without the Adam update: gradients are left in
 * subnet->grads / head->grads (zeroed first). `loss` receives the mean loss. */
sm_status sm__trainer_compute_grads(sm_trainer *t, size_t n_pairs, const float *left,
                                    const float *right, const float *labels, float *loss);
/* trainer_pk.c: the host buffers of a P x K batch of n images (t->pk_img and the rest), grown
 * to fit and kept. */
sm_status sm__trainer_pk_reserve(sm_trainer *t, size_t n);
/* The P x K step's gradient on given images (P*K, class by class: image q*K + i is of class
 * q), without the Adam update, as sm__trainer_compute_grads; `loss_mode` an sm_pk_loss. */
sm_status sm__trainer_compute_grads_pk(sm_trainer *t, size_t p, size_t k, const float *images,
                                       int loss_mode, float *loss);
/* Forward + backward over the n pairs at left/right/labels: gradients zeroed, then accumulated
 * in micro-batches from the first pair, the loss's gradient scaled by 1 / scale_n; `*sum`
 * receives the sum of the pairs' losses (unscaled). No finiteness check. `last` (NULL: none)
 * hears, during the last micro-batch's backward, which gradients are final, in the
 * coordinates of the flat gradient (the subnet's n_params floats, then the head's): `from` =
 * the subnet's n_params once the head's are, then each subnet layer's first parameter. */
sm_status sm__trainer_grads_part(sm_trainer *t, size_t n, size_t scale_n, const float *left,
                                 const float *right, const float *labels, double *sum,
                                 const sm__grads_hook *last);
/* The loss (`total`, already the mean) and the gradients in subnet/head grads must be finite;
 * writes *loss. */
sm_status sm__trainer_check_finite(sm_trainer *t, double total, float *loss);
/* train/trainer_shards.c: the step's gradient as the fold of K shard gradients, this rank's
 * computed here and the others' through the communicator (t->shards > 1 or t->comm). */
sm_status sm__shards_grads(sm_trainer *t, size_t n, const float *left, const float *right,
                           const float *labels, float *loss);
/* The pairs [*lo, *hi) of a batch of n whose images this rank needs (all without a
 * communicator). */
void sm__shards_local_pairs(const sm_trainer *t, size_t n, size_t *lo, size_t *hi);
/* Frees the shard buffers. */
void sm__shards_free(sm_trainer *t);

/* TEST ONLY: numerical fault injection (tests/test_numeric.c). 0 = off (the default; costs one
 * relaxed atomic load per step). Otherwise the next gradient computation, once every
 * micro-batch's gradients are in and before they are checked, plants a fault and resets this to 0:
 * SM__INJECT_SUBNET_NAN = a NaN in one subnet gradient, SM__INJECT_HEAD_INF = +Inf in one head
 * gradient, SM__INJECT_LOSS_NAN = a NaN loss. Never set by the library itself. */
enum { SM__INJECT_SUBNET_NAN = 1, SM__INJECT_HEAD_INF = 2, SM__INJECT_LOSS_NAN = 3 };
extern _Atomic int sm__inject_nonfinite;

#endif
