/* SPDX-License-Identifier: MIT */
/* The training log of siamese-train: OUT/loss.csv (iteration,loss,elapsed_s,val_accuracy; the
 * last column only on rows where validation ran; with --val-alphabets a fifth column,
 * val_oneshot, on rows where the one-shot validation ran: selection.h), flushed every step so that it can be followed
 * while training runs, and the same rows kept in memory for the loss figure. */
#ifndef SIAMESE_EXAMPLES_LOSS_LOG_H
#define SIAMESE_EXAMPLES_LOSS_LOG_H

#include <stdint.h>
#include <stdio.h>

#include "figures.h"

typedef struct loss_log {
    FILE *csv;
    double *iteration, *loss, *elapsed;
    size_t n, cap;
    double *val_iteration, *val_accuracy;
    size_t n_val, cap_val;
    int oneshot_column;  /* set before loss_log_open: the val_oneshot column (kept by open) */
    double next_oneshot; /* the next row's val_oneshot; < 0: none (reset by each add) */
} loss_log;

/* Opens PATH. With resume_at > 0 (a resumed run) keeps the rows up to that iteration (later
 * ones belong to steps the checkpoint does not hold) and loads them; else starts a new file.
 * Returns 0, or -1 with errno. */
int loss_log_open(loss_log *log, const char *path, int64_t resume_at);
/* Elapsed seconds of the last row (0 when empty): a resumed run continues from there. */
double loss_log_last_elapsed(const loss_log *log);
/* Appends a row; val_accuracy < 0: none. Returns 0, or -1 (out of memory, write error). */
int loss_log_add(loss_log *log, int64_t iteration, double loss, double elapsed,
                 double val_accuracy);
/* The rows as the loss figure takes them (valid until the next add). */
fig_loss_data loss_log_data(const loss_log *log);
void loss_log_close(loss_log *log);

#endif
