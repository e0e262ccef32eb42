/* SPDX-License-Identifier: MIT */
/* Evaluation as siamese-train and siamese-eval report it: docs/reference.md's three numbers, each on its
 * own line with its kind, split, trials and chance, never mixed into one "accuracy":
 *   (i)   random-pair verification on the evaluation set (chance 50 %),
 *   (ii)  20-way within-alphabet one-shot on the official runs (chance 5 %),
 *   (iii) N-way k-shot episodes, within or between alphabets (chance 1/N). */
#ifndef SIAMESE_EXAMPLES_EVAL_REPORT_H
#define SIAMESE_EXAMPLES_EVAL_REPORT_H

#include <stddef.h>
#include <stdint.h>

#include <siamese/siamese.h>

typedef struct eval_plan {
    const char *split;  /* what the evaluation set is, for the report ("images_evaluation.zip") */
    int verify_batches; /* (i): batches x pairs; 0 = skip */
    int verify_pairs;
    const char *runs;   /* (ii): folder or zip of official runs; NULL = skip */
    long long episodes; /* (iii): episodes; 0 = skip */
    int way, shot;
    int within_alphabet;
    uint64_t seed;
    int resize_images; /* (ii): resize the runs' images to the model's input at open */
    /* (i) is also judged at this threshold when threshold_from is set: what it came from,
     * for the report ("--threshold", "the validation alphabets' equal error rate") */
    double threshold;
    const char *threshold_from;
} eval_plan;

/* The options that fill an eval_plan, for --help texts. */
#define EVAL_OPTIONS_HELP                                                                          \
    "  --eval-batches N     verification: batches of random pairs (default 5; 0 = none)\n"         \
    "  --eval-pairs N       verification: pairs per batch (default 150)\n"                         \
    "  --oneshot-runs PATH  20-way one-shot on the official runs (folder or .zip of runNN/)\n"     \
    "  --episodes N         N-way k-shot episodes from the evaluation set (default 0 = none)\n"    \
    "  --way N              classes per episode (default 20)\n"                                    \
    "  --shot K             support images per class (default 1)\n"                                \
    "  --within-alphabet    episodes draw their classes from one alphabet (the default)\n"         \
    "  --between-alphabets  episodes draw their classes from all alphabets\n"                      \
    "  --threshold T        verification: also judge the pairs at score >= T, 0..1 (0.5\n"         \
    "                       is always reported)\n"

/* Defaults of the plan (docs/reference.md's 5 x 150 pairs; 20-way 1-shot within alphabets). */
eval_plan eval_plan_default(void);
/* Parses one of the options above (`opt` without "--"): 1 taken, 0 not one of them, -1 bad
 * value (message printed). */
int eval_plan_option(eval_plan *plan, const char *opt, const char *value);

/* Runs the plan and prints the report on stdout. `ds` may be NULL (no (i), (iii)). Under (i)
 * it also prints the equal error rate of the same pairs and the threshold for a 1 %
 * false-accept rate; `roc` (may be NULL) then receives their ROC curve (destroy it with
 * sm_roc_destroy), else stays as it was. Returns 0, or 1 after printing why. */
int eval_report(const sm_subnet *subnet, const sm_head *head, const sm_dataset *ds,
                const eval_plan *plan, sm_roc **roc);

#endif
