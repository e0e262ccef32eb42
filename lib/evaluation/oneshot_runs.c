/* SPDX-License-Identifier: MIT */
/* Reading the official one-shot runs (Lake et al.): runNN/training/<name>.png,
 * runNN/test/<name>.png, runNN/class_labels.txt, from a folder or a zip, decoded once. Their
 * evaluation is in oneshot.c.
 *
 * Both sources are first reduced to one sorted list of relative file paths (tree_list.c), so
 * that finding runs, parsing the label files and looking up the files they name is the same
 * code for a folder and a zip. The parser is strict: anything it does not understand is
 * SM_ERR_FORMAT with the file and line, never a guess. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/alloc.h"
#include "common/error.h"
#include "common/limits.h"
#include "data/dataset.h"
#include "data/image.h"
#include "evaluation/eval.h"
#include "io/png.h"
#include "io/tree_list.h"

#define LABELS   "class_labels.txt"
#define MAX_LINE 4096

/* ------------------------------------------------------------------ runs and their labels */

/* What one run's parse produced before its images are decoded. */
typedef struct run_plan {
    char *name;
    char *dir;                  /* prefix of its files: "" or "run01/" or "all_runs/run01/" */
    const sm__tree_file **cand; /* its training PNGs, sorted */
    size_t n_cand;
    const sm__tree_file **query;
    size_t *answer;
    size_t n_query, cap_query;
} run_plan;

static void plan_free(run_plan *p)
{
    sm__free(p->name), sm__free(p->dir), sm__free(p->cand), sm__free(p->query);
    sm__free(p->answer);
}

static int has_png_suffix(const char *s, size_t n)
{
    return n > 4 && strncasecmp(s + n - 4, ".png", 4) == 0;
}

/* The files a run reader looks at: PNGs and labels files. (A dangling link so named is an
 * error: tree_list.h.) */
static sm_status keep_run_file(void *ctx, const char *rel, int *keep)
{
    (void)ctx;
    size_t n = strlen(rel);
    const char *base = strrchr(rel, '/');
    base = base ? base + 1 : rel;
    *keep = has_png_suffix(rel, n) || strcmp(base, LABELS) == 0;
    return SM_OK;
}

/* `tok` (len n) is "<run>/<sub>/<file>.png" with one plain file name: returns the file part. */
static const char *token_file(const char *tok, size_t n, const char *run_name, const char *sub,
                              size_t *file_len)
{
    size_t lr = strlen(run_name), ls = strlen(sub);
    if (n <= lr + 1 + ls + 1 || memcmp(tok, run_name, lr) != 0 || tok[lr] != '/' ||
        memcmp(tok + lr + 1, sub, ls) != 0 || tok[lr + 1 + ls] != '/')
        return NULL;
    const char *f = tok + lr + 1 + ls + 1;
    size_t fl = n - (size_t)(f - tok);
    if (fl == 0 || memchr(f, '/', fl) || memchr(f, '\0', fl) || f[0] == '.' ||
        !has_png_suffix(f, fl))
        return NULL;
    *file_len = fl;
    return f;
}

/* The listed file `dir` + `sub` + "/" + file, or NULL. */
static const sm__tree_file *lookup(const sm__tree *s, const char *dir, const char *sub,
                                   const char *file, size_t file_len, char *buf, size_t cap)
{
    int n = snprintf(buf, cap, "%s%s/%.*s", dir, sub, (int)file_len, file);
    if (n < 0 || (size_t)n >= cap) return NULL;
    return sm__tree_find(s, buf);
}

