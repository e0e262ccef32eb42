/* SPDX-License-Identifier: MIT */
/* Benchmark (never a test): the CPU backends on the reference (Koch) network, on generated
 * 105x105 glyphs, so it runs anywhere. scripts/bench_cpu.sh runs it beside PyTorch and prints
 * the table of docs/performance.md.
 *
 *   bench_cpu [--backend cpu|cpu-dnnl|auto] [--steps N] [--batches 180,32] [--pairs 150]
 *             [--micro N] [--threads N] [--conv-algo auto|direct|fft|measured]
 *             [--precision fp32|bf16]
 *       training steps (one warm-up, then N timed; the median), sm_predict_pairs on 150 pairs
 *       (one warm-up, then N timed; the median), the library's own allocations per warm step,
 *       and the process's peak resident memory. Run one backend per process, so that the peak
 *       is that backend's. --conv-algo and --precision set SM_BACKEND_OPT_CONV_ALGO and
 *       SM_BACKEND_OPT_PRECISION right after the backend is created (absent: the backend's
 *       defaults, left untouched); a backend that refuses one exits 3, so that the script can
 *       tell "bf16 not available here" from a failure. The measurements' RESULT lines carry
 *       config=ALGO/PRECISION ("default" for an option not given), so logs tell runs apart.
 *   bench_cpu --layers [--reps N] [--threads N] [--micro N]
 *       where the time goes: each convolution op (forward, backward-data, backward-filter) of
 *       every conv layer at one micro-batch (--micro, default 16 pairs), on every CPU backend,
 *       against OpenBLAS SGEMM alone on exactly the products cpu-blas issues for it (same
 *       shapes, same images per product). The flop-weighted SGEMM rate over the ops a training
 *       step runs is "the SGEMM rate" that cpu-blas's step is measured against.
 *
 * Every figure is also printed as a "RESULT key=value ..." line for the script. */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "common/alloc.h"
#include "backend/backend.h"
#include "cpu_internal.h"
#include "network/network.h"
#include "siamese/siamese.h"

#define MAX_STEPS 100

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *t, int n)
{
    qsort(t, (size_t)n, sizeof *t, cmp);
    return n % 2 ? t[n / 2] : 0.5 * (t[n / 2 - 1] + t[n / 2]);
}

