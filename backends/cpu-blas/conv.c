/* SPDX-License-Identifier: MIT */
/* Convolution as im2col + SGEMM (after darknet/Caffe's convolutional_layer.c), with several
 * images per GEMM: the columns of g images sit side by side ([C*kh*kw][g*oh*ow]), so the late
 * layers, whose images give only 36 or 324 columns each, still hand OpenBLAS products wide
 * enough for its kernels. g is chosen per layer within a fixed column budget, so the workspace
 * does not grow with the batch. The copies around the GEMM (im2col, col2im, the reshuffle
 * between [K][g][oh*ow] and NCHW) and the products (gemm.c) run on the backend's threads. */
#include <cblas.h>
#include <string.h>

#include "cpu_internal.h"
#include "parallel.h"

/* Columns per GEMM worth reaching, and the most column floats worth holding to reach them. */
enum { TARGET_COLS = 4096 };
#define COL_BUDGET ((size_t)8 << 20)

/* Bytes of columns per GEMM when a layer runs one image per GEMM (conv1, conv2 of Koch's net):
 * the image's input channels are taken in slices whose columns stay in cache between im2col
 * writing them and SGEMM reading them (conv2's 22 MB of columns per image would otherwise go
 * to memory and back), and the products accumulate over the slices. */
#ifndef SM_CONV_SLICE_BYTES
#define SM_CONV_SLICE_BYTES ((size_t)8 << 20)
#endif

typedef struct conv_dims {
    size_t ckk, ohw, in_img, out_img; /* floats: one image's columns per row, input, output */
    int g;                            /* images per GEMM */
    int cs;                           /* input channels per slice (g == 1), else all */
} conv_dims;

static conv_dims dims_of(const sm_conv_shape *s)
{
    conv_dims d;
    d.ckk = (size_t)s->c * s->kh * s->kw;
    d.ohw = (size_t)s->oh * s->ow;
    d.in_img = (size_t)s->c * s->h * s->w;
    d.out_img = (size_t)s->k * d.ohw;
    size_t g = (TARGET_COLS + d.ohw - 1) / d.ohw;
    while (g > 1 && g * d.ckk * d.ohw > COL_BUDGET) g--;
    if (g > (size_t)s->n) g = (size_t)s->n;
    d.g = g < 1 ? 1 : (int)g;
    d.cs = s->c;
    if (d.g == 1) {
        size_t per_c = (size_t)s->kh * s->kw * d.ohw * sizeof(float);
        size_t cs = per_c ? SM_CONV_SLICE_BYTES / per_c : (size_t)s->c;
        if (cs < 1) cs = 1;
        if (cs < (size_t)s->c) { /* equal slices: no short GEMM at the end */
            size_t slices = ((size_t)s->c + cs - 1) / cs;
            d.cs = (int)(((size_t)s->c + slices - 1) / slices);
        }
    }
    return d;
}

int sm__cpu_conv_group(const sm_conv_shape *s) { return dims_of(s).g; }

/* ---- the copies, one work unit per (image, channel[, kernel row]) ---- */

typedef struct copy_job {
    const sm_conv_shape *s;
    conv_dims d;
    int g;           /* images in this group */
    int c0, nc;      /* the input channels whose columns are in play */
    const float *in; /* the group's first image (NCHW) or the GEMM's [K][g*ohw] result */
    float *out;
    const float *bias;
} copy_job;

/* col[((c-c0)*kh + i)*kw + j][img*ohw + y*ow + x] = x[img][c][y + i][x + j] for the channels
 * c0 .. c0+nc-1; unit = (img, c, i) */
static void im2col_range(void *p, size_t begin, size_t end)
{
    const copy_job *j = p;
    const sm_conv_shape *s = j->s;
    const size_t ld = (size_t)j->g * j->d.ohw, nc = (size_t)j->nc;
    for (size_t u = begin; u < end; u++) {
        size_t img = u / (nc * s->kh), rest = u % (nc * s->kh);
        size_t cr = rest / s->kh, c = j->c0 + cr, i = rest % s->kh;
        const float *x = j->in + img * j->d.in_img + (c * s->h + i) * s->w;
        for (int jj = 0; jj < s->kw; jj++) {
            float *dst = j->out + ((cr * s->kh + i) * s->kw + jj) * ld + img * j->d.ohw;
            for (int y = 0; y < s->oh; y++)
                memcpy(dst + (size_t)y * s->ow, x + (size_t)y * s->w + jj,
                       (size_t)s->ow * sizeof(float));
        }
    }
}

