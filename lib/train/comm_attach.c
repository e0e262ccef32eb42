/* SPDX-License-Identifier: MIT */
/* sm_trainer_attach_comm: the ranks compare their configurations (each rank sees every other's
 * record, so all reach the same verdict and name the same difference), then rank 0's training
 * state is broadcast so that every rank starts from the same bits. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "common/alloc.h"
#include "comm/comm_impl.h"
#include "common/error.h"
#include "train/settings.h"
#include "train/training.h"
#include "data/sampler.h"

/* What must be equal on every rank for the ranks to compute one model. Plain numbers only:
 * it travels as bytes (the ranks run the same build, so the same layout; the magic and the
 * size catch a mismatch of builds). */
typedef struct config {
    uint64_t magic, size;
    uint64_t seed, arch_hash, n_params, n_images, n_classes, has_dataset;
    int64_t conv_algo, precision, tf32; /* the backend's options: they decide the bits */
    char backend[32];
    double setting[SM__MAX_SETTINGS]; /* train/settings.h's rows, in order */
    int64_t adam_t; /* not compared: rank 0's says whether its moments must travel */
} config;

#define CONFIG_MAGIC 0x736d636f6e666732ULL /* "smconfg2" */

typedef struct field {
    const char *name;
    size_t off;
    char kind; /* 'i' int64, 'u' uint64, 'd' double, 's' string, 'h' hash */
} field;

/* What is compared besides the settings (the table's `compared` rows come after these). */
#define F(name, member, kind)                                                                      \
    {                                                                                              \
        name, offsetof(config, member), kind                                                       \
    }
static const field fields[] = {
    F("the configuration record's format (different libsiamese builds?)", magic, 'u'),
    F("the configuration record's size (different libsiamese builds?)", size, 'u'),
    F("the architecture", arch_hash, 'h'),
    F("the number of parameters", n_params, 'u'),
    F("the backend", backend, 's'),
    F("the convolution algorithm (SM_BACKEND_OPT_CONV_ALGO)", conv_algo, 'i'),
    F("the precision (SM_BACKEND_OPT_PRECISION)", precision, 'i'),
    F("TF32 (SM_BACKEND_OPT_TF32)", tf32, 'i'),
    F("the seed", seed, 'u'),
    F("whether there is a dataset", has_dataset, 'u'),
    F("the dataset's number of images", n_images, 'u'),
    F("the dataset's number of classes", n_classes, 'u'),
};
#undef F

static uint64_t fnv(uint64_t hsh, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) hsh = (hsh ^ b[i]) * 0x100000001b3ULL;
    return hsh;
}

static uint64_t arch_hash(const sm_arch *a)
{
    uint64_t hsh = 0xcbf29ce484222325ULL;
    int in[3] = {a->in_c, a->in_h, a->in_w};
    hsh = fnv(hsh, in, sizeof in);
    for (size_t i = 0; i < a->n_layers; i++) {
        int l[3] = {(int)a->layers[i].kind, a->layers[i].a, a->layers[i].b};
        hsh = fnv(hsh, l, sizeof l);
    }
    return hsh;
}

static void config_of(const sm_trainer *t, config *c)
{
    memset(c, 0, sizeof *c);
    c->magic = CONFIG_MAGIC;
    c->size = sizeof *c;
    c->seed = t->seed;
    c->arch_hash = arch_hash(&t->subnet->arch);
    c->n_params = t->subnet->n_params + t->head->n_params;
    c->has_dataset = t->dataset != NULL;
    c->n_images = t->dataset ? sm_dataset_num_images(t->dataset) : 0;
    c->n_classes = t->dataset ? sm_dataset_num_classes(t->dataset) : 0;
    for (size_t i = 0; i < sm__n_settings; i++)
        c->setting[i] = sm__setting_get(&sm__settings[i], sm__settings[i].owner == SM__SET_ADAM
                                                              ? (const void *)t->adam
                                                              : (const void *)t);
    snprintf(c->backend, sizeof c->backend, "%s", t->subnet->be->ops->name);
    /* cannot fail: the backend and the keys are valid */
    (void)sm_backend_get_option(t->subnet->be, SM_BACKEND_OPT_CONV_ALGO, &c->conv_algo);
    (void)sm_backend_get_option(t->subnet->be, SM_BACKEND_OPT_PRECISION, &c->precision);
    (void)sm_backend_get_option(t->subnet->be, SM_BACKEND_OPT_TF32, &c->tf32);
    c->adam_t = t->adam->t;
}

