/* SPDX-License-Identifier: MIT */
/* Gallery search: a query's feature vector against every enrolled one, as one batched product
 * through the head on the model's backend, in row chunks that bound the scratch memory:
 *   diff = |Q - G_chunk| (Q: the query repeated on each row), logits = diff w, then over all
 *   rows logits += b and scores = sigmoid(logits): the ops of sm_predict_pairs' head.
 * Then, on the host, each label's score is the mean of its examples' scores (in double, as the
 * k-shot evaluation combines a class's supports), and the top k are picked with their ties.
 * Every score is checked first: one NaN would compare false against every other, so the top k
 * and the tie counts would be garbage, and a query is refused rather than answered so. */
#include <string.h>

#include "common/alloc.h"
#include "common/error.h"
#include "gallery/gallery.h"

#define CHUNK_FLOATS ((size_t)1 << 20) /* floats per diff chunk: 4 MiB */

typedef struct search_bufs {
    size_t rows;            /* rows per chunk */
    float *qrep_host;       /* rows x dim */
    float *qrep, *diff;     /* backend: rows x dim each */
    float *logits, *scores; /* backend: n each */
    float *host_scores;     /* n */
    double *label_score;    /* n_labels */
} search_bufs;

static void bufs_free(const sm_gallery *g, search_bufs *b)
{
    sm__free(b->qrep_host);
    sm__be_free(g->be, b->qrep);
    sm__be_free(g->be, b->diff);
    sm__be_free(g->be, b->logits);
    sm__be_free(g->be, b->scores);
    sm__free(b->host_scores);
    sm__free(b->label_score);
}

static sm_status bufs_alloc(const sm_gallery *g, search_bufs *b)
{
    memset(b, 0, sizeof *b);
    size_t rows = CHUNK_FLOATS / g->dim;
    if (rows < 1) rows = 1;
    if (rows > g->n) rows = g->n;
    b->rows = rows;
    b->qrep_host = sm__malloc(rows * g->dim * sizeof(float));
    b->host_scores = sm__malloc(g->n * sizeof(float));
    b->label_score = sm__malloc(g->n_labels * sizeof(double));
    sm_status st = b->qrep_host && b->host_scores && b->label_score
                       ? SM_OK
                       : sm__fail(SM_ERR_NOMEM, "out of memory searching a gallery");
    if (st == SM_OK) st = sm__be_alloc_floats(g->be, rows * g->dim, &b->qrep);
    if (st == SM_OK) st = sm__be_alloc_floats(g->be, rows * g->dim, &b->diff);
    if (st == SM_OK) st = sm__be_alloc_floats(g->be, g->n, &b->logits);
    if (st == SM_OK) st = sm__be_alloc_floats(g->be, g->n, &b->scores);
    if (st != SM_OK) bufs_free(g, b);
    return st;
}

/* Every example's score against the query `q` (host, dim floats, in [0, 1]) into b->host_scores,
 * then every label's mean into b->label_score. */
static sm_status score_query(const char *fn, const sm_gallery *g, search_bufs *b, const float *q)
{
    const sm_backend_ops *ops = g->be->ops;
    void *ctx = g->be->ctx;
    const size_t d = g->dim, rows = b->rows;
    const float *w = g->head->params;
    for (size_t r = 0; r < rows; r++) memcpy(b->qrep_host + r * d, q, d * sizeof *q);
    SM_TRY(ops->upload(ctx, b->qrep, b->qrep_host, rows * d * sizeof(float)));
    for (size_t off = 0; off < g->n; off += rows) {
        size_t m = g->n - off < rows ? g->n - off : rows;
        SM_TRY(ops->absdiff_fwd(ctx, m * d, b->qrep, g->feat + off * d, b->diff));
        SM_TRY(ops->gemm(ctx, false, false, (int)m, 1, (int)d, 1.0f, b->diff, (int)d, w, 1, 0.0f,
                         b->logits + off, 1));
    }
    SM_TRY(ops->bias_add(ctx, (int)g->n, 1, w + d, b->logits));
    SM_TRY(ops->sigmoid_fwd(ctx, g->n, b->logits, b->scores));
    SM_TRY(ops->download(ctx, b->host_scores, b->scores, g->n * sizeof(float)));
    /* the query and the rows are in [0, 1], so a score outside it is the head's */
    size_t bad = sm__gallery_first_bad(g->n, b->host_scores);
    SM_RETURN_IF(bad != SIZE_MAX, SM_ERR_NUMERIC,
                 "%s: the head scores example %zu (label '%.80s') %g, not in [0, 1]: the head's "
                 "parameters are not finite",
                 fn, bad, g->labels[g->example_label[bad]], (double)b->host_scores[bad]);
    memset(b->label_score, 0, g->n_labels * sizeof(double));
    for (size_t i = 0; i < g->n; i++) b->label_score[g->example_label[i]] += b->host_scores[i];
    for (size_t l = 0; l < g->n_labels; l++) b->label_score[l] /= (double)g->label_n[l];
    return SM_OK;
}

/* a before b: the higher score, then the smaller name (display order within a tie). */
static int before(const sm_gallery *g, const double *s, size_t a, size_t b)
{
    if (s[a] != s[b]) return s[a] > s[b];
    return strcmp(g->labels[a], g->labels[b]) < 0;
}

