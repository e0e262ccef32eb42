/* SPDX-License-Identifier: MIT */
/* Communicators (include/siamese/comm.h): a host's byte-moving callbacks behind one handle that
 * adds a deadline to every collective and fails for good at the first fault, so that no rank
 * ever waits on a dead peer twice. The sums are never here: the trainer folds the bytes it gets
 * in a fixed order (lib/train/trainer_shards.c). */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "common/alloc.h"
#include "comm/comm_impl.h"
#include "common/error.h"

#define SM_COMM_DEFAULT_TIMEOUT_S 300.0
#define SM_COMM_MAX_SIZE          65536

int64_t sm__comm_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

SM_API int64_t sm_comm_clock_ns(void) { return sm__comm_now_ns(); }

SM_API void sm_comm_backoff(unsigned attempt)
{
    if (attempt < 16) return;
    long ns = attempt < 100 ? 1000L * (long)(attempt - 15) * 10 : 1000000L;
    struct timespec ts = {0, ns < 1000000L ? ns : 1000000L};
    nanosleep(&ts, NULL);
}

SM_API sm_status sm_comm_create(const sm_comm_ops *ops, void *user, sm_comm **out)
{
    SM_CHECK_ARG(ops && out, "sm_comm_create: NULL argument");
    SM_RETURN_IF(ops->version > SM_COMM_OPS_VERSION, SM_ERR_VERSION,
                 "sm_comm_create: callback table version %u, this library knows up to %d",
                 (unsigned)ops->version, SM_COMM_OPS_VERSION);
    SM_CHECK_ARG(ops->version >= 1 && ops->struct_size >= offsetof(sm_comm_ops, abort),
                 "sm_comm_create: callback table of version %u and %zu bytes: set struct_size "
                 "= sizeof(sm_comm_ops) and version = SM_COMM_OPS_VERSION",
                 (unsigned)ops->version, ops->struct_size);
    SM_CHECK_ARG(ops->size >= 1 && ops->size <= SM_COMM_MAX_SIZE && ops->rank >= 0 &&
                     ops->rank < ops->size,
                 "sm_comm_create: rank %d of %d ranks (size 1..%d, rank 0..size-1)", ops->rank,
                 ops->size, SM_COMM_MAX_SIZE);
    SM_CHECK_ARG(ops->allgather && ops->alltoall && ops->broadcast,
                 "sm_comm_create: allgather, alltoall and broadcast are required");
    sm_comm *c = sm__calloc(1, sizeof *c);
    if (!c) return sm__fail(SM_ERR_NOMEM, "out of memory creating a communicator");
    /* an older, shorter table: the slots it lacks stay NULL (optional ones) */
    memcpy(&c->ops, ops, ops->struct_size < sizeof c->ops ? ops->struct_size : sizeof c->ops);
    c->ops.struct_size = sizeof c->ops;
    c->user = user;
    c->timeout_ns = (int64_t)(SM_COMM_DEFAULT_TIMEOUT_S * 1e9);
    *out = c;
    return SM_OK;
}

SM_API void sm_comm_destroy(sm_comm *c)
{
    if (!c) return;
    if (c->ops.destroy) c->ops.destroy(c->user);
    sm__free(c);
}

SM_API int sm_comm_rank(const sm_comm *c) { return c ? c->ops.rank : -1; }
SM_API int sm_comm_size(const sm_comm *c) { return c ? c->ops.size : -1; }
SM_API int sm_comm_failed(const sm_comm *c) { return c ? atomic_load(&c->failed) : -1; }

SM_API sm_status sm_comm_set_serialized(sm_comm *c, int yes)
{
    SM_CHECK_ARG(c, "sm_comm_set_serialized: communicator is NULL");
    SM_CHECK_ARG(yes == 0 || yes == 1, "sm_comm_set_serialized: %d is neither 0 nor 1", yes);
    atomic_store(&c->serialized, yes);
    return SM_OK;
}

SM_API int sm_comm_serialized(const sm_comm *c) { return c ? atomic_load(&c->serialized) : -1; }

SM_API sm_status sm_comm_set_timeout(sm_comm *c, double seconds)
{
    SM_CHECK_ARG(c, "sm_comm_set_timeout: communicator is NULL");
    SM_CHECK_ARG(seconds > 0 && seconds <= 1e6, "sm_comm_set_timeout: %g s out of range (0, 1e6]",
                 seconds);
    c->timeout_ns = (int64_t)(seconds * 1e9);
    if (c->timeout_ns < 1) c->timeout_ns = 1;
    return SM_OK;
}

SM_API void sm_comm_stats(const sm_comm *c, uint64_t *bytes_sent, uint64_t *ns_in_collectives)
{
    if (bytes_sent) *bytes_sent = c ? c->bytes_sent : 0;
    if (ns_in_collectives) *ns_in_collectives = c ? c->ns_in : 0;
}

