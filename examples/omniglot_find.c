/* SPDX-License-Identifier: MIT */
#include "omniglot_find.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static int exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

int omniglot_set_in_folder(const char *dir, const char *name, char *out, size_t cap)
{
    for (int folder = 0; folder < 2; folder++) {
        int n = snprintf(out, cap, "%s/%s%s", dir, name, folder ? "" : ".zip");
        if (n < 0 || (size_t)n >= cap) return -1;
        if (folder ? is_dir(out) : exists(out)) return 1;
    }
    return 0;
}

static void append(char *buf, size_t cap, const char *text)
{
    size_t used = strlen(buf);
    if (used < cap) snprintf(buf + used, cap - used, "%s%s", used ? "; " : "", text);
}

int omniglot_find(const char *given, const char *name, char *out, size_t cap, char *looked,
                  size_t looked_cap)
{
    char line[4200];
    if (looked_cap) looked[0] = '\0';
    if (given) {
        if (is_dir(given)) {
            int r = omniglot_set_in_folder(given, name, out, cap);
            if (r != 0) return r;
        }
        int n = snprintf(out, cap, "%s", given);
        return n < 0 || (size_t)n >= cap ? -1 : 1;
    }
    const char *env = getenv("SIAMESE_OMNIGLOT_DIR");
    if (env && env[0]) {
        int r = omniglot_set_in_folder(env, name, out, cap);
        if (r != 0) return r;
        snprintf(line, sizeof line, "$SIAMESE_OMNIGLOT_DIR=%s has no %s.zip or %s/", env, name,
                 name);
    } else {
        snprintf(line, sizeof line, "$SIAMESE_OMNIGLOT_DIR is not set");
    }
    append(looked, looked_cap, line);
    int r = omniglot_set_in_folder(OMNIGLOT_DEFAULT_DIR, name, out, cap);
    if (r != 0) return r;
    snprintf(line, sizeof line, "./%s has no %s.zip or %s/", OMNIGLOT_DEFAULT_DIR, name, name);
    append(looked, looked_cap, line);
    return 0;
}
