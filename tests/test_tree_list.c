/* SPDX-License-Identifier: MIT */
/* The folder-or-zip lister (lib/io/tree_list.h) on trees generated here: what it skips (hidden,
 * __MACOSX, folder entries, too deep), how it treats links (followed; dangling ones an error
 * only when wanted; loops bounded), its order, its filter, and the same list from a folder, a
 * zip with and without folder entries, and a zip in memory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "common/alloc.h"
#include "common/error.h"
#include "fixtures.h"
#include "io/tree_list.h"

/* What every source of the reference tree must list, in this order. */
static const char *const LISTED[] = {
    "A/B/c.txt", "A/B/d.png", "A/b.png", "Z/1/2/3/4/5/6/eight.png", "a.png",
};
#define N_LISTED (sizeof LISTED / sizeof *LISTED)

/* Files the rules skip, wherever the tree comes from. */
static const char *const SKIPPED[] = {
    ".hidden/x.png",      "A/.git/y.png",     "A/.z.png",
    "__MACOSX/A/._b.png", "A/__MACOSX/q.png", "Z/1/2/3/4/5/6/7/nine.png",
};

static void put(const char *root, const char *rel, const char *text)
{
    char *p = fx_join(root, rel);
    assert_int_equal(fx_write_bytes(p, text, strlen(text)), 0);
    free(p);
}

/* The reference tree in a new folder under `tmp`; written in reverse, so that the order on
 * disk is not the order listed. */
static char *write_tree(const char *tmp)
{
    char *root = fx_join(tmp, "tree");
    for (size_t i = N_LISTED; i-- > 0;) put(root, LISTED[i], LISTED[i]);
    for (size_t i = 0; i < sizeof SKIPPED / sizeof *SKIPPED; i++) put(root, SKIPPED[i], "junk");
    return root;
}

static void expect_list(const sm__tree *t, const char *const *want, size_t n)
{
    for (size_t i = 0; i < t->n && i < n; i++)
        if (strcmp(t->files[i].rel, want[i]) != 0)
            fail_msg("entry %zu of '%s' is '%s', expected '%s'", i, t->path, t->files[i].rel,
                     want[i]);
    if (t->n != n) fail_msg("'%s' lists %zu files, expected %zu", t->path, t->n, n);
}

/* Each listed file reads back as its own path (how write_tree filled it). */
static void expect_contents(const sm__tree *t)
{
    for (size_t i = 0; i < t->n; i++) {
        uint8_t *data = NULL;
        size_t size = 0;
        assert_int_equal(sm__tree_read(t, &t->files[i], &data, &size), SM_OK);
        assert_int_equal(size, strlen(t->files[i].rel));
        assert_memory_equal(data, t->files[i].rel, size);
        sm__free(data);
    }
}

static void open_ok(const char *path, sm__tree_filter filter, void *ctx, sm__tree *t)
{
    sm_status st = sm__tree_open(path, "test tree", filter, ctx, t);
    if (st != SM_OK) fail_msg("'%s': %s: %s", path, sm_status_name(st), sm_last_error());
}

static void test_folder(void **state)
{
    (void)state;
    char *tmp = fx_tempdir();
    char *root = write_tree(tmp);
    sm__tree t;
    open_ok(root, NULL, NULL, &t);
    expect_list(&t, LISTED, N_LISTED);
    expect_contents(&t);
    assert_null(t.zip);
    char *src = sm__tree_source(&t, sm__tree_find(&t, "A/b.png"));
    char *want = fx_join(root, "A/b.png");
    assert_string_equal(src, want);
    sm__free(src);
    free(want);
    assert_null(sm__tree_find(&t, "A/.z.png"));
    assert_null(sm__tree_find(&t, "A"));
    sm__tree_close(&t);

    /* a trailing '/' on the folder changes nothing, sources included */
    char *slashed = malloc(strlen(root) + 2);
    sprintf(slashed, "%s/", root);
    open_ok(slashed, NULL, NULL, &t);
    expect_list(&t, LISTED, N_LISTED);
    src = sm__tree_source(&t, &t.files[0]);
    want = fx_join(root, LISTED[0]);
    assert_string_equal(src, want);
    sm__free(src);
    free(want);
    sm__tree_close(&t);
    free(slashed);
    free(root);
    fx_rmtree(tmp);
    free(tmp);
}

