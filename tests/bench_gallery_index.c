/* SPDX-License-Identifier: MIT */
/* Approximate gallery search against exact search (docs/gallery.md, "Large galleries"): for
 * each gallery size, the exact top 5 of a set of queries (sm_gallery_identify_embeddings, one
 * batched call), then, for each index kind and each search setting, the same queries through
 * the index (sm_gallery_index_identify_embeddings, one batched call): queries per second, as a
 * ratio to the exact search's measured in the same run, and recall@5 (of the exact top 5
 * labels, the share the index's top 5 holds; 1 means every query's answer is the exact one).
 *
 * Feature vectors: random models give no structure worth searching, so the gallery is
 * synthetic but shaped like a model's embeddings: each label is a centre sigmoid(A z + c) with
 * z ~ N(0, I) in a `latent`-dimensional space (A, c fixed random: correlated features in
 * (0, 1), labels crowding in places), `per` examples per label at Gaussian noise `noise`
 * (clamped to [0, 1]), each query near one label's centre at the same noise. The head weighs a
 * share `positive` of the dimensions by +0 .. +0.2 (the score rises with their distance, as some
 * of a trained Koch head's weights do) and the others by -0.2 .. -1.0; its bias puts a query's
 * own label near a score of 0.5.
 *
 *   bench_gallery_index [--sizes 100000,1000000] [--arch laptop] [--per 5] [--queries 400]
 *                       [--exact-queries 100] [--kinds hnsw,ivf] [--hnsw 64:128,128:256,256:512]
 *                       [--ivf 256:16,256:32,256:64] [--build-threads 1] [--threads N]
 *                       [--hnsw-build M:efConstruction (0:0, the defaults 32:80)]
 *   bench_gallery_index --omniglot MODEL [--per 15] [--queries N] ...
 *
 * --omniglot: real embeddings instead, of a model trained by siamese-train (MODEL, its
 * model.safetensors): every image of $SIAMESE_OMNIGLOT_DIR's images_background.zip and
 * images_evaluation.zip embedded, each character's first --per drawers enrolled, the others
 * queries (a loud skip without the variable).
 *                       [--latent 16] [--noise 0.05] [--positive 0.1] [--seed 1]
 *
 * --hnsw and --ivf list search settings as candidates:effort (HNSW efSearch, IVF lists probed),
 * applied to one build with sm_gallery_index_set_search. Registered with benchmark()
 * (`meson test --benchmark -C build gallery-index`), never a test; exits 77 without the
 * index module. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "network/network.h"
#include "siamese/siamese.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static uint64_t rng_state;
static double urand(void)
{
    rng_state ^= rng_state << 13, rng_state ^= rng_state >> 7, rng_state ^= rng_state << 17;
    return (double)(rng_state >> 11) * (1.0 / 9007199254740992.0);
}
static double gauss(void)
{
    double u = urand(), v = urand();
    return sqrt(-2.0 * log(u + 1e-300)) * cos(6.283185307179586 * v);
}
static float clamp01(double v) { return (float)(v < 0.0 ? 0.0 : v > 1.0 ? 1.0 : v); }

static int fail(sm_status st, const char *what)
{
    fprintf(stderr, "bench_gallery_index: %s: %s: %s\n", what, sm_status_name(st),
            sm_last_error());
    return 1;
}

typedef struct config {
    size_t per, queries, exact_queries, latent;
    double noise, positive;
    uint32_t build_threads, hnsw_m, hnsw_efc;
    uint64_t seed;
    char hnsw[256], ivf[256], kinds[64];
} config;

/* The label model: centre(l) = sigmoid(A z_l + c), z_l drawn from the label's own seed, so a
 * label's centre is the same whenever it is asked for (the queries need it again). */
typedef struct labels {
    size_t d, r;
    double *a, *c, *z;
} labels;

static void centre(const labels *lm, size_t l, uint64_t seed, float *out)
{
    uint64_t saved = rng_state;
    rng_state = (seed + 0x9E3779B97F4A7C15ull * (l + 1)) | 1;
    for (size_t k = 0; k < lm->r; k++) lm->z[k] = gauss();
    for (size_t j = 0; j < lm->d; j++) {
        double s = lm->c[j];
        for (size_t k = 0; k < lm->r; k++) s += lm->a[j * lm->r + k] * lm->z[k];
        out[j] = (float)(1.0 / (1.0 + exp(-s)));
    }
    rng_state = saved;
}

static void noisy(const float *c, size_t d, double noise, float *out)
{
    for (size_t j = 0; j < d; j++) out[j] = clamp01(c[j] + noise * gauss());
}

