/* SPDX-License-Identifier: MIT */
/* libsiamese: compute backends (cpu-blas, cpu-dnnl, cuda): choosing one, creating it, its
 * thread count and options. Part of the API <siamese/siamese.h> includes. */
#ifndef SIAMESE_BACKENDS_H
#define SIAMESE_BACKENDS_H

#include "siamese/common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------------------------------------
 * Backends
 * ------------------------------------------------------------------------------------------- */

typedef enum sm_backend_kind {
    SM_BACKEND_AUTO = 0,    /* the best usable backend: CUDA when usable, else cpu-dnnl when
                               its module loads, else cpu-blas */
    SM_BACKEND_CPU = 1,     /* cpu-blas: OpenBLAS GEMMs and the library's own loops */
    SM_BACKEND_CUDA = 2,    /* cuda: cuDNN + cuBLAS (a separately built module) */
    SM_BACKEND_CPU_DNNL = 3 /* since 0.2: cpu-dnnl: oneDNN convolutions and GEMM, cpu-blas's
                               loops for the rest (a separately built module, meson option
                               -Ddnnl; docs/performance.md) */
} sm_backend_kind;

/** A compute backend: owns the device context, threads and vendor handles. */
typedef struct sm_backend sm_backend;

/** "auto", "cpu", "cuda", "cpu-dnnl" (the names the examples' --backend option takes);
 *  "unknown" for values not in the enum. Static storage. Since 0.2. */
SM_API const char *sm_backend_kind_name(sm_backend_kind kind);

/** Reports whether `kind` can be used here: SM_OK, or SM_ERR_BACKEND_UNAVAILABLE with the
 *  reason in sm_last_error() (not built, no module, no device), or SM_ERR_INVALID_ARG. */
SM_API sm_status sm_backend_probe(sm_backend_kind kind);

/** Creates a backend. Returns SM_ERR_BACKEND_UNAVAILABLE (with the reason) when `kind` cannot
 *  be used here, SM_ERR_INVALID_ARG for an unknown kind or NULL `out`, SM_ERR_NOMEM. */
SM_API sm_status sm_backend_create(sm_backend_kind kind, sm_backend **out);
/** Destroys a backend. Every subnet and head created on it must be destroyed first. NULL: no-op. */
SM_API void sm_backend_destroy(sm_backend *backend);
/** The backend's name ("cpu-blas", "cpu-dnnl", "cuda"); "" for NULL. Static storage. */
SM_API const char *sm_backend_name(const sm_backend *backend);
/** The concrete kind (never SM_BACKEND_AUTO); SM_BACKEND_AUTO for NULL. */
SM_API sm_backend_kind sm_backend_get_kind(const sm_backend *backend);
/** Sets the number of worker threads (BLAS, oneDNN and the library's own loops, which always
 *  run on the same count as the library they sit between, so they never oversubscribe the
 *  cores); 0 = all cores (the default; OPENBLAS_NUM_THREADS or OMP_NUM_THREADS, for cpu-blas
 *  or cpu-dnnl, set the initial count). The setting is process-wide for each CPU backend
 *  (OpenBLAS's and OpenMP's pools are): call it while no other thread is computing. cpu-blas
 *  runs some convolutions with whole images per thread, each on a single-threaded SGEMM: for
 *  those ops it sets OpenBLAS's thread count to 1 and then restores it, so a host calling
 *  OpenBLAS itself from another thread meanwhile gets one thread for that call.
 *  SM_ERR_INVALID_ARG for a negative count or > 1024. */
SM_API sm_status sm_backend_set_threads(sm_backend *backend, int threads);
/** The thread count in effect, or 0 for NULL. */
SM_API int sm_backend_get_threads(const sm_backend *backend);

/** A backend created with SM_BACKEND_AUTO that is not the CUDA backend: why CUDA was not
 *  taken ("no cuda module at '...'", "module '...' could not be loaded: libcudnn.so.9: ...",
 *  "no NVIDIA driver: ...", "no CUDA device: ..."), followed, when AUTO landed on cpu-blas, by
 *  "; cpu-dnnl: " and why cpu-dnnl was not taken either. "" when the backend was created with an
 *  explicit kind, when AUTO chose CUDA, or for NULL. Valid as long as the backend. Since 0.2. */
