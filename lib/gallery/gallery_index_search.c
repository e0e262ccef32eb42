/* SPDX-License-Identifier: MIT */
/* Identification through a candidate index (include/siamese/gallery_index.h): queries are
 * projected as the rows were (gallery_index.c), the module proposes `candidates` examples per
 * query in batches, and each label they name is scored exactly: every one of its examples
 * through the head, score = sigmoid(w . |q - f| + b), the label's score the mean over all its
 * examples in example order (double), as gallery_search.c scores the whole gallery. The top k
 * of the named labels, with ranks and ties among them, is the answer.
 *
 * The exact scores come from the gallery's own kernel (sm__gallery_score, one call per query over
 * the examples of every label it names), which gives each pair the bits a full search gives it;
 * a label's mean is summed in double in example order as gallery_search.c sums it, so a label's
 * score here is bit-identical to sm_gallery_identify's, whatever the storage type.
 *
 * A query whose candidates name fewer labels than the answer needs (min(k, labels)) asks the
 * index again for twice as many, and so on; at the gallery's size it scores every label. */
#include <math.h>
#include <string.h>

#include "common/alloc.h"
#include "common/error.h"
#include "gallery/gallery_index.h"

#define BATCH_IDS ((size_t)1 << 16) /* ids per batch of queries handed to the module */

typedef struct scratch {
    size_t batch;       /* queries per module call */
    float *qproj;       /* batch x n_idx */
    int64_t *ids;       /* batch x candidates */
    float *dist;        /* as ids */
    int64_t *wide_ids;  /* a widened query's (widen), wide_cap entries */
    float *wide_dist;
    size_t wide_cap;
    size_t *best;       /* kk: the top k being picked, indices into named */
    uint32_t *named;    /* labels a query names, in order of first appearance */
    size_t n_named;
    uint32_t *stamp;    /* per label: 1 + the last query that named it */
    uint32_t query_tag; /* the tag of the query being answered */
    double *score;      /* per named label */
    uint32_t *list;     /* the named labels' examples, label after label, list_cap entries */
    float *pair;        /* their pair scores */
    size_t list_cap;
} scratch;

static void scratch_free(scratch *s)
{
    sm__free(s->qproj);
    sm__free(s->ids);
    sm__free(s->dist);
    sm__free(s->wide_ids);
    sm__free(s->wide_dist);
    sm__free(s->best);
    sm__free(s->named);
    sm__free(s->stamp);
    sm__free(s->score);
    sm__free(s->list);
    sm__free(s->pair);
}

static sm_status scratch_alloc(const sm_gallery_index *ix, size_t n_queries, size_t kk,
                               scratch *s)
{
    memset(s, 0, sizeof *s);
    size_t b = BATCH_IDS / ix->candidates;
    s->batch = b < 1 ? 1 : b > n_queries ? n_queries : b;
    const size_t nl = ix->n_labels, n_ids = s->batch * ix->candidates;
    s->qproj = sm__malloc(s->batch * ix->n_idx * sizeof *s->qproj);
    s->ids = sm__malloc(n_ids * sizeof *s->ids);
    s->dist = sm__malloc(n_ids * sizeof *s->dist);
    s->best = sm__malloc(kk * sizeof *s->best);
    s->named = sm__malloc(nl * sizeof *s->named);
    s->stamp = sm__calloc(nl, sizeof *s->stamp);
    s->score = sm__malloc(nl * sizeof *s->score);
    if (s->qproj && s->ids && s->dist && s->best && s->named && s->stamp && s->score)
        return SM_OK;
    scratch_free(s);
    return SM_ERR_NOMEM;
}

/* ------------------------------------------------------------------ candidates */

static sm_status propose(const sm_gallery_index *ix, const char *fn, size_t n_queries,
                         const float *qproj, size_t k, uint32_t effort, int64_t *ids, float *dist)
{
    sm_index_search_args a = {
        .n_queries = n_queries,
        .queries = qproj,
        .k = k,
        .effort = effort,
        .threads = sm_backend_get_threads(ix->g->be),
        .ids = ids,
        .distances = dist,
    };
    char err[512] = "";
    return sm__index_status(ix, ix->ops->search(ix->handle, &a, err, sizeof err), fn, err);
}

/* The labels that `m` ids name, each once, in order of first appearance, into s->named. */
static void name_labels(const sm_gallery_index *ix, scratch *s, const int64_t *ids, size_t m)
{
    const uint32_t *label_of = ix->g->example_label;
    s->n_named = 0;
    s->query_tag++;
    if (s->query_tag == 0) { /* wrapped: every stamp is stale */
        memset(s->stamp, 0, ix->n_labels * sizeof *s->stamp);
        s->query_tag = 1;
    }
    for (size_t i = 0; i < m; i++) {
        if (ids[i] < 0 || (uint64_t)ids[i] >= ix->n) continue; /* -1: fewer found */
        uint32_t l = label_of[ids[i]];
        if (s->stamp[l] == s->query_tag) continue;
        s->stamp[l] = s->query_tag;
        s->named[s->n_named++] = l;
    }
}

