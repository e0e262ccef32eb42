/* SPDX-License-Identifier: MIT */
/* The data-parallel gradient exchange (comm/grad_exchange.h): buckets, their fold, and the
 * thread that runs them while the backward pass goes on. */
#include "comm/grad_exchange.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "comm/comm_impl.h"
#include "common/alloc.h"
#include "common/error.h"

/* The exchange's thread and what it shares with the trainer's, all under `mu`. */
struct sm__exchange_thread {
    pthread_t id;
    pthread_mutex_t mu;
    pthread_cond_t work, done_cv;
    bool quit;
    /* the step: buckets [0, next) are not started yet (next - 1 is the next one); a bucket
     * can leave once frontier <= its first float */
    bool active, finishing, cancel, done;
    size_t next, frontier;
    const double *losses;
    sm_status st;
    char msg[512];
};

void sm__shard_slice(size_t g, size_t nr, size_t j, size_t *begin, size_t *count)
{
    const size_t l = (g + nr - 1) / nr;
    /* j l may pass g (g = 5, nr = 4: l = 2, slice 3 would start at 6): such a slice is empty */
    const size_t b = j < nr && j * l < g ? j * l : g;
    *begin = b;
    *count = g - b < l ? g - b : l;
}

size_t sm__exchange_bucket_floats(uint64_t bucket_bytes, size_t g, size_t nr)
{
    const size_t whole = g ? (g + nr - 1) / nr * nr : nr;
    const uint64_t floats = bucket_bytes / sizeof(float);
    if (bucket_bytes == 0 || floats >= (uint64_t)whole) return whole;
    const size_t b = (size_t)floats / nr * nr;
    return b ? b : nr;
}

static sm_status grow(void **p, size_t *cap, size_t bytes)
{
    if (bytes <= *cap) return SM_OK;
    void *q = sm__realloc(*p, bytes);
    if (!q)
        return sm__fail(SM_ERR_NOMEM, "out of memory for the gradient exchange (%zu bytes)", bytes);
    *p = q;
    *cap = bytes;
    return SM_OK;
}

/* Bucket b: its first float and its length. */
static void bucket_range(const sm__grad_exchange *x, size_t b, size_t *a, size_t *m)
{
    *a = b * x->bucket;
    *m = x->g - *a < x->bucket ? x->g - *a : x->bucket;
}

/* One bucket: all-to-all of its slices, the fold of this rank's slice in shard order, the
 * all-gather of the folded slices into `full`. Runs on either thread. */
static sm_status run_bucket(sm__grad_exchange *x, size_t b)
{
    const size_t nr = x->nr, per = x->per;
    size_t a, m;
    bucket_range(x, b, &a, &m);
    const size_t l = (m + nr - 1) / nr;
    const void *send = x->part + a; /* one local shard, no padding: the blocks are in place */
    if (per > 1 || m != nr * l) {
        float *s = (float *)(void *)x->send;
        for (size_t j = 0; j < nr; j++) {
            size_t e0, count;
            sm__shard_slice(m, nr, j, &e0, &count);
            for (size_t q = 0; q < per; q++) {
                float *d = s + (j * per + q) * l;
                if (count) memcpy(d, x->part + q * x->g + a + e0, count * sizeof(float));
                if (count < l) memset(d + count, 0, (l - count) * sizeof(float));
            }
        }
        send = s;
    }
    const size_t block = per * l * sizeof(float);
    SM_TRY(sm__comm_alltoall(x->comm, send, x->recv, block, "the gradient exchange (all-to-all)"));
    /* source rank i's block holds shards i K/N .. (i+1) K/N - 1: the K slices in shard order */
    const float *src = (const float *)(const void *)x->recv;
    float *acc = x->acc;
    if (x->k == 1) memcpy(acc, src, l * sizeof(float));
    else {
        const float *v0 = src, *v1 = src + l;
        for (size_t e = 0; e < l; e++) acc[e] = v0[e] + v1[e];
        for (size_t s = 2; s < x->k; s++) {
            const float *v = src + s * l;
            for (size_t e = 0; e < l; e++) acc[e] += v[e];
        }
    }
    return sm__comm_allgather(x->comm, acc, x->full + a, l * sizeof(float),
                              "the gradient exchange (all-gather)");
}

/* Every rank's losses to every rank: the last collective of a step. */
static sm_status run_losses(sm__grad_exchange *x, const double *losses)
{
    return sm__comm_allgather(x->comm, losses, x->losses, x->per * sizeof(double),
                              "the gradient exchange (losses)");
}

/* ---- the exchange's thread ---- */

static bool has_work(const struct sm__exchange_thread *t, const sm__grad_exchange *x)
{
    if (!t->active || t->done) return false;
    if (t->cancel) return true;
    if (t->next > 0) return (t->next - 1) * x->bucket >= t->frontier;
    return t->finishing;
}

/* Records a failure (the first) and ends the step; under the lock. */
static void thread_fail(struct sm__exchange_thread *t, sm_status st)
{
    t->st = st;
    snprintf(t->msg, sizeof t->msg, "%s", sm_last_error());
    t->done = true;
    pthread_cond_broadcast(&t->done_cv);
}

