/* SPDX-License-Identifier: MIT */
/* Convolutions on oneDNN primitives. The vtable's tensors are NCHW (weights OIHW); oneDNN's
 * AVX-512 kernels want blocked layouts (nChw16c, OIhw16i16o), so each primitive is created with
 * format `any` and its tensors are reordered on the way in and out. The reorders move each
 * activation once (a few ms at this network's sizes) against convolutions of hundreds of ms,
 * and the blocked kernels are what make oneDNN faster than im2col + GEMM here.
 *
 * A call runs in chunks of CHUNK images, so the blocked copies, which live in the core's
 * workspace, are sized by the chunk and not by the batch. A plan (primitive, reorders, offsets
 * into the workspace) is created once per (op, shape, chunk) and cached in the context under
 * its lock; plans are immutable once listed, so any number of threads may run them at once, each
 * with its own workspace. Scratchpads are user-managed (the workspace) so oneDNN allocates
 * nothing per execution. */
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dnnl_internal.h"

enum { CHUNK = 16 };
enum { OP_FWD, OP_BWD_DATA, OP_BWD_FILTER, OP_COUNT };
static const char *const op_names[OP_COUNT] = {"forward", "backward-data", "backward-filter"};

/* A tensor the primitive reads or writes: in place when the user's layout is the primitive's,
 * else through a copy at `off` in the workspace and a reorder (user -> copy for inputs;
 * copy -> user for outputs, adding to the user's values when `accumulate`). */
typedef struct plan_arg {
    int arg; /* DNNL_ARG_* */
    bool output, accumulate, per_image;
    dnnl_memory_desc_t user, prim;
    dnnl_primitive_t reorder; /* NULL: in place */
    size_t off;
} plan_arg;

struct conv_plan {
    conv_plan *next;
    int op, precision; /* precision: sm_precision */
    int threads;       /* oneDNN fixes a primitive's thread count when it is created */
    sm_conv_shape s;   /* s.n: images per execution */
    dnnl_primitive_t prim;
    plan_arg args[4];
    int nargs;
    dnnl_memory_desc_t scratch;
    size_t scratch_off, bias_off, ws_bytes;
    /* used when the caller's workspace is smaller than ws_bytes (a tail chunk whose primitive
     * wants more scratchpad than the full chunk's): allocated with the plan, used under `lock` */
    void *own_ws;
    pthread_mutex_t lock;
};

static void plan_destroy(conv_plan *p)
{
    if (!p) return;
    for (int i = 0; i < p->nargs; i++)
        if (p->args[i].reorder) dnnl_primitive_destroy(p->args[i].reorder);
    if (p->prim) dnnl_primitive_destroy(p->prim);
    free(p->own_ws);
    pthread_mutex_destroy(&p->lock);
    free(p);
}

void smd_plans_destroy(dnnl_ctx *c)
{
    for (conv_plan *p = c->plans, *next; p; p = next) {
        next = p->next;
        plan_destroy(p);
    }
    c->plans = NULL;
}

#define DNNL_TRY(call, what)                                                                       \
    do {                                                                                           \
        dnnl_status_t st_ = (call);                                                                \
        if (st_ != dnnl_success) return smd_fail(st_, what);                                       \
    } while (0)

static dnnl_status_t md4(dnnl_memory_desc_t *md, int a, int b, int c, int d, dnnl_data_type_t dt,
                         dnnl_format_tag_t t)
{
    const dnnl_dims_t dims = {a, b, c, d};
    return dnnl_memory_desc_init_by_tag(md, 4, dims, dt, t);
}

/* the user-side descriptors and oneDNN's `any` versions of x, w, y; the bias */
typedef struct conv_mds {
    dnnl_memory_desc_t x, w, y, x_any, w_any, y_any, b;
} conv_mds;

/* In bf16 a primitive reads its operands in bf16 (the reorders from the user's float32 round
 * them) and writes its result in float32, accumulated in float32: what autocast does. */
