/* SPDX-License-Identifier: MIT */
/* Benchmark (never a test): why cpu-dnnl's FFT convolution computes its transforms as matrix
 * products. The forward 2-D transform of real planes (half spectrum) at the reference network's
 * sizes, per plane, on ONE thread:
 *   - KissFFT (BSD; Debian libkissfft-dev): kiss_fftndr, one plane at a time;
 *   - dense DFT as two oneDNN SGEMMs over a batch of planes, as backends/cpu-dnnl/conv_fft.c
 *     does (along rows for all planes at once, then per half-spectrum column), pruned to the
 *     plane's extent.
 * Prints microseconds per plane and the GEMM path's GFLOP/s (counted as the products it does).
 *   bench_transforms [--planes N] */
#include <kissfft/kiss_fftnd.h>
#include <kissfft/kiss_fftndr.h>
#include <omp.h>
#include <math.h>
#include <oneapi/dnnl/dnnl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static float *filled(size_t n)
{
    float *p = aligned_alloc(64, (n * sizeof(float) + 63) / 64 * 64);
    if (!p) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    for (size_t i = 0; i < n; i++) p[i] = (float)((i * 2654435761u) % 1000) / 1000.0f - 0.5f;
    return p;
}

/* microseconds per plane, best of 3. KissFFT's real transform needs an even last side: odd
 * sides go through its complex transform with zero imaginary parts. */
static double kiss_us(int side, int planes, const float *src)
{
    int dims[2] = {side, side};
    const size_t plane = (size_t)side * side;
    kiss_fftndr_cfg rcfg = side % 2 ? NULL : kiss_fftndr_alloc(dims, 2, 0, NULL, NULL);
    kiss_fftnd_cfg ccfg = side % 2 ? kiss_fftnd_alloc(dims, 2, 0, NULL, NULL) : NULL;
    kiss_fft_cpx *in = malloc(sizeof *in * plane), *out = malloc(sizeof *out * plane);
    double best = 1e30;
    for (int rep = 0; rep < 3; rep++) {
        double t0 = now();
        for (int q = 0; q < planes; q++) {
            const float *x = src + (size_t)q * plane;
            if (rcfg) {
                kiss_fftndr(rcfg, x, out);
            } else {
                for (size_t i = 0; i < plane; i++) in[i].r = x[i], in[i].i = 0.0f;
                kiss_fftnd(ccfg, in, out);
            }
        }
        double t = (now() - t0) / planes * 1e6;
        if (t < best) best = t;
    }
    free(in), free(out);
    kiss_fft_free(rcfg ? (void *)rcfg : (void *)ccfg);
    return best;
}

/* the two-stage product transform of conv_fft.c's spectra_forward */
static double gemm_us(int side, int planes, const float *src, double *gflops)
{
    const int lh = side, lw = side, nv = side / 2 + 1, q = planes, rows = side, cols = side;
    float *fw = filled((size_t)lw * 2 * nv), *colre = filled((size_t)lh * 2 * rows);
    float *colim = filled((size_t)lh * 2 * rows);
    float *mid = filled((size_t)2 * nv * q * rows), *spec = filled((size_t)lh * nv * 2 * q);
    double best = 1e30;
    for (int rep = 0; rep < 3; rep++) {
        double t0 = now();
        for (int i = 0; i < rows; i++)
            dnnl_sgemm('T', 'T', 2 * nv, q, cols, 1.0f, fw, 2 * nv, src + (size_t)i * cols,
                       rows * cols, 0.0f, mid + (size_t)i * q, rows * q);
        for (int v = 0; v < nv; v++) {
            const float *t = mid + (size_t)2 * v * rows * q;
            float *xr = spec + (size_t)2 * v * lh * q, *xi = xr + q;
            dnnl_sgemm('N', 'N', lh, q, 2 * rows, 1.0f, colre, 2 * rows, t, q, 0.0f, xr, 2 * q);
            dnnl_sgemm('N', 'N', lh, q, 2 * rows, 1.0f, colim, 2 * rows, t, q, 0.0f, xi, 2 * q);
        }
        double t = (now() - t0) / planes * 1e6;
        if (t < best) best = t;
    }
    double flops = 2.0 * (2.0 * nv * cols * rows + 2.0 * nv * lh * 2.0 * rows); /* per plane */
    *gflops = flops / (best * 1e3);
    free(fw), free(colre), free(colim), free(mid), free(spec);
    return best;
}

int main(int argc, char **argv)
{
    int planes = 2048;
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--planes") && i + 1 < argc) planes = atoi(argv[++i]);
    if (planes < 1) planes = 1;
    /* one thread for both: KissFFT has no threads of its own */
    omp_set_num_threads(1);
    const int sides[] = {9, 21, 48, 105};
    printf("forward 2-D real transform, half spectrum, %d planes, 1 thread\n", planes);
    for (size_t i = 0; i < sizeof sides / sizeof *sides; i++) {
        int s = sides[i];
        int n = s >= 105 ? (planes + 3) / 4 : planes;
        float *src = filled((size_t)n * s * s);
        double g = 0.0, k = kiss_us(s, n, src), m = gemm_us(s, n, src, &g);
        printf("%3d x %-3d: KissFFT %7.2f us/plane%s | products %7.2f us/plane (%.0f GFLOP/s) | "
               "products / KissFFT %.2fx\n",
               s, s, k, s % 2 ? " (complex: odd side)" : "", m, g, m / k);
        printf("RESULT what=transform side=%d kiss_us=%.3f gemm_us=%.3f gemm_gflops=%.1f\n", s, k,
               m, g);
        free(src);
    }
    return 0;
}
