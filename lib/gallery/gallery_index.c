/* SPDX-License-Identifier: MIT */
/* Candidate indexes: options, the build and the handle (include/siamese/gallery_index.h).
 *
 * A build reads the head's weights once and splits the feature dimensions: those with w_d < 0
 * go into the index, scaled by |w_d|, so that the module's L1 distance between a query and an
 * example is the part of the logit that falls with distance; the others (w_d > 0 raise the
 * score with distance, w_d == 0 do nothing) are left to the exact scoring of
 * gallery_index_search.c. The gallery's rows (any storage type, mapped or not) are read in
 * bounded chunks, decoded, projected, and handed to the module, which keeps its own copy. */
#include <math.h>
#include <string.h>

#include "common/alloc.h"
#include "common/error.h"
#include "gallery/gallery_index.h"

#define CHUNK_ROWS ((size_t)4096) /* rows per download while projecting */
#define MAX_SEARCH 65536u         /* candidates, efSearch and efConstruction at most */

/* ------------------------------------------------------------------ options */

/* The search parameters with their defaults resolved (candidates, then effort: HNSW's efSearch,
 * at least the candidates; IVF's lists probed, at most `lists`), or SM_ERR_INVALID_ARG. */
static sm_status search_params(const char *fn, int32_t kind, uint32_t lists, uint32_t *candidates,
                               uint32_t *effort)
{
    if (*candidates == 0) *candidates = 256;
    SM_CHECK_ARG(*candidates <= MAX_SEARCH, "%s: candidates %u outside 1 .. %u", fn, *candidates,
                 MAX_SEARCH);
    if (kind == SM_GALLERY_INDEX_HNSW) {
        if (*effort == 0) *effort = 2 * *candidates < MAX_SEARCH ? 2 * *candidates : MAX_SEARCH;
        SM_CHECK_ARG(*effort <= MAX_SEARCH, "%s: effort (efSearch) %u outside 1 .. %u", fn,
                     *effort, MAX_SEARCH);
        if (*effort < *candidates) *effort = *candidates;
    } else {
        if (*effort == 0) *effort = lists < 32 ? lists : 32;
        SM_CHECK_ARG(*effort <= lists, "%s: effort (lists probed) %u outside 1 .. %u", fn,
                     *effort, lists);
    }
    return SM_OK;
}

/* The options with every default resolved, or SM_ERR_INVALID_ARG naming the first bad one. */
static sm_status resolve(const sm_gallery_index_options *in, size_t n, sm_gallery_index_options *o)
{
    static const char fn[] = "sm_gallery_index_build";
    sm_gallery_index_options zero = SM_GALLERY_INDEX_OPTIONS_INIT;
    *o = zero;
    SM_TRY(sm__read_options(fn, "sm_gallery_index_options", "SM_GALLERY_INDEX_OPTIONS_INIT", o,
                            sizeof *o, in));
    if (o->kind == 0) o->kind = SM_GALLERY_INDEX_HNSW;
    SM_CHECK_ARG(o->kind == SM_GALLERY_INDEX_HNSW || o->kind == SM_GALLERY_INDEX_IVF,
                 "%s: kind %d is none of SM_GALLERY_INDEX_HNSW (1), SM_GALLERY_INDEX_IVF (2)", fn,
                 (int)o->kind);
    SM_CHECK_ARG(o->reserved0 == 0, "%s: reserved0 is %u, it must be 0", fn, o->reserved0);
    if (o->build_threads == 0) o->build_threads = 1;
    SM_CHECK_ARG(o->build_threads <= 1024, "%s: build_threads %u outside 1 .. 1024", fn,
                 o->build_threads);
    if (o->seed == 0) o->seed = 1234;
    if (o->kind == SM_GALLERY_INDEX_HNSW) {
        SM_CHECK_ARG(o->ivf_lists == 0, "%s: ivf_lists is %u, an HNSW index has no lists (0)", fn,
                     o->ivf_lists);
        if (o->hnsw_m == 0) o->hnsw_m = 32;
        SM_CHECK_ARG(o->hnsw_m >= 2 && o->hnsw_m <= 256, "%s: hnsw_m %u outside 2 .. 256", fn,
                     o->hnsw_m);
        if (o->hnsw_ef_construction == 0) o->hnsw_ef_construction = 80;
        SM_CHECK_ARG(o->hnsw_ef_construction <= MAX_SEARCH,
                     "%s: hnsw_ef_construction %u outside 1 .. %u", fn, o->hnsw_ef_construction,
                     MAX_SEARCH);
    } else {
        SM_CHECK_ARG(o->hnsw_m == 0 && o->hnsw_ef_construction == 0,
                     "%s: hnsw_m and hnsw_ef_construction are for HNSW: 0 for an IVF index", fn);
        if (o->ivf_lists == 0) {
            double l = floor(4.0 * sqrt((double)n) + 0.5);
            o->ivf_lists = l < 1.0 ? 1u : l > (double)n ? (uint32_t)n : (uint32_t)l;
        }
        SM_CHECK_ARG(o->ivf_lists <= n, "%s: ivf_lists %u outside 1 .. %zu (the examples)", fn,
                     o->ivf_lists, n);
    }
    return search_params(fn, o->kind, o->ivf_lists, &o->candidates, &o->effort);
}