static sm_status make_mds(const sm_conv_shape *s, int op, int precision, conv_mds *m)
{
    const bool bf16 = precision == SM_PRECISION_BF16;
    const dnnl_data_type_t in = bf16 ? dnnl_bf16 : dnnl_f32;
    const dnnl_data_type_t xt = op == OP_BWD_DATA ? dnnl_f32 : in;
    const dnnl_data_type_t wt = op == OP_BWD_FILTER ? dnnl_f32 : in;
    const dnnl_data_type_t yt = op == OP_FWD ? dnnl_f32 : in;
    DNNL_TRY(md4(&m->x, s->n, s->c, s->h, s->w, dnnl_f32, dnnl_nchw), "describing the input");
    DNNL_TRY(md4(&m->w, s->k, s->c, s->kh, s->kw, dnnl_f32, dnnl_oihw), "describing the weights");
    DNNL_TRY(md4(&m->y, s->n, s->k, s->oh, s->ow, dnnl_f32, dnnl_nchw), "describing the output");
    DNNL_TRY(md4(&m->x_any, s->n, s->c, s->h, s->w, xt, dnnl_format_tag_any),
             "describing the input");
    DNNL_TRY(md4(&m->w_any, s->k, s->c, s->kh, s->kw, wt, dnnl_format_tag_any),
             "describing the weights");
    DNNL_TRY(md4(&m->y_any, s->n, s->k, s->oh, s->ow, yt, dnnl_format_tag_any),
             "describing the output");
    const dnnl_dims_t bd = {s->k};
    DNNL_TRY(dnnl_memory_desc_init_by_tag(&m->b, 1, bd, dnnl_f32, dnnl_x), "describing the bias");
    return SM_OK;
}

static const dnnl_dims_t ones = {1, 1}, zeros = {0, 0};

static sm_status fwd_desc(const conv_mds *m, dnnl_convolution_desc_t *d)
{
    DNNL_TRY(dnnl_convolution_forward_desc_init(d, dnnl_forward_training, dnnl_convolution_direct,
                                                &m->x_any, &m->w_any, &m->b, &m->y_any, ones, zeros,
                                                zeros),
             "describing a forward convolution");
    return SM_OK;
}

/* The primitive descriptor of `op`; backward ones need the forward one as a hint (made from
 * `hint_m`, the forward pass's descriptors at this precision). */
static sm_status make_pd(dnnl_ctx *c, int op, const conv_mds *m, const conv_mds *hint_m,
                         dnnl_primitive_attr_t attr, dnnl_primitive_desc_t *pd)
{
    dnnl_convolution_desc_t fd, bd;
    SMD_TRY(fwd_desc(m, &fd));
    if (op == OP_FWD) {
        DNNL_TRY(dnnl_primitive_desc_create(pd, &fd, attr, c->engine, NULL),
                 "creating a forward convolution");
        return SM_OK;
    }
    dnnl_primitive_desc_t hint;
    SMD_TRY(fwd_desc(hint_m, &fd));
    DNNL_TRY(dnnl_primitive_desc_create(&hint, &fd, NULL, c->engine, NULL),
             "creating a forward convolution");
    dnnl_status_t st;
    if (op == OP_BWD_DATA)
        st = dnnl_convolution_backward_data_desc_init(&bd, dnnl_convolution_direct, &m->x_any,
                                                      &m->w_any, &m->y_any, ones, zeros, zeros);
    else
        st = dnnl_convolution_backward_weights_desc_init(&bd, dnnl_convolution_direct, &m->x_any,
                                                         &m->w_any, &m->b, &m->y_any, ones, zeros,
                                                         zeros);
    if (st == dnnl_success) st = dnnl_primitive_desc_create(pd, &bd, attr, c->engine, hint);
    dnnl_primitive_desc_destroy(hint);
    if (st != dnnl_success) return smd_fail(st, op_names[op]);
    return SM_OK;
}

