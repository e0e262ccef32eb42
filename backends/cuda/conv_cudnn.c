/* SPDX-License-Identifier: MIT */
/* Convolutions on cuDNN's legacy (v7-style) API, still in cuDNN 9: per layer shape, descriptors
 * and a ranked list of algorithms are made once and cached in the context (darknet's
 * cudnn_convolutional_setup, minus its ignored statuses). Each call then takes the best-ranked
 * algorithm whose workspace fits the buffer the core allocated, so a smaller last micro-batch
 * never needs more workspace than the largest one was promised.
 *
 * Numerics: one convolution descriptor per math mode. TF32 off runs every algorithm under
 * CUDNN_FMA_MATH (no tensor cores, plain float32 FMAs, what PyTorch sets when allow_tf32 is
 * false); TF32 on sets the math type cuDNN reported for the algorithm, which lets cuDNN use TF32
 * tensor cores for float data on Ampere and newer. Which results are kept and in which order
 * (deterministic first; GEMM family ahead of FFT/Winograd with TF32 off; a workspace budget; a
 * fixed fallback) is algo_select.c's, and each plan's choice is logged through the host. The TF32
 * list is made only once TF32 is on. The weight gradient is accumulated (beta = 1), as the vtable
 * asks.
 *
 * cuDNN's dimensions and strides are ints: a tensor holds at most 2^31 - 1 elements. A batch
 * above that (about 1,820 Koch pairs: conv1's output is 64 x 96 x 96 per image) is split along N
 * inside each op, and the plans are made for the pieces. */
#include <stdlib.h>
#include <string.h>

#include "algo_select.h"
#include "cuda_internal.h"

/* tests build the fake module with a small value to reach the split without huge buffers */
#ifndef SMC_MAX_TENSOR_ELEMS
#define SMC_MAX_TENSOR_ELEMS 2147483647 /* INT_MAX (lib/common/limits.h hides <limits.h>) */
#endif

enum { MODES = 2, DIRS = 3, MAX_ALGOS = 16 };

typedef struct ranked {
    int n;
    smc_algo_choice c[MAX_ALGOS];
} ranked;

typedef struct conv_plan {
    struct conv_plan *next;
    sm_conv_shape shape;
    cudnnTensorDescriptor_t x, y, bias;
    cudnnFilterDescriptor_t w;
    cudnnConvolutionDescriptor_t conv[MODES]; /* [tf32] */
    bool ready[MODES];                        /* ranked[m] made (TF32's only once asked for) */
    bool measured;                            /* ranked by cudnnFind* (SM_CONV_ALGO_MEASURED) */
    ranked ranked[MODES][DIRS];
} conv_plan;

static void plan_free(conv_plan *p)
{
    if (p->x) cudnnDestroyTensorDescriptor(p->x);
    if (p->y) cudnnDestroyTensorDescriptor(p->y);
    if (p->bias) cudnnDestroyTensorDescriptor(p->bias);
    if (p->w) cudnnDestroyFilterDescriptor(p->w);
    for (int m = 0; m < MODES; m++)
        if (p->conv[m]) cudnnDestroyConvolutionDescriptor(p->conv[m]);
    free(p);
}

void smc_conv_plans_destroy(cuda_ctx *c)
{
    while (c->plans) {
        conv_plan *next = c->plans->next;
        plan_free(c->plans);
        c->plans = next;
    }
}

/* One direction's candidates as plain records. By default the cudnnGet*Algorithm_v7 heuristics,
 * which measure nothing: the same GPU and cuDNN give the same choice in every run and on every
 * rank. Under SM_CONV_ALGO_MEASURED, cudnnFind*Algorithm first, which runs every algorithm
 * cuDNN has for the shape (FFT and FFT_TILING included) on scratch buffers it allocates and
 * reports measured times, so the ranking can take an FFT algorithm where it is faster; where
 * the search fails (it needs device memory beside the caller's), the heuristics. */
