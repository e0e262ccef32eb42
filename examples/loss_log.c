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
static const char header_oneshot[] = "iteration,loss,elapsed_s,val_accuracy,val_oneshot\n";

/* The fifth field of a resumed row ("it,loss,el,val,oneshot"), or -1. */
static double fifth_field(const char *line)
{
    for (int commas = 0; *line; line++)
        if (*line == ',' && ++commas == 4) {
            char *end;
            double v = strtod(line + 1, &end);
            return end != line + 1 ? v : -1.0;
        }
    return -1.0;
}

int loss_log_open(loss_log *log, const char *path, int64_t resume_at)
{
    int oneshot_column = log->oneshot_column;
    memset(log, 0, sizeof *log);
    log->oneshot_column = oneshot_column;
    log->next_oneshot = -1.0;
    double *oneshot = NULL; /* resumed rows' val_oneshot, rewritten below */
    size_t n_oneshot = 0;
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
                double *grown = realloc(oneshot, (n_oneshot + 1) * sizeof *grown);
                if (grown) (oneshot = grown)[n_oneshot++] = fifth_field(line);
                if (!grown || remember(log, (double)it, loss, el, got == 4 ? val : -1.0)) {
                    free(oneshot);
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
        free(oneshot);
        loss_log_close(log);
        errno = e;
        return -1;
    }
    fputs(log->oneshot_column ? header_oneshot : header, log->csv);
    for (size_t i = 0, v = 0; i < log->n; i++) {
        fprintf(log->csv, "%.0f,%.6f,%.3f,", log->iteration[i], log->loss[i], log->elapsed[i]);
        if (v < log->n_val && log->val_iteration[v] == log->iteration[i])
            fprintf(log->csv, "%.4f", log->val_accuracy[v++]);
        if (log->oneshot_column) {
            fputc(',', log->csv);
            if (i < n_oneshot && oneshot[i] >= 0) fprintf(log->csv, "%.4f", oneshot[i]);
        }
        fputc('\n', log->csv);
    }
    free(oneshot);
    return fflush(log->csv) ? -1 : 0;
}

double loss_log_last_elapsed(const loss_log *log)
{
    return log->n ? log->elapsed[log->n - 1] : 0.0;
}

int loss_log_add(loss_log *log, int64_t iteration, double loss, double elapsed, double val_accuracy)
{
    if (remember(log, (double)iteration, loss, elapsed, val_accuracy)) return -1;
    fprintf(log->csv, "%lld,%.6f,%.3f,", (long long)iteration, loss, elapsed);
    if (val_accuracy >= 0) fprintf(log->csv, "%.4f", val_accuracy);
    if (log->oneshot_column) {
        fputc(',', log->csv);
        if (log->next_oneshot >= 0) fprintf(log->csv, "%.4f", log->next_oneshot);
    }
    log->next_oneshot = -1.0;
    fputc('\n', log->csv);
    /* One line per step, so that `tail -f` and plotting tools see the curve while it grows. */
    return fflush(log->csv) ? -1 : 0;
}

fig_loss_data loss_log_data(const loss_log *log)
{
    fig_loss_data d = {log->iteration,     log->loss,         log->elapsed, log->n,
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
