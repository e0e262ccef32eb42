/* SPDX-License-Identifier: MIT */
/* Benchmark (never a test): this CPU's arithmetic peak, the ceiling the speed table of
 * scripts/bench_cpu.sh is read against (issue 14).
 *
 *   bench_peak [--threads N] [--seconds S]
 *
 * Each of N threads (default: the cores this process may run on, as nproc counts them) runs
 * about S seconds (default 0.3) of 12 independent accumulator chains, enough to hide the
 * latency of the FMA units on every x86 core we know (4-5 cycles, 2 ports):
 *   fp32: _mm512_fmadd_ps (AVX-512F), else _mm256_fmadd_ps (AVX2 + FMA): 2 flops per lane;
 *   bf16: _mm512_dpbf16_ps (vdpbf16ps, AVX512_BF16): per 32-bit lane two bf16 products
 *         added to the fp32 accumulator, 4 flops per lane.
 * The threads start together (a barrier) and the rate is all threads' flops over the wall
 * time from the first start to the last end. The kernels are compiled for their instruction
 * sets with target attributes and chosen by __builtin_cpu_supports, so the file builds on any
 * x86-64 (and elsewhere, where it prints "n/a"). Prints
 *   RESULT what=peak threads=N fp32_gflops=X|n/a fp32_isa=... bf16_gflops=X|n/a bf16_isa=...
 * The accumulators start from and combine with values read at run time and their sum is
 * printed, so the compiler can neither fold the chains nor drop them. */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define HAVE_X86 1
#else
#define HAVE_X86 0
#endif

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* One kernel: `iters` rounds of 12 chained instructions from `seed`; returns the chains' sum. */
typedef float (*kernel_fn)(long iters, float seed);

typedef struct kernel {
    const char *isa; /* "avx512f", "avx2", "avx512_bf16" */
    kernel_fn run;
    double flops_per_iter; /* 12 instructions x lanes x flops per lane */
} kernel;

#if HAVE_X86
/* a = a * m + c, 12 chains. m slightly below 1 keeps the values bounded however long it runs */
__attribute__((target("avx512f"))) static float fma_avx512(long iters, float seed)
{
    __m512 m = _mm512_set1_ps(1.0f - seed * 1e-7f), c = _mm512_set1_ps(seed * 1e-3f);
    __m512 a0 = _mm512_set1_ps(seed), a1 = _mm512_set1_ps(seed + 1);
    __m512 a2 = _mm512_set1_ps(seed + 2), a3 = _mm512_set1_ps(seed + 3);
    __m512 a4 = _mm512_set1_ps(seed + 4), a5 = _mm512_set1_ps(seed + 5);
    __m512 a6 = _mm512_set1_ps(seed + 6), a7 = _mm512_set1_ps(seed + 7);
    __m512 a8 = _mm512_set1_ps(seed + 8), a9 = _mm512_set1_ps(seed + 9);
    __m512 a10 = _mm512_set1_ps(seed + 10), a11 = _mm512_set1_ps(seed + 11);
    for (long i = 0; i < iters; i++) {
        a0 = _mm512_fmadd_ps(a0, m, c), a1 = _mm512_fmadd_ps(a1, m, c);
        a2 = _mm512_fmadd_ps(a2, m, c), a3 = _mm512_fmadd_ps(a3, m, c);
        a4 = _mm512_fmadd_ps(a4, m, c), a5 = _mm512_fmadd_ps(a5, m, c);
        a6 = _mm512_fmadd_ps(a6, m, c), a7 = _mm512_fmadd_ps(a7, m, c);
        a8 = _mm512_fmadd_ps(a8, m, c), a9 = _mm512_fmadd_ps(a9, m, c);
        a10 = _mm512_fmadd_ps(a10, m, c), a11 = _mm512_fmadd_ps(a11, m, c);
    }
    __m512 s = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)),
                             _mm512_add_ps(_mm512_add_ps(a4, a5), _mm512_add_ps(a6, a7)));
    s = _mm512_add_ps(s, _mm512_add_ps(_mm512_add_ps(a8, a9), _mm512_add_ps(a10, a11)));
    return _mm512_reduce_add_ps(s);
}