static void *thread_main(void *arg)
{
    sm__grad_exchange *x = arg;
    struct sm__exchange_thread *t = x->th;
    pthread_mutex_lock(&t->mu);
    for (;;) {
        while (!t->quit && !has_work(t, x)) pthread_cond_wait(&t->work, &t->mu);
        if (t->quit) break;
        if (t->cancel) {
            t->done = true;
            pthread_cond_broadcast(&t->done_cv);
            continue;
        }
        const bool losses = t->next == 0;
        const size_t b = losses ? 0 : --t->next;
        const double *l = t->losses;
        pthread_mutex_unlock(&t->mu);
        const int64_t t0 = sm__comm_now_ns();
        sm_status st = losses ? run_losses(x, l) : run_bucket(x, b);
        const int64_t t1 = sm__comm_now_ns();
        pthread_mutex_lock(&t->mu);
        x->ns_busy += t1 - t0;
        if (st != SM_OK) thread_fail(t, st);
        else if (losses) {
            t->done = true;
            pthread_cond_broadcast(&t->done_cv);
        }
    }
    pthread_mutex_unlock(&t->mu);
    return NULL;
}

/* The thread, made once; false when it cannot be (then the exchange does not overlap). */
static bool thread_start(sm__grad_exchange *x)
{
    if (x->th) return true;
    struct sm__exchange_thread *t = sm__calloc(1, sizeof *t);
    if (!t) return false;
    if (pthread_mutex_init(&t->mu, NULL) != 0) {
        sm__free(t);
        return false;
    }
    if (pthread_cond_init(&t->work, NULL) != 0) {
        pthread_mutex_destroy(&t->mu);
        sm__free(t);
        return false;
    }
    if (pthread_cond_init(&t->done_cv, NULL) != 0) {
        pthread_cond_destroy(&t->work);
        pthread_mutex_destroy(&t->mu);
        sm__free(t);
        return false;
    }
    x->th = t;
    /* the host's signals go to its own threads, not to this one */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    const int rc = pthread_create(&t->id, NULL, thread_main, x);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        pthread_cond_destroy(&t->done_cv);
        pthread_cond_destroy(&t->work);
        pthread_mutex_destroy(&t->mu);
        sm__free(t);
        x->th = NULL;
        return false;
    }
    return true;
}

static void thread_stop(sm__grad_exchange *x)
{
    struct sm__exchange_thread *t = x->th;
    if (!t) return;
    pthread_mutex_lock(&t->mu);
    t->quit = true;
    pthread_cond_broadcast(&t->work);
    pthread_mutex_unlock(&t->mu);
    pthread_join(t->id, NULL);
    pthread_cond_destroy(&t->done_cv);
    pthread_cond_destroy(&t->work);
    pthread_mutex_destroy(&t->mu);
    sm__free(t);
    x->th = NULL;
}

/* ---- the step ---- */

sm_status sm__grad_exchange_begin(sm__grad_exchange *x, sm_comm *comm, size_t shards, size_t g,
                                  const float *part, uint64_t bucket_bytes, bool overlap)
{
    const size_t k = shards, nr = comm ? (size_t)comm->ops.size : 1;
    SM_RETURN_IF(k == 0 || k % nr != 0, SM_ERR_STATE,
                 "%zu gradient shards cannot be split over %zu ranks (the ranks must divide "
                 "SM_TRAINER_GRAD_SHARDS)",
                 k, nr);
    const size_t per = k / nr, bucket = sm__exchange_bucket_floats(bucket_bytes, g, nr);
    const size_t n_buckets = (g + bucket - 1) / bucket;
    /* the largest bucket's slices, and how far the last bucket's padding reaches */
    const size_t l = ((g < bucket ? g : bucket) + nr - 1) / nr;
    const size_t top = n_buckets ? (n_buckets - 1) * bucket : 0;
    const size_t full = comm ? top + nr * ((g - top + nr - 1) / nr) : g;
    size_t block_bytes, full_bytes, acc_bytes;
    SM_RETURN_IF(!sm__mul_size(nr * per, l, &block_bytes) ||
                     !sm__mul_size(block_bytes, sizeof(float), &block_bytes) ||
                     !sm__mul_size(full, sizeof(float), &full_bytes) ||
                     !sm__mul_size(l, sizeof(float), &acc_bytes),
                 SM_ERR_LIMIT, "the gradient exchange's buffers are too large");
    if (comm) {
        size_t cap_send = x->cap_block, cap_recv = x->cap_block;
        SM_TRY(grow((void **)&x->send, &cap_send, block_bytes));
        SM_TRY(grow((void **)&x->recv, &cap_recv, block_bytes));
        x->cap_block = cap_send < cap_recv ? cap_send : cap_recv;
        SM_TRY(grow((void **)&x->acc, &x->cap_acc, acc_bytes ? acc_bytes : 1));
        SM_TRY(grow((void **)&x->losses, &x->cap_losses, k * sizeof(double)));
    }
    SM_TRY(grow((void **)&x->full, &x->cap_full, full_bytes ? full_bytes : 1));
    x->comm = comm, x->k = k, x->nr = nr, x->per = per, x->g = g, x->part = part;
    x->bucket = bucket, x->n_buckets = n_buckets;
    x->overlap = overlap && comm && nr > 1 && atomic_load(&comm->serialized) && thread_start(x);
    x->ns_busy = 0;
    x->active = true;
    if (x->overlap) {
        struct sm__exchange_thread *t = x->th;
        pthread_mutex_lock(&t->mu);
        t->active = true;
        t->finishing = t->cancel = t->done = false;
        t->next = n_buckets;
        t->frontier = g;
        t->losses = NULL;
        t->st = SM_OK;
        t->msg[0] = '\0';
        pthread_cond_broadcast(&t->work); /* an empty gradient: nothing waits for a float */
        pthread_mutex_unlock(&t->mu);
    }
    return SM_OK;
}

