/* SPDX-License-Identifier: MIT */
/* The comm-nccl module on one GPU, one rank (all a single-GPU machine can check; several GPUs
 * are needed for more, docs/distributed.md): it opens through a bootstrap communicator, its
 * collectives move bytes through the device, and a cuda trainer attached to it (K = 2) steps
 * like the same trainer alone. Exits 77 (skipped) without the module, NCCL or a GPU. Runs in
 * the device check (scripts/device/run-all.sh). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dist_model.h"

static int skip(const char *why)
{
    printf("SKIP: %s\n", why);
    return 77;
}

int main(void)
{
    sm_comm *boot, *c;
    if (sm_comm_local_create(1, &boot) != SM_OK) return 1;
    sm_status st = sm_comm_open("nccl", boot, 0, &c);
    if (st == SM_ERR_BACKEND_UNAVAILABLE || st == SM_ERR_COMM) {
        char why[600];
        snprintf(why, sizeof why, "%s: %s", sm_status_name(st), sm_last_error());
        sm_comm_destroy(boot);
        return skip(why);
    }
    if (st != SM_OK) return printf("FAIL: sm_comm_open: %s\n", sm_last_error()), 1;
    sm_comm_destroy(boot); /* no longer needed */
    int fails = 0;
    /* collectives: one rank, through device memory */
    unsigned char in[1000], out[1000], b[333];
    for (int i = 0; i < 1000; i++) in[i] = (unsigned char)(i * 7);
    memset(out, 0, sizeof out);
    for (int i = 0; i < 333; i++) b[i] = (unsigned char)i;
    if (sm_comm_allgather(c, in, out, sizeof in) != SM_OK || memcmp(in, out, sizeof in) != 0)
        fails++, printf("FAIL: allgather: %s\n", sm_last_error());
    if (sm_comm_broadcast(c, b, sizeof b, 0) != SM_OK || b[200] != 200)
        fails++, printf("FAIL: broadcast: %s\n", sm_last_error());
    if (sm_comm_barrier(c) != SM_OK) fails++, printf("FAIL: barrier: %s\n", sm_last_error());
    printf("nccl, one rank: allgather, broadcast, barrier %s\n", fails ? "FAILED" : "ok");

    /* a cuda trainer attached to NCCL (K = 2) against the same trainer alone */
    dm_backend = SM_BACKEND_CUDA;
    dm_model a, m;
    if (dm_create(&a, DM_ARCH_TINY, 16, 4, 2, 0, 5) != SM_OK ||
        dm_create(&m, DM_ARCH_TINY, 16, 4, 2, 0, 5) != SM_OK) {
        printf("FAIL: cuda trainers: %s\n", sm_last_error());
        return 1;
    }
    if ((st = sm_trainer_attach_comm(m.tr, c)) != SM_OK)
        fails++, printf("FAIL: attach: %s\n", sm_last_error());
    float la = 0, lm = 0;
    for (int s = 0; s < 3 && st == SM_OK; s++) {
        if ((st = sm_train_step(a.tr, &la)) == SM_OK) st = sm_train_step(m.tr, &lm);
        if (st != SM_OK) fails++, printf("FAIL: step %d: %s\n", s + 1, sm_last_error());
    }
    float *pa, *pm;
    size_t n;
    if (st == SM_OK && dm_params(&a, &pa, &n) == SM_OK && dm_params(&m, &pm, &n) == SM_OK) {
        double worst = 0;
        for (size_t i = 0; i < n; i++) worst = fmax(worst, fabs((double)pa[i] - (double)pm[i]));
        printf("nccl, one rank: 3 cuda steps, K = 2: loss %.6f alone, %.6f attached; "
               "parameters %s (largest difference %.3g; cuDNN may not be deterministic)\n",
               (double)la, (double)lm, memcmp(pa, pm, n * sizeof *pa) ? "differ" : "identical",
               worst);
        if (!(worst < 1e-4)) fails++;
        free(pa), free(pm);
    }
    uint64_t bytes, ns;
    sm_comm_stats(c, &bytes, &ns);
    printf("nccl, one rank: %.3f ms in collectives\n", (double)ns / 1e6);
    dm_destroy(&a);
    dm_destroy(&m);
    sm_comm_destroy(c);
    printf("%s\n", fails ? "FAILED" : "passed");
    return fails ? 1 : 0;
}
