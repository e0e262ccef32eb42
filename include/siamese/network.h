/* SPDX-License-Identifier: MIT */
/* libsiamese: the Siamese network: the twin subnetwork and the FC head, embeddings and
 * similarity scores, saving and loading a model. Part of the API <siamese/siamese.h>
 * includes. */
#ifndef SIAMESE_NETWORK_H
#define SIAMESE_NETWORK_H

#include "siamese/arch.h"
#include "siamese/backends.h"
#include "siamese/common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------------------------------------
 * Models: the twin subnetwork and the FC head
 * ------------------------------------------------------------------------------------------- */

typedef struct sm_subnet sm_subnet;
typedef struct sm_head sm_head;

/** Creates the twin subnetwork for `arch` (copied) on `backend` (borrowed: it must outlive the
 *  subnet), every weight and bias drawn from N(0, 0.01^2) with the library's RNG seeded by
 *  `seed` (the same on every backend). The arch must end in a flat layer (fc).
 *  Statuses: SM_ERR_INVALID_ARG (NULL), SM_ERR_SHAPE (no parameters, output not flat),
 *  SM_ERR_NOMEM. */
SM_API sm_status sm_subnet_create(sm_backend *backend, const sm_arch *arch, uint64_t seed,
                                  sm_subnet **out);
/** Initialisation schemes of sm_subnet_init (since 0.3). */
typedef enum sm_init {
    /** Every weight and bias from N(0, 0.01^2): the reference's (Koch et al.), what
     *  sm_subnet_create does. */
    SM_INIT_REFERENCE = 0,
    /** He et al. (2015), for ReLU networks: each layer's weights from N(0, 2 / fan_in), fan_in
     *  = in_channels * k * k for a conv and the input size for an fc; biases 0. Deeper or
     *  wider twins than the reference's train from it where N(0, 0.01^2) leaves the loss
     *  flat at log 2. */
    SM_INIT_HE = 1
} sm_init;

/** Draws all of the subnet's parameters again by `kind`, from the library's RNG seeded by
 *  `seed` in state_dict order (the same weights on every backend). Call it before training:
 *  an Adam state already made for the subnet keeps its moments. Not thread-safe with other
 *  calls on the subnet. Statuses: SM_ERR_INVALID_ARG (NULL, unknown kind), SM_ERR_NOMEM,
 *  SM_ERR_DEVICE; on failure the parameters may be partly redrawn. Since 0.3. */
SM_API sm_status sm_subnet_init(sm_subnet *subnet, sm_init kind, uint64_t seed);
/** Frees a subnet and its backend buffers. Destroy trainers and Adam states using it first.
 *  NULL: no-op. */
SM_API void sm_subnet_destroy(sm_subnet *subnet);
/** A copy of the subnet's architecture (destroy it with sm_arch_destroy). */
SM_API sm_status sm_subnet_get_arch(const sm_subnet *subnet, sm_arch **out);
SM_API size_t sm_subnet_num_params(const sm_subnet *subnet);
/** Length of the feature vector (the last fc's size; 4096 for the reference). */
SM_API size_t sm_subnet_feature_dim(const sm_subnet *subnet);

/** Creates the head: score = sigmoid(w . |F1 - F2| + b), w and b from N(0, 0.01^2) seeded by
 *  `seed`. `backend` is borrowed. SM_ERR_INVALID_ARG (NULL, dim outside 1..2^24), SM_ERR_NOMEM. */
SM_API sm_status sm_head_create(sm_backend *backend, size_t feature_dim, uint64_t seed,
                                sm_head **out);
/** Frees a head and its backend buffers. Destroy trainers and Adam states using it first.
 *  NULL: no-op. */
SM_API void sm_head_destroy(sm_head *head);
SM_API size_t sm_head_feature_dim(const sm_head *head);

/** Embeddings: F = sigmoid(subnet(x)) for `n` images, feature_dim floats each into `features`.
 *  Thread-safe on a const subnet (each call has its own scratch memory), but not while the
 *  subnet trains or loads. Statuses: SM_ERR_INVALID_ARG (NULL pointers, or an n whose buffers
 *  could not exist: n * C*H*W floats overflows size_t), SM_ERR_NOMEM, SM_ERR_DEVICE. */
SM_API sm_status sm_embed(const sm_subnet *subnet, size_t n, const float *images, float *features);
/** The similarity score in [0, 1] of two images (1 = same class): sigmoid(w . |F1 - F2| + b),
 *  without the training loss's clip. Each image is C*H*W floats of the subnet's input shape.
 *  On a calibrated model (sm_head_calibration says so: siamese-train --val-alphabets, or
 *  sm_head_calibrate) a score >= 0.5 reads "same": 0.5 is where labelled pairs of the two kinds
 *  were balanced. On an uncalibrated model 0.5 is only where the training loss put it, not a
 *  calibrated point: a model trained on P x K batches gives different-class pairs scores far
 *  below 0.5 and its best cut can lie near 0.001 (docs/evaluation.md, "Calibration").
 *  Thread-safe on const handles (not while they train or load). Statuses: SM_ERR_INVALID_ARG
 *  (NULL, subnet and head on different backends), SM_ERR_SHAPE (a head of another width),
 *  SM_ERR_NOMEM, SM_ERR_DEVICE. */