/* Adds one tensor to the plan: in place when the layouts agree and nothing accumulates. */
static sm_status add_arg(dnnl_ctx *c, conv_plan *p, dnnl_primitive_desc_t pd, int arg,
                         dnnl_query_t q, const dnnl_memory_desc_t *user, bool output,
                         bool accumulate, bool per_image)
{
    plan_arg *a = &p->args[p->nargs++];
    a->arg = arg, a->output = output, a->accumulate = accumulate, a->per_image = per_image;
    a->user = *user;
    a->prim = *dnnl_primitive_desc_query_md(pd, q, 0);
    if (!accumulate && dnnl_memory_desc_equal(&a->user, &a->prim)) return SM_OK;
    a->off = p->ws_bytes;
    p->ws_bytes += smd_align64(dnnl_memory_desc_get_size(&a->prim));
    dnnl_primitive_attr_t attr = NULL;
    dnnl_post_ops_t po = NULL;
    dnnl_status_t st = dnnl_success;
    if (accumulate) {
        st = dnnl_primitive_attr_create(&attr);
        if (st == dnnl_success) st = dnnl_post_ops_create(&po);
        if (st == dnnl_success) st = dnnl_post_ops_append_sum(po, 1.0f);
        if (st == dnnl_success) st = dnnl_primitive_attr_set_post_ops(attr, po);
    }
    dnnl_primitive_desc_t rpd = NULL;
    if (st == dnnl_success)
        st = output ? dnnl_reorder_primitive_desc_create(&rpd, &a->prim, c->engine, &a->user,
                                                         c->engine, attr)
                    : dnnl_reorder_primitive_desc_create(&rpd, &a->user, c->engine, &a->prim,
                                                         c->engine, attr);
    if (st == dnnl_success) st = dnnl_primitive_create(&a->reorder, rpd);
    if (rpd) dnnl_primitive_desc_destroy(rpd);
    if (po) dnnl_post_ops_destroy(po);
    if (attr) dnnl_primitive_attr_destroy(attr);
    return st == dnnl_success ? SM_OK : smd_fail(st, "creating a reorder");
}

static sm_status plan_create(dnnl_ctx *c, int op, int precision, const sm_conv_shape *s,
                             conv_plan **out)
{
    conv_plan *p = calloc(1, sizeof *p);
    if (!p) return smd_host->fail(SM_ERR_NOMEM, "out of memory creating a convolution plan");
    pthread_mutex_init(&p->lock, NULL);
    p->op = op;
    p->precision = precision;
    p->s = *s;
    conv_mds m;
    dnnl_primitive_attr_t attr = NULL;
    dnnl_primitive_desc_t pd = NULL;
    conv_mds hint_m;
    sm_status st = make_mds(s, op, precision, &m);
    if (st == SM_OK) st = make_mds(s, OP_FWD, precision, &hint_m);
    if (st == SM_OK) {
        dnnl_status_t ds = dnnl_primitive_attr_create(&attr);
        if (ds == dnnl_success)
            ds = dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user);
        if (ds != dnnl_success) st = smd_fail(ds, "setting up a convolution");
    }
    if (st == SM_OK) st = make_pd(c, op, &m, &hint_m, attr, &pd);
    if (st == SM_OK && op == OP_FWD) {
        st = add_arg(c, p, pd, DNNL_ARG_SRC, dnnl_query_src_md, &m.x, false, false, true);
        if (st == SM_OK)
            st = add_arg(c, p, pd, DNNL_ARG_WEIGHTS, dnnl_query_weights_md, &m.w, false, false,
                         false);
        if (st == SM_OK)
            st = add_arg(c, p, pd, DNNL_ARG_DST, dnnl_query_dst_md, &m.y, true, false, true);
    } else if (st == SM_OK && op == OP_BWD_DATA) {
        st = add_arg(c, p, pd, DNNL_ARG_DIFF_DST, dnnl_query_diff_dst_md, &m.y, false, false, true);
        if (st == SM_OK)
            st = add_arg(c, p, pd, DNNL_ARG_WEIGHTS, dnnl_query_weights_md, &m.w, false, false,
                         false);
        if (st == SM_OK)
            st = add_arg(c, p, pd, DNNL_ARG_DIFF_SRC, dnnl_query_diff_src_md, &m.x, true, false,
                         true);
    } else if (st == SM_OK) {
        st = add_arg(c, p, pd, DNNL_ARG_SRC, dnnl_query_src_md, &m.x, false, false, true);
        if (st == SM_OK)
            st = add_arg(c, p, pd, DNNL_ARG_DIFF_DST, dnnl_query_diff_dst_md, &m.y, false, false,
                         true);
        if (st == SM_OK)
            st = add_arg(c, p, pd, DNNL_ARG_DIFF_WEIGHTS, dnnl_query_diff_weights_md, &m.w, true,
                         true, false);
        /* the bias gradient goes to the workspace and is added by a loop (K floats) */
        p->bias_off = p->ws_bytes;
        p->ws_bytes += smd_align64((size_t)s->k * sizeof(float));
    }
    if (st == SM_OK) {
        p->scratch = *dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
        p->scratch_off = p->ws_bytes;
        p->ws_bytes += smd_align64(dnnl_memory_desc_get_size(&p->scratch));
        dnnl_status_t ds = dnnl_primitive_create(&p->prim, pd);
        if (ds != dnnl_success) st = smd_fail(ds, op_names[op]);
    }
    if (pd) dnnl_primitive_desc_destroy(pd);
    if (attr) dnnl_primitive_attr_destroy(attr);
    if (st != SM_OK) {
        plan_destroy(p);
        return st;
    }
    *out = p;
    return SM_OK;
}

