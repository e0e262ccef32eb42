/* SPDX-License-Identifier: MIT */
/* Galleries at scale (include/siamese/gallery.h, since 0.5): batched identification gives every
 * query exactly the answer it gets alone, at any thread count, and verification exactly the
 * label's score of identification; row subsets score as the full search does (the re-scoring an
 * index needs); the storage types' codecs (bf16 and f16 rounded to nearest even, as the
 * hardware converts; u8 within half a level); galleries of each type through files; mapped
 * files used in place, copied on their first modification, their rows' check skipped on
 * request; a gallery file of 0.4 (tests/data/gallery-v1, tests/gen/make_gallery_v1.c), aligned
 * or not, and the refusals of newer or inconsistent files. Exactness is checked where it is
 * defined: scores from the same stored rows (embedding images depends on the BLAS kernels). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#if defined(__x86_64__)
#include <cpuid.h>
#include <immintrin.h>
#endif

#include "fixtures.h"
#include "gallery/gallery.h"
#include "io/safetensors.h"
#include "network/network.h"
#include "siamese/siamese.h"

#define ARCH "1x12x12:flatten,fc40" /* 40 features: two full lanes of 16 and a tail */
enum { D = 40, LABELS = 37, PER = 3, N = LABELS * PER, NQ = 70 };

typedef struct model {
    sm_backend *be;
    sm_subnet *sub;
    sm_head *head;
} model;

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static float unit(void)
{
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (float)(rng >> 40) / 16777216.0f;
}

static void model_open(model *m)
{
    sm_arch *arch;
    assert_int_equal(sm_backend_create(SM_BACKEND_CPU, &m->be), SM_OK);
    assert_int_equal(sm_arch_from_string(ARCH, &arch), SM_OK);
    assert_int_equal(sm_subnet_create(m->be, arch, 3, &m->sub), SM_OK);
    sm_arch_destroy(arch);
    assert_int_equal(sm_head_create(m->be, D, 4, &m->head), SM_OK);
    /* a head whose scores spread over (0, 1) for features in [0, 1] */
    float p[D + 1];
    for (size_t i = 0; i < D; i++) p[i] = -0.6f - 0.05f * (float)(i % 7) + (i % 5 ? 0 : 0.3f);
    p[D] = 3.0f;
    assert_int_equal(sm__head_write_params(m->head, p), SM_OK);
}

static void model_close(model *m)
{
    sm_head_destroy(m->head);
    sm_subnet_destroy(m->sub);
    sm_backend_destroy(m->be);
}

/* Random features: label l's examples near a centre of its own, queries near a label's. */
static float *centres(void)
{
    float *c = malloc(LABELS * D * sizeof *c);
    for (size_t i = 0; i < LABELS * D; i++) c[i] = unit();
    return c;
}

static void near(const float *centre, float spread, float *out)
{
    for (size_t d = 0; d < D; d++) {
        float v = centre[d] + spread * (unit() - 0.5f);
        out[d] = v < 0 ? 0 : v > 1 ? 1 : v;
    }
}

static sm_gallery *gallery_of(model *m, sm_storage_type t, const float *c)
{
    sm_gallery_options o = SM_GALLERY_OPTIONS_INIT;
    o.storage = t;
    sm_gallery *g = NULL;
    assert_int_equal(sm_gallery_create_with(m->sub, m->head, &o, &g), SM_OK);
    assert_int_equal(sm_gallery_storage(g), t);
    float f[PER * D];
    for (size_t l = 0; l < LABELS; l++) {
        char label[32];
        snprintf(label, sizeof label, "label%02zu", l);
        for (size_t j = 0; j < PER; j++) near(c + l * D, 0.4f, f + j * D);
        assert_int_equal(sm_gallery_enrol_embeddings(g, label, PER, f), SM_OK);
    }
    return g;
}

static float *queries(const float *c, size_t n)
{
    float *q = malloc(n * D * sizeof *q);
    for (size_t i = 0; i < n; i++) near(c + (i % LABELS) * D, 0.6f, q + i * D);
    return q;
}

static int same_match(const sm_gallery_match *a, const sm_gallery_match *b)
{
    return a->label == b->label && a->rank == b->rank && a->tied == b->tied &&
           memcmp(&a->score, &b->score, sizeof a->score) == 0;
}

