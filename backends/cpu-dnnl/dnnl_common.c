/* SPDX-License-Identifier: MIT */
/* The cpu-dnnl module's shared helpers (dnnl_internal.h): the host it was given, its thread
 * count, oneDNN statuses as sm_status, whether the CPU runs bf16. A leaf: the convolution files
 * and the backend's table use it, it uses neither (as backends/cuda/check.c). */
#include <omp.h>
#include <stdatomic.h>

#include "dnnl_internal.h"

const sm_backend_host *smd_host;

/* 0 until set: OpenMP's default (all cores, or OMP_NUM_THREADS), read at entry */
static _Atomic int threads_set;
static int threads_default = 1;

void smd_threads_init(void) { threads_default = omp_get_max_threads(); }

int smd_threads(void)
{
    int t = atomic_load_explicit(&threads_set, memory_order_relaxed);
    return t > 0 ? t : threads_default;
}

void smd_set_threads(int threads)
{
    atomic_store_explicit(&threads_set, threads > 0 ? threads : omp_get_num_procs(),
                          memory_order_relaxed);
}

sm_status smd_fail(dnnl_status_t e, const char *what)
{
    static const char *const names[] = {[dnnl_success] = "success",
                                        [dnnl_out_of_memory] = "out of memory",
                                        [dnnl_invalid_arguments] = "invalid arguments",
                                        [dnnl_unimplemented] = "unimplemented",
                                        [dnnl_iterator_ends] = "iterator ends",
                                        [dnnl_runtime_error] = "runtime error",
                                        [dnnl_not_required] = "not required"};
    const char *name = (unsigned)e < sizeof names / sizeof *names && names[e] ? names[e] : "?";
    return smd_host->fail(e == dnnl_out_of_memory ? SM_ERR_NOMEM : SM_ERR_DEVICE,
                          "cpu-dnnl backend: %s failed: oneDNN status %d (%s)", what, (int)e, name);
}

/* What oneDNN itself will run (DNNL_MAX_CPU_ISA included): its ISA values are nested bit
 * sets, so every ISA with native bf16 dot products contains avx512_core_bf16's bits. */
bool smd_bf16_supported(void)
{
    unsigned isa = (unsigned)dnnl_get_effective_cpu_isa();
    return (isa & (unsigned)dnnl_cpu_isa_avx512_core_bf16) ==
           (unsigned)dnnl_cpu_isa_avx512_core_bf16;
}