static sm_status parse_line(const sm__tree *s, run_plan *p, const char *where, size_t line_no,
                            const char *line, size_t len)
{
    char buf[MAX_LINE + 600];
    const char *sp = memchr(line, ' ', len);
    size_t fa = 0, fb = 0;
    const char *a = NULL, *b = NULL;
    if (sp) {
        a = token_file(line, (size_t)(sp - line), p->name, "test", &fa);
        b = token_file(sp + 1, len - (size_t)(sp - line) - 1, p->name, "training", &fb);
    }
    SM_RETURN_IF(!a || !b, SM_ERR_FORMAT,
                 "%s, line %zu: expected '%s/test/<item>.png %s/training/<class>.png' (one "
                 "space), got '%.*s'",
                 where, line_no, p->name, p->name, (int)(len < 200 ? len : 200), line);
    const sm__tree_file *q = lookup(s, p->dir, "test", a, fa, buf, sizeof buf);
    SM_RETURN_IF(!q, SM_ERR_FORMAT, "%s, line %zu: the query '%.*s' does not exist", where, line_no,
                 (int)(sp - line), line);
    const sm__tree_file *c = lookup(s, p->dir, "training", b, fb, buf, sizeof buf);
    size_t ci = p->n_cand;
    for (size_t i = 0; c && i < p->n_cand; i++)
        if (p->cand[i] == c) ci = i;
    SM_RETURN_IF(ci == p->n_cand, SM_ERR_FORMAT,
                 "%s, line %zu: the candidate '%.*s' does not exist", where, line_no,
                 (int)(len - (size_t)(sp - line) - 1), sp + 1);
    for (size_t i = 0; i < p->n_query; i++)
        SM_RETURN_IF(p->query[i] == q, SM_ERR_FORMAT,
                     "%s, line %zu: the query '%.*s' is listed twice (first on line %zu)", where,
                     line_no, (int)(sp - line), line, i + 1);
    if (p->n_query == p->cap_query) {
        size_t cap = p->cap_query ? 2 * p->cap_query : 32;
        const sm__tree_file **nq = sm__realloc(p->query, cap * sizeof *nq);
        if (nq) p->query = nq;
        size_t *na = nq ? sm__realloc(p->answer, cap * sizeof *na) : NULL;
        if (na) p->answer = na;
        if (!nq || !na) return sm__fail(SM_ERR_NOMEM, "out of memory reading %s", where);
        p->cap_query = cap;
    }
    p->query[p->n_query] = q;
    p->answer[p->n_query++] = ci;
    return SM_OK;
}

/* Strict lines: LF or CRLF ends, the last end optional, no empty line, no NUL. */
static sm_status parse_labels(const sm__tree *s, run_plan *p, const char *where,
                              const uint8_t *data, size_t size)
{
    size_t line_no = 0;
    for (size_t pos = 0; pos < size;) {
        line_no++;
        const uint8_t *nl = memchr(data + pos, '\n', size - pos);
        size_t end = nl ? (size_t)(nl - data) : size, len = end - pos;
        if (len > 0 && data[end - 1] == '\r') len--;
        const char *line = (const char *)data + pos;
        SM_RETURN_IF(len == 0, SM_ERR_FORMAT, "%s, line %zu: empty line", where, line_no);
        SM_RETURN_IF(len > MAX_LINE, SM_ERR_FORMAT, "%s, line %zu: longer than %d bytes", where,
                     line_no, MAX_LINE);
        SM_RETURN_IF(memchr(line, '\0', len) || memchr(line, '\r', len), SM_ERR_FORMAT,
                     "%s, line %zu: holds a NUL or CR byte", where, line_no);
        SM_TRY(parse_line(s, p, where, line_no, line, len));
        pos = end + 1;
    }
    SM_RETURN_IF(p->n_query == 0, SM_ERR_FORMAT, "%s: lists no query", where);
    return SM_OK;
}

/* Fills a plan for the run whose labels file is `labels` (a path ending in class_labels.txt).
 * `text` (may be NULL: read the file) stands in for the file's bytes, for the fuzzer. */