#define CHECK(call)                                                                                \
    do {                                                                                           \
        sm_status s_ = (call);                                                                     \
        if (s_ != SM_OK) {                                                                         \
            fprintf(stderr, "%s: %s (%s)\n", #call, sm_status_name(s_), sm_last_error());          \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

typedef struct opts {
    const char *backend;
    const char *conv_algo, *precision; /* NULL: not given, the backend's default */
    int steps, pairs, micro, threads, reps;
    const char *batches;
    int layers;
} opts;

static sm_backend_kind kind_of(const char *name)
{
    if (!strcmp(name, "auto")) return SM_BACKEND_AUTO;
    if (!strcmp(name, "cpu") || !strcmp(name, "cpu-blas")) return SM_BACKEND_CPU;
    if (!strcmp(name, "cpu-dnnl")) return SM_BACKEND_CPU_DNNL;
    fprintf(stderr, "bench_cpu: --backend is auto, cpu or cpu-dnnl, not '%s'\n", name);
    exit(2);
}

/* The option values' names, as bench_cpu.sh passes them; exits 2 on any other. */
static int64_t option_value(const char *opt, const char *v, const char *const *names, int n)
{
    for (int i = 0; i < n; i++)
        if (!strcmp(v, names[i])) return i;
    fprintf(stderr, "bench_cpu: %s does not take '%s'\n", opt, v);
    exit(2);
}

static const char *const algo_names[] = {"auto", "direct", "fft", "measured"}; /* sm_conv_algo */
static const char *const precision_names[] = {"fp32", "bf16"}; /* sm_precision order */

/* --conv-algo and --precision, right after the backend is created. A refusal exits 3 (not 1)
 * so that bench_cpu.sh can report the option as unavailable on this CPU or backend. */
static void set_options(sm_backend *be, const opts *o)
{
    struct {
        const char *opt, *value;
        sm_backend_option key;
        const char *const *names;
        int n;
    } set[] = {
        {"--conv-algo", o->conv_algo, SM_BACKEND_OPT_CONV_ALGO, algo_names, 4},
        {"--precision", o->precision, SM_BACKEND_OPT_PRECISION, precision_names, 2},
    };
    for (size_t i = 0; i < sizeof set / sizeof *set; i++) {
        if (!set[i].value) continue;
        int64_t v = option_value(set[i].opt, set[i].value, set[i].names, set[i].n);
        sm_status st = sm_backend_set_option(be, set[i].key, v);
        if (st != SM_OK) {
            printf("%s %s refused by the %s backend: %s (%s)\n", set[i].opt, set[i].value,
                   sm_backend_name(be), sm_status_name(st), sm_last_error());
            printf("RESULT what=refused option=%s value=%s status=%s\n", set[i].opt + 2,
                   set[i].value, sm_status_name(st));
            exit(3);
        }
    }
}

/* ---- floating-point work of one image through the network (conv and fc products) ---- */

typedef struct net_flops {
    double fwd, bwd_data, bwd_filter;
} net_flops;

static net_flops flops_per_image(const sm_arch *a)
{
    net_flops f = {0, 0, 0};
    for (size_t i = 0; i < a->n_layers; i++) {
        const sm__layer *l = &a->layers[i];
        double m = 0;
        if (l->kind == SM_LAYER_CONV)
            m = 2.0 * l->out_c * l->out_h * l->out_w * (double)l->in_c * l->b * l->b;
        else if (l->kind == SM_LAYER_FC) m = 2.0 * l->out_c * (double)l->in_c;
        f.fwd += m;
        f.bwd_filter += m;
        if (i > 0) f.bwd_data += m; /* nobody needs the input images' gradient */
    }
    return f;
}

/* ---- training steps, prediction, peak memory ---- */

static void run_train(const opts *o)
{
    sm_backend *be;
    sm_arch *arch;
    sm_subnet *sub;
    sm_head *head;
    sm_adam *adam;
    sm_trainer *tr;
    sm_dataset *ds;
    CHECK(sm_backend_create(kind_of(o->backend), &be));
    set_options(be, o);
    if (o->threads > 0) CHECK(sm_backend_set_threads(be, o->threads));
    CHECK(sm_arch_create_koch(&arch));
    CHECK(sm_subnet_create(be, arch, 1, &sub));
    CHECK(sm_head_create(be, sm_subnet_feature_dim(sub), 2, &head));
    CHECK(sm_adam_create(sub, head, &adam));
    CHECK(sm_dataset_create_synthetic(50, 20, 105, 105, 3, &ds));
    CHECK(sm_trainer_create(sub, head, adam, ds, 4, &tr));
    const char *name = sm_backend_name(be);
    char config[64];
    snprintf(config, sizeof config, "%s/%s", o->conv_algo ? o->conv_algo : "default",
             o->precision ? o->precision : "default");
    net_flops f = flops_per_image(arch);
    int64_t algo = -1, prec = -1; /* what the backend reads back (it may accept and ignore) */
    CHECK(sm_backend_get_option(be, SM_BACKEND_OPT_CONV_ALGO, &algo));
    CHECK(sm_backend_get_option(be, SM_BACKEND_OPT_PRECISION, &prec));
    printf("backend %s, %d threads, koch architecture (%zu parameters), %.3f GFLOP per pair "
           "(forward + backward); config %s, reads back conv algo %s, precision %s\n",
           name, sm_backend_get_threads(be), sm_subnet_num_params(sub),
           2 * (f.fwd + f.bwd_data + f.bwd_filter) * 1e-9, config,
           algo >= 0 && algo < 4 ? algo_names[algo] : "?",
           prec >= 0 && prec < 2 ? precision_names[prec] : "?");
    if (*sm_backend_fallback_reason(be)) printf("auto: %s\n", sm_backend_fallback_reason(be));
    char text[512];
    CHECK(sm_arch_to_string(arch, text, sizeof text, NULL));
    printf("RESULT what=arch text=%s\n", text);

    char list[64];
    snprintf(list, sizeof list, "%s", o->batches);
    for (char *tok = strtok(list, ","); tok; tok = strtok(NULL, ",")) {
        int b = atoi(tok);
        CHECK(sm_trainer_set_param(tr, SM_TRAINER_BATCH_SIZE, b));
        if (o->micro > 0) CHECK(sm_trainer_set_param(tr, SM_TRAINER_MICRO_BATCH, o->micro));
        int64_t micro;
        CHECK(sm_trainer_get_param(tr, SM_TRAINER_MICRO_BATCH, &micro));
        double t[MAX_STEPS];
        float loss = 0;
        CHECK(sm_train_step(tr, &loss)); /* warm-up: first touch of every buffer, plans */
        long allocs = sm__alloc_count();
        for (int i = 0; i < o->steps; i++) {
            double t0 = now();
            CHECK(sm_train_step(tr, &loss));
            t[i] = now() - t0;
        }
        allocs = sm__alloc_count() - allocs;
        double med = median(t, o->steps);
        double gflop = 2.0 * b * (f.fwd + f.bwd_data + f.bwd_filter) * 1e-9;
        printf("train step, batch %3d (micro-batch %lld): median %8.1f ms over %d steps "
               "(%.1f GFLOP/s), loss %.4f, %ld library allocations in those steps\n",
               b, (long long)micro, med * 1e3, o->steps, gflop / med, (double)loss, allocs);
        printf("RESULT backend=%s config=%s what=step batch=%d ms=%.3f gflop=%.3f allocs=%ld\n",
               name, config, b, med * 1e3, gflop, allocs);
    }

    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("peak resident memory after training: %.0f MiB\n", ru.ru_maxrss / 1024.0);
    printf("RESULT backend=%s config=%s what=train_peak_rss mib=%.1f\n", name, config,
           ru.ru_maxrss / 1024.0);

    const int P = o->pairs;
    size_t in = 105 * 105;
    float *a = malloc(P * in * sizeof *a), *bb = malloc(P * in * sizeof *bb);
    float *scores = malloc(P * sizeof *scores), *labels = malloc(P * sizeof *labels);
    if (!a || !bb || !scores || !labels) exit(1);
    sm_sampler *smp;
    CHECK(sm_sampler_create(ds, 9, &smp));
    CHECK(sm_sampler_next(smp, P, a, bb, labels, NULL, NULL));
    CHECK(sm_predict_pairs(sub, head, P, a, bb, scores)); /* warm-up */
    double t[MAX_STEPS];
    getrusage(RUSAGE_SELF, &ru);
    long faults = ru.ru_minflt;
    for (int i = 0; i < o->steps; i++) {
        double t0 = now();
        CHECK(sm_predict_pairs(sub, head, P, a, bb, scores));
        t[i] = now() - t0;
    }
    getrusage(RUSAGE_SELF, &ru);
    double med = median(t, o->steps);
    printf("predict %d pairs: median %.1f ms (%.1f pairs/s), %ld page faults per call\n", P,
           med * 1e3, P / med, (ru.ru_minflt - faults) / o->steps);
    printf("RESULT backend=%s config=%s what=predict pairs=%d ms=%.3f\n", name, config, P,
           med * 1e3);

    getrusage(RUSAGE_SELF, &ru);
    printf("peak resident memory, prediction included: %.0f MiB\n", ru.ru_maxrss / 1024.0);
    printf("RESULT backend=%s config=%s what=peak_rss mib=%.1f\n", name, config,
           ru.ru_maxrss / 1024.0);
    free(a), free(bb), free(scores), free(labels);
    sm_sampler_destroy(smp);
    sm_trainer_destroy(tr);
    sm_dataset_destroy(ds);
    sm_adam_destroy(adam);
    sm_head_destroy(head);
    sm_subnet_destroy(sub);
    sm_arch_destroy(arch);
    sm_backend_destroy(be);
}

/* ---- per-layer breakdown ---- */

enum { OPS = 3 };
/* the breakdown runs one micro-batch: --micro pairs, else the CPU backends' default (16) */
enum { DEFAULT_CPU_MICRO = 16 };
static const char *const op_names[OPS] = {"forward", "backward-data", "backward-filter"};

static float *filled(size_t n, unsigned seed)
{
    float *p = sm__malloc_aligned(n * sizeof *p);
    if (!p) exit(1);
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1103515245u + 12345u;
        p[i] = (float)((seed >> 8) & 0xffff) / 65536.0f - 0.5f;
    }
    return p;
}

static double op_flops(const sm_conv_shape *s)
{
    return 2.0 * s->n * s->k * s->oh * s->ow * (double)s->c * s->kh * s->kw;
}

/* OpenBLAS alone on the products conv.c issues for op `op` of shape s (g images each). */
static void sgemm_products(const sm_conv_shape *s, int op, const float *w, const float *col,
                           float *big, float *out)
{
    const int ckk = s->c * s->kh * s->kw, ohw = s->oh * s->ow;
    const int G = sm__cpu_conv_group(s);
    for (int n0 = 0; n0 < s->n; n0 += G) {
        int g = s->n - n0 < G ? s->n - n0 : G, cols = g * ohw;
        if (op == 0)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, s->k, cols, ckk, 1.0f, w, ckk,
                        col, cols, 0.0f, out, cols);
        else if (op == 1)
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, ckk, cols, s->k, 1.0f, w, ckk, out,
                        cols, 0.0f, big, cols);
        else
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, s->k, ckk, cols, 1.0f, out, cols,
                        col, cols, 1.0f, big, ckk);
    }
}

