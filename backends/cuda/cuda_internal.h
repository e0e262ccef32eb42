/* SPDX-License-Identifier: MIT */
/* Private to the cuda backend: its context, the host callbacks it reports errors through, and
 * the vendor-status converters. Buffers are device memory (cudaMalloc) on device 0. */
#ifndef SM_CUDA_INTERNAL_H
#define SM_CUDA_INTERNAL_H

#include <pthread.h>

#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include <cudnn.h>

#include "backend_plugin.h"

struct conv_plan;

/* A device allocation, kept for reuse after free (cache.c). */
typedef struct smc_block {
    struct smc_block *next;
    void *ptr;
    size_t bytes;
    bool used;
} smc_block;

typedef struct cuda_ctx {
    int device;
    cudaStream_t stream; /* every op runs on it, in submission order */
    cublasHandle_t blas;
    cudnnHandle_t dnn;
    /* cuDNN handles must not be used by two threads at once, and cuBLAS's math mode, the plan
     * cache and `flag` are shared: ops that touch them hold this lock while they enqueue. */
    pthread_mutex_t lock;
    int tf32;                /* SM_BACKEND_OPT_TF32 */
    int conv_algo;           /* SM_BACKEND_OPT_CONV_ALGO: MEASURED runs cudnnFind*, else none */
    int *flag;               /* device int for all_finite */
    struct conv_plan *plans; /* one per conv shape seen, never freed before destroy */
    smc_block *blocks;       /* every allocation, in use or cached (under lock) */
} cuda_ctx;

/* The core's error and log functions (set once by sm_backend_module_entry). */
extern const sm_backend_host *smc_host;

/* Converters: record "<what>: <vendor name> (<vendor text>)" through the host and return the
 * sm_status (SM_ERR_NOMEM for allocation failures, else SM_ERR_DEVICE). */
sm_status smc_cuda_fail(cudaError_t e, const char *what);
sm_status smc_cudnn_fail(cudnnStatus_t e, const char *what);
sm_status smc_cublas_fail(cublasStatus_t e, const char *what);

/* The last message the three converters above recorded on this thread (for a log line where no
 * status can be returned: conv_workspace). */
extern _Thread_local char smc_last_fail[512];

#define SMC_CUDA(call)                                                                             \
    do {                                                                                           \
        cudaError_t smc_e_ = (call);                                                               \
        if (smc_e_ != cudaSuccess) return smc_cuda_fail(smc_e_, #call);                            \
    } while (0)
#define SMC_CUDNN(call)                                                                            \
    do {                                                                                           \
        cudnnStatus_t smc_e_ = (call);                                                             \
        if (smc_e_ != CUDNN_STATUS_SUCCESS) return smc_cudnn_fail(smc_e_, #call);                  \
    } while (0)
#define SMC_CUBLAS(call)                                                                           \
    do {                                                                                           \
        cublasStatus_t smc_e_ = (call);                                                            \
        if (smc_e_ != CUBLAS_STATUS_SUCCESS) return smc_cublas_fail(smc_e_, #call);                \
    } while (0)

/* cache.c: cudaMalloc/cudaFree behind a per-backend cache of freed blocks */
sm_status smc_alloc(cuda_ctx *c, size_t bytes, void **ptr);
void smc_free(cuda_ctx *c, void *ptr);
void smc_cache_release(cuda_ctx *c);

/* conv_cudnn.c */
size_t smc_conv_workspace(void *ctx, const sm_conv_shape *s);
sm_status smc_conv_fwd(void *ctx, const sm_conv_shape *s, const float *x, const float *w,
                       const float *b, float *y, void *ws, size_t ws_bytes);
sm_status smc_conv_bwd_data(void *ctx, const sm_conv_shape *s, const float *dy, const float *w,
                            float *dx, void *ws, size_t ws_bytes);
sm_status smc_conv_bwd_filter(void *ctx, const sm_conv_shape *s, const float *x, const float *dy,
                              float *dw, float *db, void *ws, size_t ws_bytes);
void smc_conv_plans_destroy(cuda_ctx *c);

/* ops.c: cuBLAS GEMM and the kernels of kernels.cu behind the vtable's signatures */
sm_status smc_gemm(void *ctx, bool trans_a, bool trans_b, int m, int n, int k, float alpha,
                   const float *a, int lda, const float *b, int ldb, float beta, float *c, int ldc);
sm_status smc_maxpool_fwd(void *ctx, const sm_pool_shape *s, const float *x, float *y,
                          int32_t *argmax);
sm_status smc_maxpool_bwd(void *ctx, const sm_pool_shape *s, const float *dy, const int32_t *argmax,
                          float *dx);
sm_status smc_groupnorm_fwd(void *ctx, const sm_norm_shape *s, const float *x, const float *gamma,
                            const float *beta, float *y, float *stats);
sm_status smc_groupnorm_bwd(void *ctx, const sm_norm_shape *s, const float *x, const float *dy,
                            const float *gamma, const float *stats, float *dx, float *dgamma,
                            float *dbeta);
sm_status smc_relu_fwd(void *ctx, size_t n, const float *x, float *y);
sm_status smc_relu_bwd(void *ctx, size_t n, const float *y, const float *dy, float *dx);
sm_status smc_sigmoid_fwd(void *ctx, size_t n, const float *x, float *y);
sm_status smc_sigmoid_bwd(void *ctx, size_t n, const float *y, const float *dy, float *dx);
sm_status smc_bias_add(void *ctx, int rows, int cols, const float *bias, float *y);
sm_status smc_bias_grad(void *ctx, int rows, int cols, const float *dy, float *db);
sm_status smc_absdiff_fwd(void *ctx, size_t n, const float *a, const float *b, float *d);
sm_status smc_absdiff_bwd(void *ctx, size_t n, const float *a, const float *b, const float *dd,
                          float *da, float *db);
sm_status smc_l1_scores(void *ctx, const sm_l1_shape *s, const float *queries, const void *rows,
                        const float *row_qp, const int32_t *row_index, const float *w,
                        float *out);
sm_status smc_bce_fwd_bwd(void *ctx, int n, const float *logits, const float *labels, float scale,
                          float *scores, float *loss_sum, float *dlogits);
sm_status smc_adam_update(void *ctx, size_t n, float *p, const float *g, float *m, float *v,
                          float step, float b1, float b2, float eps, float wd);
sm_status smc_all_finite(void *ctx, size_t n, const float *x, bool *finite);

#endif
