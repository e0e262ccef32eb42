/* SPDX-License-Identifier: MIT */
/* Checkpoints: model and trainer state as safetensors files a PyTorch user can load as is
 * (docs/checkpoint-format.md). Tensor data crosses between backend buffers and the file in
 * bounded chunks, so saving or loading never needs a second host copy of the model.
 *
 * Loading validates the whole file (structure, checksum, metadata, every tensor's presence,
 * shape and finiteness) before it touches anything in memory, so a refused file changes
 * nothing. The checksum covers the whole file, header included, with its own eight hex digits
 * counted as '0': the header carries the iteration, Adam's hyperparameters and the RNG state,
 * which a data-only checksum would leave unprotected. */
#include <inttypes.h>
#include <locale.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "common/alloc.h"
#include "common/error.h"
#include "common/limits.h"
#include "data/sampler.h"
#include "io/file_read.h"
#include "io/safetensors.h"
#include "io/sealed.h"
#include "train/settings.h"
#include "train/training.h"

#define CK_FORMAT       "libsiamese-checkpoint"
#define CK_VERSION      1
#define CK_VERSION_TEXT "1"
#define CK_CHUNK        ((size_t)1 << 20) /* bytes per download/upload; a multiple of 4 */

/* The backend buffers a checkpoint tensor lives in. */
enum ck_buf { BUF_SUB_P, BUF_HEAD_P, BUF_M_SUB, BUF_M_HEAD, BUF_V_SUB, BUF_V_HEAD, BUF_COUNT };

typedef struct ck_tensor {
    char name[96];
    size_t rank;
    uint64_t shape[4];
    enum ck_buf buf;
    size_t off, count; /* floats within the buffer */
} ck_tensor;

typedef struct ck_list {
    ck_tensor *t;
    size_t n;
} ck_list;

typedef struct ck_bufs {
    sm_backend *be[BUF_COUNT];
    float *p[BUF_COUNT];
} ck_bufs;

/* Everything a trainer file says beyond its tensors: the state, and a value per setting
 * (train/settings.h: the table's order; absent keys hold the table's `absent`). */
typedef struct ck_state {
    int64_t iteration, adam_t;
    uint64_t seed;
    uint64_t sampler[4];
    int has_sampler;
    /* since 0.2; a file without it is from before augmentation existed: it was off */
    int has_augment;
    uint64_t augment_state[4];
    double setting[SM__MAX_SETTINGS];
} ck_state;

typedef struct ck_file {
    uint8_t *buf;
    size_t size;
    sm__st_file st;
    int is_trainer;
    const char *arch;    /* metadata value, owned by st */
    sm__calibration cal; /* since 0.4; off when the file has none */
    ck_state state;      /* trainer files only */
} ck_file;

/* The calibration keys (since 0.4): all or none; none is an uncalibrated head, as in every
 * older file. */
static const char *const cal_keys[] = {"calibration", "calibration_scale", "calibration_shift",
                                       "calibration_pairs"};
#define CAL_KEYS (sizeof cal_keys / sizeof cal_keys[0])

/* ------------------------------------------------------------------ helpers */

static int host_is_le(void)
{
    const uint32_t one = 1;
    uint8_t b;
    memcpy(&b, &one, 1);
    return b == 1;
}

/* Converts 4-byte words between host order and the file's little-endian order (the same
 * operation both ways). */
static void words_to_from_le(uint8_t *p, size_t bytes)
{
    if (host_is_le()) return;
    for (size_t i = 0; i + 4 <= bytes; i += 4) {
        uint8_t a = p[i], b = p[i + 1];
        p[i] = p[i + 3], p[i + 1] = p[i + 2], p[i + 2] = b, p[i + 3] = a;
    }
}

static void fmt_shape(char *out, size_t cap, const uint64_t *shape, size_t rank)
{
    size_t len = 0;
    out[0] = 0;
    len += (size_t)snprintf(out, cap, "[");
    for (size_t i = 0; i < rank && len < cap; i++)
        len += (size_t)snprintf(out + len, cap - len, "%s%" PRIu64, i ? ", " : "", shape[i]);
    if (len < cap) snprintf(out + len, cap - len, "]");
}

/* ------------------------------------------------------------------ tensor list */

static void add_tensor(ck_list *l, const char *name, enum ck_buf buf, size_t off, size_t count,
                       size_t rank, const uint64_t *shape)
{
    ck_tensor *t = &l->t[l->n++];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    t->buf = buf;
    t->off = off;
    t->count = count;
    t->rank = rank;
    memcpy(t->shape, shape, rank * sizeof *shape);
}

/* The tensors of a checkpoint for `arch` (+ a head of `dim` features), in PyTorch state_dict
 * order: "subnet.<layer>.weight/bias" with <layer> the index in the arch (= the nn.Sequential
 * index), then "head.weight/bias"; with Adam, "adam.m.<name>" for each, then "adam.v.<name>". */