/* ------------------------------------------------------------------ helpers */

sm_status sm__index_status(const sm_gallery_index *ix, int rc, const char *fn, const char *err)
{
    if (rc == SM_INDEX_OK) return SM_OK;
    if (rc == SM_INDEX_NOMEM) return sm__fail(SM_ERR_NOMEM, "%s: %s", fn, err);
    return sm__fail(SM_ERR_INTERNAL, "%s: the index module (%s) failed: %s", fn,
                    ix && ix->ops ? ix->ops->name : "?", err[0] ? err : "no reason given");
}

void sm__index_project(const sm_gallery_index *ix, size_t n, const float *feat, float *out)
{
    for (size_t i = 0; i < n; i++) {
        const float *f = feat + i * ix->dim;
        float *o = out + i * ix->n_idx;
        for (size_t j = 0; j < ix->n_idx; j++) o[j] = -ix->w[ix->idx_dim[j]] * f[ix->idx_dim[j]];
    }
}

/* The head's weights and the split of the dimensions. */
static sm_status read_head(sm_gallery_index *ix)
{
    const sm_gallery *g = ix->g;
    const size_t d = g->dim;
    if (!(ix->w = sm__malloc((d + 1) * sizeof *ix->w)) ||
        !(ix->idx_dim = sm__malloc(d * sizeof *ix->idx_dim)))
        return sm__fail(SM_ERR_NOMEM, "sm_gallery_index_build: out of memory");
    SM_TRY(g->head->be->ops->download(g->head->be->ctx, ix->w, g->head->params,
                                      (d + 1) * sizeof *ix->w));
    for (size_t j = 0; j <= d; j++)
        SM_RETURN_IF(!isfinite(ix->w[j]), SM_ERR_NUMERIC,
                     "sm_gallery_index_build: the head's parameter %zu is %g: its parameters are "
                     "not finite",
                     j, (double)ix->w[j]);
    for (size_t j = 0; j < d; j++) {
        if (ix->w[j] < 0.0f) ix->idx_dim[ix->n_idx++] = (uint32_t)j;
        if (ix->w[j] > 0.0f) {
            ix->dims_positive++;
            ix->positive_weight += ix->w[j];
        }
    }
    SM_RETURN_IF(ix->n_idx == 0, SM_ERR_UNSUPPORTED,
                 "sm_gallery_index_build: the head has no negative weight (%zu positive, %zu "
                 "zero): no distance orders its scores, use sm_gallery_identify",
                 ix->dims_positive, d - ix->dims_positive);
    return SM_OK;
}

