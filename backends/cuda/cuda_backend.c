/* SPDX-License-Identifier: MIT */
/* The cuda backend's entry point, probe, context and memory ops. Built as the module
 * libsiamese-cuda.so, which the core dlopens (lib/backend/backend.c); only sm_backend_module_entry
 * is exported (module.map). One device (0), one stream per backend; every vendor status becomes an
 * sm_status through the host's error function, and nothing here aborts or prints. */
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_internal.h"
#include "kernels.h"

/* Lowest compute capability the module carries code for: sm_90 machine code plus compute_75
 * PTX, which the driver compiles for anything newer than Hopper or between 7.5 and 9.0. */
#define SMC_MIN_CC 75

#define UNAVAILABLE(...) smc_host->fail(SM_ERR_BACKEND_UNAVAILABLE, __VA_ARGS__)

/* "no driver" and "no device" are different problems for the person reading the message, and
 * the static runtime folds a missing libcuda into cudaErrorInsufficientDriver: look for the
 * driver library first. */
static sm_status cuda_probe(void)
{
    if (!smc_host || smc_host->abi_version != SM_BACKEND_ABI_VERSION) return SM_ERR_VERSION;
    void *drv = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!drv) {
        const char *why = dlerror();
        return UNAVAILABLE("cuda backend: no NVIDIA driver: libcuda.so.1 could not be loaded (%s)",
                           why ? why : "not found");
    }
    dlclose(drv);
    int version = 0;
    cudaError_t e = cudaDriverGetVersion(&version);
    if (e != cudaSuccess || version == 0) {
        cudaGetLastError();
        return UNAVAILABLE("cuda backend: no usable NVIDIA driver: libcuda.so.1 loads but %s%s",
                           e != cudaSuccess ? "fails: "
                                            : "reports no CUDA version (a stub "
                                              "library or a broken install?)",
                           e != cudaSuccess ? cudaGetErrorString(e) : "");
    }
    int count = 0;
    e = cudaGetDeviceCount(&count);
    cudaGetLastError(); /* not sticky, but do not leave it for the host's next CUDA call */
    if (e == cudaErrorInsufficientDriver)
        return UNAVAILABLE("cuda backend: the NVIDIA driver is too old (it supports CUDA %d.%d, "
                           "the module needs %d.%d)",
                           version / 1000, version % 1000 / 10, CUDART_VERSION / 1000,
                           CUDART_VERSION % 1000 / 10);
    if (e == cudaErrorNoDevice || (e == cudaSuccess && count == 0))
        return UNAVAILABLE("cuda backend: no CUDA device (the driver is loaded but reports no "
                           "GPU: %s)",
                           e != cudaSuccess ? cudaGetErrorString(e) : "0 devices");
    if (e != cudaSuccess)
        return UNAVAILABLE("cuda backend: no usable CUDA device: %s (%s)", cudaGetErrorName(e),
                           cudaGetErrorString(e));
    struct cudaDeviceProp prop;
    e = cudaGetDeviceProperties(&prop, 0);
    if (e != cudaSuccess) {
        cudaGetLastError();
        return UNAVAILABLE("cuda backend: cannot read device 0: %s (%s)", cudaGetErrorName(e),
                           cudaGetErrorString(e));
    }
    if (prop.major * 10 + prop.minor < SMC_MIN_CC)
        return UNAVAILABLE("cuda backend: device 0 (%s) has compute capability %d.%d, the "
                           "module needs 7.5 or newer",
                           prop.name, prop.major, prop.minor);
    size_t dnn = cudnnGetVersion();
    if (dnn / 10000 != CUDNN_MAJOR)
        return UNAVAILABLE("cuda backend: cuDNN %zu.%zu is loaded, the module was built for "
                           "%d.x",
                           dnn / 10000, dnn % 10000 / 100, CUDNN_MAJOR);
    return SM_OK;
}

