/* SPDX-License-Identifier: MIT */
#include "fixtures.h"

#include <dirent.h>
#include <errno.h>
#include <spng.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zip.h>
#include <zlib.h>

char *fx_join(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    char *s = malloc(la + 1 + lb + 1);
    if (!s) return NULL;
    memcpy(s, a, la);
    s[la] = '/';
    memcpy(s + la + 1, b, lb + 1);
    return s;
}

char *fx_tempdir(void)
{
    const char *base = getenv("TMPDIR");
    if (!base || !*base) base = "/tmp";
    char *tmpl = fx_join(base, "sm-test-XXXXXX");
    if (!tmpl) return NULL;
    if (!mkdtemp(tmpl)) {
        free(tmpl);
        return NULL;
    }
    return tmpl;
}

int fx_rmtree(const char *path)
{
    struct stat sb;
    if (lstat(path, &sb) != 0) return errno == ENOENT ? 0 : -1;
    if (!S_ISDIR(sb.st_mode)) return unlink(path) == 0 ? 0 : -1;
    DIR *d = opendir(path);
    if (!d) return -1;
    int rc = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) continue;
        char *sub = fx_join(path, de->d_name);
        if (!sub || fx_rmtree(sub) != 0) rc = -1;
        free(sub);
    }
    closedir(d);
    if (rmdir(path) != 0) rc = -1;
    return rc;
}

int fx_mkdirs(const char *path)
{
    char *p = strdup(path);
    if (!p) return -1;
    int rc = 0;
    for (char *s = p + 1; rc == 0; s++) {
        if (*s != '/' && *s != '\0') continue;
        char c = *s;
        *s = '\0';
        if (mkdir(p, 0700) != 0 && errno != EEXIST) rc = -1;
        *s = c;
        if (c == '\0') break;
    }
    free(p);
    return rc;
}

static int mkparents(const char *path)
{
    char *p = strdup(path);
    if (!p) return -1;
    char *slash = strrchr(p, '/');
    int rc = 0;
    if (slash && slash != p) {
        *slash = '\0';
        rc = fx_mkdirs(p);
    }
    free(p);
    return rc;
}

int fx_write_bytes(const char *path, const void *data, size_t n)
{
    if (mkparents(path) != 0) return -1;
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t w = n ? fwrite(data, 1, n, f) : 0;
    int rc = fclose(f);
    return w == n && rc == 0 ? 0 : -1;
}

uint8_t *fx_read_bytes(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    uint8_t *buf = NULL;
    if (fseek(f, 0, SEEK_END) == 0) {
        long len = ftell(f);
        if (len >= 0 && fseek(f, 0, SEEK_SET) == 0 && (buf = malloc((size_t)len + 1)) != NULL) {
            if (fread(buf, 1, (size_t)len, f) != (size_t)len) {
                free(buf);
                buf = NULL;
            } else {
                *n = (size_t)len;
            }
        }
    }
    fclose(f);
    return buf;
}

void fx_pattern(uint8_t *grey, int w, int h, unsigned seed)
{
    uint32_t x = 2463534242u ^ (seed * 2654435761u);
    for (int i = 0; i < w * h; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        grey[i] = (uint8_t)(x >> 24);
    }
}

uint8_t fx_expected_level(uint8_t grey, int bit_depth)
{
    if (bit_depth >= 8) return grey;
    unsigned sample = grey >> (8 - bit_depth);
    unsigned maxv = (1u << bit_depth) - 1u;
    return (uint8_t)(sample * 255u / maxv);
}

