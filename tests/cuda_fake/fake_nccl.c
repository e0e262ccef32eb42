/* SPDX-License-Identifier: MIT */
/* A fake NCCL for the comm-nccl module's source (comm/nccl/comm_nccl_module.c), linked with
 * fake_vendor.c's CUDA runtime into a test-only libsiamese-comm-nccl.so in tests/cuda_fake/ (never
 * installed), so that the module's set-up, collectives and teardown run without a GPU or libnccl
 * (tests/test_comm_nccl_fake.c). One rank: a collective copies its input to its output.
 *
 * It keeps the rules of NCCL 2.28's non-blocking communicators (ncclConfig_t.blocking = 0; the
 * only kind it makes): initialisation, a collective, a group and ncclCommFinalize return
 * ncclInProgress, and ncclCommGetAsyncError reports ncclInProgress twice more, then the outcome.
 * A call on a busy communicator fails with ncclInvalidArgument (NCCL's ncclCommEnsureReady), and
 * so does a second ncclCommFinalize; ncclCommDestroy refuses a busy communicator or one in error
 * and frees nothing then; ncclCommAbort frees any. Handles are never really freed, so that a call
 * on a freed one is an error here rather than undefined behaviour.
 *
 * Read from the environment at each call:
 *   SIAMESE_FAKE_NCCL_LOG=path        each call appends "<function> <result>[ <async state>]"
 *   SIAMESE_FAKE_NCCL_INIT=error      ncclCommInitRankConfig fails with the communicator made (as
 *                                     NCCL can when the launch of a non-blocking init fails)
 *   SIAMESE_FAKE_NCCL_FINALIZE=error  ncclCommFinalize fails at once (ncclSystemError)
 *   SIAMESE_FAKE_NCCL_FINALIZE=async  it returns ncclInProgress, then fails (ncclRemoteError) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cuda_runtime_api.h>
#include <nccl.h>

#define FAKE_POLLS 2  /* queries that still report ncclInProgress after a call */
#define FAKE_COMMS 16 /* handles are not reused: enough for one test program */

struct ncclComm {
    int used, freed, finalized;
    int polls;          /* queries left before the pending call's outcome is the state */
    ncclResult_t state; /* what ncclCommGetAsyncError reports */
    ncclResult_t outcome;
};

static struct ncclComm comms[FAKE_COMMS];
static int group_depth;
static struct {
    ncclComm_t comm;
    const void *send; /* the ncclSend not yet matched by an ncclRecv */
    size_t bytes;
    int matched; /* pairs in this group */
} group;

static const char *result_name(ncclResult_t r)
{
    static const char *const names[] = {
        "ncclSuccess",         "ncclUnhandledCudaError", "ncclSystemError", "ncclInternalError",
        "ncclInvalidArgument", "ncclInvalidUsage",       "ncclRemoteError", "ncclInProgress"};
    return (unsigned)r < sizeof names / sizeof *names ? names[r] : "(unknown ncclResult_t)";
}

/* Appends the call to $SIAMESE_FAKE_NCCL_LOG (the test's record of the sequence); returns r. */
static ncclResult_t logged(const char *fn, ncclResult_t r, const ncclResult_t *async)
{
    const char *path = getenv("SIAMESE_FAKE_NCCL_LOG");
    FILE *f = path && *path ? fopen(path, "a") : NULL;
    if (f) {
        fprintf(f, "%s %s%s%s\n", fn, result_name(r), async ? " " : "",
                async ? result_name(*async) : "");
        fclose(f);
    }
    return r;
}

static int env_is(const char *name, const char *value)
{
    const char *v = getenv(name);
    return v && strcmp(v, value) == 0;
}

/* A call that runs on: ncclInProgress until FAKE_POLLS queries have seen it, then `outcome`. */
static ncclResult_t pending(ncclComm_t comm, ncclResult_t outcome)
{
    comm->state = ncclInProgress;
    comm->polls = FAKE_POLLS;
    comm->outcome = outcome;
    return ncclInProgress;
}

/* NCCL's ncclCommEnsureReady: a busy communicator is refused, one in error keeps its error. */
static ncclResult_t ready(ncclComm_t comm)
{
    if (!comm || !comm->used || comm->freed) return ncclInvalidArgument;
    return comm->state == ncclInProgress ? ncclInvalidArgument : comm->state;
}

ncclResult_t ncclGetUniqueId(ncclUniqueId *id)
{
    memset(id, 0, sizeof *id);
    snprintf(id->internal, sizeof id->internal, "tests/cuda_fake/fake_nccl.c");
    return logged("ncclGetUniqueId", ncclSuccess, NULL);
}

const char *ncclGetErrorString(ncclResult_t r) { return result_name(r); }

ncclResult_t ncclCommInitRankConfig(ncclComm_t *comm, int nranks, ncclUniqueId id, int rank,
                                    ncclConfig_t *config)
{
    (void)id;
    static const char fn[] = "ncclCommInitRankConfig";
    struct ncclComm *c = NULL;
    for (int i = 0; i < FAKE_COMMS && !c; i++)
        if (!comms[i].used) c = &comms[i];
    *comm = NULL;
    if (!c || nranks != 1 || rank != 0) return logged(fn, ncclInvalidArgument, NULL);
    if (!config || config->blocking != 0) return logged(fn, ncclInvalidUsage, NULL);
    c->used = 1;
    *comm = c;
    if (env_is("SIAMESE_FAKE_NCCL_INIT", "error"))
        return logged(fn, c->state = ncclSystemError, NULL);
    return logged(fn, pending(c, ncclSuccess), NULL);
}

