/* SPDX-License-Identifier: MIT */
/* Gallery search speed (docs/gallery.md): one query identified against 1,000, 10,000 and
 * 100,000 enrolled feature vectors, for the laptop (128 features) and koch (4096) presets, on
 * the cpu backend. For each size: the median time to embed the query (sm_embed of one image), the time
 * to score it against the gallery and pick the top 5 (sm_gallery_identify_embeddings), queries
 * per second for the two together and the share of each, and the memory per enrolled example
 * (sm_gallery_bytes_per_example, and the process's resident memory growth while enrolling).
 * Random models and random feature vectors: speed does not depend on their values.
 *
 *   bench_gallery [--threads N] [--sizes 1000,10000,100000] [--archs laptop,koch]
 *
 * Registered with benchmark() (`meson test --benchmark -C build gallery`), never a test. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <siamese/siamese.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Resident memory of the process, bytes (Linux); 0 when unknown. */
static double rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long pages = 0, resident = 0;
    if (!f) return 0;
    if (fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = 0;
    fclose(f);
    return (double)resident * 4096.0;
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static float urand(void)
{
    rng_state ^= rng_state << 13, rng_state ^= rng_state >> 7, rng_state ^= rng_state << 17;
    return (float)(rng_state >> 40) / 16777216.0f;
}

static int fail(sm_status st, const char *what)
{
    fprintf(stderr, "bench_gallery: %s: %s: %s\n", what, sm_status_name(st), sm_last_error());
    return 1;
}

/* Repeats fn until `min_s` seconds have passed (at least `min_reps` times, at most MAX_REPS);
 * the median seconds per call, which a machine shared with other jobs disturbs least. */
#define MAX_REPS 4096
typedef sm_status (*bench_fn)(void *ctx);
static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static sm_status timed(bench_fn fn, void *ctx, double min_s, int min_reps, double *per_call)
{
    static double t[MAX_REPS];
    sm_status st = fn(ctx); /* warm-up */
    if (st) return st;
    int reps = 0;
    double t0 = now(), last = t0;
    while (reps < MAX_REPS && (reps < min_reps || last - t0 < min_s)) {
        if ((st = fn(ctx))) return st;
        double tn = now();
        t[reps++] = tn - last;
        last = tn;
    }
    qsort(t, (size_t)reps, sizeof *t, cmp_double);
    *per_call = t[reps / 2];
    return SM_OK;
}

typedef struct ctx {
    const sm_subnet *sub;
    const sm_gallery *g;
    const float *img;
    float *feat;
    sm_gallery_match m[5];
} ctx;

static sm_status do_embed(void *p)
{
    ctx *c = p;
    return sm_embed(c->sub, 1, c->img, c->feat);
}

static sm_status do_score(void *p)
{
    ctx *c = p;
    return sm_gallery_identify_embeddings(c->g, 1, c->feat, 5, c->m, NULL);
}

static int bench_arch(sm_backend *be, const char *arch_name, const size_t *sizes, size_t n_sizes)
{
    sm_arch *arch = NULL;
    sm_subnet *sub = NULL;
    sm_head *head = NULL;
    sm_status st = sm_arch_from_string(arch_name, &arch);
    if (st == SM_OK) st = sm_subnet_create(be, arch, 1, &sub);
    if (st == SM_OK) st = sm_head_create(be, sm_subnet_feature_dim(sub), 2, &head);
    if (st) return fail(st, arch_name);
    int c_in = 0, h = 0, w = 0;
    sm_arch_input_shape(arch, &c_in, &h, &w);
    const size_t d = sm_subnet_feature_dim(sub), px = (size_t)c_in * h * w;
    float *img = malloc(px * sizeof *img), *feat = malloc(d * sizeof *feat);
    const size_t batch = 1000;
    float *rows = malloc(batch * d * sizeof *rows);
    if (!img || !feat || !rows) return fail(SM_ERR_NOMEM, "buffers");
    for (size_t i = 0; i < px; i++) img[i] = urand();
    ctx c = {sub, NULL, img, feat, {{0}}};
    double t_embed = 0;
    if ((st = timed(do_embed, &c, 1.0, 3, &t_embed))) return fail(st, "sm_embed");
    for (size_t si = 0; si < n_sizes; si++) {
        size_t n = sizes[si];
        sm_gallery *g = NULL;
        double rss0 = rss_bytes();
        if ((st = sm_gallery_create(sub, head, &g))) return fail(st, "sm_gallery_create");
        double t0 = now();
        for (size_t off = 0; off < n && st == SM_OK; off += batch) {
            size_t m = n - off < batch ? n - off : batch;
            for (size_t i = 0; i < m * d; i++) rows[i] = urand();
            /* one label per example: the most labels the search can meet */
            for (size_t i = 0; i < m && st == SM_OK; i++) {
                char label[32];
                snprintf(label, sizeof label, "label%07zu", off + i);
                st = sm_gallery_enrol_embeddings(g, label, 1, rows + i * d);
            }
        }
        if (st) return fail(st, "sm_gallery_enrol_embeddings");
        double t_enrol = now() - t0, rss1 = rss_bytes();
        c.g = g;
        double t_score = 0;
        if ((st = timed(do_score, &c, 1.0, 3, &t_score))) return fail(st, "identify");
        double total = t_embed + t_score;
        printf("%-7s %5zu %8zu %9.1f %10.3f %10.3f %8.1f %%  %8.1f %%  %8.0f  %8.0f  %7.2f\n",
               strchr(arch_name, ':') ? "custom" : arch_name, d, n, 1.0 / total, t_embed * 1e3,
               t_score * 1e3, 100 * t_embed / total, 100 * t_score / total,
               sm_gallery_bytes_per_example(g), (rss1 - rss0) / (double)n, t_enrol);
        fflush(stdout);
        sm_gallery_destroy(g);
    }
    free(img), free(feat), free(rows);
    sm_head_destroy(head);
    sm_subnet_destroy(sub);
    sm_arch_destroy(arch);
    return 0;
}

int main(int argc, char **argv)
{
    int threads = 0;
    char sizes_text[256] = "1000,10000,100000", archs_text[256] = "laptop,koch";
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--threads")) threads = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--sizes"))
            snprintf(sizes_text, sizeof sizes_text, "%s", argv[i + 1]);
        else if (!strcmp(argv[i], "--archs"))
            snprintf(archs_text, sizeof archs_text, "%s", argv[i + 1]);
        else {
            fprintf(stderr, "usage: bench_gallery [--threads N] [--sizes A,B,..] [--archs a,b]\n");
            return 2;
        }
    }
    size_t sizes[16], n_sizes = 0;
    for (char *t = strtok(sizes_text, ","); t && n_sizes < 16; t = strtok(NULL, ","))
        sizes[n_sizes++] = (size_t)strtoull(t, NULL, 10);
    sm_backend *be = NULL;
    sm_status st = sm_backend_create(SM_BACKEND_CPU, &be);
    if (st) return fail(st, "cpu backend");
    if (threads) sm_backend_set_threads(be, threads);
    printf("gallery search on %s, %d threads: one query, top 5, one label per example\n",
           sm_backend_name(be), sm_backend_get_threads(be));
    printf("%-7s %5s %8s %9s %10s %10s %10s  %10s  %8s  %8s  %7s\n", "arch", "dim", "gallery",
           "queries/s", "embed ms", "score ms", "embed", "score", "B/ex", "RSS B/ex", "enrol s");
    int rc = 0;
    for (char *a = strtok(archs_text, ","); a && !rc; a = strtok(NULL, ","))
        rc = bench_arch(be, a, sizes, n_sizes);
    sm_backend_destroy(be);
    return rc;
}
