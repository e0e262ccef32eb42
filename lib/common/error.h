/* SPDX-License-Identifier: MIT */
/* Private: error reporting and propagation (modelled on zstd's RETURN_ERROR_IF/FORWARD_IF_ERROR).
 * Nothing here prints or exits: a failure sets the thread's detail string and returns. */
#ifndef SM_LIB_ERROR_H
#define SM_LIB_ERROR_H

#include "siamese/siamese.h"

#if defined(__GNUC__)
#define SM__PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define SM__PRINTF(f, a)
#endif

/* Records a detail message for sm_last_error() and returns `status`. */
sm_status sm__fail(sm_status status, const char *fmt, ...) SM__PRINTF(2, 3);
/* Sends a message to the host's log callback, if any. */
void sm__log(sm_log_level level, const char *fmt, ...) SM__PRINTF(2, 3);

/* Logs, at SM_LOG_DEBUG, one frame of a failure's way out: where SM_TRY saw `expr` fail. */
void sm__log_try_failed(const char *file, int line, const char *expr, sm_status status);
/* Whether the library itself was built with SM_TRY's debug trace (without NDEBUG). */
extern const int sm__try_traces;

/* Returns the status of `expr` when it fails. In debug builds (no NDEBUG) each SM_TRY a failure
 * passes through also logs its file, line and expression, so a host that asks for debug
 * messages sees the path from the failed op to the public call (zstd's FORWARD_IF_ERROR). */
#ifdef NDEBUG
#define SM__TRACE_TRY(expr, status) ((void)0)
#else
#define SM__TRACE_TRY(expr, status) sm__log_try_failed(__FILE__, __LINE__, expr, status)
#endif

#define SM_TRY(expr)                                                                               \
    do {                                                                                           \
        sm_status sm__s = (expr);                                                                  \
        if (sm__s != SM_OK) {                                                                      \
            SM__TRACE_TRY(#expr, sm__s);                                                           \
            return sm__s;                                                                          \
        }                                                                                          \
    } while (0)

#define SM_RETURN_IF(cond, status, ...)                                                            \
    do {                                                                                           \
        if (cond) return sm__fail((status), __VA_ARGS__);                                          \
    } while (0)

#define SM_CHECK_ARG(cond, ...) SM_RETURN_IF(!(cond), SM_ERR_INVALID_ARG, __VA_ARGS__)

/* Reads a caller's struct_size-versioned options struct (`src`, NULL allowed) into `dst`
 * (`dst_size` bytes, holding the defaults on entry): with src, fields past the caller's
 * struct_size (an older caller) count as 0 and dst's struct_size becomes dst_size.
 * SM_ERR_INVALID_ARG naming `fn` when src's struct_size is under sizeof(size_t) (`type` and
 * `init` name the struct and its initialiser in the message). */
sm_status sm__read_options(const char *fn, const char *type, const char *init, void *dst,
                           size_t dst_size, const void *src);

#endif
