/* SPDX-License-Identifier: MIT */
/* libsiamese: evaluation: verification accuracy, N-way k-shot episodes and the official
 * one-shot runs, each reported as its own kind of number. Part of the API <siamese/siamese.h>
 * includes. */
#ifndef SIAMESE_EVALUATION_H
#define SIAMESE_EVALUATION_H

#include "siamese/common.h"
#include "siamese/data.h"
#include "siamese/network.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------------------------------------
 * Evaluation: three kinds of number (random-pair verification, the official one-shot runs,
 * N-way k-shot episodes), never mixed (since 0.2)
 *
 * Every evaluation fills an sm_eval_result that says which kind of number it holds. In N-way
 * trials a query is given to the candidate class with the highest score; when several share
 * the highest score the trial earns 1/(number tied) if the correct class is among them, else
 * 0. So a model whose scores are all equal scores exactly chance (1/N), whatever the order of
 * the candidates. Verification: a pair is right when round(score) equals its label (a score
 * of exactly 0.5 rounds up to "same"). docs/evaluation.md gives the protocols.
 * ------------------------------------------------------------------------------------------- */

typedef enum sm_eval_kind {
    SM_EVAL_VERIFICATION = 1,    /* random pairs, same/different; chance 50 % */
    SM_EVAL_ONESHOT_RUNS = 2,    /* the official 20-way within-alphabet runs; chance 5 % */
    SM_EVAL_EPISODES_WITHIN = 3, /* N-way k-shot episodes, classes of one alphabet */
    SM_EVAL_EPISODES_BETWEEN = 4 /* N-way k-shot episodes, classes from any alphabets */
} sm_eval_kind;

/** What an evaluation reports. The caller sets `struct_size` to sizeof(sm_eval_result) before
 *  the call (SM_EVAL_RESULT_INIT does it); the library writes only the fields that fit in it,
 *  so later versions can append fields without breaking older callers. Fields are only ever
 *  appended. */
typedef struct sm_eval_result {
    size_t struct_size; /* set by the caller */
    sm_eval_kind kind;  /* which of the three numbers this is */
    int n_way;          /* candidate classes per trial (2 for verification: same/different) */
    int k_shot;         /* support images per candidate class (1 for runs, 0 verification) */
    uint64_t trials;    /* queries classified (pairs judged for verification) */
    uint64_t episodes;  /* episodes or runs the trials came from (batches: 1) */
    double correct;     /* credit earned: ties give fractions (see above) */
    double accuracy;    /* correct / trials, in [0, 1] */
    double chance;      /* what a constant model scores: the mean of 1/candidates per trial */
    uint64_t tied;      /* trials whose highest score was shared */
    double score_mean;  /* mean of every score computed */
    double score_std;   /* their standard deviation (0: the model's output is constant) */
} sm_eval_result;

#define SM_EVAL_RESULT_INIT                                                                        \
    {                                                                                              \
        sizeof(sm_eval_result), (sm_eval_kind)0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0                      \
    }

/** A short fixed description ("random-pair verification", "20-way one-shot runs",
 *  "N-way episodes within alphabets", ...); "unknown" otherwise. Static storage. Since 0.2. */
SM_API const char *sm_eval_kind_name(sm_eval_kind kind);

/** Verification accuracy, the reference's protocol (docs/reference.md in the source tree):
 *  `n_pairs` random pairs drawn by a pair sampler over `ds` seeded by `seed` (the pairs of
 *  sm_sampler_create(ds, seed) + sm_sampler_next, so 5 batches of 150 are the first 750
 *  pairs), accuracy = fraction where round(score) == label. Memory is bounded whatever
 *  n_pairs. Only reads its handles (thread rules of sm_predict_pairs). Statuses:
 *  SM_ERR_INVALID_ARG (NULL, n_pairs 0 or over 2^32, result's struct_size too small),
 *  SM_ERR_SHAPE (images do not fit the subnet), SM_ERR_DATASET (the dataset cannot give
 *  pairs), SM_ERR_NOMEM, SM_ERR_DEVICE. `result` is written only on success. Since 0.2. */
