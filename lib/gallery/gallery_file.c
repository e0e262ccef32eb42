/* SPDX-License-Identifier: MIT */
/* Gallery files (docs/gallery.md): safetensors with three tensors,
 *   "embeddings"    F32 [N, D]  the feature vectors, in enrolment order;
 *   "example_label" U32 [N]     each example's label index;
 *   "label_names"   U8  [B]     the labels in index order, each followed by one NUL byte;
 * and the metadata format = "libsiamese-gallery", format_version = "1", arch (the subnet's
 * text), feature_dim, model_id (16 hex digits: sm__model_id of the model that enrolled them) and
 * crc32 over the whole file with its own eight digits read as '0' (as checkpoints do).
 * Labels are numbered in order of their first example (so index order is enrolment order, and
 * a loaded gallery has the same indices). Writes are atomic (file_atomic.c); a read checks
 * everything before it builds the gallery. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "common/alloc.h"
#include "common/error.h"
#include "common/limits.h"
#include "gallery/gallery.h"
#include "io/file_read.h"
#include "io/safetensors.h"
#include "io/sealed.h"

#define GF_FORMAT       "libsiamese-gallery"
#define GF_VERSION      1
#define GF_VERSION_TEXT "1"
#define GF_ROWS_CHUNK   1024 /* feature rows per transfer */

static void put_le32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v, p[1] = (uint8_t)(v >> 8), p[2] = (uint8_t)(v >> 16),
    p[3] = (uint8_t)(v >> 24);
}

static uint32_t get_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* ------------------------------------------------------------------ saving */

/* The data region streams through `chunk` (io/sealed.h runs it twice). */
typedef struct gf_stream {
    const sm_gallery *g;
    uint8_t *chunk;
    float *rows;
    sm__sealed_out *out;
} gf_stream;

static sm_status emit(gf_stream *s, const uint8_t *p, size_t n)
{
    return sm__sealed_emit(s->out, p, n);
}

