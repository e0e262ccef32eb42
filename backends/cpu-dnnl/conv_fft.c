/* SPDX-License-Identifier: MIT */
/* Convolution in the frequency domain, for the large kernels (the reference network's conv2,
 * 7x7 from 64 to 128 channels on 48x48, holds 79 % of its multiply-adds; here it costs about
 * 15 times fewer).
 *
 * A layer's three products become, per frequency bin, one small complex matrix product:
 *   forward          Y(n,k)  = sum_c X(n,c) conj(W(k,c))     y = correlation of x with w
 *   backward-data    dX(n,c) = sum_k dY(n,k) W(k,c)          dx = full convolution of dy with w
 *   backward-filter  dW(k,c) = sum_n conj(dY(n,k)) X(n,c)    dw = correlation of x with dy
 * with transforms of the input's own size (h x w): with stride 1 and no padding, none of the
 * three wraps around (for the forward pass i + p <= h - 1; the full convolution of dy is exactly
 * h long), so no padding is needed and every size works.
 *
 * The transforms are dense DFTs computed as matrix products against fixed cos/sin tables, on
 * oneDNN's AVX-512 SGEMM, pruned to the input's and output's extents (a 7x7 kernel is read as
 * 7 rows, not 48). At these sizes (48, 21, 9) that runs at GEMM speed, several times faster per
 * transform than a scalar FFT library's butterflies; docs/performance.md gives the measurement
 * and where the time goes. Real inputs keep the half spectrum (w / 2 + 1 columns).
 *
 * Spectra are planar per bin: a tensor of P planes (images x channels) becomes
 * [bin][re, im][P] (bins column by column), so each bin's operand is a row-major
 * (images x channels) matrix, the layout the per-bin products want. The kernel's spectrum is
 * cached with a copy of the weights it came from: the forward and backward-data passes of every
 * micro-batch of a step share it, and a changed weight (Adam, a checkpoint load) is caught by
 * comparing the copy, whoever wrote it. */
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dnnl_internal.h"

enum { FFT_CHUNK = 32 }; /* images per spectrum: bounds the workspace (120 MB for conv2) */

struct fft_plan {
    fft_plan *next;
    sm_conv_shape s; /* s.n unused */
    int lh, lw, nv;  /* transform size (the input's), half-spectrum columns lw / 2 + 1 */
    size_t bins;     /* lh * nv */
    float *fw; /* lw x 2nv: column 2v cos, 2v + 1 -sin (2 pi v j / lw): rows -> half spectra */
    float *iw; /* 2nv x lw: row 2v a_v cos, 2v + 1 -a_v sin (2 pi v j / lw) / lw: back to rows */
    float *cs, *sn; /* lh x lh: cos and sin (2 pi u i / lh), symmetric: along columns */
    /* along columns for inputs of `rows[i]` rows (the input's, dy's and the kernel's height):
     * lh x 2rows [cos | sin] and [-sin | cos], so each half-spectrum column is two products */
    int rows[3];
    float *col_re[3], *col_im[3];
    pthread_mutex_t wlock; /* guards the cached kernel spectrum while it is made or used */
    float *wcopy, *wspec;  /* the weights it was made from; [bin][re, im][k][c] */
    bool wvalid;
    /* backward-filter leaves dy's spectrum in its workspace, and the core's next call is
     * backward-data on the same dy (backend.h): it is used again when backward-data is the
     * next op on the context to touch memory (dnnl_ctx.ws_seq), and the workspace, the
     * pointer, the batch and a hash of dy's contents all match (under wlock) */
    uint64_t dy_seq;
    const void *dy_ws;
    const float *dy_ptr;
    int dy_n;
    uint64_t dy_hash;
};