static void im2col(const sm_conv_shape *s, conv_dims d, int g, int c0, int nc, const float *x,
                   float *col)
{
    copy_job j = {s, d, g, c0, nc, x, col, NULL};
    sm__cpu_parallel_for((size_t)g * nc * s->kh, 4, im2col_range, &j);
}

/* The adjoint of im2col for the channels c0 .. c0+nc-1, one (img, c) plane per unit; the
 * plane is cleared here, in cache, instead of by a separate pass over dx. */
static void col2im_range(void *p, size_t begin, size_t end)
{
    const copy_job *j = p;
    const sm_conv_shape *s = j->s;
    const size_t ld = (size_t)j->g * j->d.ohw, nc = (size_t)j->nc;
    for (size_t u = begin; u < end; u++) {
        size_t img = u / nc, cr = u % nc, c = j->c0 + cr;
        float *dx = j->out + img * j->d.in_img + c * (size_t)s->h * s->w;
        memset(dx, 0, (size_t)s->h * s->w * sizeof(float));
        for (int i = 0; i < s->kh; i++)
            for (int jj = 0; jj < s->kw; jj++) {
                const float *src = j->in + ((cr * s->kh + i) * s->kw + jj) * ld + img * j->d.ohw;
                float *dst = dx + (size_t)i * s->w + jj;
                for (int y = 0; y < s->oh; y++) {
                    const float *srow = src + (size_t)y * s->ow;
                    float *drow = dst + (size_t)y * s->w;
                    for (int x = 0; x < s->ow; x++) drow[x] += srow[x];
                }
            }
    }
}

/* y[img][k][p] = r[k][img*ohw + p] + b[k]; unit = (img, k) */
static void scatter_bias_range(void *p, size_t begin, size_t end)
{
    const copy_job *j = p;
    const size_t ohw = j->d.ohw, ld = (size_t)j->g * ohw, K = (size_t)j->s->k;
    for (size_t u = begin; u < end; u++) {
        size_t img = u / K, k = u % K;
        const float *src = j->in + k * ld + img * ohw;
        float *dst = j->out + img * j->d.out_img + k * ohw;
        const float b = j->bias[k];
        for (size_t q = 0; q < ohw; q++) dst[q] = src[q] + b;
    }
}

/* y[k][p] = b[k] for one image; unit = k */
static void fill_bias_range(void *p, size_t begin, size_t end)
{
    const copy_job *j = p;
    const size_t ohw = j->d.ohw;
    for (size_t k = begin; k < end; k++) {
        float *dst = j->out + k * ohw;
        const float b = j->bias[k];
        for (size_t q = 0; q < ohw; q++) dst[q] = b;
    }
}

/* r[k][img*ohw + p] = dy[img][k][p]; unit = (img, k) */
static void gather_range(void *p, size_t begin, size_t end)
{
    const copy_job *j = p;
    const size_t ohw = j->d.ohw, ld = (size_t)j->g * ohw, K = (size_t)j->s->k;
    for (size_t u = begin; u < end; u++) {
        size_t img = u / K, k = u % K;
        memcpy(j->out + k * ld + img * ohw, j->in + img * j->d.out_img + k * ohw,
               ohw * sizeof(float));
    }
}

/* db[k] += sum of row k of r ([K][g*ohw]); unit = k */
typedef struct rowsum_job {
    const float *r;
    size_t len;
    float *db;
} rowsum_job;

static void rowsum_range(void *p, size_t begin, size_t end)
{
    const rowsum_job *j = p;
    for (size_t k = begin; k < end; k++) {
        const float *row = j->r + k * j->len;
        float acc = 0.0f;
        for (size_t q = 0; q < j->len; q++) acc += row[q];
        j->db[k] += acc;
    }
}

/* ---- the ops ---- */