static void ctx_release(cuda_ctx *c)
{
    smc_conv_plans_destroy(c);
    smc_cache_release(c);
    if (c->flag) cudaFree(c->flag);
    if (c->dnn) cudnnDestroy(c->dnn);
    if (c->blas) cublasDestroy(c->blas);
    if (c->stream) cudaStreamDestroy(c->stream);
    pthread_mutex_destroy(&c->lock);
    free(c);
}

static sm_status ctx_setup(cuda_ctx *c)
{
    SMC_CUDA(cudaSetDevice(c->device));
    /* non-blocking: the host program's own work on the legacy stream does not serialise ours */
    SMC_CUDA(cudaStreamCreateWithFlags(&c->stream, cudaStreamNonBlocking));
    SMC_CUBLAS(cublasCreate(&c->blas));
    SMC_CUBLAS(cublasSetStream(c->blas, c->stream));
    /* exact float32 until SM_BACKEND_OPT_TF32 says otherwise */
    SMC_CUBLAS(cublasSetMathMode(c->blas, CUBLAS_DEFAULT_MATH));
    SMC_CUDNN(cudnnCreate(&c->dnn));
    SMC_CUDNN(cudnnSetStream(c->dnn, c->stream));
    SMC_CUDA(cudaMalloc((void **)&c->flag, sizeof *c->flag));
    return SM_OK;
}

static sm_status cuda_init(void **ctx)
{
    cuda_ctx *c = calloc(1, sizeof *c);
    if (!c) return smc_host->fail(SM_ERR_NOMEM, "out of memory creating the cuda backend");
    if (pthread_mutex_init(&c->lock, NULL) != 0) {
        free(c);
        return smc_host->fail(SM_ERR_NOMEM, "cuda backend: cannot create a mutex");
    }
    sm_status s = ctx_setup(c);
    if (s != SM_OK) {
        ctx_release(c);
        return s;
    }
    *ctx = c;
    return SM_OK;
}

static void cuda_destroy(void *ctx)
{
    cuda_ctx *c = ctx;
    if (!c) return;
    cudaStreamSynchronize(c->stream);
    ctx_release(c);
}

static sm_status cuda_set_option(void *ctx, sm_backend_option key, int64_t value)
{
    cuda_ctx *c = ctx;
    if (key == SM_BACKEND_OPT_CONV_ALGO) {
        pthread_mutex_lock(&c->lock); /* read by planning, under the lock */
        c->conv_algo = (int)value;
        pthread_mutex_unlock(&c->lock);
        return SM_OK;
    }
    if (key != SM_BACKEND_OPT_TF32) return SM_OK;
    pthread_mutex_lock(&c->lock);
    cublasStatus_t e =
        cublasSetMathMode(c->blas, value ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH);
    if (e == CUBLAS_STATUS_SUCCESS) c->tf32 = value != 0;
    pthread_mutex_unlock(&c->lock);
    return e == CUBLAS_STATUS_SUCCESS ? SM_OK : smc_cublas_fail(e, "cublasSetMathMode");
}

static int64_t cuda_get_option(void *ctx, sm_backend_option key)
{
    cuda_ctx *c = ctx;
    if (key != SM_BACKEND_OPT_TF32 && key != SM_BACKEND_OPT_CONV_ALGO) return 0;
    pthread_mutex_lock(&c->lock);
    int64_t v = key == SM_BACKEND_OPT_TF32 ? c->tf32 : c->conv_algo;
    pthread_mutex_unlock(&c->lock);
    return v;
}

static sm_status cuda_alloc(void *ctx, size_t bytes, void **ptr)
{
    /* cudaMalloc's blocks are 256-byte aligned (the vtable asks for 64), and never NULL for 0
     * bytes, which the core would take for "not allocated" */
    return smc_alloc(ctx, bytes, ptr);
}

static void cuda_free(void *ctx, void *ptr) { smc_free(ctx, ptr); }

