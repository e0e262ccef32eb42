/* SPDX-License-Identifier: MIT */
/* The dispatch layer: picks a backend, loads the optional modules (cuda, cpu-dnnl) at run time,
 * wraps the vtable's lifecycle and settings (supplying what a backend leaves out), and answers
 * what the rest of the core asks about a backend (sm__backend_props). The core calls ops through
 * be->ops; nothing here knows about OpenBLAS, oneDNN or CUDA, and no other file of the core
 * names a backend kind. */
#define _GNU_SOURCE /* dladdr */
#include <dlfcn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend/backend.h"
#include "common/alloc.h"
#include "common/error.h"
#include "common/module_path.h"

/* A backend built as a separate module: its file, and what to say when it is missing. */
typedef struct module_info {
    const char *name;                       /* "cuda", "cpu-dnnl" */
    const char *file;                       /* libsiamese-cuda.so */
    const char *option;                     /* the meson option that builds it */
    _Atomic(const sm_backend_ops *) cached; /* atomic: backends may be created from any thread */
} module_info;

static module_info cuda_module = {"cuda", "libsiamese-cuda.so", "-Dcuda=enabled", NULL};
static module_info dnnl_module = {"cpu-dnnl", "libsiamese-dnnl.so", "-Ddnnl=enabled", NULL};

static const sm_backend_host host_for_modules = {
    .abi_version = SM_BACKEND_ABI_VERSION,
    .fail = sm__fail,
    .log = sm__log,
};

static void module_path(const module_info *m, char *buf, size_t cap)
{
    sm__module_path(m->file, buf, cap);
}

/* dlopen's message names the first library that was missing; a host program should be told
 * whether that is the module itself or one of the vendor libraries it needs. */
static sm_status module_load_failure(const module_info *m, const char *path, const char *why)
{
    if (access(path, F_OK) != 0)
        return sm__fail(SM_ERR_BACKEND_UNAVAILABLE,
                        "no %s module at '%s' (this build may not include it: meson option "
                        "%s; or set SIAMESE_BACKEND_DIR)",
                        m->name, path, m->option);
    const char *vendor = strstr(why, "libcudnn")    ? "cuDNN"
                         : strstr(why, "libcublas") ? "cuBLAS"
                         : strstr(why, "libdnnl")   ? "oneDNN"
                         : strstr(why, "libgomp")   ? "OpenMP (libgomp)"
                                                    : NULL;
    if (vendor)
        return sm__fail(SM_ERR_BACKEND_UNAVAILABLE,
                        "%s module '%s' could not be loaded: %s is missing (%s); put its "
                        "library folder on LD_LIBRARY_PATH",
                        m->name, path, vendor, why);
    return sm__fail(SM_ERR_BACKEND_UNAVAILABLE, "%s module '%s' could not be loaded: %s", m->name,
                    path, why);
}

/* Loads a module; the handle stays open for the life of the process (unloading a CUDA runtime
 * or an OpenMP runtime while its threads may live is not safe). */
static sm_status load_module_ops(module_info *m, const sm_backend_ops **out)
{
    const sm_backend_ops *seen = atomic_load(&m->cached);
    if (seen) {
        *out = seen;
        return SM_OK;
    }
    char path[4096];
    module_path(m, path, sizeof path);
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        const char *why = dlerror();
        return module_load_failure(m, path, why ? why : "unknown dlopen error");
    }
    sm_backend_module_entry_fn entry;
    *(void **)&entry = dlsym(h, "sm_backend_module_entry");
    const sm_backend_ops *ops = entry ? entry(&host_for_modules) : NULL;
    if (!ops) {
        dlclose(h);
        return sm__fail(SM_ERR_BACKEND_UNAVAILABLE,
                        "%s backend not available: '%s' has no sm_backend_module_entry", m->name,
                        path);
    }
    if (ops->abi_version != SM_BACKEND_ABI_VERSION) {
        int v = ops->abi_version;
        dlclose(h);
        return sm__fail(SM_ERR_VERSION, "%s module '%s' has backend ABI %d, this library needs %d",
                        m->name, path, v, SM_BACKEND_ABI_VERSION);
    }
    atomic_store(&m->cached, ops);
    *out = ops;
    return SM_OK;
}

