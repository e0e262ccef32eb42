/* SPDX-License-Identifier: MIT */
/* Gallery files (docs/gallery.md): safetensors with the tensors, in this order in the file,
 *   "embeddings"       [N, D]    the feature vectors in the gallery's storage type (F32, BF16,
 *                                F16 or U8), in enrolment order, first in the data region,
 *                                which starts at a multiple of 64 bytes (mapped in place);
 *   "embedding_scales" F32 [N, 2] U8 storage only: each vector's offset and scale;
 *   "example_label"    U32 [N]   each example's label index;
 *   "label_names"      U8  [B]   the labels in index order, each followed by one NUL byte;
 * and the metadata format = "libsiamese-gallery", format_version, arch (the subnet's text),
 * feature_dim, model_id (16 hex digits: sm__model_id of the model that enrolled them), storage
 * ("f32", "bf16", "f16", "u8"), rows_crc32 (the CRC-32 of the embeddings' bytes alone) and
 * crc32 over the whole file with its own eight digits read as '0' (as checkpoints do).
 * format_version is 1 for F32 galleries, which 0.3 and 0.4 read as they always did (they skip
 * the metadata they do not know), and 2 for the other storage types, which they refuse as a
 * newer format. A version 1 file without `storage` is F32. Labels are numbered in order of their
 * first example (so index order is enrolment order, and a loaded gallery has the same indices).
 * Writes are atomic (file_atomic.c); a read checks everything before it builds the gallery,
 * except the rows' bytes when asked to skip them (sm_gallery_load_options). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "common/error.h"
#include "common/limits.h"
#include "gallery/gallery.h"
#include "io/file_map.h"
#include "io/file_read.h"
#include "io/safetensors.h"
#include "io/sealed.h"

#define GF_FORMAT     "libsiamese-gallery"
#define GF_VERSION    2 /* the newest this library reads */
#define GF_ALIGN      64
#define GF_ROWS_CHUNK 1024 /* feature rows per transfer */
#define GF_ROWS_CRC   "rows_crc32"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define GF_HOST_LE 1 /* the file's byte order: its rows can be used in place */
#else
#define GF_HOST_LE 0
#endif

static void put_le32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v, p[1] = (uint8_t)(v >> 8), p[2] = (uint8_t)(v >> 16),
    p[3] = (uint8_t)(v >> 24);
}

static uint32_t get_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static const sm__st_dtype row_dtypes[] = {SM__ST_F32, SM__ST_BF16, SM__ST_F16, SM__ST_U8};

/* `count` stored elements of `es` bytes between host order and the file's little-endian order
 * (the same swap both ways). */
static void swap_le(size_t es, size_t count, const uint8_t *src, uint8_t *dst)
{
    if (GF_HOST_LE || es == 1) {
        memcpy(dst, src, count * es);
        return;
    }
    for (size_t i = 0; i < count; i++)
        for (size_t b = 0; b < es; b++) dst[i * es + b] = src[i * es + es - 1 - b];
}

/* ------------------------------------------------------------------ saving */

/* The data region streams through `chunk` (io/sealed.h runs it twice). */
typedef struct gf_stream {
    const sm_gallery *g;
    uint8_t *chunk, *rows;
    sm__sealed_out *out;
} gf_stream;

static sm_status emit(gf_stream *s, const uint8_t *p, size_t n)
{
    return sm__sealed_emit(s->out, p, n);
}

/* `n` floats of a backend buffer, little-endian, in chunks. */
static sm_status stream_floats(gf_stream *s, const float *dev, size_t n)
{
    const sm_gallery *g = s->g;
    const size_t step = GF_ROWS_CHUNK * 2;
    for (size_t off = 0; off < n; off += step) {
        size_t m = n - off < step ? n - off : step;
        SM_TRY(g->be->ops->download(g->be->ctx, s->rows, dev + off, m * sizeof(float)));
        swap_le(4, m, s->rows, s->chunk);
        SM_TRY(emit(s, s->chunk, m * 4));
    }
    return SM_OK;
}

