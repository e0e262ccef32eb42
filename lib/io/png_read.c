/* SPDX-License-Identifier: MIT */
/* PNG decoding with libspng, into 8-bit grey pixels. Greyscale files keep their stored levels;
 * colour, palette and alpha files follow the grey rule of siamese.h (composite over white,
 * then BT.601 luma).
 *
 * Strict: every chunk's CRC is checked, ancillary ones included, and each file is read to its
 * IEND. libspng by default discards an ancillary chunk with a bad CRC and stops reading once
 * the image data is inflated, so the CRC of the last IDAT chunk, everything after it and a
 * missing IEND would go unseen; a damaged file must not be training data. */
#include "io/png.h"

#include <inttypes.h>
#include <spng.h>
#include <stdint.h>
#include <string.h>

#include "common/alloc.h"
#include "common/error.h"
#include "common/limits.h"

/* The largest expected size sm__png_decode takes (the API allows at most 4096 a side). */
#define PNG_SIDE_LIMIT 65535u
/* libspng's own bound on what a header may claim (its maximum): the library checks the
 * header against SM_LIMIT_IMAGE_SIDE itself, so it can name the size claimed. */
#define PNG_SPNG_SIDE_MAX 0x7fffffffu
/* Ancillary chunks (text, ICC profiles) are cached by libspng: cap what a file can make it keep. */
#define PNG_CHUNK_LIMIT ((size_t)16 << 20)
#define PNG_CACHE_LIMIT ((size_t)16 << 20)

/* libspng (and zlib inside it) reports a failed allocation as whatever step failed ("IDAT
 * stream error"), so the allocator records it: a decode that failed after one is out of
 * memory, not a damaged file. Thread-local because decodes may run on several threads. */
static _Thread_local int png_alloc_failed;

static void *note(void *p)
{
    if (!p) png_alloc_failed = 1;
    return p;
}
static void *png_malloc(size_t size) { return note(sm__malloc(size)); }
static void *png_realloc(void *ptr, size_t size) { return note(sm__realloc(ptr, size)); }
static void *png_calloc(size_t count, size_t size) { return note(sm__calloc(count, size)); }
static void png_free(void *ptr) { sm__free(ptr); }

static sm_status spng_failure(int err, const char *name)
{
    if (err == SPNG_EMEM || png_alloc_failed)
        return sm__fail(SM_ERR_NOMEM, "out of memory decoding image '%s'", name);
    if (err == SPNG_EUSER_WIDTH || err == SPNG_EUSER_HEIGHT)
        return sm__fail(SM_ERR_LIMIT, "image '%s' is larger than %ux%u", name, PNG_SPNG_SIDE_MAX,
                        PNG_SPNG_SIDE_MAX);
    if (err == SPNG_ECHUNK_CRC)
        return sm__fail(SM_ERR_FORMAT,
                        "image '%s' is damaged: a chunk's CRC does not match its "
                        "data",
                        name);
    return sm__fail(SM_ERR_FORMAT, "image '%s' is not a valid PNG: %s", name, spng_strerror(err));
}

/* Reads the chunks after the image data up to IEND, checking each CRC (the last IDAT's too). */
static sm_status read_to_iend(spng_ctx *ctx, const char *name)
{
    int err = spng_decode_chunks(ctx);
    if (err == SPNG_IO_EOF)
        return sm__fail(SM_ERR_FORMAT,
                        "image '%s' is not a valid PNG: it ends before its IEND "
                        "chunk (truncated)",
                        name);
    return err ? spng_failure(err, name) : SM_OK;
}

