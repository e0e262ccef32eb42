/* SPDX-License-Identifier: MIT */
/* libsiamese-comm-nccl.so: sm_comm_open("nccl", bootstrap, device, ...) (include/siamese/
 * comm.h). One GPU per rank; rank 0's ncclUniqueId reaches the others through the bootstrap
 * communicator's broadcast (MPI, usually), as Horovod and llm.c do. The communicator is
 * non-blocking (ncclConfig_t.blocking = 0), so that no call waits on a dead peer: each
 * collective copies the host bytes to a device staging buffer, is issued on the module's
 * stream, and is polled (an event, ncclCommGetAsyncError) until done or until the deadline;
 * then ncclCommAbort, never a blocking destroy (as PyTorch's watchdog). Only then are the
 * results copied back, so no copy waits on a collective either. The library folds the
 * gradients on the host: NCCL only moves bytes. */
#include <limits.h> /* NCCL_CONFIG_INITIALIZER */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cuda_runtime_api.h>
#include <nccl.h>

#include "comm_plugin.h"

typedef struct nccl_state {
    ncclComm_t comm;
    cudaStream_t stream;
    cudaEvent_t done;
    unsigned char *dev; /* staging: send then receive */
    size_t cap;
    int rank, size;
    int device; /* made current by every collective: any thread may call them */
    int failed, aborted;
} nccl_state;

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void pause_a_little(unsigned attempt)
{
    if (attempt < 16) return;
    struct timespec ts = {0, attempt < 100 ? 10000L * (long)(attempt - 15) : 1000000L};
    nanosleep(&ts, NULL);
}

static void do_abort(nccl_state *s)
{
    if (!s->aborted && s->comm) ncclCommAbort(s->comm);
    s->aborted = 1;
    s->failed = 1;
}

/* The communicator's state: ncclInProgress while a non-blocking call runs; a query that fails
 * is an error too (its out-parameter is not written then). */
static ncclResult_t comm_state(nccl_state *s)
{
    ncclResult_t async = ncclSuccess;
    return ncclCommGetAsyncError(s->comm, &async) == ncclSuccess ? async : ncclSystemError;
}

/* Until the communicator's pending initialisation, call or finalisation has finished. */
static sm_comm_result wait_comm(nccl_state *s, int64_t deadline_ns)
{
    for (unsigned attempt = 0;; attempt++) {
        ncclResult_t async = comm_state(s);
        if (async == ncclSuccess) return SM_COMM_OK;
        if (async != ncclInProgress) {
            do_abort(s);
            return SM_COMM_FAILED;
        }
        if (now_ns() >= deadline_ns) {
            do_abort(s);
            return SM_COMM_TIMEOUT;
        }
        pause_a_little(attempt);
    }
}

/* Until the stream's work (the collective) is done. */
static sm_comm_result wait_stream(nccl_state *s, int64_t deadline_ns)
{
    if (cudaEventRecord(s->done, s->stream) != cudaSuccess) {
        do_abort(s);
        return SM_COMM_FAILED;
    }
    for (unsigned attempt = 0;; attempt++) {
        cudaError_t q = cudaEventQuery(s->done);
        if (q == cudaSuccess) return SM_COMM_OK;
        ncclResult_t async = comm_state(s);
        if (q != cudaErrorNotReady || (async != ncclSuccess && async != ncclInProgress)) {
            do_abort(s);
            return SM_COMM_FAILED;
        }
        if (now_ns() >= deadline_ns) {
            do_abort(s);
            return SM_COMM_TIMEOUT;
        }
        pause_a_little(attempt);
    }
}

static int reserve(nccl_state *s, size_t bytes)
{
    if (bytes <= s->cap) return 0;
    if (s->dev) cudaFree(s->dev);
    s->dev = NULL;
    s->cap = 0;
    if (cudaMalloc((void **)&s->dev, bytes) != cudaSuccess) return -1;
    s->cap = bytes;
    return 0;
}

/* The common shape: host `send` (in_bytes) to the device, the collective, the device's
 * out_bytes back to host `recv` once done. */
typedef ncclResult_t (*issue_fn)(nccl_state *s, unsigned char *din, unsigned char *dout,
                                 size_t bytes, int root);

