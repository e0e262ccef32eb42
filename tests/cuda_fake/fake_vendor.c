/* SPDX-License-Identifier: MIT */
/* A fake CUDA runtime, cuDNN and cuBLAS for the cuda backend's sources, so that its control flow
 * and error paths run on a machine without a GPU (tests/test_cuda_fault.c, tests/
 * test_device_dryrun.sh). Linked into a test-only build of the module, libsiamese-cuda.so in
 * tests/cuda_fake/ (never installed), instead of cudart_static, libcudnn, libcublas and the
 * kernels: device memory is host memory, copies are memcpy, every cuDNN/cuBLAS compute call and
 * kernel launch does nothing and succeeds. No number it produces means anything. Its runtime
 * also stands in for cudart_static in the test-only comm-nccl module beside it (fake_nccl.c).
 *
 * The cuDNN algorithm queries answer like the real library may: results tagged
 * CUDNN_DEFAULT_MATH (and one tensor-op one), so the module's selection must cope.
 *
 * Fault injection, read once from the environment:
 *   SIAMESE_CUDA_FAULT=N      the N-th counted call fails (1-based), once
 *   SIAMESE_CUDA_FAULT=name   the first call of that function fails (e.g. cudnnCreate)
 *   SIAMESE_CUDA_FAULT=name*  every call of that function fails
 * When it fails a call it sets SIAMESE_CUDA_FAULT_HIT=<function> in the process's environment.
 * A failed runtime call also sets the runtime's last error, which cudaGetLastError returns and
 * clears and which a later kernel launch reports unless it was cleared (as the real runtime
 * does with non-sticky errors). Name and message-free functions (cudaGetErrorString, ...) are not
 * counted and never fail. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include <cudnn.h>

#include "kernels.h"

#ifndef SMC_MAX_TENSOR_ELEMS
#define SMC_MAX_TENSOR_ELEMS 2147483647
#endif

static bool fault_ready, fault_every;
static long fault_n = -1, calls;
static char fault_name[128];
static cudaError_t last_error = cudaSuccess;

static bool fault(const char *name)
{
    if (!fault_ready) {
        fault_ready = true;
        const char *v = getenv("SIAMESE_CUDA_FAULT");
        if (v && *v) {
            char *end;
            long n = strtol(v, &end, 10);
            if (*end == '\0') fault_n = n;
            else {
                snprintf(fault_name, sizeof fault_name, "%s", v);
                size_t len = strlen(fault_name);
                if (len && fault_name[len - 1] == '*') {
                    fault_name[len - 1] = '\0';
                    fault_every = true;
                }
            }
        }
    }
    calls++;
    bool hit = calls == fault_n || (fault_name[0] && !strcmp(fault_name, name));
    if (hit) {
        if (!fault_every) fault_name[0] = '\0';
        setenv("SIAMESE_CUDA_FAULT_HIT", name, 1);
    }
    return hit;
}

#define CUDA_FAULT(name)                                                                           \
    do {                                                                                           \
        if (fault(name)) return last_error = cudaErrorInvalidValue;                                \
    } while (0)
#define CUDNN_FAULT(name)                                                                          \
    do {                                                                                           \
        if (fault(name)) return CUDNN_STATUS_BAD_PARAM;                                            \
    } while (0)
#define CUBLAS_FAULT(name)                                                                         \
    do {                                                                                           \
        if (fault(name)) return CUBLAS_STATUS_EXECUTION_FAILED;                                    \
    } while (0)

/* ---- CUDA runtime ---- */

