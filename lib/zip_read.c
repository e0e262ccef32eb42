/* Reading entries of a zip archive with libzip, read-only, with size and checksum checks. */
#include "dataset.h"

#include <string.h>
#include <zip.h>

#include "alloc.h"
#include "error.h"

struct sm__zip {
    zip_t *archive;
    size_t n_entries;
    char *path; /* for messages */
};

static sm_status open_failure(int code, const char *path)
{
    zip_error_t ze;
    zip_error_init_with_code(&ze, code);
    sm_status st;
    switch (code) {
    case ZIP_ER_MEMORY: st = SM_ERR_NOMEM; break;
    case ZIP_ER_NOENT:
    case ZIP_ER_OPEN:
    case ZIP_ER_READ:
    case ZIP_ER_SEEK: st = SM_ERR_IO; break;
    default: st = SM_ERR_FORMAT; break; /* not a zip, inconsistent, compressed data invalid */
    }
    st = sm__fail(st, "cannot open zip '%s': %s", path, zip_error_strerror(&ze));
    zip_error_fini(&ze);
    return st;
}

sm_status sm__zip_open(const char *path, sm__zip **out)
{
    sm__zip *z = sm__calloc(1, sizeof *z);
    if (!z) return sm__fail(SM_ERR_NOMEM, "out of memory opening zip '%s'", path);
    z->path = sm__strdup(path);
    if (!z->path) {
        sm__free(z);
        return sm__fail(SM_ERR_NOMEM, "out of memory opening zip '%s'", path);
    }
    int code = 0;
    z->archive = zip_open(path, ZIP_RDONLY, &code);
    if (!z->archive) {
        sm__free(z->path);
        sm__free(z);
        return open_failure(code, path);
    }
    zip_int64_t n = zip_get_num_entries(z->archive, 0);
    z->n_entries = n > 0 ? (size_t)n : 0;
    *out = z;
    return SM_OK;
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
    if (zs.size > SM__MAX_FILE_BYTES)
        return sm__fail(SM_ERR_LIMIT,
                        "zip '%s': entry '%s' is %llu bytes, more than the %zu allowed", zip->path,
                        name, (unsigned long long)zs.size, SM__MAX_FILE_BYTES);
    size_t n = (size_t)zs.size;

    uint8_t *buf = sm__malloc(n);
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