/* recall@5 of `got` against `want` (n queries x 5 each) */
static double recall(const sm_gallery_match *got, const sm_gallery_match *want, size_t n)
{
    size_t hit = 0;
    for (size_t q = 0; q < n; q++)
        for (int i = 0; i < 5; i++)
            for (int j = 0; j < 5; j++) hit += got[q * 5 + j].label == want[q * 5 + i].label;
    return (double)hit / (double)(5 * n);
}

static int run_kind(sm_gallery *g, int kind, const char *settings, const config *cf,
                    const float *q, const sm_gallery_match *exact, double exact_qps)
{
    sm_gallery_index_options o = SM_GALLERY_INDEX_OPTIONS_INIT;
    o.kind = kind;
    o.build_threads = cf->build_threads;
    if (kind == SM_GALLERY_INDEX_HNSW) o.hnsw_m = cf->hnsw_m, o.hnsw_ef_construction = cf->hnsw_efc;
    sm_gallery_index *ix;
    double t0 = now();
    sm_status st = sm_gallery_index_build(g, &o, &ix);
    if (st) return fail(st, "sm_gallery_index_build");
    double t_build = now() - t0;
    sm_gallery_index_stats s = {.struct_size = sizeof s};
    sm_gallery_index_info(ix, &s);
    printf("  %s: built in %.1f s (%u thread%s), %.0f MB, %zu dims indexed, %zu positive "
           "(their weights sum to %.2f)\n",
           kind == SM_GALLERY_INDEX_HNSW ? "hnsw" : "ivf", t_build, cf->build_threads,
           cf->build_threads == 1 ? "" : "s", (double)s.bytes / 1e6, s.dims_indexed,
           s.dims_positive, s.positive_weight);
    if (kind == SM_GALLERY_INDEX_IVF) printf("    %u lists\n", s.ivf_lists);
    printf("    %10s %7s %11s %9s %9s %8s\n", "candidates", "effort", "queries/s", "x exact",
           "recall@5", "top-1 =");
    sm_gallery_match *m = malloc(cf->queries * 5 * sizeof *m);
    if (!m) return fail(SM_ERR_NOMEM, "matches");
    char list[256];
    snprintf(list, sizeof list, "%s", settings);
    for (char *save = NULL, *t = strtok_r(list, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        unsigned c = 0, e = 0;
        if (sscanf(t, "%u:%u", &c, &e) < 1) continue;
        if ((st = sm_gallery_index_set_search(ix, c, e))) return fail(st, t);
        sm_gallery_index_info(ix, &s);
        /* warm-up on a few queries, then all of them in one call */
        if ((st = sm_gallery_index_identify_embeddings(ix, 8, q, 5, m, NULL)))
            return fail(st, "sm_gallery_index_identify_embeddings");
        t0 = now();
        st = sm_gallery_index_identify_embeddings(ix, cf->queries, q, 5, m, NULL);
        double secs = now() - t0;
        if (st) return fail(st, "sm_gallery_index_identify_embeddings");
        double qps = (double)cf->queries / secs;
        size_t top1 = 0;
        for (size_t i = 0; i < cf->exact_queries; i++) top1 += m[i * 5].label == exact[i * 5].label;
        printf("    %10u %7u %11.1f %9.1f %9.4f %8.4f\n", s.candidates, s.effort, qps,
               qps / exact_qps, recall(m, exact, cf->exact_queries),
               (double)top1 / (double)cf->exact_queries);
        fflush(stdout);
    }
    free(m);
    sm_gallery_index_destroy(ix);
    return 0;
}

static int compare(sm_gallery *g, const float *q, const config *cf);

static int run_size(sm_backend *be, const char *arch_name, size_t n, const config *cf)
{
    sm_arch *arch = NULL;
    sm_subnet *sub = NULL;
    sm_head *head = NULL;
    sm_status st = sm_arch_from_string(arch_name, &arch);
    if (st == SM_OK) st = sm_subnet_create(be, arch, 1, &sub);
    if (st == SM_OK) st = sm_head_create(be, sm_subnet_feature_dim(sub), 2, &head);
    sm_arch_destroy(arch);
    if (st) return fail(st, arch_name);
    const size_t d = sm_subnet_feature_dim(sub), n_labels = (n + cf->per - 1) / cf->per;
    labels lm = {d, cf->latent, malloc(d * cf->latent * sizeof(double)),
                 malloc(d * sizeof(double)), malloc(cf->latent * sizeof(double))};
    float *w = malloc((d + 1) * sizeof *w), *c = malloc(d * sizeof *c);
    float *rows = malloc(cf->per * d * sizeof *rows), *q = malloc(cf->queries * d * sizeof *q);
    if (!lm.a || !lm.c || !lm.z || !w || !c || !rows || !q)
        return fail(SM_ERR_NOMEM, "buffers");
    rng_state = cf->seed * 0x2545F4914F6CDD1Dull | 1;
    for (size_t i = 0; i < d * cf->latent; i++) lm.a[i] = 1.5 * gauss() / sqrt((double)cf->latent);
    for (size_t j = 0; j < d; j++) lm.c[j] = 0.5 * gauss();
    /* Weights scaled by 128 / d beyond 128 features, so that a logit's spread does not grow
     * with the feature count (a trained head's does not): unscaled, at 4096 features the other
     * labels' logits reach -500, their scores underflow to 0, and the exact top 5 is one label
     * and a tie of thousands at 0. */
    const double scale = d > 128 ? 128.0 / (double)d : 1.0;
    double neg = 0.0;
    for (size_t j = 0; j < d; j++) {
        int pos = urand() < cf->positive;
        w[j] = (float)(scale * (pos ? 0.2 * urand() : -0.2 - 0.8 * urand()));
        if (!pos) neg -= w[j];
    }
    /* a query's own label at logit ~0: its weighted L1 distance is about
     * sum |w_neg| * E|noise_1 - noise_2| = sum |w_neg| * noise * 2 / sqrt(pi) */
    w[d] = (float)(neg * cf->noise * 2.0 / sqrt(3.141592653589793));
    if ((st = sm__head_write_params(head, w))) return fail(st, "head");

    sm_gallery *g = NULL;
    if ((st = sm_gallery_create(sub, head, &g))) return fail(st, "sm_gallery_create");
    double t0 = now();
    for (size_t l = 0; l < n_labels && st == SM_OK; l++) {
        size_t m = n - l * cf->per < cf->per ? n - l * cf->per : cf->per;
        centre(&lm, l, cf->seed, c);
        for (size_t e = 0; e < m; e++) noisy(c, d, cf->noise, rows + e * d);
        char name[32];
        snprintf(name, sizeof name, "label%08zu", l);
        st = sm_gallery_enrol_embeddings(g, name, m, rows);
    }
    if (st) return fail(st, "sm_gallery_enrol_embeddings");
    for (size_t i = 0; i < cf->queries; i++) {
        size_t l = (size_t)(urand() * (double)n_labels) % n_labels;
        centre(&lm, l, cf->seed, c);
        noisy(c, d, cf->noise, q + i * d);
    }
    printf("\n%s (%zu features), %zu examples, %zu labels of %zu, enrolled in %.1f s\n",
           arch_name, d, n, n_labels, cf->per, now() - t0);
    int rc = compare(g, q, cf);
    sm_gallery_destroy(g);
    sm_head_destroy(head);
    sm_subnet_destroy(sub);
    free(lm.a), free(lm.c), free(lm.z), free(w), free(c), free(rows), free(q);
    return rc;
}

/* The exact top 5 of the first exact_queries of `q`, then every kind and setting asked for. */
static int compare(sm_gallery *g, const float *q, const config *cf)
{
    sm_gallery_match *exact = malloc(cf->exact_queries * 5 * sizeof *exact);
    if (!exact) return fail(SM_ERR_NOMEM, "buffers");
    double t0 = now();
    sm_status st = sm_gallery_identify_embeddings(g, cf->exact_queries, q, 5, exact, NULL);
    double t_exact = now() - t0;
    if (st) return fail(st, "sm_gallery_identify_embeddings");
    double exact_qps = (double)cf->exact_queries / t_exact;
    /* recall@5 means little where the exact top 5 ends in a tie (labels listed by name) */
    size_t tied = 0;
    for (size_t i = 0; i < cf->exact_queries; i++) tied += exact[i * 5 + 4].tied > 1;
    printf("  exact: %.2f queries/s (%zu queries in one call, %.1f s); 5th label's score %.3g "
           "(first query), tied in %zu queries\n",
           exact_qps, cf->exact_queries, t_exact, exact[4].score, tied);
    fflush(stdout);

    int rc = 0;
    char kinds[64];
    snprintf(kinds, sizeof kinds, "%s", cf->kinds);
    for (char *save = NULL, *k = strtok_r(kinds, ",", &save); k && !rc;
         k = strtok_r(NULL, ",", &save)) {
        if (!strcmp(k, "hnsw"))
            rc = run_kind(g, SM_GALLERY_INDEX_HNSW, cf->hnsw, cf, q, exact, exact_qps);
        else if (!strcmp(k, "ivf"))
            rc = run_kind(g, SM_GALLERY_INDEX_IVF, cf->ivf, cf, q, exact, exact_qps);
    }
    free(exact);
    return rc;
}

/* Real embeddings: a trained model (`path`, sm_model_save's file) embeds every image of
 * Omniglot's background and evaluation sets ($SIAMESE_OMNIGLOT_DIR); each character's first
 * `per` images (drawers) are enrolled under its name, the others are the queries. */
static int run_omniglot(sm_backend *be, const char *path, const config *cf_in)
{
    const char *dir = getenv("SIAMESE_OMNIGLOT_DIR");
    if (!dir || !*dir) {
        printf("\nSKIP the Omniglot run: SIAMESE_OMNIGLOT_DIR is not set (a folder with "
               "images_background.zip and images_evaluation.zip)\n");
        return 0;
    }
    sm_subnet *sub = NULL;
    sm_head *head = NULL;
    sm_status st = sm_model_load(be, path, &sub, &head);
    if (st) return fail(st, path);
    sm_gallery *g = NULL;
    if ((st = sm_gallery_create(sub, head, &g))) return fail(st, "sm_gallery_create");
    sm_arch *arch = NULL;
    int c_in = 0, h = 0, w = 0;
    if ((st = sm_subnet_get_arch(sub, &arch))) return fail(st, "sm_subnet_get_arch");
    sm_arch_input_shape(arch, &c_in, &h, &w);
    sm_arch_destroy(arch);
    const size_t d = sm_subnet_feature_dim(sub), batch = 64, px = (size_t)c_in * h * w;
    size_t n_q = 0, cap_q = 16384;
    float *img = malloc(batch * px * sizeof *img), *feat = malloc(batch * d * sizeof *feat);
    float *q = malloc(cap_q * d * sizeof *q);
    if (!img || !feat || !q) return fail(SM_ERR_NOMEM, "buffers");
    double t0 = now();
    const char *sets[2] = {"images_background.zip", "images_evaluation.zip"};
    for (int si = 0; si < 2; si++) {
        char file[4096];
        snprintf(file, sizeof file, "%s/%s", dir, sets[si]);
        sm_dataset *ds = NULL;
        sm_dataset_options o = SM_DATASET_OPTIONS_INIT;
        o.resize = 1; /* to the model's input, as siamese-train --resize-images */
        if ((st = sm_dataset_open_with(file, h, w, NULL, 0, &o, &ds))) return fail(st, file);
        size_t n = sm_dataset_num_images(ds), *seen = calloc(sm_dataset_num_classes(ds), sizeof *seen);
        if (!seen) return fail(SM_ERR_NOMEM, "buffers");
        for (size_t off = 0; off < n; off += batch) {
            size_t m = n - off < batch ? n - off : batch;
            for (size_t i = 0; i < m; i++)
                if ((st = sm_dataset_get_image(ds, off + i, img + i * px))) return fail(st, "image");
            if ((st = sm_embed(sub, m, img, feat))) return fail(st, "sm_embed");
            for (size_t i = 0; i < m; i++) {
                size_t c = sm_dataset_image_class(ds, off + i);
                if (seen[c]++ < cf_in->per) {
                    if ((st = sm_gallery_enrol_embeddings(g, sm_dataset_class_name(ds, c), 1,
                                                          feat + i * d)))
                        return fail(st, "sm_gallery_enrol_embeddings");
                } else if (n_q < cap_q) {
                    memcpy(q + n_q++ * d, feat + i * d, d * sizeof *q);
                }
            }
        }
        free(seen);
        sm_dataset_destroy(ds);
    }
    /* the queries in a fixed shuffled order, so that the first ones span every alphabet */
    rng_state = cf_in->seed * 0x2545F4914F6CDD1Dull | 1;
    for (size_t i = n_q; i > 1; i--) {
        size_t j = (size_t)(urand() * (double)i) % i;
        for (size_t k = 0; k < d; k++) {
            float t = q[(i - 1) * d + k];
            q[(i - 1) * d + k] = q[j * d + k], q[j * d + k] = t;
        }
    }
    config cf = *cf_in;
    if (cf.queries > n_q) cf.queries = n_q;
    if (cf.exact_queries > cf.queries) cf.exact_queries = cf.queries;
    printf("\nOmniglot (background + evaluation) embedded by %s (%zu features): %zu examples "
           "(%zu labels, the first %zu drawers each), %zu queries (the other drawers); %.0f s\n",
           path, d, sm_gallery_num_examples(g), sm_gallery_num_labels(g), cf.per, n_q,
           now() - t0);
    int rc = compare(g, q, &cf);
    free(img), free(feat), free(q);
    sm_gallery_destroy(g);
    sm_head_destroy(head);
    sm_subnet_destroy(sub);
    return rc;
}

int main(int argc, char **argv)
{
    config cf = {.per = 5, .queries = 400, .exact_queries = 100, .latent = 16, .noise = 0.05,
                 .positive = 0.1, .build_threads = 1, .seed = 1};
    snprintf(cf.hnsw, sizeof cf.hnsw, "64:128,128:256,256:512");
    snprintf(cf.ivf, sizeof cf.ivf, "256:16,256:32,256:64");
    snprintf(cf.kinds, sizeof cf.kinds, "hnsw,ivf");
    char sizes_text[256] = "100000,1000000", arch[64] = "laptop", omniglot[4096] = "";
    int threads = 0;
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *k = argv[i], *v = argv[i + 1];
        if (!strcmp(k, "--sizes")) snprintf(sizes_text, sizeof sizes_text, "%s", v);
        else if (!strcmp(k, "--arch")) snprintf(arch, sizeof arch, "%s", v);
        else if (!strcmp(k, "--per")) cf.per = strtoull(v, NULL, 10);
        else if (!strcmp(k, "--queries")) cf.queries = strtoull(v, NULL, 10);
        else if (!strcmp(k, "--exact-queries")) cf.exact_queries = strtoull(v, NULL, 10);
        else if (!strcmp(k, "--kinds")) snprintf(cf.kinds, sizeof cf.kinds, "%s", v);
        else if (!strcmp(k, "--hnsw")) snprintf(cf.hnsw, sizeof cf.hnsw, "%s", v);
        else if (!strcmp(k, "--ivf")) snprintf(cf.ivf, sizeof cf.ivf, "%s", v);
        else if (!strcmp(k, "--build-threads")) cf.build_threads = (uint32_t)atoi(v);
        else if (!strcmp(k, "--hnsw-build")) sscanf(v, "%u:%u", &cf.hnsw_m, &cf.hnsw_efc);
        else if (!strcmp(k, "--threads")) threads = atoi(v);
        else if (!strcmp(k, "--latent")) cf.latent = strtoull(v, NULL, 10);
        else if (!strcmp(k, "--noise")) cf.noise = atof(v);
        else if (!strcmp(k, "--positive")) cf.positive = atof(v);
        else if (!strcmp(k, "--seed")) cf.seed = strtoull(v, NULL, 10);
        else if (!strcmp(k, "--omniglot")) snprintf(omniglot, sizeof omniglot, "%s", v);
        else {
            fprintf(stderr, "bench_gallery_index: unknown option %s (see the file's header)\n", k);
            return 2;
        }
    }
    if (cf.per < 1 || cf.queries < 8 || cf.exact_queries < 1 || cf.exact_queries > cf.queries ||
        cf.latent < 1 || cf.build_threads < 1) {
        fprintf(stderr, "bench_gallery_index: bad option values\n");
        return 2;
    }
    if (sm_gallery_index_available() != SM_OK) {
        printf("SKIP: %s\n", sm_last_error());
        return 77;
    }
    sm_backend *be = NULL;
    sm_status st = sm_backend_create(SM_BACKEND_CPU, &be);
    if (st) return fail(st, "cpu backend");
    if (threads) sm_backend_set_threads(be, threads);
    printf("gallery search through a candidate index against exact search, %s backend, %d "
           "threads, top 5\n",
           sm_backend_name(be), sm_backend_get_threads(be));
    if (!omniglot[0])
        printf("synthetic labels: latent %zu, noise %.3f, %.0f %% positive weights\n", cf.latent,
               cf.noise, 100 * cf.positive);
    printf("recall@5 and top-1 over the first %zu queries (the exact search's), queries/s over "
           "%zu\n",
           cf.exact_queries, cf.queries);
    int rc = 0;
    if (omniglot[0]) {
        if (cf.per == 5) cf.per = 15; /* of Omniglot's 20 drawers, unless --per says */
        rc = run_omniglot(be, omniglot, &cf);
    } else {
        for (char *save = NULL, *t = strtok_r(sizes_text, ",", &save); t && !rc;
             t = strtok_r(NULL, ",", &save))
            rc = run_size(be, arch, (size_t)strtoull(t, NULL, 10), &cf);
    }
    sm_backend_destroy(be);
    return rc;
}