static sm_status plan_run(const sm__tree *s, const sm__tree_file *labels, run_plan *p,
                          const uint8_t *text, size_t text_size)
{
    const char *rel = labels->rel;
    size_t dir_len = strlen(rel) - strlen(LABELS);
    memset(p, 0, sizeof *p);
    p->dir = sm__malloc(dir_len + 1);
    if (p->dir) {
        memcpy(p->dir, rel, dir_len);
        p->dir[dir_len] = '\0';
    }
    /* the run's name: its folder's; for a single-run folder, the folder given */
    const char *base = s->path;
    size_t blen = strlen(base);
    if (dir_len > 0) {
        base = rel;
        blen = dir_len - 1;
    }
    while (blen > 1 && base[blen - 1] == '/') blen--;
    const char *slash = NULL;
    for (size_t i = 0; i < blen; i++)
        if (base[i] == '/') slash = base + i;
    if (slash) {
        blen -= (size_t)(slash + 1 - base);
        base = slash + 1;
    }
    p->name = sm__malloc(blen + 1);
    if (!p->dir || !p->name) return sm__fail(SM_ERR_NOMEM, "out of memory reading runs");
    memcpy(p->name, base, blen);
    p->name[blen] = '\0';

    /* candidates: the PNGs directly in <dir>training/, sorted (the file list is) */
    size_t tl = dir_len + strlen("training/");
    char *prefix = sm__malloc(tl + 1);
    if (!prefix) return sm__fail(SM_ERR_NOMEM, "out of memory reading runs");
    snprintf(prefix, tl + 1, "%straining/", p->dir);
    size_t n = 0;
    for (int pass = 0; pass < 2; pass++) {
        n = 0;
        for (size_t i = 0; i < s->n; i++) {
            const char *r = s->files[i].rel;
            if (strncmp(r, prefix, tl) != 0 || strchr(r + tl, '/') || r[tl] == '.' ||
                !has_png_suffix(r + tl, strlen(r + tl)))
                continue;
            if (pass) p->cand[n] = &s->files[i];
            n++;
        }
        if (pass == 0) {
            p->cand = sm__malloc((n ? n : 1) * sizeof *p->cand);
            if (!p->cand) {
                sm__free(prefix);
                return sm__fail(SM_ERR_NOMEM, "out of memory reading runs");
            }
        }
    }
    sm__free(prefix);
    p->n_cand = n;

    char where[600];
    snprintf(where, sizeof where, "one-shot runs '%.250s': '%.300s'", s->path, rel);
    SM_RETURN_IF(n < 2, SM_ERR_FORMAT,
                 "%s: the run has %zu candidate image%s in %straining/, "
                 "at least 2 are needed",
                 where, n, n == 1 ? "" : "s", p->dir);
    if (text) return parse_labels(s, p, where, text, text_size);
    uint8_t *data = NULL;
    size_t size = 0;
    SM_TRY(sm__tree_read(s, labels, &data, &size));
    sm_status st = parse_labels(s, p, where, data, size);
    sm__free(data);
    return st;
}

sm_status sm__oneshot_labels_parse(const uint8_t *text, size_t size, size_t *n_queries)
{
    /* a run of three candidates and three queries, listed but never read */
    static const char *const names[] = {
        "run01/class_labels.txt",     "run01/test/item01.png",      "run01/test/item02.png",
        "run01/test/item03.png",      "run01/training/class01.png", "run01/training/class02.png",
        "run01/training/class03.png",
    };
    sm__tree_file files[sizeof names / sizeof *names];
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        files[i] = (sm__tree_file){(char *)names[i], i};
    sm__tree s = {.path = "labels", .files = files, .n = sizeof names / sizeof *names};
    run_plan p;
    sm_status st = plan_run(&s, &files[0], &p, text, size);
    if (st == SM_OK) *n_queries = p.n_query;
    plan_free(&p);
    return st;
}

/* The labels files that make runs: [ROOT/]<run>/class_labels.txt, or class_labels.txt at the
 * top of a folder that is itself a run. */
static int is_labels(const char *rel)
{
    size_t n = strlen(rel), l = strlen(LABELS);
    if (n < l || strcmp(rel + n - l, LABELS) != 0) return 0;
    if (n > l && rel[n - l - 1] != '/') return 0;
    size_t slashes = 0;
    for (size_t i = 0; i < n; i++) slashes += rel[i] == '/';
    return slashes <= 2;
}

static void runs_free_all(sm_oneshot_runs *r)
{
    for (size_t i = 0; i < r->n_runs; i++) {
        sm__free(r->runs[i].name);
        sm__free(r->runs[i].cand);
        sm__free(r->runs[i].query);
        sm__free(r->runs[i].answer);
    }
    sm__free(r->runs);
    sm__free(r);
}

SM_API void sm_oneshot_runs_destroy(sm_oneshot_runs *runs)
{
    if (runs) runs_free_all(runs);
}