SM_API sm_status sm_verification_accuracy(const sm_subnet *subnet, const sm_head *head,
                                          const sm_dataset *ds, size_t n_pairs, uint64_t seed,
                                          sm_eval_result *result);

/** sm_verification_accuracy with a calibrated cut: a pair is judged "same" when its score >=
 *  `threshold` (in [0, 1]; 0.5 gives exactly sm_verification_accuracy). Take the threshold from
 *  sm_roc_eer or sm_roc_threshold_at_far on other pairs (a validation set). Statuses as
 *  sm_verification_accuracy, and SM_ERR_INVALID_ARG for a threshold outside [0, 1]. Since 0.3. */
SM_API sm_status sm_verification_accuracy_at(const sm_subnet *subnet, const sm_head *head,
                                             const sm_dataset *ds, size_t n_pairs, uint64_t seed,
                                             double threshold, sm_eval_result *result);

/** The scores and labels (1 = same class, 0 = different) of the `n_pairs` pairs that
 *  sm_verification_accuracy judges for the same `seed`, into `scores` and `labels` (n_pairs
 *  floats each): the labelled pairs sm_roc_create takes. Statuses as sm_verification_accuracy.
 *  Since 0.3. */
SM_API sm_status sm_verification_scores(const sm_subnet *subnet, const sm_head *head,
                                        const sm_dataset *ds, size_t n_pairs, uint64_t seed,
                                        float *scores, float *labels);

/** The head's logits (sm_predict_pairs_logits) and labels (1 = same class, 0 = different) of
 *  the `n_pairs` pairs that sm_verification_scores scores for the same `seed`, into `logits`
 *  and `labels` (n_pairs floats each): the labelled pairs sm_calibrate_fit takes. Statuses as
 *  sm_verification_accuracy. Since 0.4. */
SM_API sm_status sm_verification_logits(const sm_subnet *subnet, const sm_head *head,
                                        const sm_dataset *ds, size_t n_pairs, uint64_t seed,
                                        float *logits, float *labels);

/* ---------------------------------------------------------------------------------------------
 * Calibration: a score where 0.5 reads "same" (since 0.4)
 *
 * A head trained on P x K batches (or with any loss that weighs the two kinds of pair unlike
 * the pairs it will judge) puts its scores where its loss put them: different-class pairs far
 * below 0.5, and the best cut near 0.001. Platt scaling fits sigmoid(A z + B) to labelled
 * pairs' logits z; sm_head_calibrate (siamese/network.h) folds A and B into the head, after
 * which a score >= 0.5 is the balanced decision. docs/evaluation.md, "Calibration".
 * ------------------------------------------------------------------------------------------- */

/** Fits Platt scaling to `n` labelled pairs: logits[i] the head's logit of pair i
 *  (sm_verification_logits, sm_predict_pairs_logits), labels[i] 1 (same class) or 0
 *  (different). Finds *scale = A > 0 and *shift = B minimising the binary cross-entropy of
 *  sigmoid(A z + B) against Platt's smoothed targets ((N+ + 1) / (N+ + 2) for same-class
 *  pairs, 1 / (N- + 2) for different-class ones), each class weighing half of the loss
 *  whatever its count, so sigmoid(A z + B) = 0.5 is the balanced decision point; by Newton's
 *  method in double (Lin, Lin and Weng's robust version of Platt's fit). Logits rather than
 *  scores: a score is exactly 1 in float once z passes about 17 (exactly 0 below about
 *  -104), where the logit still says how far. Fit on pairs of classes not used in training (held-out alphabets).
 *  Only reads its arguments; thread-safe. Statuses: SM_ERR_INVALID_ARG (NULL, n < 2, a logit
 *  not finite, a label not 0 or 1, no pair of one kind, all logits equal, or a fit whose scale
 *  is not above 0: logits that rank different-class pairs higher; naming the index or the
 *  counts), SM_ERR_NUMERIC (Newton's method did not converge). The outputs are written only
 *  on success. Since 0.4. */