/* Too few labels named for the answer: ask again for twice the candidates (and the effort with
 * them) until enough are, or name every label once the request reaches the gallery's size. */
static sm_status widen(const sm_gallery_index *ix, const char *fn, scratch *s, const float *qproj,
                       size_t need)
{
    size_t c = ix->candidates;
    while (s->n_named < need) {
        if (c >= ix->n) {
            for (size_t l = 0; l < ix->n_labels; l++) s->named[l] = (uint32_t)l;
            s->n_named = ix->n_labels;
            return SM_OK;
        }
        c = 2 * c < ix->n ? 2 * c : ix->n;
        if (c > s->wide_cap) {
            int64_t *ids = sm__realloc(s->wide_ids, c * sizeof *ids);
            if (ids) s->wide_ids = ids;
            float *dist = ids ? sm__realloc(s->wide_dist, c * sizeof *dist) : NULL;
            if (dist) s->wide_dist = dist;
            if (!ids || !dist) return sm__fail(SM_ERR_NOMEM, "%s: out of memory", fn);
            s->wide_cap = c;
        }
        double scale = (double)c / (double)ix->candidates, e = ceil(ix->effort * scale);
        uint32_t effort = ix->kind == SM_GALLERY_INDEX_IVF
                              ? (uint32_t)(e < ix->ivf_lists ? e : ix->ivf_lists)
                              : (uint32_t)(e < (double)c ? (double)c : e);
        SM_TRY(propose(ix, fn, 1, qproj, c, effort, s->wide_ids, s->wide_dist));
        name_labels(ix, s, s->wide_ids, c);
    }
    return SM_OK;
}

/* ------------------------------------------------------------------ exact scores */

/* Every named label's score against the query q (dim floats): the mean over all its examples,
 * from one sm__gallery_score call over their rows. */
static sm_status score_named(const sm_gallery_index *ix, const char *fn, scratch *s,
                             const float *q)
{
    size_t total = 0;
    for (size_t j = 0; j < s->n_named; j++)
        total += ix->label_start[s->named[j] + 1] - ix->label_start[s->named[j]];
    if (total > s->list_cap) {
        uint32_t *list = sm__realloc(s->list, total * sizeof *list);
        if (list) s->list = list;
        float *pair = list ? sm__realloc(s->pair, total * sizeof *pair) : NULL;
        if (pair) s->pair = pair;
        if (!list || !pair) return sm__fail(SM_ERR_NOMEM, "%s: out of memory", fn);
        s->list_cap = total;
    }
    size_t at = 0;
    for (size_t j = 0; j < s->n_named; j++) {
        const size_t first = ix->label_start[s->named[j]], last = ix->label_start[s->named[j] + 1];
        memcpy(s->list + at, ix->label_examples + first, (last - first) * sizeof *s->list);
        at += last - first;
    }
    SM_TRY(sm__gallery_score(ix->g, fn, 1, q, total, s->list, s->pair));
    at = 0;
    for (size_t j = 0; j < s->n_named; j++) {
        const size_t cnt = ix->label_start[s->named[j] + 1] - ix->label_start[s->named[j]];
        double sum = 0.0; /* in example order, as gallery_search.c */
        for (size_t i = 0; i < cnt; i++) sum += s->pair[at + i];
        s->score[j] = sum / (double)cnt;
        at += cnt;
    }
    return SM_OK;
}

/* a before b (indices into s->named): the higher score, then the smaller name. */
static int before(const sm_gallery_index *ix, const scratch *s, size_t a, size_t b)
{
    if (s->score[a] != s->score[b]) return s->score[a] > s->score[b];
    return strcmp(ix->g->labels[s->named[a]], ix->g->labels[s->named[b]]) < 0;
}