cudaError_t cudaDriverGetVersion(int *v)
{
    CUDA_FAULT("cudaDriverGetVersion");
    *v = 13000;
    return cudaSuccess;
}
cudaError_t cudaGetDeviceCount(int *n)
{
    CUDA_FAULT("cudaGetDeviceCount");
    *n = 1;
    return cudaSuccess;
}
cudaError_t cudaGetDeviceProperties(struct cudaDeviceProp *p, int device)
{
    (void)device;
    CUDA_FAULT("cudaGetDeviceProperties");
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "fake GPU (tests/cuda_fake)");
    p->major = 9;
    p->minor = 0;
    return cudaSuccess;
}
cudaError_t cudaSetDevice(int device)
{
    (void)device;
    CUDA_FAULT("cudaSetDevice");
    return cudaSuccess;
}
cudaError_t cudaStreamCreateWithFlags(cudaStream_t *s, unsigned int flags)
{
    (void)flags;
    CUDA_FAULT("cudaStreamCreateWithFlags");
    *s = (cudaStream_t)malloc(8);
    return *s ? cudaSuccess : cudaErrorMemoryAllocation;
}
cudaError_t cudaStreamDestroy(cudaStream_t s)
{
    free(s);
    CUDA_FAULT("cudaStreamDestroy");
    return cudaSuccess;
}
cudaError_t cudaStreamSynchronize(cudaStream_t s)
{
    (void)s;
    CUDA_FAULT("cudaStreamSynchronize");
    return cudaSuccess;
}
cudaError_t cudaMalloc(void **p, size_t bytes)
{
    *p = NULL;
    if (fault("cudaMalloc")) return last_error = cudaErrorMemoryAllocation;
    *p = calloc(1, bytes ? bytes : 1);
    return *p ? cudaSuccess : (last_error = cudaErrorMemoryAllocation);
}
cudaError_t cudaFree(void *p)
{
    free(p);
    CUDA_FAULT("cudaFree");
    return cudaSuccess;
}
cudaError_t cudaMemGetInfo(size_t *free_b, size_t *total_b)
{
    CUDA_FAULT("cudaMemGetInfo");
    *free_b = (size_t)8 << 30;
    *total_b = (size_t)16 << 30;
    return cudaSuccess;
}
cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t bytes, enum cudaMemcpyKind kind,
                            cudaStream_t s)
{
    (void)kind;
    (void)s;
    CUDA_FAULT("cudaMemcpyAsync");
    memmove(dst, src, bytes);
    return cudaSuccess;
}
/* cudaMemcpy and the events are the comm-nccl module's (tests/cuda_fake/fake_nccl.c): an event
 * is done as soon as it is recorded, since every fake call completes before it returns. */
cudaError_t cudaMemcpy(void *dst, const void *src, size_t bytes, enum cudaMemcpyKind kind)
{
    (void)kind;
    CUDA_FAULT("cudaMemcpy");
    memmove(dst, src, bytes);
    return cudaSuccess;
}
cudaError_t cudaEventCreateWithFlags(cudaEvent_t *e, unsigned int flags)
{
    (void)flags;
    CUDA_FAULT("cudaEventCreateWithFlags");
    *e = (cudaEvent_t)malloc(8);
    return *e ? cudaSuccess : cudaErrorMemoryAllocation;
}
cudaError_t cudaEventDestroy(cudaEvent_t e)
{
    free(e);
    CUDA_FAULT("cudaEventDestroy");
    return cudaSuccess;
}
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s)
{
    (void)e, (void)s;
    CUDA_FAULT("cudaEventRecord");
    return cudaSuccess;
}
cudaError_t cudaEventQuery(cudaEvent_t e)
{
    (void)e;
    CUDA_FAULT("cudaEventQuery");
    return cudaSuccess;
}
cudaError_t cudaMemsetAsync(void *dst, int value, size_t bytes, cudaStream_t s)
{
    (void)s;
    CUDA_FAULT("cudaMemsetAsync");
    memset(dst, value, bytes);
    return cudaSuccess;
}
cudaError_t cudaGetLastError(void)
{
    cudaError_t e = last_error;
    last_error = cudaSuccess;
    return e;
}
const char *cudaGetErrorName(cudaError_t e)
{
    return e == cudaSuccess                 ? "cudaSuccess"
           : e == cudaErrorMemoryAllocation ? "cudaErrorMemoryAllocation"
                                            : "cudaErrorInvalidValue";
}
const char *cudaGetErrorString(cudaError_t e)
{
    return e == cudaSuccess ? "no error" : "injected by tests/cuda_fake";
}

