/* SPDX-License-Identifier: MIT */
/* The training log (loss_log.h). */
#include "loss_log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static int grow(double **a, double **b, double **c, size_t n, size_t *cap)
{
    if (n < *cap) return 0;
    size_t nc = *cap ? *cap * 2 : 1024;
    double **arrs[3] = {a, b, c};
    for (int i = 0; i < 3; i++) {
        if (!arrs[i]) continue;
        double *p = realloc(*arrs[i], nc * sizeof *p);
        if (!p) return -1;
        *arrs[i] = p;
    }
    *cap = nc;
    return 0;
}

static int remember(loss_log *log, double it, double loss, double el, double val)
{
    if (grow(&log->iteration, &log->loss, &log->elapsed, log->n, &log->cap)) return -1;
    log->iteration[log->n] = it, log->loss[log->n] = loss, log->elapsed[log->n] = el;
    log->n++;
    if (val >= 0) {
        if (grow(&log->val_iteration, &log->val_accuracy, NULL, log->n_val, &log->cap_val))
            return -1;
        log->val_iteration[log->n_val] = it, log->val_accuracy[log->n_val] = val;
        log->n_val++;
    }
    return 0;
}

static const char header[] = "iteration,loss,elapsed_s,val_accuracy\n";

int loss_log_open(loss_log *log, const char *path, int64_t resume_at)
{
    memset(log, 0, sizeof *log);
    if (resume_at > 0) {
        /* Keep the rows the checkpoint covers: read them all, then write the file anew. */
        FILE *in = fopen(path, "r");
        if (in) {
            char line[256];
            while (fgets(line, sizeof line, in)) {
                long long it;
                double loss, el, val = -1.0;
                int got = sscanf(line, "%lld,%lf,%lf,%lf", &it, &loss, &el, &val);
                if (got < 3) continue; /* the header */
                if (it > resume_at) break;
                if (remember(log, (double)it, loss, el, got == 4 ? val : -1.0)) {
                    fclose(in);
                    loss_log_close(log);
                    errno = ENOMEM;
                    return -1;
                }
            }
            fclose(in);
        }
    }
    log->csv = fopen(path, "w");
    if (!log->csv) {
        int e = errno;
        loss_log_close(log);
        errno = e;
        return -1;
    }
    fputs(header, log->csv);
    for (size_t i = 0, v = 0; i < log->n; i++) {
        fprintf(log->csv, "%.0f,%.6f,%.3f,", log->iteration[i], log->loss[i], log->elapsed[i]);
        if (v < log->n_val && log->val_iteration[v] == log->iteration[i])
            fprintf(log->csv, "%.4f", log->val_accuracy[v++]);
        fputc('\n', log->csv);
    }
    return fflush(log->csv) ? -1 : 0;
}

double loss_log_last_elapsed(const loss_log *log)
{
    return log->n ? log->elapsed[log->n - 1] : 0.0;
}

int loss_log_add(loss_log *log, int64_t iteration, double loss, double elapsed,
                 double val_accuracy)
{
    if (remember(log, (double)iteration, loss, elapsed, val_accuracy)) return -1;
    fprintf(log->csv, "%lld,%.6f,%.3f,", (long long)iteration, loss, elapsed);
    if (val_accuracy >= 0) fprintf(log->csv, "%.4f", val_accuracy);
    fputc('\n', log->csv);
    /* One line per step, so that `tail -f` and plotting tools see the curve while it grows. */
    return fflush(log->csv) ? -1 : 0;
}

fig_loss_data loss_log_data(const loss_log *log)
{
    fig_loss_data d = {log->iteration, log->loss, log->elapsed, log->n,
                       log->val_iteration, log->val_accuracy, log->n_val};
    return d;
}

void loss_log_close(loss_log *log)
{
    if (log->csv) fclose(log->csv);
    free(log->iteration), free(log->loss), free(log->elapsed);
    free(log->val_iteration), free(log->val_accuracy);
    memset(log, 0, sizeof *log);
}
