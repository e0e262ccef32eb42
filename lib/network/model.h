/* SPDX-License-Identifier: MIT */
/* Private: the architecture, subnet, head, Adam state and trainer as the core sees them.
 *
 * Parameters live in one flat backend buffer per model (llm.c style), in PyTorch state_dict
 * order: for each layer with parameters, its weight then its bias. Gradients mirror them, and
 * so do Adam's moments: m_sub/v_sub the subnet's buffer, m_head/v_head the head's (one
 * adam_update per model). */
#ifndef SM_LIB_MODEL_H
#define SM_LIB_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backend/backend.h"
#include "common/rng.h"
#include "siamese/siamese.h"

typedef struct sm__layer {
    sm_layer_kind kind;
    int a, b;                  /* as sm_layer_kind documents */
    int in_c, in_h, in_w;      /* input shape (flat inputs: in_c = size, in_h = in_w = 1) */
    int out_c, out_h, out_w;   /* output shape */
    size_t w_off, n_w;         /* weight offset and count in the flat parameter buffer */
    size_t b_off, n_b;         /* bias offset and count */
} sm__layer;

struct sm_arch {
    int in_c, in_h, in_w;
    size_t n_layers, cap;
    sm__layer *layers;
    size_t n_params;
};

/* Deep copy of an arch into `dst` (which owns its layer array afterwards). */
sm_status sm__arch_copy(sm_arch *dst, const sm_arch *src);
/* The architecture as text in a fresh buffer (*out, free with sm__free). */
sm_status sm__arch_text(const sm_arch *a, char **out);
void sm__arch_clear(sm_arch *a);
/* Floats per image: a layer's output; the arch's input (layer 0's input). */
size_t sm__layer_out_size(const sm__layer *l);
size_t sm__arch_in_size(const sm_arch *a);

struct sm_subnet {
    sm_backend *be;
    sm_arch arch;
    size_t n_params;
    float *params; /* backend buffer */
    float *grads;  /* backend buffer, allocated by the first trainer; NULL before */
};

struct sm_head {
    sm_backend *be;
    size_t dim;
    size_t n_params; /* dim weights then one bias */
    float *params;   /* backend buffer */
    float *grads;    /* backend buffer, allocated by the first trainer; NULL before */
};

struct sm_adam {
    sm_subnet *subnet;
    sm_head *head;
    double lr, beta1, beta2, eps;
    /* since 0.3 (sm_adam_param gives the meaning and defaults) */
    int64_t warmup, sched_steps;
    int schedule; /* an sm_adam_schedule */
    double min_lr_factor, step_gamma;
    double wd_conv, wd_fc, wd_head;
    int64_t t;     /* updates applied */
    float *m_sub, *v_sub, *m_head, *v_head; /* backend buffers, zero-initialised */
};

/* One Adam update of subnet and head from their gradients; t advances on success.
 * SM_ERR_STATE (nothing changed) for a schedule that lacks its length. */
sm_status sm__adam_apply(sm_adam *a);
/* f(t) of the schedule (sm_adam_param), t >= 1; SM_ERR_STATE as above. */
sm_status sm__adam_lr_factor(const sm_adam *a, int64_t t, double *factor);

/* How one layer runs, decided once per workspace (sm__workspace_create) so that forward and
 * backward read it instead of looking at the neighbouring layers. */
typedef struct sm__layer_plan {
    bool in_place;    /* relu, flatten: the output is the input's buffer */
    bool keep_output; /* training: the output has a buffer of its own, which backward reads
                       * (false for in-place layers and for every layer in inference) */
    bool output_in_grad_buffer; /* training, a conv whose output only feeds relu then max-pool:
                                 * backward does not need it, so it is not kept; it lives in
                                 * the larger gradient buffer, idle until backward */
    bool relu_folded_into_pool; /* a relu between such a conv and its max-pool: its backward
                                 * is done by the pool's (pool_applies_relu) */
    bool pool_applies_relu;     /* that max-pool: masks its gradient with (pooled value > 0)
                                 * before the scatter. ReLU commutes with the max, and the
                                 * windows do not overlap, so this is bit-identical to masking
                                 * the scattered gradient with (conv output > 0) */
    bool passes_grad; /* backward writes d(input) into the other gradient buffer, then the two
                       * swap (conv, fc and pool layers other than the first) */
} sm__layer_plan;