/* The cached plan of (op, shape) with s->n images per execution, created on first use. */
static sm_status plan_get(dnnl_ctx *c, int op, const sm_conv_shape *s, conv_plan **out)
{
    /* oneDNN reads the calling thread's OpenMP thread count when it creates a primitive and
     * keeps it: a plan first made while sizing a workspace, before any op had set the count,
     * ran every later step on OpenMP's default team whatever the backend's setting */
    const int threads = smd_threads();
    omp_set_num_threads(threads);
    pthread_mutex_lock(&c->lock);
    conv_plan *p = c->plans;
    while (p && !(p->op == op && p->precision == c->precision && p->threads == threads &&
                  p->s.n == s->n && smd_same_layer(&p->s, s)))
        p = p->next;
    sm_status st = SM_OK;
    if (!p) {
        /* created under the lock: creation is rare (once per layer and chunk size), and two
         * threads must not both add the same plan */
        st = plan_create(c, op, c->precision, s, &p);
        if (st == SM_OK) {
            p->threads = threads;
            p->next = c->plans;
            c->plans = p;
        }
    }
    pthread_mutex_unlock(&c->lock);
    if (st == SM_OK) *out = p;
    return st;
}

static sm_conv_shape chunk_shape(const sm_conv_shape *s, int n)
{
    sm_conv_shape cs = *s;
    cs.n = n;
    return cs;
}

size_t smd_direct_workspace(void *ctx, const sm_conv_shape *s)
{
    sm_conv_shape cs = chunk_shape(s, s->n < CHUNK ? s->n : CHUNK);
    size_t most = 0;
    for (int op = 0; op < OP_COUNT; op++) {
        conv_plan *p;
        /* a failure here comes back, with oneDNN's status, from the op itself */
        if (plan_get(ctx, op, &cs, &p) == SM_OK && p->ws_bytes > most) most = p->ws_bytes;
    }
    return most;
}

/* User-side pointers of one execution, by DNNL_ARG_*. */
typedef struct user_ptrs {
    int arg[4];
    void *ptr[4];
    int n;
} user_ptrs;

static void *user_ptr(const user_ptrs *u, int arg)
{
    for (int i = 0; i < u->n; i++)
        if (u->arg[i] == arg) return u->ptr[i];
    return NULL;
}

static sm_status reorder(dnnl_ctx *c, dnnl_stream_t stream, dnnl_primitive_t r,
                         const dnnl_memory_desc_t *from_md, void *from,
                         const dnnl_memory_desc_t *to_md, void *to)
{
    dnnl_memory_t a = NULL, b = NULL;
    dnnl_status_t st = dnnl_memory_create(&a, from_md, c->engine, from);
    if (st == dnnl_success) st = dnnl_memory_create(&b, to_md, c->engine, to);
    if (st == dnnl_success) {
        dnnl_exec_arg_t args[2] = {{DNNL_ARG_FROM, a}, {DNNL_ARG_TO, b}};
        st = dnnl_primitive_execute(r, stream, 2, args);
    }
    if (a) dnnl_memory_destroy(a);
    if (b) dnnl_memory_destroy(b);
    return st == dnnl_success ? SM_OK : smd_fail(st, "a reorder");
}