static void assert_same(const sm_gallery_match *a, const sm_gallery_match *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!same_match(&a[i], &b[i]))
            fail_msg("match %zu: label %zu score %.17g vs label %zu score %.17g", i, a[i].label,
                     a[i].score, b[i].label, b[i].score);
}

enum { K = 5 };

/* ------------------------------------------------------------------ batches */

static void test_batches_are_exact(void **state)
{
    (void)state;
    model m;
    model_open(&m);
    float *c = centres(), *q = queries(c, NQ);
    for (int t = SM_STORAGE_F32; t <= SM_STORAGE_U8; t++) {
        sm_gallery *g = gallery_of(&m, (sm_storage_type)t, c);
        sm_gallery_match all[NQ * K], one[K], other[NQ * K];
        assert_int_equal(sm_backend_set_threads(m.be, 1), SM_OK);
        size_t found = 0;
        assert_int_equal(sm_gallery_identify_embeddings(g, NQ, q, K, all, &found), SM_OK);
        assert_int_equal(found, K);
        /* one query at a time, and at 2 and 3 threads: the same bits */
        for (size_t i = 0; i < NQ; i++) {
            assert_int_equal(sm_gallery_identify_embeddings(g, 1, q + i * D, K, one, NULL), SM_OK);
            assert_same(one, all + i * K, K);
        }
        for (int th = 2; th <= 3; th++) {
            assert_int_equal(sm_backend_set_threads(m.be, th), SM_OK);
            assert_int_equal(sm_gallery_identify_embeddings(g, NQ, q, K, other, NULL), SM_OK);
            assert_same(other, all, NQ * K);
        }
        /* verification: the label's score of identification, bit for bit */
        for (size_t i = 0; i < 8; i++) {
            const sm_gallery_match *best = all + i * K;
            const char *name = sm_gallery_label_name(g, best->label);
            /* verify takes an image: score its embedding through the same path instead */
            float scores[PER];
            uint32_t rows[PER];
            for (size_t j = 0, e = 0; e < g->n; e++)
                if (g->example_label[e] == best->label) rows[j++] = (uint32_t)e;
            assert_int_equal(sm__gallery_score(g, "test", 1, q + i * D, PER, rows, scores), SM_OK);
            double s = 0;
            for (size_t j = 0; j < PER; j++) s += scores[j];
            s /= PER;
            assert_true(memcmp(&s, &best->score, sizeof s) == 0);
            assert_non_null(name);
        }
        /* a row subset, in any order with repeats, scores as the full search does */
        float *full = malloc(4 * g->n * sizeof *full), sub[4 * 9];
        uint32_t pick[9] = {5, 0, (uint32_t)g->n - 1, 17, 17, 64, 3, 100, 2};
        assert_int_equal(sm__gallery_score(g, "test", 4, q, 0, NULL, full), SM_OK);
        assert_int_equal(sm__gallery_score(g, "test", 4, q, 9, pick, sub), SM_OK);
        for (size_t i = 0; i < 4; i++)
            for (size_t k = 0; k < 9; k++)
                assert_true(memcmp(&sub[i * 9 + k], &full[i * g->n + pick[k]], 4) == 0);
        uint32_t out_of_range = (uint32_t)g->n;
        assert_int_equal(sm__gallery_score(g, "test", 1, q, 1, &out_of_range, sub),
                         SM_ERR_INVALID_ARG);
        free(full);
        sm_gallery_destroy(g);
    }
    free(c), free(q);
    model_close(&m);
}

