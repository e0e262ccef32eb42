/* SPDX-License-Identifier: MIT */
/* sm__cpu_parallel_for for cpu-dnnl: our loops run on oneDNN's own OpenMP team, with the same
 * thread count, so they never compete with oneDNN's workers (which would otherwise spin in
 * libgomp's wait loop beside a second set of threads). */
#include <omp.h>

#include "../cpu-blas/parallel.h"
#include "dnnl_internal.h"

void sm__cpu_parallel_for(size_t n, size_t grain, sm__range_fn fn, void *arg)
{
    if (grain < 1) grain = 1;
    size_t t = (size_t)smd_threads();
    if (t > n / grain) t = n / grain;
    if (t < 2) {
        if (n) fn(arg, 0, n);
        return;
    }
#pragma omp parallel num_threads((int)t)
    {
        size_t i = (size_t)omp_get_thread_num(), nt = (size_t)omp_get_num_threads();
        fn(arg, n * i / nt, n * (i + 1) / nt);
    }
}