static void show(const field *f, const config *c, char *buf, size_t cap)
{
    const char *p = (const char *)c + f->off;
    int64_t i;
    uint64_t u;
    double d;
    switch (f->kind) {
    case 'i':
        memcpy(&i, p, sizeof i);
        snprintf(buf, cap, "%" PRId64, i);
        break;
    case 'u':
        memcpy(&u, p, sizeof u);
        snprintf(buf, cap, "%" PRIu64, u);
        break;
    case 'h':
        memcpy(&u, p, sizeof u);
        snprintf(buf, cap, "hash %016" PRIx64, u);
        break;
    case 'd':
        memcpy(&d, p, sizeof d);
        snprintf(buf, cap, "%.17g", d);
        break;
    default: snprintf(buf, cap, "'%.31s'", p); break;
    }
}

static size_t field_size(const field *f)
{
    return f->kind == 's' ? sizeof(((config *)0)->backend) : 8;
}

static sm_status differ(int me, int r, const char *name, const char *mine, const char *theirs)
{
    return sm__fail(SM_ERR_STATE,
                    "rank %d: the ranks' configurations differ: rank %d has %s = "
                    "%s, rank 0 has %s (every rank must be set up alike)",
                    me, r, name, mine, theirs);
}

/* The first field in which some rank differs from rank 0, or SM_OK. */
static sm_status compare(const config *all, int n, int me)
{
    for (size_t k = 0; k < sizeof fields / sizeof *fields; k++) {
        const field *f = &fields[k];
        for (int r = 1; r < n; r++) {
            if (memcmp((const char *)&all[r] + f->off, (const char *)&all[0] + f->off,
                       field_size(f)) == 0)
                continue;
            char mine[64], theirs[64];
            show(f, &all[r], mine, sizeof mine);
            show(f, &all[0], theirs, sizeof theirs);
            return differ(me, r, f->name, mine, theirs);
        }
    }
    for (size_t i = 0; i < sm__n_settings; i++) {
        if (!sm__settings[i].compared) continue;
        for (int r = 1; r < n; r++) {
            if (memcmp(&all[r].setting[i], &all[0].setting[i], sizeof(double)) == 0) continue;
            char mine[64], theirs[64], name[128];
            snprintf(mine, sizeof mine, "%.17g", all[r].setting[i]);
            snprintf(theirs, sizeof theirs, "%.17g", all[0].setting[i]);
            snprintf(name, sizeof name, "the %s", sm__settings[i].what);
            return differ(me, r, name, mine, theirs);
        }
    }
    return SM_OK;
}

/* Rank 0's parameters, Adam moments and counters, sampler and augmentation states to every
 * rank, in one broadcast. Before rank 0's first update its moments are zero, as every rank's
 * (sm_adam_create): they stay home then, a third of the bytes. */
static size_t counts_of(int i, size_t ns, size_t nh) { return i % 2 ? nh : ns; }