static sm_status build_list(const sm_arch *arch, size_t dim, int with_adam, ck_list *out)
{
    size_t n_param_layers = 0;
    for (size_t i = 0; i < arch->n_layers; i++)
        if (arch->layers[i].n_w) n_param_layers++;
    size_t per = 2 * n_param_layers + 2, total = with_adam ? 3 * per : per;
    ck_list l = {sm__calloc(total, sizeof(ck_tensor)), 0};
    if (!l.t) return sm__fail(SM_ERR_NOMEM, "out of memory listing checkpoint tensors");

    for (size_t i = 0; i < arch->n_layers; i++) {
        const sm__layer *ly = &arch->layers[i];
        if (!ly->n_w) continue;
        /* PyTorch's shapes: Conv2d weight [out, in, k, k], Linear [out, in], bias [out];
         * GroupNorm weight and bias [channels] (no running statistics: it has none) */
        const bool gn = ly->kind == SM_LAYER_GROUPNORM;
        const uint64_t outs = gn ? (uint64_t)ly->in_c : (uint64_t)ly->a;
        uint64_t ws[4], bs[1] = {outs};
        size_t wr;
        if (ly->kind == SM_LAYER_CONV) {
            ws[0] = outs, ws[1] = (uint64_t)ly->in_c;
            ws[2] = ws[3] = (uint64_t)ly->b;
            wr = 4;
        } else if (gn) {
            ws[0] = outs;
            wr = 1;
        } else {
            ws[0] = outs, ws[1] = (uint64_t)ly->in_c;
            wr = 2;
        }
        uint64_t prod = 1;
        for (size_t d = 0; d < wr; d++) prod *= ws[d];
        if ((ly->kind != SM_LAYER_CONV && ly->kind != SM_LAYER_FC && !gn) || prod != ly->n_w ||
            ly->n_b != outs) {
            sm__free(l.t);
            return sm__fail(SM_ERR_INTERNAL,
                            "layer %zu's parameter counts do not match its "
                            "shape",
                            i);
        }
        char name[64];
        snprintf(name, sizeof name, "subnet.%zu.weight", i);
        add_tensor(&l, name, BUF_SUB_P, ly->w_off, ly->n_w, wr, ws);
        snprintf(name, sizeof name, "subnet.%zu.bias", i);
        add_tensor(&l, name, BUF_SUB_P, ly->b_off, ly->n_b, 1, bs);
    }
    uint64_t hw[2] = {1, dim}, hb[1] = {1};
    add_tensor(&l, "head.weight", BUF_HEAD_P, 0, dim, 2, hw);
    add_tensor(&l, "head.bias", BUF_HEAD_P, dim, 1, 1, hb);
    for (int v = 0; with_adam && v < 2; v++) {
        for (size_t i = 0; i < per; i++) {
            const ck_tensor src = l.t[i];
            ck_tensor *t = &l.t[l.n++];
            *t = src;
            /* parameter names are at most "subnet.<20 digits>.weight": the prefix fits */
            size_t len = strlen(src.name);
            memcpy(t->name, v ? "adam.v." : "adam.m.", 7);
            memcpy(t->name + 7, src.name, len + 1);
            t->buf =
                src.buf == BUF_SUB_P ? (v ? BUF_V_SUB : BUF_M_SUB) : (v ? BUF_V_HEAD : BUF_M_HEAD);
        }
    }
    *out = l;
    return SM_OK;
}

static void bufs_for(const sm_subnet *s, const sm_head *h, const sm_adam *a, ck_bufs *b)
{
    memset(b, 0, sizeof *b);
    b->be[BUF_SUB_P] = s->be, b->p[BUF_SUB_P] = s->params;
    b->be[BUF_HEAD_P] = h->be, b->p[BUF_HEAD_P] = h->params;
    if (a) {
        /* Adam allocates all four moment buffers on the subnet's backend. */
        b->be[BUF_M_SUB] = b->be[BUF_V_SUB] = s->be;
        b->be[BUF_M_HEAD] = b->be[BUF_V_HEAD] = s->be;
        b->p[BUF_M_SUB] = a->m_sub, b->p[BUF_V_SUB] = a->v_sub;
        b->p[BUF_M_HEAD] = a->m_head, b->p[BUF_V_HEAD] = a->v_head;
    }
}

/* ------------------------------------------------------------------ saving */

/* Tensor bytes stream through one host chunk (io/sealed.h runs it twice: to seal, to write). */
typedef struct ck_stream {
    const ck_list *l;
    const ck_bufs *b;
    uint8_t *chunk;
    size_t fill;
    sm__sealed_out *out;
} ck_stream;

static sm_status stream_flush(ck_stream *s)
{
    sm_status st = sm__sealed_emit(s->out, s->chunk, s->fill);
    s->fill = 0;
    return st;
}

