/* SPDX-License-Identifier: MIT */
/* The cpu-blas backend's vtable: OpenBLAS for every GEMM, the library's own loops for the rest.
 * One line per slot, so a new slot shows up in review (ggml-blas). */
#include <cblas.h>
#include <string.h>

#include "backend/backend.h" /* linked into the core: sm__cpu_blas_ops is declared there */
#include "common/alloc.h"
#include "common/error.h"
#include "cpu_internal.h"

static sm_status cpu_probe(void) { return SM_OK; }

static sm_status cpu_init(void **ctx)
{
    cpu_ctx *c = sm__calloc(1, sizeof *c);
    if (!c) return sm__fail(SM_ERR_NOMEM, "out of memory creating the cpu-blas backend");
    *ctx = c;
    return SM_OK;
}

static void cpu_destroy(void *ctx) { sm__free(ctx); }

static sm_status cpu_set_threads(void *ctx, int threads)
{
    cpu_ctx *c = ctx;
    c->threads = threads;
    /* OpenBLAS's thread count is process-wide; 0 asks for its default (all cores) */
    openblas_set_num_threads(threads > 0 ? threads : openblas_get_num_procs());
    return SM_OK;
}

static int cpu_get_threads(void *ctx)
{
    (void)ctx;
    return openblas_get_num_threads();
}

static sm_status cpu_alloc(void *ctx, size_t bytes, void **ptr)
{
    (void)ctx;
    void *p = sm__malloc_aligned(bytes);
    if (!p) return sm__fail(SM_ERR_NOMEM, "out of memory allocating %zu bytes", bytes);
    *ptr = p;
    return SM_OK;
}

static void cpu_free(void *ctx, void *ptr)
{
    (void)ctx;
    sm__free_aligned(ptr);
}

static sm_status cpu_copy(void *ctx, void *dst, const void *src, size_t bytes)
{
    (void)ctx;
    if (bytes) memmove(dst, src, bytes);
    return SM_OK;
}

static sm_status cpu_zero(void *ctx, void *dst, size_t bytes)
{
    (void)ctx;
    if (bytes) memset(dst, 0, bytes);
    return SM_OK;
}

static const sm_backend_ops cpu_blas_ops = {
    .abi_version = SM_BACKEND_ABI_VERSION,
    .name = "cpu-blas",
    .kind = SM_BACKEND_CPU,
    /* chunk sizes: the dispatch defaults (16 pairs, 64 images), measured on this backend */
    .props = {.honours = SM_BACKEND_HONOURS_THREADS, .host_memory = 1},
    .probe = cpu_probe,
    .init = cpu_init,
    .destroy = cpu_destroy,
    .set_threads = cpu_set_threads,
    .get_threads = cpu_get_threads,
    .set_option = NULL, /* TF32 is a GPU number format */
    .get_option = NULL,
    .alloc = cpu_alloc,
    .free = cpu_free,
    .upload = cpu_copy,   /* host memory: a copy */
    .download = cpu_copy, /* host memory: a copy */
    .zero = cpu_zero,
    .conv_workspace = sm__cpu_conv_workspace,
    .conv_fwd = sm__cpu_conv_fwd,
    .conv_bwd_data = sm__cpu_conv_bwd_data,
    .conv_bwd_filter = sm__cpu_conv_bwd_filter,
    .maxpool_fwd = sm__cpu_maxpool_fwd,
    .maxpool_bwd = sm__cpu_maxpool_bwd,
    .groupnorm_fwd = sm__cpu_groupnorm_fwd,
    .groupnorm_bwd = sm__cpu_groupnorm_bwd,
    .relu_fwd = sm__cpu_relu_fwd,
    .relu_bwd = sm__cpu_relu_bwd,
    .sigmoid_fwd = sm__cpu_sigmoid_fwd,
    .sigmoid_bwd = sm__cpu_sigmoid_bwd,
    .gemm = sm__cpu_gemm,
    .bias_add = sm__cpu_bias_add,
    .bias_grad = sm__cpu_bias_grad,
    .absdiff_fwd = sm__cpu_absdiff_fwd,
    .absdiff_bwd = sm__cpu_absdiff_bwd,
    .l1_scores = sm__cpu_l1_scores, /* l1_scores.c: AVX-512, AVX2 or C, the same bits */
    .bce_fwd_bwd = sm__cpu_bce_fwd_bwd,
    .adam_update = sm__cpu_adam_update,
    .all_finite = sm__cpu_all_finite,
};

const sm_backend_ops *sm__cpu_blas_ops(void) { return &cpu_blas_ops; }
