/* Convolutions on cuDNN's legacy (v7-style) API, still in cuDNN 9: per layer shape, descriptors
 * and a ranked list of algorithms are made once and cached in the context (darknet's
 * cudnn_convolutional_setup, minus its ignored statuses). Each call then takes the best-ranked
 * algorithm whose workspace fits the buffer the core allocated, so a smaller last micro-batch
 * never needs more workspace than the largest one was promised.
 *
 * Numerics: one convolution descriptor per math mode. TF32 off uses CUDNN_FMA_MATH (no tensor
 * cores, plain float32 FMAs, what PyTorch sets when allow_tf32 is false); TF32 on uses
 * CUDNN_DEFAULT_MATH, which lets cuDNN use TF32 tensor cores for float data on Ampere and
 * newer. Deterministic algorithms are ranked ahead of the others, so two runs give the same
 * bits; the weight gradient is accumulated (beta = 1), as the vtable asks. */
#include <stdlib.h>
#include <string.h>

#include "cuda_internal.h"

enum { MODES = 2, MAX_ALGOS = 16 };

typedef struct ranked {
    int n;
    int algo[MAX_ALGOS];
    cudnnMathType_t math[MAX_ALGOS];
    size_t bytes[MAX_ALGOS];
} ranked;

typedef struct conv_plan {
    struct conv_plan *next;
    sm_conv_shape shape;
    cudnnTensorDescriptor_t x, y, bias;
    cudnnFilterDescriptor_t w;
    cudnnConvolutionDescriptor_t conv[MODES]; /* [tf32] */
    ranked fwd[MODES], bwd_data[MODES], bwd_filter[MODES];
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

/* Keeps the successful results cuDNN lists, in its order (fastest expected first), with the
 * deterministic ones moved ahead. TF32 off keeps only FMA-math results (PyTorch asserts the
 * same of cuDNN's answer under CUDNN_FMA_MATH); TF32 on keeps any, and the call then sets the
 * result's own math type on the descriptor, as cuDNN asks since 7.4. */
#define RANK(out, perf, count, tf32)                                                               \
    do {                                                                                           \
        (out)->n = 0;                                                                              \
        for (int pass = 0; pass < 2; pass++)                                                       \
            for (int i = 0; i < (count); i++) {                                                    \
                bool det = (perf)[i].determinism == CUDNN_DETERMINISTIC;                           \
                if ((perf)[i].status != CUDNN_STATUS_SUCCESS || det != (pass == 0)) continue;     \
                if (!(tf32) && (perf)[i].mathType != CUDNN_FMA_MATH) continue;                     \
                (out)->algo[(out)->n] = (int)(perf)[i].algo;                                       \
                (out)->math[(out)->n] = (perf)[i].mathType;                                        \
                (out)->bytes[(out)->n] = (perf)[i].memory;                                         \
                (out)->n++;                                                                        \
            }                                                                                      \
    } while (0)

/* cuDNN sizes an algorithm's workspace for the descriptor's math type: set each result's. */
static sm_status rank_algos(cuda_ctx *c, conv_plan *p, int m)
{
    cudnnConvolutionDescriptor_t cd = p->conv[m];
    SMC_CUDNN(cudnnSetConvolutionMathType(cd, m ? CUDNN_DEFAULT_MATH : CUDNN_FMA_MATH));
    int got = 0;
    {
        cudnnConvolutionFwdAlgoPerf_t perf[MAX_ALGOS];
        SMC_CUDNN(cudnnGetConvolutionForwardAlgorithm_v7(c->dnn, p->x, p->w, cd, p->y, MAX_ALGOS,
                                                         &got, perf));
        ranked *r = &p->fwd[m];
        RANK(r, perf, got, m);
        for (int i = 0; i < r->n; i++) {
            SMC_CUDNN(cudnnSetConvolutionMathType(cd, r->math[i]));
            SMC_CUDNN(cudnnGetConvolutionForwardWorkspaceSize(
                c->dnn, p->x, p->w, cd, p->y, (cudnnConvolutionFwdAlgo_t)r->algo[i], &r->bytes[i]));
        }
    }
    SMC_CUDNN(cudnnSetConvolutionMathType(cd, m ? CUDNN_DEFAULT_MATH : CUDNN_FMA_MATH));
    {
        cudnnConvolutionBwdDataAlgoPerf_t perf[MAX_ALGOS];
        SMC_CUDNN(cudnnGetConvolutionBackwardDataAlgorithm_v7(c->dnn, p->w, p->y, cd, p->x,
                                                              MAX_ALGOS, &got, perf));
        ranked *r = &p->bwd_data[m];
        RANK(r, perf, got, m);
        for (int i = 0; i < r->n; i++) {
            SMC_CUDNN(cudnnSetConvolutionMathType(cd, r->math[i]));
            SMC_CUDNN(cudnnGetConvolutionBackwardDataWorkspaceSize(
                c->dnn, p->w, p->y, cd, p->x, (cudnnConvolutionBwdDataAlgo_t)r->algo[i],
                &r->bytes[i]));
        }
    }
    SMC_CUDNN(cudnnSetConvolutionMathType(cd, m ? CUDNN_DEFAULT_MATH : CUDNN_FMA_MATH));
    {
        cudnnConvolutionBwdFilterAlgoPerf_t perf[MAX_ALGOS];
        SMC_CUDNN(cudnnGetConvolutionBackwardFilterAlgorithm_v7(c->dnn, p->x, p->y, cd, p->w,
                                                                MAX_ALGOS, &got, perf));
        ranked *r = &p->bwd_filter[m];
        RANK(r, perf, got, m);
        for (int i = 0; i < r->n; i++) {
            SMC_CUDNN(cudnnSetConvolutionMathType(cd, r->math[i]));
            SMC_CUDNN(cudnnGetConvolutionBackwardFilterWorkspaceSize(
                c->dnn, p->x, p->y, cd, p->w, (cudnnConvolutionBwdFilterAlgo_t)r->algo[i],
                &r->bytes[i]));
        }
    }
    if (!p->fwd[m].n || !p->bwd_data[m].n || !p->bwd_filter[m].n)
        return smc_host->fail(SM_ERR_DEVICE,
                              "cuda backend: cuDNN offers no %s algorithm for a %dx%dx%dx%d "
                              "input and %dx%dx%dx%d filters (%s math)",
                              !p->fwd[m].n        ? "forward"
                              : !p->bwd_data[m].n ? "backward-data"
                                                  : "backward-filter",
                              p->shape.n, p->shape.c, p->shape.h, p->shape.w, p->shape.k,
                              p->shape.c, p->shape.kh, p->shape.kw, m ? "TF32" : "FMA");
    return SM_OK;
}

static sm_status plan_setup(cuda_ctx *c, conv_plan *p)
{
    const sm_conv_shape *s = &p->shape;
    SMC_CUDNN(cudnnCreateTensorDescriptor(&p->x));
    SMC_CUDNN(cudnnSetTensor4dDescriptor(p->x, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, s->n, s->c,
                                         s->h, s->w));
    SMC_CUDNN(cudnnCreateTensorDescriptor(&p->y));
    SMC_CUDNN(cudnnSetTensor4dDescriptor(p->y, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, s->n, s->k,
                                         s->oh, s->ow));
    SMC_CUDNN(cudnnCreateTensorDescriptor(&p->bias));
    SMC_CUDNN(cudnnSetTensor4dDescriptor(p->bias, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, 1, s->k,
                                         1, 1));
    SMC_CUDNN(cudnnCreateFilterDescriptor(&p->w));
    SMC_CUDNN(cudnnSetFilter4dDescriptor(p->w, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW, s->k, s->c,
                                         s->kh, s->kw));
    for (int m = 0; m < MODES; m++) {
        SMC_CUDNN(cudnnCreateConvolutionDescriptor(&p->conv[m]));
        /* PyTorch's conv2d is a cross-correlation, stride 1, no padding, as the CPU's im2col */
        SMC_CUDNN(cudnnSetConvolution2dDescriptor(p->conv[m], 0, 0, 1, 1, 1, 1,
                                                  CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
        sm_status st = rank_algos(c, p, m);
        if (st != SM_OK) return st;
    }
    return SM_OK;
}

/* The plan for `s`, made on first use. Caller holds c->lock. */
static sm_status get_plan(cuda_ctx *c, const sm_conv_shape *s, conv_plan **out)
{
    for (conv_plan *p = c->plans; p; p = p->next)
        if (!memcmp(&p->shape, s, sizeof *s)) {
            *out = p;
            return SM_OK;
        }
    conv_plan *p = calloc(1, sizeof *p);
    if (!p) return smc_host->fail(SM_ERR_NOMEM, "out of memory planning a convolution");
    p->shape = *s;
    sm_status st = plan_setup(c, p);
    if (st != SM_OK) {
        plan_free(p);
        return st;
    }
    p->next = c->plans;
    c->plans = p;
    *out = p;
    return SM_OK;
}

/* cuDNN 9's "not supported" family (3000..3999): the algorithm declined this case before
 * launching anything, so the next candidate may be tried (PyTorch's AlgoIterator does the same). */
static bool declined(cudnnStatus_t e) { return e >= CUDNN_STATUS_NOT_SUPPORTED && e < 4000; }

static sm_status no_fit(const char *op, size_t ws_bytes)
{
    return smc_host->fail(SM_ERR_INTERNAL,
                          "cuda backend: no cuDNN %s algorithm fits the %zu-byte workspace "
                          "(conv_workspace was not asked for this batch's layer?)",
                          op, ws_bytes);
}

/* The largest first choice over both math modes, so that switching TF32 on later never needs
 * a larger workspace. 0 when planning fails: the op will fail and report why. */
size_t smc_conv_workspace(void *ctx, const sm_conv_shape *s)
{
    cuda_ctx *c = ctx;
    size_t most = 0;
    pthread_mutex_lock(&c->lock);
    conv_plan *p;
    if (get_plan(c, s, &p) == SM_OK)
        for (int m = 0; m < MODES; m++) {
            const ranked *r[3] = {&p->fwd[m], &p->bwd_data[m], &p->bwd_filter[m]};
            for (int i = 0; i < 3; i++)
                if (r[i]->bytes[0] > most) most = r[i]->bytes[0];
        }
    pthread_mutex_unlock(&c->lock);
    return most;
}

static const float one = 1.0f, zero = 0.0f;

static sm_status conv_fwd_locked(cuda_ctx *c, const sm_conv_shape *s, const float *x,
                                 const float *w, const float *b, float *y, void *ws,
                                 size_t ws_bytes)
{
    conv_plan *p;
    sm_status st = get_plan(c, s, &p);
    if (st != SM_OK) return st;
    const int m = c->tf32;
    const ranked *r = &p->fwd[m];
    cudnnStatus_t e = CUDNN_STATUS_NOT_SUPPORTED;
    int tried = 0;
    for (int i = 0; i < r->n; i++) {
        if (r->bytes[i] > ws_bytes) continue;
        tried++;
        SMC_CUDNN(cudnnSetConvolutionMathType(p->conv[m], r->math[i]));
        e = cudnnConvolutionForward(c->dnn, &one, p->x, x, p->w, w, p->conv[m],
                                    (cudnnConvolutionFwdAlgo_t)r->algo[i], ws, ws_bytes, &zero,
                                    p->y, y);
        if (!declined(e)) break;
    }
    if (!tried) return no_fit("forward", ws_bytes);
    if (e != CUDNN_STATUS_SUCCESS) return smc_cudnn_fail(e, "cudnnConvolutionForward");
    /* the bias broadcast over N, H, W: y = 1 * bias + 1 * y */
    SMC_CUDNN(cudnnAddTensor(c->dnn, &one, p->bias, b, &one, p->y, y));
    return SM_OK;
}

sm_status smc_conv_fwd(void *ctx, const sm_conv_shape *s, const float *x, const float *w,
                       const float *b, float *y, void *ws, size_t ws_bytes)
{
    cuda_ctx *c = ctx;
    pthread_mutex_lock(&c->lock);
    sm_status st = conv_fwd_locked(c, s, x, w, b, y, ws, ws_bytes);
    pthread_mutex_unlock(&c->lock);
    return st;
}

static sm_status conv_bwd_data_locked(cuda_ctx *c, const sm_conv_shape *s, const float *dy,
                                      const float *w, float *dx, void *ws, size_t ws_bytes)
{
    conv_plan *p;
    sm_status st = get_plan(c, s, &p);
    if (st != SM_OK) return st;
    const int m = c->tf32;
    const ranked *r = &p->bwd_data[m];
    cudnnStatus_t e = CUDNN_STATUS_NOT_SUPPORTED;
    int tried = 0;
    for (int i = 0; i < r->n; i++) {
        if (r->bytes[i] > ws_bytes) continue;
        tried++;
        SMC_CUDNN(cudnnSetConvolutionMathType(p->conv[m], r->math[i]));
        /* beta = 0: dx is overwritten */
        e = cudnnConvolutionBackwardData(c->dnn, &one, p->w, w, p->y, dy, p->conv[m],
                                         (cudnnConvolutionBwdDataAlgo_t)r->algo[i], ws, ws_bytes,
                                         &zero, p->x, dx);
        if (!declined(e)) break;
    }
    if (!tried) return no_fit("backward-data", ws_bytes);
    if (e != CUDNN_STATUS_SUCCESS) return smc_cudnn_fail(e, "cudnnConvolutionBackwardData");
    return SM_OK;
}

sm_status smc_conv_bwd_data(void *ctx, const sm_conv_shape *s, const float *dy, const float *w,
                            float *dx, void *ws, size_t ws_bytes)
{
    cuda_ctx *c = ctx;
    pthread_mutex_lock(&c->lock);
    sm_status st = conv_bwd_data_locked(c, s, dy, w, dx, ws, ws_bytes);
    pthread_mutex_unlock(&c->lock);
    return st;
}

static sm_status conv_bwd_filter_locked(cuda_ctx *c, const sm_conv_shape *s, const float *x,
                                        const float *dy, float *dw, float *db, void *ws,
                                        size_t ws_bytes)
{
    conv_plan *p;
    sm_status st = get_plan(c, s, &p);
    if (st != SM_OK) return st;
    const int m = c->tf32;
    const ranked *r = &p->bwd_filter[m];
    cudnnStatus_t e = CUDNN_STATUS_NOT_SUPPORTED;
    int tried = 0;
    for (int i = 0; i < r->n; i++) {
        if (r->bytes[i] > ws_bytes) continue;
        tried++;
        SMC_CUDNN(cudnnSetConvolutionMathType(p->conv[m], r->math[i]));
        /* beta = 1: gradients accumulate over micro-batches */
        e = cudnnConvolutionBackwardFilter(c->dnn, &one, p->x, x, p->y, dy, p->conv[m],
                                           (cudnnConvolutionBwdFilterAlgo_t)r->algo[i], ws,
                                           ws_bytes, &one, p->w, dw);
        if (!declined(e)) break;
    }
    if (!tried) return no_fit("backward-filter", ws_bytes);
    if (e != CUDNN_STATUS_SUCCESS) return smc_cudnn_fail(e, "cudnnConvolutionBackwardFilter");
    SMC_CUDNN(cudnnConvolutionBackwardBias(c->dnn, &one, p->y, dy, &one, p->bias, db));
    return SM_OK;
}

sm_status smc_conv_bwd_filter(void *ctx, const sm_conv_shape *s, const float *x,
                              const float *dy, float *dw, float *db, void *ws, size_t ws_bytes)
{
    cuda_ctx *c = ctx;
    pthread_mutex_lock(&c->lock);
    sm_status st = conv_bwd_filter_locked(c, s, x, dy, dw, db, ws, ws_bytes);
    pthread_mutex_unlock(&c->lock);
    return st;
}