static double time_sgemm(const sm_conv_shape *s, int op, int reps)
{
    const size_t ckk = (size_t)s->c * s->kh * s->kw, ohw = (size_t)s->oh * s->ow;
    const size_t G = (size_t)sm__cpu_conv_group(s);
    float *w = filled((size_t)s->k * ckk, 1), *col = filled(G * ckk * ohw, 2);
    float *out = filled(G * s->k * ohw, 3), *big = filled(G * ckk * ohw, 4);
    double t[MAX_STEPS];
    sgemm_products(s, op, w, col, big, out);
    for (int r = 0; r < reps; r++) {
        double t0 = now();
        sgemm_products(s, op, w, col, big, out);
        t[r] = now() - t0;
    }
    sm__free_aligned(w), sm__free_aligned(col), sm__free_aligned(out), sm__free_aligned(big);
    return median(t, reps);
}

static double time_op(sm_backend *be, const sm_conv_shape *s, int op, int reps)
{
    const sm_backend_ops *ops = be->ops;
    const size_t nx = (size_t)s->n * s->c * s->h * s->w, nw = (size_t)s->k * s->c * s->kh * s->kw;
    const size_t ny = (size_t)s->n * s->k * s->oh * s->ow;
    size_t wsb = ops->conv_workspace(be->ctx, s);
    float *x, *w, *b, *y, *dy, *dx, *dw, *db;
    void *ws;
    CHECK(sm__be_alloc_floats(be, nx, &x));
    CHECK(sm__be_alloc_floats(be, nx, &dx));
    CHECK(sm__be_alloc_floats(be, nw, &w));
    CHECK(sm__be_alloc_floats(be, nw, &dw));
    CHECK(sm__be_alloc_floats(be, (size_t)s->k, &b));
    CHECK(sm__be_alloc_floats(be, (size_t)s->k, &db));
    CHECK(sm__be_alloc_floats(be, ny, &y));
    CHECK(sm__be_alloc_floats(be, ny, &dy));
    CHECK(ops->alloc(be->ctx, wsb ? wsb : 64, &ws));
    size_t most = nx > ny ? nx : ny;
    float *h = filled(most > nw ? most : nw, 5);
    CHECK(ops->upload(be->ctx, x, h, nx * sizeof *h));
    CHECK(ops->upload(be->ctx, dy, h, ny * sizeof *h));
    CHECK(ops->upload(be->ctx, w, h, nw * sizeof *h));
    CHECK(ops->upload(be->ctx, b, h, (size_t)s->k * sizeof *h));
    CHECK(ops->zero(be->ctx, dw, nw * sizeof(float)));
    CHECK(ops->zero(be->ctx, db, (size_t)s->k * sizeof(float)));
    double t[MAX_STEPS];
    for (int r = -1; r < reps; r++) {
        double t0 = now();
        if (op == 0) CHECK(ops->conv_fwd(be->ctx, s, x, w, b, y, ws, wsb));
        if (op == 1) CHECK(ops->conv_bwd_data(be->ctx, s, dy, w, dx, ws, wsb));
        if (op == 2) CHECK(ops->conv_bwd_filter(be->ctx, s, x, dy, dw, db, ws, wsb));
        if (r >= 0) t[r] = now() - t0;
    }
    float *bufs[] = {x, dx, w, dw, b, db, y, dy};
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++) sm__be_free(be, bufs[i]);
    sm__be_free(be, ws);
    sm__free_aligned(h);
    return median(t, reps);
}