SM_API sm_status sm_predict_pair(const sm_subnet *subnet, const sm_head *head, const float *a,
                                 const float *b, float *score);
/** Scores of `n` pairs (a[i], b[i]) into scores[i]. Works in chunks (16 pairs on the CPU
 *  backends, 32 on cuda), so memory does not grow with n. Statuses as sm_predict_pair; an n
 *  whose buffers could not exist (n * C*H*W floats overflows size_t) is SM_ERR_INVALID_ARG. */
SM_API sm_status sm_predict_pairs(const sm_subnet *subnet, const sm_head *head, size_t n,
                                  const float *a, const float *b, float *scores);
/** The head's logits z = w . |F1 - F2| + b of `n` pairs (a[i], b[i]) into logits[i], before the
 *  sigmoid: score = sigmoid(z). What sm_calibrate_fit takes: a score rounds to exactly 1 in float
 *  once z passes about 17 (to 0 below about -104), where a logit keeps its value. Statuses and
 *  thread rules as sm_predict_pairs. Since 0.4. */
SM_API sm_status sm_predict_pairs_logits(const sm_subnet *subnet, const sm_head *head, size_t n,
                                         const float *a, const float *b, float *logits);

/** Folds a Platt scaling into the head (calibration, since 0.4): its weights become scale * w
 *  and its bias scale * b + shift, so its logit becomes scale * z + shift and its score
 *  sigmoid(scale * z + shift). Take scale and shift from sm_calibrate_fit on labelled pairs of
 *  classes not used in training: then a score of 0.5 is the balanced decision point and
 *  sm_predict_pair's "score >= 0.5 reads same" holds. The folded weights are the model from
 *  then on; the head also records the calibration (sm_head_calibration), and sm_model_save /
 *  sm_trainer_save write it in the file's metadata (docs/checkpoint-format.md). A head
 *  calibrated again composes the two: it records the whole transform from the weights before
 *  the first fold. `n_pairs` is recorded only (how many pairs the fit saw; 0 if unsaid). A
 *  training step (sm_train_step and friends) changes the weights and clears the record: the
 *  model is then uncalibrated, and the fit must be done again. The calibration belongs to the
 *  head with the subnet it was fitted with; the head's weights change, so a gallery enrolled
 *  before (its model fingerprint) does not load with the calibrated model: enrol after
 *  calibrating. Not thread-safe with other calls on the head. Statuses: SM_ERR_INVALID_ARG
 *  (NULL, scale not finite or <= 0, shift not finite, folded weights that overflow float;
 *  the head is unchanged), SM_ERR_NOMEM, SM_ERR_DEVICE. */
SM_API sm_status sm_head_calibrate(sm_head *head, double scale, double shift, size_t n_pairs);
/** Whether the head holds a calibration (sm_head_calibrate, or read from a file with one) and
 *  which: *calibrated 1 or 0, *scale and *shift the folded transform (1 and 0 when not
 *  calibrated), *n_pairs the pairs its fit saw (0 when not calibrated or unsaid). Any output
 *  pointer may be NULL. SM_ERR_INVALID_ARG for a NULL head. Since 0.4. */
SM_API sm_status sm_head_calibration(const sm_head *head, int *calibrated, double *scale,
                                     double *shift, size_t *n_pairs);

/** Saves subnet + head (architecture included) as a safetensors file, atomically: a failure
 *  (SM_ERR_IO naming the path, SM_ERR_NOMEM) leaves any existing file untouched; SM_OK means
 *  the new file is in place (as for sm_trainer_save). A calibrated head's calibration goes in
 *  the metadata (since 0.4; docs/checkpoint-format.md). SM_ERR_SHAPE
 *  when the head does not fit the subnet. Only reads the model: other threads may predict
 *  with it meanwhile (not train it). */
SM_API sm_status sm_model_save(const sm_subnet *subnet, const sm_head *head, const char *path);
/** Creates a subnet and head on `backend` from a file written by sm_model_save or
 *  sm_trainer_save (format: docs/checkpoint-format.md); the head is calibrated when the file
 *  says so (since 0.4; sm_head_calibration), else not. Statuses: SM_ERR_IO (missing or
 *  unreadable), SM_ERR_FORMAT (damaged, truncated, checksum mismatch, non-finite values, bad
 *  calibration metadata),
 *  SM_ERR_VERSION (a newer format), SM_ERR_SHAPE (a tensor that does not fit the architecture),
 *  SM_ERR_LIMIT (a header or file beyond the size limits), SM_ERR_NOMEM, SM_ERR_INVALID_ARG.
 *  On failure *subnet and *head are not written. */
SM_API sm_status sm_model_load(sm_backend *backend, const char *path, sm_subnet **subnet,
                               sm_head **head);

#ifdef __cplusplus
}
#endif

#endif