/* The same files from zips: plain, with folder entries, under a prefix, in memory. */
static void test_zip(void **state)
{
    (void)state;
    char *tmp = fx_tempdir();
    char *root = write_tree(tmp);
    char *zip = fx_join(tmp, "tree.zip");
    for (int dirs = 0; dirs < 2; dirs++) {
        assert_int_equal(fx_zip_tree(root, zip, "", dirs, dirs), 0);
        sm__tree t;
        open_ok(zip, NULL, NULL, &t);
        expect_list(&t, LISTED, N_LISTED);
        expect_contents(&t);
        assert_null(t.folder);
        char *src = sm__tree_source(&t, sm__tree_find(&t, "A/B/d.png"));
        char *want = malloc(strlen(zip) + 20);
        sprintf(want, "%s:A/B/d.png", zip);
        assert_string_equal(src, want);
        sm__free(src);
        free(want);
        sm__tree_close(&t);

        size_t n = 0;
        uint8_t *bytes = fx_read_bytes(zip, &n);
        assert_non_null(bytes);
        assert_int_equal(sm__tree_open_zip_buffer(bytes, n, "mem.zip", "test tree", NULL, NULL, &t),
                         SM_OK);
        expect_list(&t, LISTED, N_LISTED);
        expect_contents(&t);
        sm__tree_close(&t);
        free(bytes);
        fx_rmtree(zip);
    }
    /* under a prefix: one more component on each path, the deepest file now too deep */
    assert_int_equal(fx_zip_tree(root, zip, "top/", 1, 0), 0);
    sm__tree t;
    open_ok(zip, NULL, NULL, &t);
    const char *prefixed[] = {"top/A/B/c.txt", "top/A/B/d.png", "top/A/b.png", "top/a.png"};
    expect_list(&t, prefixed, 4);
    sm__tree_close(&t);
    free(zip);
    free(root);
    fx_rmtree(tmp);
    free(tmp);
}

/* Names only a zip can hold: empty components, a leading '/', a repeated name. */
static void test_zip_names(void **state)
{
    (void)state;
    char *tmp = fx_tempdir();
    char *zip = fx_join(tmp, "names.zip");
    assert_int_equal(fx_zip_add(zip, "x//y.png", "1", 1), 0);
    assert_int_equal(fx_zip_add(zip, "/abs/z.png", "2", 1), 0);
    assert_int_equal(fx_zip_add(zip, "ok/./no.png", "3", 1), 0);
    assert_int_equal(fx_zip_add(zip, "ok/../no.png", "4", 1), 0);
    assert_int_equal(fx_zip_add(zip, ".DS_Store", "5", 1), 0);
    assert_int_equal(fx_zip_add(zip, "1/2/3/4/5/6/7/8.png", "6", 1), 0);
    assert_int_equal(fx_zip_add(zip, "1/2/3/4/5/6/7/8/9.png", "7", 1), 0);
    sm__tree t;
    open_ok(zip, NULL, NULL, &t);
    const char *want[] = {"1/2/3/4/5/6/7/8.png", "abs/z.png", "x/y.png"};
    expect_list(&t, want, 3);
    uint8_t *data = NULL;
    size_t size = 0;
    assert_int_equal(sm__tree_read(&t, sm__tree_find(&t, "x/y.png"), &data, &size), SM_OK);
    assert_int_equal(size, 1);
    assert_int_equal(data[0], '1');
    sm__free(data);
    sm__tree_close(&t);
    free(zip);
    fx_rmtree(tmp);
    free(tmp);
}

static sm_status keep_png(void *ctx, const char *rel, int *keep)
{
    size_t *calls = ctx, n = strlen(rel);
    if (calls) (*calls)++;
    *keep = n > 4 && strcasecmp(rel + n - 4, ".png") == 0;
    return SM_OK;
}

/* Links are followed; a dangling one is an error only when the filter wants its path; a loop
 * ends at the depth bound. */
static void test_links(void **state)
{
    (void)state;
    char *tmp = fx_tempdir();
    char *root = write_tree(tmp);
    char *p = fx_join(root, "A/linked.png");
    assert_int_equal(symlink("../a.png", p), 0);
    free(p);
    p = fx_join(root, "linked-dir");
    assert_int_equal(symlink("A/B", p), 0);
    free(p);
    p = fx_join(root, "A/gone.txt");
    assert_int_equal(symlink("nowhere", p), 0);
    free(p);
    sm__tree t;
    open_ok(root, keep_png, NULL, &t); /* the dangling .txt is not wanted: skipped */
    const char *want[] = {"A/B/d.png", "A/b.png",         "A/linked.png", "Z/1/2/3/4/5/6/eight.png",
                          "a.png",     "linked-dir/d.png"};
    expect_list(&t, want, sizeof want / sizeof *want);
    sm__tree_close(&t);
    /* wanted by no filter (NULL lists everything): an error naming it */
    assert_int_equal(sm__tree_open(root, "test tree", NULL, NULL, &t), SM_ERR_IO);
    assert_non_null(strstr(sm_last_error(), "A/gone.txt"));
    sm__tree_close(&t);
    p = fx_join(root, "A/gone.png");
    assert_int_equal(symlink("nowhere.png", p), 0);
    assert_int_equal(sm__tree_open(root, "test tree", keep_png, NULL, &t), SM_ERR_IO);
    assert_non_null(strstr(sm_last_error(), p));
    sm__tree_close(&t);
    free(p);

    /* a loop: x.png, l/x.png, l/l/x.png, ... up to SM__TREE_MAX_DEPTH components */
    char *loop = fx_join(tmp, "loop");
    put(loop, "x.png", "x.png");
    p = fx_join(loop, "l");
    assert_int_equal(symlink(".", p), 0);
    free(p);
    open_ok(loop, NULL, NULL, &t);
    assert_int_equal(t.n, SM__TREE_MAX_DEPTH);
    assert_string_equal(t.files[0].rel, "l/l/l/l/l/l/l/x.png");
    assert_string_equal(t.files[SM__TREE_MAX_DEPTH - 1].rel, "x.png");
    sm__tree_close(&t);
    free(loop);
    free(root);
    fx_rmtree(tmp);
    free(tmp);
}

