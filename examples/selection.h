/* SPDX-License-Identifier: MIT */
/* Honest model selection for siamese-train (off unless --val-alphabets is given):
 *   - a validation split of *background* alphabets, held out of training: --val-alphabets N
 *     (N alphabets picked by sm_dataset_split_alphabets from --seed) or A,B,... (named);
 *   - every --validate-every steps, 20-way 1-shot within-alphabet episodes on them
 *     (sm_oneshot_episodes, the same --val-episodes episodes every time), printed on a
 *     validation line and in loss.csv's val_oneshot column;
 *   - the best checkpoint kept as OUT/best.safetensors (sm_trainer_save: atomic), early stop
 *     after --patience checks without improvement, and the final evaluation on the best
 *     checkpoint;
 *   - the evaluation set is not opened before that final evaluation;
 *   - the selected model calibrated (siamese_train.c: Platt scaling on the validation
 *     alphabets' pairs, folded into the head, saved as OUT/best.safetensors) unless
 *     --no-calibrate.
 * And --resize-images: open every image set at the arch's input size, resized once at open
 * (sm_dataset_open_with, sm_oneshot_runs_open_with). */
#ifndef SIAMESE_EXAMPLES_SELECTION_H
#define SIAMESE_EXAMPLES_SELECTION_H

#include <stdint.h>

#include <siamese/siamese.h>

#include "loss_log.h"

typedef struct selection {
    /* options */
    const char *val_alphabets; /* "N" or "A,B,..."; NULL: no selection (the reference run) */
    long long val_episodes;    /* episodes per check */
    long long patience;        /* checks without improvement before stopping; 0: never */
    int resize;                /* --resize-images */
    int no_calibrate;          /* --no-calibrate */
    int episodes_given, patience_given;
    /* state */
    sm_dataset *val;       /* the held-out background alphabets */
    long long every;       /* steps between checks (0: none) */
    uint64_t seed;         /* the episodes' seed: the same episodes at every check */
    const char *best_path; /* OUT/best.safetensors */
    double best;           /* best accuracy so far, -1 before the first check */
    long long best_step, since_best, checks;
    int stop;              /* patience ran out */
    const char *eval_path; /* deferred evaluation set */
    int eval_h, eval_w;
    char path_buf[4200];
} selection;

/* The options, for --help. */
#define SELECTION_OPTIONS_HELP                                                                     \
    "Honest model selection (off by default):\n"                                                   \
    "  --val-alphabets N|A,B,...  hold N background alphabets (picked by --seed) or the\n"         \
    "                       named ones out of training; every --validate-every steps, run\n"       \
    "                       20-way 1-shot within-alphabet episodes on them, keep the best\n"       \
    "                       checkpoint as DIR/best.safetensors and evaluate it at the end;\n"      \
    "                       the evaluation set is not read before that final evaluation\n"         \
    "  --val-episodes N     episodes per check, the same ones every time (default 100)\n"          \
    "  --patience N         stop after N checks without improvement (default 0 = never)\n"         \
    "  --no-calibrate       do not calibrate the selected model (by default Platt scaling\n"      \
    "                       is fitted on 2000 pairs of the validation alphabets and folded\n"     \
    "                       into the head, so that its score 0.5 is the balanced decision\n"     \
    "                       point; the calibrated model is saved as DIR/best.safetensors)\n"      \
    "Images:\n"                                                                                    \
    "  --resize-images      resize images of any size to the arch's input size, once, when\n"      \
    "                       the sets are opened (default: refuse other sizes)\n"

/* The defaults (selection off). */
selection selection_default(void);
/* Parses one of the options above (`opt` without "--"): 1 taken, 0 not one of them, -1 bad
 * value (message printed). */
int selection_option(selection *s, const char *opt, const char *value);
/* Checks the options together once all are parsed; 0 or 2 after a message. */
int selection_check_options(const selection *s, int have_data);

/* Opens a dataset as sm_dataset_open (with resizing under --resize-images). */
sm_status selection_open(const selection *s, const char *path, int h, int w,
                         const char *const *alphabets, size_t n_alphabets, sm_dataset **out);
/* Opens the training set at `path` (NULL: *train already holds a generated set) and, with
 * --val-alphabets, holds the validation alphabets out of it into s->val. Prints what it
 * did. Returns 0, or an exit code after a message. */
int selection_open_train(selection *s, const char *path, int h, int w, const char *const *alphabets,
                         size_t n_alphabets, uint64_t seed, sm_dataset **train);
/* With --val-alphabets, remembers the evaluation set instead of opening it (1: deferred). */
int selection_defer_eval(selection *s, const char *path, int h, int w);
/* Sets the checks up once the model exists: `every` steps, OUT folder, the episodes' seed,
 * and a first check that the validation set can give 20-way episodes. Returns 0 or 1. */
int selection_start(selection *s, const sm_subnet *subnet, const sm_head *head, long long every,
                    const char *out_dir, uint64_t seed, loss_log *log);
/* After step `it`: at a check, measures, prints the validation line, sets the log's
 * val_oneshot for this row, saves the best and decides early stopping. 0 or 1. */
int selection_after_step(selection *s, sm_trainer *trainer, const sm_subnet *subnet,
                         const sm_head *head, long long it, loss_log *log);
/* After training: loads the best checkpoint into the trainer (its subnet and head), says so,
 * and opens the deferred evaluation set into *eval. 0 or 1. */
int selection_finish(selection *s, sm_trainer *trainer, sm_dataset **eval);
void selection_free(selection *s);

#endif
