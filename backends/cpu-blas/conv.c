/* Convolution as im2col + SGEMM, one image at a time (after darknet/Caffe's
 * convolutional_layer.c): the column buffer of one image is the workspace, so memory does not
 * grow with the batch while each GEMM stays large enough to keep OpenBLAS busy. */
#include <cblas.h>
#include <string.h>

#include "cpu_internal.h"

/* col[(c*kh + i)*kw + j][y*ow + x] = x[c][y + i][x + j] (stride 1, no padding) */
static void im2col(const sm_conv_shape *s, const float *x, float *col)
{
    const size_t plane = (size_t)s->oh * s->ow;
    for (int c = 0; c < s->c; c++)
        for (int i = 0; i < s->kh; i++)
            for (int j = 0; j < s->kw; j++) {
                float *dst = col + ((size_t)(c * s->kh + i) * s->kw + j) * plane;
                const float *src = x + ((size_t)c * s->h + i) * s->w + j;
                for (int y = 0; y < s->oh; y++)
                    memcpy(dst + (size_t)y * s->ow, src + (size_t)y * s->w,
                           (size_t)s->ow * sizeof(float));
            }
}

/* The adjoint of im2col: dx[c][y + i][x + j] += col[...] (dx zeroed by the caller). */
static void col2im(const sm_conv_shape *s, const float *col, float *dx)
{
    const size_t plane = (size_t)s->oh * s->ow;
    for (int c = 0; c < s->c; c++)
        for (int i = 0; i < s->kh; i++)
            for (int j = 0; j < s->kw; j++) {
                const float *src = col + ((size_t)(c * s->kh + i) * s->kw + j) * plane;
                float *dst = dx + ((size_t)c * s->h + i) * s->w + j;
                for (int y = 0; y < s->oh; y++) {
                    const float *srow = src + (size_t)y * s->ow;
                    float *drow = dst + (size_t)y * s->w;
                    for (int x = 0; x < s->ow; x++) drow[x] += srow[x];
                }
            }
}

size_t sm__cpu_conv_workspace(void *ctx, const sm_conv_shape *s)
{
    (void)ctx;
    return (size_t)s->c * s->kh * s->kw * (size_t)s->oh * s->ow * sizeof(float);
}

sm_status sm__cpu_conv_fwd(void *ctx, const sm_conv_shape *s, const float *x, const float *w,
                           const float *b, float *y, void *ws, size_t ws_bytes)
{
    (void)ctx;
    (void)ws_bytes; /* one image's columns: what conv_workspace asked for at any batch */
    const int ckk = s->c * s->kh * s->kw;
    const int ohw = s->oh * s->ow;
    float *col = ws;
    for (int n = 0; n < s->n; n++) {
        const float *xn = x + (size_t)n * s->c * s->h * s->w;
        float *yn = y + (size_t)n * s->k * ohw;
        for (int k = 0; k < s->k; k++)
            for (int p = 0; p < ohw; p++) yn[(size_t)k * ohw + p] = b[k];
        im2col(s, xn, col);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, s->k, ohw, ckk, 1.0f, w, ckk,
                    col, ohw, 1.0f, yn, ohw);
    }
    return SM_OK;
}

sm_status sm__cpu_conv_bwd_data(void *ctx, const sm_conv_shape *s, const float *dy,
                                const float *w, float *dx, void *ws, size_t ws_bytes)
{
    (void)ctx;
    (void)ws_bytes;
    const int ckk = s->c * s->kh * s->kw;
    const int ohw = s->oh * s->ow;
    float *col = ws;
    for (int n = 0; n < s->n; n++) {
        const float *dyn = dy + (size_t)n * s->k * ohw;
        float *dxn = dx + (size_t)n * s->c * s->h * s->w;
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, ckk, ohw, s->k, 1.0f, w, ckk, dyn,
                    ohw, 0.0f, col, ohw);
        memset(dxn, 0, (size_t)s->c * s->h * s->w * sizeof(float));
        col2im(s, col, dxn);
    }
    return SM_OK;
}

sm_status sm__cpu_conv_bwd_filter(void *ctx, const sm_conv_shape *s, const float *x,
                                  const float *dy, float *dw, float *db, void *ws,
                                  size_t ws_bytes)
{
    (void)ctx;
    (void)ws_bytes;
    const int ckk = s->c * s->kh * s->kw;
    const int ohw = s->oh * s->ow;
    float *col = ws;
    for (int n = 0; n < s->n; n++) {
        const float *xn = x + (size_t)n * s->c * s->h * s->w;
        const float *dyn = dy + (size_t)n * s->k * ohw;
        im2col(s, xn, col);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, s->k, ckk, ohw, 1.0f, dyn, ohw,
                    col, ohw, 1.0f, dw, ckk);
        for (int k = 0; k < s->k; k++) {
            const float *row = dyn + (size_t)k * ohw;
            float acc = 0.0f;
            for (int p = 0; p < ohw; p++) acc += row[p];
            db[k] += acc;
        }
    }
    return SM_OK;
}