SM_API sm_status sm_calibrate_fit(size_t n, const float *logits, const float *labels,
                                  double *scale, double *shift);

/* ---------------------------------------------------------------------------------------------
 * ROC curves and calibrated thresholds (since 0.3)
 *
 * From labelled pairs (a score in [0, 1] and whether the pair is of one class), a threshold t
 * accepts a pair as "same" when score >= t. Its false-accept rate FAR(t) is the fraction of
 * different-class pairs accepted, its false-reject rate FRR(t) the fraction of same-class pairs
 * refused. The curve has one point per distinct score (t = that score, ascending: FAR falls,
 * FRR rises), then a last point at t = +infinity (nothing accepted: FAR 0, FRR 1).
 * ------------------------------------------------------------------------------------------- */

typedef struct sm_roc sm_roc;

/** Builds the curve of `n` pairs: scores[i] in [0, 1], labels[i] 1 (same) or 0 (different), at
 *  least one pair of each kind. The arrays are copied. Statuses: SM_ERR_INVALID_ARG (NULL, a
 *  score outside [0, 1] or NaN, a label not 0 or 1, no pair of one kind; naming the index),
 *  SM_ERR_NOMEM. Thread-safe. */
SM_API sm_status sm_roc_create(size_t n, const float *scores, const float *labels, sm_roc **out);
/** Frees a curve. NULL: no-op. */
SM_API void sm_roc_destroy(sm_roc *roc);
/** Points on the curve (distinct scores + 1); 0 for NULL. */
SM_API size_t sm_roc_num_points(const sm_roc *roc);
/** Point `index`: its threshold (+infinity for the last) and rates; any pointer may be NULL.
 *  SM_ERR_INVALID_ARG out of range. */
SM_API sm_status sm_roc_point(const sm_roc *roc, size_t index, double *threshold, double *far,
                              double *frr);
/** The equal error rate: at the point where |FAR - FRR| is smallest (the lowest threshold among
 *  equals), eer = (FAR + FRR) / 2 and `threshold` that point's threshold (a score, so in
 *  [0, 1]). Either pointer may be NULL. SM_ERR_INVALID_ARG for NULL roc. */
SM_API sm_status sm_roc_eer(const sm_roc *roc, double *eer, double *threshold);
/** The lowest threshold whose FAR is at most `target_far` (in [0, 1]): the one that accepts the
 *  most same-class pairs within that false-accept budget; `far` and `frr` receive its rates
 *  (any pointer may be NULL). The threshold is +infinity only when no score meets the budget.
 *  SM_ERR_INVALID_ARG (NULL roc, target outside [0, 1] or NaN). */
SM_API sm_status sm_roc_threshold_at_far(const sm_roc *roc, double target_far, double *threshold,
                                         double *far, double *frr);

/** N-way k-shot episodes drawn from `ds`, seeded: each episode picks `n_way` different classes
 *  (within_alphabet != 0: all from one alphabet, chosen uniformly among the alphabets that have
 *  n_way usable classes; else from all usable classes), a class being usable when it has at
 *  least k_shot + 1 images; from each class it picks k_shot + 1 different images: k_shot
 *  support images and one query. Each query is scored against every support image; a class's
 *  score is the mean of its k_shot scores; the query goes to the highest (ties as above). So an
 *  episode is n_way trials. n_way 2..1000, k_shot 1..100, n_episodes 1..1e6. Only reads its
 *  handles. Statuses: SM_ERR_INVALID_ARG, SM_ERR_SHAPE, SM_ERR_DATASET (fewer than n_way usable
 *  classes, in any one alphabet when within_alphabet: the message says how many there are),
 *  SM_ERR_NOMEM, SM_ERR_DEVICE. `result` is written only on success. Since 0.2. */
SM_API sm_status sm_oneshot_episodes(const sm_subnet *subnet, const sm_head *head,
                                     const sm_dataset *ds, int n_way, int k_shot, size_t n_episodes,
                                     int within_alphabet, uint64_t seed, sm_eval_result *result);