/* Activations and gradient scratch for forward/backward over up to `cap` images. */
typedef struct sm__workspace {
    size_t cap;          /* images */
    sm__layer_plan *plan; /* per layer */
    float **act;         /* act[i] = input of layer i (act[0] is the batch input), act[n] out;
                          * act[i + 1] is act[i] for an in-place layer, a gradient buffer for
                          * an output training does not keep, a ping buffer in inference */
    int32_t **argmax;    /* per maxpool layer (inference: all shared_argmax), else NULL */
    float *grad_a, *grad_b; /* training: ping-pong gradient buffers, each sized for what lands
                             * in it (the larger one also for the outputs not kept); else NULL */
    void *conv_ws;          /* the largest conv workspace over the layers at `cap` images */
    size_t conv_ws_bytes;
    bool training;          /* training keeps the outputs backward needs; inference reuses two */
    float *ping[2];         /* inference: the two alternating output buffers */
    int32_t *shared_argmax; /* inference: one argmax buffer for every pool layer */
} sm__workspace;

/* Plans the layers and allocates every buffer for `cap` images; nothing is allocated later. */
sm_status sm__workspace_create(const sm_subnet *s, size_t cap, bool for_training,
                               sm__workspace *ws);
void sm__workspace_destroy(const sm_subnet *s, sm__workspace *ws);

/* Forward n <= ws->cap images already in ws->act[0]; the raw output (pre-sigmoid) ends in
 * ws->act[n_layers]. */
sm_status sm__subnet_forward(const sm_subnet *s, sm__workspace *ws, size_t n);
/* Backward (training workspace) from d(output), which the caller leaves in ws->grad_a
 * (n x output size), after sm__subnet_forward on the same n images: accumulates parameter
 * gradients into s->grads; clobbers grad_a and grad_b (and so the outputs not kept). */
sm_status sm__subnet_backward(sm_subnet *s, sm__workspace *ws, size_t n);

/* Images per sm_embed call when the core embeds many (one-shot evaluation): the backend's
 * preference. */
size_t sm__subnet_embed_chunk(const sm_subnet *s);

/* Backend buffers for one micro-batch of P pairs (2P images). */
typedef struct sm__step_buffers {
    size_t pairs;
    sm__workspace ws;
    float *feat;    /* 2P x D sigmoid features: lefts, then rights */
    float *diff;    /* P x D */
    float *ddiff;   /* P x D */
    float *dfeat;   /* 2P x D */
    float *logits, *scores, *dlogits, *labels; /* P each */
    float *loss_sum; /* 1 */
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

    sm__step_buffers buf;  /* sized for min(micro_batch, batch_size) pairs; rebuilt when that
                            * changes */
    float *batch_left, *batch_right, *batch_labels; /* host: one sampled batch */
    size_t batch_cap;      /* pairs the batch buffers hold */

    /* augmentation (since 0.2): its own RNG, so the sampler's pairs do not depend on it */
    unsigned augment;      /* an OR of sm_distort_part; 0 = off */
    sm__rng aug_rng;
    float *aug_scratch;    /* one image; allocated with the sampler */

    /* sampling options and P x K batches (since 0.3; all off by default) */
    double neg_same_alphabet;   /* fraction of negatives within the alphabet, 0 = off */
    bool alphabet_balanced;
    int64_t pk_classes;         /* P; 0 = random pairs */
    int64_t pk_images;          /* K */
    int64_t pk_loss;            /* sm_pk_loss */
    /* host buffers of a P x K step, grown on demand (the device side reuses `buf`) */
    float *pk_img;              /* P*K images */
    float *pk_feat, *pk_dfeat;  /* P*K x D: sigmoid features, dL/dfeature */
    float *pk_pair;             /* 2 x pairs x D: one chunk's features, then its dfeat */
    float *pk_labels;           /* pairs */
    size_t *pk_pi, *pk_pj;      /* pairs: the chunk's two image indices */
    double *pk_query;           /* 2 x P*K: softmax mode's per-query max and sum */
    float *pk_z;                /* all pairs: softmax mode's logits, then dL/dlogit */
    size_t pk_cap_img, pk_cap_chunk, pk_cap_z;

    /* data-parallel training (since 0.3, lib/trainer_shards.c) */
    int64_t shards;             /* K gradient shards, 1 = the whole batch at once */
    sm_comm *comm;              /* borrowed; NULL = alone */
    float *sh_part;             /* host: this rank's K/N shard gradients, G floats each */
    unsigned char *sh_send, *sh_recv; /* host: the all-to-all's N blocks */
    float *sh_full;             /* host: N slices of the folded gradient (the all-gather's) */
    size_t sh_cap_part, sh_cap_block, sh_cap_full;

    /* health reports and validation (since 0.2); none of it touches the training RNGs */
    sm_health_fn health;
    void *health_user;
    int64_t health_every;
    const sm_dataset *val;
    size_t val_pairs;
    uint64_t val_seed;
    double smoothed_loss;  /* EMA of batch losses; NAN before the first step */
    char health_msg[1024];
};