/* verify on images agrees with identify on the same images, for every storage type */
static void test_verify_matches_identify(void **state)
{
    (void)state;
    model m;
    model_open(&m);
    sm_dataset *ds;
    assert_int_equal(sm_dataset_create_synthetic(6, 4, 12, 12, 9, &ds), SM_OK);
    for (int t = SM_STORAGE_F32; t <= SM_STORAGE_U8; t++) {
        sm_gallery_options o = SM_GALLERY_OPTIONS_INIT;
        o.storage = (sm_storage_type)t;
        sm_gallery *g;
        assert_int_equal(sm_gallery_create_with(m.sub, m.head, &o, &g), SM_OK);
        float img[3 * 144];
        for (size_t cl = 0; cl < 6; cl++) {
            for (size_t j = 0; j < 3; j++)
                assert_int_equal(sm_dataset_get_image(ds, 4 * cl + j, img + j * 144), SM_OK);
            assert_int_equal(sm_gallery_enrol(g, sm_dataset_class_name(ds, cl), 3, img), SM_OK);
        }
        assert_int_equal(sm_dataset_get_image(ds, 3, img), SM_OK);
        sm_gallery_match top[6];
        assert_int_equal(sm_gallery_identify(g, 1, img, 6, top, NULL), SM_OK);
        for (size_t i = 0; i < 6; i++) {
            double s = -1;
            int acc = -1;
            assert_int_equal(sm_gallery_verify(g, sm_gallery_label_name(g, top[i].label), img,
                                               top[i].score, &s, &acc),
                             SM_OK);
            assert_true(memcmp(&s, &top[i].score, sizeof s) == 0 && acc == 1);
        }
        sm_gallery_destroy(g);
    }
    sm_dataset_destroy(ds);
    model_close(&m);
}

/* ------------------------------------------------------------------ storage */

#if defined(__x86_64__)
__attribute__((target("f16c"))) static uint16_t hw_f16(float f)
{
    return (uint16_t)_cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT);
}
#endif

static void test_codecs(void **state)
{
    (void)state;
    enum { M = 1 << 16 };
    float *x = malloc(M * sizeof *x), *y = malloc(M * sizeof *y), qp[2 * (M / 64)];
    uint8_t *enc = malloc(M * 2);
    /* every magnitude in [0, 1]: uniform, tiny (f16's subnormals), and round-number ties */
    for (size_t i = 0; i < M; i++) {
        float u = unit();
        x[i] = i % 4 == 0 ? u : i % 4 == 1 ? ldexpf(u, -(int)(i % 30)) : u * u * u;
    }
    x[0] = 0, x[1] = 1, x[2] = 0x1p-25f, x[3] = 0x1.8p-25f, x[4] = 1.0f + 0x1p-24f - 0x1p-24f;
    x[5] = 0x1.002p0f * 0.5f; /* a tie at f16's precision: to even */
    /* f16: nearest even, as the hardware converts, and back exactly */
    sm__storage_encode(SM_STORAGE_F16, 1, M, x, enc, NULL);
    sm__storage_decode(SM_STORAGE_F16, 1, M, enc, NULL, y);
#if defined(__x86_64__)
    unsigned r1, r2, r3, r4;
    if (__get_cpuid(1, &r1, &r2, &r3, &r4) && (r3 & bit_F16C))
        for (size_t i = 0; i < M; i++) {
            uint16_t h;
            memcpy(&h, enc + 2 * i, 2);
            if (h != hw_f16(x[i]))
                fail_msg("f16 of %a: %04x, hardware %04x", x[i], h, hw_f16(x[i]));
        }
    else printf("(part) no F16C here: f16 checked against its error bound only\n");
#endif
    for (size_t i = 0; i < M; i++) {
        double tol = x[i] >= 0x1p-14f ? ldexp(1, -11) * x[i] : ldexp(1, -25);
        assert_true(fabs((double)y[i] - x[i]) <= tol);
    }
    /* bf16: nearest even; relative error at most 2^-8 */
    sm__storage_encode(SM_STORAGE_BF16, 1, M, x, enc, NULL);
    sm__storage_decode(SM_STORAGE_BF16, 1, M, enc, NULL, y);
    for (size_t i = 0; i < M; i++) assert_true(fabs((double)y[i] - x[i]) <= ldexp(x[i], -8));
    float tie = 1.0f + 0x1p-8f; /* halfway between bf16's 1 and 1 + 2^-7: to even, 1 */
    uint16_t h;
    sm__storage_encode(SM_STORAGE_BF16, 1, 1, &tie, &h, NULL);
    assert_int_equal(h, 0x3f80);
    /* u8: each vector of 64 within half a level of its own range, the range exact at its ends */
    sm__storage_encode(SM_STORAGE_U8, M / 64, 64, x, enc, qp);
    sm__storage_decode(SM_STORAGE_U8, M / 64, 64, enc, qp, y);
    for (size_t r = 0; r < M / 64; r++) {
        float lo = 1, hi = 0;
        for (size_t d = 0; d < 64; d++) {
            lo = fminf(lo, x[r * 64 + d]), hi = fmaxf(hi, x[r * 64 + d]);
            assert_true(fabs((double)y[r * 64 + d] - x[r * 64 + d]) <=
                        qp[2 * r + 1] * 0.5001 + 1e-7);
        }
        assert_true(qp[2 * r] == lo);
        assert_true(sm__storage_first_bad(SM_STORAGE_U8, 1, 64, enc + r * 64, qp + 2 * r, NULL) ==
                    SIZE_MAX);
    }
    /* a flat vector: scale 0, every code 0, the value exact */
    float flat[8] = {0.3f, 0.3f, 0.3f, 0.3f, 0.3f, 0.3f, 0.3f, 0.3f}, back[8];
    sm__storage_encode(SM_STORAGE_U8, 1, 8, flat, enc, qp);
    sm__storage_decode(SM_STORAGE_U8, 1, 8, enc, qp, back);
    assert_true(memcmp(flat, back, sizeof flat) == 0);
    /* what the loader refuses */
    float bad_qp[2] = {0.9f, 0.01f}; /* 0.9 + 255 x 0.01 > 1 */
    assert_int_equal(sm__storage_first_bad(SM_STORAGE_U8, 1, 8, enc, bad_qp, NULL), 0);
    uint16_t nan16 = 0x7e00, big16 = 0x3c01; /* NaN, and the first half above 1 */
    assert_int_equal(sm__storage_first_bad(SM_STORAGE_F16, 1, 1, &nan16, NULL, NULL), 0);
    assert_int_equal(sm__storage_first_bad(SM_STORAGE_F16, 1, 1, &big16, NULL, NULL), 0);
    assert_string_equal(sm__storage_name(SM_STORAGE_BF16), "bf16");
    assert_int_equal(sm__storage_parse("u8"), SM_STORAGE_U8);
    assert_int_equal(sm__storage_parse("f64"), -1);
    free(x), free(y), free(enc);
}