/* Packs the levels into PNG rows of the given type and depth (SPNG_FMT_PNG layout). */
static uint8_t *pack(int w, int h, int color_type, int bit_depth, const uint8_t *grey, size_t *len)
{
    int channels = color_type == FX_RGB ? 3 : color_type == FX_GREY_ALPHA ? 2 : 1;
    size_t row = ((size_t)w * (size_t)channels * (size_t)bit_depth + 7) / 8;
    uint8_t *img = calloc(row * (size_t)h + 1, 1);
    if (!img) return NULL;
    for (int y = 0; y < h; y++) {
        uint8_t *r = img + (size_t)y * row;
        for (int x = 0; x < w; x++) {
            uint8_t g = grey[y * w + x];
            if (bit_depth == 16) {
                uint16_t v = (uint16_t)(g * 257u);
                memcpy(r + 2 * (size_t)x, &v, 2); /* host-endian, as SPNG_FMT_PNG wants */
            } else if (bit_depth == 8) {
                for (int c = 0; c < channels; c++)
                    r[(size_t)x * (size_t)channels + (size_t)c] =
                        (color_type == FX_GREY_ALPHA && c == 1) ? 200 : g;
            } else {
                unsigned sample = g >> (8 - bit_depth);
                size_t bit = (size_t)x * (size_t)bit_depth;
                r[bit / 8] |= (uint8_t)(sample << (8 - bit_depth - (int)(bit % 8)));
            }
        }
    }
    *len = row * (size_t)h;
    return img;
}

uint8_t *fx_encode_png(int w, int h, int color_type, int bit_depth, const uint8_t *grey, size_t *n)
{
    size_t len;
    uint8_t *img = pack(w, h, color_type, bit_depth, grey, &len);
    if (!img) return NULL;
    spng_ctx *ctx = spng_ctx_new(SPNG_CTX_ENCODER);
    uint8_t *out = NULL;
    if (ctx) {
        struct spng_ihdr ihdr = {
            (uint32_t)w, (uint32_t)h, (uint8_t)bit_depth, (uint8_t)color_type, 0, 0, 0};
        int err = spng_set_option(ctx, SPNG_ENCODE_TO_BUFFER, 1);
        if (!err) err = spng_set_ihdr(ctx, &ihdr);
        if (!err) err = spng_encode_image(ctx, img, len, SPNG_FMT_PNG, SPNG_ENCODE_FINALIZE);
        if (!err) out = spng_get_png_buffer(ctx, n, &err); /* ours to free */
        if (err) {
            free(out);
            out = NULL;
        }
        spng_ctx_free(ctx);
    }
    free(img);
    return out;
}

int fx_write_png(const char *path, int w, int h, int color_type, int bit_depth, const uint8_t *grey)
{
    size_t n;
    uint8_t *png = fx_encode_png(w, h, color_type, bit_depth, grey, &n);
    if (!png) return -1;
    int rc = fx_write_bytes(path, png, n);
    free(png);
    return rc;
}

int fx_write_truncated_png(const char *path, int w, int h)
{
    uint8_t *grey = malloc((size_t)w * (size_t)h);
    if (!grey) return -1;
    fx_pattern(grey, w, h, 99);
    size_t n;
    uint8_t *png = fx_encode_png(w, h, FX_GREY, 8, grey, &n);
    free(grey);
    if (!png) return -1;
    int rc = fx_write_bytes(path, png, n / 2);
    free(png);
    return rc;
}

static uint32_t get_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* Where the chunk `kind` starts in `png` (its length field), or 0. */
static size_t find_chunk(const uint8_t *png, size_t n, const char *kind)
{
    for (size_t i = 8; i + 12 <= n; i += 12 + get_be32(png + i))
        if (memcmp(png + i + 4, kind, 4) == 0) return i;
    return 0;
}

int fx_write_damaged_png(const char *path, int w, int h, int damage)
{
    uint8_t *grey = malloc((size_t)w * (size_t)h);
    if (!grey) return -1;
    fx_pattern(grey, w, h, 98);
    size_t n;
    uint8_t *png = fx_encode_png(w, h, FX_GREY, 8, grey, &n);
    free(grey);
    static const char text[] = "tEXtComment\0written after the pixels";
    uint8_t *out = png ? malloc(n + sizeof text + 8) : NULL;
    size_t iend = png ? find_chunk(png, n, "IEND") : 0, idat = png ? find_chunk(png, n, "IDAT") : 0;
    if (!out || !iend || !idat) {
        free(png);
        free(out);
        return -1;
    }
    memcpy(out, png, n);
    size_t len = n;
    if (damage == FX_DAMAGE_IDAT_CRC) {
        size_t crc_at = idat + 8 + get_be32(png + idat);
        out[crc_at] ^= 0x5a;
    } else if (damage == FX_DAMAGE_TEXT_CRC) { /* a tEXt chunk between IDAT and IEND */
        uint32_t tl = (uint32_t)sizeof text - 1 - 4;
        put_be32(out + iend, tl);
        memcpy(out + iend + 4, text, sizeof text - 1);
        uint32_t crc = (uint32_t)crc32(0, (const Bytef *)text, (uInt)(sizeof text - 1));
        put_be32(out + iend + 4 + sizeof text - 1, crc ^ 1u);
        memcpy(out + iend + 8 + sizeof text - 1, png + iend, n - iend);
        len = n + 8 + sizeof text - 1;
    } else { /* FX_DAMAGE_NO_IEND */
        len = iend;
    }
    int rc = fx_write_bytes(path, out, len);
    free(png);
    free(out);
    return rc;
}