/* Runs one plan on one chunk: inputs reordered in, the primitive, outputs reordered out. */
static sm_status execute(dnnl_ctx *c, conv_plan *p, const user_ptrs *u, char *ws)
{
    dnnl_stream_t stream;
    DNNL_TRY(dnnl_stream_create(&stream, c->engine, dnnl_stream_default_flags),
             "creating a stream");
    dnnl_memory_t mem[6] = {NULL};
    dnnl_exec_arg_t args[6];
    int nargs = 0;
    sm_status st = SM_OK;
    dnnl_status_t ds = dnnl_success;
    for (int i = 0; i < p->nargs && st == SM_OK; i++) {
        const plan_arg *a = &p->args[i];
        void *user = user_ptr(u, a->arg), *prim = a->reorder ? ws + a->off : user;
        if (a->reorder && !a->output)
            st = reorder(c, stream, a->reorder, &a->user, user, &a->prim, prim);
        if (st == SM_OK) ds = dnnl_memory_create(&mem[nargs], &a->prim, c->engine, prim);
        if (ds != dnnl_success) st = smd_fail(ds, "describing a tensor");
        if (st == SM_OK) args[nargs] = (dnnl_exec_arg_t){a->arg, mem[nargs]}, nargs++;
    }
    const dnnl_memory_desc_t *bias_md = NULL;
    dnnl_memory_desc_t bmd;
    if (st == SM_OK && (p->op == OP_FWD || p->op == OP_BWD_FILTER)) {
        const dnnl_dims_t bd = {p->s.k};
        ds = dnnl_memory_desc_init_by_tag(&bmd, 1, bd, dnnl_f32, dnnl_x);
        bias_md = &bmd;
        void *bp = p->op == OP_FWD ? user_ptr(u, DNNL_ARG_BIAS) : ws + p->bias_off;
        if (ds == dnnl_success) ds = dnnl_memory_create(&mem[nargs], bias_md, c->engine, bp);
        if (ds != dnnl_success) st = smd_fail(ds, "describing the bias");
        else
            args[nargs] =
                (dnnl_exec_arg_t){p->op == OP_FWD ? DNNL_ARG_BIAS : DNNL_ARG_DIFF_BIAS, mem[nargs]},
            nargs++;
    }
    if (st == SM_OK) {
        ds = dnnl_memory_create(&mem[nargs], &p->scratch, c->engine, ws + p->scratch_off);
        if (ds != dnnl_success) st = smd_fail(ds, "describing the scratchpad");
        else args[nargs] = (dnnl_exec_arg_t){DNNL_ARG_SCRATCHPAD, mem[nargs]}, nargs++;
    }
    if (st == SM_OK) {
        ds = dnnl_primitive_execute(p->prim, stream, nargs, args);
        if (ds != dnnl_success) st = smd_fail(ds, op_names[p->op]);
    }
    for (int i = 0; i < p->nargs && st == SM_OK; i++) {
        const plan_arg *a = &p->args[i];
        if (a->reorder && a->output)
            st = reorder(c, stream, a->reorder, &a->prim, ws + a->off, &a->user,
                         user_ptr(u, a->arg));
    }
    if (st == SM_OK) {
        ds = dnnl_stream_wait(stream);
        if (ds != dnnl_success) st = smd_fail(ds, "waiting for a stream");
    }
    for (int i = 0; i < nargs; i++) dnnl_memory_destroy(mem[i]);
    dnnl_stream_destroy(stream);
    return st;
}

/* Runs `op` over s->n images in chunks; `fill` names the chunk's user pointers. */
typedef void (*fill_fn)(const void *call, int n0, user_ptrs *u);