/* ---- the module's kernels (kernels.h): a launch reports the runtime's pending error ---- */

#define KERNEL(name)                                                                               \
    do {                                                                                           \
        if (fault(name)) return last_error = cudaErrorInvalidConfiguration;                        \
        return cudaGetLastError();                                                                 \
    } while (0)

cudaError_t smk_groupnorm_fwd(cudaStream_t st, int n, int c, size_t hw, int groups, double eps,
                              const float *x, const float *gamma, const float *beta, float *y,
                              float *stats)
{
    (void)st, (void)n, (void)c, (void)hw, (void)groups, (void)eps, (void)x, (void)gamma;
    (void)beta, (void)y, (void)stats;
    KERNEL("smk_groupnorm_fwd");
}
cudaError_t smk_groupnorm_bwd_params(cudaStream_t st, int n, int c, size_t hw, int groups,
                                     const float *x, const float *dy, const float *stats,
                                     float *dgamma, float *dbeta)
{
    (void)st, (void)n, (void)c, (void)hw, (void)groups, (void)x, (void)dy, (void)stats;
    (void)dgamma, (void)dbeta;
    KERNEL("smk_groupnorm_bwd_params");
}
cudaError_t smk_groupnorm_bwd_data(cudaStream_t st, int n, int c, size_t hw, int groups,
                                   const float *x, const float *dy, const float *gamma,
                                   const float *stats, float *dx)
{
    (void)st, (void)n, (void)c, (void)hw, (void)groups, (void)x, (void)dy, (void)gamma;
    (void)stats, (void)dx;
    KERNEL("smk_groupnorm_bwd_data");
}
cudaError_t smk_relu_fwd(cudaStream_t st, size_t n, const float *x, float *y)
{
    (void)st, (void)n, (void)x, (void)y;
    KERNEL("smk_relu_fwd");
}
cudaError_t smk_relu_bwd(cudaStream_t st, size_t n, const float *y, const float *dy, float *dx)
{
    (void)st, (void)n, (void)y, (void)dy, (void)dx;
    KERNEL("smk_relu_bwd");
}
cudaError_t smk_sigmoid_fwd(cudaStream_t st, size_t n, const float *x, float *y)
{
    (void)st, (void)n, (void)x, (void)y;
    KERNEL("smk_sigmoid_fwd");
}
cudaError_t smk_sigmoid_bwd(cudaStream_t st, size_t n, const float *y, const float *dy, float *dx)
{
    (void)st, (void)n, (void)y, (void)dy, (void)dx;
    KERNEL("smk_sigmoid_bwd");
}
cudaError_t smk_bias_add(cudaStream_t st, int rows, int cols, const float *bias, float *y)
{
    (void)st, (void)rows, (void)cols, (void)bias, (void)y;
    KERNEL("smk_bias_add");
}
cudaError_t smk_bias_grad(cudaStream_t st, int rows, int cols, const float *dy, float *db)
{
    (void)st, (void)rows, (void)cols, (void)dy, (void)db;
    KERNEL("smk_bias_grad");
}
cudaError_t smk_absdiff_fwd(cudaStream_t st, size_t n, const float *a, const float *b, float *d)
{
    (void)st, (void)n, (void)a, (void)b, (void)d;
    KERNEL("smk_absdiff_fwd");
}
cudaError_t smk_absdiff_bwd(cudaStream_t st, size_t n, const float *a, const float *b,
                            const float *dd, float *da, float *db)
{
    (void)st, (void)n, (void)a, (void)b, (void)dd, (void)da, (void)db;
    KERNEL("smk_absdiff_bwd");
}
cudaError_t smk_l1_scores(cudaStream_t st, size_t nq, size_t nr, size_t dim, int dtype, size_t ld,
                          const float *q, const void *rows, const float *qp, const int32_t *idx,
                          const float *w, float *out)
{
    (void)st, (void)nq, (void)nr, (void)dim, (void)dtype, (void)ld, (void)q, (void)rows, (void)qp;
    (void)idx, (void)w, (void)out;
    KERNEL("smk_l1_scores");
}
cudaError_t smk_bce_fwd_bwd(cudaStream_t st, int n, const float *logits, const float *labels,
                            float scale, float *scores, float *loss_sum, float *dlogits)
{
    (void)st, (void)logits, (void)labels, (void)scale, (void)dlogits;
    /* a finite loss and scores of 0.5, so that the core's checks pass */
    if (loss_sum) *loss_sum = 0.6931f * (float)n;
    for (int i = 0; scores && i < n; i++) scores[i] = 0.5f;
    KERNEL("smk_bce_fwd_bwd");
}
cudaError_t smk_adam(cudaStream_t st, size_t n, float *p, const float *g, float *m, float *v,
                     float step, float b1, float b2, float eps, float wd)
{
    (void)st, (void)n, (void)p, (void)g, (void)m, (void)v, (void)step, (void)b1, (void)b2,
        (void)eps, (void)wd;
    KERNEL("smk_adam");
}
cudaError_t smk_any_nonfinite(cudaStream_t st, size_t n, const float *x, int *flag)
{
    (void)st, (void)n, (void)x, (void)flag;
    KERNEL("smk_any_nonfinite");
}
cudaError_t smk_maxpool_fwd(cudaStream_t st, int planes, int h, int w, int size, int oh, int ow,
                            const float *x, float *y, int32_t *argmax)
{
    (void)st, (void)planes, (void)h, (void)w, (void)size, (void)oh, (void)ow, (void)x, (void)y,
        (void)argmax;
    KERNEL("smk_maxpool_fwd");
}
cudaError_t smk_maxpool_bwd(cudaStream_t st, int planes, int h, int w, int oh, int ow,
                            const float *dy, const int32_t *argmax, float *dx)
{
    (void)st, (void)planes, (void)h, (void)w, (void)oh, (void)ow, (void)dy, (void)argmax, (void)dx;
    KERNEL("smk_maxpool_bwd");
}