static sm_status stream_tensors(void *user, sm__sealed_out *out)
{
    ck_stream *s = user;
    s->out = out;
    s->fill = 0;
    for (size_t i = 0; i < s->l->n; i++) {
        const ck_tensor *t = &s->l->t[i];
        sm_backend *be = s->b->be[t->buf];
        const uint8_t *dev = (const uint8_t *)(s->b->p[t->buf] + t->off);
        size_t bytes = t->count * sizeof(float), done = 0;
        while (done < bytes) {
            size_t take = bytes - done < CK_CHUNK - s->fill ? bytes - done : CK_CHUNK - s->fill;
            SM_TRY(be->ops->download(be->ctx, s->chunk + s->fill, dev + done, take));
            words_to_from_le(s->chunk + s->fill, take);
            s->fill += take;
            done += take;
            if (s->fill == CK_CHUNK) SM_TRY(stream_flush(s));
        }
    }
    return s->fill ? stream_flush(s) : SM_OK;
}

#ifndef CK_META_SLOTS
#define CK_META_SLOTS 48 /* tests may build this file with fewer */
#endif

/* Fixed slots: a key that does not fit sets `full`, and save() then fails with SM_ERR_LIMIT
 * instead of writing past the arrays. */
typedef struct ck_meta_store {
    sm__st_out_meta kv[CK_META_SLOTS];
    size_t n;
    int full;
    char text[CK_META_SLOTS][96]; /* values that are numbers */
    char scratch[96];             /* where a value goes when the slots are full */
} ck_meta_store;

/* The buffer for the next numeric value (the scratch one when full). */
static char *meta_text(ck_meta_store *m)
{
    return m->n < CK_META_SLOTS ? m->text[m->n] : m->scratch;
}

static void meta_add(ck_meta_store *m, const char *key, const char *value)
{
    if (m->n >= CK_META_SLOTS) {
        m->full = 1;
        return;
    }
    m->kv[m->n].key = key;
    m->kv[m->n].value = value;
    m->n++;
}

/* printf is locale-dependent ("6,0e-05" under some LC_NUMERIC); files must not be. */
static void meta_addf_double(ck_meta_store *m, const char *key, double v, locale_t c_loc)
{
    locale_t old = uselocale(c_loc);
    char *text = meta_text(m);
    snprintf(text, sizeof m->text[0], "%.17g", v);
    uselocale(old);
    meta_add(m, key, text);
}

static void meta_addf_u64(ck_meta_store *m, const char *key, uint64_t v)
{
    char *text = meta_text(m);
    snprintf(text, sizeof m->text[0], "%" PRIu64, v);
    meta_add(m, key, text);
}

static sm_status save(const sm_subnet *s, const sm_head *h, const sm_trainer *tr, const char *path)
{
    const sm_adam *a = tr ? tr->adam : NULL;
    SM_RETURN_IF(h->dim != sm_subnet_feature_dim(s), SM_ERR_SHAPE,
                 "the head takes %zu features, the subnet gives %zu", h->dim,
                 sm_subnet_feature_dim(s));
    ck_list l = {0};
    ck_meta_store m = {.n = 0};
    char *arch = NULL;
    uint8_t *chunk = NULL;
    sm__st_out_tensor *ot = NULL;
    locale_t c_loc = (locale_t)0;

    sm_status st = build_list(&s->arch, h->dim, a != NULL, &l);
    if (st == SM_OK) st = sm__arch_text(&s->arch, &arch);
    if (st == SM_OK) {
        ot = sm__calloc(l.n, sizeof *ot);
        chunk = sm__malloc_aligned(CK_CHUNK);
        c_loc = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0);
        if (!ot || !chunk || !c_loc) st = sm__fail(SM_ERR_NOMEM, "out of memory saving '%s'", path);
    }
    if (st == SM_OK) {
        for (size_t i = 0; i < l.n; i++) {
            ot[i].name = l.t[i].name;
            ot[i].dtype = SM__ST_F32;
            ot[i].rank = l.t[i].rank;
            memcpy(ot[i].shape, l.t[i].shape, sizeof l.t[i].shape);
        }
        meta_add(&m, "format", CK_FORMAT);
        meta_add(&m, "format_version", CK_VERSION_TEXT);
        meta_add(&m, "kind", tr ? "trainer" : "model");
        meta_add(&m, "arch", arch);
        if (h->cal.on) { /* what sm_head_calibrate folded into the head's weights */
            meta_add(&m, cal_keys[0], "platt");
            meta_addf_double(&m, cal_keys[1], h->cal.scale, c_loc);
            meta_addf_double(&m, cal_keys[2], h->cal.shift, c_loc);
            meta_addf_u64(&m, cal_keys[3], (uint64_t)h->cal.pairs);
        }
        if (tr) {
            uint64_t ss[4] = {0, 0, 0, 0};
            if (tr->sampler) sm__sampler_get_state(tr->sampler, ss);
            meta_addf_u64(&m, "iteration", (uint64_t)tr->iteration);
            meta_addf_u64(&m, "adam_t", (uint64_t)a->t);
            for (size_t i = 0; i < sm__n_settings; i++) {
                const sm__setting *row = &sm__settings[i];
                const double v = sm__setting_get(
                    row, row->owner == SM__SET_ADAM ? (const void *)a : (const void *)tr);
                if (row->type == SM__T_DOUBLE) meta_addf_double(&m, row->ck_key, v, c_loc);
                else meta_addf_u64(&m, row->ck_key, (uint64_t)v);
            }
            meta_addf_u64(&m, "seed", tr->seed);
            char *text = meta_text(&m);
            snprintf(text, sizeof m.text[0],
                     "%016" PRIx64 ":%016" PRIx64 ":%016" PRIx64 ":%016" PRIx64, ss[0], ss[1],
                     ss[2], ss[3]);
            meta_add(&m, "sampler_state", text);
            meta_add(&m, "has_sampler", tr->sampler ? "1" : "0");
            const uint64_t *as = tr->aug_rng.s;
            text = meta_text(&m);
            snprintf(text, sizeof m.text[0],
                     "%016" PRIx64 ":%016" PRIx64 ":%016" PRIx64 ":%016" PRIx64, as[0], as[1],
                     as[2], as[3]);
            meta_add(&m, "augment_state", text);
        }
        meta_add(&m, "crc32", "00000000"); /* patched once the checksum is known */
        if (m.full)
            st = sm__fail(SM_ERR_LIMIT,
                          "saving '%s': more than %d metadata keys (a bug in "
                          "libsiamese: please report it)",
                          path, CK_META_SLOTS);
    }
    ck_bufs b;
    bufs_for(s, h, a, &b);
    ck_stream cs = {&l, &b, chunk, 0, NULL};
    if (st == SM_OK)
        st = sm__sealed_write(path, ot, l.n, m.kv, m.n, stream_tensors, &cs, "parameters");
    if (c_loc) freelocale(c_loc);
    sm__free_aligned(chunk);
    sm__free(ot);
    sm__free(arch);
    sm__free(l.t);
    return st;
}

