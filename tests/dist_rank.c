/* SPDX-License-Identifier: MIT */
/* One rank of the MPI tests (tests/test_dist_mpi.sh runs it under mpirun). Built with the
 * host's MPI through the header-only adapter <siamese/comm_mpi.h> (or, with --module, through
 * sm_comm_open("mpi")). Modes:
 *   train ARCH STEPS BATCH MICRO K    train, rank 0 prints "hash <hex> loss <bits>"
 *   solo ARCH STEPS BATCH MICRO K     the same with no communicator (the reference; no mpirun)
 *   stall TIMEOUT                     rank 1 hangs after attaching; the others step and print
 *                                     "status SM_ERR_COMM after <s> s" then exit 3
 *   kill                              rank 1 dies (SIGKILL) after one step; the others step on
 *   save PATH STEPS / resume PATH STEPS  (tiny arch, K = 4) save after STEPS, or load then step
 * --serialized (before the mode) initialises MPI at MPI_THREAD_SERIALIZED rather than
 * FUNNELED, so that the adapter's communicator lets the exchange overlap the backward pass;
 * train then also prints, from rank 0, "overlap 1" (it did) or "overlap 0".
 * Exit status: 0 on success, 3 on SM_ERR_COMM, 1 on other failures. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "siamese/comm_mpi.h"
#include "dist_model.h"
#include "train/training.h"

static int rank = 0, use_module = 0, serialized = 0;

static int fail(const char *what, sm_status st)
{
    fprintf(stderr, "rank %d: %s: %s: %s\n", rank, what, sm_status_name(st), sm_last_error());
    return st == SM_ERR_COMM ? 3 : 1;
}

static sm_status make_comm(sm_comm **c)
{
    if (use_module) return sm_comm_open("mpi", NULL, -1, c);
    return sm_comm_from_mpi(MPI_COMM_WORLD, c);
}

static void report(const dm_model *m, float loss)
{
    float *p;
    size_t n;
    if (dm_params(m, &p, &n) != SM_OK) return;
    uint32_t bits;
    memcpy(&bits, &loss, sizeof bits);
    if (rank == 0) printf("hash %016llx loss %08x\n", (unsigned long long)dm_hash(p, n), bits);
    fflush(stdout);
    free(p);
}

static int train(int argc, char **argv, int solo)
{
    if (argc < 7) return 2;
    const char *arch = argv[2];
    int steps = atoi(argv[3]);
    dm_model m;
    sm_status st = dm_create(&m, arch, atoll(argv[4]), atoll(argv[5]), atoll(argv[6]),
                             SM_DISTORT_ALL, 5 + (solo ? 0 : (uint64_t)rank * 1000));
    if (st != SM_OK) return fail("set-up", st);
    sm_comm *c = NULL;
    if (!solo && (st = make_comm(&c)) != SM_OK) return fail("communicator", st);
    if (c && (st = sm_trainer_attach_comm(m.tr, c)) != SM_OK) return fail("attach", st);
    float loss = 0;
    for (int s = 0; s < steps && st == SM_OK; s++) st = sm_train_step(m.tr, &loss);
    if (st != SM_OK) return fail("step", st);
    report(&m, loss);
    if (!solo && rank == 0) printf("overlap %d\n", m.tr->sh_x.overlap ? 1 : 0);
    dm_destroy(&m);
    sm_comm_destroy(c);
    return 0;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* stall / kill: rank 1 stops after attaching (stall) or after one step (kill). */
static int fault(const char *mode, double timeout)
{
    dm_model m;
    sm_comm *c;
    sm_status st = dm_create(&m, DM_ARCH_TINY, 24, 4, 6, 0, 5); /* K = 6: -np 2 or 3 */
    if (st == SM_OK) st = make_comm(&c);
    if (st == SM_OK) st = sm_comm_set_timeout(c, timeout);
    if (st == SM_OK) st = sm_trainer_attach_comm(m.tr, c);
    if (st != SM_OK) return fail("set-up", st);
    float loss;
    const int kill_mode = strcmp(mode, "kill") == 0;
    for (int s = 0; s < 1000000; s++) {
        if (rank == 1 && !kill_mode) sleep(3600); /* hung */
        if (rank == 1 && kill_mode && s == 1) raise(SIGKILL);
        double t0 = now_s();
        st = sm_train_step(m.tr, &loss);
        if (st != SM_OK) {
            double t = now_s() - t0;
            printf("rank %d status %s after %.3f s (timeout %.3f s): %s\n", rank,
                   sm_status_name(st), t, timeout, sm_last_error());
            fflush(stdout);
            /* later calls return at once */
            t0 = now_s();
            sm_status again = sm_train_step(m.tr, &loss);
            printf("rank %d again %s after %.3f s\n", rank, sm_status_name(again), now_s() - t0);
            fflush(stdout);
            return st == SM_ERR_COMM ? 3 : 1;
        }
    }
    return 0;
}

static int save_resume(const char *path, int steps, int resume)
{
    dm_model m;
    sm_comm *c;
    sm_status st = dm_create(&m, DM_ARCH_TINY, 24, 4, 4, SM_DISTORT_ALL, 5 + (uint64_t)rank);
    if (st == SM_OK && resume) st = sm_trainer_load(m.tr, path);
    if (st == SM_OK) st = make_comm(&c);
    if (st == SM_OK) st = sm_trainer_attach_comm(m.tr, c);
    float loss = 0;
    for (int s = 0; s < steps && st == SM_OK; s++) st = sm_train_step(m.tr, &loss);
    if (st == SM_OK && !resume) st = sm_trainer_save(m.tr, path);
    if (st != SM_OK) return fail(resume ? "resume" : "save", st);
    report(&m, loss);
    dm_destroy(&m);
    sm_comm_destroy(c);
    return 0;
}

int main(int argc, char **argv)
{
    for (; argc > 1 && strncmp(argv[1], "--", 2) == 0; argv++, argc--) {
        if (strcmp(argv[1], "--module") == 0) use_module = 1;
        else if (strcmp(argv[1], "--serialized") == 0) serialized = 1;
        else return 2;
    }
    if (argc < 2) return 2;
    if (strcmp(argv[1], "solo") == 0) return train(argc, argv, 1);
    int level, inited = 0;
    if (!use_module) {
        MPI_Init_thread(&argc, &argv, serialized ? MPI_THREAD_SERIALIZED : MPI_THREAD_FUNNELED,
                        &level);
        inited = 1;
        MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    } else {
        const char *r = getenv("OMPI_COMM_WORLD_RANK");
        if (!r) r = getenv("PMI_RANK");
        rank = r ? atoi(r) : 0;
    }
    int rc = 2;
    if (strcmp(argv[1], "train") == 0) rc = train(argc, argv, 0);
    else if ((strcmp(argv[1], "stall") == 0 || strcmp(argv[1], "kill") == 0) && argc > 2)
        rc = fault(argv[1], atof(argv[2]));
    else if ((strcmp(argv[1], "save") == 0 || strcmp(argv[1], "resume") == 0) && argc > 3)
        rc = save_resume(argv[2], atoi(argv[3]), strcmp(argv[1], "resume") == 0);
    if (rc == 3) _exit(rc); /* a failed collective: leave without MPI_Finalize (it could wait) */
    if (inited) MPI_Finalize();
    return rc;
}
