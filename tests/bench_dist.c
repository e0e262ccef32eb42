/* SPDX-License-Identifier: MIT */
/* Data-parallel step time (docs/distributed.md, "Measured"): one process of T threads against
 * N ranks of T/N threads, the same batch. Under mpirun it trains with a communicator (K = N
 * shards), alone (no mpirun, or --solo) with none; after W warm-up steps it times S steps and
 * prints, from rank 0, one line:
 *   RESULT arch=A batch=B ranks=N threads=T ms_per_step=X bytes_per_rank_step=Y comm_ms_per_step=Z
 * Usage: bench_dist ARCH(koch|laptop) BATCH STEPS THREADS [--solo] [--backend cpu|dnnl]
 * scripts/bench_dist.sh runs the comparison. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "siamese/comm_mpi.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

#define TRY(x)                                                                                     \
    do {                                                                                           \
        sm_status s_ = (x);                                                                        \
        if (s_ != SM_OK) {                                                                         \
            fprintf(stderr, "%s: %s: %s\n", #x, sm_status_name(s_), sm_last_error());              \
            return 1;                                                                              \
        }                                                                                          \
    } while (0)

int main(int argc, char **argv)
{
    if (argc < 5) {
        fprintf(stderr,
                "usage: bench_dist ARCH BATCH STEPS THREADS [--solo] [--backend cpu|dnnl]\n");
        return 2;
    }
    const char *arch_name = argv[1];
    int64_t batch = atoll(argv[2]);
    int steps = atoi(argv[3]), threads = atoi(argv[4]), solo = 0;
    sm_backend_kind kind = SM_BACKEND_CPU;
    for (int i = 5; i < argc; i++) {
        if (strcmp(argv[i], "--solo") == 0) solo = 1;
        if (strcmp(argv[i], "--backend") == 0 && i + 1 < argc)
            kind = strcmp(argv[++i], "dnnl") == 0 ? SM_BACKEND_CPU_DNNL : SM_BACKEND_CPU;
    }
    if (!solo && !getenv("OMPI_COMM_WORLD_SIZE") && !getenv("PMI_SIZE")) solo = 1;
    int rank = 0, size = 1, level;
    sm_comm *c = NULL;
    if (!solo) {
        MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &level);
        TRY(sm_comm_from_mpi(MPI_COMM_WORLD, &c));
        rank = sm_comm_rank(c), size = sm_comm_size(c);
    }
    sm_backend *be;
    sm_arch *arch;
    sm_subnet *sub;
    sm_head *head;
    sm_adam *adam;
    sm_dataset *ds;
    sm_trainer *tr;
    TRY(sm_backend_create(kind, &be));
    TRY(sm_backend_set_threads(be, threads));
    TRY(strcmp(arch_name, "koch") == 0 ? sm_arch_create_koch(&arch) : sm_arch_create_laptop(&arch));
    int c_, h, w;
    TRY(sm_arch_input_shape(arch, &c_, &h, &w));
    TRY(sm_dataset_create_synthetic(100, 10, h, w, 3, &ds));
    TRY(sm_subnet_create(be, arch, 1, &sub));
    TRY(sm_head_create(be, sm_subnet_feature_dim(sub), 2, &head));
    TRY(sm_adam_create(sub, head, &adam));
    TRY(sm_trainer_create(sub, head, adam, ds, 3, &tr));
    TRY(sm_trainer_set_param(tr, SM_TRAINER_BATCH_SIZE, batch));
    TRY(sm_trainer_set_param(tr, SM_TRAINER_GRAD_SHARDS, size));
    if (c) TRY(sm_trainer_attach_comm(tr, c));
    float loss;
    TRY(sm_train_step(tr, &loss)); /* warm-up */
    uint64_t b0 = 0, n0 = 0, b1 = 0, n1 = 0;
    sm_comm_stats(c, &b0, &n0);
    double t0 = now_s();
    for (int s = 0; s < steps; s++) TRY(sm_train_step(tr, &loss));
    double t = (now_s() - t0) / steps;
    sm_comm_stats(c, &b1, &n1);
    if (rank == 0)
        printf("RESULT arch=%s batch=%lld ranks=%d threads=%d backend=%s ms_per_step=%.1f "
               "bytes_per_rank_step=%.0f comm_ms_per_step=%.1f loss=%.4f\n",
               arch_name, (long long)batch, size, threads, sm_backend_name(be), 1e3 * t,
               (double)(b1 - b0) / steps, (double)(n1 - n0) / 1e6 / steps, (double)loss);
    sm_trainer_destroy(tr);
    sm_adam_destroy(adam);
    sm_head_destroy(head);
    sm_subnet_destroy(sub);
    sm_dataset_destroy(ds);
    sm_arch_destroy(arch);
    sm_backend_destroy(be);
    sm_comm_destroy(c);
    if (!solo) MPI_Finalize();
    return 0;
}