static void test_create_options(void **state)
{
    (void)state;
    model m;
    model_open(&m);
    sm_gallery *g = NULL;
    sm_gallery_options o = SM_GALLERY_OPTIONS_INIT;
    o.storage = (sm_storage_type)4;
    assert_int_equal(sm_gallery_create_with(m.sub, m.head, &o, &g), SM_ERR_INVALID_ARG);
    o.storage = SM_STORAGE_U8, o.struct_size = 0;
    assert_int_equal(sm_gallery_create_with(m.sub, m.head, &o, &g), SM_ERR_INVALID_ARG);
    assert_null(g);
    /* an older caller's struct (the size field only): the defaults */
    o.struct_size = sizeof(size_t);
    assert_int_equal(sm_gallery_create_with(m.sub, m.head, &o, &g), SM_OK);
    assert_int_equal(sm_gallery_storage(g), SM_STORAGE_F32);
    sm_gallery_destroy(g);
    assert_int_equal(sm_gallery_create_with(m.sub, m.head, NULL, &g), SM_OK);
    assert_int_equal(sm_gallery_storage(g), SM_STORAGE_F32);
    assert_int_equal(sm_gallery_is_mapped(g), 0);
    sm_gallery_destroy(g);
    assert_int_equal(sm_gallery_storage(NULL), SM_STORAGE_F32);
    assert_int_equal(sm_gallery_is_mapped(NULL), 0);
    /* u8 keeps a scale and an offset per vector: more bytes per row than the codes */
    o = (sm_gallery_options)SM_GALLERY_OPTIONS_INIT;
    float *c = centres();
    double bytes[4];
    for (int t = SM_STORAGE_F32; t <= SM_STORAGE_U8; t++) {
        g = gallery_of(&m, (sm_storage_type)t, c);
        bytes[t] = sm_gallery_bytes_per_example(g);
        sm_gallery_destroy(g);
    }
    assert_true(bytes[SM_STORAGE_BF16] < bytes[SM_STORAGE_F32]);
    assert_true(bytes[SM_STORAGE_F16] == bytes[SM_STORAGE_BF16]);
    assert_true(bytes[SM_STORAGE_U8] < bytes[SM_STORAGE_F16]);
    free(c);
    model_close(&m);
}

/* ------------------------------------------------------------------ files */