enum { OP_ALLGATHER, OP_ALLTOALL, OP_BROADCAST };
static const char *const op_names[] = {"allgather", "all-to-all", "broadcast"};

/* One collective under the deadline; the first failure fails the communicator for good. */
static sm_status run(sm_comm *c, int op, const void *send, void *recv, size_t bytes, int root,
                     const char *what)
{
    if (atomic_load(&c->failed))
        return sm__fail(SM_ERR_COMM,
                        "rank %d: the communicator failed earlier (%s): %s is not "
                        "attempted",
                        c->ops.rank, c->why, what);
    const int64_t t0 = sm__comm_now_ns(), deadline = t0 + c->timeout_ns;
    sm_comm_result r = SM_COMM_FAILED;
    switch (op) {
    case OP_ALLGATHER: r = c->ops.allgather(c->user, send, recv, bytes, deadline); break;
    case OP_ALLTOALL: r = c->ops.alltoall(c->user, send, recv, bytes, deadline); break;
    case OP_BROADCAST: r = c->ops.broadcast(c->user, recv, bytes, root, deadline); break;
    }
    const int64_t t1 = sm__comm_now_ns();
    c->ns_in += (uint64_t)(t1 - t0);
    const int n = c->ops.size;
    switch (op) {
    case OP_ALLGATHER: c->bytes_sent += (uint64_t)(n - 1) * bytes; break;
    case OP_ALLTOALL: c->bytes_sent += (uint64_t)(n - 1) * bytes; break;
    case OP_BROADCAST: c->bytes_sent += c->ops.rank == root ? (uint64_t)(n - 1) * bytes : 0; break;
    }
    if (r == SM_COMM_OK) return SM_OK;
    if (r == SM_COMM_TIMEOUT)
        snprintf(c->why, sizeof c->why,
                 "%s of %zu bytes per rank timed out after %.3f s (timeout %.3f s): a peer "
                 "died or stalled",
                 op_names[op], bytes, (double)(t1 - t0) / 1e9, (double)c->timeout_ns / 1e9);
    else
        snprintf(c->why, sizeof c->why,
                 "%s of %zu bytes per rank failed after %.3f s (the "
                 "transport reported an error; a peer may have died)",
                 op_names[op], bytes, (double)(t1 - t0) / 1e9);
    atomic_store(&c->failed, 1);
    if (c->ops.abort) c->ops.abort(c->user);
    return sm__fail(SM_ERR_COMM, "rank %d of %d: %s: %s", c->ops.rank, n, what, c->why);
}

sm_status sm__comm_allgather(sm_comm *c, const void *send, void *recv, size_t bytes,
                             const char *what)
{
    return run(c, OP_ALLGATHER, send, recv, bytes, 0, what);
}

sm_status sm__comm_alltoall(sm_comm *c, const void *send, void *recv, size_t bytes,
                            const char *what)
{
    return run(c, OP_ALLTOALL, send, recv, bytes, 0, what);
}

sm_status sm__comm_broadcast(sm_comm *c, void *buf, size_t bytes, int root, const char *what)
{
    return run(c, OP_BROADCAST, NULL, buf, bytes, root, what);
}

SM_API sm_status sm_comm_broadcast(sm_comm *c, void *buf, size_t bytes, int root)
{
    SM_CHECK_ARG(c && (buf || bytes == 0), "sm_comm_broadcast: NULL argument");
    SM_CHECK_ARG(root >= 0 && root < c->ops.size, "sm_comm_broadcast: root %d of %d ranks", root,
                 c->ops.size);
    return run(c, OP_BROADCAST, NULL, buf, bytes, root, "sm_comm_broadcast");
}

SM_API sm_status sm_comm_allgather(sm_comm *c, const void *send, void *recv, size_t bytes)
{
    SM_CHECK_ARG(c && ((send && recv) || bytes == 0), "sm_comm_allgather: NULL argument");
    return run(c, OP_ALLGATHER, send, recv, bytes, 0, "sm_comm_allgather");
}

SM_API sm_status sm_comm_barrier(sm_comm *c)
{
    SM_CHECK_ARG(c, "sm_comm_barrier: communicator is NULL");
    /* one byte from each rank: nobody leaves before everyone arrived */
    unsigned char one = 1, small[64], *all = small;
    size_t n = (size_t)c->ops.size;
    if (n > sizeof small && !(all = sm__malloc(n)))
        return sm__fail(SM_ERR_NOMEM, "out of memory for a barrier of %zu ranks", n);
    sm_status st = run(c, OP_ALLGATHER, &one, all, 1, 0, "sm_comm_barrier");
    if (all != small) sm__free(all);
    return st;
}
