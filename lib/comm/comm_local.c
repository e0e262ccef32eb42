/* SPDX-License-Identifier: MIT */
/* In-process communicators (sm_comm_local_create): ranks are threads of one process that meet
 * at a rendezvous for each collective. Every rank posts its buffers and waits for all (under its
 * deadline); each then copies what it needs from the others' buffers while holding the lock, and
 * waits again until all have copied, so no buffer is read after its owner returned. A rank that
 * times out marks the group failed (under the lock), and no one copies after that: a stalled
 * thread behaves as a dead peer does in MPI. A rank woken from the first barrier re-acquires the
 * lock only later, and a peer may have timed out in the second barrier and returned meanwhile
 * (its caller free to reuse its buffers), so the copy starts only if the group has not failed:
 * the lock is held from that check to the end of the copy, and only a failing rank leaves early. */
#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <time.h>

#include "common/alloc.h"
#include "comm/comm_impl.h"
#include "common/error.h"

#define SM_LOCAL_MAX 256

typedef struct local_group {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int size;
    int arrived;         /* ranks at the current barrier */
    uint64_t generation; /* barriers completed */
    int failed;
    int refs;          /* ranks not yet destroyed */
    const void **send; /* per rank: posted buffers of the current collective */
    void **recv;
} local_group;

typedef struct local_rank {
    local_group *g;
    int rank;
} local_rank;

/* Waits, under the lock, until every rank reached this barrier; 0, or -1 on failure/timeout
 * (the group is then failed). */
static int barrier(local_group *g, int64_t deadline_ns, sm_comm_result *why)
{
    if (g->failed) {
        *why = SM_COMM_FAILED;
        return -1;
    }
    const uint64_t gen = g->generation;
    if (++g->arrived == g->size) {
        g->arrived = 0;
        g->generation++;
        pthread_cond_broadcast(&g->cv);
        return 0;
    }
    struct timespec ts = {(time_t)(deadline_ns / 1000000000), (long)(deadline_ns % 1000000000)};
    while (g->generation == gen && !g->failed) {
        int rc = pthread_cond_timedwait(&g->cv, &g->mu, &ts);
        if (rc == ETIMEDOUT && g->generation == gen && !g->failed) {
            g->failed = 1;
            pthread_cond_broadcast(&g->cv);
            *why = SM_COMM_TIMEOUT;
            return -1;
        }
    }
    if (g->generation != gen) return 0;
    *why = SM_COMM_FAILED;
    return -1;
}

enum { L_ALLGATHER, L_ALLTOALL, L_BROADCAST };

void (*sm__comm_local_test_delay)(int rank, int phase); /* test only: see comm_impl.h */

/* The test hook, if set, runs without the lock (as if this thread had been woken but not yet
 * scheduled), so that peers can time out and return meanwhile. */
static void test_delay(local_group *g, int rank, int phase)
{
    void (*hook)(int, int) = sm__comm_local_test_delay;
    if (!hook) return;
    pthread_mutex_unlock(&g->mu);
    hook(rank, phase);
    pthread_mutex_lock(&g->mu);
}

/* Copies this rank's part of the others' posted buffers into recv (under the lock). */
static void copy_in(const local_group *g, int rank, int op, void *recv, size_t bytes, int root)
{
    for (int i = 0; i < g->size && bytes; i++) {
        switch (op) {
        case L_ALLGATHER: memcpy((char *)recv + (size_t)i * bytes, g->send[i], bytes); break;
        case L_ALLTOALL:
            memcpy((char *)recv + (size_t)i * bytes,
                   (const char *)g->send[i] + (size_t)rank * bytes, bytes);
            break;
        case L_BROADCAST:
            if (i == root && i != rank) memcpy(recv, g->recv[root], bytes);
            break;
        }
    }
}

static sm_comm_result collective(local_rank *r, int op, const void *send, void *recv, size_t bytes,
                                 int root, int64_t deadline_ns)
{
    local_group *g = r->g;
    sm_comm_result why = SM_COMM_OK;
    pthread_mutex_lock(&g->mu);
    g->send[r->rank] = send;
    g->recv[r->rank] = recv;
    if (barrier(g, deadline_ns, &why) == 0) {
        test_delay(g, r->rank, SM__COMM_LOCAL_WOKEN);
        /* everyone posted, but a peer may since have timed out in the second barrier and
         * returned: its buffers are its caller's again. Failed is set before any rank leaves
         * early, and the lock is held from here to the end of the copy. */
        if (g->failed) why = SM_COMM_FAILED;
        else {
            copy_in(g, r->rank, op, recv, bytes, root);
            barrier(g, deadline_ns, &why);
        }
    }
    pthread_mutex_unlock(&g->mu);
    return why;
}

