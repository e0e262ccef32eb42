/* SPDX-License-Identifier: MIT */
/* Data-parallel step time (docs/distributed.md, "Measured"): one process of T threads against
 * N ranks of T/N threads, the same batch. Under mpirun it trains with a communicator (K = N
 * shards), alone (no mpirun, or --solo) with none; after a warm-up step it times S steps and
 * prints, from rank 0, one line:
 *   RESULT arch=A batch=B ranks=N threads=T overlap=0|1 bucket=BYTES ms_per_step=X
 *     bytes_per_rank_step=Y exposed_ms=E exposed_pct=P wait_ms=W busy_ms=U exchange_mb_s=R
 * exposed_ms: per step, on the rank whose backward pass ended last, the time from there until
 * the folded gradient was in (what the step waits for the exchange: no waiting for a slower
 * rank is in it, that one is the last); wait_ms: how much earlier the first rank's backward
 * ended (load imbalance: the time the other ranks wait, which is not the exchange's);
 * busy_ms: the time that rank's collectives took, on whichever thread (with overlap, waiting
 * for the peers' backward passes included); exchange_mb_s: bytes sent per rank and step over
 * exposed_ms (the effective exchange rate: with overlap, more than the transfer rate).
 * CLOCK_MONOTONIC is one clock for the ranks of one machine, which the comparison of their
 * times needs: on several machines wait_ms means nothing.
 * Usage: bench_dist ARCH(koch|laptop) BATCH STEPS THREADS [--solo] [--backend cpu|dnnl]
 *                   [--overlap 0|1] [--bucket BYTES]
 * scripts/bench_dist.sh runs the comparison. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "siamese/comm_mpi.h"
#include "train/training.h"

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

enum { MAX_STEPS = 64, PER_STEP = 3 }; /* finish time, done time, busy (s) */

int main(int argc, char **argv)
{
    if (argc < 5) {
        fprintf(stderr, "usage: bench_dist ARCH BATCH STEPS THREADS [--solo] [--backend cpu|dnnl] "
                        "[--overlap 0|1] [--bucket BYTES]\n");
        return 2;
    }
    const char *arch_name = argv[1];
    int64_t batch = atoll(argv[2]), bucket = -1;
    int steps = atoi(argv[3]), threads = atoi(argv[4]), solo = 0, overlap = 1;
    if (steps < 1 || steps > MAX_STEPS) steps = steps < 1 ? 1 : MAX_STEPS;
    sm_backend_kind kind = SM_BACKEND_CPU;
    for (int i = 5; i < argc; i++) {
        if (strcmp(argv[i], "--solo") == 0) solo = 1;
        if (strcmp(argv[i], "--backend") == 0 && i + 1 < argc)
            kind = strcmp(argv[++i], "dnnl") == 0 ? SM_BACKEND_CPU_DNNL : SM_BACKEND_CPU;
        if (strcmp(argv[i], "--overlap") == 0 && i + 1 < argc) overlap = atoi(argv[++i]);
        if (strcmp(argv[i], "--bucket") == 0 && i + 1 < argc) bucket = atoll(argv[++i]);
    }
    if (!solo && !getenv("OMPI_COMM_WORLD_SIZE") && !getenv("PMI_SIZE")) solo = 1;
    int rank = 0, size = 1, level;
    sm_comm *c = NULL;
    if (!solo) {
        /* SERIALIZED: the trainer's exchange thread may run the collectives */
        MPI_Init_thread(&argc, &argv, MPI_THREAD_SERIALIZED, &level);
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
    TRY(sm_trainer_set_param(tr, SM_TRAINER_EXCHANGE_OVERLAP, overlap != 0));
    if (bucket >= 0) TRY(sm_trainer_set_param(tr, SM_TRAINER_EXCHANGE_BUCKET, bucket));
    TRY(sm_trainer_get_param(tr, SM_TRAINER_EXCHANGE_BUCKET, &bucket));
    if (c) TRY(sm_trainer_attach_comm(tr, c));
    float loss;
    TRY(sm_train_step(tr, &loss)); /* warm-up */
    uint64_t b0 = 0, n0 = 0, b1 = 0, n1 = 0;
    sm_comm_stats(c, &b0, &n0);
    double mine[MAX_STEPS * PER_STEP] = {0}, *all = NULL;
    const double t0 = now_s();
    for (int s = 0; s < steps; s++) {
        TRY(sm_train_step(tr, &loss));
        const sm__grad_exchange *x = &tr->sh_x;
        mine[s * PER_STEP + 0] = 1e-9 * (double)x->t_finish;
        mine[s * PER_STEP + 1] = 1e-9 * (double)x->t_done;
        mine[s * PER_STEP + 2] = 1e-9 * (double)x->ns_busy;
    }
    const double t = (now_s() - t0) / steps;
    sm_comm_stats(c, &b1, &n1);
    const int overlapped = tr->sh_x.overlap;
    if (rank == 0) all = calloc((size_t)size * MAX_STEPS * PER_STEP, sizeof *all);
    if (c)
        MPI_Gather(mine, MAX_STEPS * PER_STEP, MPI_DOUBLE, all, MAX_STEPS * PER_STEP, MPI_DOUBLE, 0,
                   MPI_COMM_WORLD);
    if (rank == 0) {
        double exposed = 0, wait = 0, busy = 0;
        for (int s = 0; c && s < steps; s++) {
            int last = 0;
            double first = 1e300, latest = -1e300;
            for (int r = 0; r < size; r++) {
                const double f = all[(r * MAX_STEPS + s) * PER_STEP];
                if (f > latest) latest = f, last = r;
                if (f < first) first = f;
            }
            const double *l = &all[(last * MAX_STEPS + s) * PER_STEP];
            exposed += l[1] - l[0];
            busy += l[2];
            wait += latest - first;
        }
        exposed /= steps, wait /= steps, busy /= steps;
        const double bytes = (double)(b1 - b0) / steps;
        printf("RESULT arch=%s batch=%lld ranks=%d threads=%d backend=%s overlap=%d bucket=%lld "
               "ms_per_step=%.1f bytes_per_rank_step=%.0f exposed_ms=%.1f exposed_pct=%.2f "
               "wait_ms=%.1f busy_ms=%.1f exchange_mb_s=%.0f loss=%.4f\n",
               arch_name, (long long)batch, size, threads, sm_backend_name(be), overlapped,
               (long long)bucket, 1e3 * t, bytes, 1e3 * exposed, 100 * exposed / t, 1e3 * wait,
               1e3 * busy, exposed > 0 ? bytes / exposed / 1e6 : 0.0, (double)loss);
    }
    free(all);
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