static sm_status stream_data(void *user, sm__sealed_out *out)
{
    gf_stream *s = user;
    const sm_gallery *g = s->g;
    s->out = out;
    const size_t rb = g->row_bytes, es = sm__storage_elem(g->storage);
    for (size_t off = 0; off < g->n; off += GF_ROWS_CHUNK) {
        size_t m = g->n - off < GF_ROWS_CHUNK ? g->n - off : GF_ROWS_CHUNK;
        const uint8_t *src = (const uint8_t *)g->rows + off * rb;
        if (g->map) memcpy(s->rows, src, m * rb); /* a mapped file's rows: host memory */
        else SM_TRY(g->be->ops->download(g->be->ctx, s->rows, src, m * rb));
        swap_le(es, m * g->dim, s->rows, s->chunk);
        SM_TRY(emit(s, s->chunk, m * rb));
    }
    if (g->storage == SM_STORAGE_U8) SM_TRY(stream_floats(s, g->qp, 2 * g->n));
    for (size_t off = 0; off < g->n; off += GF_ROWS_CHUNK) {
        size_t m = g->n - off < GF_ROWS_CHUNK ? g->n - off : GF_ROWS_CHUNK;
        for (size_t i = 0; i < m; i++) put_le32(s->chunk + 4 * i, g->example_label[off + i]);
        SM_TRY(emit(s, s->chunk, 4 * m));
    }
    for (size_t l = 0; l < g->n_labels; l++)
        SM_TRY(emit(s, (const uint8_t *)g->labels[l], strlen(g->labels[l]) + 1));
    return SM_OK;
}

SM_API sm_status sm_gallery_save(const sm_gallery *g, const char *path)
{
    SM_CHECK_ARG(g && path && *path, "sm_gallery_save: NULL argument or empty path");
    size_t names = 0;
    for (size_t l = 0; l < g->n_labels; l++) names += strlen(g->labels[l]) + 1;
    const int u8 = g->storage == SM_STORAGE_U8;
    sm__st_out_tensor t[4] = {{"embeddings", row_dtypes[g->storage], 2, {g->n, g->dim}}};
    size_t nt = 1;
    if (u8) t[nt++] = (sm__st_out_tensor){"embedding_scales", SM__ST_F32, 2, {g->n, 2}};
    t[nt++] = (sm__st_out_tensor){"example_label", SM__ST_U32, 1, {g->n}};
    t[nt++] = (sm__st_out_tensor){"label_names", SM__ST_U8, 1, {names}};
    char id[17], dim[24];
    snprintf(id, sizeof id, "%016" PRIx64, g->model_id);
    snprintf(dim, sizeof dim, "%zu", g->dim);
    sm__st_out_meta m[8] = {
        {"format", GF_FORMAT, 0},
        {"format_version", g->storage == SM_STORAGE_F32 ? "1" : "2", 0},
        {"arch", g->arch, 0},
        {"feature_dim", dim, 0},
        {"model_id", id, 0},
        {"storage", sm__storage_name(g->storage), 0},
        {GF_ROWS_CRC, "00000000", 0},
        {"crc32", "00000000", 0},
    };
    const size_t chunk = GF_ROWS_CHUNK * (g->row_bytes > 8 ? g->row_bytes : 8);
    gf_stream s = {g, sm__malloc(chunk), sm__malloc(chunk), NULL};
    sm__sealed_opts o = {GF_ALIGN, GF_ROWS_CRC, 0, (uint64_t)g->n * g->row_bytes};
    sm_status st =
        s.chunk && s.rows ? SM_OK : sm__fail(SM_ERR_NOMEM, "out of memory saving '%s'", path);
    if (st == SM_OK)
        st = sm__sealed_write_with(path, t, nt, m, 8, stream_data, &s, "feature vectors", &o);
    sm__free(s.chunk);
    sm__free(s.rows);
    return st;
}

/* ------------------------------------------------------------------ loading */

static const char *meta(const sm__st_file *f, const char *key)
{
    const sm__st_kv *kv = sm__st_meta(f, key);
    return kv ? kv->value : NULL;
}

/* The version and seal hold (the rows read or not, as asked: *rows_read says which), and the
 * storage type is known. */
