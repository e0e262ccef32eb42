/* Benchmark (not a test): ms per training step of the reference architecture at batch 180 and
 * 32, prediction throughput for 150 pairs, and the process's peak memory. Synthetic 105x105
 * data, so it runs anywhere. Usage: bench_step [steps=3] [batches=180,32]. Medians reported. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "siamese/siamese.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

#define CHECK(call)                                                                                \
    do {                                                                                           \
        sm_status s_ = (call);                                                                     \
        if (s_ != SM_OK) {                                                                         \
            fprintf(stderr, "%s: %s (%s)\n", #call, sm_status_name(s_), sm_last_error());         \
            return 1;                                                                              \
        }                                                                                          \
    } while (0)

int main(int argc, char **argv)
{
    int steps = argc > 1 ? atoi(argv[1]) : 3;
    const char *batches = argc > 2 ? argv[2] : "180,32";
    if (steps < 1 || steps > 1000) steps = 3;
    sm_backend *be;
    sm_arch *arch;
    sm_subnet *sub;
    sm_head *head;
    sm_adam *adam;
    sm_trainer *tr;
    sm_dataset *ds;
    CHECK(sm_backend_create(SM_BACKEND_AUTO, &be));
    CHECK(sm_arch_create_koch(&arch));
    CHECK(sm_subnet_create(be, arch, 1, &sub));
    CHECK(sm_head_create(be, sm_subnet_feature_dim(sub), 2, &head));
    CHECK(sm_adam_create(sub, head, &adam));
    CHECK(sm_dataset_create_synthetic(50, 20, 105, 105, 3, &ds));
    CHECK(sm_trainer_create(sub, head, adam, ds, 4, &tr));
    printf("backend %s, %d threads, koch architecture (%zu parameters)\n", sm_backend_name(be),
           sm_backend_get_threads(be), sm_subnet_num_params(sub));

    char list[64];
    snprintf(list, sizeof list, "%s", batches);
    for (char *tok = strtok(list, ","); tok; tok = strtok(NULL, ",")) {
        int b = atoi(tok);
        CHECK(sm_trainer_set_param(tr, SM_TRAINER_BATCH_SIZE, b));
        double t[1000];
        float loss = 0;
        CHECK(sm_train_step(tr, &loss)); /* warm-up: first touch of every buffer */
        for (int i = 0; i < steps; i++) {
            double t0 = now();
            CHECK(sm_train_step(tr, &loss));
            t[i] = now() - t0;
        }
        qsort(t, (size_t)steps, sizeof *t, cmp);
        double med = t[steps / 2];
        /* ~1.8 GFLOP forward per image; backward ~2x forward (conv1 skips backward-data) */
        double gflop = 2.0 * b * 1.8 * 3.0;
        printf("train step, batch %3d: median %8.1f ms over %d steps (%.0f GFLOP/s), loss %.4f\n",
               b, med * 1e3, steps, gflop / med, (double)loss);
    }

    enum { P = 150 };
    size_t in = 105 * 105;
    float *a = malloc(P * in * sizeof *a), *bb = malloc(P * in * sizeof *bb), scores[P];
    float labels[P];
    sm_sampler *smp;
    CHECK(sm_sampler_create(ds, 9, &smp));
    CHECK(sm_sampler_next(smp, P, a, bb, labels, NULL, NULL));
    CHECK(sm_predict_pairs(sub, head, P, a, bb, scores)); /* warm-up */
    double t0 = now();
    CHECK(sm_predict_pairs(sub, head, P, a, bb, scores));
    double dt = now() - t0;
    printf("predict %d pairs: %.1f ms (%.1f pairs/s)\n", P, dt * 1e3, P / dt);

    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("peak resident memory: %.0f MiB\n", ru.ru_maxrss / 1024.0);
    free(a), free(bb);
    sm_sampler_destroy(smp);
    sm_trainer_destroy(tr);
    sm_dataset_destroy(ds);
    sm_adam_destroy(adam);
    sm_head_destroy(head);
    sm_subnet_destroy(sub);
    sm_arch_destroy(arch);
    sm_backend_destroy(be);
    return 0;
}
