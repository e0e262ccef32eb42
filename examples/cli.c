/* SPDX-License-Identifier: MIT */
/* Shared helpers of the example programs (cli.h). */
#include "cli.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>

const char *cli_prog = "siamese";
int cli_progress_open = 0;

static void prefix(void)
{
    fprintf(stderr, "%s%s: ", cli_progress_open ? "\n" : "", cli_prog);
    cli_progress_open = 0;
}

int cli_fail(sm_status st, const char *fmt, ...)
{
    va_list ap;
    prefix();
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    const char *detail = sm_last_error();
    fprintf(stderr, ": %s (%s)%s%s\n", sm_status_name(st), sm_status_str(st), detail[0] ? ": " : "",
            detail);
    return 1;
}

static void show_log(void *user, sm_log_level level, const char *message)
{
    (void)user;
    fprintf(stderr, "%s%s: %s: %s\n", cli_progress_open ? "\n" : "", cli_prog,
            level >= SM_LOG_ERROR ? "error" : "warning", message);
    cli_progress_open = 0;
}

void cli_show_library_warnings(void) { sm_set_log_callback(show_log, NULL, SM_LOG_WARN); }

int cli_error(int rc, const char *fmt, ...)
{
    va_list ap;
    prefix();
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return rc;
}

int cli_parse_ll(const char *name, const char *text, long long lo, long long hi, long long *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    if (errno || end == text || *end || v < lo || v > hi) {
        cli_error(0, "--%s wants a whole number in [%lld, %lld], got '%s'", name, lo, hi, text);
        return 0;
    }
    *out = v;
    return 1;
}

int cli_parse_int(const char *name, const char *text, int lo, int hi, int *out)
{
    long long v;
    if (!cli_parse_ll(name, text, lo, hi, &v)) return 0;
    *out = (int)v;
    return 1;
}

int cli_parse_double(const char *name, const char *text, double lo, int lo_open, double hi,
                     double *out)
{
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    if (errno || end == text || *end || !isfinite(v) || v < lo || (lo_open && v == lo) || v > hi) {
        cli_error(0, "--%s wants a number in %c%g, %g], got '%s'", name, lo_open ? '(' : '[', lo,
                  hi, text);
        return 0;
    }
    *out = v;
    return 1;
}

double cli_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void cli_duration(char *buf, size_t cap, double s)
{
    if (!(s >= 0.0) || s > 1e8) {
        snprintf(buf, cap, "--");
    } else if (s < 60.0) {
        snprintf(buf, cap, "%.1fs", s);
    } else if (s < 3600.0) {
        long t = lround(s);
        snprintf(buf, cap, "%ldm%02lds", t / 60, t % 60);
    } else {
        long t = lround(s / 60.0);
        snprintf(buf, cap, "%ldh%02ldm", t / 60, t % 60);
    }
}

int cli_file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

int cli_mkdir_p(const char *dir)
{
    char path[4096];
    if (snprintf(path, sizeof path, "%s", dir) >= (int)sizeof path) {
        errno = ENAMETOOLONG;
        return -1;
    }
    for (char *p = path + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(path, 0777) != 0 && errno != EEXIST) return -1;
        *p = '/';
    }
    if (mkdir(path, 0777) != 0 && errno != EEXIST) return -1;
    return 0;
}

int cli_open_backend(const char *name, int threads, sm_backend **out)
{
    sm_backend_kind kind;
    if (!strcmp(name, "auto")) kind = SM_BACKEND_AUTO;
    else if (!strcmp(name, "cpu")) kind = SM_BACKEND_CPU;
    else if (!strcmp(name, "cuda")) kind = SM_BACKEND_CUDA;
    else if (!strcmp(name, "cpu-dnnl")) kind = SM_BACKEND_CPU_DNNL;
    else return cli_error(0, "--backend wants auto, cpu, cpu-dnnl or cuda, got '%s'", name), 0;
    sm_status st = sm_backend_create(kind, out);
    if (st) return cli_fail(st, "cannot create the %s backend", name), 0;
    if ((st = sm_backend_set_threads(*out, threads))) {
        cli_fail(st, "cannot use %d threads", threads);
        sm_backend_destroy(*out);
        *out = NULL;
        return 0;
    }
    return 1;
}

/* in sm_conv_algo's and sm_precision's order */
static const char *const conv_algo_names[] = {"auto", "direct", "fft", "measured"};
static const char *const precision_names[] = {"fp32", "bf16"};

int cli_backend_option(cli_backend_opts *b, const char *opt, const char *value)
{
    if (!strcmp(opt, "conv-algo")) {
        for (int i = 0; i < 4; i++)
            if (!strcmp(value, conv_algo_names[i])) return b->conv_algo = i, 1;
        return cli_error(-1, "--conv-algo wants auto, direct, fft or measured, got '%s'", value);
    }
    if (!strcmp(opt, "precision")) {
        for (int i = 0; i < 2; i++)
            if (!strcmp(value, precision_names[i])) return b->precision = i, 1;
        return cli_error(-1, "--precision wants fp32 or bf16, got '%s'", value);
    }
    return 0;
}

int cli_apply_backend_opts(sm_backend *be, const cli_backend_opts *b)
{
    sm_status st;
    if (b->conv_algo >= 0 &&
        (st = sm_backend_set_option(be, SM_BACKEND_OPT_CONV_ALGO, b->conv_algo))) {
        cli_fail(st, "the %s backend refuses --conv-algo %s", sm_backend_name(be),
                 conv_algo_names[b->conv_algo]);
        return 2;
    }
    if (b->precision >= 0 &&
        (st = sm_backend_set_option(be, SM_BACKEND_OPT_PRECISION, b->precision))) {
        cli_fail(st, "the %s backend refuses --precision %s", sm_backend_name(be),
                 precision_names[b->precision]);
        return 2;
    }
    return 0;
}

void cli_print_backend_opts(const sm_backend *be, const cli_backend_opts *b)
{
    if (b->conv_algo < 0 && b->precision < 0) return;
    int64_t algo = -1, prec = -1;
    sm_backend_get_option(be, SM_BACKEND_OPT_CONV_ALGO, &algo);
    sm_backend_get_option(be, SM_BACKEND_OPT_PRECISION, &prec);
    printf("backend options: conv algo %s, precision %s (as the backend reads them back)\n",
           algo >= 0 && algo < 4 ? conv_algo_names[algo] : "?",
           prec >= 0 && prec < 2 ? precision_names[prec] : "?");
}
