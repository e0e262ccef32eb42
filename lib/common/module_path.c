/* SPDX-License-Identifier: MIT */
/* Where the run-time modules are found (common/module_path.h). */
#define _GNU_SOURCE /* dladdr */
#include "common/module_path.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void sm__module_path(const char *file, char *buf, size_t cap)
{
    /* Also tells GCC's -Wformat-truncation (with -fsanitize=address,undefined at -O3) that
     * buf is not NULL; it warns of a null destination otherwise. */
    if (!buf || cap == 0) return;
    const char *env = getenv("SIAMESE_BACKEND_DIR");
    if (env && *env) {
        for (const char *dir = env; dir && *dir;) {
            const char *colon = strchr(dir, ':');
            int len = colon ? (int)(colon - dir) : (int)strlen(dir);
            snprintf(buf, cap, "%.*s/%s", len, dir, file);
            if (access(buf, F_OK) == 0) return;
            dir = colon ? colon + 1 : NULL;
        }
        const char *colon = strchr(env, ':');
        snprintf(buf, cap, "%.*s/%s", colon ? (int)(colon - env) : (int)strlen(env), env, file);
        return;
    }
    Dl_info info;
    if (dladdr((void *)&sm__module_path, &info) && info.dli_fname) {
        const char *slash = strrchr(info.dli_fname, '/');
        if (slash) {
            snprintf(buf, cap, "%.*s/libsiamese/%s", (int)(slash - info.dli_fname), info.dli_fname,
                     file);
            return;
        }
    }
    snprintf(buf, cap, "%s", file);
}