/* ---- one image per product: whole images per thread ----
 *
 * With one image per product (conv1 and conv2 of Koch's net, 85 % of a step's arithmetic), the
 * copy is the cost: columns that one core writes and OpenBLAS then packs on every core ran
 * conv2 at ~75 % of its SGEMM time, against 95-101 % with the copy switched off
 * (docs/performance.md). So each thread takes whole images and makes, multiplies and consumes
 * their columns itself, with OpenBLAS set to one thread meanwhile (sm__cpu_blas_serial_begin).
 * Backward-filter sums each run of IMAGES_PER_PARTIAL images into a partial dW/db of its own,
 * then the partials into dw/db in order: the same bits whatever the thread count. */
enum { IMAGES_PER_PARTIAL = 4 };

static size_t slice_floats(const sm_conv_shape *s, conv_dims d)
{
    return (size_t)d.cs * s->kh * s->kw * d.ohw;
}

static size_t partial_floats(const sm_conv_shape *s, conv_dims d)
{
    return (size_t)s->k * d.ckk + (size_t)s->k;
}

/* Layout for g == 1: `threads` column slices, then one partial per run of images. */
static size_t per_image_floats(const sm_conv_shape *s, conv_dims d, size_t threads)
{
    size_t partials = ((size_t)s->n + IMAGES_PER_PARTIAL - 1) / IMAGES_PER_PARTIAL;
    return threads * slice_floats(s, d) + partials * partial_floats(s, d);
}

size_t sm__cpu_conv_workspace(void *ctx, const sm_conv_shape *s)
{
    conv_dims d = dims_of(s);
    /* g == 1: per-thread column slices and the partial gradients; else the columns of g
     * images, then the GEMM's [K][g*ohw] side */
    size_t floats = d.g == 1 ? per_image_floats(s, d, (size_t)sm__cpu_threads(ctx))
                             : (size_t)d.g * d.ckk * d.ohw + (size_t)d.g * d.out_img;
    return floats * sizeof(float);
}

typedef enum { OP_FWD, OP_BWD_DATA, OP_BWD_FILTER } conv_op;

typedef struct image_job {
    const sm_conv_shape *s;
    conv_dims d;
    conv_op op;
    const float *x, *w, *b, *dy;
    float *y, *dx;
    float *cols, *partials; /* per-thread column slices; per-run partial gradients */
    size_t threads;
} image_job;

static void fwd_image(const sm_conv_shape *s, conv_dims d, const float *x, const float *w,
                      const float *b, float *y, float *col)
{
    const size_t kk = (size_t)s->kh * s->kw;
    copy_job fill = {s, d, 1, 0, 0, NULL, y, b};
    fill_bias_range(&fill, 0, (size_t)s->k);
    for (int c0 = 0; c0 < s->c; c0 += d.cs) {
        int nc = s->c - c0 < d.cs ? s->c - c0 : d.cs;
        copy_job j = {s, d, 1, c0, nc, x, col, NULL};
        im2col_range(&j, 0, (size_t)nc * s->kh);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, s->k, (int)d.ohw, (int)(nc * kk),
                    1.0f, w + c0 * kk, (int)d.ckk, col, (int)d.ohw, 1.0f, y, (int)d.ohw);
    }
}

static void bwd_data_image(const sm_conv_shape *s, conv_dims d, const float *dy, const float *w,
                           float *dx, float *col)
{
    const size_t kk = (size_t)s->kh * s->kw;
    for (int c0 = 0; c0 < s->c; c0 += d.cs) {
        int nc = s->c - c0 < d.cs ? s->c - c0 : d.cs;
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)(nc * kk), (int)d.ohw, s->k, 1.0f,
                    w + c0 * kk, (int)d.ckk, dy, (int)d.ohw, 0.0f, col, (int)d.ohw);
        copy_job j = {s, d, 1, c0, nc, col, dx, NULL};
        col2im_range(&j, 0, (size_t)nc);
    }
}

/* dw (+)= dy x cols^T, db (+)= row sums of dy; `first` overwrites (beta = 0). */
static void bwd_filter_image(const sm_conv_shape *s, conv_dims d, const float *x, const float *dy,
                             float *dw, float *db, bool first, float *col)
{
    const size_t kk = (size_t)s->kh * s->kw;
    for (int c0 = 0; c0 < s->c; c0 += d.cs) {
        int nc = s->c - c0 < d.cs ? s->c - c0 : d.cs;
        copy_job j = {s, d, 1, c0, nc, x, col, NULL};
        im2col_range(&j, 0, (size_t)nc * s->kh);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, s->k, (int)(nc * kk), (int)d.ohw, 1.0f,
                    dy, (int)d.ohw, col, (int)d.ohw, first ? 0.0f : 1.0f, dw + c0 * kk, (int)d.ckk);
    }
    if (first) memset(db, 0, (size_t)s->k * sizeof *db);
    rowsum_job rj = {dy, d.ohw, db};
    rowsum_range(&rj, 0, (size_t)s->k);
}

