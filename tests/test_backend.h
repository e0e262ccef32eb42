/* SPDX-License-Identifier: MIT */
/* The CPU backend a parametrised test runs on: SIAMESE_TEST_BACKEND = "cpu" (cpu-blas, the
 * default) or "cpu-dnnl", so tests/meson.build runs the op, network and PyTorch-agreement
 * tests once per CPU backend. A backend this build lacks ends the program with exit status 77
 * (meson's SKIP) and says so loudly, rather than passing quietly on another backend. */
#ifndef SM_TEST_BACKEND_H
#define SM_TEST_BACKEND_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "siamese/siamese.h"

static inline sm_backend_kind test_cpu_backend(void)
{
    const char *name = getenv("SIAMESE_TEST_BACKEND");
    if (!name || !*name || !strcmp(name, "cpu") || !strcmp(name, "cpu-blas")) return SM_BACKEND_CPU;
    if (strcmp(name, "cpu-dnnl") != 0) {
        fprintf(stderr, "SIAMESE_TEST_BACKEND='%s': expected cpu or cpu-dnnl\n", name);
        exit(1);
    }
    if (sm_backend_probe(SM_BACKEND_CPU_DNNL) != SM_OK) {
        printf("SKIPPED: *** the cpu-dnnl backend is not available, so its checks did NOT run: "
               "%s (meson summary, 'Backends'; Debian package libdnnl-dev) ***\n",
               sm_last_error());
        exit(77);
    }
    return SM_BACKEND_CPU_DNNL;
}

/* Creates the backend test_cpu_backend() names, with SIAMESE_TEST_CONV_ALGO ("auto", "direct"
 * or "fft", for cpu-dnnl's frequency-domain path) applied, so the same checks run once more
 * on FFT convolutions. */
static inline sm_status test_backend_create(sm_backend **out)
{
    sm_status st = sm_backend_create(test_cpu_backend(), out);
    const char *algo = getenv("SIAMESE_TEST_CONV_ALGO");
    if (st != SM_OK || !algo || !*algo) return st;
    int64_t value = !strcmp(algo, "fft")      ? SM_CONV_ALGO_FFT
                    : !strcmp(algo, "direct") ? SM_CONV_ALGO_DIRECT
                                              : SM_CONV_ALGO_AUTO;
    st = sm_backend_set_option(*out, SM_BACKEND_OPT_CONV_ALGO, value);
    if (st == SM_OK) printf("convolutions: SM_CONV_ALGO %s\n", algo);
    return st;
}

#endif