__attribute__((target("avx2,fma"))) static float fma_avx2(long iters, float seed)
{
    __m256 m = _mm256_set1_ps(1.0f - seed * 1e-7f), c = _mm256_set1_ps(seed * 1e-3f);
    __m256 a0 = _mm256_set1_ps(seed), a1 = _mm256_set1_ps(seed + 1);
    __m256 a2 = _mm256_set1_ps(seed + 2), a3 = _mm256_set1_ps(seed + 3);
    __m256 a4 = _mm256_set1_ps(seed + 4), a5 = _mm256_set1_ps(seed + 5);
    __m256 a6 = _mm256_set1_ps(seed + 6), a7 = _mm256_set1_ps(seed + 7);
    __m256 a8 = _mm256_set1_ps(seed + 8), a9 = _mm256_set1_ps(seed + 9);
    __m256 a10 = _mm256_set1_ps(seed + 10), a11 = _mm256_set1_ps(seed + 11);
    for (long i = 0; i < iters; i++) {
        a0 = _mm256_fmadd_ps(a0, m, c), a1 = _mm256_fmadd_ps(a1, m, c);
        a2 = _mm256_fmadd_ps(a2, m, c), a3 = _mm256_fmadd_ps(a3, m, c);
        a4 = _mm256_fmadd_ps(a4, m, c), a5 = _mm256_fmadd_ps(a5, m, c);
        a6 = _mm256_fmadd_ps(a6, m, c), a7 = _mm256_fmadd_ps(a7, m, c);
        a8 = _mm256_fmadd_ps(a8, m, c), a9 = _mm256_fmadd_ps(a9, m, c);
        a10 = _mm256_fmadd_ps(a10, m, c), a11 = _mm256_fmadd_ps(a11, m, c);
    }
    __m256 s = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)),
                             _mm256_add_ps(_mm256_add_ps(a4, a5), _mm256_add_ps(a6, a7)));
    s = _mm256_add_ps(s, _mm256_add_ps(_mm256_add_ps(a8, a9), _mm256_add_ps(a10, a11)));
    float out[8];
    _mm256_storeu_ps(out, s);
    return out[0] + out[1] + out[2] + out[3] + out[4] + out[5] + out[6] + out[7];
}

/* acc += x[2i] y[2i] + x[2i+1] y[2i+1] per lane, 12 chains. Small products keep the sums far
 * from overflow for any run length we time. */
__attribute__((target("avx512f,avx512bf16"))) static float dot_bf16(long iters, float seed)
{
    __m512bh x = _mm512_cvtne2ps_pbh(_mm512_set1_ps(seed), _mm512_set1_ps(seed * 0.5f));
    __m512bh y = _mm512_cvtne2ps_pbh(_mm512_set1_ps(seed * 1e-4f), _mm512_set1_ps(seed * 2e-4f));
    __m512 a0 = _mm512_set1_ps(seed), a1 = _mm512_set1_ps(seed + 1);
    __m512 a2 = _mm512_set1_ps(seed + 2), a3 = _mm512_set1_ps(seed + 3);
    __m512 a4 = _mm512_set1_ps(seed + 4), a5 = _mm512_set1_ps(seed + 5);
    __m512 a6 = _mm512_set1_ps(seed + 6), a7 = _mm512_set1_ps(seed + 7);
    __m512 a8 = _mm512_set1_ps(seed + 8), a9 = _mm512_set1_ps(seed + 9);
    __m512 a10 = _mm512_set1_ps(seed + 10), a11 = _mm512_set1_ps(seed + 11);
    for (long i = 0; i < iters; i++) {
        a0 = _mm512_dpbf16_ps(a0, x, y), a1 = _mm512_dpbf16_ps(a1, x, y);
        a2 = _mm512_dpbf16_ps(a2, x, y), a3 = _mm512_dpbf16_ps(a3, x, y);
        a4 = _mm512_dpbf16_ps(a4, x, y), a5 = _mm512_dpbf16_ps(a5, x, y);
        a6 = _mm512_dpbf16_ps(a6, x, y), a7 = _mm512_dpbf16_ps(a7, x, y);
        a8 = _mm512_dpbf16_ps(a8, x, y), a9 = _mm512_dpbf16_ps(a9, x, y);
        a10 = _mm512_dpbf16_ps(a10, x, y), a11 = _mm512_dpbf16_ps(a11, x, y);
    }
    __m512 s = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)),
                             _mm512_add_ps(_mm512_add_ps(a4, a5), _mm512_add_ps(a6, a7)));
    s = _mm512_add_ps(s, _mm512_add_ps(_mm512_add_ps(a8, a9), _mm512_add_ps(a10, a11)));
    return _mm512_reduce_add_ps(s);
}
#endif

/* The fastest fp32 kernel this CPU runs; isa NULL when there is none. */
static kernel fp32_kernel(void)
{
#if HAVE_X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) return (kernel){"avx512f", fma_avx512, 12 * 16 * 2};
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        return (kernel){"avx2+fma", fma_avx2, 12 * 8 * 2};
#endif
    return (kernel){NULL, NULL, 0};
}

static kernel bf16_kernel(void)
{
#if HAVE_X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bf16"))
        return (kernel){"avx512_bf16", dot_bf16, 12 * 16 * 4};
#endif
    return (kernel){NULL, NULL, 0};
}

