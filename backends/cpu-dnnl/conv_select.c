/* SPDX-License-Identifier: MIT */
/* Which algorithm runs each convolution: oneDNN's direct kernels or the frequency domain
 * (conv_fft.c), per layer shape and direction.
 *
 * SM_CONV_ALGO_AUTO (the default) takes conv_model.c's choice, a function of the shape, the
 * direction and the precision: the same in every run, process and rank, whatever the load.
 *
 * SM_CONV_ALGO_MEASURED times both on the layer the first time it is sized (a trainer's or a
 * prediction's workspace, so at creation and not inside a step), on generated data for
 * MEASURE_IMAGES images whatever the caller's batch, and keeps the faster for the rest of the
 * process. The verdict is keyed by the layer, not the batch, so a last micro-batch of another
 * size reuses it instead of measuring inside a step; one measurement runs at a time, and a
 * thread that finds its layer being measured waits for that verdict rather than timing again
 * (two verdicts would size the workspace for one and run the other). A full table falls back
 * to the model instead of measuring on every call. FFT must win by a clear margin; a near tie
 * goes to direct, whose results are the reference's, and so does a shape whose direct
 * convolution takes under 2 ms. */
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "dnnl_internal.h"

enum { OPS = 3, MARGIN_PCT = 90, MAX_CHOICES = 256, MEASURE_IMAGES = 32 };
/* A shape whose direct convolution takes less than this stays direct: the most FFT could save
 * is about as large as the timing noise at that scale (seconds) */
#define MIN_DIRECT_S 0.002

typedef struct choice {
    sm_conv_shape s; /* the layer; s.n is not part of the key */
    int op, precision, algo;
} choice;

/* choices_lock guards the table; measure_lock is held for a whole measurement, so there is
 * one at a time and the second thread to size a layer waits for the first one's verdict */
static pthread_mutex_t choices_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t measure_lock = PTHREAD_MUTEX_INITIALIZER;
static choice choices[MAX_CHOICES];
static int n_choices;

static bool same(const choice *c, int op, int precision, const sm_conv_shape *s)
{
    return c->op == op && c->precision == precision && smd_same_layer(&c->s, s);
}

static int lookup(int op, int precision, const sm_conv_shape *s)
{
    int algo = -1;
    pthread_mutex_lock(&choices_lock);
    for (int i = 0; i < n_choices && algo < 0; i++)
        if (same(&choices[i], op, precision, s)) algo = choices[i].algo;
    pthread_mutex_unlock(&choices_lock);
    return algo;
}

/* false when the table is full */
static bool remember(int op, int precision, const sm_conv_shape *s, int algo)
{
    pthread_mutex_lock(&choices_lock);
    bool kept = n_choices < MAX_CHOICES;
    if (kept) choices[n_choices++] = (choice){*s, op, precision, algo};
    pthread_mutex_unlock(&choices_lock);
    return kept;
}