static sm_status check_header(const sm__st_file *f, const uint8_t *buf, size_t size,
                              const char *name, int read_rows, int *rows_read,
                              sm_storage_type *storage)
{
    const sm__st_tensor *e = sm__st_find(f, "embeddings");
    const uint64_t pb = e ? f->data_off + e->begin : 0, pe = e ? f->data_off + e->end : 0;
    SM_TRY(sm__sealed_check_with(f, buf, size, name, GF_FORMAT, GF_VERSION, "gallery",
                                 e ? GF_ROWS_CRC : NULL, pb, pe, read_rows, rows_read));
    const char *ver = meta(f, "format_version"), *st = meta(f, "storage");
    int t = st ? sm__storage_parse(st) : SM_STORAGE_F32;
    SM_RETURN_IF(t < 0 || (!st && strcmp(ver, "1") != 0) ||
                     (t != SM_STORAGE_F32 && !strcmp(ver, "1")),
                 SM_ERR_FORMAT,
                 "gallery '%s': storage '%.20s' in a version %s file (version 1: f32; 2: f32, "
                 "bf16, f16 or u8)",
                 name, st ? st : "(none)", ver);
    *storage = (sm_storage_type)t;
    return SM_OK;
}

/* The file belongs to this model: the same architecture, feature size and fingerprint. */
static sm_status check_model(const sm__st_file *f, const sm_gallery *g, const char *name)
{
    const char *arch = meta(f, "arch"), *dim = meta(f, "feature_dim"), *id = meta(f, "model_id");
    uint64_t v;
    SM_RETURN_IF(!arch || !dim || !id, SM_ERR_FORMAT,
                 "gallery '%s' lacks the metadata 'arch', 'feature_dim' or 'model_id'", name);
    SM_RETURN_IF(strlen(id) != 16 || !sm__parse_hex(id, 16, &v), SM_ERR_FORMAT,
                 "gallery '%s': model_id '%.20s' is not 16 lowercase hex digits", name, id);
    SM_RETURN_IF(strcmp(arch, g->arch) != 0, SM_ERR_SHAPE,
                 "gallery '%s' was enrolled with the architecture '%.200s', this model is "
                 "'%.200s'",
                 name, arch, g->arch);
    char mine[24];
    snprintf(mine, sizeof mine, "%zu", g->dim);
    SM_RETURN_IF(strcmp(dim, mine) != 0, SM_ERR_SHAPE,
                 "gallery '%s' holds %.20s features per example, this model gives %zu", name, dim,
                 g->dim);
    SM_RETURN_IF(v != g->model_id, SM_ERR_SHAPE,
                 "gallery '%s' was enrolled with another model (model id %016" PRIx64 ", this "
                 "model's is %016" PRIx64 "): enrol its images again with this model",
                 name, v, g->model_id);
    return SM_OK;
}

typedef struct gf_parts {
    const uint8_t *emb, *scales, *lab, *names;
    size_t n, n_names_bytes;
} gf_parts;

static sm_status find_tensor(const sm__st_file *f, const char *name, const char *t_name,
                             sm__st_dtype dt, size_t rank, const sm__st_tensor **out)
{
    const sm__st_tensor *t = sm__st_find(f, t_name);
    SM_RETURN_IF(!t, SM_ERR_FORMAT, "gallery '%s' lacks the tensor '%s'", name, t_name);
    SM_RETURN_IF(t->dtype != dt || t->rank != rank, SM_ERR_FORMAT,
                 "gallery '%s': tensor '%s' is %s of rank %zu, expected %s of rank %zu", name,
                 t_name, sm__st_dtype_name(t->dtype), t->rank, sm__st_dtype_name(dt), rank);
    *out = t;
    return SM_OK;
}

/* The tensors' types and shapes; U8 galleries' scales read and checked (8 bytes a row). The
 * rows themselves are checked as they are copied (fill), or here when used in place. */
static sm_status check_tensors(const sm__st_file *f, const uint8_t *buf, const sm_gallery *g,
                               const char *name, gf_parts *p)
{
    const sm__st_tensor *e = NULL, *l = NULL, *s = NULL, *q = NULL;
    const int u8 = g->storage == SM_STORAGE_U8;
    SM_RETURN_IF(f->n_tensors != 3u + u8, SM_ERR_FORMAT,
                 "gallery '%s' holds %zu tensors, expected %d", name, f->n_tensors, 3 + u8);
    SM_TRY(find_tensor(f, name, "embeddings", row_dtypes[g->storage], 2, &e));
    SM_TRY(find_tensor(f, name, "example_label", SM__ST_U32, 1, &l));
    SM_TRY(find_tensor(f, name, "label_names", SM__ST_U8, 1, &s));
    if (u8) SM_TRY(find_tensor(f, name, "embedding_scales", SM__ST_F32, 2, &q));
    SM_RETURN_IF(e->shape[1] != g->dim || l->shape[0] != e->shape[0] ||
                     (q && (q->shape[0] != e->shape[0] || q->shape[1] != 2)),
                 SM_ERR_FORMAT,
                 "gallery '%s': embeddings [%" PRIu64 ", %" PRIu64 "] and example_label [%" PRIu64
                 "] do not fit %zu features per example",
                 name, e->shape[0], e->shape[1], l->shape[0], g->dim);
    SM_RETURN_IF(e->shape[0] > SM__GALLERY_MAX_EXAMPLES, SM_ERR_LIMIT,
                 "gallery '%s' holds more than 2^31 - 1 examples", name);
    p->n = (size_t)e->shape[0];
    p->emb = buf + f->data_off + e->begin;
    p->scales = q ? buf + f->data_off + q->begin : NULL;
    p->lab = buf + f->data_off + l->begin;
    p->names = buf + f->data_off + s->begin;
    p->n_names_bytes = s->end - s->begin;
    return SM_OK;
}

