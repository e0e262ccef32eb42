/* SPDX-License-Identifier: MIT */
/* Small helpers the example programs share: range-checked option parsing, error messages that
 * carry the library's status and detail, time, folders. Each program sets cli_prog first. */
#ifndef SIAMESE_EXAMPLES_CLI_H
#define SIAMESE_EXAMPLES_CLI_H

#include <stddef.h>

#include <siamese/siamese.h>

/* The program's name, for messages ("siamese-train"). */
extern const char *cli_prog;
/* Set while a \r progress line is on the terminal, so that a message starts on a new line. */
extern int cli_progress_open;

/* Prints "PROG: <what>: SM_ERR_X (text): <sm_last_error()>" on stderr; returns 1. */
#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
int cli_fail(sm_status st, const char *fmt, ...);

/* Prints "PROG: <message>" on stderr; returns `rc`. */
#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
int cli_error(int rc, const char *fmt, ...);

/* Shows the library's warnings (and errors it logs) on stderr as "PROG: warning: ...": the
 * library never prints, and a save whose folder could not be synced, say, is a warning. */
void cli_show_library_warnings(void);

/* Option values, range-checked: 1 on success, else a message naming --name and 0. */
int cli_parse_ll(const char *name, const char *text, long long lo, long long hi, long long *out);
int cli_parse_int(const char *name, const char *text, int lo, int hi, int *out);
/* A finite number in [lo, hi] (lo_open: lo itself excluded). */
int cli_parse_double(const char *name, const char *text, double lo, int lo_open, double hi,
                     double *out);

/* Monotonic seconds. */
double cli_now(void);
/* "12.3s", "4m05s", "2h07m"; "--" for an unknown duration. */
void cli_duration(char *buf, size_t cap, double seconds);
/* mkdir -p; 0 or -1 with errno. */
int cli_mkdir_p(const char *dir);
int cli_file_exists(const char *path);

/* Opens a backend by its --backend name ("auto", "cpu", "cuda"); prints why on failure. */
int cli_open_backend(const char *name, int threads, sm_backend **out);

/* --conv-algo and --precision, for the programs that open a backend. */
#define CLI_BACKEND_OPTIONS_HELP                                                                   \
    "  --conv-algo ALGO     how convolutions are computed: auto (default: per layer by a\n"        \
    "                       fixed rule, so every run gives the same bits), direct, fft, or\n"      \
    "                       measured (the fastest per layer, timed once per run: the last\n"       \
    "                       bits may differ between runs) (cpu-dnnl and cuda honour it)\n"         \
    "  --precision P        fp32 (default) or bf16: convolutions and the twin's matrix\n"          \
    "                       products in bfloat16 with fp32 sums, weights fp32 (refused\n"          \
    "                       where the backend or the CPU has no bf16 path)\n"
/* The backend options as given: -1 for one not given (the backend's default is kept). */
typedef struct cli_backend_opts {
    int conv_algo; /* an sm_conv_algo */
    int precision; /* an sm_precision */
} cli_backend_opts;
#define CLI_BACKEND_OPTS_INIT                                                                      \
    {                                                                                              \
        -1, -1                                                                                     \
    }
/* Parses --conv-algo or --precision (`opt` without "--"): 1 taken, 0 not one of them, -1 bad
 * value (message printed). */
int cli_backend_option(cli_backend_opts *b, const char *opt, const char *value);
/* Sets the options given on the backend; 0, or 2 after printing why the backend refused one
 * (SM_ERR_UNSUPPORTED: bf16 on a backend or CPU without a bf16 path). */
int cli_apply_backend_opts(sm_backend *be, const cli_backend_opts *b);
/* When either option was given: what the backend reads back (it may accept a value and keep
 * computing as before), one line on stdout. */
void cli_print_backend_opts(const sm_backend *be, const cli_backend_opts *b);

#endif
