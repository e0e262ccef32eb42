/* SPDX-License-Identifier: MIT */
/* Benchmark (not a test): ms per training step of the reference architecture at batch 180 and
 * 32, prediction throughput for 150 pairs, and the process's peak memory. Synthetic 105x105
 * data, so it runs anywhere. Usage: bench_step [steps=3] [batches=180,32] [backend=auto]
 * [tf32=0] [micro=0]; backend is auto, cpu or cuda; micro is the micro-batch (0: the library's
 * default; a GPU wants the whole batch at once). Medians reported; each figure is also printed as a
 * "RESULT key=value ..." line for scripts (scripts/device/run-all.sh). */
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
            fprintf(stderr, "%s: %s (%s)\n", #call, sm_status_name(s_), sm_last_error());          \
            return 1;                                                                              \
        }                                                                                          \
    } while (0)

/* The library's log (for cuda: each layer's chosen cuDNN algorithm), as "# " lines on stderr. */
static void on_log(void *user, sm_log_level level, const char *message)
{
    (void)user;
    (void)level;
    fprintf(stderr, "# %s\n", message);
}

int main(int argc, char **argv)
{
    sm_set_log_callback(on_log, NULL, SM_LOG_INFO);
    int steps = argc > 1 ? atoi(argv[1]) : 3;
    const char *batches = argc > 2 ? argv[2] : "180,32";
    const char *backend = argc > 3 ? argv[3] : "auto";
    int tf32 = argc > 4 ? atoi(argv[4]) : 0;
    int micro = argc > 5 ? atoi(argv[5]) : 0;
    if (steps < 1 || steps > 1000) steps = 3;
    sm_backend_kind kind = SM_BACKEND_AUTO;
    if (!strcmp(backend, "cpu")) kind = SM_BACKEND_CPU;
    else if (!strcmp(backend, "cuda")) kind = SM_BACKEND_CUDA;
    else if (strcmp(backend, "auto")) {
        fprintf(stderr, "bench_step: backend is auto, cpu or cuda, not '%s'\n", backend);
        return 2;
    }
    sm_backend *be;
    sm_arch *arch;
    sm_subnet *sub;
    sm_head *head;
    sm_adam *adam;
    sm_trainer *tr;
    sm_dataset *ds;
    CHECK(sm_backend_create(kind, &be));
    CHECK(sm_backend_set_option(be, SM_BACKEND_OPT_TF32, tf32 != 0));
    if (*sm_backend_fallback_reason(be))
        printf("auto backend fell back: %s\n", sm_backend_fallback_reason(be));
    CHECK(sm_arch_create_koch(&arch));
    CHECK(sm_subnet_create(be, arch, 1, &sub));
    CHECK(sm_head_create(be, sm_subnet_feature_dim(sub), 2, &head));
    CHECK(sm_adam_create(sub, head, &adam));
    CHECK(sm_dataset_create_synthetic(50, 20, 105, 105, 3, &ds));
    CHECK(sm_trainer_create(sub, head, adam, ds, 4, &tr));
    printf("backend %s (TF32 %s), %d threads, koch architecture (%zu parameters)\n",
           sm_backend_name(be), tf32 ? "on" : "off", sm_backend_get_threads(be),
           sm_subnet_num_params(sub));

    char list[64];
    snprintf(list, sizeof list, "%s", batches);
    for (char *tok = strtok(list, ","); tok; tok = strtok(NULL, ",")) {
        int b = atoi(tok);
        CHECK(sm_trainer_set_param(tr, SM_TRAINER_BATCH_SIZE, b));
        if (micro > 0)
            CHECK(sm_trainer_set_param(tr, SM_TRAINER_MICRO_BATCH, micro < b ? micro : b));
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
        printf("RESULT backend=%s tf32=%d what=step batch=%d ms=%.3f\n", sm_backend_name(be),
               tf32 != 0, b, med * 1e3);
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
    printf("RESULT backend=%s tf32=%d what=predict pairs=%d per_s=%.1f\n", sm_backend_name(be),
           tf32 != 0, P, P / dt);

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
