/* The dispatch layer: picks a backend, loads the optional cuda module at run time, and wraps the
 * vtable's lifecycle. The core calls ops through be->ops; nothing here knows about OpenBLAS or
 * CUDA. */
#define _GNU_SOURCE /* dladdr */
#include <dlfcn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "backend.h"
#include "error.h"

#define SM_CUDA_MODULE "libsiamese-cuda.so"

typedef const sm_backend_ops *(*module_entry_fn)(void);

/* Where the cuda module would be: SIAMESE_BACKEND_DIR, else "<dir of libsiamese.so>/libsiamese/". */
static void cuda_module_path(char *buf, size_t cap)
{
    const char *env = getenv("SIAMESE_BACKEND_DIR");
    if (env && *env) {
        snprintf(buf, cap, "%s/%s", env, SM_CUDA_MODULE);
        return;
    }
    Dl_info info;
    if (dladdr((void *)&cuda_module_path, &info) && info.dli_fname) {
        const char *slash = strrchr(info.dli_fname, '/');
        if (slash) {
            snprintf(buf, cap, "%.*s/libsiamese/%s", (int)(slash - info.dli_fname),
                     info.dli_fname, SM_CUDA_MODULE);
            return;
        }
    }
    snprintf(buf, cap, "%s", SM_CUDA_MODULE);
}

/* Loads the cuda module; the handle stays open for the life of the process (unloading a CUDA
 * runtime while its threads may live is not safe). */
static sm_status load_cuda_ops(const sm_backend_ops **out)
{
    /* atomic: backends may be created from several threads at once */
    static _Atomic(const sm_backend_ops *) cached;
    const sm_backend_ops *seen = atomic_load(&cached);
    if (seen) {
        *out = seen;
        return SM_OK;
    }
    char path[4096];
    cuda_module_path(path, sizeof path);
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h)
        return sm__fail(SM_ERR_BACKEND_UNAVAILABLE,
                        "cuda backend not available: module '%s' could not be loaded (%s); "
                        "this build may not include it (meson option -Dcuda=enabled)",
                        path, dlerror());
    module_entry_fn entry;
    *(void **)&entry = dlsym(h, "sm_backend_module_entry");
    const sm_backend_ops *ops = entry ? entry() : NULL;
    if (!ops) {
        dlclose(h);
        return sm__fail(SM_ERR_BACKEND_UNAVAILABLE,
                        "cuda backend not available: '%s' has no sm_backend_module_entry", path);
    }
    if (ops->abi_version != SM_BACKEND_ABI_VERSION) {
        int v = ops->abi_version;
        dlclose(h);
        return sm__fail(SM_ERR_VERSION,
                        "cuda module '%s' has backend ABI %d, this library needs %d", path, v,
                        SM_BACKEND_ABI_VERSION);
    }
    atomic_store(&cached, ops);
    *out = ops;
    return SM_OK;
}

static sm_status resolve(sm_backend_kind kind, const sm_backend_ops **out)
{
    switch (kind) {
    case SM_BACKEND_CPU:
        *out = sm__cpu_blas_ops();
        return SM_OK;
    case SM_BACKEND_CUDA: {
        const sm_backend_ops *ops;
        SM_TRY(load_cuda_ops(&ops));
        SM_TRY(ops->probe());
        *out = ops;
        return SM_OK;
    }
    case SM_BACKEND_AUTO: {
        const sm_backend_ops *ops = NULL;
        if (load_cuda_ops(&ops) == SM_OK && ops->probe() == SM_OK) {
            *out = ops;
            return SM_OK;
        }
        sm__log(SM_LOG_INFO, "auto backend: using cpu-blas (%s)", sm_last_error());
        *out = sm__cpu_blas_ops();
        return SM_OK;
    }
    }
    return sm__fail(SM_ERR_INVALID_ARG, "unknown backend kind %d", (int)kind);
}

SM_API const char *sm_backend_kind_name(sm_backend_kind kind)
{
    switch (kind) {
    case SM_BACKEND_AUTO: return "auto";
    case SM_BACKEND_CPU: return "cpu";
    case SM_BACKEND_CUDA: return "cuda";
    }
    return "unknown";
}

SM_API sm_status sm_backend_probe(sm_backend_kind kind)
{
    const sm_backend_ops *ops = NULL;
    return resolve(kind, &ops);
}

SM_API sm_status sm_backend_create(sm_backend_kind kind, sm_backend **out)
{
    SM_CHECK_ARG(out, "sm_backend_create: out is NULL");
    const sm_backend_ops *ops = NULL;
    SM_TRY(resolve(kind, &ops));
    sm_backend *be = sm__calloc(1, sizeof *be);
    if (!be) return sm__fail(SM_ERR_NOMEM, "out of memory creating a backend");
    be->ops = ops;
    sm_status s = ops->init(&be->ctx);
    if (s != SM_OK) {
        sm__free(be);
        return s;
    }
    *out = be;
    return SM_OK;
}

SM_API void sm_backend_destroy(sm_backend *be)
{
    if (!be) return;
    be->ops->destroy(be->ctx);
    sm__free(be);
}

SM_API const char *sm_backend_name(const sm_backend *be) { return be ? be->ops->name : ""; }

SM_API sm_backend_kind sm_backend_get_kind(const sm_backend *be)
{
    return be ? be->ops->kind : SM_BACKEND_AUTO;
}

SM_API sm_status sm_backend_set_threads(sm_backend *be, int threads)
{
    SM_CHECK_ARG(be, "sm_backend_set_threads: backend is NULL");
    SM_CHECK_ARG(threads >= 0 && threads <= 1024,
                 "sm_backend_set_threads: %d threads is out of range 0..1024", threads);
    return be->ops->set_threads(be->ctx, threads);
}

SM_API int sm_backend_get_threads(const sm_backend *be)
{
    return be ? be->ops->get_threads(be->ctx) : 0;
}

sm_status sm__be_alloc_floats(sm_backend *be, size_t n, float **out)
{
    size_t bytes;
    if (!sm__mul_size(n, sizeof(float), &bytes))
        return sm__fail(SM_ERR_LIMIT, "buffer of %zu floats overflows size_t", n);
    void *p;
    SM_TRY(be->ops->alloc(be->ctx, bytes, &p));
    *out = p;
    return SM_OK;
}

void sm__be_free(sm_backend *be, void *p)
{
    if (p) be->ops->free(be->ctx, p);
}
