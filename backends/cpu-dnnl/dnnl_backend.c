/* SPDX-License-Identifier: MIT */
/* The cpu-dnnl backend's entry point, context and vtable. Built as the module
 * libsiamese-dnnl.so, which the core dlopens (lib/backend/backend.c), so libsiamese.so keeps no
 * link-time oneDNN dependency; only sm_backend_module_entry is exported (module.map).
 * Convolutions and the dense GEMM are oneDNN's (its AVX-512 kernels, which the OpenBLAS build
 * here does not use); pooling, GroupNorm, the element-wise ops, the head and Adam are cpu-blas's
 * loops, compiled into this module and run on oneDNN's OpenMP team (parallel_omp.c). Tensors
 * between ops are NCHW (conv_dnnl.c reorders to and from oneDNN's blocked layouts inside each
 * call), so those loops read them as cpu-blas does. One line per slot, so a new slot shows up
 * in review. */
#include <omp.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "../cpu-blas/cpu_internal.h"
#include "dnnl_internal.h"

static sm_status be_probe(void)
{
    if (!smd_host || smd_host->abi_version != SM_BACKEND_ABI_VERSION) return SM_ERR_VERSION;
    dnnl_engine_t e;
    dnnl_status_t st = dnnl_engine_create(&e, dnnl_cpu, 0);
    if (st != dnnl_success)
        return smd_host->fail(SM_ERR_BACKEND_UNAVAILABLE,
                              "cpu-dnnl backend: oneDNN cannot create a CPU engine (status %d)",
                              (int)st);
    dnnl_engine_destroy(e);
    return SM_OK;
}

static sm_status be_init(void **ctx)
{
    dnnl_ctx *c = calloc(1, sizeof *c);
    if (!c) return smd_host->fail(SM_ERR_NOMEM, "out of memory creating the cpu-dnnl backend");
    dnnl_status_t st = dnnl_engine_create(&c->engine, dnnl_cpu, 0);
    if (st != dnnl_success) {
        free(c);
        return smd_fail(st, "creating the CPU engine");
    }
    pthread_mutex_init(&c->lock, NULL);
    *ctx = c;
    return SM_OK;
}

static void be_destroy(void *ctx)
{
    dnnl_ctx *c = ctx;
    smd_plans_destroy(c);
    smd_fft_plans_destroy(c);
    for (int i = 0; i < SMD_CACHE_SLOTS; i++) free(c->cache[i].ptr);
    dnnl_engine_destroy(c->engine);
    pthread_mutex_destroy(&c->lock);
    free(c);
}

static sm_status be_set_threads(void *ctx, int threads)
{
    (void)ctx;
    smd_set_threads(threads);
    return SM_OK;
}

static int be_get_threads(void *ctx)
{
    (void)ctx;
    return smd_threads();
}

static sm_status be_set_option(void *ctx, sm_backend_option key, int64_t value)
{
    dnnl_ctx *c = ctx;
    if (key == SM_BACKEND_OPT_CONV_ALGO) c->conv_algo = (int)value;
    if (key == SM_BACKEND_OPT_PRECISION) {
        if (value == SM_PRECISION_BF16 && !smd_bf16_supported())
            return smd_host->fail(SM_ERR_UNSUPPORTED,
                                  "cpu-dnnl backend: bf16 needs a CPU with AVX512_BF16 (or "
                                  "AMX), which this one lacks; oneDNN would emulate it slowly");
        c->precision = (int)value;
    }
    return SM_OK;
}

static int64_t be_get_option(void *ctx, sm_backend_option key)
{
    const dnnl_ctx *c = ctx;
    return key == SM_BACKEND_OPT_CONV_ALGO   ? c->conv_algo
           : key == SM_BACKEND_OPT_PRECISION ? c->precision
                                             : 0;
}

/* Every buffer starts 64 bytes after its block, whose first word is the block's size. */
enum { HEADER = 64 };
#define CACHE_MIN ((size_t)1 << 20)

static sm_status be_alloc(void *ctx, size_t bytes, void **ptr)
{
    dnnl_ctx *c = ctx;
    /* aligned_alloc wants a non-zero multiple of the alignment */
    size_t rounded = (bytes + 63) / 64 * 64 + HEADER;
    if (rounded < bytes) return smd_host->fail(SM_ERR_NOMEM, "%zu bytes is too large", bytes);
    char *block = NULL;
    if (rounded >= CACHE_MIN) {
        /* the smallest cached block that fits without wasting more than the request */
        pthread_mutex_lock(&c->lock);
        int best = -1;
        for (int i = 0; i < SMD_CACHE_SLOTS; i++)
            if (c->cache[i].ptr && c->cache[i].bytes >= rounded &&
                c->cache[i].bytes / 2 <= rounded &&
                (best < 0 || c->cache[i].bytes < c->cache[best].bytes))
                best = i;
        if (best >= 0) {
            block = c->cache[best].ptr;
            c->cache[best].ptr = NULL;
        }
        pthread_mutex_unlock(&c->lock);
    }
    if (!block) {
        block = aligned_alloc(64, rounded);
        if (!block)
            return smd_host->fail(SM_ERR_NOMEM, "out of memory allocating %zu bytes", bytes);
        memcpy(block, &rounded, sizeof rounded);
    }
    *ptr = block + HEADER;
    return SM_OK;
}

