/* SPDX-License-Identifier: MIT */
/* Gallery search speed (docs/gallery.md, "Speed and memory"): batches of Q queries identified
 * (top 5, sm_gallery_identify_embeddings) against 1,000, 10,000 and 100,000 enrolled feature
 * vectors, for the laptop (128 features) and koch (4096) presets, in each storage type, on the
 * cpu backend. For each: queries per second, the gallery's bytes scored per second (Q passes
 * over the gallery per call: above the memory bandwidth once a batch reuses what it reads), and for
 * Q = 1 the ratio of the time per query to the time to read the gallery's bytes at the memory
 * bandwidth measured in this process (a streaming read of a large buffer on the same number of
 * threads): 1.0 is the ceiling of a search that reads every row once. Also the time to embed a
 * query (sm_embed: one image, and per image in a batch of 64), resident memory per example, and
 * with --files the time to save the gallery and to load it (mapped, rows checked; rows not
 * checked; read and copied). Random models and random feature vectors: speed does not depend on
 * their values. One label per example: the most labels a search can meet.
 *
 *   bench_gallery [--threads N] [--sizes 1000,10000,100000] [--archs laptop,koch]
 *                 [--batches 1,64,1024] [--storage f32,bf16,f16,u8] [--files DIR]
 *   bench_gallery --model MODEL --omniglot images_evaluation.zip [--shots K] [--threads N]
 *
 * The second form measures what the reduced storage types change on a trained model's real
 * embeddings: K images of each Omniglot class enrolled (the first K in the zip's order), every
 * other image identified (top 5) in each storage type: accuracy (top 1 and top 5 hold the true
 * class), and agreement with f32 (the same best label; the same five labels in the same order).
 *
 * The goals printed (issue 24): batched identification against 100,000 koch examples at
 * >= 100 queries/s, and one query at a time within 1.5x of reading the gallery once.
 * Registered with benchmark() (`meson test --benchmark -C build gallery`), never a test. */
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <siamese/siamese.h>

#include "cpu_internal.h" /* the instruction set the search runs on */

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
    return (double)resident * (double)sysconf(_SC_PAGESIZE);
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

/* ------------------------------------------------------------------ memory bandwidth */

typedef struct bw_job {
    const uint64_t *p;
    size_t n;
    uint64_t sum;
} bw_job;

static void *bw_read(void *arg)
{
    bw_job *j = arg;
    uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    for (size_t i = 0; i + 4 <= j->n; i += 4)
        s0 += j->p[i], s1 += j->p[i + 1], s2 += j->p[i + 2], s3 += j->p[i + 3];
    j->sum = s0 + s1 + s2 + s3;
    return NULL;
}

/* Bytes per second of a streaming read of a 1 GiB buffer split over `threads` threads: the
 * best of 5 passes (after one that faults the pages in). */
static double bandwidth(int threads)
{
    const size_t bytes = (size_t)1 << 30, words = bytes / 8;
    uint64_t *buf = malloc(bytes);
    if (!buf) return 0;
    for (size_t i = 0; i < words; i++) buf[i] = i;
    if (threads < 1) threads = 1;
    if (threads > 64) threads = 64;
    pthread_t tid[64];
    bw_job jobs[64];
    double best = 0;
    uint64_t keep = 0;
    for (int pass = 0; pass < 6; pass++) {
        double t0 = now();
        for (int t = 0; t < threads; t++) {
            size_t a = words * (size_t)t / (size_t)threads,
                   b = words * (size_t)(t + 1) / (size_t)threads;
            jobs[t] = (bw_job){buf + a, b - a, 0};
            if (t) pthread_create(&tid[t], NULL, bw_read, &jobs[t]);
        }
        bw_read(&jobs[0]);
        for (int t = 1; t < threads; t++) pthread_join(tid[t], NULL);
        double dt = now() - t0;
        for (int t = 0; t < threads; t++) keep += jobs[t].sum;
        if (pass && (double)bytes / dt > best) best = (double)bytes / dt;
    }
    free(buf);
    return keep == 42 ? best + 1 : best; /* the sums are used */
}

/* ------------------------------------------------------------------ timing */

/* Repeats fn until `min_s` seconds have passed (at least 3 times, at most MAX_REPS); the
 * median seconds per call, which a machine shared with other jobs disturbs least. A first call
 * longer than `min_s` is the answer itself (a batch of 1,024 against 100,000 takes seconds). */
