/* SPDX-License-Identifier: MIT */
/* Vendor statuses to sm_status, with the vendor's own name and text in the message, through the
 * core's error function (the module cannot link the core's hidden sm__fail). */
#include <stdarg.h>
#include <stdio.h>

#include "cuda_internal.h"

const sm_backend_host *smc_host;

_Thread_local char smc_last_fail[512];

/* The host's fail, with the message also kept in smc_last_fail. */
__attribute__((format(printf, 2, 3))) static sm_status fail(sm_status s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(smc_last_fail, sizeof smc_last_fail, fmt, ap);
    va_end(ap);
    return smc_host->fail(s, "%s", smc_last_fail);
}

/* Also clears the runtime's last-error slot: a non-sticky error (a failed copy, a bad launch
 * configuration) stays there otherwise, and the next kernel launch's cudaGetLastError would
 * report it as that kernel's failure. A sticky error (the context is lost) cannot be cleared and
 * every later call reports it, which is right. */
sm_status smc_cuda_fail(cudaError_t e, const char *what)
{
    cudaGetLastError();
    sm_status s = e == cudaErrorMemoryAllocation ? SM_ERR_NOMEM : SM_ERR_DEVICE;
    return fail(s, "cuda backend: %s failed: %s (%s)", what, cudaGetErrorName(e),
                cudaGetErrorString(e));
}

sm_status smc_cudnn_fail(cudnnStatus_t e, const char *what)
{
    /* cuDNN 9 keeps a detail string per thread for the last failure */
    char detail[256] = "";
    cudnnGetLastErrorString(detail, sizeof detail);
    sm_status s = e == CUDNN_STATUS_INTERNAL_ERROR_HOST_ALLOCATION_FAILED ||
                          e == CUDNN_STATUS_INTERNAL_ERROR_DEVICE_ALLOCATION_FAILED
                      ? SM_ERR_NOMEM
                      : SM_ERR_DEVICE;
    return fail(s, "cuda backend: %s failed: %s%s%s", what, cudnnGetErrorString(e),
                detail[0] ? ": " : "", detail);
}

sm_status smc_cublas_fail(cublasStatus_t e, const char *what)
{
    sm_status s = e == CUBLAS_STATUS_ALLOC_FAILED ? SM_ERR_NOMEM : SM_ERR_DEVICE;
    return fail(s, "cuda backend: %s failed: %s (%s)", what, cublasGetStatusName(e),
                cublasGetStatusString(e));
}