/* The augmentation RNG's seed for a trainer seed (a stream apart from the sampler's). */
uint64_t sm__augment_seed(uint64_t trainer_seed);
/* After a successful step: updates the smoothed loss and sends a health report when one is
 * due (lib/health.c). */
void sm__health_after_step(sm_trainer *t, float loss);

/* Head forward for `pairs` pairs: feat holds 2*pairs sigmoid features (lefts, then rights);
 * diff (pairs x dim) and logits (pairs) receive the results. */
sm_status sm__head_logits(const sm_head *h, size_t pairs, const float *feat, float *diff,
                          float *logits);
/* Head backward: accumulates into h->grads; dfeat (2*pairs x dim) receives dL/dfeat. */
sm_status sm__head_backward(sm_head *h, size_t pairs, const float *feat, const float *diff,
                            const float *dlogits, float *ddiff, float *dfeat);

/* Fills n parameters at `dst` (a backend buffer) with N(0, std^2) drawn from `rng`; zeros when
 * rng is NULL. */
sm_status sm__init_normal(sm_backend *be, float *dst, size_t n, double std, sm__rng *rng);

/* Sets batch size and micro-batch together, all or nothing (for checkpoint loading). */
sm_status sm__trainer_resize(sm_trainer *t, int64_t batch, int64_t micro);

/* Debug/test access (tests link the internal static library). */
sm_status sm__subnet_read_params(const sm_subnet *s, float *host);
sm_status sm__subnet_write_params(sm_subnet *s, const float *host);
sm_status sm__head_read_params(const sm_head *h, float *host);
sm_status sm__head_write_params(sm_head *h, const float *host);
/* Runs forward + backward on given pairs without the Adam update: gradients are left in
 * subnet->grads / head->grads (zeroed first). `loss` receives the mean loss. */
sm_status sm__trainer_compute_grads(sm_trainer *t, size_t n_pairs, const float *left,
                                    const float *right, const float *labels, float *loss);
/* The P x K step's gradient on given images (P*K, class by class: image q*K + i is of class
 * q), without the Adam update, as sm__trainer_compute_grads; `loss_mode` an sm_pk_loss. */
sm_status sm__trainer_compute_grads_pk(sm_trainer *t, size_t p, size_t k, const float *images,
                                       int loss_mode, float *loss);
sm_status sm__subnet_read_grads(const sm_subnet *s, float *host);
/* Forward + backward over the n pairs at left/right/labels: gradients zeroed, then accumulated
 * in micro-batches from the first pair, the loss's gradient scaled by 1 / scale_n; `*sum`
 * receives the sum of the pairs' losses (unscaled). No finiteness check. */
sm_status sm__trainer_grads_part(sm_trainer *t, size_t n, size_t scale_n, const float *left,
                                 const float *right, const float *labels, double *sum);
/* The loss (`total`, already the mean) and the gradients in subnet/head grads must be finite;
 * writes *loss. */
sm_status sm__trainer_check_finite(sm_trainer *t, double total, float *loss);
/* lib/trainer_shards.c: the step's gradient as the fold of K shard gradients, this rank's
 * computed here and the others' through the communicator (t->shards > 1 or t->comm). */
sm_status sm__shards_grads(sm_trainer *t, size_t n, const float *left, const float *right,
                           const float *labels, float *loss);
/* The pairs [*lo, *hi) of a batch of n whose images this rank needs (all without a
 * communicator). */
void sm__shards_local_pairs(const sm_trainer *t, size_t n, size_t *lo, size_t *hi);
/* Frees the shard buffers. */
void sm__shards_free(sm_trainer *t);
/* Slice j (0..nr-1, nr >= 1) of a gradient of g floats cut over nr ranks in slices of
 * ceil(g/nr) floats: the floats [*begin, *begin + *count), *count <= ceil(g/nr) (the rest of
 * the slice is padding); a slice past g is empty (*begin = g, *count = 0). The slices cover
 * [0, g) once, in order. */
void sm__shard_slice(size_t g, size_t nr, size_t j, size_t *begin, size_t *count);
sm_status sm__head_read_grads(const sm_head *h, float *host);

/* TEST ONLY: numerical fault injection (tests/test_numeric.c). 0 = off (the default; costs one
 * relaxed atomic load per step). Otherwise the next gradient computation, once every
 * micro-batch's gradients are in and before they are checked, plants a fault and resets this to 0:
 * SM__INJECT_SUBNET_NAN = a NaN in one subnet gradient, SM__INJECT_HEAD_INF = +Inf in one head
 * gradient, SM__INJECT_LOSS_NAN = a NaN loss. Never set by the library itself. */
enum { SM__INJECT_SUBNET_NAN = 1, SM__INJECT_HEAD_INF = 2, SM__INJECT_LOSS_NAN = 3 };
extern _Atomic int sm__inject_nonfinite;

#endif