/* Each label's examples, in example order (counting sort by label). */
static sm_status label_lists(sm_gallery_index *ix)
{
    const sm_gallery *g = ix->g;
    if (!(ix->label_start = sm__malloc((g->n_labels + 1) * sizeof *ix->label_start)) ||
        !(ix->label_examples = sm__malloc(g->n * sizeof *ix->label_examples)))
        return sm__fail(SM_ERR_NOMEM, "sm_gallery_index_build: out of memory");
    ix->label_start[0] = 0;
    for (size_t l = 0; l < g->n_labels; l++)
        ix->label_start[l + 1] = ix->label_start[l] + g->label_n[l];
    size_t *next = sm__malloc((g->n_labels ? g->n_labels : 1) * sizeof *next);
    if (!next) return sm__fail(SM_ERR_NOMEM, "sm_gallery_index_build: out of memory");
    memcpy(next, ix->label_start, g->n_labels * sizeof *next);
    for (size_t i = 0; i < g->n; i++) ix->label_examples[next[g->example_label[i]]++] = (uint32_t)i;
    sm__free(next);
    return SM_OK;
}

/* Every row projected (host, n x n_idx), then the module's build. */
static sm_status build_module_index(sm_gallery_index *ix, const sm_gallery_index_options *o)
{
    const sm_gallery *g = ix->g;
    size_t bytes;
    SM_RETURN_IF(!sm__mul_size(g->n, ix->n_idx * sizeof(float), &bytes), SM_ERR_LIMIT,
                 "sm_gallery_index_build: %zu examples is more than any buffer can hold", g->n);
    const size_t chunk = g->n < CHUNK_ROWS ? g->n : CHUNK_ROWS;
    const int u8 = g->storage == SM_STORAGE_U8;
    float *rows = sm__malloc(bytes), *host = sm__malloc(chunk * g->dim * sizeof *host);
    void *stored = sm__malloc(chunk * g->row_bytes);
    float *qp = u8 ? sm__malloc(2 * chunk * sizeof *qp) : NULL;
    sm_status st = rows && host && stored && (qp || !u8)
                       ? SM_OK
                       : sm__fail(SM_ERR_NOMEM, "sm_gallery_index_build: out of memory");
    for (size_t off = 0; off < g->n && st == SM_OK; off += chunk) {
        size_t m = g->n - off < chunk ? g->n - off : chunk;
        /* the rows in their storage type (a mapped file's are host memory), then decoded */
        const uint8_t *src = (const uint8_t *)g->rows + off * g->row_bytes;
        if (g->map) memcpy(stored, src, m * g->row_bytes);
        else st = g->be->ops->download(g->be->ctx, stored, src, m * g->row_bytes);
        if (st == SM_OK && u8) {
            if (g->map) memcpy(qp, g->qp + 2 * off, 2 * m * sizeof *qp);
            else st = g->be->ops->download(g->be->ctx, qp, g->qp + 2 * off, 2 * m * sizeof *qp);
        }
        if (st != SM_OK) break;
        sm__storage_decode(g->storage, m, g->dim, stored, qp, host);
        sm__index_project(ix, m, host, rows + off * ix->n_idx);
    }
    sm__free(host);
    sm__free(stored);
    sm__free(qp);
    if (st == SM_OK) {
        sm_index_build_args a = {
            .abi = SM_INDEX_MODULE_ABI,
            .kind = o->kind == SM_GALLERY_INDEX_HNSW ? SM_INDEX_HNSW : SM_INDEX_IVF,
            .n = g->n,
            .dim = ix->n_idx,
            .rows = rows,
            .hnsw_m = o->hnsw_m,
            .hnsw_ef_construction = o->hnsw_ef_construction,
            .ivf_lists = o->ivf_lists,
            .seed = o->seed,
            .threads = (int)o->build_threads,
        };
        char err[512] = "";
        st = sm__index_status(ix, ix->ops->build(&a, &ix->handle, err, sizeof err),
                              "sm_gallery_index_build", err);
    }
    sm__free(rows);
    return st;
}