/* The top k labels by b->label_score, with ranks and tie counts, into `out` (k' entries). */
static void top_k(const sm_gallery *g, const double *s, size_t k, sm_gallery_match *out)
{
    size_t n = 0;
    for (size_t l = 0; l < g->n_labels; l++) {
        if (n == k && !before(g, s, l, out[k - 1].label)) continue;
        size_t i = n < k ? n++ : k - 1;
        while (i > 0 && before(g, s, l, out[i - 1].label)) {
            out[i] = out[i - 1];
            i--;
        }
        memset(&out[i], 0, sizeof out[i]);
        out[i].label = l;
    }
    for (size_t i = 0; i < n; i++) {
        double v = s[out[i].label];
        size_t higher = 0, equal = 0;
        for (size_t l = 0; l < g->n_labels; l++) {
            higher += s[l] > v;
            equal += s[l] == v;
        }
        out[i].score = v;
        out[i].rank = 1 + higher;
        out[i].tied = equal;
    }
}

static sm_status identify(const char *fn, const sm_gallery *g, size_t n_queries, const float *data,
                          int is_images, size_t k, sm_gallery_match *matches, size_t *n_found)
{
    SM_CHECK_ARG(g && data && matches, "%s: NULL argument", fn);
    SM_CHECK_ARG(k >= 1 && n_queries >= 1, "%s: k and n_queries must be at least 1", fn);
    SM_RETURN_IF(g->n == 0, SM_ERR_STATE, "%s: the gallery is empty: enrol examples first", fn);
    size_t total;
    SM_CHECK_ARG(sm__mul_size(n_queries, k, &total) &&
                     sm__mul_size(total, sizeof *matches, &total) &&
                     sm__mul_size(n_queries, g->dim * sizeof(float), &total),
                 "%s: %zu queries is more than any buffer can hold", fn, n_queries);
    const size_t d = g->dim, kk = k < g->n_labels ? k : g->n_labels;
    float *feat = NULL;
    if (is_images) {
        feat = sm__malloc(n_queries * d * sizeof *feat);
        if (!feat) return sm__fail(SM_ERR_NOMEM, "%s: out of memory", fn);
        sm_status st = sm__gallery_embed(g, fn, n_queries, data, feat);
        if (st != SM_OK) {
            sm__free(feat);
            return st;
        }
    } else {
        size_t bad = sm__gallery_first_bad(n_queries * d, data);
        SM_CHECK_ARG(bad == SIZE_MAX,
                     "%s: query %zu has the value %g at %zu, expected [0, 1] (NaN and "
                     "infinities are refused)",
                     fn, bad / d, (double)data[bad], bad % d);
    }
    /* the answers go to the caller's array only once every query is done */
    sm_gallery_match *out = sm__malloc(n_queries * k * sizeof *out);
    search_bufs b;
    sm_status st = out ? bufs_alloc(g, &b) : sm__fail(SM_ERR_NOMEM, "%s: out of memory", fn);
    const int have_bufs = out && st == SM_OK;
    for (size_t q = 0; q < n_queries && st == SM_OK; q++) {
        st = score_query(fn, g, &b, (is_images ? feat : data) + q * d);
        if (st == SM_OK) top_k(g, b.label_score, kk, out + q * k);
    }
    if (have_bufs) bufs_free(g, &b);
    for (size_t q = 0; q < n_queries && st == SM_OK; q++)
        memcpy(matches + q * k, out + q * k, kk * sizeof *out);
    sm__free(out);
    sm__free(feat);
    if (st == SM_OK && n_found) *n_found = kk;
    return st;
}

SM_API sm_status sm_gallery_identify(const sm_gallery *g, size_t n_queries, const float *queries,
                                     size_t k, sm_gallery_match *matches, size_t *n_found)
{
    return identify("sm_gallery_identify", g, n_queries, queries, 1, k, matches, n_found);
}

SM_API sm_status sm_gallery_identify_embeddings(const sm_gallery *g, size_t n_queries,
                                                const float *features, size_t k,
                                                sm_gallery_match *matches, size_t *n_found)
{
    return identify("sm_gallery_identify_embeddings", g, n_queries, features, 0, k, matches,
                    n_found);
}

SM_API sm_status sm_gallery_verify(const sm_gallery *g, const char *label, const float *image,
                                   double threshold, double *score, int *accept)
{
    SM_CHECK_ARG(g && label && image, "sm_gallery_verify: NULL argument");
    SM_CHECK_ARG(threshold >= 0.0 && threshold <= 1.0,
                 "sm_gallery_verify: threshold %g outside [0, 1]", threshold);
    size_t idx = sm_gallery_find_label(g, label);
    SM_CHECK_ARG(idx != SIZE_MAX, "sm_gallery_verify: the label '%.80s' is not enrolled", label);
    float *feat = sm__malloc(g->dim * sizeof *feat);
    if (!feat) return sm__fail(SM_ERR_NOMEM, "sm_gallery_verify: out of memory");
    sm_status st = sm__gallery_embed(g, "sm_gallery_verify", 1, image, feat);
    search_bufs b;
    if (st == SM_OK) st = bufs_alloc(g, &b);
    if (st == SM_OK) {
        st = score_query("sm_gallery_verify", g, &b, feat);
        if (st == SM_OK) {
            double s = b.label_score[idx];
            if (score) *score = s;
            if (accept) *accept = s >= threshold;
        }
        bufs_free(g, &b);
    }
    sm__free(feat);
    return st;
}
