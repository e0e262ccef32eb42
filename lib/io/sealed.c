/* SPDX-License-Identifier: MIT */
/* Sealed safetensors files (io/sealed.h). */
#include "io/sealed.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "common/error.h"
#include "io/file_atomic.h"

struct sm__sealed_out {
    uint32_t crc;
    sm__afile *file; /* NULL on the sealing pass */
};

static const uint8_t zeros[8] = {'0', '0', '0', '0', '0', '0', '0', '0'};

sm_status sm__sealed_emit(sm__sealed_out *out, const void *p, size_t n)
{
    out->crc = sm__crc32_update(out->crc, p, n);
    return out->file ? sm__afile_write(out->file, p, n) : SM_OK;
}

/* The CRC of a header with the crc32 value's 8 digits (at `pos`) counted as '0's. */
static uint32_t header_crc(const uint8_t *hdr, size_t len, size_t pos)
{
    uint32_t c = sm__crc32_update(0, hdr, pos);
    c = sm__crc32_update(c, zeros, 8);
    return sm__crc32_update(c, hdr + pos + 8, len - pos - 8);
}

sm_status sm__sealed_write(const char *path, const sm__st_out_tensor *t, size_t nt,
                           sm__st_out_meta *m, size_t nm, sm__sealed_data_fn produce, void *user,
                           const char *data)
{
    SM_CHECK_ARG(nm >= 1 && !strcmp(m[nm - 1].key, "crc32") && !strcmp(m[nm - 1].value, "00000000"),
                 "sm__sealed_write: the last metadata entry must be the crc32 placeholder");
    uint8_t *hdr = NULL;
    size_t hdr_len = 0;
    uint64_t data_size = 0;
    SM_TRY(sm__st_build_header(t, nt, m, nm, &hdr, &hdr_len, &data_size));
    const size_t pos = m[nm - 1].value_pos;
    /* the placeholder is '0's already: the seal is the CRC of this header and the data */
    sm__sealed_out seal = {sm__crc32_update(0, hdr, hdr_len), NULL};
    sm_status st = produce(user, &seal);
    if (st == SM_OK) {
        char hex[9];
        snprintf(hex, sizeof hex, "%08" PRIx32, seal.crc);
        memcpy(hdr + pos, hex, 8);
    }
    sm__afile af = {.fd = -1};
    int open = 0;
    if (st == SM_OK) st = sm__afile_open(&af, path);
    if (st == SM_OK) {
        open = 1;
        st = sm__afile_write(&af, hdr, hdr_len);
    }
    if (st == SM_OK) {
        sm__sealed_out w = {header_crc(hdr, hdr_len, pos), &af};
        st = produce(user, &w);
        if (st == SM_OK && w.crc != seal.crc)
            st = sm__fail(SM_ERR_DEVICE,
                          "saving '%s': the %s read back differently on the "
                          "second pass",
                          path, data);
    }
    if (st == SM_OK) {
        open = 0;
        st = sm__afile_commit(&af);
    }
    if (open) sm__afile_abort(&af);
    sm__free(hdr);
    return st;
}

static const char *meta(const sm__st_file *f, const char *key)
{
    const sm__st_kv *kv = sm__st_meta(f, key);
    return kv ? kv->value : NULL;
}

int sm__parse_hex(const char *s, size_t digits, uint64_t *out)
{
    uint64_t v = 0;
    for (size_t i = 0; i < digits; i++) {
        const char c = s[i]; /* a NUL ends the loop as any other non-digit does */
        v <<= 4;
        if (c >= '0' && c <= '9') v |= (uint64_t)(c - '0');
        else if (c >= 'a' && c <= 'f') v |= (uint64_t)(c - 'a' + 10);
        else return 0;
    }
    *out = v;
    return 1;
}

sm_status sm__sealed_check(const sm__st_file *f, const uint8_t *buf, size_t size, const char *path,
                           const char *format, uint64_t max_version, const char *kind)
{
    const char *fmt = meta(f, "format"), *ver = meta(f, "format_version");
    SM_RETURN_IF(!fmt || strcmp(fmt, format) != 0, SM_ERR_FORMAT,
                 "'%s' is a safetensors file but not a libsiamese %s (metadata 'format' is not "
                 "'%s')",
                 path, kind, format);
    SM_RETURN_IF(!ver || !*ver || strspn(ver, "0123456789") != strlen(ver) || ver[0] == '0',
                 SM_ERR_FORMAT, "%s '%s': bad format_version '%.20s'", kind, path, ver ? ver : "");
    /* more digits than any version we write: newer all the same */
    SM_RETURN_IF(strlen(ver) > 18 || strtoull(ver, NULL, 10) > max_version, SM_ERR_VERSION,
                 "%s '%s' has format version %.20s; this libsiamese reads version %" PRIu64
                 ": upgrade the library",
                 kind, path, ver, max_version);
    const sm__st_kv *kv = sm__st_meta(f, "crc32");
    uint64_t want;
    /* raw length 8 and decoded length 8: no escapes, so the raw bytes are the digits */
    SM_RETURN_IF(!kv || kv->value_rawlen != 8 || strlen(kv->value) != 8 ||
                     !sm__parse_hex(kv->value, 8, &want),
                 SM_ERR_FORMAT, "%s '%s': crc32 is missing or not 8 lowercase hex digits", kind,
                 path);
    const size_t pos = kv->value_pos;
    uint32_t c = sm__crc32_update(0, buf, pos);
    c = sm__crc32_update(c, zeros, 8);
    c = sm__crc32_update(c, buf + pos + 8, size - pos - 8);
    SM_RETURN_IF(c != (uint32_t)want, SM_ERR_FORMAT,
                 "%s '%s': checksum mismatch (file says %08" PRIx32 ", contents give %08" PRIx32
                 "): the file is damaged",
                 kind, path, (uint32_t)want, c);
    return SM_OK;
}