SM_API sm_status sm_model_save(const sm_subnet *subnet, const sm_head *head, const char *path)
{
    SM_CHECK_ARG(subnet && head && path && *path, "sm_model_save: NULL argument or empty path");
    SM_RETURN_IF(head->dim != sm_subnet_feature_dim(subnet), SM_ERR_SHAPE,
                 "sm_model_save: the head takes %zu features, the subnet gives %zu", head->dim,
                 sm_subnet_feature_dim(subnet));
    return save(subnet, head, NULL, path);
}

SM_API sm_status sm_trainer_save(const sm_trainer *trainer, const char *path)
{
    SM_CHECK_ARG(trainer && path && *path, "sm_trainer_save: NULL argument or empty path");
    SM_CHECK_ARG(trainer->adam, "sm_trainer_save: the trainer has no Adam state");
    /* data-parallel: every rank holds the same state; rank 0 alone writes it */
    if (trainer->comm && sm_comm_rank(trainer->comm) != 0) return SM_OK;
    return save(trainer->subnet, trainer->head, trainer, path);
}

/* ------------------------------------------------------------------ reading */

static const char *meta_value(const ck_file *f, const char *key)
{
    const sm__st_kv *kv = sm__st_meta(&f->st, key);
    return kv ? kv->value : NULL;
}

static sm_status need_meta(const ck_file *f, const char *path, const char *key, const char **v)
{
    *v = meta_value(f, key);
    SM_RETURN_IF(!*v, SM_ERR_FORMAT, "checkpoint '%s' lacks the metadata key '%s'", path, key);
    return SM_OK;
}

/* Strict decimal: digits only, no sign, no leading zeros, no overflow. 0 when malformed. */
static int parse_dec_u64(const char *s, uint64_t *out)
{
    uint64_t v = 0;
    if (!*s || (s[0] == '0' && s[1])) return 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9') return 0;
        unsigned d = (unsigned)(*s - '0');
        if (v > (UINT64_MAX - d) / 10) return 0;
        v = v * 10 + d;
    }
    *out = v;
    return 1;
}

static sm_status meta_int(const ck_file *f, const char *path, const char *key, uint64_t lo,
                          uint64_t hi, int64_t *out)
{
    const char *v;
    uint64_t x;
    SM_TRY(need_meta(f, path, key, &v));
    SM_RETURN_IF(!parse_dec_u64(v, &x) || x < lo || x > hi, SM_ERR_FORMAT,
                 "checkpoint '%s': %s '%.40s' is not an integer in %" PRIu64 "..%" PRIu64, path,
                 key, v, lo, hi);
    *out = (int64_t)x;
    return SM_OK;
}

/* Four 16-digit hex words joined by ':'; all zero only where `nonzero` is 0 (xoshiro's
 * all-zero state is a fixed point: no live generator has it). */