#define MAX_REPS 4096
typedef sm_status (*bench_fn)(void *ctx);
static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static sm_status timed(bench_fn fn, void *ctx, double min_s, double *per_call)
{
    static double t[MAX_REPS];
    double t0 = now();
    sm_status st = fn(ctx); /* warm-up */
    if (st) return st;
    if (now() - t0 > min_s) {
        *per_call = now() - t0;
        return SM_OK;
    }
    int reps = 0;
    double last = now();
    t0 = last;
    while (reps < MAX_REPS && (reps < 3 || last - t0 < min_s)) {
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
    const float *img, *queries;
    float *feat;
    size_t nq, n_img;
    sm_gallery_match *m;
} ctx;

static sm_status do_embed(void *p)
{
    ctx *c = p;
    return sm_embed(c->sub, c->n_img, c->img, c->feat);
}

static sm_status do_identify(void *p)
{
    ctx *c = p;
    return sm_gallery_identify_embeddings(c->g, c->nq, c->queries, 5, c->m, NULL);
}

/* ------------------------------------------------------------------ the runs */

typedef struct config {
    size_t sizes[16], n_sizes, batches[8], n_batches;
    int storages[4], n_storages;
    const char *files; /* a folder for --files, or NULL */
    double bw;         /* bytes per second */
} config;

static const char *storage_names[] = {"f32", "bf16", "f16", "u8"};

static double row_bytes(sm_storage_type t, size_t d)
{
    return t == SM_STORAGE_F32 ? 4.0 * d : t == SM_STORAGE_U8 ? d + 8.0 : 2.0 * d;
}

static int bench_files(const sm_subnet *sub, const sm_head *head, const sm_gallery *g,
                       const char *dir, double *save_s, double load_s[3])
{
    char path[4096];
    snprintf(path, sizeof path, "%s/bench.gallery", dir);
    double t0 = now();
    sm_status st = sm_gallery_save(g, path);
    if (st) return fail(st, "sm_gallery_save");
    *save_s = now() - t0;
    for (int k = 0; k < 3; k++) {
        sm_gallery_load_options o = SM_GALLERY_LOAD_OPTIONS_INIT;
        o.skip_row_check = k == 1;
        o.no_map = k == 2;
        sm_gallery *back = NULL;
        t0 = now();
        if ((st = sm_gallery_load_with(sub, head, path, &o, &back)))
            return fail(st, "sm_gallery_load_with");
        load_s[k] = now() - t0;
        sm_gallery_destroy(back);
    }
    remove(path);
    return 0;
}

static int bench_arch(sm_backend *be, const char *arch_name, const config *cf)
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
    const size_t d = sm_subnet_feature_dim(sub), px = (size_t)c_in * h * w, batch = 1000;
    size_t max_q = 1;
    for (size_t i = 0; i < cf->n_batches; i++)
        if (cf->batches[i] > max_q) max_q = cf->batches[i];
    float *img = malloc(64 * px * sizeof *img), *feat = malloc(64 * d * sizeof *feat);
    float *rows = malloc(batch * d * sizeof *rows), *queries = malloc(max_q * d * sizeof *queries);
    sm_gallery_match *m = malloc(max_q * 5 * sizeof *m);
    if (!img || !feat || !rows || !queries || !m) return fail(SM_ERR_NOMEM, "buffers");
    for (size_t i = 0; i < 64 * px; i++) img[i] = urand();
    for (size_t i = 0; i < max_q * d; i++) queries[i] = urand();
    ctx c = {sub, NULL, img, queries, feat, 1, 1, m};
    double t_embed1 = 0, t_embed64 = 0;
    if ((st = timed(do_embed, &c, 1.0, &t_embed1))) return fail(st, "sm_embed");
    c.n_img = 64;
    if ((st = timed(do_embed, &c, 1.0, &t_embed64))) return fail(st, "sm_embed");
    const char *name = strchr(arch_name, ':') ? "custom" : arch_name;
    printf("%s (%zu features): embedding a query %.2f ms alone, %.2f ms per image in a batch of "
           "64\n",
           name, d, t_embed1 * 1e3, t_embed64 * 1e3 / 64);
    for (size_t si = 0; si < cf->n_sizes; si++)
        for (int ti = 0; ti < cf->n_storages; ti++) {
            const size_t n = cf->sizes[si];
            const sm_storage_type t = (sm_storage_type)cf->storages[ti];
            sm_gallery_options o = SM_GALLERY_OPTIONS_INIT;
            o.storage = t;
            sm_gallery *g = NULL;
            double rss0 = rss_bytes();
            if ((st = sm_gallery_create_with(sub, head, &o, &g)))
                return fail(st, "sm_gallery_create_with");
            rng_state = 0x243f6a8885a308d3ull; /* the same rows for every storage type */
            double t0 = now();
            for (size_t off = 0; off < n && st == SM_OK; off += batch) {
                size_t k = n - off < batch ? n - off : batch;
                for (size_t i = 0; i < k * d; i++) rows[i] = urand();
                for (size_t i = 0; i < k && st == SM_OK; i++) {
                    char label[32];
                    snprintf(label, sizeof label, "label%07zu", off + i);
                    st = sm_gallery_enrol_embeddings(g, label, 1, rows + i * d);
                }
            }
            if (st) return fail(st, "sm_gallery_enrol_embeddings");
            double t_enrol = now() - t0, rss1 = rss_bytes();
            const double gbytes = row_bytes(t, d) * (double)n, t_read = gbytes / cf->bw;
            c.g = g;
            for (size_t bi = 0; bi < cf->n_batches; bi++) {
                c.nq = cf->batches[bi];
                double t_call = 0;
                if ((st = timed(do_identify, &c, 1.0, &t_call))) return fail(st, "identify");
                const double per_q = t_call / (double)c.nq;
                char ratio[32] = "";
                if (c.nq == 1) snprintf(ratio, sizeof ratio, "%8.2f", per_q / t_read);
                printf("%-7s %5zu %8zu %-5s %5zu %10.1f %10.3f %9.2f %8s %8.0f %8.0f %7.2f\n", name,
                       d, n, storage_names[t], c.nq, 1.0 / per_q, per_q * 1e3,
                       gbytes * (double)c.nq / t_call / 1e9, ratio, sm_gallery_bytes_per_example(g),
                       (rss1 - rss0) / (double)n, t_enrol);
                fflush(stdout);
            }
            if (cf->files) {
                double save_s = 0, load_s[3] = {0};
                if (bench_files(sub, head, g, cf->files, &save_s, load_s)) return 1;
                printf("  file: save %.3f s; load mapped %.3f s (rows checked), %.4f s (rows "
                       "not checked), read and copied %.3f s\n",
                       save_s, load_s[0], load_s[1], load_s[2]);
            }
            sm_gallery_destroy(g);
        }
    free(img), free(feat), free(rows), free(queries), free(m);
    sm_head_destroy(head);
    sm_subnet_destroy(sub);
    sm_arch_destroy(arch);
    return 0;
}

