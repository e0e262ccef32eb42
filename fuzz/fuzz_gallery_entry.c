/* SPDX-License-Identifier: MIT */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "fuzz_entries.h"
#include "gallery/gallery.h"
#include "io/safetensors.h"
#include "siamese/siamese.h"

/* The model every input is loaded for: its architecture is the seeds' (fuzz/make_seeds.py). */
#define FUZZ_GALLERY_ARCH "1x4x4:flatten,fc3"

static int load_ok(sm_status st)
{
    return (st == SM_ERR_FORMAT || st == SM_ERR_LIMIT || st == SM_ERR_NOMEM ||
            st == SM_ERR_VERSION || st == SM_ERR_SHAPE) &&
           sm_last_error()[0];
}

/* Writes `value` over a metadata value of the same raw length, when there is one. */
static void patch_meta(uint8_t *buf, size_t size, const sm__st_file *f, const char *key,
                       const char *value)
{
    const sm__st_kv *kv = sm__st_meta(f, key);
    size_t n = strlen(value);
    if (!kv || kv->value_rawlen != n || kv->value_pos + n > size) return;
    memcpy(buf + kv->value_pos, value, n);
}

/* The fuzz model's fingerprint and the checksum patched in, so that inputs get past both to
 * the checks behind them (as sm_fuzz_checkpoint does with the checksum). */
static void patch(uint8_t *buf, size_t size, const sm__st_file *f, uint64_t model_id)
{
    char id[17];
    snprintf(id, sizeof id, "%016" PRIx64, model_id);
    patch_meta(buf, size, f, "model_id", id);
    /* the rows' own checksum, where the file records one (files since 0.5) */
    const sm__st_tensor *e = sm__st_find(f, "embeddings");
    const sm__st_kv *rk = sm__st_meta(f, "rows_crc32");
    if (e && rk && rk->value_rawlen == 8 && rk->value_pos + 8 <= size &&
        f->data_off + e->end <= size) {
        char rows_hex[9];
        snprintf(rows_hex, sizeof rows_hex, "%08" PRIx32,
                 sm__crc32_update(0, buf + f->data_off + e->begin, e->end - e->begin));
        memcpy(buf + rk->value_pos, rows_hex, 8);
    }
    patch_meta(buf, size, f, "crc32", "00000000");
    const sm__st_kv *kv = sm__st_meta(f, "crc32");
    if (!kv || kv->value_rawlen != 8 || kv->value_pos + 8 > size) return;
    uLong c = crc32(0L, Z_NULL, 0);
    c = crc32(c, buf, (uInt)size);
    char hex[9];
    snprintf(hex, sizeof hex, "%08" PRIx32, (uint32_t)c);
    memcpy(buf + kv->value_pos, hex, 8);
}

/* Whatever loads must be a consistent gallery: counts that add up, names that look each other
 * up, and a search that answers (or, for rows loaded unchecked, refuses a NaN score). */
static int check_loaded(const sm_gallery *g, int rows_unchecked)
{
    size_t sum = 0;
    for (size_t l = 0; l < sm_gallery_num_labels(g); l++) {
        const char *name = sm_gallery_label_name(g, l);
        if (!name || sm_gallery_find_label(g, name) != l || sm_gallery_label_examples(g, l) == 0)
            return 1;
        sum += sm_gallery_label_examples(g, l);
    }
    if (sum != sm_gallery_num_examples(g)) return 1;
    if (sum == 0) return 0;
    float q[16];
    for (int i = 0; i < 16; i++) q[i] = 0.5f;
    sm_gallery_match m[2];
    size_t found = 0;
    sm_status st = sm_gallery_identify(g, 1, q, 2, m, &found);
    if (rows_unchecked && st == SM_ERR_NUMERIC) return 0;
    if (st != SM_OK) return 1;
    return found == 0 || m[0].rank != 1 || !(m[0].score >= 0 && m[0].score <= 1);
}

int sm_fuzz_gallery(const uint8_t *data, size_t size)
{
    static sm_backend *be; /* one model for the process */
    static sm_subnet *sub;
    static sm_head *head;
    static uint64_t model_id;
    if (!be) {
        sm_arch *arch = NULL;
        sm_gallery *g = NULL;
        if (sm_backend_create(SM_BACKEND_CPU, &be) != SM_OK) return 0;
        sm_backend_set_threads(be, 1);
        if (sm_arch_from_string(FUZZ_GALLERY_ARCH, &arch) != SM_OK ||
            sm_subnet_create(be, arch, 1, &sub) != SM_OK ||
            sm_head_create(be, sm_subnet_feature_dim(sub), 2, &head) != SM_OK ||
            sm_gallery_create(sub, head, &g) != SM_OK)
            return 1;
        model_id = g->model_id;
        sm_gallery_destroy(g);
        sm_arch_destroy(arch);
    }
    sm__st_file f;
    if (sm__st_parse(data, size, &f) != SM_OK) {
        /* the loader must refuse what the parser refuses, with a documented status */
        sm_gallery *g = NULL;
        sm_status st = sm__gallery_load_buffer(sub, head, data, size, "fuzz", NULL, NULL, NULL, &g);
        sm_gallery_destroy(g);
        return st == SM_OK || !load_ok(st);
    }
    uint8_t *copy = malloc(size ? size : 1);
    int bad = 0;
    if (copy) {
        memcpy(copy, data, size);
        patch(copy, size, &f, model_id);
        sm_gallery *g = NULL;
        uint64_t saved = sm_get_limit(SM_LIMIT_FILE_BYTES);
        sm_status st = sm__gallery_load_buffer(sub, head, copy, size, "fuzz", NULL, NULL, NULL, &g);
        sm_set_limit(SM_LIMIT_FILE_BYTES, saved);
        bad = st == SM_OK ? (!g || check_loaded(g, 0)) : !load_ok(st);
        sm_gallery_destroy(g);
        /* the rows unchecked (sm_gallery_load_with's skip_row_check): anything else still is */
        sm_gallery_load_options o = SM_GALLERY_LOAD_OPTIONS_INIT;
        o.skip_row_check = 1;
        g = NULL;
        st = sm__gallery_load_buffer(sub, head, copy, size, "fuzz", &o, NULL, NULL, &g);
        sm_set_limit(SM_LIMIT_FILE_BYTES, saved);
        bad |= st == SM_OK ? (!g || check_loaded(g, 1)) : !load_ok(st);
        sm_gallery_destroy(g);
        free(copy);
    }
    sm__st_file_free(&f);
    return bad;
}
