/* SPDX-License-Identifier: MIT */
/* The dense GEMM slot and every product cpu-blas makes: OpenBLAS, row-major, on the backend's
 * own threads. One owner of the threads per call: OpenBLAS's workers, left to themselves, spin
 * in sched_yield for a while after each product, while the threads of our loops (im2col, bias,
 * ReLU, ...) want the same cores; on a loaded machine that fight took most of a step. So a
 * product is cut into blocks of C's rows or columns, one per backend thread, each a
 * single-threaded OpenBLAS call. Each element of C is still one call's sum over the whole of k,
 * in OpenBLAS's order, so the bits do not depend on the thread count. */
#include <cblas.h>
#include <pthread.h>

#include "cpu_internal.h"
#include "parallel.h"

/* OpenBLAS's thread count is process-wide: the lock keeps two regions that set it to one from
 * interleaving their changes, and the caller's count is restored after. */
static pthread_mutex_t openblas_threads_lock = PTHREAD_MUTEX_INITIALIZER;

int sm__cpu_blas_serial_begin(void)
{
    pthread_mutex_lock(&openblas_threads_lock);
    int before = openblas_get_num_threads();
    if (before != 1) openblas_set_num_threads(1);
    return before;
}

void sm__cpu_blas_serial_end(int before)
{
    if (before != 1) openblas_set_num_threads(before);
    pthread_mutex_unlock(&openblas_threads_lock);
}

int sm__cpu_threads(const void *ctx)
{
    const cpu_ctx *c = ctx;
    int t = c && c->threads > 0 ? c->threads : openblas_get_num_threads();
    return t < 1 ? 1 : t;
}

typedef struct gemm_job {
    CBLAS_TRANSPOSE ta, tb;
    int m, n, k, lda, ldb, ldc, by_rows, block;
    float alpha, beta;
    const float *a, *b;
    float *c;
} gemm_job;

/* A product is cut into at most BLOCKS blocks of a multiple of ALIGN rows or columns. The cut
 * depends on the shape only, never on the thread count: OpenBLAS picks its kernel by the size
 * of each call (small products take other kernels, which sum in another order), so the same
 * blocks must be the same calls at 1 thread as at 3. 12 blocks share evenly among 1, 2, 3, 4
 * and 6 threads. */
enum { BLOCKS = 12, ALIGN = 16, MIN_BLOCK = 32 };

static int block_of(int extent)
{
    int b = (extent + BLOCKS - 1) / BLOCKS;
    b = (b + ALIGN - 1) / ALIGN * ALIGN;
    return b < MIN_BLOCK ? MIN_BLOCK : b;
}

static void gemm_blocks(void *p, size_t begin, size_t end)
{
    const gemm_job *j = p;
    for (size_t i = begin; i < end; i++) {
        int lo = (int)i * j->block, hi = lo + j->block;
        if (j->by_rows) {
            if (hi > j->m) hi = j->m;
            const float *a = j->a + (j->ta == CblasNoTrans ? (size_t)lo * j->lda : (size_t)lo);
            cblas_sgemm(CblasRowMajor, j->ta, j->tb, hi - lo, j->n, j->k, j->alpha, a, j->lda, j->b,
                        j->ldb, j->beta, j->c + (size_t)lo * j->ldc, j->ldc);
        } else {
            if (hi > j->n) hi = j->n;
            const float *b = j->b + (j->tb == CblasNoTrans ? (size_t)lo : (size_t)lo * j->ldb);
            cblas_sgemm(CblasRowMajor, j->ta, j->tb, j->m, hi - lo, j->k, j->alpha, j->a, j->lda, b,
                        j->ldb, j->beta, j->c + lo, j->ldc);
        }
    }
}

void sm__cpu_sgemm(const void *ctx, bool trans_a, bool trans_b, int m, int n, int k, float alpha,
                   const float *a, int lda, const float *b, int ldb, float beta, float *c, int ldc)
{
    gemm_job j = {.ta = trans_a ? CblasTrans : CblasNoTrans,
                  .tb = trans_b ? CblasTrans : CblasNoTrans,
                  .m = m,
                  .n = n,
                  .k = k,
                  .lda = lda,
                  .ldb = ldb,
                  .ldc = ldc,
                  .by_rows = m >= n,
                  .alpha = alpha,
                  .beta = beta,
                  .a = a,
                  .b = b,
                  .c = c};
    int extent = j.by_rows ? m : n;
    /* below about a million multiply-adds a cut costs more than it saves: one block */
    j.block = (double)m * n * k < 1e6 ? extent : block_of(extent);
    if (j.block < 1) j.block = 1;
    size_t blocks = (size_t)((extent + j.block - 1) / j.block);
    int before = sm__cpu_blas_serial_begin();
    sm__cpu_parallel_for_threads((size_t)sm__cpu_threads(ctx), blocks, 1, gemm_blocks, &j);
    sm__cpu_blas_serial_end(before);
}

sm_status sm__cpu_gemm(void *ctx, bool trans_a, bool trans_b, int m, int n, int k, float alpha,
                       const float *a, int lda, const float *b, int ldb, float beta, float *c,
                       int ldc)
{
    sm__cpu_sgemm(ctx, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    return SM_OK;
}