/* ------------------------------------------------------------------ Omniglot agreement */

static int bench_omniglot(sm_backend *be, const char *model_path, const char *zip, size_t shots)
{
    sm_subnet *sub = NULL;
    sm_head *head = NULL;
    sm_dataset *ds = NULL;
    sm_status st = sm_model_load(be, model_path, &sub, &head);
    if (st) return fail(st, model_path);
    int h = 0, w = 0, c_in = 0;
    sm_arch *arch = NULL;
    if ((st = sm_subnet_get_arch(sub, &arch))) return fail(st, "arch");
    sm_arch_input_shape(arch, &c_in, &h, &w);
    sm_arch_destroy(arch);
    sm_dataset_options o = SM_DATASET_OPTIONS_INIT;
    o.resize = 1;
    if ((st = sm_dataset_open_with(zip, h, w, NULL, 0, &o, &ds))) return fail(st, zip);
    const size_t n_img = sm_dataset_num_images(ds), n_cls = sm_dataset_num_classes(ds);
    const size_t d = sm_subnet_feature_dim(sub), px = (size_t)h * w;
    float *feat = malloc(n_img * d * sizeof *feat), *img = malloc(64 * px * sizeof *img);
    size_t *seen = calloc(n_cls, sizeof *seen), *truth = malloc(n_img * sizeof *truth);
    uint8_t *is_query = malloc(n_img);
    if (!feat || !img || !seen || !truth || !is_query) return fail(SM_ERR_NOMEM, "buffers");
    double t0 = now();
    for (size_t off = 0; off < n_img; off += 64) {
        size_t m = n_img - off < 64 ? n_img - off : 64;
        for (size_t i = 0; i < m; i++)
            if ((st = sm_dataset_get_image(ds, off + i, img + i * px))) return fail(st, "image");
        if ((st = sm_embed(sub, m, img, feat + off * d))) return fail(st, "sm_embed");
    }
    size_t n_q = 0;
    for (size_t i = 0; i < n_img; i++) {
        size_t c = sm_dataset_image_class(ds, i);
        is_query[i] = seen[c]++ >= shots;
        n_q += is_query[i];
    }
    float *q = malloc((n_q ? n_q : 1) * d * sizeof *q);
    for (size_t i = 0, k = 0; i < n_img; i++)
        if (is_query[i]) {
            memcpy(q + k * d, feat + i * d, d * sizeof *q);
            truth[k++] = sm_dataset_image_class(ds, i);
        }
    printf("%s on %s: %zu classes, %zu-shot, %zu queries (%zu features; embedded in %.1f s)\n",
           model_path, zip, n_cls, shots, n_q, d, now() - t0);
    printf("%-5s %9s %9s %14s %14s %12s %10s\n", "store", "top-1 %", "top-5 %", "top-1 = f32 %",
           "top-5 = f32 %", "max |ds|", "search s");
    sm_gallery_match *ref = malloc(n_q * 5 * sizeof *ref), *m = malloc(n_q * 5 * sizeof *m);
    if (!q || !ref || !m) return fail(SM_ERR_NOMEM, "buffers");
    for (int t = SM_STORAGE_F32; t <= SM_STORAGE_U8; t++) {
        sm_gallery_options go = SM_GALLERY_OPTIONS_INIT;
        go.storage = (sm_storage_type)t;
        sm_gallery *g = NULL;
        if ((st = sm_gallery_create_with(sub, head, &go, &g))) return fail(st, "create");
        memset(seen, 0, n_cls * sizeof *seen);
        for (size_t i = 0; i < n_img; i++) {
            size_t c = sm_dataset_image_class(ds, i);
            if (is_query[i]) continue;
            if ((st =
                     sm_gallery_enrol_embeddings(g, sm_dataset_class_name(ds, c), 1, feat + i * d)))
                return fail(st, "enrol");
        }
        t0 = now();
        if ((st = sm_gallery_identify_embeddings(g, n_q, q, 5, m, NULL)))
            return fail(st, "identify");
        double t_search = now() - t0;
        size_t top1 = 0, top5 = 0, same1 = 0, same5 = 0;
        double maxd = 0;
        for (size_t k = 0; k < n_q; k++) {
            const sm_gallery_match *r = m + k * 5, *f = (t ? ref : m) + k * 5;
            const char *want = sm_dataset_class_name(ds, truth[k]);
            top1 += !strcmp(sm_gallery_label_name(g, r[0].label), want);
            int hit = 0, same = 1;
            for (int j = 0; j < 5; j++) {
                hit |= !strcmp(sm_gallery_label_name(g, r[j].label), want);
                same &= r[j].label == f[j].label;
            }
            top5 += hit;
            same5 += same;
            same1 += r[0].label == f[0].label;
            double dd = fabs(r[0].score - f[0].score);
            if (dd > maxd) maxd = dd;
        }
        printf("%-5s %9.2f %9.2f %14.2f %14.2f %12.2e %10.2f\n", storage_names[t],
               100.0 * top1 / n_q, 100.0 * top5 / n_q, 100.0 * same1 / n_q, 100.0 * same5 / n_q,
               maxd, t_search);
        if (t == SM_STORAGE_F32) memcpy(ref, m, n_q * 5 * sizeof *m);
        sm_gallery_destroy(g);
    }
    free(feat), free(img), free(seen), free(truth), free(is_query), free(q), free(ref), free(m);
    sm_dataset_destroy(ds);
    sm_head_destroy(head);
    sm_subnet_destroy(sub);
    return 0;
}