/* height, width <= 0: any size (the header's). */
static sm_status check_header(spng_ctx *ctx, const char *name, int height, int width,
                              struct spng_ihdr *ihdr)
{
    int err = spng_get_ihdr(ctx, ihdr);
    if (err) return spng_failure(err, name);
    uint64_t side = sm__limit(SM_LIMIT_IMAGE_SIDE);
    if (ihdr->width > side || ihdr->height > side)
        return sm__fail(SM_ERR_LIMIT,
                        "image '%s' claims %" PRIu32 "x%" PRIu32 " pixels, more than "
                        "SM_LIMIT_IMAGE_SIDE (%" PRIu64 ") on a side; raise it with "
                        "sm_set_limit(SM_LIMIT_IMAGE_SIDE)",
                        name, ihdr->width, ihdr->height, side);
    if (height > 0 && (ihdr->width != (uint32_t)width || ihdr->height != (uint32_t)height))
        return sm__fail(SM_ERR_SHAPE, "image '%s' is %ux%u, expected %dx%d", name,
                        (unsigned)ihdr->width, (unsigned)ihdr->height, width, height);
    return SM_OK;
}

/* 16-bit samples: libspng's 8-bit greyscale output only covers depths up to 8. */
static sm_status decode_16(spng_ctx *ctx, const char *name, size_t n, uint8_t *out)
{
    size_t len, want;
    int err = spng_decoded_image_size(ctx, SPNG_FMT_PNG, &len);
    if (err) return spng_failure(err, name);
    if (!sm__mul_size(n, 2, &want) || len != want)
        return sm__fail(SM_ERR_INTERNAL, "image '%s': unexpected decoded size %zu", name, len);
    uint16_t *wide = sm__malloc(len);
    if (!wide) return sm__fail(SM_ERR_NOMEM, "out of memory decoding image '%s'", name);
    err = spng_decode_image(ctx, wide, len, SPNG_FMT_PNG, 0);
    if (err) {
        sm__free(wide);
        return spng_failure(err, name);
    }
    for (size_t i = 0; i < n; i++) out[i] = (uint8_t)(((uint32_t)wide[i] * 255u + 32767u) / 65535u);
    sm__free(wide);
    return SM_OK;
}

/* Composites one pixel over white and takes its BT.601 luma; channels scaled to [0, 1]. */
static uint8_t grey_of(double r, double g, double b, double a)
{
    double y = 0.299 * r + 0.587 * g + 0.114 * b;
    double v = a * y + (1.0 - a);
    long q = (long)(v * 255.0 + 0.5);
    return (uint8_t)(q < 0 ? 0 : q > 255 ? 255 : q);
}

/* Colour, palette and alpha files: decoded as RGBA (transparency applied), then the grey
 * rule. 16-bit files keep their precision until the final rounding. */
static sm_status decode_colour(spng_ctx *ctx, const char *name, size_t n, int wide, uint8_t *out)
{
    int fmt = wide ? SPNG_FMT_RGBA16 : SPNG_FMT_RGBA8;
    size_t len, want;
    int err = spng_decoded_image_size(ctx, fmt, &len);
    if (err) return spng_failure(err, name);
    if (!sm__mul_size(n, wide ? 8 : 4, &want) || len != want)
        return sm__fail(SM_ERR_INTERNAL, "image '%s': unexpected decoded size %zu", name, len);
    void *buf = sm__malloc(len);
    if (!buf) return sm__fail(SM_ERR_NOMEM, "out of memory decoding image '%s'", name);
    err = spng_decode_image(ctx, buf, len, fmt, SPNG_DECODE_TRNS);
    if (err) {
        sm__free(buf);
        return spng_failure(err, name);
    }
    if (wide) {
        const uint16_t *p = buf;
        for (size_t i = 0; i < n; i++, p += 4)
            out[i] = grey_of(p[0] / 65535.0, p[1] / 65535.0, p[2] / 65535.0, p[3] / 65535.0);
    } else {
        const uint8_t *p = buf;
        for (size_t i = 0; i < n; i++, p += 4)
            out[i] = grey_of(p[0] / 255.0, p[1] / 255.0, p[2] / 255.0, p[3] / 255.0);
    }
    sm__free(buf);
    return SM_OK;
}

