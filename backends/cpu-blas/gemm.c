/* SPDX-License-Identifier: MIT */
/* The dense GEMM slot: OpenBLAS, row-major. */
#include <cblas.h>

#include "cpu_internal.h"

sm_status sm__cpu_gemm(void *ctx, bool trans_a, bool trans_b, int m, int n, int k, float alpha,
                       const float *a, int lda, const float *b, int ldb, float beta, float *c,
                       int ldc)
{
    (void)ctx;
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
                trans_b ? CblasTrans : CblasNoTrans, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    return SM_OK;
}