/* The top kk of the named labels, with ranks and ties among them, into out. */
static void top_k(const sm_gallery_index *ix, const scratch *s, size_t kk, sm_gallery_match *out)
{
    size_t *best = s->best, n = 0; /* indices into named, best first */
    for (size_t j = 0; j < s->n_named; j++) {
        if (n == kk && !before(ix, s, j, best[kk - 1])) continue;
        size_t i = n < kk ? n++ : kk - 1;
        while (i > 0 && before(ix, s, j, best[i - 1])) {
            best[i] = best[i - 1];
            i--;
        }
        best[i] = j;
    }
    for (size_t i = 0; i < n; i++) {
        double v = s->score[best[i]];
        size_t higher = 0, equal = 0;
        for (size_t j = 0; j < s->n_named; j++) {
            higher += s->score[j] > v;
            equal += s->score[j] == v;
        }
        memset(&out[i], 0, sizeof out[i]);
        out[i].label = s->named[best[i]];
        out[i].score = v;
        out[i].rank = 1 + higher;
        out[i].tied = equal;
    }
}

/* ------------------------------------------------------------------ queries */

static sm_status answer(const sm_gallery_index *ix, const char *fn, scratch *s, const float *q,
                        const float *qproj, const int64_t *ids, size_t kk, sm_gallery_match *out)
{
    name_labels(ix, s, ids, ix->candidates);
    if (s->n_named < kk) SM_TRY(widen(ix, fn, s, qproj, kk));
    SM_TRY(score_named(ix, fn, s, q));
    top_k(ix, s, kk, out);
    return SM_OK;
}

static sm_status run_queries(const sm_gallery_index *ix, const char *fn, size_t n_queries,
                             const float *feat, size_t k, size_t kk, sm_gallery_match *out)
{
    scratch s;
    if (scratch_alloc(ix, n_queries, kk, &s) != SM_OK)
        return sm__fail(SM_ERR_NOMEM, "%s: out of memory", fn);
    sm_status st = SM_OK;
    const size_t c = ix->candidates;
    for (size_t q0 = 0; q0 < n_queries && st == SM_OK; q0 += s.batch) {
        size_t m = n_queries - q0 < s.batch ? n_queries - q0 : s.batch;
        sm__index_project(ix, m, feat + q0 * ix->dim, s.qproj);
        st = propose(ix, fn, m, s.qproj, c, ix->effort, s.ids, s.dist);
        for (size_t i = 0; i < m && st == SM_OK; i++)
            st = answer(ix, fn, &s, feat + (q0 + i) * ix->dim, s.qproj + i * ix->n_idx,
                        s.ids + i * c, kk, out + (q0 + i) * k);
    }
    scratch_free(&s);
    return st;
}

static sm_status identify(const char *fn, const sm_gallery_index *ix, size_t n_queries,
                          const float *data, int is_images, size_t k, sm_gallery_match *matches,
                          size_t *n_found)
{
    SM_CHECK_ARG(ix && data && matches, "%s: NULL argument", fn);
    SM_CHECK_ARG(k >= 1 && n_queries >= 1, "%s: k and n_queries must be at least 1", fn);
    const sm_gallery *g = ix->g;
    SM_RETURN_IF(g->generation != ix->generation, SM_ERR_STATE,
                 "%s: the gallery changed (an enrolment or removal) since the index was built: "
                 "build it again (sm_gallery_index_build)",
                 fn);
    size_t total;
    SM_CHECK_ARG(sm__mul_size(n_queries, k, &total) &&
                     sm__mul_size(total, sizeof *matches, &total) &&
                     sm__mul_size(n_queries, g->dim * sizeof(float), &total),
                 "%s: %zu queries is more than any buffer can hold", fn, n_queries);
    const size_t d = g->dim, kk = k < g->n_labels ? k : g->n_labels;
    float *feat = NULL;
    if (is_images) {
        if (!(feat = sm__malloc(n_queries * d * sizeof *feat)))
            return sm__fail(SM_ERR_NOMEM, "%s: out of memory", fn);
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
    sm_status st = out ? run_queries(ix, fn, n_queries, is_images ? feat : data, k, kk, out)
                       : sm__fail(SM_ERR_NOMEM, "%s: out of memory", fn);
    for (size_t q = 0; q < n_queries && st == SM_OK; q++)
        memcpy(matches + q * k, out + q * k, kk * sizeof *out);
    sm__free(out);
    sm__free(feat);
    if (st == SM_OK && n_found) *n_found = kk;
    return st;
}

SM_API sm_status sm_gallery_index_identify(const sm_gallery_index *ix, size_t n_queries,
                                           const float *queries, size_t k,
                                           sm_gallery_match *matches, size_t *n_found)
{
    return identify("sm_gallery_index_identify", ix, n_queries, queries, 1, k, matches, n_found);
}

SM_API sm_status sm_gallery_index_identify_embeddings(const sm_gallery_index *ix,
                                                      size_t n_queries, const float *features,
                                                      size_t k, sm_gallery_match *matches,
                                                      size_t *n_found)
{
    return identify("sm_gallery_index_identify_embeddings", ix, n_queries, features, 0, k,
                    matches, n_found);
}
