/* Greyscale PNG decoding with libspng, into 8-bit pixels. */
#include "dataset.h"

#include <inttypes.h>
#include <spng.h>
#include <stdint.h>
#include <string.h>

#include "alloc.h"
#include "error.h"
#include "limits.h"

/* The largest expected size sm__png_decode takes (the API allows at most SM__MAX_IMAGE_SIDE). */
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
    return sm__fail(SM_ERR_FORMAT, "image '%s' is not a valid PNG: %s", name, spng_strerror(err));
}

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
    switch (ihdr->color_type) {
    case SPNG_COLOR_TYPE_GRAYSCALE: break;
    case SPNG_COLOR_TYPE_GRAYSCALE_ALPHA:
        return sm__fail(SM_ERR_FORMAT,
                        "image '%s' has an alpha channel: PNG with alpha not supported yet", name);
    default:
        return sm__fail(SM_ERR_FORMAT, "image '%s': colour PNG not supported yet", name);
    }
    if (ihdr->width != (uint32_t)width || ihdr->height != (uint32_t)height)
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

static sm_status decode(spng_ctx *ctx, const char *name, int height, int width, uint8_t *out)
{
    struct spng_ihdr ihdr;
    SM_TRY(check_header(ctx, name, height, width, &ihdr));
    size_t n = (size_t)height * (size_t)width; /* both <= 65535: no overflow */
    if (ihdr.bit_depth == 16) return decode_16(ctx, name, n, out);

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

sm_status sm__png_decode(const void *data, size_t size, const char *name, int height, int width,
                         uint8_t *out)
{
    if (height <= 0 || width <= 0 || (unsigned)height > PNG_SIDE_LIMIT ||
        (unsigned)width > PNG_SIDE_LIMIT)
        return sm__fail(SM_ERR_INVALID_ARG, "image size %dx%d out of range", width, height);
    /* libspng's allocations go through the library's allocator, so failure injection covers
     * them too. */
    struct spng_alloc alloc = {png_malloc, png_realloc, png_calloc, png_free};
    png_alloc_failed = 0;
    spng_ctx *ctx = spng_ctx_new2(&alloc, 0);
    if (!ctx) return sm__fail(SM_ERR_NOMEM, "out of memory decoding image '%s'", name);

    sm_status st;
    int err = spng_set_image_limits(ctx, PNG_SPNG_SIDE_MAX, PNG_SPNG_SIDE_MAX);
    if (!err) err = spng_set_chunk_limits(ctx, PNG_CHUNK_LIMIT, PNG_CACHE_LIMIT);
    if (!err) err = spng_set_png_buffer(ctx, data, size);
    if (err)
        st = spng_failure(err, name);
    else
        st = decode(ctx, name, height, width, out);
    spng_ctx_free(ctx);
    return st;
}