static sm_status rng_state(const char *path, const char *key, const char *v, int nonzero,
                           uint64_t out[4])
{
    int ok = strlen(v) == 4 * 16 + 3;
    for (size_t i = 0; ok && i < 4; i++)
        ok = sm__parse_hex(v + 17 * i, 16, &out[i]) && (i == 3 || v[17 * i + 16] == ':');
    if (ok && nonzero) ok = (out[0] | out[1] | out[2] | out[3]) != 0;
    SM_RETURN_IF(!ok, SM_ERR_FORMAT,
                 "checkpoint '%s': %s '%.80s' is not four 16-digit hex "
                 "words joined by ':' (not all zero)",
                 path, key, v);
    return SM_OK;
}

/* A setting's value from the file: as the table's row types it (integers strict decimal,
 * numbers C-locale decimal), in its range; absent, the value files from before its version
 * imply, unless the key has always been written. */
static sm_status read_setting(const ck_file *f, const char *path, const sm__setting *row,
                              locale_t c_loc, double *out)
{
    const char *v = meta_value(f, row->ck_key);
    if (!v) {
        SM_RETURN_IF(row->since <= 1, SM_ERR_FORMAT, "checkpoint '%s' lacks the metadata key '%s'",
                     path, row->ck_key);
        *out = row->absent;
        return SM_OK;
    }
    double x;
    if (row->type == SM__T_DOUBLE) {
        char *end = NULL;
        locale_t old = uselocale(c_loc);
        x = strtod(v, &end);
        uselocale(old);
        SM_RETURN_IF(!(*v >= '0' && *v <= '9') || !end || *end, SM_ERR_FORMAT,
                     "checkpoint '%s': %s '%.40s' is not a decimal number", path, row->ck_key, v);
    } else {
        uint64_t u;
        SM_RETURN_IF(!parse_dec_u64(v, &u) || u > (uint64_t)1 << 53, SM_ERR_FORMAT,
                     "checkpoint '%s': %s '%.40s' is not an integer", path, row->ck_key, v);
        x = (double)u;
    }
    SM_TRY(sm__setting_check(row, x, path));
    *out = x;
    return SM_OK;
}

/* Keys of a group (settings.h) come all together or not at all. */
static sm_status check_groups(const ck_file *f, const char *path)
{
    for (size_t i = 0; i < sm__n_settings; i++) {
        const char *g = sm__settings[i].group;
        if (!g || (i > 0 && sm__settings[i - 1].group && !strcmp(sm__settings[i - 1].group, g)))
            continue; /* counted from a group's first row (a group's rows are adjacent) */
        size_t n = 0, have = 0;
        for (size_t j = i;
             j < sm__n_settings && sm__settings[j].group && !strcmp(sm__settings[j].group, g);
             j++, n++)
            have += meta_value(f, sm__settings[j].ck_key) != NULL;
        SM_RETURN_IF(have != 0 && have != n, SM_ERR_FORMAT,
                     "checkpoint '%s' has %zu of the %zu '%s' keys (all or none)", path, have, n,
                     g);
    }
    return SM_OK;
}

static sm_status read_state(ck_file *f, const char *path)
{
    ck_state *s = &f->state;
    const char *v;
    int64_t x;
    locale_t c_loc = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0);
    if (!c_loc) return sm__fail(SM_ERR_NOMEM, "out of memory reading '%s'", path);
    sm_status st = meta_int(f, path, "iteration", 0, INT64_MAX, &s->iteration);
    if (st == SM_OK) st = meta_int(f, path, "adam_t", 0, INT64_MAX, &s->adam_t);
    if (st == SM_OK) st = meta_int(f, path, "has_sampler", 0, 1, &x);
    if (st == SM_OK) s->has_sampler = (int)x;
    if (st == SM_OK) st = check_groups(f, path);
    for (size_t i = 0; i < sm__n_settings && st == SM_OK; i++)
        st = read_setting(f, path, &sm__settings[i], c_loc, &s->setting[i]);
    freelocale(c_loc);
    if (st == SM_OK) {
        const sm__setting *p = sm__setting_find(SM__API_PARAM, SM_TRAINER_PK_CLASSES);
        const sm__setting *k = sm__setting_find(SM__API_PARAM, SM_TRAINER_PK_IMAGES);
        st = sm__settings_check_pk((int64_t)s->setting[p - sm__settings],
                                   (int64_t)s->setting[k - sm__settings], path);
    }
    if (st == SM_OK) st = need_meta(f, path, "seed", &v);
    if (st == SM_OK && !parse_dec_u64(v, &s->seed))
        st = sm__fail(SM_ERR_FORMAT, "checkpoint '%s': seed '%.40s' is not a 64-bit integer", path,
                      v);
    if (st == SM_OK) st = need_meta(f, path, "sampler_state", &v);
    if (st == SM_OK) st = rng_state(path, "sampler_state", v, s->has_sampler, s->sampler);
    /* augmentation (0.2): the setting and its RNG state, both keys or neither */
    const char *aug = meta_value(f, "augment"), *aug_st = meta_value(f, "augment_state");
    if (st == SM_OK && (aug || aug_st)) {
        s->has_augment = 1;
        if (!aug || !aug_st)
            st = sm__fail(SM_ERR_FORMAT,
                          "checkpoint '%s' has only one of 'augment' and "
                          "'augment_state'",
                          path);
        if (st == SM_OK) st = rng_state(path, "augment_state", aug_st, 1, s->augment_state);
    }
    return st;
}

