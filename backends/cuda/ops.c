/* SPDX-License-Identifier: MIT */
/* The vtable's dense and element-wise ops: GEMM on cuBLAS, the rest on kernels.cu. */
#include "cuda_internal.h"
#include "kernels.h"

#define SMC_LAUNCH(call, what)                                                                     \
    do {                                                                                           \
        cudaError_t smc_l_ = (call);                                                               \
        return smc_l_ == cudaSuccess ? SM_OK : smc_cuda_fail(smc_l_, what);                        \
    } while (0)

/* The vtable is row-major; cuBLAS is column-major. A row-major matrix is its transpose in
 * column-major with the same leading dimension, so C = op(A) op(B) is computed as
 * C^T = op(B)^T op(A)^T: swap the operands (and m with n), keep each one's transpose flag
 * (darknet's gemm_gpu does the same). */
sm_status smc_gemm(void *ctx, bool trans_a, bool trans_b, int m, int n, int k, float alpha,
                   const float *a, int lda, const float *b, int ldb, float beta, float *c, int ldc)
{
    cuda_ctx *cx = ctx;
    if (m == 0 || n == 0) return SM_OK;
    pthread_mutex_lock(&cx->lock); /* the math mode may change under a concurrent set_option */
    cublasStatus_t e = cublasSgemm(cx->blas, trans_b ? CUBLAS_OP_T : CUBLAS_OP_N,
                                   trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, n, m, k, &alpha, b, ldb, a,
                                   lda, &beta, c, ldc);
    pthread_mutex_unlock(&cx->lock);
    return e == CUBLAS_STATUS_SUCCESS ? SM_OK : smc_cublas_fail(e, "cublasSgemm");
}

sm_status smc_maxpool_fwd(void *ctx, const sm_pool_shape *s, const float *x, float *y,
                          int32_t *argmax)
{
    cuda_ctx *c = ctx;
    SMC_LAUNCH(
        smk_maxpool_fwd(c->stream, s->n * s->c, s->h, s->w, s->size, s->oh, s->ow, x, y, argmax),
        "maxpool forward kernel");
}

sm_status smc_maxpool_bwd(void *ctx, const sm_pool_shape *s, const float *dy, const int32_t *argmax,
                          float *dx)
{
    cuda_ctx *c = ctx;
    size_t bytes = (size_t)s->n * s->c * s->h * s->w * sizeof(float);
    SMC_CUDA(cudaMemsetAsync(dx, 0, bytes, c->stream));
    SMC_LAUNCH(smk_maxpool_bwd(c->stream, s->n * s->c, s->h, s->w, s->oh, s->ow, dy, argmax, dx),
               "maxpool backward kernel");
}

sm_status smc_groupnorm_fwd(void *ctx, const sm_norm_shape *s, const float *x, const float *gamma,
                            const float *beta, float *y, float *stats)
{
    cuda_ctx *c = ctx;
    SMC_LAUNCH(smk_groupnorm_fwd(c->stream, s->n, s->c, (size_t)s->h * s->w, s->groups, s->eps, x,
                                 gamma, beta, y, stats),
               "groupnorm forward kernel");
}

/* The parameter gradients first (they read dy, which d(input) leaves alone), then d(input). */
sm_status smc_groupnorm_bwd(void *ctx, const sm_norm_shape *s, const float *x, const float *dy,
                            const float *gamma, const float *stats, float *dx, float *dgamma,
                            float *dbeta)
{
    cuda_ctx *c = ctx;
    const size_t hw = (size_t)s->h * s->w;
    cudaError_t e =
        smk_groupnorm_bwd_params(c->stream, s->n, s->c, hw, s->groups, x, dy, stats, dgamma, dbeta);
    if (e != cudaSuccess) return smc_cuda_fail(e, "groupnorm parameter-gradient kernel");
    if (!dx) return SM_OK;
    SMC_LAUNCH(
        smk_groupnorm_bwd_data(c->stream, s->n, s->c, hw, s->groups, x, dy, gamma, stats, dx),
        "groupnorm backward kernel");
}

sm_status smc_relu_fwd(void *ctx, size_t n, const float *x, float *y)
{
    SMC_LAUNCH(smk_relu_fwd(((cuda_ctx *)ctx)->stream, n, x, y), "relu forward kernel");
}

