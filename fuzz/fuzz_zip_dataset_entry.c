/* SPDX-License-Identifier: MIT */
#include <stdlib.h>

#include "data/dataset.h"
#include "fuzz_entries.h"

enum { SIDE = 8 };

static int documented(sm_status st)
{
    switch (st) {
    case SM_ERR_IO:
    case SM_ERR_FORMAT:
    case SM_ERR_SHAPE:
    case SM_ERR_DATASET:
    case SM_ERR_LIMIT:
    case SM_ERR_NOMEM: return sm_last_error()[0] != '\0';
    default: return 0;
    }
}

/* Reads everything a caller may read, so that the sanitizers see a damaged dataset. */
static int walk_dataset(const sm_dataset *ds)
{
    float px[SIDE * SIDE];
    size_t n = sm_dataset_num_images(ds), classes = sm_dataset_num_classes(ds);
    if (n == 0 || classes < 2) return 1;
    for (size_t i = 0; i < n; i++) {
        if (sm_dataset_get_image(ds, i, px) != SM_OK) return 1;
        if (sm_dataset_image_class(ds, i) >= classes) return 1;
        if (!sm_dataset_image_source(ds, i)) return 1;
    }
    for (size_t c = 0; c < classes; c++)
        if (!sm_dataset_class_name(ds, c)) return 1;
    for (size_t a = 0; a < sm_dataset_num_alphabets(ds); a++)
        if (!sm_dataset_alphabet_name(ds, a)) return 1;
    return 0;
}

int sm_fuzz_zip_dataset(const uint8_t *data, size_t size)
{
    static const sm_limit keys[] = {SM_LIMIT_ENTRY_BYTES, SM_LIMIT_DATASET_BYTES,
                                    SM_LIMIT_IMAGE_SIDE};
    static const uint64_t small[] = {(uint64_t)1 << 20, (uint64_t)4 << 20, 256};
    uint64_t saved[3];
    for (int i = 0; i < 3; i++) {
        saved[i] = sm_get_limit(keys[i]);
        sm_set_limit(keys[i], small[i]);
    }
    sm_dataset *ds = NULL;
    sm_status st = sm__dataset_open_zip_buffer(data, size, "fuzz.zip", SIDE, SIDE, NULL, 0, &ds);
    int bad = st == SM_OK ? walk_dataset(ds) : !documented(st);
    sm_dataset_destroy(ds);
    for (int i = 0; i < 3; i++) sm_set_limit(keys[i], saved[i]);
    return bad;
}