static char *format_version(const char *path)
{
    size_t n = 0;
    uint8_t *b = fx_read_bytes(path, &n);
    assert_non_null(b);
    sm__st_file f;
    assert_int_equal(sm__st_parse(b, n, &f), SM_OK);
    const sm__st_kv *kv = sm__st_meta(&f, "format_version");
    char *v = strdup(kv->value);
    sm__st_file_free(&f);
    free(b);
    return v;
}

/* The file offset of the embeddings' first byte. */
static size_t rows_offset(const char *path, size_t *end)
{
    size_t n = 0;
    uint8_t *b = fx_read_bytes(path, &n);
    sm__st_file f;
    assert_int_equal(sm__st_parse(b, n, &f), SM_OK);
    const sm__st_tensor *e = sm__st_find(&f, "embeddings");
    size_t off = f.data_off + e->begin;
    if (end) *end = f.data_off + e->end;
    sm__st_file_free(&f);
    free(b);
    return off;
}

static void test_files_of_each_storage(void **state)
{
    (void)state;
    model m;
    model_open(&m);
    char *dir = fx_tempdir(), *path = fx_join(dir, "g.gallery");
    float *c = centres(), *q = queries(c, NQ);
    sm_gallery_match ref[NQ * K], got[NQ * K];
    size_t agree1[4] = {0};
    for (int t = SM_STORAGE_F32; t <= SM_STORAGE_U8; t++) {
        rng = 0x9e3779b97f4a7c15ull; /* the same examples for every type */
        float *cc = centres();
        sm_gallery *g = gallery_of(&m, (sm_storage_type)t, cc);
        free(cc);
        sm_gallery_match mine[NQ * K];
        assert_int_equal(sm_gallery_identify_embeddings(g, NQ, q, K, mine, NULL), SM_OK);
        if (t == SM_STORAGE_F32) memcpy(ref, mine, sizeof ref);
        for (size_t i = 0; i < NQ; i++) agree1[t] += mine[i * K].label == ref[i * K].label;
        assert_int_equal(sm_gallery_save(g, path), SM_OK);
        char *v = format_version(path);
        assert_string_equal(v, t == SM_STORAGE_F32 ? "1" : "2");
        free(v);
        assert_true(rows_offset(path, NULL) % 64 == 0);
        for (int no_map = 0; no_map <= 1; no_map++) {
            sm_gallery_load_options lo = SM_GALLERY_LOAD_OPTIONS_INIT;
            lo.no_map = no_map;
            sm_gallery *back = NULL;
            assert_int_equal(sm_gallery_load_with(m.sub, m.head, path, &lo, &back), SM_OK);
            assert_int_equal(sm_gallery_storage(back), t);
            assert_int_equal(sm_gallery_is_mapped(back), !no_map);
            assert_int_equal(sm_gallery_identify_embeddings(back, NQ, q, K, got, NULL), SM_OK);
            assert_same(got, mine, NQ * K);
            sm_gallery_destroy(back);
        }
        sm_gallery_destroy(g);
    }
    /* reduced storage changes the best label rarely (random features, 37 labels) */
    printf("top-1 agreement with f32 over %d queries: bf16 %zu, f16 %zu, u8 %zu\n", NQ,
           agree1[SM_STORAGE_BF16], agree1[SM_STORAGE_F16], agree1[SM_STORAGE_U8]);
    assert_true(agree1[SM_STORAGE_F16] >= NQ - 1 && agree1[SM_STORAGE_BF16] >= NQ - 3 &&
                agree1[SM_STORAGE_U8] >= NQ - 3);
    free(c), free(q), free(path);
    fx_rmtree(dir);
    free(dir);
    model_close(&m);
}