sm_status smc_relu_bwd(void *ctx, size_t n, const float *y, const float *dy, float *dx)
{
    SMC_LAUNCH(smk_relu_bwd(((cuda_ctx *)ctx)->stream, n, y, dy, dx), "relu backward kernel");
}

sm_status smc_sigmoid_fwd(void *ctx, size_t n, const float *x, float *y)
{
    SMC_LAUNCH(smk_sigmoid_fwd(((cuda_ctx *)ctx)->stream, n, x, y), "sigmoid forward kernel");
}

sm_status smc_sigmoid_bwd(void *ctx, size_t n, const float *y, const float *dy, float *dx)
{
    SMC_LAUNCH(smk_sigmoid_bwd(((cuda_ctx *)ctx)->stream, n, y, dy, dx), "sigmoid backward kernel");
}

sm_status smc_bias_add(void *ctx, int rows, int cols, const float *bias, float *y)
{
    SMC_LAUNCH(smk_bias_add(((cuda_ctx *)ctx)->stream, rows, cols, bias, y), "bias_add kernel");
}

sm_status smc_bias_grad(void *ctx, int rows, int cols, const float *dy, float *db)
{
    SMC_LAUNCH(smk_bias_grad(((cuda_ctx *)ctx)->stream, rows, cols, dy, db), "bias_grad kernel");
}

sm_status smc_absdiff_fwd(void *ctx, size_t n, const float *a, const float *b, float *d)
{
    SMC_LAUNCH(smk_absdiff_fwd(((cuda_ctx *)ctx)->stream, n, a, b, d), "absdiff forward kernel");
}

sm_status smc_absdiff_bwd(void *ctx, size_t n, const float *a, const float *b, const float *dd,
                          float *da, float *db)
{
    SMC_LAUNCH(smk_absdiff_bwd(((cuda_ctx *)ctx)->stream, n, a, b, dd, da, db),
               "absdiff backward kernel");
}

sm_status smc_l1_scores(void *ctx, const sm_l1_shape *s, const float *queries, const void *rows,
                        const float *row_qp, const int32_t *row_index, const float *w, float *out)
{
    SMC_LAUNCH(smk_l1_scores(((cuda_ctx *)ctx)->stream, s->n_queries, s->n_rows, s->dim,
                             (int)s->dtype, s->ld_out, queries, rows,
                             s->dtype == SM_ROWS_U8 ? row_qp : NULL, row_index, w, out),
               "l1_scores kernel");
}

sm_status smc_bce_fwd_bwd(void *ctx, int n, const float *logits, const float *labels, float scale,
                          float *scores, float *loss_sum, float *dlogits)
{
    SMC_LAUNCH(smk_bce_fwd_bwd(((cuda_ctx *)ctx)->stream, n, logits, labels, scale, scores,
                               loss_sum, dlogits),
               "clipped BCE kernel");
}

sm_status smc_adam_update(void *ctx, size_t n, float *p, const float *g, float *m, float *v,
                          float step, float b1, float b2, float eps, float wd)
{
    SMC_LAUNCH(smk_adam(((cuda_ctx *)ctx)->stream, n, p, g, m, v, step, b1, b2, eps, wd),
               "Adam kernel");
}

/* The flag is the context's: the lock keeps two threads from zeroing and reading it across
 * each other. */
sm_status smc_all_finite(void *ctx, size_t n, const float *x, bool *finite)
{
    cuda_ctx *c = ctx;
    int bad = 0;
    pthread_mutex_lock(&c->lock);
    cudaError_t e = cudaMemsetAsync(c->flag, 0, sizeof *c->flag, c->stream);
    const char *what = "cudaMemsetAsync";
    if (e == cudaSuccess) {
        e = smk_any_nonfinite(c->stream, n, x, c->flag);
        what = "finite-check kernel";
    }
    if (e == cudaSuccess) {
        e = cudaMemcpyAsync(&bad, c->flag, sizeof bad, cudaMemcpyDeviceToHost, c->stream);
        what = "cudaMemcpyAsync";
    }
    if (e == cudaSuccess) {
        e = cudaStreamSynchronize(c->stream);
        what = "cudaStreamSynchronize";
    }
    pthread_mutex_unlock(&c->lock);
    if (e != cudaSuccess) return smc_cuda_fail(e, what);
    *finite = bad == 0;
    return SM_OK;
}