/* ---- cuDNN ---- */

size_t cudnnGetVersion(void) { return CUDNN_VERSION; }
const char *cudnnGetErrorString(cudnnStatus_t s)
{
    return s == CUDNN_STATUS_SUCCESS ? "CUDNN_STATUS_SUCCESS" : "CUDNN_STATUS_BAD_PARAM";
}
void cudnnGetLastErrorString(char *message, size_t max_size)
{
    if (max_size) snprintf(message, max_size, "injected by tests/cuda_fake");
}

#define HANDLE_CREATE(fn, type, name)                                                              \
    cudnnStatus_t fn(type *h)                                                                      \
    {                                                                                              \
        CUDNN_FAULT(name);                                                                         \
        *h = (type)calloc(1, 64);                                                                  \
        return *h ? CUDNN_STATUS_SUCCESS : CUDNN_STATUS_INTERNAL_ERROR_HOST_ALLOCATION_FAILED;     \
    }
#define HANDLE_DESTROY(fn, type, name)                                                             \
    cudnnStatus_t fn(type h)                                                                       \
    {                                                                                              \
        free(h);                                                                                   \
        CUDNN_FAULT(name);                                                                         \
        return CUDNN_STATUS_SUCCESS;                                                               \
    }
HANDLE_CREATE(cudnnCreate, cudnnHandle_t, "cudnnCreate")
HANDLE_DESTROY(cudnnDestroy, cudnnHandle_t, "cudnnDestroy")
HANDLE_CREATE(cudnnCreateTensorDescriptor, cudnnTensorDescriptor_t, "cudnnCreateTensorDescriptor")
HANDLE_DESTROY(cudnnDestroyTensorDescriptor, cudnnTensorDescriptor_t,
               "cudnnDestroyTensorDescriptor")