static sm_status load_usable(module_info *m, const sm_backend_ops **out)
{
    const sm_backend_ops *ops;
    SM_TRY(load_module_ops(m, &ops));
    SM_TRY(ops->probe());
    *out = ops;
    return SM_OK;
}

/* `fallback` (may be NULL) receives, for AUTO landing on a CPU backend, why CUDA was not taken
 * (and, landing on cpu-blas, why cpu-dnnl was not). AUTO prefers cpu-dnnl to cpu-blas: where its
 * module is built it is the faster CPU backend (docs/performance.md). */
static sm_status resolve(sm_backend_kind kind, const sm_backend_ops **out, char *fallback,
                         size_t cap)
{
    switch (kind) {
    case SM_BACKEND_CPU: *out = sm__cpu_blas_ops(); return SM_OK;
    case SM_BACKEND_CUDA: return load_usable(&cuda_module, out);
    case SM_BACKEND_CPU_DNNL: return load_usable(&dnnl_module, out);
    case SM_BACKEND_AUTO: {
        if (load_usable(&cuda_module, out) == SM_OK) return SM_OK;
        char why[sizeof((sm_backend *)0)->fallback_reason];
        snprintf(why, sizeof why, "%s", sm_last_error());
        if (load_usable(&dnnl_module, out) == SM_OK) {
            if (fallback) snprintf(fallback, cap, "%s", why);
            sm__log(SM_LOG_INFO, "auto backend: using cpu-dnnl (%s)", why);
            return SM_OK;
        }
        /* a reason cut at the buffer's end still starts with what matters */
        if (fallback && snprintf(fallback, cap, "%s; cpu-dnnl: %s", why, sm_last_error()) < 0)
            fallback[0] = '\0';
        sm__log(SM_LOG_INFO, "auto backend: using cpu-blas (%s; cpu-dnnl: %s)", why,
                sm_last_error());
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
    case SM_BACKEND_CPU_DNNL: return "cpu-dnnl";
    }
    return "unknown";
}

SM_API sm_status sm_backend_probe(sm_backend_kind kind)
{
    const sm_backend_ops *ops = NULL;
    return resolve(kind, &ops, NULL, 0);
}

/* Measured defaults (docs/performance.md): 16 pairs per training micro-batch and per inference
 * forward keep the CPU backends' peak memory low at little cost in speed; 64 images per
 * sm_embed call when embedding a dataset. */
static sm_backend_props props_with_defaults(sm_backend_props p)
{
    if (p.train_pairs <= 0) p.train_pairs = 16;
    if (p.predict_pairs <= 0) p.predict_pairs = 16;
    if (p.embed_images <= 0) p.embed_images = 64;
    return p;
}

const sm_backend_props *sm__backend_props(const sm_backend *be) { return &be->props; }

static bool honours(const sm_backend *be, unsigned what) { return (be->props.honours & what) != 0; }

SM_API sm_status sm_backend_create(sm_backend_kind kind, sm_backend **out)
{
    SM_CHECK_ARG(out, "sm_backend_create: out is NULL");
    const sm_backend_ops *ops = NULL;
    char fallback[sizeof((sm_backend *)0)->fallback_reason] = "";
    SM_TRY(resolve(kind, &ops, fallback, sizeof fallback));
    sm_backend *be = sm__calloc(1, sizeof *be);
    if (!be) return sm__fail(SM_ERR_NOMEM, "out of memory creating a backend");
    memcpy(be->fallback_reason, fallback, sizeof fallback);
    be->ops = ops;
    be->props = props_with_defaults(ops->props);
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
    if (!honours(be, SM_BACKEND_HONOURS_THREADS) || !be->ops->set_threads) return SM_OK;
    return be->ops->set_threads(be->ctx, threads);
}

/* A backend whose work does not depend on host threads (the GPU) is driven by one. */
SM_API int sm_backend_get_threads(const sm_backend *be)
{
    if (!be) return 0;
    if (!honours(be, SM_BACKEND_HONOURS_THREADS) || !be->ops->get_threads) return 1;
    return be->ops->get_threads(be->ctx);
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
        SM_CHECK_ARG(value == 0 || value == 1, "sm_backend_set_option: TF32 takes 0 or 1, got %lld",
                     (long long)value);
        /* TF32 is a GPU number format: host code may set it whatever the backend */
        if (!honours(be, SM_BACKEND_HONOURS_TF32) || !be->ops->set_option) return SM_OK;
        return be->ops->set_option(be->ctx, key, value);
    case SM_BACKEND_OPT_CONV_ALGO:
        SM_CHECK_ARG(value >= SM_CONV_ALGO_AUTO && value <= SM_CONV_ALGO_MEASURED,
                     "sm_backend_set_option: CONV_ALGO takes 0 (auto), 1 (direct), 2 (fft) or "
                     "3 (measured), got %lld",
                     (long long)value);
        if (!honours(be, SM_BACKEND_HONOURS_CONV_ALGO) || !be->ops->set_option) return SM_OK;
        return be->ops->set_option(be->ctx, key, value);
    case SM_BACKEND_OPT_PRECISION:
        SM_CHECK_ARG(value == SM_PRECISION_FP32 || value == SM_PRECISION_BF16,
                     "sm_backend_set_option: PRECISION takes 0 (fp32) or 1 (bf16), got %lld",
                     (long long)value);
        if (!honours(be, SM_BACKEND_HONOURS_PRECISION) || !be->ops->set_option)
            return value == SM_PRECISION_FP32
                       ? SM_OK
                       : sm__fail(SM_ERR_UNSUPPORTED,
                                  "sm_backend_set_option: the %s backend has no bf16 path "
                                  "(cpu-dnnl on a CPU with AVX512_BF16 has one)",
                                  be->ops->name);
        return be->ops->set_option(be->ctx, key, value);
    }
    return sm__fail(SM_ERR_INVALID_ARG, "sm_backend_set_option: unknown option %d", (int)key);
}

