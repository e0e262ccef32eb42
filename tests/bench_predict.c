/* SPDX-License-Identifier: MIT */
/* Benchmark (never a test): sm_predict_pairs on P pairs from C, the reference that
 * tests/bench_python_predict.py measures the Python binding against. Public API only.
 *
 *   bench_predict [--arch TEXT] [--pairs 150] [--reps 20] [--backend auto|cpu|cpu-dnnl|cuda]
 *                 [--threads N]
 *
 * The model is sm_subnet_create(arch, seed 1) + sm_head_create(seed 2) (siamese.Model.create
 * with seed 1); the pairs are the first P of sm_sampler_create(synthetic set of 50 classes x 4
 * images at the arch's size, seed 3; sampler seed 9). One warm-up call, then --reps timed
 * calls. Prints the median and a line
 *   RESULT what=predict backend=B pairs=P ms=MEDIAN hash=FNV1A64_OF_THE_SCORES
 * so that the script can check that both sides computed the same bits. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <siamese/siamese.h>

#define CHECK(call)                                                                                \
    do {                                                                                           \
        sm_status st_ = (call);                                                                    \
        if (st_ != SM_OK) {                                                                        \
            fprintf(stderr, "bench_predict: %s: %s: %s\n", #call, sm_status_name(st_),             \
                    sm_last_error());                                                              \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    const char *arch_text = "laptop", *backend = "auto";
    int pairs = 150, reps = 20, threads = -1;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--arch")) arch_text = argv[i + 1];
        else if (!strcmp(argv[i], "--pairs")) pairs = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--reps")) reps = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--backend")) backend = argv[i + 1];
        else if (!strcmp(argv[i], "--threads")) threads = atoi(argv[i + 1]);
        else {
            fprintf(stderr, "bench_predict: unknown option '%s'\n", argv[i]);
            return 2;
        }
    }
    if (pairs < 1 || reps < 1 || reps > 10000) {
        fprintf(stderr, "bench_predict: --pairs >= 1, --reps 1..10000\n");
        return 2;
    }
    sm_backend_kind kind = !strcmp(backend, "cpu")        ? SM_BACKEND_CPU
                           : !strcmp(backend, "cpu-dnnl") ? SM_BACKEND_CPU_DNNL
                           : !strcmp(backend, "cuda")     ? SM_BACKEND_CUDA
                                                          : SM_BACKEND_AUTO;
    sm_backend *be;
    sm_arch *arch;
    sm_subnet *sub;
    sm_head *head;
    sm_dataset *ds;
    sm_sampler *smp;
    int c = 0, h = 0, w = 0;
    CHECK(sm_backend_create(kind, &be));
    if (threads >= 0) CHECK(sm_backend_set_threads(be, threads));
    CHECK(sm_arch_from_string(arch_text, &arch));
    CHECK(sm_arch_input_shape(arch, &c, &h, &w));
    CHECK(sm_subnet_create(be, arch, 1, &sub));
    CHECK(sm_head_create(be, sm_subnet_feature_dim(sub), 2, &head));
    CHECK(sm_dataset_create_synthetic(50, 4, h, w, 3, &ds));
    CHECK(sm_sampler_create(ds, 9, &smp));
    size_t in = (size_t)h * (size_t)w;
    float *a = malloc((size_t)pairs * in * sizeof *a), *b = malloc((size_t)pairs * in * sizeof *b);
    float *labels = malloc((size_t)pairs * sizeof *labels);
    float *scores = malloc((size_t)pairs * sizeof *scores);
    double *t = malloc((size_t)reps * sizeof *t);
    if (!a || !b || !labels || !scores || !t) return 1;
    CHECK(sm_sampler_next(smp, (size_t)pairs, a, b, labels, NULL, NULL));
    CHECK(sm_predict_pairs(sub, head, (size_t)pairs, a, b, scores)); /* warm-up */
    for (int i = 0; i < reps; i++) {
        double t0 = now();
        CHECK(sm_predict_pairs(sub, head, (size_t)pairs, a, b, scores));
        t[i] = now() - t0;
    }
    qsort(t, (size_t)reps, sizeof *t, cmp);
    double med = reps % 2 ? t[reps / 2] : 0.5 * (t[reps / 2 - 1] + t[reps / 2]);
    uint64_t hash = 1469598103934665603ULL; /* FNV-1a over the scores' bytes */
    const unsigned char *p = (const unsigned char *)scores;
    for (size_t i = 0; i < (size_t)pairs * sizeof *scores; i++)
        hash = (hash ^ p[i]) * 1099511628211ULL;
    printf("predict %d pairs (%s, %s, %d threads): median %.3f ms over %d calls\n", pairs,
           arch_text, sm_backend_name(be), sm_backend_get_threads(be), med * 1e3, reps);
    printf("RESULT what=predict backend=%s pairs=%d ms=%.4f hash=%016llx\n", sm_backend_name(be),
           pairs, med * 1e3, (unsigned long long)hash);
    free(a), free(b), free(labels), free(scores), free(t);
    sm_sampler_destroy(smp);
    sm_dataset_destroy(ds);
    sm_head_destroy(head);
    sm_subnet_destroy(sub);
    sm_arch_destroy(arch);
    sm_backend_destroy(be);
    return 0;
}