HANDLE_CREATE(cudnnCreateFilterDescriptor, cudnnFilterDescriptor_t, "cudnnCreateFilterDescriptor")
HANDLE_DESTROY(cudnnDestroyFilterDescriptor, cudnnFilterDescriptor_t,
               "cudnnDestroyFilterDescriptor")
HANDLE_CREATE(cudnnCreateConvolutionDescriptor, cudnnConvolutionDescriptor_t,
              "cudnnCreateConvolutionDescriptor")
HANDLE_DESTROY(cudnnDestroyConvolutionDescriptor, cudnnConvolutionDescriptor_t,
               "cudnnDestroyConvolutionDescriptor")

cudnnStatus_t cudnnSetStream(cudnnHandle_t h, cudaStream_t s)
{
    (void)h, (void)s;
    CUDNN_FAULT("cudnnSetStream");
    return CUDNN_STATUS_SUCCESS;
}
/* Refuses what real cuDNN refuses: a tensor over the int range (here SMC_MAX_TENSOR_ELEMS, the
 * limit this build of the module was compiled with). */
cudnnStatus_t cudnnSetTensor4dDescriptor(cudnnTensorDescriptor_t d, cudnnTensorFormat_t f,
                                         cudnnDataType_t t, int n, int c, int h, int w)
{
    (void)d, (void)f, (void)t;
    CUDNN_FAULT("cudnnSetTensor4dDescriptor");
    if ((long long)n * c * h * w > (long long)SMC_MAX_TENSOR_ELEMS) return CUDNN_STATUS_BAD_PARAM;
    return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnSetFilter4dDescriptor(cudnnFilterDescriptor_t d, cudnnDataType_t t,
                                         cudnnTensorFormat_t f, int k, int c, int h, int w)
{
    (void)d, (void)t, (void)f, (void)k, (void)c, (void)h, (void)w;
    CUDNN_FAULT("cudnnSetFilter4dDescriptor");
    return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnSetConvolution2dDescriptor(cudnnConvolutionDescriptor_t d, int ph, int pw, int u,
                                              int v, int dh, int dw, cudnnConvolutionMode_t mode,
                                              cudnnDataType_t t)
{
    (void)d, (void)ph, (void)pw, (void)u, (void)v, (void)dh, (void)dw, (void)mode, (void)t;
    CUDNN_FAULT("cudnnSetConvolution2dDescriptor");
    return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnSetConvolutionMathType(cudnnConvolutionDescriptor_t d, cudnnMathType_t m)
{
    (void)d, (void)m;
    CUDNN_FAULT("cudnnSetConvolutionMathType");
    return CUDNN_STATUS_SUCCESS;
}

/* What cuDNN 9's heuristics may answer for float data: DEFAULT-tagged results (the FMA-only
 * filter refused them all), a tensor-op one, a failed one; fallback algorithm first in the
 * GEMM family. time is -1 (heuristics measure nothing). */
#define FAKE_LIST(perf, n_req, n_out, a0, a1, a2)                                                  \
    do {                                                                                           \
        const int algos[4] = {a0, a1, a2, a0};                                                     \
        const cudnnMathType_t maths[4] = {CUDNN_TENSOR_OP_MATH, CUDNN_DEFAULT_MATH,                \
                                          CUDNN_DEFAULT_MATH, CUDNN_DEFAULT_MATH};                 \
        const cudnnStatus_t st[4] = {CUDNN_STATUS_SUCCESS, CUDNN_STATUS_SUCCESS,                   \
                                     CUDNN_STATUS_NOT_SUPPORTED, CUDNN_STATUS_SUCCESS};            \
        *(n_out) = 0;                                                                              \
        for (int i = 0; i < 4 && i < (n_req); i++) {                                               \
            memset(&(perf)[i], 0, sizeof(perf)[i]);                                                \
            (perf)[i].algo = algos[i];                                                             \
            (perf)[i].status = st[i];                                                              \
            (perf)[i].time = -1.0f;                                                                \
            (perf)[i].memory = 4096;                                                               \
            (perf)[i].determinism = CUDNN_DETERMINISTIC;                                           \
            (perf)[i].mathType = maths[i];                                                         \
            (*(n_out))++;                                                                          \
        }                                                                                          \
    } while (0)

cudnnStatus_t cudnnGetConvolutionForwardAlgorithm_v7(cudnnHandle_t h,
                                                     const cudnnTensorDescriptor_t x,
                                                     const cudnnFilterDescriptor_t w,
                                                     const cudnnConvolutionDescriptor_t cd,
                                                     const cudnnTensorDescriptor_t y, const int req,
                                                     int *got, cudnnConvolutionFwdAlgoPerf_t *perf)
{
    (void)h, (void)x, (void)w, (void)cd, (void)y;
    CUDNN_FAULT("cudnnGetConvolutionForwardAlgorithm_v7");
    FAKE_LIST(perf, req, got, CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM,
              CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM, CUDNN_CONVOLUTION_FWD_ALGO_FFT);
    return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnGetConvolutionBackwardDataAlgorithm_v7(
    cudnnHandle_t h, const cudnnFilterDescriptor_t w, const cudnnTensorDescriptor_t dy,
    const cudnnConvolutionDescriptor_t cd, const cudnnTensorDescriptor_t dx, const int req,
    int *got, cudnnConvolutionBwdDataAlgoPerf_t *perf)
{
    (void)h, (void)w, (void)dy, (void)cd, (void)dx;
    CUDNN_FAULT("cudnnGetConvolutionBackwardDataAlgorithm_v7");
    FAKE_LIST(perf, req, got, CUDNN_CONVOLUTION_BWD_DATA_ALGO_1, CUDNN_CONVOLUTION_BWD_DATA_ALGO_1,
              CUDNN_CONVOLUTION_BWD_DATA_ALGO_FFT);
    return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnGetConvolutionBackwardFilterAlgorithm_v7(
    cudnnHandle_t h, const cudnnTensorDescriptor_t x, const cudnnTensorDescriptor_t dy,
    const cudnnConvolutionDescriptor_t cd, const cudnnFilterDescriptor_t dw, const int req,
    int *got, cudnnConvolutionBwdFilterAlgoPerf_t *perf)
{
    (void)h, (void)x, (void)dy, (void)cd, (void)dw;
    CUDNN_FAULT("cudnnGetConvolutionBackwardFilterAlgorithm_v7");
    FAKE_LIST(perf, req, got, CUDNN_CONVOLUTION_BWD_FILTER_ALGO_1,
              CUDNN_CONVOLUTION_BWD_FILTER_ALGO_1, CUDNN_CONVOLUTION_BWD_FILTER_ALGO_FFT);
    return CUDNN_STATUS_SUCCESS;
}

/* The measured search: the same lists (untimed, so the ranking is the heuristics'); a fault
 * here is survived by falling back to the heuristics. */
cudnnStatus_t cudnnFindConvolutionForwardAlgorithm(cudnnHandle_t h, const cudnnTensorDescriptor_t x,
                                                   const cudnnFilterDescriptor_t w,
                                                   const cudnnConvolutionDescriptor_t cd,
                                                   const cudnnTensorDescriptor_t y, const int req,
                                                   int *got, cudnnConvolutionFwdAlgoPerf_t *perf)
{
    (void)h, (void)x, (void)w, (void)cd, (void)y;
    CUDNN_FAULT("cudnnFindConvolutionForwardAlgorithm");
    FAKE_LIST(perf, req, got, CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM,
              CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM, CUDNN_CONVOLUTION_FWD_ALGO_FFT);
    return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnFindConvolutionBackwardDataAlgorithm(
    cudnnHandle_t h, const cudnnFilterDescriptor_t w, const cudnnTensorDescriptor_t dy,
    const cudnnConvolutionDescriptor_t cd, const cudnnTensorDescriptor_t dx, const int req,
    int *got, cudnnConvolutionBwdDataAlgoPerf_t *perf)
{
    (void)h, (void)w, (void)dy, (void)cd, (void)dx;
    CUDNN_FAULT("cudnnFindConvolutionBackwardDataAlgorithm");
    FAKE_LIST(perf, req, got, CUDNN_CONVOLUTION_BWD_DATA_ALGO_1, CUDNN_CONVOLUTION_BWD_DATA_ALGO_1,
              CUDNN_CONVOLUTION_BWD_DATA_ALGO_FFT);
    return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnFindConvolutionBackwardFilterAlgorithm(
    cudnnHandle_t h, const cudnnTensorDescriptor_t x, const cudnnTensorDescriptor_t dy,
    const cudnnConvolutionDescriptor_t cd, const cudnnFilterDescriptor_t dw, const int req,
    int *got, cudnnConvolutionBwdFilterAlgoPerf_t *perf)
{
    (void)h, (void)x, (void)dy, (void)cd, (void)dw;
    CUDNN_FAULT("cudnnFindConvolutionBackwardFilterAlgorithm");
    FAKE_LIST(perf, req, got, CUDNN_CONVOLUTION_BWD_FILTER_ALGO_1,
              CUDNN_CONVOLUTION_BWD_FILTER_ALGO_1, CUDNN_CONVOLUTION_BWD_FILTER_ALGO_FFT);
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnGetConvolutionForwardWorkspaceSize(cudnnHandle_t h,
                                                      const cudnnTensorDescriptor_t x,
                                                      const cudnnFilterDescriptor_t w,
                                                      const cudnnConvolutionDescriptor_t cd,
                                                      const cudnnTensorDescriptor_t y,
                                                      cudnnConvolutionFwdAlgo_t algo, size_t *b)
{
    (void)h, (void)x, (void)w, (void)cd, (void)y;
    CUDNN_FAULT("cudnnGetConvolutionForwardWorkspaceSize");
    *b = 1024 * (size_t)(algo + 1);
    return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnGetConvolutionBackwardDataWorkspaceSize(
    cudnnHandle_t h, const cudnnFilterDescriptor_t w, const cudnnTensorDescriptor_t dy,
    const cudnnConvolutionDescriptor_t cd, const cudnnTensorDescriptor_t dx,
    cudnnConvolutionBwdDataAlgo_t algo, size_t *b)
{
    (void)h, (void)w, (void)dy, (void)cd, (void)dx;
    CUDNN_FAULT("cudnnGetConvolutionBackwardDataWorkspaceSize");
    *b = 1024 * (size_t)(algo + 1);
    return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnGetConvolutionBackwardFilterWorkspaceSize(
    cudnnHandle_t h, const cudnnTensorDescriptor_t x, const cudnnTensorDescriptor_t dy,
    const cudnnConvolutionDescriptor_t cd, const cudnnFilterDescriptor_t dw,
    cudnnConvolutionBwdFilterAlgo_t algo, size_t *b)
{
    (void)h, (void)x, (void)dy, (void)cd, (void)dw;
    CUDNN_FAULT("cudnnGetConvolutionBackwardFilterWorkspaceSize");
    *b = 1024 * (size_t)(algo + 1);
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnConvolutionForward(cudnnHandle_t h, const void *alpha,
                                      const cudnnTensorDescriptor_t xd, const void *x,
                                      const cudnnFilterDescriptor_t wd, const void *w,
                                      const cudnnConvolutionDescriptor_t cd,
                                      cudnnConvolutionFwdAlgo_t algo, void *ws, size_t ws_bytes,
                                      const void *beta, const cudnnTensorDescriptor_t yd, void *y)
{
    (void)h, (void)alpha, (void)xd, (void)x, (void)wd, (void)w, (void)cd, (void)algo, (void)ws,
        (void)ws_bytes, (void)beta, (void)yd, (void)y;
    CUDNN_FAULT("cudnnConvolutionForward");
    return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnConvolutionBackwardData(cudnnHandle_t h, const void *alpha,
                                           const cudnnFilterDescriptor_t wd, const void *w,
                                           const cudnnTensorDescriptor_t dyd, const void *dy,
                                           const cudnnConvolutionDescriptor_t cd,
                                           cudnnConvolutionBwdDataAlgo_t algo, void *ws,
                                           size_t ws_bytes, const void *beta,
                                           const cudnnTensorDescriptor_t dxd, void *dx)
{
    (void)h, (void)alpha, (void)wd, (void)w, (void)dyd, (void)dy, (void)cd, (void)algo, (void)ws,
        (void)ws_bytes, (void)beta, (void)dxd, (void)dx;
    CUDNN_FAULT("cudnnConvolutionBackwardData");
    return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnConvolutionBackwardFilter(cudnnHandle_t h, const void *alpha,
                                             const cudnnTensorDescriptor_t xd, const void *x,
                                             const cudnnTensorDescriptor_t dyd, const void *dy,
                                             const cudnnConvolutionDescriptor_t cd,
                                             cudnnConvolutionBwdFilterAlgo_t algo, void *ws,
                                             size_t ws_bytes, const void *beta,
                                             const cudnnFilterDescriptor_t dwd, void *dw)
{
    (void)h, (void)alpha, (void)xd, (void)x, (void)dyd, (void)dy, (void)cd, (void)algo, (void)ws,
        (void)ws_bytes, (void)beta, (void)dwd, (void)dw;
    CUDNN_FAULT("cudnnConvolutionBackwardFilter");
    return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnAddTensor(cudnnHandle_t h, const void *alpha, const cudnnTensorDescriptor_t ad,
                             const void *a, const void *beta, const cudnnTensorDescriptor_t cd,
                             void *c)
{
    (void)h, (void)alpha, (void)ad, (void)a, (void)beta, (void)cd, (void)c;
    CUDNN_FAULT("cudnnAddTensor");
    return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnConvolutionBackwardBias(cudnnHandle_t h, const void *alpha,
                                           const cudnnTensorDescriptor_t dyd, const void *dy,
                                           const void *beta, const cudnnTensorDescriptor_t dbd,
                                           void *db)
{
    (void)h, (void)alpha, (void)dyd, (void)dy, (void)beta, (void)dbd, (void)db;
    CUDNN_FAULT("cudnnConvolutionBackwardBias");
    return CUDNN_STATUS_SUCCESS;
}

/* ---- cuBLAS ---- */

cublasStatus_t cublasCreate(cublasHandle_t *h)
{
    CUBLAS_FAULT("cublasCreate");
    *h = (cublasHandle_t)calloc(1, 64);
    return *h ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_ALLOC_FAILED;
}
cublasStatus_t cublasDestroy(cublasHandle_t h)
{
    free(h);
    CUBLAS_FAULT("cublasDestroy");
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasSetStream(cublasHandle_t h, cudaStream_t s)
{
    (void)h, (void)s;
    CUBLAS_FAULT("cublasSetStream");
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasSetMathMode(cublasHandle_t h, cublasMath_t m)
{
    (void)h, (void)m;
    CUBLAS_FAULT("cublasSetMathMode");
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasSgemm(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m,
                           int n, int k, const float *alpha, const float *a, int lda,
                           const float *b, int ldb, const float *beta, float *c, int ldc)
{
    (void)h, (void)ta, (void)tb, (void)m, (void)n, (void)k, (void)alpha, (void)a, (void)lda,
        (void)b, (void)ldb, (void)beta, (void)c, (void)ldc;
    CUBLAS_FAULT("cublasSgemm");
    return CUBLAS_STATUS_SUCCESS;
}
const char *cublasGetStatusName(cublasStatus_t s)
{
    return s == CUBLAS_STATUS_SUCCESS ? "CUBLAS_STATUS_SUCCESS" : "CUBLAS_STATUS_EXECUTION_FAILED";
}
const char *cublasGetStatusString(cublasStatus_t s)
{
    return s == CUBLAS_STATUS_SUCCESS ? "success" : "injected by tests/cuda_fake";
}
