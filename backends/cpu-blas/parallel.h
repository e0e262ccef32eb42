/* SPDX-License-Identifier: MIT */
/* A parallel loop for the backends' own loops (im2col, pooling, element-wise, Adam). Each CPU
 * backend links the implementation that matches the thread pool of its heavy library, so our
 * loops and BLAS/oneDNN never run more threads than there are cores: cpu-blas splits the work
 * over OpenBLAS's thread count with short-lived pthreads (parallel_pthread.c); cpu-dnnl runs it
 * on oneDNN's OpenMP team (backends/cpu-dnnl/parallel_omp.c). */
#ifndef SM_CPU_PARALLEL_H
#define SM_CPU_PARALLEL_H

#include <stddef.h>

/* Runs fn(arg, begin, end) over disjoint ranges covering [0, n), on up to the backend's thread
 * count; serially when n < 2 * grain (not worth a thread). Every range is handled exactly once,
 * so a loop whose units write disjoint outputs gives the same bits at any thread count. */
typedef void (*sm__range_fn)(void *arg, size_t begin, size_t end);
void sm__cpu_parallel_for(size_t n, size_t grain, sm__range_fn fn, void *arg);
/* The same on exactly `threads` threads (cpu-blas only: conv.c runs whole images per thread
 * while OpenBLAS is set to one thread). */
void sm__cpu_parallel_for_threads(size_t threads, size_t n, size_t grain, sm__range_fn fn,
                                  void *arg);

#endif
