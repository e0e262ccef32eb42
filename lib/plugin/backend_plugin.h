/* SPDX-License-Identifier: MIT */
/* The backend plug-in interface: all a backend sees of the core, whether linked in (cpu-blas)
 * or a module the core loads at run time (cpu-dnnl, cuda). Versioned by SM_BACKEND_ABI_VERSION;
 * the core's own view of a backend is lib/backend/backend.h.
 *
 * The core owns the graph (forward/backward order, buffer sizing); a backend only runs ops on
 * buffers it allocated. Pointers passed to ops are backend buffers ("device pointers") that the
 * core never dereferences; data crosses with upload/download. Tensors are NCHW float32,
 * conv weights K x C x kh x kw, fc weights out x in (PyTorch's layouts). Every op returns
 * sm_status and never aborts. Ops run in order; download waits for what came before it.
 *
 * A backend built as a module exports `sm_backend_module_entry` (sm_backend_module_entry_fn):
 * the core hands it an sm_backend_host (its error and log functions, which a separate .so
 * cannot link against because they are hidden), and the module returns its ops table. The
 * loader refuses a table whose abi_version differs from SM_BACKEND_ABI_VERSION; a module must
 * not call through a host whose abi_version differs from its own. */
#ifndef SM_PLUGIN_BACKEND_PLUGIN_H
#define SM_PLUGIN_BACKEND_PLUGIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "siamese/siamese.h"

/* 2: the module entry takes an sm_backend_host; set_option/get_option slots; conv ops take
 * the workspace's size.
 * 3: the table carries sm_backend_props (chunk sizes, the settings the backend honours); the
 * settings slots (set_threads, get_threads, set_option, get_option) may be NULL; the `copy`
 * slot, which the core never called, is gone. adam_update takes a weight-decay coefficient
 * (per-layer L2, 0.3). 3 is unreleased, so these all count as 3.
 * 4: the groupnorm_fwd and groupnorm_bwd slots (GroupNorm layers, 0.4).
 * 5: the l1_scores slot (gallery search, 0.5) and props.host_memory. */
#define SM_BACKEND_ABI_VERSION 5

/* What a backend tells the core about itself, so that no file outside the dispatch layer needs
 * to know which backend it runs on. A zero field means "the default": sm__backend_props
 * returns the table's values with the defaults filled in. */
typedef struct sm_backend_props {
    int train_pairs;   /* a trainer's default micro-batch, in pairs (default 16) */
    int predict_pairs; /* pairs per inference forward (default 16; sm_embed runs twice as many
                        * images) */
    int embed_images;  /* images per sm_embed call when the core embeds a dataset (default 64) */
    unsigned honours;  /* SM_BACKEND_HONOURS_* bits: the settings that change what it does */
    int host_memory;   /* 1: buffers are plain host memory, and ops accept any host pointer in
                        * their place (the core then hands them a mapped file's rows); 0: they
                        * are the backend's own (device memory) */
} sm_backend_props;

/* A setting the backend does not honour is accepted by the dispatch layer and has no effect
 * (threads read back 1, options 0); its slot is then never called and may be NULL. */
enum {
    SM_BACKEND_HONOURS_THREADS = 1u << 0,   /* set_threads/get_threads */
    SM_BACKEND_HONOURS_TF32 = 1u << 1,      /* set_option/get_option with SM_BACKEND_OPT_TF32 */
    SM_BACKEND_HONOURS_CONV_ALGO = 1u << 2, /* ... with SM_BACKEND_OPT_CONV_ALGO */
    SM_BACKEND_HONOURS_PRECISION = 1u << 3, /* ... with SM_BACKEND_OPT_PRECISION; set_option may
                                             * refuse BF16 with SM_ERR_UNSUPPORTED */
};

/* One convolution's shapes: stride 1, no padding (what the architecture language offers). */
typedef struct sm_conv_shape {
    int n, c, h, w; /* input */
    int k, kh, kw;  /* filters */
    int oh, ow;     /* output: h - kh + 1, w - kw + 1 */
    unsigned dirs;  /* for conv_workspace: the SM_CONV_DIR_* the caller will run on this
                       * shape (0: all), so a backend sizes and chooses only for those */
} sm_conv_shape;

enum {
    SM_CONV_DIR_FWD = 1u << 0,
    SM_CONV_DIR_BWD_DATA = 1u << 1,
    SM_CONV_DIR_BWD_FILTER = 1u << 2,
};

typedef struct sm_pool_shape {
    int n, c, h, w; /* input */
    int size;       /* window = stride */
    int oh, ow;     /* h / size, w / size */
} sm_pool_shape;

/* One GroupNorm's shapes (torch.nn.GroupNorm(groups, c)): output shape = input shape. */
typedef struct sm_norm_shape {
    int n, c, h, w; /* input */
    int groups;     /* divides c: a group is c / groups consecutive channels of one image */
    double eps;     /* added to the variance (1e-5, PyTorch's default) */
} sm_norm_shape;