static sm_comm_result l_allgather(void *u, const void *send, void *recv, size_t bytes,
                                  int64_t deadline_ns)
{
    return collective(u, L_ALLGATHER, send, recv, bytes, 0, deadline_ns);
}

static sm_comm_result l_alltoall(void *u, const void *send, void *recv, size_t bytes,
                                 int64_t deadline_ns)
{
    return collective(u, L_ALLTOALL, send, recv, bytes, 0, deadline_ns);
}

static sm_comm_result l_broadcast(void *u, void *buf, size_t bytes, int root, int64_t deadline_ns)
{
    return collective(u, L_BROADCAST, buf, buf, bytes, root, deadline_ns);
}

static void group_release(local_group *g)
{
    pthread_mutex_lock(&g->mu);
    int left = --g->refs;
    pthread_mutex_unlock(&g->mu);
    if (left) return;
    pthread_cond_destroy(&g->cv);
    pthread_mutex_destroy(&g->mu);
    sm__free(g->send);
    sm__free(g->recv);
    sm__free(g);
}

/* A rank that goes away fails the group: the others must not wait for it. */
static void l_destroy(void *u)
{
    local_rank *r = u;
    local_group *g = r->g;
    pthread_mutex_lock(&g->mu);
    g->failed = 1;
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
    group_release(g);
    sm__free(r);
}

static local_group *group_new(int size)
{
    local_group *g = sm__calloc(1, sizeof *g);
    if (!g) return NULL;
    g->send = sm__calloc((size_t)size, sizeof *g->send);
    g->recv = sm__calloc((size_t)size, sizeof *g->recv);
    pthread_condattr_t ca;
    int ok = g->send && g->recv && pthread_condattr_init(&ca) == 0;
    if (ok) {
        ok = pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) == 0 &&
             pthread_cond_init(&g->cv, &ca) == 0;
        pthread_condattr_destroy(&ca);
        if (ok && pthread_mutex_init(&g->mu, NULL) != 0) {
            pthread_cond_destroy(&g->cv);
            ok = 0;
        }
    }
    if (!ok) {
        sm__free(g->send);
        sm__free(g->recv);
        sm__free(g);
        return NULL;
    }
    g->size = size;
    return g;
}

SM_API sm_status sm_comm_local_create(int size, sm_comm **out)
{
    SM_CHECK_ARG(out, "sm_comm_local_create: NULL argument");
    SM_CHECK_ARG(size >= 1 && size <= SM_LOCAL_MAX,
                 "sm_comm_local_create: %d ranks, expected "
                 "1..%d",
                 size, SM_LOCAL_MAX);
    local_group *g = group_new(size);
    if (!g) return sm__fail(SM_ERR_NOMEM, "out of memory for %d local ranks", size);
    sm_comm_ops ops = {
        .struct_size = sizeof ops,
        .version = SM_COMM_OPS_VERSION,
        .size = size,
        .allgather = l_allgather,
        .alltoall = l_alltoall,
        .broadcast = l_broadcast,
        .abort = NULL,
        .destroy = l_destroy,
    };
    int made = 0;
    sm_status st = SM_OK;
    for (; made < size; made++) {
        local_rank *r = sm__calloc(1, sizeof *r);
        ops.rank = made;
        if (r) {
            r->g = g;
            r->rank = made;
            g->refs++;
        }
        st = r ? sm_comm_create(&ops, r, &out[made]) : SM_ERR_NOMEM;
        /* a rank is used by one thread at a time, whichever: the exchange's may overlap */
        if (st == SM_OK) atomic_store(&out[made]->serialized, 1);
        if (st != SM_OK) {
            if (r) {
                g->refs--;
                sm__free(r);
            }
            break;
        }
    }
    if (st != SM_OK) {
        g->refs++; /* keep the group alive while the made ranks go */
        for (int i = 0; i < made; i++) sm_comm_destroy(out[i]);
        group_release(g);
        return sm__fail(SM_ERR_NOMEM, "out of memory for %d local ranks", size);
    }
    return SM_OK;
}
