/* SPDX-License-Identifier: MIT */
/* The transfer rate of the communicators' collectives alone (docs/distributed.md, "Where the
 * time goes"): the all-to-all and the all-gather of the gradient exchange, each after a
 * barrier, so that no rank waits inside the timed call for a slower one. A rank sends (N-1)/N
 * of its buffer; bytes/s is that over the time of the call (the best of REPS).
 *   under mpirun:  bench_comm mpi MB REPS        the header-only adapter (this MPI)
 *                  bench_comm module MB REPS     sm_comm_open("mpi")
 *                  bench_comm raw MB REPS        MPI_Alltoall / MPI_Allgather themselves
 *   alone:         bench_comm local N MB REPS    sm_comm_local_create: N ranks on threads
 * MB is each rank's whole buffer: 110.8 for the Koch network's exchange at 2 ranks, whose
 * all-to-all sends half of it (55.4 MB) and whose all-gather's result is all of it. Prints
 * from rank 0:
 *   RESULT comm=C ranks=N op=alltoall mb=M ms=T sent_mb_per_s=R
 * and then op=exchange: the whole gradient exchange (lib/comm/grad_exchange.c, K = N shards,
 * not overlapped) of a gradient of MB (110.8: Koch's 27.7 M floats) in buckets of
 * BUCKET bytes (a last argument; default the trainer's), slicing and folding included; its
 * rate counts the bytes a rank sends in the all-to-alls and all-gathers, as bench_dist's. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "comm/comm_impl.h"
#include "comm/grad_exchange.h"
#include "train/training.h"
#include "siamese/comm_mpi.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

typedef struct job {
    sm_comm *comm; /* NULL: raw MPI */
    int rank, size, reps;
    size_t bytes;    /* per rank: the whole buffer */
    uint64_t bucket; /* the exchange's */
    double best[3];  /* all-to-all, all-gather, exchange */
    uint64_t exchange_sent;
    int failed;
} job;

static int barrier(const job *j)
{
    if (!j->comm) return MPI_Barrier(MPI_COMM_WORLD) == MPI_SUCCESS ? 0 : -1;
    return sm_comm_barrier(j->comm) == SM_OK ? 0 : -1;
}

static int collective(const job *j, int op, const void *send, void *recv, size_t block)
{
    if (!j->comm) {
        int rc = op == 0 ? MPI_Alltoall(send, (int)block, MPI_BYTE, recv, (int)block, MPI_BYTE,
                                        MPI_COMM_WORLD)
                         : MPI_Allgather(send, (int)block, MPI_BYTE, recv, (int)block, MPI_BYTE,
                                         MPI_COMM_WORLD);
        return rc == MPI_SUCCESS ? 0 : -1;
    }
    sm_status st = op == 0 ? sm__comm_alltoall(j->comm, send, recv, block, "bench")
                           : sm__comm_allgather(j->comm, send, recv, block, "bench");
    return st == SM_OK ? 0 : -1;
}

static void *run(void *arg)
{
    job *j = arg;
    const size_t block = j->bytes / (size_t)j->size, all = block * (size_t)j->size;
    unsigned char *send = malloc(all), *recv = malloc(all);
    j->failed = !send || !recv;
    if (!j->failed) memset(send, j->rank + 1, all), memset(recv, 0, all);
    j->best[0] = j->best[1] = 1e30;
    for (int r = 0; r <= j->reps && !j->failed; r++) /* the first is a warm-up */
        for (int op = 0; op < 2 && !j->failed; op++) {
            if (barrier(j) != 0) j->failed = 1;
            const double t0 = now_s();
            if (collective(j, op, send, op == 0 ? recv : recv, block) != 0) j->failed = 1;
            const double t = now_s() - t0;
            if (r > 0 && t < j->best[op]) j->best[op] = t;
        }
    free(send);
    free(recv);
    /* the exchange of a gradient of `bytes`, this rank's one shard */
    const size_t g = j->bytes / sizeof(float);
    float *part = j->comm && !j->failed ? malloc(g * sizeof(float)) : NULL;
    j->best[2] = 1e30;
    if (!part) return NULL;
    for (size_t e = 0; e < g; e++) part[e] = (float)(e % 1000) * 1e-3f;
    sm__grad_exchange x;
    memset(&x, 0, sizeof x);
    const double loss = 1.0;
    for (int r = 0; r <= j->reps && !j->failed; r++) {
        const float *folded;
        double sum;
        uint64_t b0, b1;
        sm_comm_stats(j->comm, &b0, NULL);
        if (barrier(j) != 0) j->failed = 1;
        const double t0 = now_s();
        if (sm__grad_exchange_begin(&x, j->comm, (size_t)j->size, g, part, j->bucket, false) !=
                SM_OK ||
            sm__grad_exchange_finish(&x, &loss, &folded, &sum) != SM_OK)
            j->failed = 1;
        const double t = now_s() - t0;
        sm_comm_stats(j->comm, &b1, NULL);
        j->exchange_sent = b1 - b0;
        if (r > 0 && t < j->best[2]) j->best[2] = t;
    }
    sm__grad_exchange_free(&x);
    free(part);
    return NULL;
}

