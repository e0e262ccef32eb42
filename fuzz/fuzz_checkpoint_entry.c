/* SPDX-License-Identifier: MIT */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "fuzz_entries.h"
#include "io/safetensors.h"
#include "siamese/siamese.h"

static int parse_ok(sm_status st)
{
    return (st == SM_ERR_FORMAT || st == SM_ERR_LIMIT || st == SM_ERR_NOMEM) && sm_last_error()[0];
}

static int load_ok(sm_status st)
{
    return (st == SM_ERR_FORMAT || st == SM_ERR_LIMIT || st == SM_ERR_NOMEM ||
            st == SM_ERR_VERSION || st == SM_ERR_SHAPE || st == SM_ERR_IO) &&
           sm_last_error()[0];
}

/* Sets the "crc32" metadata value to the checksum the loader computes (the whole file with
 * those eight digits read as '0'), so that inputs get past it to the checks behind. */
static void patch_crc(uint8_t *buf, size_t size, const sm__st_file *f)
{
    const sm__st_kv *kv = sm__st_meta(f, "crc32");
    if (!kv || kv->value_rawlen != 8 || kv->value_pos + 8 > size) return;
    memset(buf + kv->value_pos, '0', 8);
    uLong c = crc32(0L, Z_NULL, 0);
    c = crc32(c, buf, (uInt)size);
    char hex[9];
    snprintf(hex, sizeof hex, "%08" PRIx32, (uint32_t)c);
    memcpy(buf + kv->value_pos, hex, 8);
}

static char temp[64];

static void remove_temp(void) { unlink(temp); }

/* One temporary file for the process, removed at exit. */
static const char *temp_path(void)
{
    if (!temp[0]) {
        const char *dir = getenv("TMPDIR");
        snprintf(temp, sizeof temp, "%.40s/sm-fuzz-ckpt-XXXXXX", dir && *dir ? dir : "/tmp");
        int fd = mkstemp(temp);
        if (fd < 0) {
            temp[0] = '\0';
            return NULL;
        }
        close(fd);
        atexit(remove_temp);
    }
    return temp;
}

static int load_from_file(const uint8_t *buf, size_t size)
{
    static sm_backend *be; /* one for the process: creating it is the slow part */
    if (!be) {
        if (sm_backend_create(SM_BACKEND_CPU, &be) != SM_OK) return 0;
        sm_backend_set_threads(be, 1);
    }
    const char *path = temp_path();
    FILE *fp = path ? fopen(path, "wb") : NULL;
    if (!fp) return 0;
    int written = fwrite(buf, 1, size, fp) == size;
    if (fclose(fp) != 0 || !written) return 0;
    uint64_t saved = sm_get_limit(SM_LIMIT_FILE_BYTES);
    sm_set_limit(SM_LIMIT_FILE_BYTES, (uint64_t)1 << 20);
    sm_subnet *s = NULL;
    sm_head *h = NULL;
    sm_status st = sm_model_load(be, path, &s, &h);
    sm_set_limit(SM_LIMIT_FILE_BYTES, saved);
    int bad = 0;
    if (st == SM_OK) {
        bad = !s || !h || sm_subnet_feature_dim(s) != sm_head_feature_dim(h);
        sm_head_destroy(h);
        sm_subnet_destroy(s);
    } else {
        bad = !load_ok(st);
    }
    return bad;
}

int sm_fuzz_checkpoint(const uint8_t *data, size_t size)
{
    sm__st_file f;
    sm_status st = sm__st_parse(data, size, &f);
    if (st != SM_OK) return !parse_ok(st);
    int bad = 0;
    for (size_t i = 0; i < f.n_tensors && !bad; i++) {
        const sm__st_tensor *t = &f.tensors[i];
        bad = sm__st_find(&f, t->name) != t || t->begin > t->end || t->end > f.data_size ||
              f.data_off + f.data_size != size;
    }
    for (size_t i = 0; i < f.n_meta && !bad; i++)
        bad = sm__st_meta(&f, f.meta[i].key) != &f.meta[i];
    uint8_t *copy = bad ? NULL : malloc(size);
    if (copy) {
        memcpy(copy, data, size);
        patch_crc(copy, size, &f);
        bad = load_from_file(copy, size);
        free(copy);
    }
    sm__st_file_free(&f);
    return bad;
}