static void run_layers(const opts *o)
{
    sm_backend *be[2] = {NULL, NULL};
    const char *names[2] = {"cpu-blas", "cpu-dnnl"};
    CHECK(sm_backend_create(SM_BACKEND_CPU, &be[0]));
    if (sm_backend_create(SM_BACKEND_CPU_DNNL, &be[1]) != SM_OK)
        printf("cpu-dnnl not available here (%s): its column is left out\n", sm_last_error());
    for (int i = 0; i < 2; i++)
        if (be[i] && o->threads > 0) CHECK(sm_backend_set_threads(be[i], o->threads));
    sm_arch *arch;
    CHECK(sm_arch_create_koch(&arch));
    const int n_images = 2 * (o->micro > 0 ? o->micro : DEFAULT_CPU_MICRO);
    printf("per-layer breakdown, %d images (one micro-batch of %d pairs), %d threads, median of "
           "%d\n",
           n_images, n_images / 2, sm_backend_get_threads(be[0]), o->reps);
    printf("%-6s %-16s %7s | %-22s | %-30s | %-30s\n", "layer", "op", "GFLOP",
           "OpenBLAS SGEMM alone", "cpu-blas (share of SGEMM rate)", "cpu-dnnl (vs SGEMM rate)");
    double sum_flop = 0, sum_gemm = 0, sum_op[2] = {0, 0};
    int conv = 0;
    for (size_t i = 0; i < arch->n_layers; i++) {
        const sm__layer *l = &arch->layers[i];
        if (l->kind != SM_LAYER_CONV) continue;
        conv++;
        sm_conv_shape s = {n_images, l->in_c, l->in_h,  l->in_w,  l->out_c,
                           l->b,     l->b,    l->out_h, l->out_w, 0};
        for (int op = 0; op < OPS; op++) {
            if (op == 1 && i == 0) continue; /* training never asks for it */
            double fl = op_flops(&s) * 1e-9;
            double tg = time_sgemm(&s, op, o->reps);
            double rate_g = fl / tg;
            char cell[2][64] = {"-", "-"};
            double t_op[2] = {0, 0};
            for (int k = 0; k < 2; k++) {
                if (!be[k]) continue;
                t_op[k] = time_op(be[k], &s, op, o->reps);
                snprintf(cell[k], sizeof cell[k], "%8.1f ms %6.1f GF/s %4.0f %%", t_op[k] * 1e3,
                         fl / t_op[k], 100.0 * (fl / t_op[k]) / rate_g);
                sum_op[k] += t_op[k];
                printf("RESULT what=layer layer=conv%d op=%s backend=%s gflop=%.4f ms=%.3f\n", conv,
                       op_names[op], names[k], fl, t_op[k] * 1e3);
            }
            printf("conv%-2d %-16s %7.2f | %8.1f ms %6.1f GF/s | %-30s | %-30s\n", conv,
                   op_names[op], fl, tg * 1e3, rate_g, cell[0], cell[1]);
            printf("RESULT what=layer layer=conv%d op=%s backend=sgemm gflop=%.4f ms=%.3f\n", conv,
                   op_names[op], fl, tg * 1e3);
            sum_flop += fl;
            sum_gemm += tg;
        }
    }
    printf("%-23s %7.2f | %8.1f ms %6.1f GF/s | %8.1f ms %6.1f GF/s       | ", "all conv ops",
           sum_flop, sum_gemm * 1e3, sum_flop / sum_gemm, sum_op[0] * 1e3, sum_flop / sum_op[0]);
    if (be[1]) printf("%8.1f ms %6.1f GF/s\n", sum_op[1] * 1e3, sum_flop / sum_op[1]);
    else printf("-\n");
    printf("RESULT what=sgemm_rate gflops=%.2f\n", sum_flop / sum_gemm);
    for (int k = 0; k < 2; k++)
        if (be[k])
            printf("RESULT what=conv_rate backend=%s gflops=%.2f\n", names[k],
                   sum_flop / sum_op[k]);
    sm_arch_destroy(arch);
    sm_backend_destroy(be[0]);
    sm_backend_destroy(be[1]);
}