static cudnnStatus_t query_algos(cuda_ctx *c, conv_plan *p, int m, smc_conv_dir dir,
                                 smc_algo_result *res, int *got)
{
    static const char *const find_call[DIRS] = {"cudnnFindConvolutionForwardAlgorithm",
                                                "cudnnFindConvolutionBackwardDataAlgorithm",
                                                "cudnnFindConvolutionBackwardFilterAlgorithm"};
    cudnnConvolutionDescriptor_t cd = p->conv[m];
    cudnnStatus_t e = CUDNN_STATUS_SUCCESS;
    *got = 0;
#define SMC_COPY_PERF(perf)                                                                        \
    for (int i = 0; i < *got; i++) res[i] = (smc_algo_result)                                      \
        {                                                                                          \
            (int)(perf)[i].algo, (perf)[i].status, (perf)[i].time, (perf)[i].memory,               \
                (perf)[i].mathType, (perf)[i].determinism                                          \
        }
    for (int measured = p->measured ? 1 : 0; measured >= 0; measured--) {
        if (dir == SMC_FWD) {
            cudnnConvolutionFwdAlgoPerf_t perf[MAX_ALGOS];
            e = measured ? cudnnFindConvolutionForwardAlgorithm(c->dnn, p->x, p->w, cd, p->y,
                                                                MAX_ALGOS, got, perf)
                         : cudnnGetConvolutionForwardAlgorithm_v7(c->dnn, p->x, p->w, cd, p->y,
                                                                  MAX_ALGOS, got, perf);
            if (e == CUDNN_STATUS_SUCCESS) SMC_COPY_PERF(perf);
        } else if (dir == SMC_BWD_DATA) {
            cudnnConvolutionBwdDataAlgoPerf_t perf[MAX_ALGOS];
            e = measured ? cudnnFindConvolutionBackwardDataAlgorithm(c->dnn, p->w, p->y, cd, p->x,
                                                                     MAX_ALGOS, got, perf)
                         : cudnnGetConvolutionBackwardDataAlgorithm_v7(c->dnn, p->w, p->y, cd, p->x,
                                                                       MAX_ALGOS, got, perf);
            if (e == CUDNN_STATUS_SUCCESS) SMC_COPY_PERF(perf);
        } else {
            cudnnConvolutionBwdFilterAlgoPerf_t perf[MAX_ALGOS];
            e = measured ? cudnnFindConvolutionBackwardFilterAlgorithm(c->dnn, p->x, p->y, cd, p->w,
                                                                       MAX_ALGOS, got, perf)
                         : cudnnGetConvolutionBackwardFilterAlgorithm_v7(
                               c->dnn, p->x, p->y, cd, p->w, MAX_ALGOS, got, perf);
            if (e == CUDNN_STATUS_SUCCESS) SMC_COPY_PERF(perf);
        }
        if (e == CUDNN_STATUS_SUCCESS) break;
        *got = 0;
        if (measured)
            smc_host->log(SM_LOG_DEBUG,
                          "cuda backend: %s failed (%s): cuDNN's heuristics rank "
                          "%s instead, unmeasured",
                          find_call[dir], cudnnGetErrorString(e), smc_dir_name(dir));
    }
#undef SMC_COPY_PERF
    if (e != CUDNN_STATUS_SUCCESS || *got < 0) *got = 0;
    if (*got > MAX_ALGOS) *got = MAX_ALGOS;
    return e;
}

static const char *const ws_call[DIRS] = {"cudnnGetConvolutionForwardWorkspaceSize",
                                          "cudnnGetConvolutionBackwardDataWorkspaceSize",
                                          "cudnnGetConvolutionBackwardFilterWorkspaceSize"};