/* How the rows of l1_scores are stored (the gallery's storage types, siamese/gallery.h). */
typedef enum sm_rows_dtype {
    SM_ROWS_F32 = 0,  /* float */
    SM_ROWS_BF16 = 1, /* uint16: the upper half of a float's bits */
    SM_ROWS_F16 = 2,  /* uint16: IEEE 754 binary16 */
    SM_ROWS_U8 = 3,   /* uint8 u, decoded as fmaf(u, scale, offset) with the row's pair */
} sm_rows_dtype;

/* One l1_scores call's shapes. */
typedef struct sm_l1_shape {
    size_t n_queries; /* Q >= 1 */
    size_t n_rows;    /* rows scored (>= 1) */
    size_t dim;       /* features per vector (>= 1) */
    sm_rows_dtype dtype;
    size_t ld_out; /* out's row stride, >= n_rows */
} sm_l1_shape;

typedef struct sm_backend_ops {
    int abi_version;
    const char *name;
    sm_backend_kind kind;
    sm_backend_props props;

    /* lifecycle */
    sm_status (*probe)(void); /* SM_OK when usable here (reason set if not) */
    sm_status (*init)(void **ctx);
    void (*destroy)(void *ctx);

    /* settings (optional): called only for what props.honours names, else NULL is fine */
    sm_status (*set_threads)(void *ctx, int threads); /* 0 = all cores */
    int (*get_threads)(void *ctx);
    /* the dispatch layer has checked the key and the value's range */
    sm_status (*set_option)(void *ctx, sm_backend_option key, int64_t value);
    int64_t (*get_option)(void *ctx, sm_backend_option key);

    /* memory: buffers are 64-byte aligned */
    sm_status (*alloc)(void *ctx, size_t bytes, void **ptr);
    void (*free)(void *ctx, void *ptr);
    sm_status (*upload)(void *ctx, void *dst, const void *src, size_t bytes);
    sm_status (*download)(void *ctx, void *dst, const void *src, size_t bytes);
    sm_status (*zero)(void *ctx, void *dst, size_t bytes);

    /* convolution (+bias). Workspace bytes for one shape; the core allocates the largest over
     * its layers at the largest batch, then runs the ops on batches up to that size and passes
     * the workspace's size (`ws_bytes`), so a backend whose algorithm choice depends on the
     * batch (cuDNN) can pick one that fits. */
    size_t (*conv_workspace)(void *ctx, const sm_conv_shape *s);
    /* y = conv(x, w) + b */
    sm_status (*conv_fwd)(void *ctx, const sm_conv_shape *s, const float *x, const float *w,
                          const float *b, float *y, void *ws, size_t ws_bytes);
    /* dx = conv_transpose(dy, w) (overwrites dx). The core calls it right after
     * conv_bwd_filter of the same layer, dy and workspace, and a backend may reuse what that
     * call left in the workspace (cpu-dnnl: dy's spectrum). Only if nothing came between: a
     * backend that reuses must check that the previous op it ran on this context was that
     * call (cpu-dnnl counts its ops, and hashes dy), since another caller, thread or order of
     * calls may have written the workspace in between. */
    sm_status (*conv_bwd_data)(void *ctx, const sm_conv_shape *s, const float *dy, const float *w,
                               float *dx, void *ws, size_t ws_bytes);
    /* dw += corr(x, dy), db += sum(dy) (accumulate, for micro-batches) */
    sm_status (*conv_bwd_filter)(void *ctx, const sm_conv_shape *s, const float *x, const float *dy,
                                 float *dw, float *db, void *ws, size_t ws_bytes);

    /* max pooling; argmax receives, per output, the input offset within its (n, c) plane */
    sm_status (*maxpool_fwd)(void *ctx, const sm_pool_shape *s, const float *x, float *y,
                             int32_t *argmax);
    /* dx = scatter(dy) (overwrites dx, which may not alias dy) */
    sm_status (*maxpool_bwd)(void *ctx, const sm_pool_shape *s, const float *dy,
                             const int32_t *argmax, float *dx);

    /* GroupNorm. For each image and group, mean and (biased) variance over the group's
     * (c / groups) * h * w values; y = (x - mean) * rstd * gamma[ch] + beta[ch] with
     * rstd = 1 / sqrt(var + eps). An image's y depends on that image only. `stats` receives,
     * per (image, group) in that order, the mean then rstd (2 * n * groups floats), which
     * backward reads. x and y do not alias. */
    sm_status (*groupnorm_fwd)(void *ctx, const sm_norm_shape *s, const float *x,
                               const float *gamma, const float *beta, float *y, float *stats);
    /* From the forward's x and stats: dx = d(input) (overwrites; NULL when not wanted, for a
     * first layer), dgamma[ch] += sum of dy * (x - mean) * rstd, dbeta[ch] += sum of dy over
     * the n images and the channel's pixels (accumulate, for micro-batches). The sums run in
     * an order that does not depend on the thread count. dx aliases neither x nor dy. */
    sm_status (*groupnorm_bwd)(void *ctx, const sm_norm_shape *s, const float *x, const float *dy,
                               const float *gamma, const float *stats, float *dx, float *dgamma,
                               float *dbeta);

    /* element-wise; x and y (dy and dx) may alias */
    sm_status (*relu_fwd)(void *ctx, size_t n, const float *x, float *y);
    sm_status (*relu_bwd)(void *ctx, size_t n, const float *y, const float *dy, float *dx);
    sm_status (*sigmoid_fwd)(void *ctx, size_t n, const float *x, float *y);
    sm_status (*sigmoid_bwd)(void *ctx, size_t n, const float *y, const float *dy, float *dx);

    /* dense: row-major C = alpha op(A) op(B) + beta C, op(A) m x k, op(B) k x n */
    sm_status (*gemm)(void *ctx, bool trans_a, bool trans_b, int m, int n, int k, float alpha,
                      const float *a, int lda, const float *b, int ldb, float beta, float *c,
                      int ldc);
    /* y[r, c] += bias[c] */
    sm_status (*bias_add)(void *ctx, int rows, int cols, const float *bias, float *y);
    /* db[c] += sum_r dy[r, c] */
    sm_status (*bias_grad)(void *ctx, int rows, int cols, const float *dy, float *db);

    /* head: d = |a - b|; da = sign(a - b) dd, db = -da (overwrite) */
    sm_status (*absdiff_fwd)(void *ctx, size_t n, const float *a, const float *b, float *d);
    sm_status (*absdiff_bwd)(void *ctx, size_t n, const float *a, const float *b, const float *dd,
                             float *da, float *db);
    /* The head's logit of every (query, row) pair, for gallery search:
     *   out[q * ld_out + i] = sum_d w[d] |queries[q * dim + d] - row_r[d]| + w[dim]
     * with r = row_index[i] (a buffer of n_rows int32), or r = i when row_index is NULL. Row r
     * is dim elements of s->dtype at rows + r * dim * (element size); U8 rows decode element
     * u as fmaf(u, row_qp[2 r + 1], row_qp[2 r]) (scale, offset; row_qp is NULL otherwise).
     * Exact: every backend sums in this one order, so the bits do not depend on the backend,
     * Q, the row subset, the thread count or the instruction set. Sixteen lanes j = 0..15,
     * lane j over the d = j mod 16 in increasing order, from +0:
     *   acc_j = fmaf(w[d], |q[d] - row[d]|, acc_j)  (one rounding: a fused multiply-add);
     * then folded: a_j = acc_j + acc_(j+8) (j < 8), b_j = a_j + a_(j+4) (j < 4),
     * c_j = b_j + b_(j+2) (j < 2), out = (c_0 + c_1) + w[dim]. */
    sm_status (*l1_scores)(void *ctx, const sm_l1_shape *s, const float *queries,
                           const void *rows, const float *row_qp, const int32_t *row_index,
                           const float *w, float *out);
    /* Fused sigmoid + clipped BCE for n logits: scores[i] = sigmoid(z), clipped to
     * [eps, 1 - eps] (eps = 2^-23); loss_sum[0] = sum of the per-pair losses (one float);
     * dlogits[i] = scale * dL_i/dz_i (0 where the clip is active). dlogits may be NULL. */
    sm_status (*bce_fwd_bwd)(void *ctx, int n, const float *logits, const float *labels,
                             float scale, float *scores, float *loss_sum, float *dlogits);

    /* Adam (docs/reference.md form) with classic L2 decay: g' = g + wd p (p before the update);
     * m = b1 m + (1-b1) g'; v = b2 v + (1-b2) g'^2; p -= step * m / (sqrt(v) + eps),
     * step = lr f(t) sqrt(1-b2^t) / (1-b1^t) from the core. wd = 0 must give exactly the
     * update without decay (bit for bit: the reference), so backends keep a decay-free path. */
    sm_status (*adam_update)(void *ctx, size_t n, float *p, const float *g, float *m, float *v,
                             float step, float b1, float b2, float eps, float wd);
    /* *finite = every x[i] is finite */
    sm_status (*all_finite)(void *ctx, size_t n, const float *x, bool *finite);
} sm_backend_ops;

/* What the core lends a module at entry. `fail` records sm_last_error()'s detail on the calling
 * thread and returns `status`, exactly as the core's sm__fail; `log` goes to the host's log
 * callback. Both may be called from any thread. */
typedef struct sm_backend_host {
    int abi_version;
    sm_status (*fail)(sm_status status, const char *fmt, ...);
    void (*log)(sm_log_level level, const char *fmt, ...);
} sm_backend_host;

typedef const sm_backend_ops *(*sm_backend_module_entry_fn)(const sm_backend_host *host);

#endif
