/* SPDX-License-Identifier: MIT */
// The cuda backend's own kernels: what neither cuDNN nor cuBLAS offers in the exact form the
// vtable specifies (backends/cpu-blas is the reference for every formula here). Plain float
// arithmetic, no fast-math intrinsics, so results track the CPU to rounding. One file, so that
// nvcc (slow) runs once per build.
#include <cfloat>
#include <cstdint>

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

} // extern "C"