static sm_status share_state(sm_trainer *t, bool with_moments)
{
    sm_subnet *s = t->subnet;
    sm_head *h = t->head;
    sm_adam *a = t->adam;
    const sm_backend_ops *ops = s->be->ops;
    void *ctx = s->be->ctx;
    const size_t ns = s->n_params, nh = h->n_params, g = ns + nh;
    enum { N_WORDS = 2 + 4 + 4 };
    size_t bytes;
    const int n_bufs = with_moments ? 6 : 2;
    const size_t n_floats = with_moments ? 3 * g : g;
    SM_RETURN_IF(!sm__mul_size(n_floats, sizeof(float), &bytes) || bytes > SIZE_MAX - 128,
                 SM_ERR_LIMIT, "the training state is too large to broadcast");
    bytes += N_WORDS * sizeof(uint64_t);
    unsigned char *buf = sm__malloc(bytes);
    if (!buf)
        return sm__fail(SM_ERR_NOMEM, "out of memory for the training state (%zu bytes)", bytes);
    float *f = (float *)(void *)buf;
    float *bufs_dev[6] = {s->params, h->params, a->m_sub, a->m_head, a->v_sub, a->v_head};
    /* without the moments: rank 0's are zero; a rank that stepped alone zeroes its own */
    sm_status st = SM_OK;
    if (!with_moments && a->t != 0)
        for (int i = 2; i < 6 && st == SM_OK; i++)
            st = ops->zero(ctx, bufs_dev[i], counts_of(i, ns, nh) * sizeof(float));
    const size_t counts[6] = {ns, nh, ns, nh, ns, nh};
    uint64_t words[N_WORDS] = {(uint64_t)t->iteration, (uint64_t)a->t};
    if (t->sampler) sm__sampler_get_state(t->sampler, words + 2);
    memcpy(words + 6, t->aug_rng.s, 4 * sizeof(uint64_t));
    const int root = sm_comm_rank(t->comm) == 0;
    size_t off = 0;
    for (int i = 0; i < n_bufs && st == SM_OK; i++) {
        if (root) st = ops->download(ctx, f + off, bufs_dev[i], counts[i] * sizeof(float));
        off += counts[i];
    }
    if (st == SM_OK) memcpy(buf + n_floats * sizeof(float), words, sizeof words);
    if (st == SM_OK)
        st = sm__comm_broadcast(t->comm, buf, bytes, 0, "sharing rank 0's training state");
    if (st == SM_OK && !root) {
        off = 0;
        for (int i = 0; i < n_bufs && st == SM_OK; i++) {
            st = ops->upload(ctx, bufs_dev[i], f + off, counts[i] * sizeof(float));
            off += counts[i];
        }
        memcpy(words, buf + n_floats * sizeof(float), sizeof words);
        if (st == SM_OK) {
            t->iteration = (int64_t)words[0];
            a->t = (int64_t)words[1];
            if (t->sampler) sm__sampler_set_state(t->sampler, words + 2);
            memcpy(t->aug_rng.s, words + 6, 4 * sizeof(uint64_t));
        }
    }
    sm__free(buf);
    return st;
}

SM_API sm_status sm_trainer_attach_comm(sm_trainer *t, sm_comm *comm)
{
    SM_CHECK_ARG(t, "sm_trainer_attach_comm: trainer is NULL");
    t->comm = NULL;
    if (!comm) return SM_OK;
    const int n = sm_comm_size(comm), me = sm_comm_rank(comm);
    config mine, *all = sm__calloc((size_t)n, sizeof *all);
    if (!all) return sm__fail(SM_ERR_NOMEM, "out of memory attaching to %d ranks", n);
    config_of(t, &mine);
    sm_status st =
        sm__comm_allgather(comm, &mine, all, sizeof mine, "comparing the ranks' configurations");
    if (st == SM_OK) st = compare(all, n, me);
    /* the same verdict on every rank: rank 0's K, which all now share */
    const int64_t shards =
        (int64_t)all[0]
            .setting[sm__setting_find(SM__API_PARAM, SM_TRAINER_GRAD_SHARDS) - sm__settings];
    if (st == SM_OK && shards % n != 0)
        st = sm__fail(SM_ERR_INVALID_ARG,
                      "rank %d: %lld gradient shards cannot be split over "
                      "%d ranks: set SM_TRAINER_GRAD_SHARDS to a multiple of %d",
                      me, (long long)shards, n, n);
    /* a measured choice is each process's own: the ranks would compute different bits */
    if (st == SM_OK && n > 1 && all[0].conv_algo == SM_CONV_ALGO_MEASURED)
        st = sm__fail(SM_ERR_INVALID_ARG,
                      "rank %d: SM_CONV_ALGO_MEASURED times each layer in "
                      "each process, so %d ranks could compute different bits: use "
                      "SM_CONV_ALGO_AUTO (or DIRECT or FFT) for data-parallel training",
                      me, n);
    const bool with_moments = st == SM_OK && all[0].adam_t != 0;
    sm__free(all);
    if (st == SM_OK) {
        t->comm = comm;
        st = share_state(t, with_moments);
        if (st != SM_OK) t->comm = NULL;
    }
    return st;
}