SM_API sm_status sm_backend_get_option(const sm_backend *be, sm_backend_option key, int64_t *value)
{
    SM_CHECK_ARG(be && value, "sm_backend_get_option: backend or value is NULL");
    switch (key) {
    case SM_BACKEND_OPT_TF32:
        *value = honours(be, SM_BACKEND_HONOURS_TF32) && be->ops->get_option
                     ? be->ops->get_option(be->ctx, key)
                     : 0; /* what is in force where it means nothing */
        return SM_OK;
    case SM_BACKEND_OPT_CONV_ALGO:
        *value = honours(be, SM_BACKEND_HONOURS_CONV_ALGO) && be->ops->get_option
                     ? be->ops->get_option(be->ctx, key)
                     : SM_CONV_ALGO_DIRECT;
        return SM_OK;
    case SM_BACKEND_OPT_PRECISION:
        *value = honours(be, SM_BACKEND_HONOURS_PRECISION) && be->ops->get_option
                     ? be->ops->get_option(be->ctx, key)
                     : SM_PRECISION_FP32;
        return SM_OK;
    }
    return sm__fail(SM_ERR_INVALID_ARG, "sm_backend_get_option: unknown option %d", (int)key);
}

sm_status sm__be_l1_scores(sm_backend *be, const sm_l1_shape *s, const float *queries,
                           const void *rows, const float *row_qp, const int32_t *row_index,
                           const float *w, float *out)
{
    SM_CHECK_ARG(s->n_queries >= 1 && s->n_rows >= 1 && s->dim >= 1 && s->ld_out >= s->n_rows,
                 "l1_scores: bad shape (%zu queries, %zu rows, %zu dims, ld_out %zu)", s->n_queries,
                 s->n_rows, s->dim, s->ld_out);
    SM_CHECK_ARG(s->dtype >= SM_ROWS_F32 && s->dtype <= SM_ROWS_U8, "l1_scores: row type %d",
                 (int)s->dtype);
    SM_CHECK_ARG(s->dtype != SM_ROWS_U8 || row_qp, "l1_scores: u8 rows need their scales");
    SM_RETURN_IF(!be->ops->l1_scores, SM_ERR_UNSUPPORTED,
                 "the %s backend has no l1_scores op (gallery search)", be->ops->name);
    return be->ops->l1_scores(be->ctx, s, queries, rows, row_qp, row_index, w, out);
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
