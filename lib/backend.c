/* The dispatch layer: picks a backend, loads the optional cuda module at run time, and wraps the
 * vtable's lifecycle. The core calls ops through be->ops; nothing here knows about OpenBLAS or
 * CUDA. */
#define _GNU_SOURCE /* dladdr */
#include <dlfcn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "alloc.h"
#include "backend.h"
#include "error.h"

#define SM_CUDA_MODULE "libsiamese-cuda.so"

static const sm_backend_host host_for_modules = {
    .abi_version = SM_BACKEND_ABI_VERSION,
    .fail = sm__fail,
    .log = sm__log,
};

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

/* dlopen's message names the first library that was missing; a host program should be told
 * whether that is the module itself or one of the vendor libraries it needs. */
static sm_status module_load_failure(const char *path, const char *why)
{
    if (access(path, F_OK) != 0)
        return sm__fail(SM_ERR_BACKEND_UNAVAILABLE,
                        "no cuda module at '%s' (this build may not include it: meson option "
                        "-Dcuda=enabled; or set SIAMESE_BACKEND_DIR)",
                        path);
    const char *vendor = strstr(why, "libcudnn") ? "cuDNN"
                         : strstr(why, "libcublas") ? "cuBLAS"
                                                     : NULL;
    if (vendor)
        return sm__fail(SM_ERR_BACKEND_UNAVAILABLE,
                        "cuda module '%s' could not be loaded: %s is missing (%s); put its "
                        "library folder on LD_LIBRARY_PATH",
                        path, vendor, why);
    return sm__fail(SM_ERR_BACKEND_UNAVAILABLE, "cuda module '%s' could not be loaded: %s", path,
                    why);
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
    if (!h) {
        const char *why = dlerror();
        return module_load_failure(path, why ? why : "unknown dlopen error");
    }
    sm_backend_module_entry_fn entry;
    *(void **)&entry = dlsym(h, "sm_backend_module_entry");
    const sm_backend_ops *ops = entry ? entry(&host_for_modules) : NULL;
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

/* `fallback` (may be NULL) receives, for AUTO landing on the CPU, why CUDA was not taken. */
static sm_status resolve(sm_backend_kind kind, const sm_backend_ops **out, char *fallback,
                         size_t cap)
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
        if (fallback) snprintf(fallback, cap, "%s", sm_last_error());
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
    return resolve(kind, &ops, NULL, 0);
}

SM_API sm_status sm_backend_create(sm_backend_kind kind, sm_backend **out)
{
    SM_CHECK_ARG(out, "sm_backend_create: out is NULL");
    const sm_backend_ops *ops = NULL;
    char fallback[sizeof ((sm_backend *)0)->fallback_reason] = "";
    SM_TRY(resolve(kind, &ops, fallback, sizeof fallback));
    sm_backend *be = sm__calloc(1, sizeof *be);
    if (!be) return sm__fail(SM_ERR_NOMEM, "out of memory creating a backend");
    memcpy(be->fallback_reason, fallback, sizeof fallback);
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

SM_API const char *sm_backend_fallback_reason(const sm_backend *be)
{
    return be ? be->fallback_reason : "";
}

SM_API sm_status sm_backend_set_option(sm_backend *be, sm_backend_option key, int64_t value)
{
    SM_CHECK_ARG(be, "sm_backend_set_option: backend is NULL");
    switch (key) {
    case SM_BACKEND_OPT_TF32:
        SM_CHECK_ARG(value == 0 || value == 1,
                     "sm_backend_set_option: TF32 takes 0 or 1, got %lld", (long long)value);
        return be->ops->set_option(be->ctx, key, value);
    }
    return sm__fail(SM_ERR_INVALID_ARG, "sm_backend_set_option: unknown option %d", (int)key);
}

SM_API sm_status sm_backend_get_option(const sm_backend *be, sm_backend_option key,
                                       int64_t *value)
{
    SM_CHECK_ARG(be && value, "sm_backend_get_option: backend or value is NULL");
    switch (key) {
    case SM_BACKEND_OPT_TF32:
        *value = be->ops->get_option(be->ctx, key);
        return SM_OK;
    }
    return sm__fail(SM_ERR_INVALID_ARG, "sm_backend_get_option: unknown option %d", (int)key);
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