static void be_free(void *ctx, void *ptr)
{
    dnnl_ctx *c = ctx;
    if (!ptr) return;
    char *block = (char *)ptr - HEADER;
    size_t bytes;
    memcpy(&bytes, block, sizeof bytes);
    if (bytes >= CACHE_MIN) {
        pthread_mutex_lock(&c->lock);
        for (int i = 0; i < SMD_CACHE_SLOTS && block; i++)
            if (!c->cache[i].ptr) {
                c->cache[i] = (smd_block){block, bytes};
                block = NULL;
            }
        pthread_mutex_unlock(&c->lock);
    }
    free(block);
}

static sm_status be_copy(void *ctx, void *dst, const void *src, size_t bytes)
{
    (void)smd_ws_touch(ctx); /* dst may be a workspace */
    if (bytes) memmove(dst, src, bytes);
    return SM_OK;
}

static sm_status be_zero(void *ctx, void *dst, size_t bytes)
{
    (void)smd_ws_touch(ctx); /* dst may be a workspace */
    if (bytes) memset(dst, 0, bytes);
    return SM_OK;
}

/* oneDNN's sgemm is row-major, like the slot */
static sm_status be_gemm(void *ctx, bool trans_a, bool trans_b, int m, int n, int k, float alpha,
                         const float *a, int lda, const float *b, int ldb, float beta, float *c,
                         int ldc)
{
    (void)ctx;
    omp_set_num_threads(smd_threads());
    dnnl_status_t st = dnnl_sgemm(trans_a ? 'T' : 'N', trans_b ? 'T' : 'N', m, n, k, alpha, a, lda,
                                  b, ldb, beta, c, ldc);
    return st == dnnl_success ? SM_OK : smd_fail(st, "sgemm");
}

static const sm_backend_ops be_ops = {
    .abi_version = SM_BACKEND_ABI_VERSION,
    .name = "cpu-dnnl",
    .kind = SM_BACKEND_CPU_DNNL,
    /* chunk sizes: the dispatch defaults (16 pairs, 64 images), measured on this backend */
    .props = {.honours = SM_BACKEND_HONOURS_THREADS | SM_BACKEND_HONOURS_CONV_ALGO |
                         SM_BACKEND_HONOURS_PRECISION,
              .host_memory = 1},
    .probe = be_probe,
    .init = be_init,
    .destroy = be_destroy,
    .set_threads = be_set_threads,
    .get_threads = be_get_threads,
    .set_option = be_set_option, /* TF32, a GPU number format, is not honoured */
    .get_option = be_get_option,
    .alloc = be_alloc,
    .free = be_free,
    .upload = be_copy,   /* host memory: a copy */
    .download = be_copy, /* host memory: a copy */
    .zero = be_zero,
    .conv_workspace = smd_conv_workspace,
    .conv_fwd = smd_conv_fwd,
    .conv_bwd_data = smd_conv_bwd_data,
    .conv_bwd_filter = smd_conv_bwd_filter,
    .maxpool_fwd = sm__cpu_maxpool_fwd, /* cpu-blas's loops, from here on */
    .maxpool_bwd = sm__cpu_maxpool_bwd,
    .groupnorm_fwd = sm__cpu_groupnorm_fwd,
    .groupnorm_bwd = sm__cpu_groupnorm_bwd,
    .relu_fwd = sm__cpu_relu_fwd,
    .relu_bwd = sm__cpu_relu_bwd,
    .sigmoid_fwd = sm__cpu_sigmoid_fwd,
    .sigmoid_bwd = sm__cpu_sigmoid_bwd,
    .gemm = be_gemm,
    .bias_add = sm__cpu_bias_add,
    .bias_grad = sm__cpu_bias_grad,
    .absdiff_fwd = sm__cpu_absdiff_fwd,
    .absdiff_bwd = sm__cpu_absdiff_bwd,
    .l1_scores = sm__cpu_l1_scores, /* cpu-blas's loop: the same bits */
    .bce_fwd_bwd = sm__cpu_bce_fwd_bwd,
    .adam_update = sm__cpu_adam_update,
    .all_finite = sm__cpu_all_finite,
};

__attribute__((visibility("default"))) const sm_backend_ops *
sm_backend_module_entry(const sm_backend_host *host);

/* Does not read `host`: a core of another ABI may pass something else. The loader compares our
 * abi_version and refuses us; probe checks the host's before it is ever called. */
const sm_backend_ops *sm_backend_module_entry(const sm_backend_host *host)
{
    smd_host = host;
    smd_threads_init();
    return &be_ops;
}