/* Mapped galleries: in place until modified; the rows' check skipped on request only. */
static void test_mapped(void **state)
{
    (void)state;
    model m;
    model_open(&m);
    char *dir = fx_tempdir(), *path = fx_join(dir, "g.gallery"), *bad = fx_join(dir, "b.gallery");
    float *c = centres(), *q = queries(c, NQ);
    for (int t = SM_STORAGE_F32; t <= SM_STORAGE_U8; t += 3) {
        sm_gallery *g = gallery_of(&m, (sm_storage_type)t, c), *mp = NULL;
        sm_gallery_match want[NQ * K], got[NQ * K];
        assert_int_equal(sm_gallery_identify_embeddings(g, NQ, q, K, want, NULL), SM_OK);
        assert_int_equal(sm_gallery_save(g, path), SM_OK);
        assert_int_equal(sm_gallery_load(m.sub, m.head, path, &mp), SM_OK);
        assert_int_equal(sm_gallery_is_mapped(mp), 1);
        /* saving over the mapped file itself: an atomic replacement, the mapping unharmed */
        assert_int_equal(sm_gallery_save(mp, path), SM_OK);
        assert_int_equal(sm_gallery_identify_embeddings(mp, NQ, q, K, got, NULL), SM_OK);
        assert_same(got, want, NQ * K);
        /* enrolment copies the rows first, then behaves as on any gallery */
        float extra[D];
        near(c, 0.1f, extra);
        assert_int_equal(sm_gallery_enrol_embeddings(mp, "new", 1, extra), SM_OK);
        assert_int_equal(sm_gallery_enrol_embeddings(g, "new", 1, extra), SM_OK);
        assert_int_equal(sm_gallery_is_mapped(mp), 0);
        assert_int_equal(sm_gallery_identify_embeddings(mp, NQ, q, K, got, NULL), SM_OK);
        assert_int_equal(sm_gallery_identify_embeddings(g, NQ, q, K, want, NULL), SM_OK);
        assert_same(got, want, NQ * K);
        sm_gallery_destroy(mp);
        /* removal from a mapped gallery */
        assert_int_equal(sm_gallery_save(g, path), SM_OK);
        assert_int_equal(sm_gallery_load(m.sub, m.head, path, &mp), SM_OK);
        assert_int_equal(sm_gallery_is_mapped(mp), 1);
        size_t removed = 0;
        assert_int_equal(sm_gallery_remove(mp, "label03", &removed), SM_OK);
        assert_int_equal(sm_gallery_remove(g, "label03", NULL), SM_OK);
        assert_int_equal(removed, PER);
        assert_int_equal(sm_gallery_is_mapped(mp), 0);
        assert_int_equal(sm_gallery_identify_embeddings(mp, NQ, q, K, got, NULL), SM_OK);
        assert_int_equal(sm_gallery_identify_embeddings(g, NQ, q, K, want, NULL), SM_OK);
        assert_same(got, want, NQ * K);
        sm_gallery_destroy(mp);

        /* a damaged row: refused by default, loaded (and searched) with skip_row_check */
        assert_int_equal(sm_gallery_save(g, path), SM_OK);
        size_t n = 0, end = 0, off = rows_offset(path, &end);
        uint8_t *bytes = fx_read_bytes(path, &n);
        bytes[off + (end - off) / 2] ^= 0x01;
        assert_int_equal(fx_write_bytes(bad, bytes, n), 0);
        assert_int_equal(sm_gallery_load(m.sub, m.head, bad, &mp), SM_ERR_FORMAT);
        assert_non_null(strstr(sm_last_error(), "rows_crc32"));
        sm_gallery_load_options lo = SM_GALLERY_LOAD_OPTIONS_INIT;
        lo.skip_row_check = 1;
        assert_int_equal(sm_gallery_load_with(m.sub, m.head, bad, &lo, &mp), SM_OK);
        assert_int_equal(sm_gallery_is_mapped(mp), 1);
        assert_int_equal(sm_gallery_identify_embeddings(mp, 1, q, K, got, NULL), SM_OK);
        sm_gallery_destroy(mp);
        lo.no_map = 1; /* copied rows are not checked either */
        assert_int_equal(sm_gallery_load_with(m.sub, m.head, bad, &lo, &mp), SM_OK);
        assert_int_equal(sm_gallery_is_mapped(mp), 0);
        sm_gallery_destroy(mp);
        /* damage outside the rows is refused even so: labels, header */
        bytes[off + (end - off) / 2] ^= 0x01;
        for (size_t i = 0; i < n; i += 53) {
            if (i >= off && i < end) continue;
            bytes[i] ^= 0x04;
            assert_int_equal(fx_write_bytes(bad, bytes, n), 0);
            sm_status st = sm_gallery_load_with(m.sub, m.head, bad, &lo, &mp);
            lo.no_map = 0;
            sm_status st2 = sm_gallery_load_with(m.sub, m.head, bad, &lo, &mp);
            lo.no_map = 1;
            assert_true(st == SM_ERR_FORMAT || st == SM_ERR_VERSION || st == SM_ERR_LIMIT);
            assert_int_equal(st2, st);
            bytes[i] ^= 0x04;
        }
        /* bad options */
        lo.skip_row_check = 2;
        assert_int_equal(sm_gallery_load_with(m.sub, m.head, path, &lo, &mp), SM_ERR_INVALID_ARG);
        lo = (sm_gallery_load_options)SM_GALLERY_LOAD_OPTIONS_INIT;
        lo.struct_size = 1;
        assert_int_equal(sm_gallery_load_with(m.sub, m.head, path, &lo, &mp), SM_ERR_INVALID_ARG);
        free(bytes);
        sm_gallery_destroy(g);
    }
    free(c), free(q), free(path), free(bad);
    fx_rmtree(dir);
    free(dir);
    model_close(&m);
}

