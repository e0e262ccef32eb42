/* SPDX-License-Identifier: MIT */
/* Reading entries of a zip archive with libzip, read-only, with size and checksum checks. */
#include "io/zip.h"

#include <inttypes.h>
#include <string.h>
#include <unistd.h>
#include <zip.h>

#include "common/alloc.h"
#include "common/error.h"
#include "common/limits.h"

struct sm__zip {
    zip_t *archive;
    size_t n_entries;
    char *path; /* for messages */
};

/* `in_memory`: the zip is a buffer, so no failure is the file system's. */
static sm_status open_failure(int code, const char *path, int in_memory)
{
    zip_error_t ze;
    zip_error_init_with_code(&ze, code);
    sm_status st;
    switch (code) {
    case ZIP_ER_MEMORY: st = SM_ERR_NOMEM; break;
    case ZIP_ER_NOENT:
        /* libzip 1.7 also says "No such file" for a central directory whose zip64 sizes are
         * missing: a file that is there is damaged */
        st = in_memory || access(path, F_OK) == 0 ? SM_ERR_FORMAT : SM_ERR_IO;
        break;
    case ZIP_ER_OPEN:
    case ZIP_ER_READ:
    case ZIP_ER_SEEK: st = in_memory ? SM_ERR_FORMAT : SM_ERR_IO; break;
    default: st = SM_ERR_FORMAT; break; /* not a zip, inconsistent, compressed data invalid */
    }
    if (st == SM_ERR_FORMAT)
        st = sm__fail(st, "zip '%s' is damaged or not a zip (libzip: %s)", path,
                      zip_error_strerror(&ze));
    else st = sm__fail(st, "cannot open zip '%s': %s", path, zip_error_strerror(&ze));
    zip_error_fini(&ze);
    return st;
}

/* Takes a zip_t, or an error code when opening failed (then `archive` is NULL). */
static sm_status wrap(zip_t *archive, int code, const char *path, int in_memory, sm__zip **out)
{
    if (!archive) return open_failure(code, path, in_memory);
    sm__zip *z = sm__calloc(1, sizeof *z);
    if (z) z->path = sm__strdup(path);
    if (!z || !z->path) {
        sm__free(z);
        zip_discard(archive);
        return sm__fail(SM_ERR_NOMEM, "out of memory opening zip '%s'", path);
    }
    z->archive = archive;
    zip_int64_t n = zip_get_num_entries(archive, 0);
    z->n_entries = n > 0 ? (size_t)n : 0;
    *out = z;
    return SM_OK;
}

sm_status sm__zip_open(const char *path, sm__zip **out)
{
    int code = 0;
    zip_t *archive = zip_open(path, ZIP_RDONLY, &code);
    return wrap(archive, code, path, 0, out);
}

sm_status sm__zip_open_buffer(const void *data, size_t size, const char *name, sm__zip **out)
{
    zip_error_t ze;
    zip_error_init(&ze);
    zip_source_t *src = zip_source_buffer_create(size ? data : "", (zip_uint64_t)size, 0, &ze);
    zip_t *archive = src ? zip_open_from_source(src, ZIP_RDONLY, &ze) : NULL;
    int code = zip_error_code_zip(&ze);
    zip_error_fini(&ze);
    if (src && !archive) zip_source_free(src); /* the archive owns it once opened */
    return wrap(archive, archive ? 0 : code ? code : ZIP_ER_MEMORY, name, 1, out);
}

void sm__zip_close(sm__zip *zip)
{
    if (!zip) return;
    zip_discard(zip->archive); /* read-only: nothing to write back */
    sm__free(zip->path);
    sm__free(zip);
}

size_t sm__zip_num_entries(const sm__zip *zip) { return zip ? zip->n_entries : 0; }

const char *sm__zip_entry_name(sm__zip *zip, size_t index)
{
    if (!zip || index >= zip->n_entries) return NULL;
    return zip_get_name(zip->archive, (zip_uint64_t)index, 0);
}

/* Reads exactly `size` bytes and checks that the entry ends there; libzip verifies the CRC when
 * the end of the data is reached. */
static sm_status read_all(sm__zip *zip, zip_file_t *f, const char *name, uint8_t *buf, size_t size)
{
    size_t got = 0;
    while (got < size) {
        zip_int64_t r = zip_fread(f, buf + got, (zip_uint64_t)(size - got));
        if (r < 0)
            return sm__fail(SM_ERR_FORMAT, "zip '%s': entry '%s' is damaged: %s", zip->path, name,
                            zip_file_strerror(f));
        if (r == 0)
            return sm__fail(SM_ERR_FORMAT, "zip '%s': entry '%s' is shorter than its header says",
                            zip->path, name);
        got += (size_t)r;
    }
    uint8_t extra;
    zip_int64_t r = zip_fread(f, &extra, 1);
    if (r < 0)
        return sm__fail(SM_ERR_FORMAT, "zip '%s': entry '%s' is damaged: %s", zip->path, name,
                        zip_file_strerror(f));
    if (r > 0)
        return sm__fail(SM_ERR_FORMAT, "zip '%s': entry '%s' is longer than its header says",
                        zip->path, name);
    return SM_OK;
}

sm_status sm__zip_read(sm__zip *zip, size_t index, uint8_t **data, size_t *size)
{
    const char *name = sm__zip_entry_name(zip, index);
    if (!name) return sm__fail(SM_ERR_INTERNAL, "zip entry %zu does not exist", index);
    zip_stat_t zs;
    if (zip_stat_index(zip->archive, (zip_uint64_t)index, 0, &zs) != 0 ||
        !(zs.valid & ZIP_STAT_SIZE))
        return sm__fail(SM_ERR_FORMAT, "zip '%s': entry '%s' has no size", zip->path, name);
    /* Checked before allocating; read_all then reads no more than this (a bomb whose header
     * lies about its size is "longer than its header says" one byte later). */
    uint64_t limit = sm__limit(SM_LIMIT_ENTRY_BYTES);
    if ((uint64_t)zs.size > limit || (uint64_t)zs.size > SIZE_MAX)
        return sm__fail(SM_ERR_LIMIT,
                        "zip '%s': entry '%s' claims %" PRIu64 " bytes, more than "
                        "SM_LIMIT_ENTRY_BYTES (%" PRIu64 "); raise it with "
                        "sm_set_limit(SM_LIMIT_ENTRY_BYTES)",
                        zip->path, name, (uint64_t)zs.size, limit);
    size_t n = (size_t)zs.size;

    uint8_t *buf = sm__malloc(n ? n : 1);
    if (!buf) return sm__fail(SM_ERR_NOMEM, "out of memory reading '%s:%s'", zip->path, name);
    zip_file_t *f = zip_fopen_index(zip->archive, (zip_uint64_t)index, 0);
    if (!f) {
        sm__free(buf);
        return sm__fail(SM_ERR_FORMAT, "zip '%s': cannot open entry '%s': %s", zip->path, name,
                        zip_strerror(zip->archive));
    }
    sm_status st = read_all(zip, f, name, buf, n);
    if (zip_fclose(f) != 0 && st == SM_OK)
        st = sm__fail(SM_ERR_FORMAT, "zip '%s': entry '%s' is damaged", zip->path, name);
    if (st != SM_OK) {
        sm__free(buf);
        return st;
    }
    *data = buf;
    *size = n;
    return SM_OK;
}