/* row-major, sequential inside our parallel regions (oneDNN runs a nested GEMM on one thread) */
static void gemm(char ta, char tb, int m, int n, int k, float alpha, const float *a, int lda,
                 const float *b, int ldb, float beta, float *c, int ldc)
{
    dnnl_sgemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

/* ---- the transform tables ---- */

static sm_status tables_create(fft_plan *p)
{
    const int lh = p->lh, lw = p->lw, nv = p->nv;
    p->fw = aligned_alloc(64, smd_align64(sizeof(float) * (size_t)lw * 2 * nv));
    p->iw = aligned_alloc(64, smd_align64(sizeof(float) * (size_t)2 * nv * lw));
    p->cs = aligned_alloc(64, smd_align64(sizeof(float) * (size_t)lh * lh));
    p->sn = aligned_alloc(64, smd_align64(sizeof(float) * (size_t)lh * lh));
    if (!p->fw || !p->iw || !p->cs || !p->sn)
        return smd_host->fail(SM_ERR_NOMEM, "out of memory for the FFT convolution's tables");
    /* angles reduced modulo the length in integers, so the tables are exact to rounding */
    for (int j = 0; j < lw; j++)
        for (int v = 0; v < nv; v++) {
            double a = 2.0 * M_PI * (double)((long)v * j % lw) / lw;
            p->fw[(size_t)j * 2 * nv + 2 * v] = (float)cos(a);
            p->fw[(size_t)j * 2 * nv + 2 * v + 1] = (float)-sin(a);
            /* the half spectrum stands for both v and lw - v, except v = 0 and v = lw / 2 */
            double weight = (v == 0 || 2 * v == lw) ? 1.0 : 2.0;
            p->iw[(size_t)2 * v * lw + j] = (float)(weight * cos(a) / lw);
            p->iw[(size_t)(2 * v + 1) * lw + j] = (float)(-weight * sin(a) / lw);
        }
    for (int u = 0; u < lh; u++)
        for (int i = 0; i < lh; i++) {
            double a = 2.0 * M_PI * (double)((long)u * i % lh) / lh;
            p->cs[(size_t)u * lh + i] = (float)cos(a);
            p->sn[(size_t)u * lh + i] = (float)sin(a);
        }
    const int rows[3] = {p->s.h, p->s.oh, p->s.kh};
    for (int r = 0; r < 3; r++) {
        int n = rows[r];
        p->rows[r] = n;
        p->col_re[r] = aligned_alloc(64, smd_align64(sizeof(float) * (size_t)lh * 2 * n));
        p->col_im[r] = aligned_alloc(64, smd_align64(sizeof(float) * (size_t)lh * 2 * n));
        if (!p->col_re[r] || !p->col_im[r])
            return smd_host->fail(SM_ERR_NOMEM, "out of memory for the FFT convolution's tables");
        for (int u = 0; u < lh; u++)
            for (int i = 0; i < n; i++) {
                float c = p->cs[(size_t)u * lh + i], sv = p->sn[(size_t)u * lh + i];
                p->col_re[r][(size_t)u * 2 * n + i] = c;
                p->col_re[r][(size_t)u * 2 * n + n + i] = sv;
                p->col_im[r][(size_t)u * 2 * n + i] = -sv;
                p->col_im[r][(size_t)u * 2 * n + n + i] = c;
            }
    }
    return SM_OK;
}

static void plan_destroy(fft_plan *p)
{
    if (!p) return;
    free(p->fw), free(p->iw), free(p->cs), free(p->sn);
    for (int r = 0; r < 3; r++) free(p->col_re[r]), free(p->col_im[r]);
    free(p->wcopy), free(p->wspec);
    pthread_mutex_destroy(&p->wlock);
    free(p);
}

void smd_fft_plans_destroy(dnnl_ctx *c)
{
    for (fft_plan *p = c->fft_plans, *next; p; p = next) {
        next = p->next;
        plan_destroy(p);
    }
    c->fft_plans = NULL;
}

/* The plan of a layer shape (any batch), created on first use and kept in the context. */
static sm_status plan_get(dnnl_ctx *c, const sm_conv_shape *s, fft_plan **out)
{
    pthread_mutex_lock(&c->lock);
    fft_plan *p = c->fft_plans;
    while (p && !smd_same_layer(&p->s, s)) p = p->next;
    sm_status st = SM_OK;
    if (!p) {
        p = calloc(1, sizeof *p);
        if (!p) st = smd_host->fail(SM_ERR_NOMEM, "out of memory for an FFT convolution plan");
        if (p) {
            pthread_mutex_init(&p->wlock, NULL);
            p->s = *s;
            p->lh = s->h, p->lw = s->w, p->nv = s->w / 2 + 1;
            p->bins = (size_t)p->lh * p->nv;
            st = tables_create(p);
            if (st == SM_OK) {
                p->next = c->fft_plans;
                c->fft_plans = p;
            } else {
                plan_destroy(p);
            }
        }
    }
    pthread_mutex_unlock(&c->lock);
    if (st == SM_OK) *out = p;
    return st;
}

/* ---- planes <-> spectra ---- */

/* Both transforms are a few dozen large products, each threaded by oneDNN: along rows for
 * all planes at once, along columns per half-spectrum column v for all planes at once. Between
 * them the data sits in `mid` (2nv x planes x rows floats), laid out as each direction's
 * column products read best (measured: [2v + re/im][row][plane] going forward, where one
 * product per part covers Re and Im; [2v + re/im][plane][row] going back), and the spectra
 * come out bin-major without a transposing copy. */
static size_t mid_floats(const fft_plan *p, size_t planes, int rows)
{
    return (size_t)2 * p->nv * planes * (size_t)rows;
}

static int rows_table(const fft_plan *p, int rows)
{
    for (int r = 0; r < 3; r++)
        if (p->rows[r] == rows) return r;
    return -1;
}

/* spec[(bin * 2 + ri) * planes + q] = the DFT of plane q (rows x cols, zero beyond), bins
 * column-major (bin = v lh + u); rows is the input's, dy's or the kernel's height */
static void spectra_forward(const fft_plan *p, const float *src, int planes, int rows, int cols,
                            float *spec, float *mid)
{
    const int lh = p->lh, nv = p->nv, q = planes, r = rows_table(p, rows);
    /* along rows, one row index at a time so that the result is [2v + re/im][row][plane]:
     * mid[., i, .] (2nv x q) = fw^T (2nv x cols) . (row i of every plane)^T (cols x q) */
    for (int i = 0; i < rows; i++)
        gemm('T', 'T', 2 * nv, q, cols, 1.0f, p->fw, 2 * nv, src + (size_t)i * cols, rows * cols,
             0.0f, mid + (size_t)i * q, rows * q);
    /* per v, with T = [Tr; Ti] (2rows x q) and e^{-i a} = cos - i sin:
     *   Xr (lh x q) = [cos | sin] . T,  Xi = [-sin | cos] . T */
    for (int v = 0; v < nv; v++) {
        const float *t = mid + (size_t)2 * v * rows * q;
        float *xr = spec + (size_t)2 * v * lh * q, *xi = xr + q;
        const int ld = 2 * q;
        gemm('N', 'N', lh, q, 2 * rows, 1.0f, p->col_re[r], 2 * rows, t, q, 0.0f, xr, ld);
        gemm('N', 'N', lh, q, 2 * rows, 1.0f, p->col_im[r], 2 * rows, t, q, 0.0f, xi, ld);
    }
}

/* The inverse along columns of half-spectrum columns v0 .. v1 - 1, whose bins `spec` holds
 * (bin - v0 lh), into mid[2v + re/im][plane][row], only the rows wanted. */
static void inverse_columns(const fft_plan *p, const float *spec, int planes, int rows, int v0,
                            int v1, float *mid)
{
    const int lh = p->lh, q = planes, qr = planes * rows;
    const float scale = 1.0f / (float)lh;
    /* e^{+i a} = cos + i sin; cs, sn symmetric:
     *   Ar (q x rows) = Yr^T . cos - Yi^T . sin,  Ai = Yr^T . sin + Yi^T . cos */
    for (int v = v0; v < v1; v++) {
        const float *yr = spec + (size_t)2 * (v - v0) * lh * q, *yi = yr + q;
        float *ar = mid + (size_t)2 * v * qr, *ai = ar + qr;
        const int ld = 2 * q;
        gemm('T', 'N', q, rows, lh, scale, yr, ld, p->cs, lh, 0.0f, ar, rows);
        gemm('T', 'N', q, rows, lh, -scale, yi, ld, p->sn, lh, 1.0f, ar, rows);
        gemm('T', 'N', q, rows, lh, scale, yr, ld, p->sn, lh, 0.0f, ai, rows);
        gemm('T', 'N', q, rows, lh, scale, yi, ld, p->cs, lh, 1.0f, ai, rows);
    }
}

/* Then along rows, only the columns wanted: dst (q rows x cols) = beta dst + mid^T . iw */
static void inverse_rows(const fft_plan *p, const float *mid, int planes, int rows, int cols,
                         float beta, float *dst)
{
    const int qr = planes * rows;
    gemm('T', 'N', qr, cols, 2 * p->nv, 1.0f, mid, qr, p->iw, p->lw, beta, dst, cols);
}

/* ---- the per-bin products ---- */

typedef enum { BIN_FWD, BIN_BWD_DATA, BIN_BWD_FILTER } bin_op;

/* For every bin, with A = a's (m x ka) and B = b's operand, both planar [re, im]:
 *   BIN_FWD         out (n x k)  = X (n x c) . conj(W)^T (c x k)
 *   BIN_BWD_DATA    out (n x c)  = dY (n x k) . W (k x c)
 *   BIN_BWD_FILTER  out (k x c)  = conj(dY)^T (k x n) . X (n x c) */
static void bin_products(const fft_plan *p, bin_op op, int n, const float *a, const float *b,
                         size_t bin0, size_t bin1, float *out)
{
    const int c = p->s.c, k = p->s.k;
    size_t sa, sb, so; /* floats per bin and part */
    if (op == BIN_FWD) sa = (size_t)n * c, sb = (size_t)k * c, so = (size_t)n * k;
    else if (op == BIN_BWD_DATA) sa = (size_t)n * k, sb = (size_t)k * c, so = (size_t)n * c;
    else sa = (size_t)n * k, sb = (size_t)n * c, so = (size_t)k * c;
    const long lo = (long)bin0, hi = (long)bin1;
#pragma omp parallel for schedule(static) num_threads(smd_threads())
    for (long bin = lo; bin < hi; bin++) {
        const float *ar = a + (size_t)bin * 2 * sa, *ai = ar + sa;
        const float *br = b + (size_t)bin * 2 * sb, *bi = br + sb;
        float *or_ = out + (size_t)(bin - lo) * 2 * so, *oi = or_ + so;
        if (op == BIN_FWD) { /* (Xr + iXi)(Wr - iWi)^T */
            gemm('N', 'T', n, k, c, 1.0f, ar, c, br, c, 0.0f, or_, k);
            gemm('N', 'T', n, k, c, 1.0f, ai, c, bi, c, 1.0f, or_, k);
            gemm('N', 'T', n, k, c, 1.0f, ai, c, br, c, 0.0f, oi, k);
            gemm('N', 'T', n, k, c, -1.0f, ar, c, bi, c, 1.0f, oi, k);
        } else if (op == BIN_BWD_DATA) { /* (dYr + idYi)(Wr + iWi) */
            gemm('N', 'N', n, c, k, 1.0f, ar, k, br, c, 0.0f, or_, c);
            gemm('N', 'N', n, c, k, -1.0f, ai, k, bi, c, 1.0f, or_, c);
            gemm('N', 'N', n, c, k, 1.0f, ar, k, bi, c, 0.0f, oi, c);
            gemm('N', 'N', n, c, k, 1.0f, ai, k, br, c, 1.0f, oi, c);
        } else { /* (dYr - idYi)^T (Xr + iXi) */
            gemm('T', 'N', k, c, n, 1.0f, ar, k, br, c, 0.0f, or_, c);
            gemm('T', 'N', k, c, n, 1.0f, ai, k, bi, c, 1.0f, or_, c);
            gemm('T', 'N', k, c, n, 1.0f, ar, k, bi, c, 0.0f, oi, c);
            gemm('T', 'N', k, c, n, -1.0f, ai, k, br, c, 1.0f, oi, c);
        }
    }
}

/* Half-spectrum columns per block of the products: the products' output is made and inverted
 * a block at a time, so it needs an eighth of a whole spectrum (conv2's dw: 79 MB) */
static int v_block(const fft_plan *p) { return (p->nv + 7) / 8; }

/* The bin products of `op` and the inverse of their output, a block of columns at a time:
 * dst (planes of rows x cols) = beta dst + the inverse transform of the products. */
static void products_inverse(const fft_plan *p, bin_op op, int n, const float *a, const float *b,
                             float *out_block, int planes, int rows, int cols, float beta,
                             float *dst, float *mid)
{
    const int vb = v_block(p), lh = p->lh;
    for (int v0 = 0; v0 < p->nv; v0 += vb) {
        int v1 = v0 + vb < p->nv ? v0 + vb : p->nv;
        bin_products(p, op, n, a, b, (size_t)v0 * lh, (size_t)v1 * lh, out_block);
        inverse_columns(p, out_block, planes, rows, v0, v1, mid);
    }
    inverse_rows(p, mid, planes, rows, cols, beta, dst);
}

/* ---- workspace ---- */

typedef struct fft_ws {
    float *spec_a, *spec_b, *spec_out, *scratch;
} fft_ws;

static size_t spec_floats(const fft_plan *p, size_t planes) { return p->bins * 2 * planes; }

/* Workspace for a chunk of n images: three spectra (inputs and output of the bin products)
 * and the transforms' middle stage for the largest tensor transformed. */
typedef struct ws_layout {
    size_t a, b, out, mid; /* floats, each rounded up to 64 */
} ws_layout;

static ws_layout layout_for(const fft_plan *p, int n)
{
    const sm_conv_shape *s = &p->s;
    size_t in = spec_floats(p, (size_t)n * s->c), out = spec_floats(p, (size_t)n * s->k);
    size_t wt = spec_floats(p, (size_t)s->k * s->c);
    size_t mid_in = mid_floats(p, (size_t)n * s->c, s->h);
    size_t mid_out = mid_floats(p, (size_t)n * s->k, s->oh);
    size_t mid_w = mid_floats(p, (size_t)s->k * s->c, s->kh);
    size_t mid = mid_in > mid_out ? mid_in : mid_out;
    /* spec_a: x (forward) or dy; spec_b: x (backward-filter); out: a block of columns of y,
     * dx or dw */
    size_t most = wt > (in > out ? in : out) ? wt : (in > out ? in : out);
    size_t block = most / (size_t)p->nv * (size_t)v_block(p);
    ws_layout l = {smd_align64(in > out ? in : out), smd_align64(in), smd_align64(block),
                   smd_align64(mid > mid_w ? mid : mid_w)};
    return l;
}

static size_t ws_bytes_for(const fft_plan *p, int n)
{
    ws_layout l = layout_for(p, n);
    return sizeof(float) * (l.a + l.b + l.out + l.mid);
}

static fft_ws ws_carve(const fft_plan *p, int n, void *ws)
{
    ws_layout l = layout_for(p, n);
    fft_ws w;
    w.spec_a = ws;
    w.spec_b = w.spec_a + l.a;
    w.spec_out = w.spec_b + l.b;
    w.scratch = w.spec_out + l.out;
    return w;
}

static int chunk_of(const sm_conv_shape *s) { return s->n < FFT_CHUNK ? s->n : FFT_CHUNK; }

sm_status smd_fft_workspace(void *ctx, const sm_conv_shape *s, size_t *bytes)
{
    omp_set_num_threads(smd_threads()); /* dnnl_sgemm's team: the backend's count */
    fft_plan *p;
    SMD_TRY(plan_get(ctx, s, &p));
    *bytes = ws_bytes_for(p, chunk_of(s));
    return SM_OK;
}

/* The caller's workspace when it is large enough, else one of our own for this call. */
typedef struct ws_lease {
    void *ptr, *own;
} ws_lease;

static sm_status ws_take(const fft_plan *p, int n, void *ws, size_t ws_bytes, ws_lease *l)
{
    size_t need = ws_bytes_for(p, n);
    l->own = NULL;
    if (ws && ws_bytes >= need) {
        l->ptr = ws;
        return SM_OK;
    }
    l->own = l->ptr = aligned_alloc(64, smd_align64(need));
    if (!l->ptr)
        return smd_host->fail(SM_ERR_NOMEM,
                              "out of memory for an FFT convolution's workspace "
                              "(%zu bytes)",
                              need);
    return SM_OK;
}

/* The kernel's spectrum, made again when the weights differ from the copy it came from.
 * Returns with p->wlock held (the caller reads the spectrum, then unlocks). */
static sm_status kernel_spectrum(fft_plan *p, const float *w, float *scratch)
{
    const sm_conv_shape *s = &p->s;
    size_t nw = (size_t)s->k * s->c * s->kh * s->kw;
    pthread_mutex_lock(&p->wlock);
    if (p->wvalid && memcmp(p->wcopy, w, nw * sizeof(float)) == 0) return SM_OK;
    if (!p->wcopy) {
        p->wcopy = aligned_alloc(64, smd_align64(nw * sizeof(float)));
        size_t spec_bytes = spec_floats(p, (size_t)s->k * s->c) * sizeof(float);
        p->wspec = aligned_alloc(64, smd_align64(spec_bytes));
        if (!p->wcopy || !p->wspec) {
            free(p->wcopy), free(p->wspec);
            p->wcopy = p->wspec = NULL;
            pthread_mutex_unlock(&p->wlock);
            return smd_host->fail(SM_ERR_NOMEM, "out of memory for a kernel's spectrum");
        }
    }
    memcpy(p->wcopy, w, nw * sizeof(float));
    spectra_forward(p, w, s->k * s->c, s->kh, s->kw, p->wspec, scratch);
    p->wvalid = true;
    return SM_OK;
}

/* ---- the three ops ---- */

/* A 64-bit hash of n floats' bits, in parallel over a fixed number of blocks (so the value does
 * not depend on the thread count), combined in order. */
static uint64_t hash_floats(const float *x, size_t n)
{
    enum { BLOCKS = 64 };
    uint64_t part[BLOCKS];
    const size_t per = (n + BLOCKS - 1) / BLOCKS;
#pragma omp parallel for schedule(static) num_threads(smd_threads())
    for (int b = 0; b < BLOCKS; b++) {
        size_t lo = (size_t)b * per, hi = lo + per < n ? lo + per : n;
        uint64_t h = 0x9e3779b97f4a7c15u ^ (uint64_t)b;
        for (size_t i = lo; i < hi; i++) {
            uint32_t bits;
            memcpy(&bits, x + i, sizeof bits);
            h = (h ^ bits) * 0x100000001b3u;
        }
        part[b] = h;
    }
    uint64_t h = (uint64_t)n;
    for (int b = 0; b < BLOCKS; b++) h = (h ^ part[b]) * 0xff51afd7ed558ccdu;
    return h;
}

/* What every op starts with: the layer's plan, a workspace carved into spectra, and, given the
 * weights, their spectrum, in which case the call holds p->wlock until call_end. */
typedef struct fft_call {
    fft_plan *p;
    ws_lease l;
    fft_ws f;
    bool locked;
} fft_call;

static sm_status call_begin(void *ctx, const sm_conv_shape *s, const float *w, void *ws,
                            size_t ws_bytes, fft_call *c)
{
    c->locked = false;
    SMD_TRY(plan_get(ctx, s, &c->p));
    SMD_TRY(ws_take(c->p, chunk_of(s), ws, ws_bytes, &c->l));
    c->f = ws_carve(c->p, chunk_of(s), c->l.ptr);
    if (!w) return SM_OK;
    sm_status st = kernel_spectrum(c->p, w, c->f.scratch);
    if (st != SM_OK) {
        free(c->l.own);
        return st;
    }
    c->locked = true;
    return SM_OK;
}

static void call_end(fft_call *c)
{
    if (c->locked) pthread_mutex_unlock(&c->p->wlock);
    free(c->l.own);
}

sm_status smd_fft_fwd(void *ctx, const sm_conv_shape *s, const float *x, const float *w,
                      const float *b, float *y, void *ws, size_t ws_bytes)
{
    omp_set_num_threads(smd_threads()); /* dnnl_sgemm's team: the backend's count */
    (void)smd_ws_touch(ctx);
    if (s->n <= 0) return SM_OK;
    fft_call c;
    SMD_TRY(call_begin(ctx, s, w, ws, ws_bytes, &c));
    fft_plan *p = c.p;
    const fft_ws f = c.f;
    for (int n0 = 0; n0 < s->n; n0 += FFT_CHUNK) {
        int n = s->n - n0 < FFT_CHUNK ? s->n - n0 : FFT_CHUNK;
        float *yc = y + (size_t)n0 * smd_out_img(s);
        spectra_forward(p, x + (size_t)n0 * smd_in_img(s), n * s->c, s->h, s->w, f.spec_a,
                        f.scratch);
        products_inverse(p, BIN_FWD, n, f.spec_a, p->wspec, f.spec_out, n * s->k, s->oh, s->ow,
                         0.0f, yc, f.scratch);
        const size_t plane = (size_t)s->oh * s->ow;
        const long planes = (long)n * s->k;
#pragma omp parallel for schedule(static) num_threads(smd_threads())
        for (long q = 0; q < planes; q++) {
            float bias = b[q % s->k], *yq = yc + (size_t)q * plane;
            for (size_t i = 0; i < plane; i++) yq[i] += bias;
        }
    }
    call_end(&c);
    return SM_OK;
}

sm_status smd_fft_bwd_data(void *ctx, const sm_conv_shape *s, const float *dy, const float *w,
                           float *dx, void *ws, size_t ws_bytes)
{
    omp_set_num_threads(smd_threads()); /* dnnl_sgemm's team: the backend's count */
    const uint64_t seq = smd_ws_touch(ctx);
    if (s->n <= 0) return SM_OK;
    fft_call c;
    SMD_TRY(call_begin(ctx, s, w, ws, ws_bytes, &c));
    fft_plan *p = c.p;
    const fft_ws f = c.f;
    bool reuse = s->n <= FFT_CHUNK && p->dy_seq + 1 == seq && p->dy_ws == c.l.ptr &&
                 p->dy_ptr == dy && p->dy_n == s->n &&
                 p->dy_hash == hash_floats(dy, (size_t)s->n * smd_out_img(s));
    p->dy_ws = NULL;
    for (int n0 = 0; n0 < s->n; n0 += FFT_CHUNK) {
        int n = s->n - n0 < FFT_CHUNK ? s->n - n0 : FFT_CHUNK;
        if (!reuse)
            spectra_forward(p, dy + (size_t)n0 * smd_out_img(s), n * s->k, s->oh, s->ow, f.spec_a,
                            f.scratch);
        products_inverse(p, BIN_BWD_DATA, n, f.spec_a, p->wspec, f.spec_out, n * s->c, s->h, s->w,
                         0.0f, dx + (size_t)n0 * smd_in_img(s), f.scratch);
    }
    call_end(&c);
    return SM_OK;
}

sm_status smd_fft_bwd_filter(void *ctx, const sm_conv_shape *s, const float *x, const float *dy,
                             float *dw, float *db, void *ws, size_t ws_bytes)
{
    omp_set_num_threads(smd_threads()); /* dnnl_sgemm's team: the backend's count */
    const uint64_t seq = smd_ws_touch(ctx);
    if (s->n <= 0) return SM_OK;
    fft_call c;
    SMD_TRY(call_begin(ctx, s, NULL, ws, ws_bytes, &c));
    fft_plan *p = c.p;
    const fft_ws f = c.f;
    const size_t plane = (size_t)s->oh * s->ow;
    for (int n0 = 0; n0 < s->n; n0 += FFT_CHUNK) {
        int n = s->n - n0 < FFT_CHUNK ? s->n - n0 : FFT_CHUNK;
        const float *dyc = dy + (size_t)n0 * smd_out_img(s);
        spectra_forward(p, x + (size_t)n0 * smd_in_img(s), n * s->c, s->h, s->w, f.spec_b,
                        f.scratch);
        spectra_forward(p, dyc, n * s->k, s->oh, s->ow, f.spec_a, f.scratch);
        products_inverse(p, BIN_BWD_FILTER, n, f.spec_a, f.spec_b, f.spec_out, s->k * s->c, s->kh,
                         s->kw, 1.0f, dw, f.scratch);
        /* the bias gradient in double per channel: a sum over n x oh x ow terms */
        for (int k = 0; k < s->k; k++) {
            double sum = 0.0;
            for (int i = 0; i < n; i++) {
                const float *q = dyc + ((size_t)i * s->k + k) * plane;
                for (size_t j = 0; j < plane; j++) sum += q[j];
            }
            db[k] += (float)sum;
        }
    }
    pthread_mutex_lock(&p->wlock);
    p->dy_seq = seq;
    p->dy_ws = c.l.own || s->n > FFT_CHUNK ? NULL : c.l.ptr;
    p->dy_ptr = dy;
    p->dy_n = s->n;
    p->dy_hash = p->dy_ws ? hash_floats(dy, (size_t)s->n * smd_out_img(s)) : 0;
    pthread_mutex_unlock(&p->wlock);
    call_end(&c);
    return SM_OK;
}