/* Adds the files (and, if asked, folders) below dir/rel to the archive. */
static int zip_walk(zip_t *za, const char *dir, const char *rel, const char *prefix,
                    int dir_entries, int store)
{
    char *path = rel[0] ? fx_join(dir, rel) : strdup(dir);
    if (!path) return -1;
    DIR *d = opendir(path);
    if (!d) {
        free(path);
        return -1;
    }
    int rc = 0;
    struct dirent *de;
    while (rc == 0 && (de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) continue;
        char *sub = rel[0] ? fx_join(rel, de->d_name) : strdup(de->d_name);
        char *full = fx_join(path, de->d_name);
        size_t nl = strlen(prefix) + (sub ? strlen(sub) : 0) + 2;
        char *name = malloc(nl);
        struct stat sb;
        if (!sub || !full || !name || stat(full, &sb) != 0) {
            rc = -1;
        } else if (S_ISDIR(sb.st_mode)) {
            snprintf(name, nl, "%s%s/", prefix, sub);
            if (dir_entries && zip_dir_add(za, name, 0) < 0) rc = -1;
            if (rc == 0) rc = zip_walk(za, dir, sub, prefix, dir_entries, store);
        } else {
            snprintf(name, nl, "%s%s", prefix, sub);
            zip_source_t *src = zip_source_file(za, full, 0, -1);
            zip_int64_t idx = src ? zip_file_add(za, name, src, ZIP_FL_OVERWRITE) : -1;
            if (idx < 0) {
                if (src) zip_source_free(src);
                rc = -1;
            } else if (store && zip_set_file_compression(za, (zip_uint64_t)idx, ZIP_CM_STORE, 0)) {
                rc = -1;
            }
        }
        free(sub);
        free(full);
        free(name);
    }
    closedir(d);
    free(path);
    return rc;
}

int fx_zip_tree(const char *dir, const char *zip_path, const char *prefix, int dir_entries,
                int store)
{
    int err = 0;
    zip_t *za = zip_open(zip_path, ZIP_CREATE | ZIP_TRUNCATE, &err);
    if (!za) return -1;
    int rc = 0;
    if (dir_entries && prefix[0] && zip_dir_add(za, prefix, 0) < 0) rc = -1;
    if (rc == 0) rc = zip_walk(za, dir, "", prefix, dir_entries, store);
    if (rc != 0) {
        zip_discard(za);
        return -1;
    }
    return zip_close(za) == 0 ? 0 : -1;
}

int fx_zip_add(const char *zip_path, const char *name, const void *data, size_t n)
{
    int err = 0;
    zip_t *za = zip_open(zip_path, ZIP_CREATE, &err);
    if (!za) return -1;
    zip_source_t *src = zip_source_buffer(za, data, n, 0);
    zip_int64_t idx = src ? zip_file_add(za, name, src, ZIP_FL_OVERWRITE) : -1;
    if (idx < 0) {
        if (src) zip_source_free(src);
        zip_discard(za);
        return -1;
    }
    /* Fast compression: the big-entry test zips 65 MiB of zeros. */
    zip_set_file_compression(za, (zip_uint64_t)idx, ZIP_CM_DEFLATE, 1);
    return zip_close(za) == 0 ? 0 : -1;
}