static sm_status decode_all(const sm__tree *s, const sm__tree_file *const *files, size_t n, int h,
                            int w, int resize, uint8_t *out)
{
    size_t px = (size_t)h * (size_t)w;
    for (size_t i = 0; i < n; i++) {
        uint8_t *data = NULL;
        size_t size = 0;
        SM_TRY(sm__tree_read(s, files[i], &data, &size));
        char *name = sm__tree_source(s, files[i]);
        sm_status st = !name    ? sm__fail(SM_ERR_NOMEM, "out of memory decoding runs")
                       : resize ? sm__png_decode_resized(data, size, name, h, w, out + i * px)
                                : sm__png_decode(data, size, name, h, w, out + i * px);
        sm__free(name);
        sm__free(data);
        SM_TRY(st);
    }
    return SM_OK;
}

/* From the file list to decoded runs. */
static sm_status build_runs(const sm__tree *s, int h, int w, int resize, sm_oneshot_runs **out)
{
    size_t n_runs = 0;
    for (size_t i = 0; i < s->n; i++) n_runs += is_labels(s->files[i].rel);
    SM_RETURN_IF(n_runs == 0, SM_ERR_DATASET,
                 "no one-shot runs in '%s' (expected runNN/class_labels.txt, runNN/training/ "
                 "and runNN/test/)",
                 s->path);
    run_plan *plans = sm__calloc(n_runs, sizeof *plans);
    sm_oneshot_runs *r = sm__calloc(1, sizeof *r);
    sm__run *runs = sm__calloc(n_runs, sizeof *runs);
    sm_status st =
        plans && r && runs ? SM_OK : sm__fail(SM_ERR_NOMEM, "out of memory reading runs");
    size_t k = 0;
    for (size_t i = 0; i < s->n && st == SM_OK; i++)
        if (is_labels(s->files[i].rel)) st = plan_run(s, &s->files[i], &plans[k++], NULL, 0);
    /* refuse more pixels than a dataset may hold, before decoding any */
    size_t px = (size_t)h * (size_t)w;
    uint64_t images = 0, limit = sm__limit(SM_LIMIT_DATASET_BYTES);
    for (size_t i = 0; i < k && st == SM_OK; i++) images += plans[i].n_cand + plans[i].n_query;
    if (st == SM_OK && images > limit / px)
        st = sm__fail(SM_ERR_LIMIT,
                      "one-shot runs '%s' hold %" PRIu64 " images of %dx%d, more than "
                      "SM_LIMIT_DATASET_BYTES (%" PRIu64 ") allows; raise it with sm_set_limit",
                      s->path, images, w, h, limit);
    if (st == SM_OK) {
        r->height = h, r->width = w, r->px = px;
        r->runs = runs, r->n_runs = n_runs;
    }
    for (size_t i = 0; i < n_runs && st == SM_OK; i++) {
        sm__run *u = &runs[i];
        run_plan *p = &plans[i];
        u->cand = sm__malloc(p->n_cand * px);
        u->query = sm__malloc(p->n_query * px);
        u->answer = sm__malloc(p->n_query * sizeof *u->answer);
        u->name = sm__strdup(p->name);
        if (!u->cand || !u->query || !u->answer || !u->name) {
            st = sm__fail(SM_ERR_NOMEM, "out of memory decoding runs");
            break;
        }
        u->n_cand = p->n_cand, u->n_query = p->n_query;
        memcpy(u->answer, p->answer, p->n_query * sizeof *u->answer);
        r->n_trials += p->n_query;
        st = decode_all(s, p->cand, p->n_cand, h, w, resize, u->cand);
        if (st == SM_OK) st = decode_all(s, p->query, p->n_query, h, w, resize, u->query);
    }
    for (size_t i = 0; plans && i < n_runs; i++) plan_free(&plans[i]);
    sm__free(plans);
    if (st != SM_OK) {
        if (r && r->runs) {
            runs_free_all(r); /* frees runs too */
        } else {
            sm__free(runs);
            sm__free(r);
        }
        return st;
    }
    *out = r;
    return SM_OK;
}

static sm_status check_args(const char *path, int *h, int *w, sm_oneshot_runs **out)
{
    SM_CHECK_ARG(path && out, "sm_oneshot_runs_open: NULL argument");
    if (*h == 0 && *w == 0) *h = *w = 105;
    SM_CHECK_ARG(*h >= 1 && *h <= SM__MAX_IMAGE_SIDE && *w >= 1 && *w <= SM__MAX_IMAGE_SIDE,
                 "sm_oneshot_runs_open: image size %dx%d out of range (1..%d each, or 0x0)", *w, *h,
                 SM__MAX_IMAGE_SIDE);
    return SM_OK;
}

