/* SPDX-License-Identifier: MIT */
/* Private to the cuda backend: the launchers of its own kernels (kernels.cu), callable from C.
 * Each enqueues on `stream` and returns the launch status (cudaGetLastError), never waits. */
#ifndef SM_CUDA_KERNELS_H
#define SM_CUDA_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include <cuda_runtime_api.h>

#ifdef __cplusplus
extern "C" {
#endif

cudaError_t smk_relu_fwd(cudaStream_t st, size_t n, const float *x, float *y);
cudaError_t smk_relu_bwd(cudaStream_t st, size_t n, const float *y, const float *dy, float *dx);
cudaError_t smk_sigmoid_fwd(cudaStream_t st, size_t n, const float *x, float *y);
cudaError_t smk_sigmoid_bwd(cudaStream_t st, size_t n, const float *y, const float *dy, float *dx);
cudaError_t smk_bias_add(cudaStream_t st, int rows, int cols, const float *bias, float *y);
cudaError_t smk_bias_grad(cudaStream_t st, int rows, int cols, const float *dy, float *db);
cudaError_t smk_absdiff_fwd(cudaStream_t st, size_t n, const float *a, const float *b, float *d);
cudaError_t smk_absdiff_bwd(cudaStream_t st, size_t n, const float *a, const float *b,
                            const float *dd, float *da, float *db);
cudaError_t smk_bce_fwd_bwd(cudaStream_t st, int n, const float *logits, const float *labels,
                            float scale, float *scores, float *loss_sum, float *dlogits);
/* l1_scores (backend_plugin.h) for nq queries against nr rows of dtype (sm_rows_dtype),
 * row_index `idx` or NULL, logits into out (row stride ld); qp: U8 rows' (offset, scale). */
cudaError_t smk_l1_scores(cudaStream_t st, size_t nq, size_t nr, size_t dim, int dtype, size_t ld,
                          const float *q, const void *rows, const float *qp, const int32_t *idx,
                          const float *w, float *out);
/* wd: classic L2 decay (g + wd p); 0 runs the kernel without it. */
cudaError_t smk_adam(cudaStream_t st, size_t n, float *p, const float *g, float *m, float *v,
                     float step, float b1, float b2, float eps, float wd);
/* *flag (device int, zeroed by the caller) becomes 1 if some x[i] is NaN or infinite. */
cudaError_t smk_any_nonfinite(cudaStream_t st, size_t n, const float *x, int *flag);
/* Pooling with window = stride over planes = n * c planes. */
cudaError_t smk_maxpool_fwd(cudaStream_t st, int planes, int h, int w, int size, int oh, int ow,
                            const float *x, float *y, int32_t *argmax);
/* dx must be zeroed by the caller: windows do not overlap, so each output writes one input. */
cudaError_t smk_maxpool_bwd(cudaStream_t st, int planes, int h, int w, int oh, int ow,
                            const float *dy, const int32_t *argmax, float *dx);
/* GroupNorm over n images of c channels of hw pixels in `groups` groups (backend_plugin.h):
 * forward writes y and, per (image, group), mean then rstd into stats; backward_params adds
 * each channel's sums into dgamma and dbeta; backward_data overwrites dx. Each sum is one
 * block's fixed-order reduction (in double), so a run gives the same bits every time. */
cudaError_t smk_groupnorm_fwd(cudaStream_t st, int n, int c, size_t hw, int groups, double eps,
                              const float *x, const float *gamma, const float *beta, float *y,
                              float *stats);
cudaError_t smk_groupnorm_bwd_params(cudaStream_t st, int n, int c, size_t hw, int groups,
                                     const float *x, const float *dy, const float *stats,
                                     float *dgamma, float *dbeta);
cudaError_t smk_groupnorm_bwd_data(cudaStream_t st, int n, int c, size_t hw, int groups,
                                   const float *x, const float *dy, const float *gamma,
                                   const float *stats, float *dx);

#ifdef __cplusplus
}
#endif

#endif
