/* SPDX-License-Identifier: MIT */
/* Identification and verification. Queries are scored against the enrolled examples by
 * sm__gallery_score (gallery_score.c: the head's logit of every pair by the backend's l1_scores
 * op, then the sigmoid), in groups of queries that bound the scratch memory whatever their
 * number and the gallery's size; each group passes over the gallery once. Then, on the host,
 * each label's score is the mean of its examples' scores (in double, in example order, as the
 * k-shot evaluation combines a class's supports), and the top k are picked with their ties.
 * Every score is checked first (sm__gallery_score): one NaN would compare false against every
 * other, so the top k and the tie counts would be garbage, and a query is refused rather than
 * answered so. A score does not depend on how many queries came with it, nor on the backend's
 * thread count: the same query gets the same answer alone or in a batch. */
#include <string.h>

#include "common/alloc.h"
#include "common/error.h"
#include "gallery/gallery.h"

#define GROUP_SCORES ((size_t)1 << 23) /* scores per group of queries: 32 MiB of floats */
#define MAX_GROUP    256               /* queries per group, for small galleries */

/* Each label's mean score from the examples' scores (n floats) into s (n_labels). */
static void label_means(const sm_gallery *g, const float *scores, double *s)
{
    memset(s, 0, g->n_labels * sizeof *s);
    for (size_t i = 0; i < g->n; i++) s[g->example_label[i]] += scores[i];
    for (size_t l = 0; l < g->n_labels; l++) s[l] /= (double)g->label_n[l];
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

/* Queries [q0, q0 + m) as feature vectors: the caller's, or embedded into `feat`. */
static sm_status group_features(const char *fn, const sm_gallery *g, const float *data,
                                int is_images, size_t q0, size_t m, float *feat, const float **out)
{
    if (!is_images) {
        *out = data + q0 * g->dim;
        return SM_OK;
    }
    const size_t in = sm__arch_in_size(&g->subnet->arch);
    SM_TRY(sm__gallery_embed_at(g, fn, q0, m, data + q0 * in, feat));
    *out = feat;
    return SM_OK;
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
    if (!is_images) {
        size_t bad = sm__gallery_first_bad(n_queries * d, data);
        SM_CHECK_ARG(bad == SIZE_MAX,
                     "%s: query %zu has the value %g at %zu, expected [0, 1] (NaN and "
                     "infinities are refused)",
                     fn, bad / d, (double)data[bad], bad % d);
    }
    size_t group = GROUP_SCORES / g->n;
    if (group > MAX_GROUP) group = MAX_GROUP;
    if (group < 1) group = 1;
    if (group > n_queries) group = n_queries;
    /* the answers go to the caller's array only once every query is done */
    sm_gallery_match *out = sm__malloc(n_queries * k * sizeof *out);
    float *scores = sm__malloc(group * g->n * sizeof *scores);
    double *label_score = sm__malloc(g->n_labels * sizeof *label_score);
    float *feat = is_images ? sm__malloc(group * d * sizeof *feat) : NULL;
    sm_status st = out && scores && label_score && (feat || !is_images)
                       ? SM_OK
                       : sm__fail(SM_ERR_NOMEM, "%s: out of memory", fn);
    for (size_t q0 = 0; q0 < n_queries && st == SM_OK; q0 += group) {
        const size_t m = n_queries - q0 < group ? n_queries - q0 : group;
        const float *fq = NULL;
        st = group_features(fn, g, data, is_images, q0, m, feat, &fq);
        if (st == SM_OK) st = sm__gallery_score(g, fn, m, fq, 0, NULL, scores);
        for (size_t i = 0; i < m && st == SM_OK; i++) {
            label_means(g, scores + i * g->n, label_score);
            top_k(g, label_score, kk, out + (q0 + i) * k);
        }
    }
    for (size_t q = 0; q < n_queries && st == SM_OK; q++)
        memcpy(matches + q * k, out + q * k, kk * sizeof *out);
    sm__free(out);
    sm__free(scores);
    sm__free(label_score);
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

/* A claim is scored against the label's examples only; their mean, summed in example order,
 * is bit for bit the label's score in identification. */
SM_API sm_status sm_gallery_verify(const sm_gallery *g, const char *label, const float *image,
                                   double threshold, double *score, int *accept)
{
    SM_CHECK_ARG(g && label && image, "sm_gallery_verify: NULL argument");
    SM_CHECK_ARG(threshold >= 0.0 && threshold <= 1.0,
                 "sm_gallery_verify: threshold %g outside [0, 1]", threshold);
    size_t idx = sm_gallery_find_label(g, label);
    SM_CHECK_ARG(idx != SIZE_MAX, "sm_gallery_verify: the label '%.80s' is not enrolled", label);
    const size_t cnt = g->label_n[idx];
    float *feat = sm__malloc(g->dim * sizeof *feat), *scores = sm__malloc(cnt * sizeof *scores);
    uint32_t *rows = sm__malloc(cnt * sizeof *rows);
    sm_status st =
        feat && scores && rows ? SM_OK : sm__fail(SM_ERR_NOMEM, "sm_gallery_verify: out of memory");
    for (size_t i = 0, j = 0; i < g->n && st == SM_OK; i++)
        if (g->example_label[i] == idx) rows[j++] = (uint32_t)i;
    if (st == SM_OK) st = sm__gallery_embed(g, "sm_gallery_verify", 1, image, feat);
    if (st == SM_OK) st = sm__gallery_score(g, "sm_gallery_verify", 1, feat, cnt, rows, scores);
    if (st == SM_OK) {
        double s = 0.0;
        for (size_t j = 0; j < cnt; j++) s += scores[j];
        s /= (double)cnt;
        if (score) *score = s;
        if (accept) *accept = s >= threshold;
    }
    sm__free(feat);
    sm__free(scores);
    sm__free(rows);
    return st;
}