/* The first of `m` stored rows (host order) that a search could not use: SM_ERR_FORMAT naming
 * it (`first` is its number in the file). */
static sm_status check_rows(const sm_gallery *g, const char *name, size_t first, size_t m,
                            const void *rows, const float *qp)
{
    size_t at = 0, bad = sm__storage_first_bad(g->storage, m, g->dim, rows, qp, &at);
    SM_RETURN_IF(bad != SIZE_MAX && at == g->dim, SM_ERR_FORMAT,
                 "gallery '%s': feature vector %zu has an offset %g and scale %g that leave "
                 "[0, 1]",
                 name, first + bad, (double)qp[2 * bad], (double)qp[2 * bad + 1]);
    SM_RETURN_IF(bad != SIZE_MAX, SM_ERR_FORMAT,
                 "gallery '%s': feature vector %zu holds a value outside [0, 1] at %zu", name,
                 first + bad, at);
    return SM_OK;
}

/* Splits label_names into labels (each UTF-8, 1..SM_GALLERY_MAX_LABEL bytes, NUL-ended, unique)
 * and checks example_label: every index in range, labels numbered by first appearance, none
 * without examples. `starts` receives each label's offset. */
static sm_status check_labels(const gf_parts *p, const char *name, size_t **starts_out,
                              size_t *n_labels)
{
    size_t n = 0;
    for (size_t i = 0; i < p->n_names_bytes; i++) n += p->names[i] == 0;
    SM_RETURN_IF(p->n_names_bytes && p->names[p->n_names_bytes - 1] != 0, SM_ERR_FORMAT,
                 "gallery '%s': label_names does not end in a NUL byte", name);
    size_t *starts = sm__malloc((n ? n : 1) * sizeof *starts);
    if (!starts) return sm__fail(SM_ERR_NOMEM, "out of memory reading gallery '%s'", name);
    sm_status st = SM_OK;
    for (size_t i = 0, l = 0; i < p->n_names_bytes && st == SM_OK; l++) {
        const char *s = (const char *)p->names + i;
        size_t len = strlen(s);
        starts[l] = i;
        if (len == 0 || len > SM_GALLERY_MAX_LABEL || !sm__utf8_valid((const uint8_t *)s, len))
            st = sm__fail(SM_ERR_FORMAT,
                          "gallery '%s': label %zu is empty, longer than %d "
                          "bytes or not UTF-8",
                          name, l, SM_GALLERY_MAX_LABEL);
        i += len + 1;
    }
    /* every label used, numbered by first appearance */
    uint32_t next = 0;
    for (size_t i = 0; i < p->n && st == SM_OK; i++) {
        uint32_t v = get_le32(p->lab + 4 * i);
        if (v > next || v >= n)
            st = sm__fail(SM_ERR_FORMAT,
                          "gallery '%s': example %zu has the label index %" PRIu32
                          " (labels: %zu, next new one: %" PRIu32 ")",
                          name, i, v, n, next);
        else if (v == next) next++;
    }
    if (st == SM_OK && next != n)
        st = sm__fail(SM_ERR_FORMAT, "gallery '%s' names %zu labels, its examples use %" PRIu32,
                      name, n, next);
    if (st != SM_OK) {
        sm__free(starts);
        return st;
    }
    *starts_out = starts;
    *n_labels = n;
    return SM_OK;
}