SM_API sm_status sm_oneshot_runs_open(const char *path, int height, int width,
                                      sm_oneshot_runs **out)
{
    SM_TRY(check_args(path, &height, &width, out));
    sm__tree t;
    sm_status st = sm__tree_open(path, "one-shot runs", keep_run_file, NULL, &t);
    if (st == SM_OK) st = build_runs(&t, height, width, 0, out);
    sm__tree_close(&t);
    return st;
}

SM_API sm_status sm_oneshot_runs_open_with(const char *path, int height, int width,
                                           const sm_dataset_options *options, sm_oneshot_runs **out)
{
    if (!options) return sm_oneshot_runs_open(path, height, width, out);
    sm_dataset_options o = SM_DATASET_OPTIONS_INIT;
    SM_TRY(sm__read_options("sm_oneshot_runs_open_with", "sm_dataset_options",
                            "SM_DATASET_OPTIONS_INIT", &o, sizeof o, options));
    SM_CHECK_ARG(o.resize == 0 || o.resize == 1, "sm_oneshot_runs_open_with: resize is %d (0 or 1)",
                 o.resize);
    SM_CHECK_ARG(o.n_exclude == 0,
                 "sm_oneshot_runs_open_with: runs have no alphabets to exclude (n_exclude %zu)",
                 o.n_exclude);
    SM_TRY(check_args(path, &height, &width, out));
    sm__tree t;
    sm_status st = sm__tree_open(path, "one-shot runs", keep_run_file, NULL, &t);
    if (st == SM_OK) st = build_runs(&t, height, width, o.resize, out);
    sm__tree_close(&t);
    return st;
}

sm_status sm__oneshot_runs_open_zip_buffer(const void *data, size_t size, const char *name,
                                           int height, int width, sm_oneshot_runs **out)
{
    SM_TRY(check_args(name, &height, &width, out));
    sm__tree t;
    sm_status st =
        sm__tree_open_zip_buffer(data, size, name, "one-shot runs", keep_run_file, NULL, &t);
    if (st == SM_OK) st = build_runs(&t, height, width, 0, out);
    sm__tree_close(&t);
    return st;
}

/* ------------------------------------------------------------------ getters */

SM_API size_t sm_oneshot_runs_count(const sm_oneshot_runs *r) { return r ? r->n_runs : 0; }
SM_API size_t sm_oneshot_runs_num_trials(const sm_oneshot_runs *r) { return r ? r->n_trials : 0; }

SM_API sm_status sm_oneshot_run_info(const sm_oneshot_runs *r, size_t i, const char **name,
                                     size_t *n_candidates, size_t *n_queries)
{
    SM_CHECK_ARG(r, "sm_oneshot_run_info: runs is NULL");
    SM_CHECK_ARG(i < r->n_runs, "sm_oneshot_run_info: run %zu out of range (%zu runs)", i,
                 r->n_runs);
    if (name) *name = r->runs[i].name;
    if (n_candidates) *n_candidates = r->runs[i].n_cand;
    if (n_queries) *n_queries = r->runs[i].n_query;
    return SM_OK;
}

SM_API sm_status sm_oneshot_run_image(const sm_oneshot_runs *r, size_t i, int query, size_t index,
                                      float *pixels, size_t *answer)
{
    SM_CHECK_ARG(r && pixels, "sm_oneshot_run_image: NULL argument");
    SM_CHECK_ARG(i < r->n_runs, "sm_oneshot_run_image: run %zu out of range (%zu runs)", i,
                 r->n_runs);
    const sm__run *u = &r->runs[i];
    size_t n = query ? u->n_query : u->n_cand;
    SM_CHECK_ARG(index < n, "sm_oneshot_run_image: %s %zu out of range (%zu)",
                 query ? "query" : "candidate", index, n);
    const uint8_t *src = (query ? u->query : u->cand) + index * r->px;
    for (size_t k = 0; k < r->px; k++) pixels[k] = (float)src[k] / 255.0f;
    if (answer) *answer = query ? u->answer[index] : SIZE_MAX;
    return SM_OK;
}