/* ------------------------------------------------------------------ the handle */

SM_API sm_status sm_gallery_index_build(const sm_gallery *g,
                                        const sm_gallery_index_options *options,
                                        sm_gallery_index **out)
{
    SM_CHECK_ARG(g && out, "sm_gallery_index_build: NULL argument");
    sm_gallery_index_options o;
    SM_TRY(resolve(options, g->n ? g->n : 1, &o));
    SM_RETURN_IF(g->n == 0, SM_ERR_STATE,
                 "sm_gallery_index_build: the gallery is empty: enrol examples first");
    const sm_index_module_ops *ops;
    SM_TRY(sm__index_module(&ops));
    sm_gallery_index *ix = sm__calloc(1, sizeof *ix);
    if (!ix) return sm__fail(SM_ERR_NOMEM, "sm_gallery_index_build: out of memory");
    ix->g = g;
    ix->generation = g->generation;
    ix->ops = ops;
    ix->kind = o.kind;
    ix->candidates = o.candidates;
    ix->effort = o.effort;
    ix->ivf_lists = o.kind == SM_GALLERY_INDEX_IVF ? o.ivf_lists : 0;
    ix->n = g->n;
    ix->n_labels = g->n_labels;
    ix->dim = g->dim;
    sm_status st = read_head(ix);
    if (st == SM_OK) st = label_lists(ix);
    if (st == SM_OK) st = build_module_index(ix, &o);
    if (st != SM_OK) {
        sm_gallery_index_destroy(ix);
        return st;
    }
    *out = ix;
    return SM_OK;
}

SM_API void sm_gallery_index_destroy(sm_gallery_index *ix)
{
    if (!ix) return;
    if (ix->handle) ix->ops->destroy(ix->handle);
    sm__free(ix->w);
    sm__free(ix->idx_dim);
    sm__free(ix->label_start);
    sm__free(ix->label_examples);
    sm__free(ix);
}

SM_API sm_status sm_gallery_index_set_search(sm_gallery_index *ix, uint32_t candidates,
                                             uint32_t effort)
{
    SM_CHECK_ARG(ix, "sm_gallery_index_set_search: NULL argument");
    SM_TRY(search_params("sm_gallery_index_set_search", ix->kind, ix->ivf_lists, &candidates,
                         &effort));
    ix->candidates = candidates;
    ix->effort = effort;
    return SM_OK;
}

SM_API sm_status sm_gallery_index_info(const sm_gallery_index *ix, sm_gallery_index_stats *stats)
{
    SM_CHECK_ARG(ix && stats, "sm_gallery_index_info: NULL argument");
    SM_CHECK_ARG(stats->struct_size >= sizeof(size_t),
                 "sm_gallery_index_info: stats->struct_size %zu too small (set it to "
                 "sizeof(sm_gallery_index_stats))",
                 stats->struct_size);
    sm_gallery_index_stats s;
    memset(&s, 0, sizeof s);
    s.struct_size = stats->struct_size;
    s.kind = ix->kind;
    s.candidates = ix->candidates;
    s.effort = ix->effort;
    s.ivf_lists = ix->ivf_lists;
    s.examples = ix->n;
    s.dims_indexed = ix->n_idx;
    s.dims_positive = ix->dims_positive;
    s.positive_weight = ix->positive_weight;
    s.bytes = ix->ops->bytes(ix->handle) + (ix->n_labels + 1) * sizeof *ix->label_start +
              ix->n * sizeof *ix->label_examples + (ix->dim + 1) * sizeof(float) +
              ix->dim * sizeof(uint32_t) + sizeof *ix;
    memcpy(stats, &s, stats->struct_size < sizeof s ? stats->struct_size : sizeof s);
    return SM_OK;
}