/* The U8 scales of the file, host order, into a fresh host array (n x 2). */
static sm_status read_scales(const gf_parts *p, const char *name, float **out)
{
    float *qp = sm__malloc((p->n ? p->n : 1) * 2 * sizeof *qp);
    if (!qp) return sm__fail(SM_ERR_NOMEM, "out of memory reading gallery '%s'", name);
    swap_le(4, 2 * p->n, p->scales, (uint8_t *)qp);
    *out = qp;
    return SM_OK;
}

/* Appends the file's examples, in runs of one label, copying the rows (checked, unless asked
 * not to). Labels repeated in label_names are caught here: a second name equal to the first
 * makes the count of labels disagree. */
static sm_status fill(sm_gallery *g, const gf_parts *p, const size_t *starts, const float *qp,
                      int check, const char *name)
{
    const size_t rb = g->row_bytes, es = sm__storage_elem(g->storage);
    uint8_t *rows = sm__malloc(GF_ROWS_CHUNK * rb);
    if (!rows) return sm__fail(SM_ERR_NOMEM, "out of memory reading gallery '%s'", name);
    sm_status st = SM_OK;
    for (size_t i = 0; i < p->n && st == SM_OK;) {
        uint32_t lab = get_le32(p->lab + 4 * i);
        size_t m = 1;
        while (i + m < p->n && m < GF_ROWS_CHUNK && get_le32(p->lab + 4 * (i + m)) == lab) m++;
        swap_le(es, m * g->dim, p->emb + i * rb, rows);
        const float *q = qp ? qp + 2 * i : NULL;
        if (check) st = check_rows(g, name, i, m, rows, q);
        if (st == SM_OK)
            st = sm__gallery_append_stored(g, (const char *)p->names + starts[lab], m, rows, q);
        i += m;
    }
    sm__free(rows);
    return st;
}

/* The same with the rows used in place in the mapped file (checked unless asked not to): the
 * gallery takes the mapping over on success. */
static sm_status fill_mapped(sm_gallery *g, const gf_parts *p, const size_t *starts,
                             const float *qp, int check, sm__mapped_file *map, const char *name)
{
    if (check) SM_TRY(check_rows(g, name, 0, p->n, p->emb, qp));
    g->example_label = sm__malloc((p->n ? p->n : 1) * sizeof *g->example_label);
    if (!g->example_label)
        return sm__fail(SM_ERR_NOMEM, "out of memory reading gallery '%s'", name);
    if (qp) {
        SM_TRY(sm__be_alloc_floats(g->be, 2 * (p->n ? p->n : 1), &g->qp));
        SM_TRY(g->be->ops->upload(g->be->ctx, g->qp, qp, 2 * p->n * sizeof *qp));
    }
    g->rows = (void *)p->emb; /* read-only: every modification copies first (gallery.c) */
    g->cap = p->n;
    g->map = map;
    for (size_t i = 0; i < p->n;) {
        uint32_t lab = get_le32(p->lab + 4 * i);
        size_t m = 1;
        while (i + m < p->n && get_le32(p->lab + 4 * (i + m)) == lab) m++;
        sm_status st =
            sm__gallery_append_stored(g, (const char *)p->names + starts[lab], m, NULL, NULL);
        if (st != SM_OK) {
            g->map = NULL; /* still the caller's */
            g->rows = NULL;
            return st;
        }
        i += m;
    }
    return SM_OK;
}