static sm_status cuda_upload(void *ctx, void *dst, const void *src, size_t bytes)
{
    cuda_ctx *c = ctx;
    if (!bytes) return SM_OK;
    /* the host buffer is the caller's and may go away on return: from pageable memory the
     * copy has left it by then, but a pinned buffer would not be, so wait in every case */
    SMC_CUDA(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, c->stream));
    SMC_CUDA(cudaStreamSynchronize(c->stream));
    return SM_OK;
}

static sm_status cuda_download(void *ctx, void *dst, const void *src, size_t bytes)
{
    cuda_ctx *c = ctx;
    if (!bytes) return SM_OK;
    SMC_CUDA(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, c->stream));
    SMC_CUDA(cudaStreamSynchronize(c->stream));
    return SM_OK;
}

static sm_status cuda_zero(void *ctx, void *dst, size_t bytes)
{
    cuda_ctx *c = ctx;
    if (bytes) SMC_CUDA(cudaMemsetAsync(dst, 0, bytes, c->stream));
    return SM_OK;
}

static const sm_backend_ops cuda_ops = {
    .abi_version = SM_BACKEND_ABI_VERSION,
    .name = "cuda",
    .kind = SM_BACKEND_CUDA,
    /* the GPU wants large chunks; embedding: the dispatch default */
    .props = {.train_pairs = 32,
              .predict_pairs = 32,
              .honours = SM_BACKEND_HONOURS_TF32 | SM_BACKEND_HONOURS_CONV_ALGO},
    .probe = cuda_probe,
    .init = cuda_init,
    .destroy = cuda_destroy,
    .set_threads = NULL, /* host threads do not change GPU work */
    .get_threads = NULL,
    .set_option = cuda_set_option,
    .get_option = cuda_get_option,
    .alloc = cuda_alloc,
    .free = cuda_free,
    .upload = cuda_upload,
    .download = cuda_download,
    .zero = cuda_zero,
    .conv_workspace = smc_conv_workspace,   /* cuDNN (conv_cudnn.c) */
    .conv_fwd = smc_conv_fwd,               /* cuDNN */
    .conv_bwd_data = smc_conv_bwd_data,     /* cuDNN */
    .conv_bwd_filter = smc_conv_bwd_filter, /* cuDNN, beta = 1 */
    .maxpool_fwd = smc_maxpool_fwd,         /* own kernel: the CPU's argmax semantics */
    .maxpool_bwd = smc_maxpool_bwd,         /* own kernel */
    .groupnorm_fwd = smc_groupnorm_fwd,     /* own kernels: one block per (image, group) */
    .groupnorm_bwd = smc_groupnorm_bwd,     /* and one per channel for dgamma, dbeta */
    .relu_fwd = smc_relu_fwd,
    .relu_bwd = smc_relu_bwd,
    .sigmoid_fwd = smc_sigmoid_fwd,
    .sigmoid_bwd = smc_sigmoid_bwd,
    .gemm = smc_gemm, /* cuBLAS */
    .bias_add = smc_bias_add,
    .bias_grad = smc_bias_grad,
    .absdiff_fwd = smc_absdiff_fwd,
    .absdiff_bwd = smc_absdiff_bwd,
    .l1_scores = smc_l1_scores, /* own kernel: the CPU's summation order, the same bits */
    .bce_fwd_bwd = smc_bce_fwd_bwd,
    .adam_update = smc_adam_update,
    .all_finite = smc_all_finite,
};

__attribute__((visibility("default"))) const sm_backend_ops *
sm_backend_module_entry(const sm_backend_host *host);

/* Does not read `host`: a core of another ABI may pass something else (an ABI-1 core passes
 * nothing). It only looks at our abi_version and refuses us; ours is checked in probe. */
const sm_backend_ops *sm_backend_module_entry(const sm_backend_host *host)
{
    smc_host = host;
    return &cuda_ops;
}