static size_t parse_list(char *text, size_t *out, size_t cap)
{
    size_t n = 0;
    for (char *t = strtok(text, ","); t && n < cap; t = strtok(NULL, ","))
        out[n++] = (size_t)strtoull(t, NULL, 10);
    return n;
}

int main(int argc, char **argv)
{
    int threads = 0;
    char sizes_text[256] = "1000,10000,100000", archs_text[256] = "laptop,koch";
    char batches_text[256] = "1,64,1024", storage_text[256] = "f32,bf16,f16,u8";
    config cf = {0};
    const char *model = NULL, *omniglot = NULL;
    size_t shots = 1;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--threads")) threads = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--model")) model = argv[i + 1];
        else if (!strcmp(argv[i], "--omniglot")) omniglot = argv[i + 1];
        else if (!strcmp(argv[i], "--shots")) shots = (size_t)strtoull(argv[i + 1], NULL, 10);
        else if (!strcmp(argv[i], "--sizes"))
            snprintf(sizes_text, sizeof sizes_text, "%s", argv[i + 1]);
        else if (!strcmp(argv[i], "--archs"))
            snprintf(archs_text, sizeof archs_text, "%s", argv[i + 1]);
        else if (!strcmp(argv[i], "--batches"))
            snprintf(batches_text, sizeof batches_text, "%s", argv[i + 1]);
        else if (!strcmp(argv[i], "--storage"))
            snprintf(storage_text, sizeof storage_text, "%s", argv[i + 1]);
        else if (!strcmp(argv[i], "--files")) cf.files = argv[i + 1];
        else {
            fprintf(stderr, "usage: bench_gallery [--threads N] [--sizes A,B,..] [--archs a,b] "
                            "[--batches 1,64,..] [--storage f32,bf16,f16,u8] [--files DIR]\n"
                            "       bench_gallery --model MODEL --omniglot ZIP [--shots K] "
                            "[--threads N]\n");
            return 2;
        }
    }
    if (argc % 2 == 0) {
        fprintf(stderr, "bench_gallery: '%s' takes a value\n", argv[argc - 1]);
        return 2;
    }
    cf.n_sizes = parse_list(sizes_text, cf.sizes, 16);
    cf.n_batches = parse_list(batches_text, cf.batches, 8);
    for (char *t = strtok(storage_text, ","); t && cf.n_storages < 4; t = strtok(NULL, ",")) {
        int k = -1;
        for (int j = 0; j < 4; j++)
            if (!strcmp(t, storage_names[j])) k = j;
        if (k < 0) {
            fprintf(stderr, "bench_gallery: unknown storage '%s'\n", t);
            return 2;
        }
        cf.storages[cf.n_storages++] = k;
    }
    sm_backend *be = NULL;
    sm_status st = sm_backend_create(SM_BACKEND_CPU, &be);
    if (st) return fail(st, "cpu backend");
    if (threads) sm_backend_set_threads(be, threads);
    const int nt = sm_backend_get_threads(be);
    char cpu[256] = "unknown CPU";
    FILE *f = fopen("/proc/cpuinfo", "r");
    for (char line[512]; f && fgets(line, sizeof line, f);)
        if (!strncmp(line, "model name", 10) && strchr(line, ':')) {
            snprintf(cpu, sizeof cpu, "%s", strchr(line, ':') + 2);
            cpu[strcspn(cpu, "\n")] = 0;
            break;
        }
    if (f) fclose(f);
    static const char *isa[] = {"C", "AVX2", "AVX-512"};
    if (model || omniglot) {
        int r = model && omniglot && shots >= 1 ? bench_omniglot(be, model, omniglot, shots) : 2;
        if (r == 2) fprintf(stderr, "bench_gallery: --model and --omniglot go together\n");
        sm_backend_destroy(be);
        return r;
    }
    cf.bw = bandwidth(nt);
    printf("gallery search on %s (%s), %d threads, scores in %s; top 5, one label per example\n",
           sm_backend_name(be), cpu, nt, isa[sm__cpu_l1_isa()]);
    printf("memory bandwidth (streaming read of 1 GiB, %d threads): %.1f GB/s\n", nt, cf.bw / 1e9);
    printf("%-7s %5s %8s %-5s %5s %10s %10s %9s %8s %8s %8s %7s\n", "arch", "dim", "gallery",
           "store", "Q", "queries/s", "ms/query", "GB/s", "t/t_read", "B/ex", "RSS B/ex",
           "enrol s");
    int rc = 0;
    for (char *a = strtok(archs_text, ","); a && !rc; a = strtok(NULL, ","))
        rc = bench_arch(be, a, &cf);
    printf("goals (issue 24): koch, 100,000 examples: batched >= 100 queries/s; Q = 1 within "
           "1.5x of t_read (the 't/t_read' column: time per query / time to read the gallery's "
           "bytes at the measured bandwidth)\n");
    sm_backend_destroy(be);
    return rc;
}
