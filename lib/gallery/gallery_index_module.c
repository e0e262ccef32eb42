/* SPDX-License-Identifier: MIT */
/* The index module (libsiamese-index-faiss.so), found where the backend modules are
 * (common/module_path.h: SIAMESE_BACKEND_DIR first) and loaded once per process; the core never
 * links Faiss or C++. A missing module, or one that cannot load, is SM_ERR_BACKEND_UNAVAILABLE
 * as for the cpu-dnnl and cuda backends (lib/backend/backend.c); the exact search needs none.
 * The handle stays open for the life of the process (the module brings an OpenMP runtime, whose
 * threads may outlive a call). A failed load is not remembered: a later call tries again. */
#include <dlfcn.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/error.h"
#include "common/module_path.h"
#include "gallery/gallery_index.h"

#define MODULE_FILE "libsiamese-index-faiss.so"

static _Atomic(const sm_index_module_ops *) loaded;
static sm_index_module_ops table; /* written once, by the first load that succeeds */
static pthread_mutex_t load_lock = PTHREAD_MUTEX_INITIALIZER;

static sm_status load_failure(const char *path, const char *why)
{
    if (access(path, F_OK) != 0)
        return sm__fail(SM_ERR_BACKEND_UNAVAILABLE,
                        "no index-faiss module at '%s' (this build may not include it: meson "
                        "option -Dindex-faiss=enabled, with Debian libfaiss-dev and g++; or set "
                        "SIAMESE_BACKEND_DIR)",
                        path);
    return sm__fail(SM_ERR_BACKEND_UNAVAILABLE, "index-faiss module '%s' could not be loaded: %s",
                    path, why);
}

static sm_status load(const sm_index_module_ops **out)
{
    char path[4096];
    sm__module_path(MODULE_FILE, path, sizeof path);
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        const char *why = dlerror();
        return load_failure(path, why ? why : "unknown dlopen error");
    }
    sm_index_module_entry_fn entry;
    *(void **)&entry = dlsym(h, "sm_index_module_entry");
    if (!entry) {
        dlclose(h);
        return sm__fail(SM_ERR_BACKEND_UNAVAILABLE, "'%s' has no sm_index_module_entry", path);
    }
    sm_index_module_ops ops;
    memset(&ops, 0, sizeof ops);
    int rc = entry(SM_INDEX_MODULE_ABI, &ops);
    if (rc != 0 || ops.abi != SM_INDEX_MODULE_ABI) {
        unsigned v = ops.abi;
        dlclose(h);
        return sm__fail(SM_ERR_VERSION,
                        "index module '%s' has interface version %u, this library needs %d", path,
                        v, SM_INDEX_MODULE_ABI);
    }
    if (!ops.name || !ops.build || !ops.search || !ops.bytes || !ops.destroy) {
        dlclose(h);
        return sm__fail(SM_ERR_BACKEND_UNAVAILABLE, "index module '%s' leaves a slot empty", path);
    }
    table = ops;
    *out = &table;
    return SM_OK;
}

sm_status sm__index_module(const sm_index_module_ops **out)
{
    const sm_index_module_ops *seen = atomic_load(&loaded);
    if (!seen) {
        /* one loader at a time: `table` is written once, before `loaded` publishes it */
        pthread_mutex_lock(&load_lock);
        seen = atomic_load(&loaded);
        sm_status st = seen ? SM_OK : load(&seen);
        if (st == SM_OK) atomic_store(&loaded, seen);
        pthread_mutex_unlock(&load_lock);
        if (st != SM_OK) return st;
    }
    *out = seen;
    return SM_OK;
}

SM_API sm_status sm_gallery_index_available(void)
{
    const sm_index_module_ops *ops;
    return sm__index_module(&ops);
}