static sm_comm_result run(nccl_state *s, issue_fn issue, const void *send, size_t in_bytes,
                          void *recv, size_t out_bytes, size_t bytes, int root, int64_t deadline_ns)
{
    if (s->failed) return SM_COMM_FAILED;
    /* the calling thread may be another than last time (the trainer's exchange thread) */
    if (cudaSetDevice(s->device) != cudaSuccess) return SM_COMM_FAILED;
    if (reserve(s, in_bytes + out_bytes + 1) != 0) return SM_COMM_FAILED;
    unsigned char *din = s->dev, *dout = s->dev + in_bytes;
    if (in_bytes &&
        cudaMemcpyAsync(din, send, in_bytes, cudaMemcpyHostToDevice, s->stream) != cudaSuccess)
        return SM_COMM_FAILED;
    sm_comm_result r = wait_stream(s, deadline_ns);
    if (r != SM_COMM_OK) return r;
    ncclResult_t nr = issue(s, din, dout, bytes, root);
    if (nr != ncclSuccess && nr != ncclInProgress) {
        do_abort(s);
        return SM_COMM_FAILED;
    }
    if ((r = wait_comm(s, deadline_ns)) != SM_COMM_OK) return r;
    if ((r = wait_stream(s, deadline_ns)) != SM_COMM_OK) return r;
    if (out_bytes && cudaMemcpy(recv, dout, out_bytes, cudaMemcpyDeviceToHost) != cudaSuccess) {
        do_abort(s);
        return SM_COMM_FAILED;
    }
    return SM_COMM_OK;
}

static ncclResult_t issue_allgather(nccl_state *s, unsigned char *din, unsigned char *dout,
                                    size_t bytes, int root)
{
    (void)root;
    return ncclAllGather(din, dout, bytes, ncclUint8, s->comm, s->stream);
}

static ncclResult_t issue_alltoall(nccl_state *s, unsigned char *din, unsigned char *dout,
                                   size_t bytes, int root)
{
    (void)root;
    ncclResult_t r = ncclGroupStart();
    for (int p = 0; p < s->size && (r == ncclSuccess || r == ncclInProgress); p++) {
        r = ncclSend(din + (size_t)p * bytes, bytes, ncclUint8, p, s->comm, s->stream);
        if (r == ncclSuccess || r == ncclInProgress)
            r = ncclRecv(dout + (size_t)p * bytes, bytes, ncclUint8, p, s->comm, s->stream);
    }
    ncclResult_t e = ncclGroupEnd();
    return r == ncclSuccess || r == ncclInProgress ? e : r;
}

static ncclResult_t issue_broadcast(nccl_state *s, unsigned char *din, unsigned char *dout,
                                    size_t bytes, int root)
{
    (void)dout;
    return ncclBroadcast(din, din, bytes, ncclUint8, root, s->comm, s->stream);
}

static sm_comm_result n_allgather(void *u, const void *send, void *recv, size_t bytes,
                                  int64_t deadline_ns)
{
    nccl_state *s = u;
    return run(s, issue_allgather, send, bytes, recv, (size_t)s->size * bytes, bytes, 0,
               deadline_ns);
}

static sm_comm_result n_alltoall(void *u, const void *send, void *recv, size_t bytes,
                                 int64_t deadline_ns)
{
    nccl_state *s = u;
    size_t all = (size_t)s->size * bytes;
    return run(s, issue_alltoall, send, all, recv, all, bytes, 0, deadline_ns);
}

static sm_comm_result n_broadcast(void *u, void *buf, size_t bytes, int root, int64_t deadline_ns)
{
    nccl_state *s = u;
    /* the result is in the input buffer: copy it back from there */
    if (s->failed) return SM_COMM_FAILED;
    sm_comm_result r = run(s, issue_broadcast, buf, bytes, NULL, 0, bytes, root, deadline_ns);
    if (r == SM_COMM_OK && bytes &&
        cudaMemcpy(buf, s->dev, bytes, cudaMemcpyDeviceToHost) != cudaSuccess) {
        do_abort(s);
        return SM_COMM_FAILED;
    }
    return r;
}

static void n_abort(void *u) { do_abort(u); }

/* Finalises without blocking for long, then frees. ncclCommFinalize is called once: a second
 * call fails (NCCL refuses a communicator whose finalisation is in progress or done). Its
 * ncclInProgress (the non-blocking case) is waited for; a finalisation that fails, at once or
 * later, or whose peers do not follow within 10 s, is an abort, which frees the communicator
 * itself: ncclCommDestroy only after a finalisation that succeeded (it refuses the others and
 * the communicator would leak). A destroy that fails leaves nothing to do: an abort after it
 * could free the communicator twice. */
