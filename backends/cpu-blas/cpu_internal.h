/* SPDX-License-Identifier: MIT */
/* Private to the cpu-blas backend: its context and the op functions its vtable points to.
 * Buffers are plain host memory. */
#ifndef SM_CPU_BLAS_INTERNAL_H
#define SM_CPU_BLAS_INTERNAL_H

#include "backend_plugin.h"

typedef struct cpu_ctx {
    int threads; /* 0 = all cores */
} cpu_ctx;

size_t sm__cpu_conv_workspace(void *ctx, const sm_conv_shape *s);
/* Images per SGEMM that conv.c uses for this shape (tests/bench_cpu.c times those products). */
int sm__cpu_conv_group(const sm_conv_shape *s);
sm_status sm__cpu_conv_fwd(void *ctx, const sm_conv_shape *s, const float *x, const float *w,
                           const float *b, float *y, void *ws, size_t ws_bytes);
sm_status sm__cpu_conv_bwd_data(void *ctx, const sm_conv_shape *s, const float *dy, const float *w,
                                float *dx, void *ws, size_t ws_bytes);
sm_status sm__cpu_conv_bwd_filter(void *ctx, const sm_conv_shape *s, const float *x,
                                  const float *dy, float *dw, float *db, void *ws, size_t ws_bytes);

sm_status sm__cpu_maxpool_fwd(void *ctx, const sm_pool_shape *s, const float *x, float *y,
                              int32_t *argmax);
sm_status sm__cpu_maxpool_bwd(void *ctx, const sm_pool_shape *s, const float *dy,
                              const int32_t *argmax, float *dx);

sm_status sm__cpu_groupnorm_fwd(void *ctx, const sm_norm_shape *s, const float *x,
                                const float *gamma, const float *beta, float *y, float *stats);
sm_status sm__cpu_groupnorm_bwd(void *ctx, const sm_norm_shape *s, const float *x, const float *dy,
                                const float *gamma, const float *stats, float *dx, float *dgamma,
                                float *dbeta);

sm_status sm__cpu_relu_fwd(void *ctx, size_t n, const float *x, float *y);
sm_status sm__cpu_relu_bwd(void *ctx, size_t n, const float *y, const float *dy, float *dx);
sm_status sm__cpu_sigmoid_fwd(void *ctx, size_t n, const float *x, float *y);
sm_status sm__cpu_sigmoid_bwd(void *ctx, size_t n, const float *y, const float *dy, float *dx);
sm_status sm__cpu_gemm(void *ctx, bool trans_a, bool trans_b, int m, int n, int k, float alpha,
                       const float *a, int lda, const float *b, int ldb, float beta, float *c,
                       int ldc);
/* Every product of cpu-blas (gemm.c): on the backend's threads, OpenBLAS at one thread. */
void sm__cpu_sgemm(const void *ctx, bool trans_a, bool trans_b, int m, int n, int k, float alpha,
                   const float *a, int lda, const float *b, int ldb, float beta, float *c, int ldc);
/* The backend's thread count (its setting, else OpenBLAS's). */
int sm__cpu_threads(const void *ctx);
/* OpenBLAS at one thread from begin to end (process-wide, under a lock); end restores the count
 * begin returned. */
int sm__cpu_blas_serial_begin(void);
void sm__cpu_blas_serial_end(int before);
sm_status sm__cpu_bias_add(void *ctx, int rows, int cols, const float *bias, float *y);
sm_status sm__cpu_bias_grad(void *ctx, int rows, int cols, const float *dy, float *db);
sm_status sm__cpu_adam_update(void *ctx, size_t n, float *p, const float *g, float *m, float *v,
                              float step, float b1, float b2, float eps, float wd);
sm_status sm__cpu_all_finite(void *ctx, size_t n, const float *x, bool *finite);

sm_status sm__cpu_absdiff_fwd(void *ctx, size_t n, const float *a, const float *b, float *d);
sm_status sm__cpu_absdiff_bwd(void *ctx, size_t n, const float *a, const float *b, const float *dd,
                              float *da, float *db);
/* The l1_scores slot (l1_scores.c), and the instruction set it runs on here: the best of
 * SM__L1_ISA_* the CPU has, or a lower one named by SIAMESE_L1_ISA (c, avx2, avx512). */
sm_status sm__cpu_l1_scores(void *ctx, const sm_l1_shape *s, const float *queries,
                            const void *rows, const float *row_qp, const int32_t *row_index,
                            const float *w, float *out);
enum { SM__L1_ISA_C = 0, SM__L1_ISA_AVX2 = 1, SM__L1_ISA_AVX512 = 2 };
int sm__cpu_l1_isa(void);

sm_status sm__cpu_bce_fwd_bwd(void *ctx, int n, const float *logits, const float *labels,
                              float scale, float *scores, float *loss_sum, float *dlogits);

#endif