/* ------------------------------------------------------------------ 0.4's files */

static char *fixture(const char *name)
{
    const char *root = getenv("SIAMESE_TEST_DATA");
    return fx_join(root ? root : SM_TEST_DATA_DIR, name);
}

/* The file with its header `extra` bytes longer (spaces: allowed) and its crc32 redone; with
 * `version` and `storage` (or NULL) patched in over values of the same length. */
static void rewrite(const char *src, const char *dst, size_t extra, const char *version,
                    const char *storage)
{
    size_t n = 0;
    uint8_t *b = fx_read_bytes(src, &n);
    uint64_t hl = 0;
    for (int i = 0; i < 8; i++) hl |= (uint64_t)b[i] << (8 * i);
    uint8_t *o = malloc(n + extra + 64);
    memcpy(o, b, 8 + hl);
    char *json = (char *)o + 8;
    size_t jl = hl;
    if (storage) { /* insert "storage":"..." after the first '{' of the metadata */
        char ins[64];
        int k = snprintf(ins, sizeof ins, "\"storage\":\"%s\",", storage);
        char *at = NULL; /* "format" in the header, which is not NUL-terminated */
        for (size_t i = 0; i + 8 <= jl && !at; i++)
            if (memcmp(json + i, "\"format\"", 8) == 0) at = json + i;
        assert_non_null(at);
        memmove(at + k, at, jl - (size_t)(at - json));
        memcpy(at, ins, (size_t)k);
        jl += (size_t)k;
    }
    while ((jl + extra) % 8) extra++;
    memset(json + jl, ' ', extra);
    jl += extra;
    for (int i = 0; i < 8; i++) o[i] = (uint8_t)(jl >> (8 * i));
    memcpy(o + 8 + jl, b + 8 + hl, n - 8 - hl);
    size_t m = 8 + jl + n - 8 - hl;
    char *v = strstr(json, "\"format_version\":\"");
    if (version) v[18] = version[0];
    char *cr = strstr(json, "\"crc32\":\"") + 9;
    memset(cr, '0', 8);
    char hex[9];
    snprintf(hex, sizeof hex, "%08x", sm__crc32_update(0, o, m));
    memcpy(cr, hex, 8);
    assert_int_equal(fx_write_bytes(dst, o, m), 0);
    free(o), free(b);
}

