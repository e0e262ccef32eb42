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
    uint64_t off;    /* bytes of the data region emitted so far */
    uint64_t pb, pe; /* the part whose own CRC is kept (pb == pe: none) */
    uint32_t part_crc;
};

static const uint8_t zeros[8] = {'0', '0', '0', '0', '0', '0', '0', '0'};

sm_status sm__sealed_emit(sm__sealed_out *out, const void *p, size_t n)
{
    out->crc = sm__crc32_update(out->crc, p, n);
    const uint64_t lo = out->off > out->pb ? out->off : out->pb;
    const uint64_t hi = out->off + n < out->pe ? out->off + n : out->pe;
    if (lo < hi)
        out->part_crc = sm__crc32_update(out->part_crc, (const uint8_t *)p + (lo - out->off),
                                         (size_t)(hi - lo));
    out->off += n;
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
    return sm__sealed_write_with(path, t, nt, m, nm, produce, user, data, NULL);
}

static void put_hex8(uint8_t *at, uint32_t v)
{
    char hex[9];
    snprintf(hex, sizeof hex, "%08" PRIx32, v);
    memcpy(at, hex, 8);
}

/* The data is sealed on its own first (its CRC from 0, and the part's), then the header's
 * placeholders are filled and the file's CRC is the header's combined with the data's. */
sm_status sm__sealed_write_with(const char *path, const sm__st_out_tensor *t, size_t nt,
                                sm__st_out_meta *m, size_t nm, sm__sealed_data_fn produce,
                                void *user, const char *data, const sm__sealed_opts *opts)
{
    static const sm__sealed_opts none = {0};
    const sm__sealed_opts *o = opts ? opts : &none;
    SM_CHECK_ARG(nm >= 1 && !strcmp(m[nm - 1].key, "crc32") && !strcmp(m[nm - 1].value, "00000000"),
                 "sm__sealed_write: the last metadata entry must be the crc32 placeholder");
    size_t part = SIZE_MAX;
    for (size_t i = 0; o->part_key && i + 1 < nm; i++)
        if (!strcmp(m[i].key, o->part_key) && !strcmp(m[i].value, "00000000")) part = i;
    SM_CHECK_ARG(!o->part_key || (part != SIZE_MAX && o->part_begin <= o->part_end),
                 "sm__sealed_write: no placeholder for '%s'", o->part_key);
    uint8_t *hdr = NULL;
    size_t hdr_len = 0;
    uint64_t data_size = 0;
    SM_TRY(sm__st_build_header_aligned(t, nt, m, nm, o->data_align ? o->data_align : 8, &hdr,
                                       &hdr_len, &data_size));
    const size_t pos = m[nm - 1].value_pos;
    sm__sealed_out seal = {0, NULL, 0, o->part_begin, o->part_key ? o->part_end : o->part_begin, 0};
    sm_status st = produce(user, &seal);
    uint32_t whole = 0;
    if (st == SM_OK) {
        if (part != SIZE_MAX) put_hex8(hdr + m[part].value_pos, seal.part_crc);
        /* the crc32 placeholder is still '0's */
        whole = sm__crc32_combine(sm__crc32_update(0, hdr, hdr_len), seal.crc, seal.off);
        put_hex8(hdr + pos, whole);
    }
    sm__afile af = {.fd = -1};
    int open = 0;
    if (st == SM_OK) st = sm__afile_open(&af, path);
    if (st == SM_OK) {
        open = 1;
        st = sm__afile_write(&af, hdr, hdr_len);
    }
    if (st == SM_OK) {
        sm__sealed_out w = {header_crc(hdr, hdr_len, pos), &af, 0, seal.pb, seal.pe, 0};
        st = produce(user, &w);
        if (st == SM_OK && (w.crc != whole || w.part_crc != seal.part_crc))
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

/* The format and version of a parsed file (sm__sealed_check's first half), and its recorded
 * crc32 into *want. */
static sm_status check_format(const sm__st_file *f, const char *path, const char *format,
                              uint64_t max_version, const char *kind, uint64_t *want, size_t *pos)
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
    /* raw length 8 and decoded length 8: no escapes, so the raw bytes are the digits */
    SM_RETURN_IF(!kv || kv->value_rawlen != 8 || strlen(kv->value) != 8 ||
                     !sm__parse_hex(kv->value, 8, want),
                 SM_ERR_FORMAT, "%s '%s': crc32 is missing or not 8 lowercase hex digits", kind,
                 path);
    *pos = kv->value_pos;
    return SM_OK;
}

/* The CRC of buf[a, b) with the crc32 digits at `pos` counted as '0's, continued from c. */
static uint32_t crc_range(uint32_t c, const uint8_t *buf, size_t a, size_t b, size_t pos)
{
    if (pos >= a && pos + 8 <= b) {
        c = sm__crc32_update(c, buf + a, pos - a);
        c = sm__crc32_update(c, zeros, 8);
        return sm__crc32_update(c, buf + pos + 8, b - pos - 8);
    }
    return sm__crc32_update(c, buf + a, b - a);
}

sm_status sm__sealed_check(const sm__st_file *f, const uint8_t *buf, size_t size, const char *path,
                           const char *format, uint64_t max_version, const char *kind)
{
    return sm__sealed_check_with(f, buf, size, path, format, max_version, kind, NULL, 0, 0, 1,
                                 NULL);
}

sm_status sm__sealed_check_with(const sm__st_file *f, const uint8_t *buf, size_t size,
                                const char *path, const char *format, uint64_t max_version,
                                const char *kind, const char *part_key, uint64_t part_begin,
                                uint64_t part_end, int read_part, int *part_read)
{
    uint64_t want = 0, part_want = 0;
    size_t pos = 0;
    SM_TRY(check_format(f, path, format, max_version, kind, &want, &pos));
    const sm__st_kv *pk = part_key ? sm__st_meta(f, part_key) : NULL;
    if (pk)
        SM_RETURN_IF(pk->value_rawlen != 8 || strlen(pk->value) != 8 ||
                         !sm__parse_hex(pk->value, 8, &part_want),
                     SM_ERR_FORMAT, "%s '%s': %s is not 8 lowercase hex digits", kind, path,
                     part_key);
    /* the header (with the crc32 digits) lies before the part, which lies within the file */
    const int has_part = pk && part_begin <= part_end && part_end <= size && pos + 8 <= part_begin;
    if (part_read) *part_read = !has_part || read_part;
    uint32_t c;
    if (!has_part) {
        c = crc_range(0, buf, 0, size, pos);
    } else {
        const size_t pb = (size_t)part_begin, pe = (size_t)part_end;
        uint32_t part = (uint32_t)part_want;
        if (read_part) {
            part = sm__crc32_update(0, buf + pb, pe - pb);
            SM_RETURN_IF(part != (uint32_t)part_want, SM_ERR_FORMAT,
                         "%s '%s': checksum mismatch in %s (file says %08" PRIx32
                         ", contents give %08" PRIx32 "): the file is damaged",
                         kind, path, part_key, (uint32_t)part_want, part);
        }
        c = sm__crc32_combine(crc_range(0, buf, 0, pb, pos), part, pe - pb);
        c = crc_range(c, buf, pe, size, pos);
    }
    SM_RETURN_IF(c != (uint32_t)want, SM_ERR_FORMAT,
                 "%s '%s': checksum mismatch (file says %08" PRIx32 ", contents give %08" PRIx32
                 "): the file is damaged",
                 kind, path, (uint32_t)want, c);
    return SM_OK;
}