ncclResult_t ncclCommGetAsyncError(ncclComm_t comm, ncclResult_t *async)
{
    if (!comm || !comm->used || comm->freed || !async)
        return logged("ncclCommGetAsyncError", ncclInvalidArgument, NULL);
    if (comm->state == ncclInProgress && comm->polls-- <= 0) comm->state = comm->outcome;
    *async = comm->state;
    return logged("ncclCommGetAsyncError", ncclSuccess, async);
}

/* One collective on one rank (the module moves bytes: ncclUint8 only): out = in. */
static ncclResult_t collective(const char *fn, const void *in, void *out, size_t count,
                               ncclDataType_t type, ncclComm_t comm)
{
    ncclResult_t r = ready(comm);
    if (r == ncclSuccess && type != ncclUint8) r = ncclInvalidArgument;
    if (r != ncclSuccess) return logged(fn, r, NULL);
    memmove(out, in, count);
    return logged(fn, pending(comm, ncclSuccess), NULL);
}

ncclResult_t ncclAllGather(const void *send, void *recv, size_t count, ncclDataType_t type,
                           ncclComm_t comm, cudaStream_t stream)
{
    (void)stream;
    return collective("ncclAllGather", send, recv, count, type, comm);
}

ncclResult_t ncclBroadcast(const void *send, void *recv, size_t count, ncclDataType_t type,
                           int root, ncclComm_t comm, cudaStream_t stream)
{
    (void)stream;
    if (root != 0) return logged("ncclBroadcast", ncclInvalidArgument, NULL);
    return collective("ncclBroadcast", send, recv, count, type, comm);
}

/* nccl.h declares these two without a prototype ("()"): -Wmissing-prototypes wants one */
ncclResult_t ncclGroupStart(void);
ncclResult_t ncclGroupEnd(void);

ncclResult_t ncclGroupStart(void)
{
    group_depth++;
    return logged("ncclGroupStart", ncclSuccess, NULL);
}

/* Point-to-point, inside a group only, to this rank only: each ncclSend then its ncclRecv. */
ncclResult_t ncclSend(const void *buf, size_t count, ncclDataType_t type, int peer, ncclComm_t comm,
                      cudaStream_t stream)
{
    (void)stream;
    ncclResult_t r = ready(comm);
    if (r == ncclSuccess && (type != ncclUint8 || peer != 0)) r = ncclInvalidArgument;
    if (r == ncclSuccess && (!group_depth || group.send || (group.comm && group.comm != comm)))
        r = ncclInvalidUsage;
    if (r == ncclSuccess) group.comm = comm, group.send = buf, group.bytes = count;
    return logged("ncclSend", r, NULL);
}

ncclResult_t ncclRecv(void *buf, size_t count, ncclDataType_t type, int peer, ncclComm_t comm,
                      cudaStream_t stream)
{
    (void)stream;
    ncclResult_t r = ready(comm);
    if (r == ncclSuccess && (type != ncclUint8 || peer != 0)) r = ncclInvalidArgument;
    if (r == ncclSuccess && (!group.send || group.comm != comm || group.bytes != count))
        r = ncclInvalidUsage;
    if (r == ncclSuccess) {
        memmove(buf, group.send, count);
        group.send = NULL;
        group.matched++;
    }
    return logged("ncclRecv", r, NULL);
}

ncclResult_t ncclGroupEnd(void)
{
    if (!group_depth) return logged("ncclGroupEnd", ncclInvalidUsage, NULL);
    if (--group_depth) return logged("ncclGroupEnd", ncclSuccess, NULL);
    ncclComm_t comm = group.comm;
    const int unmatched = group.send != NULL, matched = group.matched;
    memset(&group, 0, sizeof group);
    if (unmatched) return logged("ncclGroupEnd", ncclInvalidUsage, NULL);
    return logged("ncclGroupEnd", matched ? pending(comm, ncclSuccess) : ncclSuccess, NULL);
}

ncclResult_t ncclCommFinalize(ncclComm_t comm)
{
    static const char fn[] = "ncclCommFinalize";
    ncclResult_t r = ready(comm);
    if (r == ncclSuccess && comm->finalized) r = ncclInvalidArgument; /* NCCL: no second one */
    if (r != ncclSuccess) {
        /* NCCL's failure path leaves its error as the communicator's state */
        if (comm && comm->used && !comm->freed && comm->state != ncclInProgress) comm->state = r;
        return logged(fn, r, NULL);
    }
    comm->finalized = 1;
    if (env_is("SIAMESE_FAKE_NCCL_FINALIZE", "error"))
        return logged(fn, comm->state = ncclSystemError, NULL);
    ncclResult_t outcome =
        env_is("SIAMESE_FAKE_NCCL_FINALIZE", "async") ? ncclRemoteError : ncclSuccess;
    return logged(fn, pending(comm, outcome), NULL);
}

ncclResult_t ncclCommDestroy(ncclComm_t comm)
{
    if (!comm) return logged("ncclCommDestroy", ncclSuccess, NULL);
    ncclResult_t r = ready(comm);
    if (r == ncclSuccess) comm->freed = 1;
    return logged("ncclCommDestroy", r, NULL);
}

ncclResult_t ncclCommAbort(ncclComm_t comm)
{
    if (!comm) return logged("ncclCommAbort", ncclSuccess, NULL);
    if (!comm->used || comm->freed) return logged("ncclCommAbort", ncclInvalidArgument, NULL);
    comm->freed = 1;
    return logged("ncclCommAbort", ncclSuccess, NULL);
}