static void print(const char *name, const job *j)
{
    static const char *const ops[] = {"alltoall", "allgather"};
    const double sent = (double)(j->bytes / (size_t)j->size) * (j->size - 1);
    for (int op = 0; op < 2; op++)
        printf("RESULT comm=%s ranks=%d op=%s mb=%.1f ms=%.2f sent_mb_per_s=%.0f\n", name, j->size,
               ops[op], (double)j->bytes / 1e6, 1e3 * j->best[op], sent / j->best[op] / 1e6);
    if (j->comm)
        printf("RESULT comm=%s ranks=%d op=exchange mb=%.1f bucket=%llu ms=%.2f "
               "sent_mb_per_s=%.0f\n",
               name, j->size, (double)j->bytes / 1e6, (unsigned long long)j->bucket,
               1e3 * j->best[2], (double)j->exchange_sent / j->best[2] / 1e6);
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: bench_comm mpi|module|raw MB REPS [BUCKET] | "
                        "bench_comm local N MB REPS [BUCKET]\n");
        return 2;
    }
    const char *mode = argv[1];
    if (strcmp(mode, "local") == 0) {
        if (argc < 5) return 2;
        const int n = atoi(argv[2]);
        sm_comm *c[16];
        job jobs[16];
        pthread_t th[16];
        if (n < 1 || n > 16 || sm_comm_local_create(n, c) != SM_OK) return 1;
        for (int r = 0; r < n; r++) {
            jobs[r] = (job){.comm = c[r], .rank = r, .size = n, .reps = atoi(argv[4]),
                            .bytes = (size_t)(atof(argv[3]) * 1e6),
                            .bucket = argc > 5 ? strtoull(argv[5], NULL, 10) : SM__EXCHANGE_BUCKET_DEFAULT};
            pthread_create(&th[r], NULL, run, &jobs[r]);
        }
        int failed = 0;
        for (int r = 0; r < n; r++) pthread_join(th[r], NULL), failed |= jobs[r].failed;
        if (!failed) print("local", &jobs[0]);
        for (int r = 0; r < n; r++) sm_comm_destroy(c[r]);
        return failed;
    }
    int level;
    MPI_Init_thread(&argc, &argv, MPI_THREAD_SERIALIZED, &level);
    job j = {.reps = atoi(argv[3]), .bytes = (size_t)(atof(argv[2]) * 1e6),
             .bucket = argc > 4 ? strtoull(argv[4], NULL, 10) : SM__EXCHANGE_BUCKET_DEFAULT};
    sm_status st = SM_OK;
    if (strcmp(mode, "mpi") == 0) st = sm_comm_from_mpi(MPI_COMM_WORLD, &j.comm);
    else if (strcmp(mode, "module") == 0) st = sm_comm_open("mpi", NULL, -1, &j.comm);
    if (st != SM_OK) {
        fprintf(stderr, "communicator: %s\n", sm_last_error());
        return 1;
    }
    MPI_Comm_rank(MPI_COMM_WORLD, &j.rank);
    MPI_Comm_size(MPI_COMM_WORLD, &j.size);
    run(&j);
    if (j.rank == 0 && !j.failed) print(mode, &j);
    sm_comm_destroy(j.comm);
    MPI_Finalize();
    return j.failed;
}
