/* SPDX-License-Identifier: MIT */
/* sm__cpu_parallel_for for cpu-blas: the work is split into as many ranges as OpenBLAS has
 * threads, one run by the caller and the others by threads made for the call. A call costs tens
 * of microseconds while the loops it carries take milliseconds, and nothing outlives the call:
 * no pool that spins against OpenBLAS's own workers between GEMMs, no state to tear down. */
#include <cblas.h>
#include <pthread.h>

#include "parallel.h"

enum { MAX_THREADS = 64 };

typedef struct range_job {
    sm__range_fn fn;
    void *arg;
    size_t begin, end;
} range_job;

static void *run_range(void *p)
{
    range_job *j = p;
    j->fn(j->arg, j->begin, j->end);
    return NULL;
}

void sm__cpu_parallel_for(size_t n, size_t grain, sm__range_fn fn, void *arg)
{
    sm__cpu_parallel_for_threads((size_t)openblas_get_num_threads(), n, grain, fn, arg);
}

void sm__cpu_parallel_for_threads(size_t threads, size_t n, size_t grain, sm__range_fn fn,
                                  void *arg)
{
    if (grain < 1) grain = 1;
    size_t t = threads;
    if (t > MAX_THREADS) t = MAX_THREADS;
    if (t > n / grain) t = n / grain;
    if (t < 2) {
        if (n) fn(arg, 0, n);
        return;
    }
    range_job jobs[MAX_THREADS];
    pthread_t tid[MAX_THREADS];
    int started[MAX_THREADS];
    for (size_t i = 0; i < t; i++) jobs[i] = (range_job){fn, arg, n * i / t, n * (i + 1) / t};
    for (size_t i = 1; i < t; i++)
        /* a thread that cannot be made costs speed, not correctness: its range runs here */
        started[i] = pthread_create(&tid[i], NULL, run_range, &jobs[i]) == 0;
    run_range(&jobs[0]);
    for (size_t i = 1; i < t; i++) {
        if (started[i]) pthread_join(tid[i], NULL);
        else run_range(&jobs[i]);
    }
}
