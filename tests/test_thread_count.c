/* SPDX-License-Identifier: MIT */
/* cpu-blas gives the same bits at any thread count: a few training steps at 1, 2 and 3 threads
 * give the same losses and the same weights, bit for bit. Its products are cut into blocks of
 * rows or columns that depend on the shape only (backends/cpu-blas/gemm.c), and the
 * convolutions take whole images per thread; neither may change a sum's order. The twin's
 * shapes make every path run: one image per product (conv1), several images per product
 * (conv2), and an fc product big enough to be cut. cpu-dnnl's bits depend on the thread count
 * (oneDNN splits its reductions by thread), not on the timing: the same count twice gives the
 * same bits. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "siamese/siamese.h"

#define ARCH "1x28x28:conv16k3,relu,pool2,conv32k3,relu,pool2,conv64k3,relu,flatten,fc96"
enum { STEPS = 3, PROBES = 5 };

typedef struct outcome {
    float loss[STEPS];
    float *features; /* PROBES embeddings after training */
    size_t dim;
} outcome;

static outcome train_at(sm_backend_kind kind, int threads, const sm_dataset *ds)
{
    outcome o = {{0}, NULL, 0};
    sm_backend *be = NULL;
    sm_arch *arch = NULL;
    sm_subnet *sub = NULL;
    sm_head *head = NULL;
    sm_adam *adam = NULL;
    sm_trainer *tr = NULL;
    assert_int_equal(sm_backend_create(kind, &be), SM_OK);
    assert_int_equal(sm_backend_set_threads(be, threads), SM_OK);
    assert_int_equal(sm_arch_from_string(ARCH, &arch), SM_OK);
    assert_int_equal(sm_subnet_create(be, arch, 7, &sub), SM_OK);
    assert_int_equal(sm_subnet_init(sub, SM_INIT_HE, 7), SM_OK);
    o.dim = sm_subnet_feature_dim(sub);
    assert_int_equal(sm_head_create(be, o.dim, 8, &head), SM_OK);
    assert_int_equal(sm_adam_create(sub, head, &adam), SM_OK);
    assert_int_equal(sm_trainer_create(sub, head, adam, ds, 9, &tr), SM_OK);
    assert_int_equal(sm_trainer_set_param(tr, SM_TRAINER_PK_CLASSES, 8), SM_OK);
    assert_int_equal(sm_trainer_set_param(tr, SM_TRAINER_PK_IMAGES, 4), SM_OK);
    for (int s = 0; s < STEPS; s++) assert_int_equal(sm_train_step(tr, &o.loss[s]), SM_OK);
    float *img = calloc(PROBES * 28 * 28, sizeof *img);
    o.features = malloc(PROBES * o.dim * sizeof *o.features);
    assert_non_null(img);
    assert_non_null(o.features);
    for (size_t i = 0; i < PROBES * 28 * 28; i++) img[i] = (float)((i * 37) % 101) / 100.0f;
    assert_int_equal(sm_embed(sub, PROBES, img, o.features), SM_OK);
    free(img);
    sm_trainer_destroy(tr);
    sm_adam_destroy(adam);
    sm_head_destroy(head);
    sm_subnet_destroy(sub);
    sm_arch_destroy(arch);
    sm_backend_destroy(be);
    return o;
}

static void assert_same(sm_backend_kind kind, const outcome *o, int t, const outcome *ref,
                        int ref_t)
{
    for (int s = 0; s < STEPS; s++)
        if (memcmp(&o->loss[s], &ref->loss[s], sizeof(float)) != 0)
            fail_msg("%s: step %d's loss %.9g at %d threads, %.9g at %d",
                     sm_backend_kind_name(kind), s + 1, (double)o->loss[s], t, (double)ref->loss[s],
                     ref_t);
    if (memcmp(o->features, ref->features, PROBES * ref->dim * sizeof(float)) != 0)
        fail_msg("%s: the trained weights differ between %d threads and %d",
                 sm_backend_kind_name(kind), t, ref_t);
}

/* Trains at each of `threads` (n of them) and compares every run with the first. */
static void same_bits(sm_backend_kind kind, const int *threads, int n)
{
    sm_dataset *ds = NULL;
    assert_int_equal(sm_dataset_create_synthetic(24, 6, 28, 28, 5, &ds), SM_OK);
    outcome first = train_at(kind, threads[0], ds);
    for (int i = 1; i < n; i++) {
        outcome o = train_at(kind, threads[i], ds);
        assert_same(kind, &o, threads[i], &first, threads[0]);
        free(o.features);
    }
    free(first.features);
    sm_dataset_destroy(ds);
}

static size_t threads_of_this_process(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    size_t n = 0;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "Threads: %zu", &n) == 1) break;
    if (f) fclose(f);
    return n;
}

/* Run first, before anything in this process has started OpenMP: a backend set to one thread
 * must run on one. oneDNN fixes a primitive's thread count when it creates it, and cpu-dnnl
 * used to create its convolutions while sizing the trainer's workspace, before it had told
 * OpenMP the count: every step then ran on OpenMP's default team (here all cores), whose
 * workers spun beside the caller's other work. */
static void cpu_dnnl_at_one_thread_starts_no_other(void **state)
{
    (void)state;
    if (sm_backend_probe(SM_BACKEND_CPU_DNNL) != SM_OK) {
        fprintf(stderr, "SKIPPED: cpu-dnnl is not available here (%s)\n", sm_last_error());
        skip();
    }
    size_t before = threads_of_this_process();
    if (before == 0) {
        fprintf(stderr, "SKIPPED: no /proc/self/status to count threads\n");
        skip();
    }
    sm_dataset *ds = NULL;
    assert_int_equal(sm_dataset_create_synthetic(24, 6, 28, 28, 5, &ds), SM_OK);
    outcome o = train_at(SM_BACKEND_CPU_DNNL, 1, ds);
    free(o.features);
    sm_dataset_destroy(ds);
    assert_int_equal(threads_of_this_process(), before);
}

static void cpu_blas(void **state)
{
    (void)state;
    static const int threads[] = {1, 2, 3};
    same_bits(SM_BACKEND_CPU, threads, 3);
}

static void cpu_dnnl(void **state)
{
    (void)state;
    if (sm_backend_probe(SM_BACKEND_CPU_DNNL) != SM_OK) {
        fprintf(stderr, "SKIPPED: cpu-dnnl is not available here (%s)\n", sm_last_error());
        skip();
    }
    static const int threads[] = {2, 2};
    same_bits(SM_BACKEND_CPU_DNNL, threads, 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(cpu_dnnl_at_one_thread_starts_no_other),
        cmocka_unit_test(cpu_blas),
        cmocka_unit_test(cpu_dnnl),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