static sm_status decode_pixels(spng_ctx *ctx, const char *name, const struct spng_ihdr *ihdr,
                               uint8_t *out)
{
    size_t n = (size_t)ihdr->height * (size_t)ihdr->width; /* both <= the side limit */
    if (ihdr->color_type != SPNG_COLOR_TYPE_GRAYSCALE)
        return decode_colour(ctx, name, n, ihdr->bit_depth == 16, out);
    if (ihdr->bit_depth == 16) return decode_16(ctx, name, n, out);

    size_t len;
    int err = spng_decoded_image_size(ctx, SPNG_FMT_G8, &len);
    if (err) return spng_failure(err, name);
    if (len != n)
        return sm__fail(SM_ERR_INTERNAL, "image '%s': unexpected decoded size %zu", name, len);
    /* No tRNS or gamma: the pixel values are the data, exactly as stored. */
    err = spng_decode_image(ctx, out, len, SPNG_FMT_G8, 0);
    if (err) return spng_failure(err, name);
    return SM_OK;
}

/* Exact size (height, width > 0) into `out`, or any size (both 0) into a new buffer. */
static sm_status decode(spng_ctx *ctx, const char *name, int height, int width, uint8_t *out,
                        uint8_t **alloc_out, int *got_h, int *got_w)
{
    struct spng_ihdr ihdr;
    SM_TRY(check_header(ctx, name, height, width, &ihdr));
    if (out) {
        SM_TRY(decode_pixels(ctx, name, &ihdr, out));
        return read_to_iend(ctx, name);
    }
    size_t n;
    if (!sm__mul_size(ihdr.width, ihdr.height, &n) || n == 0)
        return sm__fail(SM_ERR_FORMAT, "image '%s' has no pixels", name);
    uint8_t *buf = sm__malloc(n);
    if (!buf) return sm__fail(SM_ERR_NOMEM, "out of memory decoding image '%s'", name);
    sm_status st = decode_pixels(ctx, name, &ihdr, buf);
    if (st == SM_OK) st = read_to_iend(ctx, name);
    if (st != SM_OK) {
        sm__free(buf);
        return st;
    }
    *alloc_out = buf;
    *got_h = (int)ihdr.height;
    *got_w = (int)ihdr.width;
    return SM_OK;
}

static sm_status run_decoder(const void *data, size_t size, const char *name, int height, int width,
                             uint8_t *out, uint8_t **alloc_out, int *got_h, int *got_w)
{
    /* libspng's allocations go through the library's allocator, so failure injection covers
     * them too. */
    struct spng_alloc alloc = {png_malloc, png_realloc, png_calloc, png_free};
    png_alloc_failed = 0;
    spng_ctx *ctx = spng_ctx_new2(&alloc, 0);
    if (!ctx) return sm__fail(SM_ERR_NOMEM, "out of memory decoding image '%s'", name);

    sm_status st;
    int err = spng_set_image_limits(ctx, PNG_SPNG_SIDE_MAX, PNG_SPNG_SIDE_MAX);
    if (!err) err = spng_set_chunk_limits(ctx, PNG_CHUNK_LIMIT, PNG_CACHE_LIMIT);
    if (!err) err = spng_set_crc_action(ctx, SPNG_CRC_ERROR, SPNG_CRC_ERROR);
    if (!err) err = spng_set_png_buffer(ctx, data, size);
    if (err) st = spng_failure(err, name);
    else st = decode(ctx, name, height, width, out, alloc_out, got_h, got_w);
    spng_ctx_free(ctx);
    return st;
}

sm_status sm__png_decode(const void *data, size_t size, const char *name, int height, int width,
                         uint8_t *out)
{
    if (height <= 0 || width <= 0 || (unsigned)height > PNG_SIDE_LIMIT ||
        (unsigned)width > PNG_SIDE_LIMIT)
        return sm__fail(SM_ERR_INVALID_ARG, "image size %dx%d out of range", width, height);
    return run_decoder(data, size, name, height, width, out, NULL, NULL, NULL);
}

sm_status sm__png_decode_any(const void *data, size_t size, const char *name, int *height,
                             int *width, uint8_t **out)
{
    return run_decoder(data, size, name, 0, 0, NULL, out, height, width);
}