/* Thread t: images t, t + T, ... (forward, backward-data) or runs of images t, t + T, ...
 * (backward-filter), each with the thread's own column slice. */
static void image_range(void *p, size_t begin, size_t end)
{
    const image_job *j = p;
    const sm_conv_shape *s = j->s;
    const conv_dims d = j->d;
    const size_t n = (size_t)s->n, runs = (n + IMAGES_PER_PARTIAL - 1) / IMAGES_PER_PARTIAL;
    for (size_t t = begin; t < end; t++) {
        float *col = j->cols + t * slice_floats(s, d);
        if (j->op == OP_BWD_FILTER) {
            for (size_t r = t; r < runs; r += j->threads) {
                float *pw = j->partials + r * partial_floats(s, d), *pb = pw + (size_t)s->k * d.ckk;
                size_t i0 = r * IMAGES_PER_PARTIAL, i1 = i0 + IMAGES_PER_PARTIAL;
                for (size_t i = i0; i < i1 && i < n; i++)
                    bwd_filter_image(s, d, j->x + i * d.in_img, j->dy + i * d.out_img, pw, pb,
                                     i == i0, col);
            }
            continue;
        }
        for (size_t i = t; i < n; i += j->threads) {
            if (j->op == OP_FWD)
                fwd_image(s, d, j->x + i * d.in_img, j->w, j->b, j->y + i * d.out_img, col);
            else bwd_data_image(s, d, j->dy + i * d.out_img, j->w, j->dx + i * d.in_img, col);
        }
    }
}

/* dw[q] += partial_0[q] + ... in order; unit = a range of dw's floats */
typedef struct reduce_job {
    const float *partials;
    size_t runs, stride;
    float *dst;
} reduce_job;

static void reduce_range(void *p, size_t begin, size_t end)
{
    const reduce_job *j = p;
    for (size_t r = 0; r < j->runs; r++) {
        const float *src = j->partials + r * j->stride;
        for (size_t q = begin; q < end; q++) j->dst[q] += src[q];
    }
}

/* The op over every image of s, whole images per thread (see above). */
static void run_per_image(void *ctx, image_job *j, void *ws, size_t ws_bytes, float *dw, float *db)
{
    const sm_conv_shape *s = j->s;
    const conv_dims d = j->d;
    /* as many threads as the backend has, within what the workspace was sized for */
    size_t t = (size_t)sm__cpu_threads(ctx);
    while (t > 1 && per_image_floats(s, d, t) * sizeof(float) > ws_bytes) t--;
    if (t > (size_t)s->n) t = (size_t)s->n;
    j->threads = t;
    j->cols = ws;
    j->partials = j->cols + t * slice_floats(s, d);
    int blas_threads = sm__cpu_blas_serial_begin();
    sm__cpu_parallel_for_threads(t, t, 1, image_range, j);
    if (j->op == OP_BWD_FILTER) {
        size_t runs = ((size_t)s->n + IMAGES_PER_PARTIAL - 1) / IMAGES_PER_PARTIAL;
        reduce_job rw = {j->partials, runs, partial_floats(s, d), dw};
        sm__cpu_parallel_for_threads(t, (size_t)s->k * d.ckk, 4096, reduce_range, &rw);
        reduce_job rb = {j->partials + (size_t)s->k * d.ckk, runs, partial_floats(s, d), db};
        reduce_range(&rb, 0, (size_t)s->k);
    }
    sm__cpu_blas_serial_end(blas_threads);
}