/* A finite number written by meta_addf_double: an optional '-', then digits, '.', an
 * exponent; nothing else (no "inf", "nan", hex or spaces). */
static sm_status read_real(const char *path, const char *key, const char *v, locale_t c_loc,
                           double *out)
{
    const char *d = v + (*v == '-');
    char *end = NULL;
    locale_t old = uselocale(c_loc);
    const double x = strtod(v, &end);
    uselocale(old);
    SM_RETURN_IF(!(*d >= '0' && *d <= '9') || strspn(d, "0123456789.eE+-") != strlen(d) ||
                     !end || *end || !isfinite(x),
                 SM_ERR_FORMAT, "checkpoint '%s': %s '%.40s' is not a finite decimal number",
                 path, key, v);
    *out = x;
    return SM_OK;
}

static sm_status read_calibration(ck_file *f, const char *path)
{
    const char *v[CAL_KEYS];
    size_t have = 0;
    for (size_t i = 0; i < CAL_KEYS; i++) have += (v[i] = meta_value(f, cal_keys[i])) != NULL;
    if (have == 0) return SM_OK;
    SM_RETURN_IF(have != CAL_KEYS, SM_ERR_FORMAT,
                 "checkpoint '%s' has %zu of the %zu calibration keys (all or none)", path, have,
                 CAL_KEYS);
    SM_RETURN_IF(strcmp(v[0], "platt") != 0, SM_ERR_FORMAT,
                 "checkpoint '%s': unknown calibration method '%.40s' (this libsiamese knows "
                 "'platt')",
                 path, v[0]);
    locale_t c_loc = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0);
    if (!c_loc) return sm__fail(SM_ERR_NOMEM, "out of memory reading '%s'", path);
    double scale = 0, shift = 0;
    uint64_t pairs = 0;
    sm_status st = read_real(path, cal_keys[1], v[1], c_loc, &scale);
    if (st == SM_OK) st = read_real(path, cal_keys[2], v[2], c_loc, &shift);
    freelocale(c_loc);
    if (st == SM_OK && !sm__calibration_valid(scale, shift))
        st = sm__fail(SM_ERR_FORMAT, "checkpoint '%s': %s '%.40s' is not above 0", path,
                      cal_keys[1], v[1]);
    if (st == SM_OK && (!parse_dec_u64(v[3], &pairs) || (uint64_t)(size_t)pairs != pairs))
        st = sm__fail(SM_ERR_FORMAT, "checkpoint '%s': %s '%.40s' is not an integer", path,
                      cal_keys[3], v[3]);
    if (st == SM_OK) f->cal = (sm__calibration){true, scale, shift, (size_t)pairs};
    return st;
}

static void file_free(ck_file *f)
{
    sm__st_file_free(&f->st);
    sm__free(f->buf);
    memset(f, 0, sizeof *f);
}

/* Reads, parses and checks everything that does not depend on what the file is loaded into. */
static sm_status file_read(const char *path, ck_file *f)
{
    memset(f, 0, sizeof *f);
    /* Larger files are refused before anything is allocated (the reference model with Adam
     * state is ~330 MB, the default limit 16 GiB). */
    uint64_t limit = sm__limit(SM_LIMIT_FILE_BYTES);
    sm_status st = sm__file_read_all(path, limit, NULL, &f->buf, &f->size);
    if (st == SM_ERR_LIMIT) {
        char detail[512]; /* it names the file, its size and the limit */
        snprintf(detail, sizeof detail, "%s", sm_last_error());
        return sm__fail(st,
                        "checkpoint %s (SM_LIMIT_FILE_BYTES); raise it with "
                        "sm_set_limit(SM_LIMIT_FILE_BYTES)",
                        detail);
    }
    if (st != SM_OK) return st;
    st = sm__st_parse(f->buf, f->size, &f->st);
    if (st != SM_OK) {
        /* prefix the path: the parser's detail knows only bytes */
        char detail[512];
        snprintf(detail, sizeof detail, "%s", sm_last_error());
        sm__free(f->buf);
        memset(f, 0, sizeof *f);
        return sm__fail(st, "checkpoint '%s': %s", path, detail);
    }
    const char *kind;
    st = sm__sealed_check(&f->st, f->buf, f->size, path, CK_FORMAT, CK_VERSION, "checkpoint");
    if (st == SM_OK) st = need_meta(f, path, "kind", &kind);
    if (st == SM_OK) {
        f->is_trainer = strcmp(kind, "trainer") == 0;
        if (!f->is_trainer && strcmp(kind, "model") != 0)
            st = sm__fail(SM_ERR_FORMAT, "checkpoint '%s': unknown kind '%.20s'", path, kind);
    }
    if (st == SM_OK) st = need_meta(f, path, "arch", &f->arch);
    if (st == SM_OK) st = read_calibration(f, path);
    if (st == SM_OK && f->is_trainer) st = read_state(f, path);
    if (st != SM_OK) file_free(f);
    return st;
}

