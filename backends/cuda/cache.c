/* SPDX-License-Identifier: MIT */
/* Device memory for the core's buffers. The core allocates and frees its scratch around every
 * prediction call; cudaMalloc is slow and cudaFree waits for the whole device, so freed blocks
 * are kept and handed out again for the same size (PyTorch's caching allocator, in miniature).
 * Reuse is safe without events because the backend has one stream: work on a block that was
 * enqueued before its free runs before any work enqueued after its reuse. Cached blocks are
 * released when an allocation fails (then it is retried once) and when the backend is
 * destroyed. */
#include <stdlib.h>

#include "cuda_internal.h"

/* cudaMalloc's own granularity; rounding up lets nearby sizes share blocks */
static size_t rounded(size_t bytes) { return bytes ? (bytes + 255) & ~(size_t)255 : 256; }

/* Frees every cached (unused) block. Caller holds the lock. */
static void release_unused(cuda_ctx *c)
{
    smc_block **pp = &c->blocks;
    while (*pp) {
        smc_block *b = *pp;
        if (!b->used) {
            *pp = b->next;
            cudaFree(b->ptr);
            free(b);
        } else {
            pp = &b->next;
        }
    }
}

sm_status smc_alloc(cuda_ctx *c, size_t bytes, void **ptr)
{
    const size_t want = rounded(bytes);
    if (want < bytes) return smc_host->fail(SM_ERR_NOMEM, "cuda backend: %zu bytes", bytes);
    pthread_mutex_lock(&c->lock);
    for (smc_block *b = c->blocks; b; b = b->next)
        if (!b->used && b->bytes == want) {
            b->used = true;
            pthread_mutex_unlock(&c->lock);
            *ptr = b->ptr;
            return SM_OK;
        }
    smc_block *nb = malloc(sizeof *nb);
    void *p = NULL;
    cudaError_t e = nb ? cudaMalloc(&p, want) : cudaErrorMemoryAllocation;
    if (nb && e == cudaErrorMemoryAllocation) {
        cudaGetLastError(); /* not sticky: clear it before the retry */
        release_unused(c);
        e = cudaMalloc(&p, want);
    }
    if (!nb || e != cudaSuccess) {
        pthread_mutex_unlock(&c->lock);
        free(nb);
        if (!nb) return smc_host->fail(SM_ERR_NOMEM, "out of host memory in the cuda backend");
        cudaGetLastError();
        if (e == cudaErrorMemoryAllocation)
            return smc_host->fail(SM_ERR_NOMEM,
                                  "cuda backend: out of device memory allocating %zu bytes", bytes);
        return smc_cuda_fail(e, "cudaMalloc");
    }
    *nb = (smc_block){c->blocks, p, want, true};
    c->blocks = nb;
    pthread_mutex_unlock(&c->lock);
    *ptr = p;
    return SM_OK;
}

void smc_free(cuda_ctx *c, void *ptr)
{
    if (!ptr) return;
    pthread_mutex_lock(&c->lock);
    for (smc_block *b = c->blocks; b; b = b->next)
        if (b->ptr == ptr) {
            b->used = false;
            break;
        }
    pthread_mutex_unlock(&c->lock);
}

/* At destroy: everything, in use or not (the core has freed its buffers by then). */
void smc_cache_release(cuda_ctx *c)
{
    while (c->blocks) {
        smc_block *b = c->blocks;
        c->blocks = b->next;
        cudaFree(b->ptr);
        free(b);
    }
}