static void finalize_comm(nccl_state *s)
{
    ncclResult_t fr = ncclCommFinalize(s->comm);
    if (fr == ncclSuccess || fr == ncclInProgress)
        (void)wait_comm(s, now_ns() + 10 * (int64_t)1000000000);
    else do_abort(s);
    if (!s->aborted) ncclCommDestroy(s->comm);
}

static void n_destroy(void *u)
{
    nccl_state *s = u;
    if (!s) return;
    if (s->comm && !s->aborted) finalize_comm(s);
    if (s->dev) cudaFree(s->dev);
    if (s->done) cudaEventDestroy(s->done);
    if (s->stream) cudaStreamDestroy(s->stream);
    free(s);
}

__attribute__((visibility("default"))) int sm_comm_module_entry(const sm_comm_module_args *args,
                                                                sm_comm_ops *ops, void **user)
{
    if (!args || args->abi != SM_COMM_MODULE_ABI || !args->serialized) return -1;
    if (!args->bootstrap_bcast) {
        snprintf(args->err, args->err_cap, "no bootstrap communicator");
        return -1;
    }
    int count = 0;
    cudaError_t ce = cudaGetDeviceCount(&count);
    if (ce != cudaSuccess || count < 1) {
        snprintf(args->err, args->err_cap, "no usable GPU (%s)",
                 ce != cudaSuccess ? cudaGetErrorString(ce) : "none visible");
        return -1;
    }
    int dev = args->device >= 0 ? args->device : args->bootstrap_rank % count;
    if ((ce = cudaSetDevice(dev)) != cudaSuccess) {
        snprintf(args->err, args->err_cap, "GPU %d: %s", dev, cudaGetErrorString(ce));
        return -1;
    }
    nccl_state *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(args->err, args->err_cap, "out of memory");
        return -1;
    }
    s->rank = args->bootstrap_rank, s->size = args->bootstrap_size, s->device = dev;
    ncclUniqueId id;
    memset(&id, 0, sizeof id);
    ncclResult_t nr = ncclSuccess;
    if (s->rank == 0) nr = ncclGetUniqueId(&id);
    if (nr != ncclSuccess) {
        snprintf(args->err, args->err_cap, "ncclGetUniqueId: %s", ncclGetErrorString(nr));
        free(s);
        return -1;
    }
    if (args->bootstrap_bcast(args->bootstrap_ctx, &id, sizeof id, 0) != SM_COMM_OK) {
        snprintf(args->err, args->err_cap, "the bootstrap broadcast of the NCCL id failed");
        free(s);
        return -1;
    }
    if (cudaStreamCreateWithFlags(&s->stream, cudaStreamNonBlocking) != cudaSuccess ||
        cudaEventCreateWithFlags(&s->done, cudaEventDisableTiming) != cudaSuccess) {
        snprintf(args->err, args->err_cap, "cannot create a CUDA stream and event");
        n_destroy(s);
        return -1;
    }
    /* the initializer names only some fields (NCCL's own macro) */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
    ncclConfig_t cfg = NCCL_CONFIG_INITIALIZER;
#pragma GCC diagnostic pop
    cfg.blocking = 0;
    nr = ncclCommInitRankConfig(&s->comm, s->size, id, s->rank, &cfg);
    if (nr != ncclSuccess && nr != ncclInProgress) {
        snprintf(args->err, args->err_cap, "ncclCommInitRankConfig: %s", ncclGetErrorString(nr));
        /* a communicator may be returned with the error (a non-blocking one whose launch
         * failed): only an abort frees it (do_abort skips a NULL one) */
        do_abort(s);
        n_destroy(s);
        return -1;
    }
    if (wait_comm(s, now_ns() + 300 * (int64_t)1000000000) != SM_COMM_OK) {
        snprintf(args->err, args->err_cap,
                 "NCCL initialisation of rank %d of %d failed or "
                 "timed out (300 s)",
                 s->rank, s->size);
        n_destroy(s);
        return -1;
    }
    memset(ops, 0, sizeof *ops);
    ops->struct_size = sizeof *ops;
    ops->version = SM_COMM_OPS_VERSION;
    ops->rank = s->rank;
    ops->size = s->size;
    ops->allgather = n_allgather;
    ops->alltoall = n_alltoall;
    ops->broadcast = n_broadcast;
    ops->abort = n_abort;
    ops->destroy = n_destroy;
    *user = s;
    *args->serialized = 1; /* each call makes its device current; NCCL and CUDA allow any thread */
    return 0;
}