/* Every expected tensor present as F32 with its exact shape, no other tensor, every value
 * finite. A shape that differs from what the architecture needs is SM_ERR_SHAPE. */
static sm_status check_tensors(const ck_file *f, const char *path, const ck_list *l)
{
    for (size_t i = 0; i < l->n; i++) {
        const ck_tensor *e = &l->t[i];
        const sm__st_tensor *t = sm__st_find(&f->st, e->name);
        SM_RETURN_IF(!t, SM_ERR_FORMAT, "checkpoint '%s' lacks the tensor '%s'", path, e->name);
        SM_RETURN_IF(t->dtype != SM__ST_F32, SM_ERR_FORMAT,
                     "checkpoint '%s': tensor '%s' is %s, expected F32", path, e->name,
                     sm__st_dtype_name(t->dtype));
        if (t->rank != e->rank || memcmp(t->shape, e->shape, e->rank * sizeof *e->shape) != 0) {
            char got[160], want[160];
            fmt_shape(got, sizeof got, t->shape, t->rank);
            fmt_shape(want, sizeof want, e->shape, e->rank);
            return sm__fail(SM_ERR_SHAPE,
                            "checkpoint '%s': tensor '%s' has shape %s, the "
                            "architecture needs %s",
                            path, e->name, got, want);
        }
    }
    if (f->st.n_tensors != l->n) {
        /* names are unique on both sides and all expected ones are present: find the extra */
        for (size_t j = 0; j < f->st.n_tensors; j++) {
            size_t i = 0;
            while (i < l->n && strcmp(l->t[i].name, f->st.tensors[j].name) != 0) i++;
            SM_RETURN_IF(i == l->n, SM_ERR_FORMAT,
                         "checkpoint '%s' holds an unexpected tensor '%.200s'", path,
                         f->st.tensors[j].name);
        }
    }
    for (size_t i = 0; i < l->n; i++) {
        const sm__st_tensor *t = sm__st_find(&f->st, l->t[i].name);
        const uint8_t *p = f->buf + f->st.data_off + t->begin;
        for (size_t k = 0; k < l->t[i].count; k++, p += 4) {
            uint32_t bits =
                (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
            SM_RETURN_IF((bits & 0x7F800000u) == 0x7F800000u, SM_ERR_FORMAT,
                         "checkpoint '%s': tensor '%s' holds a non-finite value at index %zu", path,
                         l->t[i].name, k);
        }
    }
    return SM_OK;
}

/* Copies checked tensors into backend buffers (all of them, or only the parameters), through
 * `chunk` (CK_CHUNK bytes, from sm__malloc_aligned; NULL: allocated here). */
static sm_status upload_tensors(const ck_file *f, const ck_list *l, const ck_bufs *b,
                                int params_only, uint8_t *chunk_in)
{
    uint8_t *chunk = chunk_in ? chunk_in : sm__malloc_aligned(CK_CHUNK);
    if (!chunk) return sm__fail(SM_ERR_NOMEM, "out of memory loading a checkpoint");
    sm_status st = SM_OK;
    for (size_t i = 0; i < l->n && st == SM_OK; i++) {
        const ck_tensor *e = &l->t[i];
        if (params_only && e->buf != BUF_SUB_P && e->buf != BUF_HEAD_P) continue;
        const sm__st_tensor *t = sm__st_find(&f->st, e->name);
        const uint8_t *src = f->buf + f->st.data_off + t->begin;
        sm_backend *be = b->be[e->buf];
        uint8_t *dev = (uint8_t *)(b->p[e->buf] + e->off);
        size_t bytes = e->count * sizeof(float);
        for (size_t done = 0; done < bytes && st == SM_OK;) {
            size_t take = bytes - done < CK_CHUNK ? bytes - done : CK_CHUNK;
            memcpy(chunk, src + done, take);
            words_to_from_le(chunk, take);
            st = be->ops->upload(be->ctx, dev + done, chunk, take);
            done += take;
        }
    }
    if (!chunk_in) sm__free_aligned(chunk);
    return st;
}

/* ------------------------------------------------------------------ loading */

SM_API sm_status sm_model_load(sm_backend *backend, const char *path, sm_subnet **subnet,
                               sm_head **head)
{
    SM_CHECK_ARG(backend && path && subnet && head, "sm_model_load: NULL argument");
    ck_file f;
    SM_TRY(file_read(path, &f));
    sm_arch *arch = NULL;
    sm_subnet *s = NULL;
    sm_head *h = NULL;
    ck_list l = {0};
    sm_status st = sm_arch_from_string(f.arch, &arch);
    if (st != SM_OK && st != SM_ERR_NOMEM) {
        char detail[512];
        snprintf(detail, sizeof detail, "%s", sm_last_error());
        st = sm__fail(SM_ERR_FORMAT, "checkpoint '%s': its architecture is not valid: %s", path,
                      detail);
    }
    if (st == SM_OK &&
        (arch->n_layers == 0 || arch->layers[arch->n_layers - 1].kind != SM_LAYER_FC))
        st = sm__fail(SM_ERR_FORMAT,
                      "checkpoint '%s': its architecture '%.200s' does not end "
                      "in an fc layer",
                      path, f.arch);
    if (st == SM_OK) st = build_list(arch, sm_arch_output_size(arch), f.is_trainer, &l);
    if (st == SM_OK) st = check_tensors(&f, path, &l);
    /* any seed: every parameter is overwritten */
    if (st == SM_OK) st = sm_subnet_create(backend, arch, 0, &s);
    if (st == SM_OK) st = sm_head_create(backend, sm_subnet_feature_dim(s), 0, &h);
    if (st == SM_OK) {
        ck_bufs b;
        bufs_for(s, h, NULL, &b);
        st = upload_tensors(&f, &l, &b, 1, NULL);
    }
    if (st == SM_OK) h->cal = f.cal;
    sm__free(l.t);
    sm_arch_destroy(arch);
    file_free(&f);
    if (st != SM_OK) {
        sm_head_destroy(h);
        sm_subnet_destroy(s);
        return st;
    }
    *subnet = s;
    *head = h;
    return SM_OK;
}

SM_API sm_status sm_trainer_load(sm_trainer *t, const char *path)
{
    SM_CHECK_ARG(t && path, "sm_trainer_load: NULL argument");
    SM_CHECK_ARG(t->adam, "sm_trainer_load: the trainer has no Adam state");
    ck_file f;
    SM_TRY(file_read(path, &f));
    char *mine = NULL;
    ck_list l = {0};
    sm_status st = SM_OK;
    if (!f.is_trainer)
        st = sm__fail(SM_ERR_FORMAT,
                      "checkpoint '%s' holds a model, not a trainer state "
                      "(load it with sm_model_load)",
                      path);
    if (st == SM_OK) st = sm__arch_text(&t->subnet->arch, &mine);
    if (st == SM_OK && strcmp(mine, f.arch) != 0)
        st = sm__fail(SM_ERR_SHAPE,
                      "checkpoint '%s' is for the architecture '%.300s', the "
                      "trainer's subnet is '%.300s'",
                      path, f.arch, mine);
    if (st == SM_OK) st = build_list(&t->subnet->arch, t->head->dim, 1, &l);
    if (st == SM_OK) st = check_tensors(&f, path, &l);

    /* Validated: now change the trainer. The upload's buffer first, then the sizes (the resize
     * is all-or-nothing): after them nothing can fail for want of memory. */
    const ck_state *s = &f.state;
    uint8_t *chunk = NULL;
    if (st == SM_OK && !(chunk = sm__malloc_aligned(CK_CHUNK)))
        st = sm__fail(SM_ERR_NOMEM, "out of memory loading '%s'", path);
    const int64_t batch =
        (int64_t)s->setting[sm__setting_find(SM__API_PARAM, SM_TRAINER_BATCH_SIZE) - sm__settings];
    const int64_t micro =
        (int64_t)s->setting[sm__setting_find(SM__API_PARAM, SM_TRAINER_MICRO_BATCH) - sm__settings];
    if (st == SM_OK && (batch != t->batch_size || micro != t->micro_batch))
        st = sm__trainer_resize(t, batch, micro);
    if (st == SM_OK) {
        /* Only a device failure can stop this part midway. */
        ck_bufs b;
        bufs_for(t->subnet, t->head, t->adam, &b);
        st = upload_tensors(&f, &l, &b, 0, chunk);
    }
    sm__free_aligned(chunk);
    if (st == SM_OK) {
        sm_adam *a = t->adam;
        a->t = s->adam_t;
        /* the batch sizes are in place already (sm__trainer_resize) */
        for (size_t i = 0; i < sm__n_settings; i++)
            sm__setting_put(&sm__settings[i],
                            sm__settings[i].owner == SM__SET_ADAM ? (void *)a : (void *)t,
                            s->setting[i]);
        t->iteration = s->iteration;
        t->seed = s->seed;
        t->head->cal = f.cal;
        if (t->sampler && s->has_sampler) sm__sampler_set_state(t->sampler, s->sampler);
        if (s->has_augment) memcpy(t->aug_rng.s, s->augment_state, sizeof t->aug_rng.s);
        else sm__rng_seed(&t->aug_rng, sm__augment_seed(s->seed));
        sm__trainer_sampler_options(t);
    }
    sm__free(l.t);
    sm__free(mine);
    file_free(&f);
    return st;
}