/* ---- threads ---- */

typedef struct job {
    const kernel *k;
    double seconds;
    float seed;
    pthread_barrier_t *start;
    long iters;    /* out: rounds timed */
    double t0, t1; /* out: start and end of the timed run */
    float sink;    /* out: the chains' sum, printed so the work is observable */
} job;

static void *worker(void *arg)
{
    job *j = arg;
    /* calibrate (and warm the core to its vector clock): double until a run takes >= 20 ms */
    long n = 1 << 14;
    double t;
    for (;;) {
        double t0 = now();
        j->sink += j->k->run(n, j->seed);
        t = now() - t0;
        if (t >= 0.02 || n > (1L << 40)) break;
        n *= 2;
    }
    j->iters = (long)(n * (j->seconds / t)) + 1;
    pthread_barrier_wait(j->start);
    j->t0 = now();
    j->sink += j->k->run(j->iters, j->seed);
    j->t1 = now();
    return NULL;
}

/* GFLOP/s of kernel k on `threads` threads together; prints one line; < 0 on failure. */
static double measure(const kernel *k, int threads, double seconds, const char *what)
{
    job *jobs = calloc((size_t)threads, sizeof *jobs);
    pthread_t *tids = calloc((size_t)threads, sizeof *tids);
    pthread_barrier_t start;
    if (!jobs || !tids || pthread_barrier_init(&start, NULL, (unsigned)threads)) {
        free(jobs), free(tids);
        return -1;
    }
    int started = 0;
    for (int i = 0; i < threads; i++) {
        /* the seed comes from the clock's low bits: a run-time value the compiler cannot see */
        jobs[i] =
            (job){k, seconds, 1.0f + (float)((long)(now() * 1e6) % 7) * 1e-3f, &start, 0, 0, 0, 0};
        if (pthread_create(&tids[i], NULL, worker, &jobs[i])) break;
        started++;
    }
    if (started < threads) { /* the barrier would never open: give up (and leak the waiters) */
        fprintf(stderr, "bench_peak: cannot start %d threads\n", threads);
        exit(1);
    }
    double first = 0, last = 0, flops = 0, sink = 0;
    for (int i = 0; i < threads; i++) {
        pthread_join(tids[i], NULL);
        if (i == 0 || jobs[i].t0 < first) first = jobs[i].t0;
        if (i == 0 || jobs[i].t1 > last) last = jobs[i].t1;
        flops += (double)jobs[i].iters * k->flops_per_iter;
        sink += jobs[i].sink;
    }
    pthread_barrier_destroy(&start);
    double rate = flops / (last - first) * 1e-9;
    printf("%s peak (%s, 12 chains, %d threads): %.1f GFLOP/s (%.2f s; checksum %g)\n", what,
           k->isa, threads, rate, last - first, sink);
    free(jobs), free(tids);
    return rate;
}

static int cores(void)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0) return CPU_COUNT(&set);
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

int main(int argc, char **argv)
{
    int threads = 0;
    double seconds = 0.3;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) {
            fprintf(stderr, "bench_peak: %s needs a value (--threads N, --seconds S)\n", a);
            return 2;
        }
        i++;
        if (!strcmp(a, "--threads")) threads = atoi(v);
        else if (!strcmp(a, "--seconds")) seconds = atof(v);
        else {
            fprintf(stderr, "bench_peak: unknown option %s (--threads N, --seconds S)\n", a);
            return 2;
        }
    }
    if (threads < 0 || threads > 4096 || !(seconds > 0 && seconds <= 60)) {
        fprintf(stderr, "bench_peak: --threads is 0 (all cores)..4096, --seconds in (0, 60]\n");
        return 2;
    }
    if (threads == 0) threads = cores();

    kernel k32 = fp32_kernel(), k16 = bf16_kernel();
    char fp32[32] = "n/a", bf16[32] = "n/a";
    if (k32.isa) {
        double r = measure(&k32, threads, seconds, "fp32 FMA");
        if (r > 0) snprintf(fp32, sizeof fp32, "%.1f", r);
    } else {
        printf("fp32 FMA peak: n/a (no AVX2+FMA or AVX-512F kernel for this CPU)\n");
    }
    if (k16.isa) {
        double r = measure(&k16, threads, seconds, "bf16 dot-product");
        if (r > 0) snprintf(bf16, sizeof bf16, "%.1f", r);
    } else {
        printf("bf16 dot-product peak: n/a (bf16 not available here: no AVX512_BF16)\n");
    }
    printf("RESULT what=peak threads=%d fp32_gflops=%s fp32_isa=%s bf16_gflops=%s bf16_isa=%s\n",
           threads, fp32, k32.isa ? k32.isa : "none", bf16, k16.isa ? k16.isa : "none");
    return 0;
}
