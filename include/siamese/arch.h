/* SPDX-License-Identifier: MIT */
/* libsiamese: architectures: the twin subnetwork as a list of layers, its text form and the
 * presets ("koch", the reference; "laptop"). Part of the API <siamese/siamese.h> includes. */
#ifndef SIAMESE_ARCH_H
#define SIAMESE_ARCH_H

#include "siamese/common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------------------------------------
 * Architectures: the twin subnetwork as data (a list of layers)
 * ------------------------------------------------------------------------------------------- */

typedef struct sm_arch sm_arch;

typedef enum sm_layer_kind {
    SM_LAYER_CONV = 1, /* a = out channels, b = kernel size; stride 1, no padding, with bias */
    SM_LAYER_RELU = 2,
    SM_LAYER_MAXPOOL = 3,  /* a = window = stride; a trailing odd row/column is dropped */
    SM_LAYER_FLATTEN = 4,  /* C x H x W -> C*H*W (no data movement) */
    SM_LAYER_FC = 5,       /* a = out features, with bias; input must be flat */
    SM_LAYER_GROUPNORM = 6 /* a = groups: GroupNorm (torch.nn.GroupNorm(a, C), eps 1e-5) with a
                            * per-channel weight (init 1) and bias (init 0). Since 0.4 */
} sm_layer_kind;

/** An empty architecture for `channels` x `height` x `width` inputs (each 1..4096, channels
 *  1..64). */
SM_API sm_status sm_arch_create(int channels, int height, int width, sm_arch **out);
/** The reference (Koch et al. 2015; docs/reference.md in the source tree): 1x105x105,
 *  conv 64@10 / relu / pool 2, conv 128@7 / relu / pool 2, conv 128@4 / relu / pool 2,
 *  conv 256@5 / relu, flatten, fc 4096. */
SM_API sm_status sm_arch_create_koch(sm_arch **out);
/** The CPU-friendly preset "laptop": 1x105x105:conv32k10,relu,pool4,conv64k5,relu,pool2,
 *  flatten,fc128 (0.87 M parameters against koch's 27.7 M, about 1/18 of its compute per image),
 *  also reachable as sm_arch_from_string("laptop"). The reference ("koch") stays the default of the
 *  examples. Since 0.2. */
SM_API sm_status sm_arch_create_laptop(sm_arch **out);
/** Parses the textual form that sm_arch_to_string writes, e.g.
 *  "1x105x105:conv64k10,relu,pool2,conv128k7,relu,pool2,conv128k4,relu,pool2,conv256k5,relu,flatten,fc4096",
 *  or a preset name: "koch", "laptop" (since 0.2). Layers: convNkK, relu, poolN, flatten, fcN
 *  and gnG (GroupNorm with G groups, since 0.4). SM_ERR_INVALID_ARG (with the offending
 *  token) for text it cannot read; a layer that cannot follow the one before is refused as
 *  its sm_arch_add_* call refuses it (SM_ERR_SHAPE). */
SM_API sm_status sm_arch_from_string(const char *text, sm_arch **out);
/** Writes the textual form into `buf` (capacity `cap`, NUL-terminated). `*needed` (optional)
 *  receives the length without NUL; SM_ERR_LIMIT when cap is too small. */
SM_API sm_status sm_arch_to_string(const sm_arch *arch, char *buf, size_t cap, size_t *needed);
/** Appends a layer. Each checks its parameters against the current output shape and returns
 *  SM_ERR_SHAPE when the layer cannot follow (kernel larger than the input, fc on an unflattened
 *  input, ...), SM_ERR_INVALID_ARG for values out of range. The arch is unchanged on error. */
SM_API sm_status sm_arch_add_conv(sm_arch *arch, int out_channels, int kernel_size);
SM_API sm_status sm_arch_add_relu(sm_arch *arch);
SM_API sm_status sm_arch_add_maxpool(sm_arch *arch, int size);
SM_API sm_status sm_arch_add_flatten(sm_arch *arch);
SM_API sm_status sm_arch_add_fc(sm_arch *arch, int out_features);
/** Appends GroupNorm with `groups` groups (text form "gnG"): each image's C channels are split
 *  into `groups` groups of C / groups consecutive channels, each group normalised to mean 0 and
 *  variance 1 over its channels and pixels (biased variance, eps 1e-5), then scaled and shifted
 *  per channel (weight gamma, initialised to 1; bias beta, initialised to 0), exactly as
 *  torch.nn.GroupNorm(groups, C). An image is normalised by itself, so its output does not
 *  depend on the other images of a batch (unlike batch normalisation). No running statistics:
 *  training and inference compute the same function. SM_ERR_SHAPE when C % groups != 0 or the
 *  input is flat (after flatten/fc); SM_ERR_INVALID_ARG when groups < 1. Since 0.4. */
SM_API sm_status sm_arch_add_groupnorm(sm_arch *arch, int groups);
/** Number of layers, 0 for NULL. */
SM_API size_t sm_arch_num_layers(const sm_arch *arch);
/** Layer `index`: its kind and parameters (a, b as in sm_layer_kind; 0 where unused). */
SM_API sm_status sm_arch_get_layer(const sm_arch *arch, size_t index, sm_layer_kind *kind, int *a,
                                   int *b);
/** Input shape. Any output pointer may be NULL. */
SM_API sm_status sm_arch_input_shape(const sm_arch *arch, int *channels, int *height, int *width);
/** Output size per image (the feature dimension once the arch ends in fc). */
SM_API size_t sm_arch_output_size(const sm_arch *arch);
/** Total number of trainable parameters. */
SM_API size_t sm_arch_num_params(const sm_arch *arch);
/** Frees an architecture. NULL: no-op. Subnets keep their own copy. */
SM_API void sm_arch_destroy(sm_arch *arch);

#ifdef __cplusplus
}
#endif

#endif
