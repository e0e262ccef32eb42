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

#endif