bool sm__grad_exchange_overlaps(const sm__grad_exchange *x) { return x->active && x->overlap; }

void sm__grad_exchange_ready(sm__grad_exchange *x, size_t from)
{
    if (!x->active || !x->overlap) return;
    struct sm__exchange_thread *t = x->th;
    pthread_mutex_lock(&t->mu);
    if (from < t->frontier) {
        t->frontier = from;
        pthread_cond_broadcast(&t->work);
    }
    pthread_mutex_unlock(&t->mu);
}

/* Alone: the fold of the K shards straight into `full`. */
static void fold_alone(sm__grad_exchange *x)
{
    const size_t g = x->g;
    float *acc = x->full;
    if (x->k == 1) {
        if (g) memcpy(acc, x->part, g * sizeof(float));
        return;
    }
    const float *v0 = x->part, *v1 = x->part + g;
    for (size_t e = 0; e < g; e++) acc[e] = v0[e] + v1[e];
    for (size_t s = 2; s < x->k; s++) {
        const float *v = x->part + s * g;
        for (size_t e = 0; e < g; e++) acc[e] += v[e];
    }
}

/* Every collective of the step on the calling thread. */
static sm_status run_all(sm__grad_exchange *x, const double *losses)
{
    const int64_t t0 = sm__comm_now_ns();
    sm_status st = SM_OK;
    for (size_t b = x->n_buckets; b-- > 0 && st == SM_OK;) st = run_bucket(x, b);
    if (st == SM_OK) st = run_losses(x, losses);
    x->ns_busy += sm__comm_now_ns() - t0;
    return st;
}

sm_status sm__grad_exchange_finish(sm__grad_exchange *x, const double *losses,
                                   const float **folded, double *loss_sum)
{
    SM_RETURN_IF(!x->active, SM_ERR_INTERNAL, "the gradient exchange was not begun");
    x->t_finish = sm__comm_now_ns();
    x->active = false;
    sm_status st = SM_OK;
    const double *all = losses;
    if (!x->comm) fold_alone(x);
    else if (!x->overlap) st = run_all(x, losses), all = x->losses;
    else {
        struct sm__exchange_thread *t = x->th;
        pthread_mutex_lock(&t->mu);
        t->frontier = 0;
        t->finishing = true;
        t->losses = losses;
        pthread_cond_broadcast(&t->work);
        while (!t->done) pthread_cond_wait(&t->done_cv, &t->mu);
        t->active = false;
        st = t->st;
        pthread_mutex_unlock(&t->mu);
        if (st != SM_OK) st = sm__fail(st, "%s", t->msg);
        all = x->losses;
    }
    x->t_done = sm__comm_now_ns();
    if (st != SM_OK) return st;
    double total = 0.0;
    for (size_t s = 0; s < x->k; s++) total += all[s];
    *folded = x->full;
    *loss_sum = total;
    return SM_OK;
}

void sm__grad_exchange_cancel(sm__grad_exchange *x)
{
    if (!x->active) return;
    x->active = false;
    if (!x->overlap) return;
    struct sm__exchange_thread *t = x->th;
    pthread_mutex_lock(&t->mu);
    t->cancel = true;
    pthread_cond_broadcast(&t->work);
    while (!t->done) pthread_cond_wait(&t->done_cv, &t->mu);
    t->active = false;
    pthread_mutex_unlock(&t->mu);
}

sm_status sm__grad_exchange_fold(sm__grad_exchange *x, sm_comm *comm, size_t shards, size_t g,
                                 const float *part, const double *losses, const float **folded,
                                 double *loss_sum)
{
    SM_TRY(sm__grad_exchange_begin(x, comm, shards, g, part, 0, false));
    return sm__grad_exchange_finish(x, losses, folded, loss_sum);
}

void sm__grad_exchange_free(sm__grad_exchange *x)
{
    thread_stop(x);
    sm__free(x->send);
    sm__free(x->recv);
    sm__free(x->acc);
    sm__free(x->full);
    sm__free(x->losses);
    memset(x, 0, sizeof *x);
}
