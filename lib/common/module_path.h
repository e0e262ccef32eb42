/* SPDX-License-Identifier: MIT */
/* Private: where a run-time module's file is, for the backend modules (backend/backend.c) and
 * the communicator modules (comm/comm_module.c) alike. */
#ifndef SM_LIB_COMMON_MODULE_PATH_H
#define SM_LIB_COMMON_MODULE_PATH_H

#include <stddef.h>

/* Into `buf`: the first folder of SIAMESE_BACKEND_DIR (one folder, or several separated by
 * ':') that has `file`, else that list's first folder; without the variable,
 * "<dir of libsiamese.so>/libsiamese/". */
void sm__module_path(const char *file, char *buf, size_t cap);

#endif