int main(int argc, char **argv)
{
    opts o = {"auto", NULL, NULL, 3, 150, 0, 0, 3, "180,32", 0};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--layers")) {
            o.layers = 1;
            continue;
        }
        if (!v) {
            fprintf(stderr, "bench_cpu: %s needs a value\n", a);
            return 2;
        }
        i++;
        if (!strcmp(a, "--backend")) o.backend = v;
        else if (!strcmp(a, "--steps")) o.steps = atoi(v);
        else if (!strcmp(a, "--batches")) o.batches = v;
        else if (!strcmp(a, "--pairs")) o.pairs = atoi(v);
        else if (!strcmp(a, "--micro")) o.micro = atoi(v);
        else if (!strcmp(a, "--threads")) o.threads = atoi(v);
        else if (!strcmp(a, "--reps")) o.reps = atoi(v);
        else if (!strcmp(a, "--conv-algo")) o.conv_algo = v;
        else if (!strcmp(a, "--precision")) o.precision = v;
        else {
            fprintf(stderr,
                    "bench_cpu: unknown option %s (see the comment at the top of "
                    "tests/bench_cpu.c)\n",
                    a);
            return 2;
        }
    }
    if (o.steps < 1 || o.steps > MAX_STEPS || o.reps < 1 || o.reps > MAX_STEPS || o.pairs < 1) {
        fprintf(stderr, "bench_cpu: --steps and --reps are 1..%d, --pairs at least 1\n", MAX_STEPS);
        return 2;
    }
    if (o.layers) run_layers(&o);
    else run_train(&o);
    return 0;
}