static bool table_full(void)
{
    pthread_mutex_lock(&choices_lock);
    bool full = n_choices >= MAX_CHOICES;
    pthread_mutex_unlock(&choices_lock);
    return full;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Generated operands for one measurement. */
typedef struct bufs {
    float *x, *w, *b, *y, *dy, *dx, *dw, *db;
    void *ws;
    size_t ws_bytes, nx, nw, nk, ny; /* floats per buffer */
} bufs;

/* The measurement's buffers are mapped and unmapped directly: freed through malloc they would
 * stay in the heap, resident, and raise the process's peak memory for good. */
static void *map_bytes(size_t bytes)
{
    void *p =
        mmap(NULL, bytes ? bytes : 1, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return NULL;
    *(size_t *)p = 0; /* touched, so a failure shows here and not inside a kernel */
    return p;
}

static size_t mapped_size(size_t bytes) { return bytes ? bytes : 1; }

static void bufs_free(bufs *u)
{
    void *const ptrs[] = {u->x, u->w, u->b, u->y, u->dy, u->dx, u->dw, u->db, u->ws};
    const size_t sizes[] = {u->nx, u->nw, u->nk, u->ny, u->ny, u->nx, u->nw, u->nk, u->ws_bytes};
    for (int i = 0; i < 9; i++)
        if (ptrs[i]) munmap(ptrs[i], mapped_size(i == 8 ? sizes[i] : sizes[i] * sizeof(float)));
}

static float *filled(size_t n, unsigned seed)
{
    float *p = map_bytes(n * sizeof(float));
    /* small values of both signs: no denormals, nothing that changes a kernel's speed */
    for (size_t i = 0; p && i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        p[i] = (float)((seed >> 9) & 0xffff) / 65536.0f - 0.5f;
    }
    return p;
}

static sm_status bufs_make(void *ctx, const sm_conv_shape *s, bufs *u)
{
    memset(u, 0, sizeof *u);
    size_t in = (size_t)s->n * s->c * s->h * s->w, out = (size_t)s->n * s->k * s->oh * s->ow;
    size_t wn = (size_t)s->k * s->c * s->kh * s->kw, fft_ws = 0;
    SMD_TRY(smd_fft_workspace(ctx, s, &fft_ws));
    size_t direct_ws = smd_direct_workspace(ctx, s);
    u->ws_bytes = fft_ws > direct_ws ? fft_ws : direct_ws;
    u->nx = in, u->nw = wn, u->nk = (size_t)s->k, u->ny = out;
    u->x = filled(in, 1), u->w = filled(wn, 2), u->b = filled((size_t)s->k, 3);
    u->dy = filled(out, 4), u->y = filled(out, 5), u->dx = filled(in, 6);
    u->dw = filled(wn, 7), u->db = filled((size_t)s->k, 8);
    u->ws = map_bytes(u->ws_bytes);
    if (!u->x || !u->w || !u->b || !u->dy || !u->y || !u->dx || !u->dw || !u->db || !u->ws) {
        bufs_free(u);
        return smd_host->fail(SM_ERR_NOMEM, "out of memory measuring a convolution");
    }
    return SM_OK;
}

static sm_status run_algo(void *ctx, int op, int algo, const sm_conv_shape *s, bufs *u)
{
    bool fft = algo == SM_CONV_ALGO_FFT;
    if (op == 0)
        return fft ? smd_fft_fwd(ctx, s, u->x, u->w, u->b, u->y, u->ws, u->ws_bytes)
                   : smd_direct_fwd(ctx, s, u->x, u->w, u->b, u->y, u->ws, u->ws_bytes);
    if (op == 1)
        return fft ? smd_fft_bwd_data(ctx, s, u->dy, u->w, u->dx, u->ws, u->ws_bytes)
                   : smd_direct_bwd_data(ctx, s, u->dy, u->w, u->dx, u->ws, u->ws_bytes);
    return fft ? smd_fft_bwd_filter(ctx, s, u->x, u->dy, u->dw, u->db, u->ws, u->ws_bytes)
               : smd_direct_bwd_filter(ctx, s, u->x, u->dy, u->dw, u->db, u->ws, u->ws_bytes);
}

/* The best of a few runs after one that creates the plans and caches the kernel's spectrum
 * (training makes it once per step per layer, a small part of the step: docs/performance.md). */
static sm_status time_algo(void *ctx, int op, int algo, const sm_conv_shape *s, bufs *u,
                           double *best)
{
    SMD_TRY(run_algo(ctx, op, algo, s, u));
    *best = 1e30;
    double spent = 0.0;
    for (int rep = 0; rep < 5 && (rep < 2 || spent < 0.02); rep++) {
        double t0 = now();
        SMD_TRY(run_algo(ctx, op, algo, s, u));
        double t = now() - t0;
        spent += t;
        if (t < *best) *best = t;
    }
    return SM_OK;
}

static sm_status measure(void *ctx, int op, const sm_conv_shape *s, int *algo)
{
    bufs u;
    SMD_TRY(bufs_make(ctx, s, &u));
    double direct = 0.0, fft = 0.0;
    sm_status st = time_algo(ctx, op, SM_CONV_ALGO_DIRECT, s, &u, &direct);
    bool small = st == SM_OK && direct < MIN_DIRECT_S;
    if (st == SM_OK && !small) st = time_algo(ctx, op, SM_CONV_ALGO_FFT, s, &u, &fft);
    bufs_free(&u);
    if (st != SM_OK) return st;
    *algo = !small && fft * 100.0 < direct * MARGIN_PCT ? SM_CONV_ALGO_FFT : SM_CONV_ALGO_DIRECT;
    smd_host->log(SM_LOG_DEBUG,
                  "cpu-dnnl: %s of %dx%dx%d -> %d, %dx%d kernel, %d images: direct %.3f ms, "
                  "fft %.3f ms: %s",
                  op == 0   ? "forward"
                  : op == 1 ? "backward-data"
                            : "backward-filter",
                  s->c, s->h, s->w, s->k, s->kh, s->kw, s->n, direct * 1e3, small ? 0.0 : fft * 1e3,
                  small                       ? "direct (under 2 ms: not timed)"
                  : *algo == SM_CONV_ALGO_FFT ? "fft"
                                              : "direct");
    return SM_OK;
}

/* MEASURED: the verdict for (op, layer), measured once per process. */
static int measured(dnnl_ctx *c, int op, const sm_conv_shape *s)
{
    int algo = lookup(op, c->precision, s);
    if (algo >= 0) return algo;
    pthread_mutex_lock(&measure_lock);
    algo = lookup(op, c->precision, s); /* measured while this thread waited */
    if (algo < 0 && table_full()) {
        algo = smd_conv_modeled(op, c->precision, s);
        smd_host->log(SM_LOG_DEBUG,
                      "cpu-dnnl: %d layer choices measured already: the model "
                      "chooses for %dx%dx%d -> %d",
                      MAX_CHOICES, s->c, s->h, s->w, s->k);
    } else if (algo < 0) {
        sm_conv_shape m = *s;
        m.n = MEASURE_IMAGES;
        if (measure(c, op, &m, &algo) != SM_OK) {
            /* FFT's workspace or the generated operands did not fit: direct needs neither */
            smd_host->log(SM_LOG_DEBUG,
                          "cpu-dnnl: measuring a %dx%dx%d -> %d convolution failed: direct", s->c,
                          s->h, s->w, s->k);
            algo = SM_CONV_ALGO_DIRECT;
        }
        (void)remember(op, c->precision, s, algo);
    }
    pthread_mutex_unlock(&measure_lock);
    return algo;
}

/* The algorithm for (op, shape). */
static sm_status choose(dnnl_ctx *c, int op, const sm_conv_shape *s, int *algo)
{
    *algo = SM_CONV_ALGO_DIRECT;
    if (!smd_fft_possible(s) || c->conv_algo == SM_CONV_ALGO_DIRECT || s->n <= 0) return SM_OK;
    switch (c->conv_algo) {
    case SM_CONV_ALGO_FFT: *algo = SM_CONV_ALGO_FFT; break;
    case SM_CONV_ALGO_MEASURED: *algo = measured(c, op, s); break;
    default: *algo = smd_conv_modeled(op, c->precision, s); break;
    }
    return SM_OK;
}

int smd_conv_chosen(void *ctx, int op, const sm_conv_shape *s)
{
    int algo;
    return choose(ctx, op, s, &algo) == SM_OK ? algo : SM_CONV_ALGO_DIRECT;
}

size_t smd_conv_workspace(void *ctx, const sm_conv_shape *s)
{
    size_t most = smd_direct_workspace(ctx, s);
    for (int op = 0; op < OPS; op++) {
        int algo;
        size_t fft = 0;
        if (s->dirs && !(s->dirs & (1u << op))) continue; /* SM_CONV_DIR_* are 1 << op */
        /* a failure here comes back from the op itself */
        if (choose(ctx, op, s, &algo) == SM_OK && algo == SM_CONV_ALGO_FFT &&
            smd_fft_workspace(ctx, s, &fft) == SM_OK && fft > most)
            most = fft;
    }
    return most;
}

sm_status smd_conv_fwd(void *ctx, const sm_conv_shape *s, const float *x, const float *w,
                       const float *b, float *y, void *ws, size_t ws_bytes)
{
    int algo;
    SMD_TRY(choose(ctx, 0, s, &algo));
    return algo == SM_CONV_ALGO_FFT ? smd_fft_fwd(ctx, s, x, w, b, y, ws, ws_bytes)
                                    : smd_direct_fwd(ctx, s, x, w, b, y, ws, ws_bytes);
}

sm_status smd_conv_bwd_data(void *ctx, const sm_conv_shape *s, const float *dy, const float *w,
                            float *dx, void *ws, size_t ws_bytes)
{
    int algo;
    SMD_TRY(choose(ctx, 1, s, &algo));
    return algo == SM_CONV_ALGO_FFT ? smd_fft_bwd_data(ctx, s, dy, w, dx, ws, ws_bytes)
                                    : smd_direct_bwd_data(ctx, s, dy, w, dx, ws, ws_bytes);
}

sm_status smd_conv_bwd_filter(void *ctx, const sm_conv_shape *s, const float *x, const float *dy,
                              float *dw, float *db, void *ws, size_t ws_bytes)
{
    int algo;
    SMD_TRY(choose(ctx, 2, s, &algo));
    return algo == SM_CONV_ALGO_FFT ? smd_fft_bwd_filter(ctx, s, x, dy, dw, db, ws, ws_bytes)
                                    : smd_direct_bwd_filter(ctx, s, x, dy, dw, db, ws, ws_bytes);
}
