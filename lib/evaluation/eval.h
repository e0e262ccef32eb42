/* SPDX-License-Identifier: MIT */
/* Private: what the evaluations share: scoring on the host from embeddings, tie credit and the
 * result bookkeeping. */
#ifndef SM_LIB_EVAL_H
#define SM_LIB_EVAL_H

#include <stddef.h>
#include <stdint.h>

#include "siamese/siamese.h"

/* Running totals of an evaluation. */
typedef struct sm__tally {
    uint64_t trials, tied;
    double correct, chance_sum;
    double score_n, score_mean, score_m2; /* Welford */
} sm__tally;

void sm__tally_score(sm__tally *t, double score);
/* One N-way trial over class scores s[0..n-1] whose right answer is `right`: the highest
 * score wins; a shared highest gives 1/(number tied) when the right class is among them. */
void sm__tally_trial(sm__tally *t, const double *s, size_t n, size_t right);
/* Fills `out` (only as far as its struct_size reaches) from the tally. */
void sm__tally_result(const sm__tally *t, sm_eval_kind kind, int n_way, int k_shot,
                      uint64_t episodes, sm_eval_result *out);
/* Checks a caller's result struct. */
sm_status sm__check_result(const char *fn, const sm_eval_result *r);
/* The subnet and head fit together and take `height` x `width` grey images. */
sm_status sm__check_model(const char *fn, const sm_subnet *s, const sm_head *h, int height,
                          int width);

/* The head on the host, from two feature vectors: sigmoid(w . |f1 - f2| + b), in double.
 * `head_params`: dim weights then the bias (sm__head_read_params). */
double sm__host_score(const float *head_params, size_t dim, const float *f1, const float *f2);

/* The official one-shot runs as read (oneshot_runs.c), for their evaluation (oneshot.c). */
typedef struct sm__run {
    char *name; /* "run01" */
    size_t n_cand, n_query;
    uint8_t *cand, *query; /* pixels, 8-bit */
    size_t *answer;        /* per query: its candidate */
} sm__run;

struct sm_oneshot_runs {
    int height, width;
    size_t px;
    sm__run *runs;
    size_t n_runs, n_trials;
};

/* The class_labels.txt parser alone, on `text`, for a run01 of three candidates
 * (training/class01..03.png) and three queries (test/item01..03.png). For the fuzzer. */
sm_status sm__oneshot_labels_parse(const uint8_t *text, size_t size, size_t *n_queries);
/* sm_oneshot_runs_open on a zip held in memory (`name` stands for its path in messages). For
 * the fuzzer: the same listing, parser, limits and decoding as a zip file. */
sm_status sm__oneshot_runs_open_zip_buffer(const void *data, size_t size, const char *name,
                                           int height, int width, sm_oneshot_runs **out);

#endif