/* The float32 rows a gallery file holds (its `embeddings` tensor, little-endian), n x dim. */
static float *file_rows(const char *path, size_t *n, size_t *dim)
{
    size_t size = 0;
    uint8_t *b = fx_read_bytes(path, &size);
    assert_non_null(b);
    sm__st_file f;
    assert_int_equal(sm__st_parse(b, size, &f), SM_OK);
    const sm__st_tensor *e = sm__st_find(&f, "embeddings");
    *n = (size_t)e->shape[0], *dim = (size_t)e->shape[1];
    float *rows = malloc(*n * *dim * sizeof *rows);
    for (size_t i = 0; i < *n * *dim; i++) {
        const uint8_t *p = b + f.data_off + e->begin + 4 * i;
        uint32_t bits =
            (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
        memcpy(&rows[i], &bits, 4);
    }
    sm__st_file_free(&f);
    free(b);
    return rows;
}

static void test_files_of_0_4(void **state)
{
    (void)state;
    char *mpath = fixture("gallery-v1/model.safetensors");
    char *gpath = fixture("gallery-v1/gallery.gallery");
    char *dir = fx_tempdir(), *other = fx_join(dir, "o.gallery");
    sm_backend *be;
    sm_subnet *sub;
    sm_head *head;
    assert_int_equal(sm_backend_create(SM_BACKEND_CPU, &be), SM_OK);
    assert_int_equal(sm_model_load(be, mpath, &sub, &head), SM_OK);
    /* the file's rows enrolled now (5 labels of 3, as make_gallery_v1.c enrolled them): what the
     * loaded file must hold and answer (embedding them again would depend on this machine's
     * BLAS kernels) */
    size_t n = 0, dim = 0;
    float *rows = file_rows(gpath, &n, &dim);
    assert_int_equal(n, 15);
    sm_gallery *now, *old = NULL;
    assert_int_equal(sm_gallery_create(sub, head, &now), SM_OK);
    for (size_t cl = 0; cl < 5; cl++) {
        char label[32];
        snprintf(label, sizeof label, "alpha/char%02zu", cl);
        assert_int_equal(sm_gallery_enrol_embeddings(now, label, 3, rows + 3 * cl * dim), SM_OK);
    }
    const float *q = rows + dim; /* 4 of the rows as queries */
    sm_gallery_match want[4 * 3], got[4 * 3];
    assert_int_equal(sm_gallery_identify_embeddings(now, 4, q, 3, want, NULL), SM_OK);
    /* as written by 0.4 (its rows happen to start at a multiple of 64: mapped), and with the
     * header 8 bytes longer (not aligned: copied) */
    for (int variant = 0; variant < 2; variant++) {
        const char *p = gpath;
        if (variant) {
            rewrite(gpath, other, 8, NULL, NULL);
            p = other;
        }
        size_t off = rows_offset(p, NULL);
        assert_int_equal(sm_gallery_load(sub, head, p, &old), SM_OK);
        assert_int_equal(sm_gallery_storage(old), SM_STORAGE_F32);
        assert_int_equal(sm_gallery_is_mapped(old), off % 64 == 0);
        assert_int_equal(variant, off % 64 != 0);
        assert_int_equal(sm_gallery_num_examples(old), 15);
        assert_true(memcmp(old->rows, rows, 15 * old->row_bytes) == 0);
        for (size_t l = 0; l < 5; l++)
            assert_string_equal(sm_gallery_label_name(old, l), sm_gallery_label_name(now, l));
        assert_int_equal(sm_gallery_identify_embeddings(old, 4, q, 3, got, NULL), SM_OK);
        assert_same(got, want, 4 * 3);
        sm_gallery_destroy(old);
        old = NULL;
    }
    /* a newer version: refused as such */
    rewrite(gpath, other, 0, "3", NULL);
    assert_int_equal(sm_gallery_load(sub, head, other, &old), SM_ERR_VERSION);
    assert_non_null(strstr(sm_last_error(), "upgrade"));
    /* a version 1 file cannot hold anything but f32; version 2 must say what it holds */
    rewrite(gpath, other, 0, NULL, "bf16");
    assert_int_equal(sm_gallery_load(sub, head, other, &old), SM_ERR_FORMAT);
    rewrite(gpath, other, 0, "2", NULL);
    assert_int_equal(sm_gallery_load(sub, head, other, &old), SM_ERR_FORMAT);
    rewrite(gpath, other, 0, "2", "f32");
    assert_int_equal(sm_gallery_load(sub, head, other, &old), SM_OK);
    sm_gallery_destroy(old);
    old = NULL;
    rewrite(gpath, other, 0, "2", "u8"); /* says u8, holds F32 rows */
    assert_int_equal(sm_gallery_load(sub, head, other, &old), SM_ERR_FORMAT);
    rewrite(gpath, other, 0, "2", "f64");
    assert_int_equal(sm_gallery_load(sub, head, other, &old), SM_ERR_FORMAT);
    assert_null(old);
    sm_gallery_destroy(now);
    sm_head_destroy(head);
    sm_subnet_destroy(sub);
    sm_backend_destroy(be);
    free(rows), free(mpath), free(gpath), free(other);
    fx_rmtree(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_batches_are_exact),
        cmocka_unit_test(test_verify_matches_identify),
        cmocka_unit_test(test_codecs),
        cmocka_unit_test(test_create_options),
        cmocka_unit_test(test_files_of_each_storage),
        cmocka_unit_test(test_mapped),
        cmocka_unit_test(test_files_of_0_4),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
