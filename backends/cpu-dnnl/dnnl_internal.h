/* SPDX-License-Identifier: MIT */
/* Private to the cpu-dnnl module: its context, the host's error functions (the module cannot
 * link the core's hidden sm__fail), and the oneDNN convolution ops. Buffers are plain host
 * memory, NCHW at the vtable, so every op not in conv_dnnl.c is cpu-blas's own loop. */
#ifndef SM_CPU_DNNL_INTERNAL_H
#define SM_CPU_DNNL_INTERNAL_H

#include <oneapi/dnnl/dnnl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "backend_plugin.h"

extern const sm_backend_host *smd_host;

/* the core's SM_TRY, which a module cannot take from lib/common/error.h (its other macros call the
 * core's hidden sm__fail) */
#define SMD_TRY(expr)                                                                              \
    do {                                                                                           \
        sm_status smd_s_ = (expr);                                                                 \
        if (smd_s_ != SM_OK) return smd_s_;                                                        \
    } while (0)

/* Shared by the convolution files: a size rounded up to 64, floats per image of a convolution's
 * input and output, and whether two shapes are the same layer (any batch). */
static inline size_t smd_align64(size_t x) { return (x + 63) / 64 * 64; }
static inline size_t smd_in_img(const sm_conv_shape *s) { return (size_t)s->c * s->h * s->w; }
static inline size_t smd_out_img(const sm_conv_shape *s) { return (size_t)s->k * s->oh * s->ow; }
static inline bool smd_same_layer(const sm_conv_shape *a, const sm_conv_shape *b)
{
    return a->c == b->c && a->h == b->h && a->w == b->w && a->k == b->k && a->kh == b->kh &&
           a->kw == b->kw;
}

typedef struct conv_plan conv_plan;
typedef struct fft_plan fft_plan;

/* Large freed buffers kept for the next alloc of about their size: sm_predict_pairs makes its
 * workspace per call, and without this every call would fault in ~250 MB of fresh pages (the
 * cost that makes PyTorch's default allocator slow). Training allocates nothing per step. */
enum { SMD_CACHE_SLOTS = 8 };
typedef struct smd_block {
    void *ptr;
    size_t bytes;
} smd_block;

typedef struct dnnl_ctx {
    dnnl_engine_t engine;
    pthread_mutex_t lock; /* guards `plans` and `cache`; a listed plan is immutable */
    conv_plan *plans;
    fft_plan *fft_plans;
    smd_block cache[SMD_CACHE_SLOTS]; /* freed blocks (their headers), ptr NULL when empty */
    int conv_algo;                    /* sm_conv_algo */
    int precision;                    /* sm_precision */
    /* ops so far that can write host memory a caller chose (convolutions, upload, download,
     * zero): backward-data reuses the dy spectrum backward-filter left in the workspace only
     * when it is the very next such op, so no reordering of calls can feed it a stale one */
    _Atomic uint64_t ws_seq;
} dnnl_ctx;

/* Counts an op that may write a workspace; returns its number. */
static inline uint64_t smd_ws_touch(void *ctx)
{
    return atomic_fetch_add(&((dnnl_ctx *)ctx)->ws_seq, 1) + 1;
}

/* dnnl_common.c, a leaf. The thread count for oneDNN and our loops (OpenMP, process-wide like
 * OpenBLAS's); smd_threads_init reads OpenMP's default once, at the module's entry. */
void smd_threads_init(void);
int smd_threads(void);
void smd_set_threads(int threads); /* 0 = all cores */

sm_status smd_fail(dnnl_status_t e, const char *what);
/* the CPU runs bf16 dot products natively (AVX512_BF16 or AMX-BF16) */
bool smd_bf16_supported(void);

void smd_plans_destroy(dnnl_ctx *c);

/* AUTO's rule (conv_model.c): SM_CONV_ALGO_DIRECT or _FFT for op 0/1/2 (forward,
 * backward-data, backward-filter) of a layer in a precision, from multiply-add counts per image
 * (the layer's; s->n is not read) */
bool smd_fft_possible(const sm_conv_shape *s);
double smd_conv_direct_macs(const sm_conv_shape *s);
double smd_conv_fft_macs(const sm_conv_shape *s);
int smd_conv_modeled(int op, int precision, const sm_conv_shape *s);

/* The vtable's convolution slots (conv_select.c): each op runs the algorithm chosen for its
 * layer shape and direction (SM_BACKEND_OPT_CONV_ALGO: AUTO by the rule above, MEASURED timed
 * once per process and layer). */
size_t smd_conv_workspace(void *ctx, const sm_conv_shape *s);
sm_status smd_conv_fwd(void *ctx, const sm_conv_shape *s, const float *x, const float *w,
                       const float *b, float *y, void *ws, size_t ws_bytes);
sm_status smd_conv_bwd_data(void *ctx, const sm_conv_shape *s, const float *dy, const float *w,
                            float *dx, void *ws, size_t ws_bytes);
sm_status smd_conv_bwd_filter(void *ctx, const sm_conv_shape *s, const float *x, const float *dy,
                              float *dw, float *db, void *ws, size_t ws_bytes);
/* the algorithm (SM_CONV_ALGO_DIRECT or _FFT) that runs op 0/1/2 (forward, backward-data,
 * backward-filter) of a shape: for tests and benchmarks through the module's ops */
int smd_conv_chosen(void *ctx, int op, const sm_conv_shape *s);

/* oneDNN's direct convolutions (conv_dnnl.c), in c->precision */
size_t smd_direct_workspace(void *ctx, const sm_conv_shape *s);
sm_status smd_direct_fwd(void *ctx, const sm_conv_shape *s, const float *x, const float *w,
                         const float *b, float *y, void *ws, size_t ws_bytes);
sm_status smd_direct_bwd_data(void *ctx, const sm_conv_shape *s, const float *dy, const float *w,
                              float *dx, void *ws, size_t ws_bytes);
sm_status smd_direct_bwd_filter(void *ctx, const sm_conv_shape *s, const float *x, const float *dy,
                                float *dw, float *db, void *ws, size_t ws_bytes);

/* Convolution in the frequency domain, float32 (conv_fft.c) */
void smd_fft_plans_destroy(dnnl_ctx *c);
sm_status smd_fft_workspace(void *ctx, const sm_conv_shape *s, size_t *bytes);
sm_status smd_fft_fwd(void *ctx, const sm_conv_shape *s, const float *x, const float *w,
                      const float *b, float *y, void *ws, size_t ws_bytes);
sm_status smd_fft_bwd_data(void *ctx, const sm_conv_shape *s, const float *dy, const float *w,
                           float *dx, void *ws, size_t ws_bytes);
sm_status smd_fft_bwd_filter(void *ctx, const sm_conv_shape *s, const float *x, const float *dy,
                             float *dw, float *db, void *ws, size_t ws_bytes);

#endif
