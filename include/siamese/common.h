/* SPDX-License-Identifier: MIT */
/* libsiamese: what every part of the API shares: the SM_API export macro, the version and
 * status functions, the per-thread error detail, the log callback and the resource limits.
 * <siamese/siamese.h> includes it with every other topic header, and states the conventions
 * and threading rules that hold for all of them. */
#ifndef SIAMESE_COMMON_H
#define SIAMESE_COMMON_H

#include <stddef.h>
#include <stdint.h>

#include "siamese/status.h"
#include "siamese/version.h"

/* Marks the library's entry points. On Windows a DLL must export them while it is built and
 * its users must import them: the library's own build defines SM_BUILDING_LIBSIAMESE
 * (lib/meson.build), users define nothing. Elsewhere the library is built with hidden
 * visibility, and this makes the API visible. */
#if defined(_WIN32)
#if defined(SM_BUILDING_LIBSIAMESE)
#define SM_API __declspec(dllexport)
#else
#define SM_API __declspec(dllimport)
#endif
#elif defined(__GNUC__)
#define SM_API __attribute__((visibility("default")))
#else
#define SM_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------------------------------------
 * Versions, statuses, errors, logging
 * ------------------------------------------------------------------------------------------- */

/** SM_VERSION_NUMBER of the library actually loaded (compare with the header's macro). */
SM_API int sm_version_number(void);
/** "MAJOR.MINOR.PATCH" of the loaded library. Static storage. */
SM_API const char *sm_version_string(void);
/** SM_ABI_MAJOR of the loaded library. */
SM_API int sm_abi_version(void);

/** The enum name of a status ("SM_ERR_IO"); "SM_ERR_UNKNOWN" for values not in the enum. */
SM_API const char *sm_status_name(sm_status status);
/** A short fixed description of a status ("input/output error"). Static storage. */
SM_API const char *sm_status_str(sm_status status);
/** The detail of the last call on this thread that failed ("image 'a/b.png' is 64x64, expected
 *  105x105"); "" if none failed yet. Valid until the next failing call on this thread. */
SM_API const char *sm_last_error(void);

typedef enum sm_log_level {
    SM_LOG_DEBUG = 0,
    SM_LOG_INFO = 1,
    SM_LOG_WARN = 2,
    SM_LOG_ERROR = 3
} sm_log_level;

/** Receives the library's log messages. `message` is valid only during the call. May be called
 *  from any thread that calls into the library, and (since 0.5) from a trainer's exchange
 *  thread (siamese/comm.h, sm_comm_set_serialized). */
typedef void (*sm_log_fn)(void *user, sm_log_level level, const char *message);

/** Installs a process-wide log callback (NULL: discard messages, the default). Messages below
 *  `min_level` are not formatted. Not thread-safe against concurrent library calls: install it
 *  before using the library from several threads. */
SM_API void sm_set_log_callback(sm_log_fn fn, void *user, sm_log_level min_level);

/* ---------------------------------------------------------------------------------------------
 * Resource limits: every reader checks sizes against these before it allocates, so a damaged or
 * hostile file (a zip bomb, a header that claims terabytes) is refused with SM_ERR_LIMIT instead
 * of exhausting memory. Process-wide; setting and reading them is thread-safe.
 * ------------------------------------------------------------------------------------------- */

typedef enum sm_limit {
    SM_LIMIT_FILE_BYTES = 1,    /* largest checkpoint file read; default 16 GiB */
    SM_LIMIT_ENTRY_BYTES = 2,   /* largest single PNG file or zip entry read; default 64 MiB */
    SM_LIMIT_DATASET_BYTES = 3, /* decoded pixels one dataset may hold; default 16 GiB */
    SM_LIMIT_IMAGE_SIDE = 4     /* largest PNG width or height decoded; default 4096 */
} sm_limit;

/** Sets a limit. SM_ERR_INVALID_ARG for an unknown key or 0. */
SM_API sm_status sm_set_limit(sm_limit key, uint64_t value);
/** The limit in force; 0 for an unknown key. */
SM_API uint64_t sm_get_limit(sm_limit key);

#ifdef __cplusplus
}
#endif

#endif
