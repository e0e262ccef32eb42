/* SPDX-License-Identifier: MIT */
/* Private: the architecture, subnet and head as the core sees them (training's state is
 * train/training.h).
 *
 * Parameters live in one flat backend buffer per model (llm.c style), in PyTorch state_dict
 * order: for each layer with parameters, its weight then its bias. Gradients mirror them. */
#ifndef SM_LIB_NETWORK_NETWORK_H
#define SM_LIB_NETWORK_NETWORK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backend/backend.h"
#include "common/rng.h"
#include "siamese/siamese.h"

typedef struct sm__layer {
    sm_layer_kind kind;
    int a, b;                /* as sm_layer_kind documents */
    int in_c, in_h, in_w;    /* input shape (flat inputs: in_c = size, in_h = in_w = 1) */
    int out_c, out_h, out_w; /* output shape */
    size_t w_off, n_w;       /* weight offset and count in the flat parameter buffer */
    size_t b_off, n_b;       /* bias offset and count */
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

/* A Platt calibration folded into a head's weights (sm_head_calibrate, since 0.4): the head's
 * logit is `scale` z + `shift`, z being the logit of the weights before any fold. The weights are
 * the source of truth; this records what was folded, for the checkpoint's metadata and
 * sm_head_calibration. A training step clears it (train/adam.c). */
typedef struct sm__calibration {
    bool on;
    double scale, shift;
    size_t pairs; /* labelled pairs the last fit saw (0: not said) */
} sm__calibration;

struct sm_head {
    sm_backend *be;
    size_t dim;
    size_t n_params; /* dim weights then one bias */
    float *params;   /* backend buffer */
    float *grads;    /* backend buffer, allocated by the first trainer; NULL before */
    sm__calibration cal;
};

/* How one layer runs, decided once per workspace (sm__workspace_create) so that forward and
 * backward read it instead of looking at the neighbouring layers. */
typedef struct sm__layer_plan {
    bool in_place;    /* relu, flatten: the output is the input's buffer */
    bool keep_output; /* training: the output has a buffer of its own, which backward reads
                       * (false for in-place layers and for every layer in inference) */
    bool output_in_grad_buffer; /* training, a conv or groupnorm whose output only feeds relu
                                 * then max-pool: backward does not need it (both read their
                                 * input), so it is not kept; it lives in the larger gradient
                                 * buffer, idle until backward */
    bool relu_folded_into_pool; /* a relu between such a layer and its max-pool: its backward
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
    size_t cap;             /* images */
    sm__layer_plan *plan;   /* per layer */
    float **act;            /* act[i] = input of layer i (act[0] is the batch input), act[n] out;
                          * act[i + 1] is act[i] for an in-place layer, a gradient buffer for
                          * an output training does not keep, a ping buffer in inference */
    int32_t **argmax;       /* per maxpool layer (inference: all shared_argmax), else NULL */
    float **stats;          /* per groupnorm layer: mean and rstd per (image, group), 2 x groups
                             * floats an image (inference: all shared_stats), else NULL */
    float *grad_a, *grad_b; /* training: ping-pong gradient buffers, each sized for what lands
                             * in it (the larger one also for the outputs not kept); else NULL */
    void *conv_ws;          /* the largest conv workspace over the layers at `cap` images */
    size_t conv_ws_bytes;
    bool training;          /* training keeps the outputs backward needs; inference reuses two */
    float *ping[2];         /* inference: the two alternating output buffers */
    int32_t *shared_argmax; /* inference: one argmax buffer for every pool layer */
    float *shared_stats;    /* inference: one statistics buffer for every groupnorm layer */
} sm__workspace;

/* Plans the layers and allocates every buffer for `cap` images; nothing is allocated later. */
sm_status sm__workspace_create(const sm_subnet *s, size_t cap, bool for_training,
                               sm__workspace *ws);
void sm__workspace_destroy(const sm_subnet *s, sm__workspace *ws);
/* An upper bound of a training workspace's bytes per image: input, every layer's output, the
 * pools' argmax, the groupnorms' statistics and the two gradient buffers (not the backend's
 * convolution workspace). */
size_t sm__workspace_image_bytes(const sm_subnet *s);

/* Forward n <= ws->cap images already in ws->act[0]; the raw output (pre-sigmoid) ends in
 * ws->act[n_layers]. */
sm_status sm__subnet_forward(const sm_subnet *s, sm__workspace *ws, size_t n);
/* Told by a backward pass as it goes (the data-parallel exchange sends what is final while
 * the rest is computed): after each layer with parameters, the subnet's gradients [from,
 * n_params) take nothing more from this pass (`from` is that layer's first parameter, and only
 * decreases). A status other than SM_OK ends the pass with it. */
typedef struct sm__grads_hook {
    sm_status (*done)(void *user, size_t from);
    void *user;
} sm__grads_hook;

/* Backward (training workspace) from d(output), which the caller leaves in ws->grad_a
 * (n x output size), after sm__subnet_forward on the same n images: accumulates parameter
 * gradients into s->grads; clobbers grad_a and grad_b (and so the outputs not kept). `hook`
 * (NULL: none) hears of each layer's finished gradients. */
sm_status sm__subnet_backward(sm_subnet *s, sm__workspace *ws, size_t n,
                              const sm__grads_hook *hook);

/* Images per sm_embed call when the core embeds many (one-shot evaluation): the backend's
 * preference. */
size_t sm__subnet_embed_chunk(const sm_subnet *s);

/* The checks of sm_head_calibrate on a scale and shift, for the checkpoint reader too: scale
 * finite and > 0, shift finite. 1 when they hold. */
bool sm__calibration_valid(double scale, double shift);

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
/* Fills n parameters at `dst` with `value` (draws nothing). */
sm_status sm__init_fill(sm_backend *be, float *dst, size_t n, float value);
/* The reference initialisation of every parameter of `s` from `rng` (sm_subnet_create's):
 * N(0, 0.01^2) in state_dict order; groupnorm weights 1 and biases 0, drawing nothing. */
sm_status sm__init_reference(sm_subnet *s, sm__rng *rng);

/* Debug/test access (tests link the internal static library). */
sm_status sm__subnet_read_params(const sm_subnet *s, float *host);
sm_status sm__subnet_write_params(sm_subnet *s, const float *host);
sm_status sm__head_read_params(const sm_head *h, float *host);
sm_status sm__head_write_params(sm_head *h, const float *host);
sm_status sm__subnet_read_grads(const sm_subnet *s, float *host);
sm_status sm__head_read_grads(const sm_head *h, float *host);

#endif