SM_API const char *sm_backend_fallback_reason(const sm_backend *backend);

typedef enum sm_backend_option {
    /* 0 (default): float32 matrix products and convolutions are exact float32 (cuDNN
     * CUDNN_FMA_MATH, cuBLAS default math). 1: TensorFloat-32 tensor cores may be used (faster,
     * about 10 bits of mantissa in products; docs/cuda.md). No effect on cpu-blas (reads 0). */
    SM_BACKEND_OPT_TF32 = 1,
    /* Since 0.3: how convolutions are computed, an sm_conv_algo. AUTO (the default) chooses
     * per layer shape and direction (forward, backward-data, backward-filter) by a fixed rule
     * of the shape and the precision, never by timing: the same command gives the same bits
     * on every run and every rank. MEASURED (since 0.4) times the candidates of each layer and
     * direction the first time the layer is sized (when a trainer or a prediction sizes its
     * workspace) and keeps the fastest for the life of the process: sometimes faster than AUTO,
     * but the load at that moment can change the choice and so the results' last bits, and
     * data-parallel training refuses it (sm_trainer_attach_comm). DIRECT and FFT force one.
     * FFT agrees with DIRECT to float32 rounding, not bit for bit (docs/performance.md gives
     * the measured error). Honoured by cpu-dnnl and cuda (cuda: MEASURED runs cuDNN's
     * measured search, cudnnFind*, FFT algorithms included; the other values take cuDNN's
     * heuristics, which time nothing, among its deterministic algorithms); cpu-blas accepts
     * the values and reads back DIRECT. */
    SM_BACKEND_OPT_CONV_ALGO = 2,
    /* Since 0.3: the number format of convolutions and the subnetwork's matrix products, an
     * sm_precision. FP32 (the default) is exact float32. BF16 rounds the inputs of those
     * products to bfloat16 (8 bits of mantissa) and accumulates in float32, like PyTorch's
     * autocast: parameters, gradients, Adam's moments, the loss, the head and checkpoints stay
     * float32. Setting BF16 returns SM_ERR_UNSUPPORTED where the backend or the CPU cannot do
     * it at speed (cpu-dnnl without AVX512_BF16; cpu-blas), never a silent slow path. */
    SM_BACKEND_OPT_PRECISION = 3
} sm_backend_option;

/** Values of SM_BACKEND_OPT_CONV_ALGO. Since 0.3. */
typedef enum sm_conv_algo {
    SM_CONV_ALGO_AUTO = 0,    /* chosen per layer shape and direction by a fixed rule (default) */
    SM_CONV_ALGO_DIRECT = 1,  /* spatial convolution (oneDNN's direct kernels, GEMM on cpu-blas) */
    SM_CONV_ALGO_FFT = 2,     /* frequency domain wherever the backend offers it (cpu-dnnl:
                                kernels of 3x3 and larger, sides up to 512) */
    SM_CONV_ALGO_MEASURED = 3 /* the fastest per layer and direction, timed once per process:
                                 results may differ in the last bits between runs. Since 0.4 */
} sm_conv_algo;

/** Values of SM_BACKEND_OPT_PRECISION. Since 0.3. */
typedef enum sm_precision { SM_PRECISION_FP32 = 0, SM_PRECISION_BF16 = 1 } sm_precision;

/** Sets a backend option; SM_ERR_INVALID_ARG for NULL, an unknown key or a value out of range
 *  (TF32: 0 or 1; CONV_ALGO: an sm_conv_algo; PRECISION: an sm_precision), SM_ERR_UNSUPPORTED
 *  for a precision the backend cannot run here. Takes effect from the next op (a new
 *  CONV_ALGO or PRECISION from the next workspace a trainer or prediction sizes). Modifies the
 *  backend: call it while no other thread computes on it. Since 0.2. */
SM_API sm_status sm_backend_set_option(sm_backend *backend, sm_backend_option key, int64_t value);
/** Reads an option into `*value`; SM_ERR_INVALID_ARG for NULL or an unknown key. Since 0.2. */
SM_API sm_status sm_backend_get_option(const sm_backend *backend, sm_backend_option key,
                                       int64_t *value);

#ifdef __cplusplus
}
#endif

#endif
