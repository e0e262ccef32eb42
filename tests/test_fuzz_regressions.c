/* SPDX-License-Identifier: MIT */
/* Replays every fuzz seed (fuzz/corpus/<target>/) and every input a fuzzer once crashed on
 * (fuzz/regressions/<target>/) through the fuzz targets' own bodies (fuzz/<target>_entry.c),
 * in the normal build: each must return 0 (no broken invariant) and, under the sanitizer
 * build, do so without a memory error or a leak. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../fuzz/fuzz_entries.h"
#include "data/dataset.h"
#include "io/png.h"
#include "fixtures.h"

#define FUZZ_DIR SM_TEST_DATA_DIR "/../../fuzz"

typedef int (*entry_fn)(const uint8_t *data, size_t size);

/* Feeds each file of `dir` (missing: none) to `fn`; returns how many there were. */
static size_t replay_dir(const char *dir, entry_fn fn)
{
    DIR *d = opendir(dir);
    if (!d) return 0;
    size_t n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.') continue;
        char *path = fx_join(dir, de->d_name);
        assert_non_null(path);
        size_t size = 0;
        uint8_t *data = fx_read_bytes(path, &size);
        assert_non_null(data);
        if (fn(data, size) != 0) fail_msg("fuzz input %s breaks an invariant", path);
        free(data);
        free(path);
        n++;
    }
    closedir(d);
    return n;
}

static void replay(const char *target, entry_fn fn)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/corpus/%s", FUZZ_DIR, target);
    size_t seeds = replay_dir(dir, fn);
    snprintf(dir, sizeof dir, "%s/regressions/%s", FUZZ_DIR, target);
    size_t crashes = replay_dir(dir, fn);
    print_message("%s: %zu seeds, %zu regression inputs\n", target, seeds, crashes);
    assert_true(seeds > 0); /* the corpus is committed: an empty one means a wrong path */
}

static void test_png(void **state)
{
    (void)state;
    replay("png", sm_fuzz_png);
}

static void test_zip_dataset(void **state)
{
    (void)state;
    replay("zip_dataset", sm_fuzz_zip_dataset);
}

static void test_checkpoint(void **state)
{
    (void)state;
    replay("checkpoint", sm_fuzz_checkpoint);
}

static void test_arch_text(void **state)
{
    (void)state;
    replay("arch_text", sm_fuzz_arch_text);
}

static void test_oneshot_runs(void **state)
{
    (void)state;
    replay("oneshot_runs", sm_fuzz_oneshot_runs);
}

static void test_gallery(void **state)
{
    (void)state;
    replay("gallery", sm_fuzz_gallery);
}

/* The fuzz entry accepts any documented refusal; the damaged PNGs (a wrong CRC anywhere, a
 * file cut before IEND) must be refused as damaged, by name, although their pixels decode. */
static void test_damaged_pngs_refused(void **state)
{
    (void)state;
    static const char *const names[] = {"damaged-idat-crc.png", "damaged-text-after-idat-crc.png",
                                        "damaged-truncated-before-iend.png"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/regressions/png/%s", FUZZ_DIR, names[i]);
        size_t size = 0;
        uint8_t *data = fx_read_bytes(path, &size);
        assert_non_null(data);
        uint8_t out[8 * 8];
        sm_status st = sm__png_decode(data, size, names[i], 8, 8, out);
        if (st != SM_ERR_FORMAT)
            fail_msg("%s: got %s (%s)", names[i], sm_status_name(st), sm_last_error());
        assert_non_null(strstr(sm_last_error(), names[i]));
        free(data);
    }
}

/* The entries themselves on edge inputs no corpus holds. */
static void test_empty_inputs(void **state)
{
    (void)state;
    static const uint8_t nothing[1] = {0};
    assert_int_equal(sm_fuzz_png(nothing, 0), 0);
    assert_int_equal(sm_fuzz_zip_dataset(nothing, 0), 0);
    assert_int_equal(sm_fuzz_checkpoint(nothing, 0), 0);
    assert_int_equal(sm_fuzz_arch_text(nothing, 0), 0);
    assert_int_equal(sm_fuzz_arch_text(nothing, 1), 0);
    assert_int_equal(sm_fuzz_oneshot_runs(nothing, 0), 0);
    assert_int_equal(sm_fuzz_gallery(nothing, 0), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_png),
        cmocka_unit_test(test_zip_dataset),
        cmocka_unit_test(test_checkpoint),
        cmocka_unit_test(test_arch_text),
        cmocka_unit_test(test_oneshot_runs),
        cmocka_unit_test(test_gallery),
        cmocka_unit_test(test_damaged_pngs_refused),
        cmocka_unit_test(test_empty_inputs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