static sm_status run(void *ctx, int op, const sm_conv_shape *s, const void *call, fill_fn fill,
                     void *ws, size_t ws_bytes, float *db)
{
    dnnl_ctx *c = ctx;
    omp_set_num_threads(smd_threads());
    for (int n0 = 0; n0 < s->n; n0 += CHUNK) {
        int n = s->n - n0 < CHUNK ? s->n - n0 : CHUNK;
        sm_conv_shape cs = chunk_shape(s, n);
        conv_plan *p;
        SMD_TRY(plan_get(c, op, &cs, &p));
        user_ptrs u = {{0}, {0}, 0};
        fill(call, n0, &u);
        bool own = p->ws_bytes > ws_bytes || !ws;
        if (own) {
            pthread_mutex_lock(&p->lock);
            if (!p->own_ws) p->own_ws = aligned_alloc(64, p->ws_bytes ? p->ws_bytes : 64);
            if (!p->own_ws) {
                pthread_mutex_unlock(&p->lock);
                return smd_host->fail(SM_ERR_NOMEM, "out of memory for a convolution workspace");
            }
        }
        char *w = own ? p->own_ws : ws;
        sm_status st = execute(c, p, &u, w);
        if (st == SM_OK && db)
            for (int k = 0; k < s->k; k++) db[k] += ((const float *)(w + p->bias_off))[k];
        if (own) pthread_mutex_unlock(&p->lock);
        SMD_TRY(st);
    }
    return SM_OK;
}

typedef struct conv_call {
    const sm_conv_shape *s;
    const float *x, *w, *b, *dy;
    float *y, *dx, *dw;
} conv_call;

static void put(user_ptrs *u, int arg, const void *p)
{
    u->arg[u->n] = arg;
    u->ptr[u->n++] = (void *)(uintptr_t)p; /* oneDNN takes non-const handles for inputs too */
}

static void fill_fwd(const void *call, int n0, user_ptrs *u)
{
    const conv_call *k = call;
    put(u, DNNL_ARG_SRC, k->x + (size_t)n0 * smd_in_img(k->s));
    put(u, DNNL_ARG_WEIGHTS, k->w);
    put(u, DNNL_ARG_BIAS, k->b);
    put(u, DNNL_ARG_DST, k->y + (size_t)n0 * smd_out_img(k->s));
}

static void fill_bwd_data(const void *call, int n0, user_ptrs *u)
{
    const conv_call *k = call;
    put(u, DNNL_ARG_DIFF_DST, k->dy + (size_t)n0 * smd_out_img(k->s));
    put(u, DNNL_ARG_WEIGHTS, k->w);
    put(u, DNNL_ARG_DIFF_SRC, k->dx + (size_t)n0 * smd_in_img(k->s));
}

static void fill_bwd_filter(const void *call, int n0, user_ptrs *u)
{
    const conv_call *k = call;
    put(u, DNNL_ARG_SRC, k->x + (size_t)n0 * smd_in_img(k->s));
    put(u, DNNL_ARG_DIFF_DST, k->dy + (size_t)n0 * smd_out_img(k->s));
    put(u, DNNL_ARG_DIFF_WEIGHTS, k->dw);
}

sm_status smd_direct_fwd(void *ctx, const sm_conv_shape *s, const float *x, const float *w,
                         const float *b, float *y, void *ws, size_t ws_bytes)
{
    (void)smd_ws_touch(ctx);
    conv_call k = {.s = s, .x = x, .w = w, .b = b, .y = y};
    return run(ctx, OP_FWD, s, &k, fill_fwd, ws, ws_bytes, NULL);
}

sm_status smd_direct_bwd_data(void *ctx, const sm_conv_shape *s, const float *dy, const float *w,
                              float *dx, void *ws, size_t ws_bytes)
{
    (void)smd_ws_touch(ctx);
    conv_call k = {.s = s, .dy = dy, .w = w, .dx = dx};
    return run(ctx, OP_BWD_DATA, s, &k, fill_bwd_data, ws, ws_bytes, NULL);
}

sm_status smd_direct_bwd_filter(void *ctx, const sm_conv_shape *s, const float *x, const float *dy,
                                float *dw, float *db, void *ws, size_t ws_bytes)
{
    (void)smd_ws_touch(ctx);
    conv_call k = {.s = s, .x = x, .dy = dy, .dw = dw};
    return run(ctx, OP_BWD_FILTER, s, &k, fill_bwd_filter, ws, ws_bytes, db);
}