sm_status sm__cpu_conv_fwd(void *ctx, const sm_conv_shape *s, const float *x, const float *w,
                           const float *b, float *y, void *ws, size_t ws_bytes)
{
    /* g at this batch never exceeds g at the batch the workspace was sized for */
    conv_dims d = dims_of(s);
    if (d.g == 1) {
        image_job j = {s, d, OP_FWD, x, w, b, NULL, y, NULL, NULL, NULL, 0};
        run_per_image(ctx, &j, ws, ws_bytes, NULL, NULL);
        return SM_OK;
    }
    /* several images per product, each product on the backend's threads (gemm.c) */
    float *col = ws, *r = col + (size_t)d.g * d.ckk * d.ohw;
    for (int n0 = 0; n0 < s->n; n0 += d.g) {
        int g = s->n - n0 < d.g ? s->n - n0 : d.g;
        float *yn = y + (size_t)n0 * d.out_img;
        im2col(s, d, g, 0, s->c, x + (size_t)n0 * d.in_img, col);
        sm__cpu_sgemm(ctx, false, false, s->k, g * (int)d.ohw, (int)d.ckk, 1.0f, w, (int)d.ckk, col,
                      g * (int)d.ohw, 0.0f, r, g * (int)d.ohw);
        copy_job j = {s, d, g, 0, 0, r, yn, b};
        sm__cpu_parallel_for((size_t)g * s->k, 8, scatter_bias_range, &j);
    }
    return SM_OK;
}

sm_status sm__cpu_conv_bwd_data(void *ctx, const sm_conv_shape *s, const float *dy, const float *w,
                                float *dx, void *ws, size_t ws_bytes)
{
    conv_dims d = dims_of(s);
    if (d.g == 1) {
        image_job j = {s, d, OP_BWD_DATA, NULL, w, NULL, dy, NULL, dx, NULL, NULL, 0};
        run_per_image(ctx, &j, ws, ws_bytes, NULL, NULL);
        return SM_OK;
    }
    float *col = ws, *r = col + (size_t)d.g * d.ckk * d.ohw;
    for (int n0 = 0; n0 < s->n; n0 += d.g) {
        int g = s->n - n0 < d.g ? s->n - n0 : d.g;
        const float *dyn = dy + (size_t)n0 * d.out_img;
        if (g > 1) {
            copy_job j = {s, d, g, 0, 0, dyn, r, NULL};
            sm__cpu_parallel_for((size_t)g * s->k, 16, gather_range, &j);
            dyn = r;
        }
        sm__cpu_sgemm(ctx, true, false, (int)d.ckk, g * (int)d.ohw, s->k, 1.0f, w, (int)d.ckk, dyn,
                      g * (int)d.ohw, 0.0f, col, g * (int)d.ohw);
        copy_job j = {s, d, g, 0, s->c, col, dx + (size_t)n0 * d.in_img, NULL};
        sm__cpu_parallel_for((size_t)g * s->c, 1, col2im_range, &j);
    }
    return SM_OK;
}

sm_status sm__cpu_conv_bwd_filter(void *ctx, const sm_conv_shape *s, const float *x,
                                  const float *dy, float *dw, float *db, void *ws, size_t ws_bytes)
{
    conv_dims d = dims_of(s);
    if (d.g == 1) {
        image_job j = {s, d, OP_BWD_FILTER, x, NULL, NULL, dy, NULL, NULL, NULL, NULL, 0};
        run_per_image(ctx, &j, ws, ws_bytes, dw, db);
        return SM_OK;
    }
    float *col = ws, *r = col + (size_t)d.g * d.ckk * d.ohw;
    for (int n0 = 0; n0 < s->n; n0 += d.g) {
        int g = s->n - n0 < d.g ? s->n - n0 : d.g;
        const float *dyn = dy + (size_t)n0 * d.out_img;
        im2col(s, d, g, 0, s->c, x + (size_t)n0 * d.in_img, col);
        if (g > 1) {
            copy_job j = {s, d, g, 0, 0, dyn, r, NULL};
            sm__cpu_parallel_for((size_t)g * s->k, 16, gather_range, &j);
            dyn = r;
        }
        sm__cpu_sgemm(ctx, false, true, s->k, (int)d.ckk, g * (int)d.ohw, 1.0f, dyn, g * (int)d.ohw,
                      col, g * (int)d.ohw, 1.0f, dw, (int)d.ckk);
        rowsum_job rj = {dyn, (size_t)g * d.ohw, db};
        sm__cpu_parallel_for((size_t)s->k, 8, rowsum_range, &rj);
    }
    return SM_OK;
}
