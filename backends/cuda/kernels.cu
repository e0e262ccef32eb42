/* SPDX-License-Identifier: MIT */
// The cuda backend's own kernels: what neither cuDNN nor cuBLAS offers in the exact form the
// vtable specifies (backends/cpu-blas is the reference for every formula here). Plain float
// arithmetic, no fast-math intrinsics, so results track the CPU to rounding. One file, so that
// nvcc (slow) runs once per build.
#include <cfloat>
#include <cstdint>

#include <cuda_fp16.h>

#include "kernels.h"

namespace
{

constexpr int kThreads = 256;
// Grid-stride loops: enough blocks to fill an H200 (132 SMs) many times over, bounded so a
// huge n never asks for an invalid grid.
constexpr size_t kMaxBlocks = 8192;

unsigned blocks_for(size_t n)
{
    size_t b = (n + kThreads - 1) / kThreads;
    if (b < 1) b = 1;
    return (unsigned)(b < kMaxBlocks ? b : kMaxBlocks);
}

__device__ size_t first_index() { return (size_t)blockIdx.x * blockDim.x + threadIdx.x; }
__device__ size_t grid_stride() { return (size_t)gridDim.x * blockDim.x; }

__global__ void relu_fwd(size_t n, const float *x, float *y)
{
    for (size_t i = first_index(); i < n; i += grid_stride()) y[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

__global__ void relu_bwd(size_t n, const float *y, const float *dy, float *dx)
{
    for (size_t i = first_index(); i < n; i += grid_stride()) dx[i] = y[i] > 0.0f ? dy[i] : 0.0f;
}

// exp of a non-positive argument only, so neither branch overflows (as the CPU's).
__device__ float sigmoid_stable(float x)
{
    if (x >= 0.0f) return 1.0f / (1.0f + expf(-x));
    float e = expf(x);
    return e / (1.0f + e);
}

__global__ void sigmoid_fwd(size_t n, const float *x, float *y)
{
    for (size_t i = first_index(); i < n; i += grid_stride()) y[i] = sigmoid_stable(x[i]);
}

__global__ void sigmoid_bwd(size_t n, const float *y, const float *dy, float *dx)
{
    for (size_t i = first_index(); i < n; i += grid_stride()) dx[i] = dy[i] * y[i] * (1.0f - y[i]);
}

__global__ void bias_add(size_t total, int cols, const float *bias, float *y)
{
    for (size_t i = first_index(); i < total; i += grid_stride()) y[i] += bias[i % (size_t)cols];
}

// One thread per column walks the rows in order: deterministic, and adjacent threads read
// adjacent addresses.
__global__ void bias_grad(int rows, int cols, const float *dy, float *db)
{
    for (size_t c = first_index(); c < (size_t)cols; c += grid_stride()) {
        float acc = 0.0f;
        for (int r = 0; r < rows; r++) acc += dy[(size_t)r * cols + c];
        db[c] += acc;
    }
}

__global__ void absdiff_fwd(size_t n, const float *a, const float *b, float *d)
{
    for (size_t i = first_index(); i < n; i += grid_stride()) d[i] = fabsf(a[i] - b[i]);
}

__global__ void absdiff_bwd(size_t n, const float *a, const float *b, const float *dd, float *da,
                            float *db)
{
    for (size_t i = first_index(); i < n; i += grid_stride()) {
        float diff = a[i] - b[i];
        // sign(0) = 0, as torch.abs's gradient
        float g = diff > 0.0f ? dd[i] : (diff < 0.0f ? -dd[i] : 0.0f);
        da[i] = g;
        db[i] = -g;
    }
}

// One block: each thread sums a fixed strided subset in double, then a fixed tree combines
// them, so the loss is the same bits on every run (no atomics). n is a micro-batch (<= 65536).
__global__ void bce_fwd_bwd(int n, const float *logits, const float *labels, float scale,
                            float *scores, float *loss_sum, float *dlogits)
{
    __shared__ double part[kThreads];
    const float eps = FLT_EPSILON, hi = 1.0f - FLT_EPSILON;
    double sum = 0.0;
    for (int i = (int)threadIdx.x; i < n; i += kThreads) {
        float z = logits[i];
        float s = sigmoid_stable(z);
        float c = s < eps ? eps : (s > hi ? hi : s);
        float y = labels[i];
        scores[i] = c;
        sum += -((double)y * log((double)c) + (1.0 - (double)y) * log(1.0 - (double)c));
        // d/dz of BCE(sigmoid(z)) is s - y; the clip passes no gradient where it is active
        if (dlogits) dlogits[i] = (s < eps || s > hi) ? 0.0f : scale * (s - y);
    }
    part[threadIdx.x] = sum;
    __syncthreads();
    for (int half = kThreads / 2; half > 0; half /= 2) {
        if ((int)threadIdx.x < half) part[threadIdx.x] += part[threadIdx.x + half];
        __syncthreads();
    }
    if (threadIdx.x == 0) loss_sum[0] = (float)part[0];
}

__global__ void adam(size_t n, float *p, const float *g, float *m, float *v, float step, float b1,
                     float b2, float eps)
{
    for (size_t i = first_index(); i < n; i += grid_stride()) {
        float gi = g[i];
        float mi = b1 * m[i] + (1.0f - b1) * gi;
        float vi = b2 * v[i] + (1.0f - b2) * gi * gi;
        m[i] = mi;
        v[i] = vi;
        p[i] -= step * mi / (sqrtf(vi) + eps);
    }
}

// The same with classic L2 decay, g + wd p; a kernel of its own so that the one without decay
// stays bit for bit as it was.
__global__ void adam_decay(size_t n, float *p, const float *g, float *m, float *v, float step,
                           float b1, float b2, float eps, float wd)
{
    for (size_t i = first_index(); i < n; i += grid_stride()) {
        float pi = p[i];
        float gi = g[i] + wd * pi;
        float mi = b1 * m[i] + (1.0f - b1) * gi;
        float vi = b2 * v[i] + (1.0f - b2) * gi * gi;
        m[i] = mi;
        v[i] = vi;
        p[i] = pi - step * mi / (sqrtf(vi) + eps);
    }
}

__global__ void any_nonfinite(size_t n, const float *x, int *flag)
{
    bool bad = false;
    for (size_t i = first_index(); i < n; i += grid_stride()) bad |= !isfinite(x[i]);
    // benign race: every writer stores the same value
    if (bad) *flag = 1;
}

// One thread per output; the scan order and the comparison are the CPU's, so ties go to the
// first element in row-major order and a NaN wins (and is not hidden).
__global__ void maxpool_fwd(size_t total, int h, int w, int size, int oh, int ow, const float *x,
                            float *y, int32_t *argmax)
{
    const size_t out_plane = (size_t)oh * ow;
    for (size_t o = first_index(); o < total; o += grid_stride()) {
        size_t plane = o / out_plane;
        int rem = (int)(o % out_plane);
        int oy = rem / ow, ox = rem % ow;
        const float *xp = x + plane * (size_t)h * w;
        int best = (oy * size) * w + ox * size;
        float bv = xp[best];
        for (int i = 0; i < size; i++)
            for (int j = 0; j < size; j++) {
                int idx = (oy * size + i) * w + ox * size + j;
                float xv = xp[idx];
                if (xv > bv || xv != xv) {
                    bv = xv;
                    best = idx;
                }
            }
        y[o] = bv;
        argmax[o] = best;
    }
}

__global__ void maxpool_bwd(size_t total, int h, int w, int oh, int ow, const float *dy,
                            const int32_t *argmax, float *dx)
{
    const size_t out_plane = (size_t)oh * ow;
    for (size_t o = first_index(); o < total; o += grid_stride()) {
        size_t plane = o / out_plane;
        dx[plane * (size_t)h * w + argmax[o]] += dy[o];
    }
}

// ---- GroupNorm (backends/cpu-blas/norm.c is the reference) ----

// The sum of every thread's v over one block, by a fixed tree: the same bits on every run.
// `part` is kThreads doubles of shared memory, free again when this returns.
__device__ double block_sum(double v, double *part)
{
    part[threadIdx.x] = v;
    __syncthreads();
    for (int half = kThreads / 2; half > 0; half /= 2) {
        if ((int)threadIdx.x < half) part[threadIdx.x] += part[threadIdx.x + half];
        __syncthreads();
    }
    double r = part[0];
    __syncthreads();
    return r;
}

// One block per (image, group): its c / groups channels are m contiguous floats.
__global__ void groupnorm_fwd(int c, size_t hw, int groups, double eps, const float *x,
                              const float *gamma, const float *beta, float *y, float *stats)
{
    __shared__ double part[kThreads];
    const size_t u = blockIdx.x, cpg = (size_t)(c / groups), m = cpg * hw;
    const size_t c0 = (u % (size_t)groups) * cpg;
    const float *xg = x + u * m;
    float *yg = y + u * m;
    double sum = 0.0;
    for (size_t i = threadIdx.x; i < m; i += kThreads) sum += xg[i];
    const double mean = block_sum(sum, part) / (double)m;
    double sq = 0.0;
    for (size_t i = threadIdx.x; i < m; i += kThreads) {
        double d = xg[i] - mean;
        sq += d * d;
    }
    const double rstd = 1.0 / sqrt(block_sum(sq, part) / (double)m + eps);
    if (threadIdx.x == 0) {
        stats[2 * u] = (float)mean;
        stats[2 * u + 1] = (float)rstd;
    }
    for (size_t i = threadIdx.x; i < m; i += kThreads) {
        const size_t ch = c0 + i / hw;
        yg[i] = (float)((xg[i] - mean) * rstd * (double)gamma[ch] + (double)beta[ch]);
    }
}

// One block per channel: dgamma += sum dy xhat, dbeta += sum dy over its n planes.
__global__ void groupnorm_bwd_params(int n, int c, size_t hw, int groups, const float *x,
                                     const float *dy, const float *stats, float *dgamma,
                                     float *dbeta)
{
    __shared__ double part[kThreads];
    const size_t ch = blockIdx.x, g = ch / (size_t)(c / groups), total = (size_t)n * hw;
    double sg = 0.0, sb = 0.0;
    for (size_t k = threadIdx.x; k < total; k += kThreads) {
        const size_t img = k / hw, off = (img * (size_t)c + ch) * hw + k % hw;
        const size_t u = img * (size_t)groups + g;
        const double mean = stats[2 * u], rstd = stats[2 * u + 1];
        sb += dy[off];
        sg += dy[off] * ((x[off] - mean) * rstd);
    }
    sg = block_sum(sg, part);
    sb = block_sum(sb, part);
    if (threadIdx.x == 0) {
        dgamma[ch] += (float)sg;
        dbeta[ch] += (float)sb;
    }
}

// One block per (image, group): dx = rstd (gamma dy - mean(gamma dy) - xhat mean(gamma dy xhat)).
__global__ void groupnorm_bwd_data(int c, size_t hw, int groups, const float *x, const float *dy,
                                   const float *gamma, const float *stats, float *dx)
{
    __shared__ double part[kThreads];
    const size_t u = blockIdx.x, cpg = (size_t)(c / groups), m = cpg * hw;
    const size_t c0 = (u % (size_t)groups) * cpg;
    const float *xg = x + u * m, *dyg = dy + u * m;
    float *dxg = dx + u * m;
    const double mean = stats[2 * u], rstd = stats[2 * u + 1];
    double a = 0.0, b = 0.0;
    for (size_t i = threadIdx.x; i < m; i += kThreads) {
        const double gdy = (double)gamma[c0 + i / hw] * dyg[i];
        a += gdy;
        b += gdy * ((xg[i] - mean) * rstd);
    }
    a = block_sum(a, part) / (double)m;
    b = block_sum(b, part) / (double)m;
    for (size_t i = threadIdx.x; i < m; i += kThreads) {
        const double g = gamma[c0 + i / hw];
        dxg[i] = (float)(rstd * (g * dyg[i] - a - (xg[i] - mean) * rstd * b));
    }
}

// l1_scores (backend_plugin.h): the head's logit of queries against gallery rows, in the one
// summation order every backend keeps, so the GPU gives the CPU's bits. A block is 16 lanes x 8
// groups of threads; each group scores a tile of 4 queries x 4 rows, lane j accumulating the
// d = j mod 16 in increasing d with __fmaf_rn (the CPU's fmaf: one rounding), in registers.
// The lanes then meet in shared memory and each thread folds one (query, row) pair in the
// fixed order. The queries of a block are shared by its 8 groups (through L1); consecutive
// lanes read consecutive features, so a row's step is one 64-byte transaction.
constexpr int kL1Lanes = 16, kL1Groups = 8, kL1QT = 4, kL1RT = 4;

template <int DT>
__device__ float l1_decode(const unsigned char *row, size_t d, float sc, float off)
{
    if (DT == 0) return reinterpret_cast<const float *>(row)[d];
    if (DT == 1)
        return __uint_as_float((unsigned)reinterpret_cast<const unsigned short *>(row)[d] << 16);
    if (DT == 2) return __half2float(reinterpret_cast<const __half *>(row)[d]);
    return __fmaf_rn((float)row[d], sc, off);
}

template <int DT>
__global__ void l1_scores(size_t nq, size_t nr, size_t dim, size_t row_bytes, size_t ld,
                          const float *q, const unsigned char *rows, const float *qp,
                          const int32_t *idx, const float *w, float *out)
{
    __shared__ float red[kL1Groups][kL1QT * kL1RT][kL1Lanes + 1]; // +1: no bank conflicts
    const int lane = threadIdx.x, grp = threadIdx.y;
    const size_t q0 = (size_t)blockIdx.y * kL1QT;
    const size_t i0 = ((size_t)blockIdx.x * kL1Groups + grp) * kL1RT;
    const float *qr[kL1QT];
    const unsigned char *gr[kL1RT];
    float sc[kL1RT], off[kL1RT], acc[kL1QT][kL1RT];
    // a tile past the end repeats the last query or row: computed, never stored
    for (int i = 0; i < kL1QT; i++) qr[i] = q + (q0 + i < nq ? q0 + i : nq - 1) * dim;
    for (int r = 0; r < kL1RT; r++) {
        size_t ii = i0 + r < nr ? i0 + r : nr - 1, rr = idx ? (size_t)idx[ii] : ii;
        gr[r] = rows + rr * row_bytes;
        off[r] = qp ? qp[2 * rr] : 0.0f;
        sc[r] = qp ? qp[2 * rr + 1] : 1.0f;
    }
    for (int i = 0; i < kL1QT; i++)
        for (int r = 0; r < kL1RT; r++) acc[i][r] = 0.0f;
    for (size_t d = lane; d < dim; d += kL1Lanes) {
        const float wv = w[d];
        float g[kL1RT];
        for (int r = 0; r < kL1RT; r++) g[r] = l1_decode<DT>(gr[r], d, sc[r], off[r]);
        for (int i = 0; i < kL1QT; i++) {
            const float qv = qr[i][d];
            for (int r = 0; r < kL1RT; r++)
                acc[i][r] = __fmaf_rn(wv, fabsf(__fsub_rn(qv, g[r])), acc[i][r]);
        }
    }
    for (int i = 0; i < kL1QT; i++)
        for (int r = 0; r < kL1RT; r++) red[grp][i * kL1RT + r][lane] = acc[i][r];
    __syncthreads();
    // the 16 pairs of a group, one per lane: fold (j, j+8), (j, j+4), (j, j+2), (0, 1), + b
    const float *a = red[grp][lane];
    float b[8], c[4];
    for (int j = 0; j < 8; j++) b[j] = __fadd_rn(a[j], a[j + 8]);
    for (int j = 0; j < 4; j++) c[j] = __fadd_rn(b[j], b[j + 4]);
    const float sum = __fadd_rn(__fadd_rn(c[0], c[2]), __fadd_rn(c[1], c[3]));
    const size_t qi = q0 + lane / kL1RT, ri = i0 + lane % kL1RT;
    if (qi < nq && ri < nr) out[qi * ld + ri] = __fadd_rn(sum, w[dim]);
}

} // namespace

extern "C" {

cudaError_t smk_relu_fwd(cudaStream_t st, size_t n, const float *x, float *y)
{
    if (n) relu_fwd<<<blocks_for(n), kThreads, 0, st>>>(n, x, y);
    return cudaGetLastError();
}

cudaError_t smk_relu_bwd(cudaStream_t st, size_t n, const float *y, const float *dy, float *dx)
{
    if (n) relu_bwd<<<blocks_for(n), kThreads, 0, st>>>(n, y, dy, dx);
    return cudaGetLastError();
}

cudaError_t smk_sigmoid_fwd(cudaStream_t st, size_t n, const float *x, float *y)
{
    if (n) sigmoid_fwd<<<blocks_for(n), kThreads, 0, st>>>(n, x, y);
    return cudaGetLastError();
}

cudaError_t smk_sigmoid_bwd(cudaStream_t st, size_t n, const float *y, const float *dy, float *dx)
{
    if (n) sigmoid_bwd<<<blocks_for(n), kThreads, 0, st>>>(n, y, dy, dx);
    return cudaGetLastError();
}

cudaError_t smk_bias_add(cudaStream_t st, int rows, int cols, const float *bias, float *y)
{
    size_t total = (size_t)rows * (size_t)cols;
    if (total) bias_add<<<blocks_for(total), kThreads, 0, st>>>(total, cols, bias, y);
    return cudaGetLastError();
}

cudaError_t smk_bias_grad(cudaStream_t st, int rows, int cols, const float *dy, float *db)
{
    if (rows > 0 && cols > 0)
        bias_grad<<<blocks_for((size_t)cols), kThreads, 0, st>>>(rows, cols, dy, db);
    return cudaGetLastError();
}

cudaError_t smk_absdiff_fwd(cudaStream_t st, size_t n, const float *a, const float *b, float *d)
{
    if (n) absdiff_fwd<<<blocks_for(n), kThreads, 0, st>>>(n, a, b, d);
    return cudaGetLastError();
}

cudaError_t smk_absdiff_bwd(cudaStream_t st, size_t n, const float *a, const float *b,
                            const float *dd, float *da, float *db)
{
    if (n) absdiff_bwd<<<blocks_for(n), kThreads, 0, st>>>(n, a, b, dd, da, db);
    return cudaGetLastError();
}

cudaError_t smk_bce_fwd_bwd(cudaStream_t st, int n, const float *logits, const float *labels,
                            float scale, float *scores, float *loss_sum, float *dlogits)
{
    // n = 0 still writes loss_sum (0), as the CPU does
    bce_fwd_bwd<<<1, kThreads, 0, st>>>(n, logits, labels, scale, scores, loss_sum, dlogits);
    return cudaGetLastError();
}

cudaError_t smk_adam(cudaStream_t st, size_t n, float *p, const float *g, float *m, float *v,
                     float step, float b1, float b2, float eps, float wd)
{
    if (n && wd != 0.0f)
        adam_decay<<<blocks_for(n), kThreads, 0, st>>>(n, p, g, m, v, step, b1, b2, eps, wd);
    else if (n) adam<<<blocks_for(n), kThreads, 0, st>>>(n, p, g, m, v, step, b1, b2, eps);
    return cudaGetLastError();
}

cudaError_t smk_any_nonfinite(cudaStream_t st, size_t n, const float *x, int *flag)
{
    if (n) any_nonfinite<<<blocks_for(n), kThreads, 0, st>>>(n, x, flag);
    return cudaGetLastError();
}

cudaError_t smk_maxpool_fwd(cudaStream_t st, int planes, int h, int w, int size, int oh, int ow,
                            const float *x, float *y, int32_t *argmax)
{
    size_t total = (size_t)planes * (size_t)oh * (size_t)ow;
    if (total)
        maxpool_fwd<<<blocks_for(total), kThreads, 0, st>>>(total, h, w, size, oh, ow, x, y,
                                                            argmax);
    return cudaGetLastError();
}

cudaError_t smk_maxpool_bwd(cudaStream_t st, int planes, int h, int w, int oh, int ow,
                            const float *dy, const int32_t *argmax, float *dx)
{
    size_t total = (size_t)planes * (size_t)oh * (size_t)ow;
    if (total)
        maxpool_bwd<<<blocks_for(total), kThreads, 0, st>>>(total, h, w, oh, ow, dy, argmax, dx);
    return cudaGetLastError();
}

cudaError_t smk_groupnorm_fwd(cudaStream_t st, int n, int c, size_t hw, int groups, double eps,
                              const float *x, const float *gamma, const float *beta, float *y,
                              float *stats)
{
    const unsigned units = (unsigned)n * (unsigned)groups;
    if (units && hw)
        groupnorm_fwd<<<units, kThreads, 0, st>>>(c, hw, groups, eps, x, gamma, beta, y, stats);
    return cudaGetLastError();
}

cudaError_t smk_groupnorm_bwd_params(cudaStream_t st, int n, int c, size_t hw, int groups,
                                     const float *x, const float *dy, const float *stats,
                                     float *dgamma, float *dbeta)
{
    if (n > 0 && c > 0 && hw)
        groupnorm_bwd_params<<<(unsigned)c, kThreads, 0, st>>>(n, c, hw, groups, x, dy, stats,
                                                               dgamma, dbeta);
    return cudaGetLastError();
}

cudaError_t smk_groupnorm_bwd_data(cudaStream_t st, int n, int c, size_t hw, int groups,
                                   const float *x, const float *dy, const float *gamma,
                                   const float *stats, float *dx)
{
    const unsigned units = (unsigned)n * (unsigned)groups;
    if (units && hw)
        groupnorm_bwd_data<<<units, kThreads, 0, st>>>(c, hw, groups, x, dy, gamma, stats, dx);
    return cudaGetLastError();
}

cudaError_t smk_l1_scores(cudaStream_t st, size_t nq, size_t nr, size_t dim, int dtype, size_t ld,
                          const float *q, const void *rows, const float *qp, const int32_t *idx,
                          const float *w, float *out)
{
    const size_t es = dtype == 0 ? 4 : dtype == 3 ? 1 : 2, per_block = (size_t)kL1Groups * kL1RT;
    const dim3 threads(kL1Lanes, kL1Groups);
    const unsigned char *g = static_cast<const unsigned char *>(rows);
    // at most 65535 query tiles per launch (the grid's y limit)
    for (size_t q0 = 0; q0 < nq; q0 += (size_t)65535 * kL1QT) {
        const size_t m = nq - q0 < (size_t)65535 * kL1QT ? nq - q0 : (size_t)65535 * kL1QT;
        const dim3 grid((unsigned)((nr + per_block - 1) / per_block),
                        (unsigned)((m + kL1QT - 1) / kL1QT));
        const float *qq = q + q0 * dim;
        float *o = out + q0 * ld;
        switch (dtype) {
        case 0:
            l1_scores<0><<<grid, threads, 0, st>>>(m, nr, dim, dim * es, ld, qq, g, qp, idx, w, o);
            break;
        case 1:
            l1_scores<1><<<grid, threads, 0, st>>>(m, nr, dim, dim * es, ld, qq, g, qp, idx, w, o);
            break;
        case 2:
            l1_scores<2><<<grid, threads, 0, st>>>(m, nr, dim, dim * es, ld, qq, g, qp, idx, w, o);
            break;
        default:
            l1_scores<3><<<grid, threads, 0, st>>>(m, nr, dim, dim * es, ld, qq, g, qp, idx, w, o);
            break;
        }
        cudaError_t e = cudaGetLastError();
        if (e != cudaSuccess) return e;
    }
    return cudaSuccess;
}

} // extern "C"