sm_status sm__gallery_load_buffer(const sm_subnet *s, const sm_head *h, const uint8_t *buf,
                                  size_t size, const char *name,
                                  const sm_gallery_load_options *opts, sm__mapped_file *map,
                                  int *mapped, sm_gallery **out)
{
    static const sm_gallery_load_options defaults = SM_GALLERY_LOAD_OPTIONS_INIT;
    const sm_gallery_load_options *o = opts ? opts : &defaults;
    if (mapped) *mapped = 0;
    sm__st_file f;
    sm_status st = sm__st_parse(buf, size, &f);
    if (st != SM_OK) {
        char detail[512];
        snprintf(detail, sizeof detail, "%s", sm_last_error());
        return sm__fail(st, "gallery '%s': %s", name, detail);
    }
    sm_gallery *g = NULL;
    gf_parts p = {0};
    size_t *starts = NULL, n_labels = 0;
    float *qp = NULL;
    int rows_read = 1;
    sm_storage_type storage = SM_STORAGE_F32;
    st = check_header(&f, buf, size, name, !o->skip_row_check, &rows_read, &storage);
    if (st == SM_OK) st = sm__gallery_new(s, h, storage, &g);
    if (st == SM_OK) st = check_model(&f, g, name);
    if (st == SM_OK) st = check_tensors(&f, buf, g, name, &p);
    if (st == SM_OK) st = check_labels(&p, name, &starts, &n_labels);
    if (st == SM_OK && p.scales) st = read_scales(&p, name, &qp);
    /* the scales were read: they are checked whatever the rows */
    if (st == SM_OK && qp && !rows_read) st = check_rows(g, name, 0, p.n, NULL, qp);
    const int in_place = st == SM_OK && map && !o->no_map && GF_HOST_LE &&
                         ((uintptr_t)p.emb % GF_ALIGN) == 0 &&
                         sm__backend_props(g->be)->host_memory;
    if (st == SM_OK && in_place) st = fill_mapped(g, &p, starts, qp, rows_read, map, name);
    else if (st == SM_OK) st = fill(g, &p, starts, qp, rows_read, name);
    if (st == SM_OK && g->n_labels != n_labels)
        st = sm__fail(SM_ERR_FORMAT, "gallery '%s' repeats a label in label_names", name);
    sm__free(starts);
    sm__free(qp);
    sm__st_file_free(&f);
    if (st != SM_OK) {
        if (g && g->map) g->map = NULL, g->rows = NULL; /* the mapping stays the caller's */
        sm_gallery_destroy(g);
        return st;
    }
    if (mapped) *mapped = g->map != NULL;
    *out = g;
    return SM_OK;
}

SM_API sm_status sm_gallery_load(const sm_subnet *subnet, const sm_head *head, const char *path,
                                 sm_gallery **out)
{
    return sm_gallery_load_with(subnet, head, path, NULL, out);
}

SM_API sm_status sm_gallery_load_with(const sm_subnet *subnet, const sm_head *head,
                                      const char *path, const sm_gallery_load_options *options,
                                      sm_gallery **out)
{
    SM_CHECK_ARG(subnet && head && path && out, "sm_gallery_load: NULL argument");
    SM_CHECK_ARG(subnet->be == head->be, "sm_gallery_load: subnet and head are on different "
                                         "backends");
    SM_RETURN_IF(head->dim != sm_subnet_feature_dim(subnet), SM_ERR_SHAPE,
                 "sm_gallery_load: the head takes %zu features, the subnet gives %zu", head->dim,
                 sm_subnet_feature_dim(subnet));
    sm_gallery_load_options o = SM_GALLERY_LOAD_OPTIONS_INIT;
    SM_TRY(sm__read_options("sm_gallery_load_with", "sm_gallery_load_options",
                            "SM_GALLERY_LOAD_OPTIONS_INIT", &o, sizeof o, options));
    if (options) {
        SM_CHECK_ARG((o.no_map == 0 || o.no_map == 1) &&
                         (o.skip_row_check == 0 || o.skip_row_check == 1),
                     "sm_gallery_load_with: no_map and skip_row_check take 0 or 1");
    }
    uint64_t limit = sm__limit(SM_LIMIT_FILE_BYTES);
    /* A host-memory backend can search the file's pages in place: map it (when its rows turn
     * out not to be aligned, they are copied from the mapping as from a buffer). */
    const int try_map = !o.no_map && GF_HOST_LE && sm__backend_props(subnet->be)->host_memory;
    sm__mapped_file *map = NULL;
    uint8_t *buf = NULL;
    size_t size = 0;
    sm_status st = try_map ? sm__file_map(path, limit, NULL, &map)
                           : sm__file_read_all(path, limit, NULL, &buf, &size);
    if (st == SM_ERR_LIMIT) {
        char detail[512];
        snprintf(detail, sizeof detail, "%s", sm_last_error());
        return sm__fail(st, "gallery %s (SM_LIMIT_FILE_BYTES)", detail);
    }
    if (st != SM_OK) return st;
    int mapped = 0;
    if (map)
        st = sm__gallery_load_buffer(subnet, head, map->base, map->size, path, &o, map, &mapped,
                                     out);
    else st = sm__gallery_load_buffer(subnet, head, buf, size, path, &o, NULL, NULL, out);
    if (!mapped) sm__file_unmap(map); /* rows copied (or a failure): the mapping goes */
    sm__free(buf);
    return st;
}