/* The workspace `algo` needs under the math type now set on p->conv[m]. */
static cudnnStatus_t query_ws(cuda_ctx *c, conv_plan *p, int m, smc_conv_dir dir, int algo,
                              size_t *bytes)
{
    cudnnConvolutionDescriptor_t cd = p->conv[m];
    if (dir == SMC_FWD)
        return cudnnGetConvolutionForwardWorkspaceSize(c->dnn, p->x, p->w, cd, p->y,
                                                       (cudnnConvolutionFwdAlgo_t)algo, bytes);
    if (dir == SMC_BWD_DATA)
        return cudnnGetConvolutionBackwardDataWorkspaceSize(
            c->dnn, p->w, p->y, cd, p->x, (cudnnConvolutionBwdDataAlgo_t)algo, bytes);
    return cudnnGetConvolutionBackwardFilterWorkspaceSize(
        c->dnn, p->x, p->y, cd, p->w, (cudnnConvolutionBwdFilterAlgo_t)algo, bytes);
}

/* Ranks one direction's algorithms for math mode m. A candidate whose workspace query fails is
 * skipped (logged at debug level), not the whole plan; cuDNN sizes the workspace for the
 * descriptor's math type, so each is asked under the type it will run with. */
static sm_status rank_dir(cuda_ctx *c, conv_plan *p, int m, smc_conv_dir dir, size_t budget)
{
    cudnnConvolutionDescriptor_t cd = p->conv[m];
    static const char *const get_call[DIRS] = {"cudnnGetConvolutionForwardAlgorithm_v7",
                                               "cudnnGetConvolutionBackwardDataAlgorithm_v7",
                                               "cudnnGetConvolutionBackwardFilterAlgorithm_v7"};
    SMC_CUDNN(cudnnSetConvolutionMathType(cd, m ? CUDNN_DEFAULT_MATH : CUDNN_FMA_MATH));
    smc_algo_result res[MAX_ALGOS];
    int got = 0;
    cudnnStatus_t e = query_algos(c, p, m, dir, res, &got);
    if (e != CUDNN_STATUS_SUCCESS) return smc_cudnn_fail(e, get_call[dir]);
    int skipped = 0;
    for (int i = 0; i < got; i++) {
        if (res[i].status != CUDNN_STATUS_SUCCESS) continue;
        if (!m && res[i].math != CUDNN_FMA_MATH && res[i].math != CUDNN_DEFAULT_MATH) continue;
        SMC_CUDNN(cudnnSetConvolutionMathType(cd, m ? res[i].math : CUDNN_FMA_MATH));
        e = query_ws(c, p, m, dir, res[i].algo, &res[i].memory);
        if (e != CUDNN_STATUS_SUCCESS) {
            smc_host->log(SM_LOG_DEBUG, "cuda backend: %s %s skipped: %s failed: %s",
                          smc_dir_name(dir), smc_algo_name(dir, res[i].algo), ws_call[dir],
                          cudnnGetErrorString(e));
            res[i].status = e;
            skipped++;
        }
    }
    ranked *r = &p->ranked[m][dir];
    r->n = smc_algo_rank(dir, res, got, m != 0, budget, r->c, MAX_ALGOS);
    if (r->c[0].fallback) {
        SMC_CUDNN(cudnnSetConvolutionMathType(cd, r->c[0].math));
        e = query_ws(c, p, m, dir, r->c[0].algo, &r->c[0].memory);
        if (e != CUDNN_STATUS_SUCCESS) return smc_cudnn_fail(e, ws_call[dir]);
    }
    const sm_conv_shape *s = &p->shape;
    const smc_algo_choice *b = &r->c[0];
    smc_algo_family fam = smc_algo_family_of(dir, b->algo);
    smc_host->log(SM_LOG_INFO,
                  "cuda backend: conv %dx%dx%dx%d * %dx%dx%dx%d, TF32 %s: %s %s%s (%s family, "
                  "%s, %s math, workspace %zu bytes, budget %zu; expected rel err vs cpu-blas "
                  "<= %.0e%s); %d of %d results usable, %d failed their workspace query",
                  s->n, s->c, s->h, s->w, s->k, s->c, s->kh, s->kw, m ? "on" : "off",
                  smc_dir_name(dir), smc_algo_name(dir, b->algo),
                  b->fallback ? " (fixed fallback: no result qualified)" : "", smc_family_name(fam),
                  b->deterministic ? "deterministic" : "non-deterministic", smc_math_name(b->math),
                  b->memory, budget, smc_family_tolerance(fam), m ? ", more with TF32" : "",
                  b->fallback ? 0 : r->n, got, skipped);
    return SM_OK;
}

