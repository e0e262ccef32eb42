/* SPDX-License-Identifier: MIT */
/* The data-parallel tests' model (dist_model.h). */
#include "dist_model.h"

#include <stdlib.h>
#include <string.h>

#include "network/network.h"

sm_backend_kind dm_backend = SM_BACKEND_CPU;

sm_status dm_create(dm_model *m, const char *arch, int64_t batch, int64_t micro, int64_t shards,
                    unsigned augment, uint64_t init_seed)
{
    memset(m, 0, sizeof *m);
    /* the MPI script's cpu-dnnl runs (test_dist_mpi.sh) */
    const char *kind = getenv("SIAMESE_TEST_DM_BACKEND");
    if (kind && !strcmp(kind, "cpu-dnnl")) dm_backend = SM_BACKEND_CPU_DNNL;
    sm_status st = sm_backend_create(dm_backend, &m->be);
    if (st == SM_OK && dm_backend != SM_BACKEND_CUDA) st = sm_backend_set_threads(m->be, 1);
    if (st == SM_OK)
        st = strcmp(arch, "koch") == 0 ? sm_arch_create_koch(&m->arch)
                                       : sm_arch_from_string(arch, &m->arch);
    if (st == SM_OK) {
        m->h = m->arch->in_h, m->w = m->arch->in_w;
        st = sm_dataset_create_synthetic(40, 4, m->h, m->w, 3, &m->ds);
    }
    if (st == SM_OK) st = sm_subnet_create(m->be, m->arch, init_seed, &m->sub);
    if (st == SM_OK)
        st = sm_head_create(m->be, sm_subnet_feature_dim(m->sub), init_seed + 1, &m->head);
    if (st == SM_OK) st = sm_adam_create(m->sub, m->head, &m->adam);
    if (st == SM_OK) st = sm_adam_set(m->adam, SM_ADAM_LEARNING_RATE, 1e-3);
    if (st == SM_OK) st = sm_trainer_create(m->sub, m->head, m->adam, m->ds, 7, &m->tr);
    if (st == SM_OK) st = sm_trainer_set_param(m->tr, SM_TRAINER_BATCH_SIZE, batch);
    if (st == SM_OK) st = sm_trainer_set_param(m->tr, SM_TRAINER_MICRO_BATCH, micro);
    if (st == SM_OK) st = sm_trainer_set_param(m->tr, SM_TRAINER_GRAD_SHARDS, shards);
    if (st == SM_OK) st = sm_trainer_set_param(m->tr, SM_TRAINER_AUGMENT, augment);
    /* the MPI script's runs in small buckets of the exchange (test_dist_mpi.sh) */
    const char *bucket = getenv("SIAMESE_TEST_DM_BUCKET");
    if (st == SM_OK && bucket)
        st = sm_trainer_set_param(m->tr, SM_TRAINER_EXCHANGE_BUCKET, atoll(bucket));
    if (st != SM_OK) dm_destroy(m);
    return st;
}

void dm_destroy(dm_model *m)
{
    sm_trainer_destroy(m->tr);
    sm_adam_destroy(m->adam);
    sm_head_destroy(m->head);
    sm_subnet_destroy(m->sub);
    sm_dataset_destroy(m->ds);
    sm_arch_destroy(m->arch);
    sm_backend_destroy(m->be);
    memset(m, 0, sizeof *m);
}

sm_status dm_params(const dm_model *m, float **out, size_t *n)
{
    size_t ns = m->sub->n_params, nh = m->head->n_params;
    float *p = malloc((ns + nh) * sizeof *p);
    if (!p) return SM_ERR_NOMEM;
    sm_status st = sm__subnet_read_params(m->sub, p);
    if (st == SM_OK) st = sm__head_read_params(m->head, p + ns);
    if (st != SM_OK) {
        free(p);
        return st;
    }
    *out = p;
    *n = ns + nh;
    return SM_OK;
}

uint64_t dm_hash(const float *p, size_t n)
{
    const unsigned char *b = (const unsigned char *)p;
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < n * sizeof *p; i++) h = (h ^ b[i]) * 0x100000001b3ULL;
    return h;
}