static sm_status stream_data(void *user, sm__sealed_out *out)
{
    gf_stream *s = user;
    const sm_gallery *g = s->g;
    s->out = out;
    const size_t d = g->dim;
    for (size_t off = 0; off < g->n; off += GF_ROWS_CHUNK) {
        size_t m = g->n - off < GF_ROWS_CHUNK ? g->n - off : GF_ROWS_CHUNK;
        SM_TRY(g->be->ops->download(g->be->ctx, s->rows, g->feat + off * d, m * d * sizeof(float)));
        for (size_t i = 0; i < m * d; i++) {
            uint32_t bits;
            memcpy(&bits, &s->rows[i], 4);
            put_le32(s->chunk + 4 * i, bits);
        }
        SM_TRY(emit(s, s->chunk, m * d * 4));
    }
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
    sm__st_out_tensor t[3] = {
        {"embeddings", SM__ST_F32, 2, {g->n, g->dim}},
        {"example_label", SM__ST_U32, 1, {g->n}},
        {"label_names", SM__ST_U8, 1, {names}},
    };
    char id[17], dim[24];
    snprintf(id, sizeof id, "%016" PRIx64, g->model_id);
    snprintf(dim, sizeof dim, "%zu", g->dim);
    sm__st_out_meta m[6] = {
        {"format", GF_FORMAT, 0}, {"format_version", GF_VERSION_TEXT, 0},
        {"arch", g->arch, 0},     {"feature_dim", dim, 0},
        {"model_id", id, 0},      {"crc32", "00000000", 0},
    };
    gf_stream s = {g, sm__malloc(GF_ROWS_CHUNK * g->dim * 4),
                   sm__malloc(GF_ROWS_CHUNK * g->dim * sizeof(float)), NULL};
    sm_status st =
        s.chunk && s.rows ? SM_OK : sm__fail(SM_ERR_NOMEM, "out of memory saving '%s'", path);
    if (st == SM_OK) st = sm__sealed_write(path, t, 3, m, 6, stream_data, &s, "feature vectors");
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

static sm_status check_header(const sm__st_file *f, const uint8_t *buf, size_t size,
                              const char *name)
{
    return sm__sealed_check(f, buf, size, name, GF_FORMAT, GF_VERSION, "gallery");
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
    const uint8_t *emb, *lab, *names;
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

static sm_status check_tensors(const sm__st_file *f, const uint8_t *buf, size_t dim,
                               const char *name, gf_parts *p)
{
    const sm__st_tensor *e = NULL, *l = NULL, *s = NULL;
    SM_RETURN_IF(f->n_tensors != 3, SM_ERR_FORMAT, "gallery '%s' holds %zu tensors, expected 3",
                 name, f->n_tensors);
    SM_TRY(find_tensor(f, name, "embeddings", SM__ST_F32, 2, &e));
    SM_TRY(find_tensor(f, name, "example_label", SM__ST_U32, 1, &l));
    SM_TRY(find_tensor(f, name, "label_names", SM__ST_U8, 1, &s));
    SM_RETURN_IF(e->shape[1] != dim || l->shape[0] != e->shape[0], SM_ERR_FORMAT,
                 "gallery '%s': embeddings [%" PRIu64 ", %" PRIu64 "] and example_label [%" PRIu64
                 "] do not fit %zu features per example",
                 name, e->shape[0], e->shape[1], l->shape[0], dim);
    SM_RETURN_IF(e->shape[0] > SM__GALLERY_MAX_EXAMPLES, SM_ERR_LIMIT,
                 "gallery '%s' holds more than 2^31 - 1 examples", name);
    p->n = (size_t)e->shape[0];
    p->emb = buf + f->data_off + e->begin;
    p->lab = buf + f->data_off + l->begin;
    p->names = buf + f->data_off + s->begin;
    p->n_names_bytes = s->end - s->begin;
    for (size_t i = 0; i < p->n * dim; i++) {
        uint32_t bits = get_le32(p->emb + 4 * i);
        float v;
        memcpy(&v, &bits, 4);
        SM_RETURN_IF(!(v >= 0.0f && v <= 1.0f), SM_ERR_FORMAT,
                     "gallery '%s': feature vector %zu holds %g at %zu, outside [0, 1]", name,
                     i / dim, (double)v, i % dim);
    }
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

/* Appends the file's examples, in runs of one label. Labels repeated in label_names are
 * caught here: a second name equal to the first makes the count of labels disagree. */
static sm_status fill(sm_gallery *g, const gf_parts *p, const size_t *starts, size_t n_labels,
                      const char *name)
{
    const size_t d = g->dim;
    float *rows = sm__malloc(GF_ROWS_CHUNK * d * sizeof *rows);
    if (!rows) return sm__fail(SM_ERR_NOMEM, "out of memory reading gallery '%s'", name);
    sm_status st = SM_OK;
    for (size_t i = 0; i < p->n && st == SM_OK;) {
        uint32_t lab = get_le32(p->lab + 4 * i);
        size_t m = 1;
        while (i + m < p->n && m < GF_ROWS_CHUNK && get_le32(p->lab + 4 * (i + m)) == lab) m++;
        for (size_t k = 0; k < m * d; k++) {
            uint32_t bits = get_le32(p->emb + 4 * (i * d + k));
            memcpy(&rows[k], &bits, 4);
        }
        st = sm__gallery_append(g, (const char *)p->names + starts[lab], m, rows);
        i += m;
    }
    sm__free(rows);
    if (st == SM_OK && g->n_labels != n_labels)
        st = sm__fail(SM_ERR_FORMAT, "gallery '%s' repeats a label in label_names", name);
    return st;
}

sm_status sm__gallery_load_buffer(const sm_subnet *s, const sm_head *h, const uint8_t *buf,
                                  size_t size, const char *name, sm_gallery **out)
{
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
    st = check_header(&f, buf, size, name);
    if (st == SM_OK) st = sm__gallery_new(s, h, &g);
    if (st == SM_OK) st = check_model(&f, g, name);
    if (st == SM_OK) st = check_tensors(&f, buf, g->dim, name, &p);
    if (st == SM_OK) st = check_labels(&p, name, &starts, &n_labels);
    if (st == SM_OK) st = fill(g, &p, starts, n_labels, name);
    sm__free(starts);
    sm__st_file_free(&f);
    if (st != SM_OK) {
        sm_gallery_destroy(g);
        return st;
    }
    *out = g;
    return SM_OK;
}

SM_API sm_status sm_gallery_load(const sm_subnet *subnet, const sm_head *head, const char *path,
                                 sm_gallery **out)
{
    SM_CHECK_ARG(subnet && head && path && out, "sm_gallery_load: NULL argument");
    SM_CHECK_ARG(subnet->be == head->be, "sm_gallery_load: subnet and head are on different "
                                         "backends");
    SM_RETURN_IF(head->dim != sm_subnet_feature_dim(subnet), SM_ERR_SHAPE,
                 "sm_gallery_load: the head takes %zu features, the subnet gives %zu", head->dim,
                 sm_subnet_feature_dim(subnet));
    uint64_t limit = sm__limit(SM_LIMIT_FILE_BYTES);
    uint8_t *buf = NULL;
    size_t size = 0;
    sm_status st = sm__file_read_all(path, limit, NULL, &buf, &size);
    if (st == SM_ERR_LIMIT) {
        char detail[512];
        snprintf(detail, sizeof detail, "%s", sm_last_error());
        return sm__fail(st, "gallery %s (SM_LIMIT_FILE_BYTES)", detail);
    }
    if (st != SM_OK) return st;
    st = sm__gallery_load_buffer(subnet, head, buf, size, path, out);
    sm__free(buf);
    return st;
}