/* Makes p's ranked lists for math mode m, once. */
static sm_status plan_mode(cuda_ctx *c, conv_plan *p, int m)
{
    if (p->ready[m]) return SM_OK;
    if (!p->conv[m]) {
        SMC_CUDNN(cudnnCreateConvolutionDescriptor(&p->conv[m]));
        /* PyTorch's conv2d is a cross-correlation, stride 1, no padding, as the CPU's im2col */
        SMC_CUDNN(cudnnSetConvolution2dDescriptor(p->conv[m], 0, 0, 1, 1, 1, 1,
                                                  CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
    }
    size_t free_b = 0, total_b = 0;
    SMC_CUDA(cudaMemGetInfo(&free_b, &total_b));
    size_t budget = smc_workspace_budget(free_b);
    for (int d = 0; d < DIRS; d++) {
        sm_status st = rank_dir(c, p, m, (smc_conv_dir)d, budget);
        if (st != SM_OK) return st;
    }
    p->ready[m] = true;
    return SM_OK;
}

static sm_status plan_setup(conv_plan *p)
{
    const sm_conv_shape *s = &p->shape;
    SMC_CUDNN(cudnnCreateTensorDescriptor(&p->x));
    SMC_CUDNN(cudnnSetTensor4dDescriptor(p->x, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, s->n, s->c,
                                         s->h, s->w));
    SMC_CUDNN(cudnnCreateTensorDescriptor(&p->y));
    SMC_CUDNN(cudnnSetTensor4dDescriptor(p->y, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, s->n, s->k,
                                         s->oh, s->ow));
    SMC_CUDNN(cudnnCreateTensorDescriptor(&p->bias));
    SMC_CUDNN(
        cudnnSetTensor4dDescriptor(p->bias, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, 1, s->k, 1, 1));
    SMC_CUDNN(cudnnCreateFilterDescriptor(&p->w));
    SMC_CUDNN(cudnnSetFilter4dDescriptor(p->w, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW, s->k, s->c,
                                         s->kh, s->kw));
    return SM_OK;
}

/* The plan for `s` with mode m ranked, made on first use. Caller holds c->lock. */
static sm_status get_plan(cuda_ctx *c, const sm_conv_shape *s, int m, conv_plan **out)
{
    conv_plan *p = c->plans;
    const bool measured = c->conv_algo == SM_CONV_ALGO_MEASURED;
    while (p && (memcmp(&p->shape, s, sizeof *s) || p->measured != measured)) p = p->next;
    if (!p) {
        p = calloc(1, sizeof *p);
        if (!p) return smc_host->fail(SM_ERR_NOMEM, "out of memory planning a convolution");
        p->shape = *s;
        p->measured = measured;
        sm_status st = plan_setup(p);
        if (st != SM_OK) {
            plan_free(p);
            return st;
        }
        p->next = c->plans;
        c->plans = p;
    }
    *out = p;
    return plan_mode(c, p, m);
}

/* Images per cuDNN call: as many as keep the input and output tensors within int range. */
static int chunk_images(const sm_conv_shape *s)
{
    size_t in = (size_t)s->c * s->h * s->w, outn = (size_t)s->k * s->oh * s->ow;
    size_t per = in > outn ? in : outn;
    size_t most = per ? (size_t)SMC_MAX_TENSOR_ELEMS / per : (size_t)s->n;
    if (most < 1) most = 1; /* one image over the limit: cuDNN refuses it, and says so */
    return (size_t)s->n <= most ? s->n : (int)most;
}

/* cuDNN 9's "not supported" family (3000..3999): the algorithm declined this case before
 * launching anything, so the next candidate may be tried (PyTorch's AlgoIterator does the same). */
static bool declined(cudnnStatus_t e) { return e >= CUDNN_STATUS_NOT_SUPPORTED && e < 4000; }

/* The largest first choice over the math modes planned so far (the current one included), for
 * every piece the batch is split into. With TF32 switched on later, a TF32 choice that does not
 * fit the workspace makes way for the FMA one, which does. 0 when planning fails: the op will
 * fail and report why. */
size_t smc_conv_workspace(void *ctx, const sm_conv_shape *s)
{
    cuda_ctx *c = ctx;
    size_t most = 0;
    int chunk = chunk_images(s);
    if (chunk <= 0) return 0; /* no images: nothing to plan */
    pthread_mutex_lock(&c->lock);
    int pieces[2] = {chunk, s->n % chunk};
    for (int k = 0; k < 2; k++) {
        if (!pieces[k]) continue;
        sm_conv_shape sub = *s;
        sub.n = pieces[k];
        conv_plan *p;
        if (get_plan(c, &sub, c->tf32, &p) != SM_OK) {
            /* no status to return here: said in the log, and the op plans again and fails */
            smc_host->log(SM_LOG_WARN,
                          "cuda backend: planning conv %dx%dx%dx%d * %dx%dx%dx%d for its "
                          "workspace failed: %s",
                          sub.n, sub.c, sub.h, sub.w, sub.k, sub.c, sub.kh, sub.kw, smc_last_fail);
            break;
        }
        for (int m = 0; m < MODES; m++)
            for (int d = 0; d < DIRS && p->ready[m]; d++)
                if (p->ranked[m][d].c[0].memory > most) most = p->ranked[m][d].c[0].memory;
    }
    pthread_mutex_unlock(&c->lock);
    return most;
}

static const float one = 1.0f, zero = 0.0f;

typedef struct conv_io {
    const float *x, *w, *b, *dy;
    float *y, *dx, *dw, *db;
} conv_io;

static cudnnStatus_t launch(cuda_ctx *c, conv_plan *p, int m, smc_conv_dir dir, int algo,
                            const conv_io *io, void *ws, size_t ws_bytes)
{
    if (dir == SMC_FWD)
        return cudnnConvolutionForward(c->dnn, &one, p->x, io->x, p->w, io->w, p->conv[m],
                                       (cudnnConvolutionFwdAlgo_t)algo, ws, ws_bytes, &zero, p->y,
                                       io->y);
    if (dir == SMC_BWD_DATA) /* beta = 0: dx is overwritten */
        return cudnnConvolutionBackwardData(c->dnn, &one, p->w, io->w, p->y, io->dy, p->conv[m],
                                            (cudnnConvolutionBwdDataAlgo_t)algo, ws, ws_bytes,
                                            &zero, p->x, io->dx);
    /* beta = 1: gradients accumulate over micro-batches (and over the pieces of a split one) */
    return cudnnConvolutionBackwardFilter(c->dnn, &one, p->x, io->x, p->y, io->dy, p->conv[m],
                                          (cudnnConvolutionBwdFilterAlgo_t)algo, ws, ws_bytes, &one,
                                          p->w, io->dw);
}

/* One direction on one piece (s->n within int range). Caller holds c->lock. */
static sm_status run_piece(cuda_ctx *c, const sm_conv_shape *s, smc_conv_dir dir, const conv_io *io,
                           void *ws, size_t ws_bytes)
{
    static const char *const run_call[DIRS] = {"cudnnConvolutionForward",
                                               "cudnnConvolutionBackwardData",
                                               "cudnnConvolutionBackwardFilter"};
    conv_plan *p;
    sm_status st = get_plan(c, s, c->tf32, &p);
    if (st != SM_OK) return st;
    cudnnStatus_t e = CUDNN_STATUS_NOT_SUPPORTED;
    int tried = 0;
    /* TF32's list first when it is on; the FMA list if none of its choices fits */
    for (int m = c->tf32; m >= 0 && !tried; m--) {
        st = plan_mode(c, p, m);
        if (st != SM_OK) return st;
        const ranked *r = &p->ranked[m][dir];
        for (int i = 0; i < r->n; i++) {
            if (r->c[i].memory > ws_bytes) continue;
            tried++;
            SMC_CUDNN(cudnnSetConvolutionMathType(p->conv[m], r->c[i].math));
            e = launch(c, p, m, dir, r->c[i].algo, io, ws, ws_bytes);
            if (!declined(e)) break;
        }
    }
    if (!tried)
        return smc_host->fail(SM_ERR_INTERNAL,
                              "cuda backend: no cuDNN %s algorithm fits the %zu-byte workspace "
                              "(conv_workspace was not asked for this batch's layer?)",
                              smc_dir_name(dir), ws_bytes);
    if (e != CUDNN_STATUS_SUCCESS) return smc_cudnn_fail(e, run_call[dir]);
    if (dir == SMC_FWD) /* the bias broadcast over N, H, W: y = 1 * bias + 1 * y */
        SMC_CUDNN(cudnnAddTensor(c->dnn, &one, p->bias, io->b, &one, p->y, io->y));
    if (dir == SMC_BWD_FILTER)
        SMC_CUDNN(cudnnConvolutionBackwardBias(c->dnn, &one, p->y, io->dy, &one, p->bias, io->db));
    return SM_OK;
}

/* Splits the batch into pieces cuDNN's int dimensions hold, and runs each. */
static sm_status run(cuda_ctx *c, const sm_conv_shape *s, smc_conv_dir dir, conv_io io, void *ws,
                     size_t ws_bytes)
{
    const size_t in = (size_t)s->c * s->h * s->w, outn = (size_t)s->k * s->oh * s->ow;
    const int chunk = chunk_images(s);
    sm_status st = SM_OK;
    pthread_mutex_lock(&c->lock);
    for (int n0 = 0; n0 < s->n && st == SM_OK; n0 += chunk) {
        sm_conv_shape sub = *s;
        sub.n = s->n - n0 < chunk ? s->n - n0 : chunk;
        conv_io piece = io;
        size_t off_in = (size_t)n0 * in, off_out = (size_t)n0 * outn;
        if (io.x) piece.x = io.x + off_in;
        if (io.dx) piece.dx = io.dx + off_in;
        if (io.y) piece.y = io.y + off_out;
        if (io.dy) piece.dy = io.dy + off_out;
        st = run_piece(c, &sub, dir, &piece, ws, ws_bytes);
    }
    pthread_mutex_unlock(&c->lock);
    return st;
}

sm_status smc_conv_fwd(void *ctx, const sm_conv_shape *s, const float *x, const float *w,
                       const float *b, float *y, void *ws, size_t ws_bytes)
{
    return run(ctx, s, SMC_FWD, (conv_io){.x = x, .w = w, .b = b, .y = y}, ws, ws_bytes);
}

sm_status smc_conv_bwd_data(void *ctx, const sm_conv_shape *s, const float *dy, const float *w,
                            float *dx, void *ws, size_t ws_bytes)
{
    return run(ctx, s, SMC_BWD_DATA, (conv_io){.dy = dy, .w = w, .dx = dx}, ws, ws_bytes);
}

sm_status smc_conv_bwd_filter(void *ctx, const sm_conv_shape *s, const float *x, const float *dy,
                              float *dw, float *db, void *ws, size_t ws_bytes)
{
    return run(ctx, s, SMC_BWD_FILTER, (conv_io){.x = x, .dy = dy, .dw = dw, .db = db}, ws,
               ws_bytes);
}
