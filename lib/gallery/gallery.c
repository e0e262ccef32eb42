/* SPDX-License-Identifier: MIT */
/* Galleries: the handle, its labels and enrolment (include/siamese/gallery.h). */
#include <math.h>
#include <string.h>

#include "common/alloc.h"
#include "common/error.h"
#include "gallery/gallery.h"
#include "io/safetensors.h"

#define ID_CHUNK ((size_t)1 << 18) /* floats per download while fingerprinting */

/* ------------------------------------------------------------------ the model's fingerprint */

static uint64_t fnv1a(uint64_t h, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

static sm_status hash_floats(sm_backend *be, const float *dev, size_t n, float *chunk, uint64_t *h)
{
    for (size_t off = 0; off < n; off += ID_CHUNK) {
        size_t m = n - off < ID_CHUNK ? n - off : ID_CHUNK;
        SM_TRY(be->ops->download(be->ctx, chunk, dev + off, m * sizeof(float)));
        for (size_t i = 0; i < m; i++) {
            uint32_t bits;
            memcpy(&bits, &chunk[i], 4);
            const uint8_t le[4] = {(uint8_t)bits, (uint8_t)(bits >> 8), (uint8_t)(bits >> 16),
                                   (uint8_t)(bits >> 24)};
            *h = fnv1a(*h, le, 4);
        }
    }
    return SM_OK;
}

sm_status sm__model_id(const sm_subnet *s, const sm_head *h, uint64_t *id)
{
    char *arch = NULL;
    SM_TRY(sm__arch_text(&s->arch, &arch));
    uint64_t v = fnv1a(0xcbf29ce484222325ull, (const uint8_t *)arch, strlen(arch) + 1);
    sm__free(arch);
    float *chunk = sm__malloc(ID_CHUNK * sizeof *chunk);
    if (!chunk) return sm__fail(SM_ERR_NOMEM, "out of memory fingerprinting a model");
    sm_status st = hash_floats(s->be, s->params, s->n_params, chunk, &v);
    if (st == SM_OK) st = hash_floats(h->be, h->params, h->n_params, chunk, &v);
    sm__free(chunk);
    if (st == SM_OK) *id = v;
    return st;
}

/* ------------------------------------------------------------------ labels */

sm_status sm__gallery_check_label(const char *fn, const char *label, size_t len)
{
    SM_CHECK_ARG(len > 0, "%s: the label is empty", fn);
    SM_RETURN_IF(len > SM_GALLERY_MAX_LABEL, SM_ERR_LIMIT,
                 "%s: the label '%.40s...' is %zu bytes, at most %d are allowed", fn, label, len,
                 SM_GALLERY_MAX_LABEL);
    SM_CHECK_ARG(sm__utf8_valid((const uint8_t *)label, len), "%s: the label is not UTF-8", fn);
    return SM_OK;
}

static uint64_t str_hash(const char *s)
{
    return fnv1a(0xcbf29ce484222325ull, (const uint8_t *)s, strlen(s));
}

static size_t find_label(const sm_gallery *g, const char *label)
{
    if (!g->hash_cap) return SIZE_MAX;
    size_t mask = g->hash_cap - 1;
    for (size_t i = (size_t)str_hash(label) & mask;; i = (i + 1) & mask) {
        uint32_t v = g->hash[i];
        if (v == 0) return SIZE_MAX;
        if (strcmp(g->labels[v - 1], label) == 0) return v - 1;
    }
}

/* Inserts label index `l` into a table of `cap` slots (a power of 2). */
static void hash_put(uint32_t *t, size_t cap, const char *name, size_t l)
{
    size_t i = (size_t)str_hash(name) & (cap - 1);
    while (t[i]) i = (i + 1) & (cap - 1);
    t[i] = (uint32_t)(l + 1);
}

/* What an append needs beyond what the gallery has, allocated up front so that the gallery
 * changes only once everything is in hand (a failure leaves it, and the allocations it holds,
 * exactly as they were). */
typedef struct growth {
    char *name;    /* a new label's copy */
    char **labels; /* larger label arrays, or NULL */
    size_t *label_n;
    size_t cap_labels;
    uint32_t *hash; /* a larger table, or NULL */
    size_t hash_cap;
    void *rows; /* a larger backend buffer (rows copied), or NULL */
    float *qp;  /* and its U8 scales */
    uint32_t *example_label;
    size_t cap;
} growth;

static void growth_free(sm_gallery *g, growth *w)
{
    sm__free(w->name);
    sm__free(w->labels);
    sm__free(w->label_n);
    sm__free(w->hash);
    sm__be_free(g->be, w->rows);
    sm__be_free(g->be, w->qp);
    sm__free(w->example_label);
}

static sm_status grow_labels(sm_gallery *g, const char *label, growth *w)
{
    if (!(w->name = sm__strdup(label))) return SM_ERR_NOMEM;
    if (g->n_labels == g->cap_labels) {
        w->cap_labels = g->cap_labels ? 2 * g->cap_labels : 16;
        w->labels = sm__malloc(w->cap_labels * sizeof *w->labels);
        w->label_n = sm__malloc(w->cap_labels * sizeof *w->label_n);
        if (!w->labels || !w->label_n) return SM_ERR_NOMEM;
        if (g->n_labels) {
            memcpy(w->labels, g->labels, g->n_labels * sizeof *w->labels);
            memcpy(w->label_n, g->label_n, g->n_labels * sizeof *w->label_n);
        }
    }
    if (2 * (g->n_labels + 1) > g->hash_cap) {
        w->hash_cap = 16;
        while (w->hash_cap < 2 * (g->n_labels + 1)) w->hash_cap *= 2;
        if (!(w->hash = sm__calloc(w->hash_cap, sizeof *w->hash))) return SM_ERR_NOMEM;
        for (size_t l = 0; l < g->n_labels; l++) hash_put(w->hash, w->hash_cap, g->labels[l], l);
    }
    return SM_OK;
}

/* Copies `bytes` from one backend buffer (or the mapped file) to another through a bounded host
 * buffer, so that growing never needs a third copy of the rows. */
static sm_status copy_through_host(sm_gallery *g, void *dst, const void *src, size_t bytes)
{
    const size_t step = bytes < ID_CHUNK * sizeof(float) ? bytes : ID_CHUNK * sizeof(float);
    uint8_t *host = bytes ? sm__malloc(step) : NULL;
    sm_status st =
        bytes && !host ? sm__fail(SM_ERR_NOMEM, "out of memory growing a gallery") : SM_OK;
    for (size_t off = 0; off < bytes && st == SM_OK; off += step) {
        size_t m = bytes - off < step ? bytes - off : step;
        st = g->map ? (memcpy(host, (const uint8_t *)src + off, m), SM_OK)
                    : g->be->ops->download(g->be->ctx, host, (const uint8_t *)src + off, m);
        if (st == SM_OK) st = g->be->ops->upload(g->be->ctx, (uint8_t *)dst + off, host, m);
    }
    sm__free(host);
    return st;
}

/* A backend buffer of at least `need` rows (doubling from cap) holding the current ones. */
static sm_status grow_rows(sm_gallery *g, size_t need, growth *w)
{
    size_t cap = g->cap && !g->map ? g->cap : 64, bytes;
    while (cap < need) cap *= 2;
    SM_RETURN_IF(!sm__mul_size(cap, g->row_bytes, &bytes), SM_ERR_LIMIT,
                 "a gallery of %zu examples is too large", cap);
    w->cap = cap;
    if (!(w->example_label = sm__malloc(cap * sizeof *w->example_label)))
        return sm__fail(SM_ERR_NOMEM, "out of memory growing a gallery");
    if (g->n) memcpy(w->example_label, g->example_label, g->n * sizeof *w->example_label);
    void *p;
    SM_TRY(g->be->ops->alloc(g->be->ctx, bytes, &p));
    w->rows = p;
    if (g->storage == SM_STORAGE_U8) {
        SM_TRY(sm__be_alloc_floats(g->be, 2 * cap, &w->qp));
        SM_TRY(copy_through_host(g, w->qp, g->qp, 2 * g->n * sizeof(float)));
    }
    return copy_through_host(g, w->rows, g->rows, g->n * g->row_bytes);
}

/* Puts the grown rows in place (nothing here can fail). */
static void commit_rows(sm_gallery *g, growth *w)
{
    if (!w->rows) return;
    if (g->map) {
        sm__file_unmap(g->map);
        g->map = NULL;
        sm__be_free(g->be, g->qp); /* a mapped gallery's scales are a buffer of its own */
    } else {
        sm__be_free(g->be, g->rows);
        sm__be_free(g->be, g->qp);
    }
    sm__free(g->example_label);
    g->rows = w->rows, g->qp = w->qp, g->example_label = w->example_label, g->cap = w->cap;
    w->rows = NULL, w->qp = NULL, w->example_label = NULL;
}

sm_status sm__gallery_own_rows(sm_gallery *g, size_t cap)
{
    if (!g->map) return SM_OK;
    growth w = {0};
    sm_status st = grow_rows(g, cap > g->n ? cap : g->n, &w);
    if (st == SM_OK) commit_rows(g, &w);
    growth_free(g, &w);
    return st;
}

sm_status sm__gallery_append_stored(sm_gallery *g, const char *label, size_t n, const void *rows,
                                    const float *qp)
{
    SM_RETURN_IF(n > SM__GALLERY_MAX_EXAMPLES - g->n, SM_ERR_LIMIT,
                 "a gallery holds at most 2^31 - 1 examples");
    size_t idx = find_label(g, label);
    growth w = {0};
    sm_status st = SM_OK;
    if (idx == SIZE_MAX && grow_labels(g, label, &w) != SM_OK)
        st = sm__fail(SM_ERR_NOMEM, "out of memory adding a gallery label");
    /* a mapped gallery is read-only: its first modification copies the rows; NULL rows are
     * a mapped gallery's own, being labelled as it loads (gallery_file.c) */
    const int in_place = rows == NULL;
    if (st == SM_OK && !in_place && (g->n + n > g->cap || g->map)) st = grow_rows(g, g->n + n, &w);
    uint8_t *dst = w.rows ? w.rows : g->rows;
    float *dqp = w.rows ? w.qp : g->qp;
    if (st == SM_OK && !in_place)
        st = g->be->ops->upload(g->be->ctx, dst + g->n * g->row_bytes, rows, n * g->row_bytes);
    if (st == SM_OK && !in_place && g->storage == SM_STORAGE_U8)
        st = g->be->ops->upload(g->be->ctx, dqp + 2 * g->n, qp, 2 * n * sizeof *qp);
    if (st != SM_OK) {
        growth_free(g, &w);
        return st;
    }
    /* commit: nothing below can fail */
    commit_rows(g, &w);
    if (w.labels) {
        sm__free(g->labels);
        sm__free(g->label_n);
        g->labels = w.labels, g->label_n = w.label_n, g->cap_labels = w.cap_labels;
    }
    if (w.hash) {
        sm__free(g->hash);
        g->hash = w.hash, g->hash_cap = w.hash_cap;
    }
    if (idx == SIZE_MAX) {
        idx = g->n_labels++;
        g->labels[idx] = w.name;
        g->label_n[idx] = 0;
        hash_put(g->hash, g->hash_cap, w.name, idx);
    }
    for (size_t i = 0; i < n; i++) g->example_label[g->n + i] = (uint32_t)idx;
    g->n += n;
    g->label_n[idx] += n;
    g->generation++;
    return SM_OK;
}

sm_status sm__gallery_append(sm_gallery *g, const char *label, size_t n, const float *feat)
{
    if (g->storage == SM_STORAGE_F32) return sm__gallery_append_stored(g, label, n, feat, NULL);
    size_t bytes;
    SM_RETURN_IF(!sm__mul_size(n, g->row_bytes, &bytes), SM_ERR_LIMIT,
                 "%zu feature vectors are more than any buffer can hold", n);
    uint8_t *rows = sm__malloc(bytes ? bytes : 1);
    float *qp = g->storage == SM_STORAGE_U8 ? sm__malloc(2 * n * sizeof *qp) : NULL;
    sm_status st = rows && (qp || g->storage != SM_STORAGE_U8)
                       ? SM_OK
                       : sm__fail(SM_ERR_NOMEM, "out of memory enrolling %zu vectors", n);
    if (st == SM_OK) {
        sm__storage_encode(g->storage, n, g->dim, feat, rows, qp);
        st = sm__gallery_append_stored(g, label, n, rows, qp);
    }
    sm__free(rows);
    sm__free(qp);
    return st;
}

void sm__gallery_truncate(sm_gallery *g, size_t n_examples, size_t n_labels)
{
    for (size_t i = n_examples; i < g->n; i++) g->label_n[g->example_label[i]]--;
    if (n_examples != g->n || n_labels != g->n_labels) g->generation++;
    g->n = n_examples;
    for (size_t l = n_labels; l < g->n_labels; l++) sm__free(g->labels[l]);
    if (n_labels == g->n_labels) return;
    g->n_labels = n_labels;
    memset(g->hash, 0, g->hash_cap * sizeof *g->hash);
    for (size_t l = 0; l < g->n_labels; l++) {
        size_t i = (size_t)str_hash(g->labels[l]) & (g->hash_cap - 1);
        while (g->hash[i]) i = (i + 1) & (g->hash_cap - 1);
        g->hash[i] = (uint32_t)(l + 1);
    }
}

/* ------------------------------------------------------------------ lifecycle */

sm_status sm__gallery_new(const sm_subnet *s, const sm_head *h, sm_storage_type storage,
                          sm_gallery **out)
{
    sm_gallery *g = sm__calloc(1, sizeof *g);
    if (!g) return sm__fail(SM_ERR_NOMEM, "out of memory creating a gallery");
    g->subnet = s;
    g->head = h;
    g->be = s->be;
    g->dim = h->dim;
    g->storage = storage;
    g->row_bytes = g->dim * sm__storage_elem(storage);
    sm_status st = sm__arch_text(&s->arch, &g->arch);
    if (st == SM_OK) st = sm__model_id(s, h, &g->model_id);
    if (st != SM_OK) {
        sm_gallery_destroy(g);
        return st;
    }
    *out = g;
    return SM_OK;
}

SM_API sm_status sm_gallery_create(const sm_subnet *subnet, const sm_head *head, sm_gallery **out)
{
    return sm_gallery_create_with(subnet, head, NULL, out);
}

SM_API sm_status sm_gallery_create_with(const sm_subnet *subnet, const sm_head *head,
                                        const sm_gallery_options *options, sm_gallery **out)
{
    SM_CHECK_ARG(subnet && head && out, "sm_gallery_create: NULL argument");
    SM_CHECK_ARG(subnet->be == head->be, "sm_gallery_create: subnet and head are on different "
                                         "backends");
    SM_RETURN_IF(head->dim != sm_subnet_feature_dim(subnet), SM_ERR_SHAPE,
                 "sm_gallery_create: the head takes %zu features, the subnet gives %zu", head->dim,
                 sm_subnet_feature_dim(subnet));
    sm_gallery_options o = SM_GALLERY_OPTIONS_INIT;
    SM_TRY(sm__read_options("sm_gallery_create_with", "sm_gallery_options",
                            "SM_GALLERY_OPTIONS_INIT", &o, sizeof o, options));
    SM_CHECK_ARG(sm__storage_name(o.storage) != NULL,
                 "sm_gallery_create_with: unknown storage type %d (SM_STORAGE_F32, _BF16, _F16 "
                 "or _U8)",
                 (int)o.storage);
    return sm__gallery_new(subnet, head, o.storage, out);
}

SM_API sm_storage_type sm_gallery_storage(const sm_gallery *g)
{
    return g ? g->storage : SM_STORAGE_F32;
}

SM_API int sm_gallery_is_mapped(const sm_gallery *g) { return g && g->map ? 1 : 0; }

SM_API void sm_gallery_destroy(sm_gallery *g)
{
    if (!g) return;
    if (g->map) sm__file_unmap(g->map);
    else sm__be_free(g->be, g->rows);
    sm__be_free(g->be, g->qp);
    for (size_t i = 0; i < g->n_labels; i++) sm__free(g->labels[i]);
    sm__free(g->labels);
    sm__free(g->label_n);
    sm__free(g->hash);
    sm__free(g->example_label);
    sm__free(g->arch);
    sm__free(g);
}

/* ------------------------------------------------------------------ enrolment */

size_t sm__gallery_first_bad(size_t count, const float *f)
{
    for (size_t i = 0; i < count; i++)
        if (!(f[i] >= 0.0f && f[i] <= 1.0f)) return i; /* NaN compares false */
    return SIZE_MAX;
}

sm_status sm__gallery_embed(const sm_gallery *g, const char *fn, size_t n, const float *images,
                            float *feat)
{
    return sm__gallery_embed_at(g, fn, 0, n, images, feat);
}

sm_status sm__gallery_embed_at(const sm_gallery *g, const char *fn, size_t first, size_t n,
                               const float *images, float *feat)
{
    const size_t in = sm__arch_in_size(&g->subnet->arch), d = g->dim;
    for (size_t i = 0; i < n; i++)
        for (size_t k = 0; k < in; k++) {
            float v = images[i * in + k];
            SM_CHECK_ARG(v >= 0.0f && v <= 1.0f,
                         "%s: image %zu has the value %g at pixel %zu, expected [0, 1]", fn,
                         first + i, (double)v, k);
        }
    SM_TRY(sm_embed(g->subnet, n, images, feat));
    /* The pixels are good, so a bad feature is the model's: a sigmoid of finite activations
     * lies in [0, 1], NaN comes from non-finite parameters (or activations that overflow). */
    size_t bad = sm__gallery_first_bad(n * d, feat);
    SM_RETURN_IF(bad != SIZE_MAX, SM_ERR_NUMERIC,
                 "%s: the model embeds image %zu as a feature vector holding %g at %zu, not in "
                 "[0, 1]: the subnet's parameters are not finite",
                 fn, first + bad / d, (double)feat[bad], bad % d);
    return SM_OK;
}

static sm_status check_features(const char *fn, size_t n, size_t dim, const float *f)
{
    size_t bad = sm__gallery_first_bad(n * dim, f);
    SM_CHECK_ARG(bad == SIZE_MAX,
                 "%s: feature vector %zu has the value %g at %zu, expected [0, 1] (a sigmoid "
                 "output of sm_embed; NaN and infinities are refused)",
                 fn, bad / dim, (double)f[bad], bad % dim);
    return SM_OK;
}

static sm_status enrol_args(const char *fn, const sm_gallery *g, const char *label, size_t n,
                            const void *data, size_t per, size_t *bytes)
{
    SM_CHECK_ARG(g && label && data, "%s: NULL argument", fn);
    SM_CHECK_ARG(n >= 1, "%s: no images", fn);
    SM_TRY(sm__gallery_check_label(fn, label, strlen(label)));
    SM_RETURN_IF(!sm__mul_size(n, per, bytes) || !sm__mul_size(*bytes, sizeof(float), bytes),
                 SM_ERR_INVALID_ARG, "%s: %zu images is more than any buffer can hold", fn, n);
    SM_RETURN_IF(n > SM__GALLERY_MAX_EXAMPLES - g->n, SM_ERR_LIMIT,
                 "%s: a gallery holds at most 2^31 - 1 examples", fn);
    return SM_OK;
}

SM_API sm_status sm_gallery_enrol(sm_gallery *g, const char *label, size_t n, const float *images)
{
    size_t bytes;
    SM_TRY(enrol_args("sm_gallery_enrol", g, label, n, images, sm__arch_in_size(&g->subnet->arch),
                      &bytes));
    float *feat = sm__malloc(n * g->dim * sizeof *feat);
    if (!feat) return sm__fail(SM_ERR_NOMEM, "sm_gallery_enrol: out of memory");
    /* every image embedded and checked before the gallery changes: no partial enrolment */
    sm_status st = sm__gallery_embed(g, "sm_gallery_enrol", n, images, feat);
    if (st == SM_OK) st = sm__gallery_append(g, label, n, feat);
    sm__free(feat);
    return st;
}

SM_API sm_status sm_gallery_enrol_embeddings(sm_gallery *g, const char *label, size_t n,
                                             const float *features)
{
    size_t bytes;
    SM_TRY(
        enrol_args("sm_gallery_enrol_embeddings", g, label, n, features, g ? g->dim : 0, &bytes));
    SM_TRY(check_features("sm_gallery_enrol_embeddings", n, g->dim, features));
    return sm__gallery_append(g, label, n, features);
}

SM_API sm_status sm_gallery_remove(sm_gallery *g, const char *label, size_t *removed)
{
    SM_CHECK_ARG(g && label, "sm_gallery_remove: NULL argument");
    size_t idx = find_label(g, label);
    if (idx == SIZE_MAX) {
        if (removed) *removed = 0;
        return SM_OK;
    }
    /* a mapped gallery copies its rows first: the file's pages are read-only */
    SM_TRY(sm__gallery_own_rows(g, g->n));
    /* Compact on the host, then write back: the device buffer is replaced only on success. */
    const size_t rb = g->row_bytes, gone = g->label_n[idx], keep = g->n - gone;
    const int u8 = g->storage == SM_STORAGE_U8;
    size_t cap = 16;
    while (cap < 2 * g->n_labels) cap *= 2;
    uint8_t *host = sm__malloc((g->n ? g->n : 1) * rb);
    float *qp = u8 ? sm__malloc((g->n ? g->n : 1) * 2 * sizeof *qp) : NULL;
    uint32_t *t = sm__calloc(cap, sizeof *t);
    if (!host || !t || (u8 && !qp)) {
        sm__free(host), sm__free(qp), sm__free(t);
        return sm__fail(SM_ERR_NOMEM, "sm_gallery_remove: out of memory");
    }
    sm_status st = g->be->ops->download(g->be->ctx, host, g->rows, g->n * rb);
    if (st == SM_OK && u8) st = g->be->ops->download(g->be->ctx, qp, g->qp, 2 * g->n * sizeof *qp);
    size_t w = 0;
    for (size_t i = 0; i < g->n && st == SM_OK; i++)
        if (g->example_label[i] != idx) {
            if (w != i) {
                memmove(host + w * rb, host + i * rb, rb);
                if (u8) qp[2 * w] = qp[2 * i], qp[2 * w + 1] = qp[2 * i + 1];
            }
            w++;
        }
    if (st == SM_OK && keep) st = g->be->ops->upload(g->be->ctx, g->rows, host, keep * rb);
    if (st == SM_OK && keep && u8)
        st = g->be->ops->upload(g->be->ctx, g->qp, qp, 2 * keep * sizeof *qp);
    sm__free(host);
    sm__free(qp);
    if (st != SM_OK) {
        sm__free(t);
        return st;
    }
    w = 0;
    for (size_t i = 0; i < g->n; i++) {
        uint32_t l = g->example_label[i];
        if (l != idx) g->example_label[w++] = l > idx ? l - 1 : l;
    }
    g->n = keep;
    sm__free(g->labels[idx]);
    memmove(g->labels + idx, g->labels + idx + 1, (g->n_labels - idx - 1) * sizeof *g->labels);
    memmove(g->label_n + idx, g->label_n + idx + 1, (g->n_labels - idx - 1) * sizeof *g->label_n);
    g->n_labels--;
    /* the new table was allocated up front: rebuilding it cannot fail */
    for (size_t l = 0; l < g->n_labels; l++) {
        size_t i = (size_t)str_hash(g->labels[l]) & (cap - 1);
        while (t[i]) i = (i + 1) & (cap - 1);
        t[i] = (uint32_t)(l + 1);
    }
    sm__free(g->hash);
    g->hash = t;
    g->hash_cap = cap;
    g->generation++;
    if (removed) *removed = gone;
    return SM_OK;
}

/* ------------------------------------------------------------------ queries */

SM_API size_t sm_gallery_num_examples(const sm_gallery *g) { return g ? g->n : 0; }
SM_API size_t sm_gallery_num_labels(const sm_gallery *g) { return g ? g->n_labels : 0; }

SM_API const char *sm_gallery_label_name(const sm_gallery *g, size_t index)
{
    return g && index < g->n_labels ? g->labels[index] : NULL;
}

SM_API size_t sm_gallery_label_examples(const sm_gallery *g, size_t index)
{
    return g && index < g->n_labels ? g->label_n[index] : 0;
}

SM_API size_t sm_gallery_find_label(const sm_gallery *g, const char *label)
{
    return g && label ? find_label(g, label) : SIZE_MAX;
}

SM_API double sm_gallery_bytes_per_example(const sm_gallery *g)
{
    if (!g || g->n == 0) return 0.0;
    const double scales = g->storage == SM_STORAGE_U8 ? 2 * sizeof(float) : 0;
    double bytes = (double)g->cap * ((double)g->row_bytes + scales + sizeof(uint32_t));
    for (size_t l = 0; l < g->n_labels; l++) bytes += (double)strlen(g->labels[l]) + 1;
    bytes += (double)g->cap_labels * (sizeof(char *) + sizeof(size_t)) +
             (double)g->hash_cap * sizeof(uint32_t);
    return bytes / (double)g->n;
}