/* The filter decides, is asked once per file, and can stop the listing with its own error. */
static sm_status stop_at_third(void *ctx, const char *rel, int *keep)
{
    size_t *calls = ctx;
    if (++*calls == 3) return sm__fail(SM_ERR_LIMIT, "the filter stops at '%s'", rel);
    *keep = 1;
    return SM_OK;
}

static void test_filter(void **state)
{
    (void)state;
    char *tmp = fx_tempdir();
    char *root = write_tree(tmp);
    char *zip = fx_join(tmp, "tree.zip");
    assert_int_equal(fx_zip_tree(root, zip, "", 1, 0), 0);
    for (int as_zip = 0; as_zip < 2; as_zip++) {
        const char *path = as_zip ? zip : root;
        size_t calls = 0;
        sm__tree t;
        open_ok(path, keep_png, &calls, &t);
        assert_int_equal(calls, N_LISTED); /* skipped files never reach the filter */
        const char *png[] = {"A/B/d.png", "A/b.png", "Z/1/2/3/4/5/6/eight.png", "a.png"};
        expect_list(&t, png, 4);
        sm__tree_close(&t);
        long live = sm__alloc_live();
        calls = 0;
        assert_int_equal(sm__tree_open(path, "test tree", stop_at_third, &calls, &t), SM_ERR_LIMIT);
        assert_non_null(strstr(sm_last_error(), "the filter stops"));
        sm__tree_close(&t);
        assert_int_equal(sm__alloc_live(), live);
    }
    free(zip);
    free(root);
    fx_rmtree(tmp);
    free(tmp);
}

static void test_bad_paths(void **state)
{
    (void)state;
    char *tmp = fx_tempdir();
    sm__tree t;
    char *missing = fx_join(tmp, "none");
    assert_int_equal(sm__tree_open(missing, "test tree", NULL, NULL, &t), SM_ERR_IO);
    assert_non_null(strstr(sm_last_error(), "cannot open test tree"));
    assert_non_null(strstr(sm_last_error(), missing));
    sm__tree_close(&t);
    char *notzip = fx_join(tmp, "not.zip");
    assert_int_equal(fx_write_bytes(notzip, "hello", 5), 0);
    assert_int_equal(sm__tree_open(notzip, "test tree", NULL, NULL, &t), SM_ERR_FORMAT);
    assert_non_null(strstr(sm_last_error(), notzip));
    sm__tree_close(&t);
    /* an empty folder and an empty zip list nothing, without error */
    char *empty = fx_join(tmp, "empty");
    assert_int_equal(fx_mkdirs(empty), 0);
    open_ok(empty, NULL, NULL, &t);
    assert_int_equal(t.n, 0);
    assert_null(sm__tree_find(&t, "x"));
    sm__tree_close(&t);
    free(missing), free(notzip), free(empty);
    fx_rmtree(tmp);
    free(tmp);
}

/* Every allocation failing in turn: SM_ERR_NOMEM with a message, never a leak. */
static void test_alloc_failures(void **state)
{
    (void)state;
    char *tmp = fx_tempdir();
    char *root = write_tree(tmp);
    char *zip = fx_join(tmp, "tree.zip");
    assert_int_equal(fx_zip_tree(root, zip, "", 1, 0), 0);
    for (int as_zip = 0; as_zip < 2; as_zip++) {
        const char *path = as_zip ? zip : root;
        long live = sm__alloc_live(), base = sm__alloc_count();
        sm__tree t;
        open_ok(path, NULL, NULL, &t);
        sm__tree_close(&t);
        long total = sm__alloc_count() - base;
        for (long n = 0; n < total; n++) {
            sm__alloc_fail_after(n);
            sm_status st = sm__tree_open(path, "test tree", NULL, NULL, &t);
            sm__alloc_fail_after(-1);
            if (st != SM_OK && st != SM_ERR_NOMEM)
                fail_msg("%s, allocation %ld failing: %s (%s)", path, n, sm_status_name(st),
                         sm_last_error());
            if (st != SM_OK) assert_true(sm_last_error()[0] != '\0');
            sm__tree_close(&t);
            if (sm__alloc_live() != live) fail_msg("%s, allocation %ld failing: a leak", path, n);
        }
    }
    free(zip);
    free(root);
    fx_rmtree(tmp);
    free(tmp);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_folder),         cmocka_unit_test(test_zip),
        cmocka_unit_test(test_zip_names),      cmocka_unit_test(test_links),
        cmocka_unit_test(test_filter),         cmocka_unit_test(test_bad_paths),
        cmocka_unit_test(test_alloc_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