/** The official one-shot runs (Lake et al.), decoded once. */
typedef struct sm_oneshot_runs sm_oneshot_runs;

/** Opens runs laid out as the official all_runs: `runNN/training/<name>.png` (the candidates, one
 *  per class), `runNN/test/<name>.png` (the queries) and `runNN/class_labels.txt`, whose lines read
 *  `runNN/test/itemAA.png runNN/training/classBB.png` (query, its correct candidate; one space, LF
 *  or CRLF line ends, the last line end optional). `path` is a folder or a .zip holding the runNN
 *  folders directly or inside one folder (all_runs/runNN/...), or a single run folder. Runs are
 *  sorted by name; a run's candidates by file name; its queries in the file's order. Images must be
 *  PNGs of `height` x `width` (0, 0 = 105 x 105), grey rule above. The parser is strict: a line
 *  that is not two such paths, a path into another run, a file that does not exist, a query listed
 *  twice, a run with fewer than two candidates or no query, ... are SM_ERR_FORMAT naming the file
 *  and line. Other statuses as sm_dataset_open (SM_ERR_IO, SM_ERR_SHAPE, SM_ERR_LIMIT,
 *  SM_ERR_DATASET when no run is found, SM_ERR_NOMEM). Since 0.2. */
SM_API sm_status sm_oneshot_runs_open(const char *path, int height, int width,
                                      sm_oneshot_runs **out);
/** sm_oneshot_runs_open with the options of sm_dataset_open_with (NULL: exactly
 *  sm_oneshot_runs_open): with `resize` 1 every image of any size is resized once, at open, to
 *  `height` x `width` by sm_image_resize and stored 8-bit, as sm_dataset_open_with does.
 *  `n_exclude` must be 0 (runs have no alphabets). Statuses as sm_oneshot_runs_open, and
 *  SM_ERR_INVALID_ARG for bad options. Since 0.3. */
SM_API sm_status sm_oneshot_runs_open_with(const char *path, int height, int width,
                                           const sm_dataset_options *options,
                                           sm_oneshot_runs **out);
/** Frees the runs and their images. NULL: no-op. Since 0.2. */
SM_API void sm_oneshot_runs_destroy(sm_oneshot_runs *runs);
/** Number of runs; 0 for NULL. */
SM_API size_t sm_oneshot_runs_count(const sm_oneshot_runs *runs);
/** Total queries over all runs; 0 for NULL. */
SM_API size_t sm_oneshot_runs_num_trials(const sm_oneshot_runs *runs);
/** Run `run`'s name ("run01", owned by the runs) and sizes (either pointer may be NULL).
 *  SM_ERR_INVALID_ARG for NULL runs or an index out of range. */
SM_API sm_status sm_oneshot_run_info(const sm_oneshot_runs *runs, size_t run, const char **name,
                                     size_t *n_candidates, size_t *n_queries);
/** Copies one image of run `run` into `pixels` (height*width floats): candidate `index` when
 *  `query` is 0, else query `index`. `answer` (optional, queries only, else SIZE_MAX) receives
 *  the index of the query's correct candidate. SM_ERR_INVALID_ARG out of range. */
SM_API sm_status sm_oneshot_run_image(const sm_oneshot_runs *runs, size_t run, int query,
                                      size_t index, float *pixels, size_t *answer);
/** Classifies every query of every run against its run's candidates (one-shot, ties as above).
 *  `n_way` in the result is the largest run's candidate count. Only reads its handles.
 *  Statuses: SM_ERR_INVALID_ARG, SM_ERR_SHAPE (the runs' images do not fit the subnet),
 *  SM_ERR_NOMEM, SM_ERR_DEVICE. Since 0.2. */
SM_API sm_status sm_oneshot_evaluate_runs(const sm_subnet *subnet, const sm_head *head,
                                          const sm_oneshot_runs *runs, sm_eval_result *result);

#ifdef __cplusplus
}
#endif

#endif
