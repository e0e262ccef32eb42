/* SPDX-License-Identifier: MIT */
#include "common/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static _Thread_local char last_error[1024];

static sm_log_fn log_fn;
static void *log_user;
static sm_log_level log_min = SM_LOG_INFO;

sm_status sm__fail(sm_status status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    return status;
}

void sm__log(sm_log_level level, const char *fmt, ...)
{
    if (!log_fn || level < log_min) return;
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    log_fn(log_user, level, buf);
}

#ifdef NDEBUG
const int sm__try_traces = 0;
#else
const int sm__try_traces = 1;
#endif

void sm__log_try_failed(const char *file, int line, const char *expr, sm_status status)
{
    sm__log(SM_LOG_DEBUG, "%s:%d: %s failed: %s", file, line, expr, sm_status_name(status));
}

SM_API const char *sm_last_error(void) { return last_error; }

SM_API void sm_set_log_callback(sm_log_fn fn, void *user, sm_log_level min_level)
{
    log_fn = fn;
    log_user = user;
    log_min = min_level;
}

SM_API const char *sm_status_name(sm_status status)
{
    switch (status) {
    case SM_OK: return "SM_OK";
    case SM_ERR_INVALID_ARG: return "SM_ERR_INVALID_ARG";
    case SM_ERR_NOMEM: return "SM_ERR_NOMEM";
    case SM_ERR_IO: return "SM_ERR_IO";
    case SM_ERR_FORMAT: return "SM_ERR_FORMAT";
    case SM_ERR_SHAPE: return "SM_ERR_SHAPE";
    case SM_ERR_VERSION: return "SM_ERR_VERSION";
    case SM_ERR_BACKEND_UNAVAILABLE: return "SM_ERR_BACKEND_UNAVAILABLE";
    case SM_ERR_DEVICE: return "SM_ERR_DEVICE";
    case SM_ERR_NUMERIC: return "SM_ERR_NUMERIC";
    case SM_ERR_DATASET: return "SM_ERR_DATASET";
    case SM_ERR_LIMIT: return "SM_ERR_LIMIT";
    case SM_ERR_STATE: return "SM_ERR_STATE";
    case SM_ERR_INTERNAL: return "SM_ERR_INTERNAL";
    case SM_ERR_COMM: return "SM_ERR_COMM";
    case SM_ERR_UNSUPPORTED: return "SM_ERR_UNSUPPORTED";
    }
    return "SM_ERR_UNKNOWN";
}

SM_API const char *sm_status_str(sm_status status)
{
    switch (status) {
    case SM_OK: return "success";
    case SM_ERR_INVALID_ARG: return "invalid argument";
    case SM_ERR_NOMEM: return "out of memory";
    case SM_ERR_IO: return "input/output error";
    case SM_ERR_FORMAT: return "damaged or unrecognised file";
    case SM_ERR_SHAPE: return "sizes do not match";
    case SM_ERR_VERSION: return "incompatible version";
    case SM_ERR_BACKEND_UNAVAILABLE: return "backend not available";
    case SM_ERR_DEVICE: return "device error";
    case SM_ERR_NUMERIC: return "non-finite loss or gradient";
    case SM_ERR_DATASET: return "dataset cannot serve the request";
    case SM_ERR_LIMIT: return "resource limit exceeded";
    case SM_ERR_STATE: return "call made in the wrong state";
    case SM_ERR_INTERNAL: return "internal error";
    case SM_ERR_COMM: return "communication between training ranks failed";
    case SM_ERR_UNSUPPORTED: return "not supported by this backend or machine";
    }
    return "unknown status";
}

sm_status sm__read_options(const char *fn, const char *type, const char *init, void *dst,
                           size_t dst_size, const void *src)
{
    if (!src) return SM_OK;
    size_t have;
    memcpy(&have, src, sizeof have); /* every options struct starts with its struct_size */
    SM_CHECK_ARG(have >= sizeof(size_t),
                 "%s: options->struct_size %zu too small (set it to sizeof(%s), or use %s)", fn,
                 have, type, init);
    memset(dst, 0, dst_size);
    memcpy(dst, src, have < dst_size ? have : dst_size);
    memcpy(dst, &dst_size, sizeof dst_size);
    return SM_OK;
}
