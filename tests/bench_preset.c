/* SPDX-License-Identifier: MIT */
/* Benchmark (not a test): the oneshot-cpu preset's training step (examples/presets.c: the
 * 28x28 twin, P x K 16 x 4, balanced BCE, He initialisation, Adam) through the public API, on
 * synthetic glyphs. Two ways of running a P x K batch in the same process, alternating, so the
 * ratio is a same-machine figure: "one-pass" (the batch's own buffers: each image once forward
 * and once backward, the library's choice for this shape) and "chunked" (the trainer's
 * micro-batch buffers, features computed then recomputed, forced through the test-only
 * budget). Prints the median ms per step of each and their ratio, and RESULT lines.
 *
 *   bench_preset [--backend auto|cpu|cpu-dnnl] [--steps N] [--rounds R] [--threads N]
 *                [--pk P,K] [--arch TEXT] [--conv-algo auto|direct|fft|measured]
 *                [--precision fp32|bf16] [--only-one-pass 1] (for profilers: skips the chunked
 *                runs) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "train/training.h"

#define PRESET_ARCH "1x28x28:conv64k3,relu,pool2,conv128k3,relu,pool2,conv256k3,relu,flatten,fc512"

#define CHECK(call)                                                                                \
    do {                                                                                           \
        sm_status st_ = (call);                                                                    \
        if (st_ != SM_OK) {                                                                        \
            fprintf(stderr, "bench_preset: %s: %s: %s\n", #call, sm_status_name(st_),              \
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
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

typedef struct run {
    sm_subnet *net;
    sm_head *head;
    sm_adam *adam;
    sm_trainer *tr;
} run;

static void make(run *r, sm_backend *be, const sm_arch *arch, const sm_dataset *ds, int p, int k)
{
    CHECK(sm_subnet_create(be, arch, 1, &r->net));
    CHECK(sm_subnet_init(r->net, SM_INIT_HE, 1));
    CHECK(sm_head_create(be, sm_subnet_feature_dim(r->net), 2, &r->head));
    CHECK(sm_adam_create(r->net, r->head, &r->adam));
    CHECK(sm_adam_set(r->adam, SM_ADAM_LEARNING_RATE, 1e-3));
    CHECK(sm_trainer_create(r->net, r->head, r->adam, ds, 7, &r->tr));
    CHECK(sm_trainer_set_param(r->tr, SM_TRAINER_PK_IMAGES, k));
    CHECK(sm_trainer_set_param(r->tr, SM_TRAINER_PK_CLASSES, p));
}

static void destroy(run *r)
{
    sm_trainer_destroy(r->tr);
    sm_adam_destroy(r->adam);
    sm_head_destroy(r->head);
    sm_subnet_destroy(r->net);
}

/* ms per step of `steps` steps (after one warm-up) with the one-pass budget `budget` */
static double time_steps(run *r, size_t budget, int steps, double *all)
{
    sm__pk_one_pass_bytes = budget;
    float loss;
    CHECK(sm_train_step(r->tr, &loss));
    for (int i = 0; i < steps; i++) {
        const double t0 = now();
        CHECK(sm_train_step(r->tr, &loss));
        all[i] = (now() - t0) * 1e3;
    }
    qsort(all, (size_t)steps, sizeof *all, cmp);
    return all[steps / 2];
}

int main(int argc, char **argv)
{
    const char *backend = "auto", *arch_text = PRESET_ARCH;
    int steps = 20, rounds = 3, threads = 0, p = 16, k = 4, only_one = 0, algo = -1, bf16 = 0;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--backend")) backend = argv[i + 1];
        else if (!strcmp(argv[i], "--steps")) steps = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--rounds")) rounds = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--threads")) threads = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--arch")) arch_text = argv[i + 1];
        else if (!strcmp(argv[i], "--only-one-pass")) only_one = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--conv-algo")) /* auto, direct, fft or measured */
            algo = !strcmp(argv[i + 1], "direct")     ? SM_CONV_ALGO_DIRECT
                   : !strcmp(argv[i + 1], "fft")      ? SM_CONV_ALGO_FFT
                   : !strcmp(argv[i + 1], "measured") ? SM_CONV_ALGO_MEASURED
                                                      : SM_CONV_ALGO_AUTO;
        else if (!strcmp(argv[i], "--precision")) bf16 = !strcmp(argv[i + 1], "bf16");
        else if (!strcmp(argv[i], "--pk")) {
            if (sscanf(argv[i + 1], "%d,%d", &p, &k) != 2) return fprintf(stderr, "bad --pk\n"), 2;
        } else return fprintf(stderr, "bench_preset: unknown option %s\n", argv[i]), 2;
    }
    if (steps < 1 || steps > 10000 || rounds < 1) return fprintf(stderr, "bad --steps\n"), 2;
    sm_backend_kind kind = !strcmp(backend, "cpu")        ? SM_BACKEND_CPU
                           : !strcmp(backend, "cpu-dnnl") ? SM_BACKEND_CPU_DNNL
                                                          : SM_BACKEND_AUTO;
    sm_backend *be;
    sm_arch *arch;
    sm_dataset *ds;
    CHECK(sm_backend_create(kind, &be));
    if (threads) CHECK(sm_backend_set_threads(be, threads));
    if (algo >= 0) CHECK(sm_backend_set_option(be, SM_BACKEND_OPT_CONV_ALGO, algo));
    if (bf16) CHECK(sm_backend_set_option(be, SM_BACKEND_OPT_PRECISION, SM_PRECISION_BF16));
    CHECK(sm_arch_from_string(arch_text, &arch));
    int in_c, h, w;
    CHECK(sm_arch_input_shape(arch, &in_c, &h, &w));
    CHECK(sm_dataset_create_synthetic(200, 20, h, w, 3, &ds));
    run one, chunked;
    make(&one, be, arch, ds, p, k);
    make(&chunked, be, arch, ds, p, k);
    printf("backend %s, %d threads; %s; P x K %d x %d; %d steps a round, %d rounds\n",
           sm_backend_name(be), sm_backend_get_threads(be), arch_text, p, k, steps, rounds);
    double *all = malloc((size_t)steps * sizeof *all), best_one = 1e30, best_chunked = 1e30;
    for (int r = 0; r < rounds; r++) {
        const double a = time_steps(&one, SM__PK_ONE_PASS_BYTES, steps, all);
        const double b = only_one ? a : time_steps(&chunked, 0, steps, all);
        printf("round %d: one-pass %.2f ms/step, chunked %.2f ms/step, ratio %.3f\n", r + 1, a, b,
               a / b);
        if (a < best_one) best_one = a;
        if (b < best_chunked) best_chunked = b;
    }
    sm__pk_one_pass_bytes = SM__PK_ONE_PASS_BYTES;
    printf("RESULT backend=%s%s pk=%dx%d one_pass_ms=%.3f chunked_ms=%.3f ratio=%.3f "
           "one_pass_buffers=%s\n",
           sm_backend_name(be), bf16 ? "-bf16" : "", p, k, best_one, best_chunked,
           best_one / best_chunked,
           one.tr->pk_buf.ws.cap ? "yes" : "no (the trainer's own hold the batch)");
    free(all);
    destroy(&one);
    destroy(&chunked);
    sm_dataset_destroy(ds);
    sm_arch_destroy(arch);
    sm_backend_destroy(be);
    return 0;
}
