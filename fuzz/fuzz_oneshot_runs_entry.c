/* SPDX-License-Identifier: MIT */
#include <stdlib.h>

#include "evaluation/eval.h"
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

/* Reads every image and answer a caller may read, so that the sanitizers see damaged runs. */
static int walk_runs(const sm_oneshot_runs *runs)
{
    float px[SIDE * SIDE];
    size_t n = sm_oneshot_runs_count(runs), trials = 0;
    if (n == 0) return 1;
    for (size_t r = 0; r < n; r++) {
        const char *name = NULL;
        size_t nc = 0, nq = 0, answer = 0;
        if (sm_oneshot_run_info(runs, r, &name, &nc, &nq) != SM_OK || !name || nc < 2 || nq < 1)
            return 1;
        for (size_t i = 0; i < nc; i++)
            if (sm_oneshot_run_image(runs, r, 0, i, px, NULL) != SM_OK) return 1;
        for (size_t i = 0; i < nq; i++) {
            if (sm_oneshot_run_image(runs, r, 1, i, px, &answer) != SM_OK) return 1;
            if (answer >= nc) return 1;
        }
        trials += nq;
    }
    return trials != sm_oneshot_runs_num_trials(runs);
}

/* Inputs starting with 'L': the rest is a class_labels.txt for a fixed run (a zip's CRC would
 * reject most mutations of a labels file before the parser sees them). */
static int labels_only(const uint8_t *data, size_t size)
{
    size_t n = 0;
    sm_status st = sm__oneshot_labels_parse(data, size, &n);
    if (st == SM_OK) return n < 1 || n > 3;
    return st != SM_ERR_FORMAT && st != SM_ERR_NOMEM ? 1 : sm_last_error()[0] == '\0';
}

int sm_fuzz_oneshot_runs(const uint8_t *data, size_t size)
{
    if (size > 0 && data[0] == 'L') return labels_only(data + 1, size - 1);
    static const sm_limit keys[] = {SM_LIMIT_ENTRY_BYTES, SM_LIMIT_DATASET_BYTES,
                                    SM_LIMIT_IMAGE_SIDE};
    static const uint64_t small[] = {(uint64_t)1 << 20, (uint64_t)4 << 20, 256};
    uint64_t saved[3];
    for (int i = 0; i < 3; i++) {
        saved[i] = sm_get_limit(keys[i]);
        sm_set_limit(keys[i], small[i]);
    }
    sm_oneshot_runs *runs = NULL;
    sm_status st = sm__oneshot_runs_open_zip_buffer(data, size, "fuzz.zip", SIDE, SIDE, &runs);
    int bad = st == SM_OK ? walk_runs(runs) : (!documented(st) || runs != NULL);
    sm_oneshot_runs_destroy(runs);
    for (int i = 0; i < 3; i++) sm_set_limit(keys[i], saved[i]);
    return bad;
}
