/* SPDX-License-Identifier: MIT */
/* Candidate indexes (include/siamese/gallery_index.h): on a gallery of 2,000 examples in
 * well-separated clusters, the index's top k is sm_gallery_identify's (labels, order, scores
 * to float rounding) for HNSW and IVF, from feature vectors and from images; dimensions with
 * positive weights are scored exactly (a label nearer in the indexed dimensions loses to one
 * that the positive dimensions favour); answers are the same twice, across builds, batch sizes
 * and thread counts; too few candidates still give k labels; bad options, an empty gallery, a
 * head without negative weights or with non-finite ones, and a gallery changed after the build
 * are refused with their statuses.
 *
 *   test_gallery_index            the tests (exit 77, a skip, when the module is not built)
 *   test_gallery_index --missing  with SIAMESE_BACKEND_DIR pointing where no module is: the
 *                                 index calls say SM_ERR_BACKEND_UNAVAILABLE, exact search works
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "common/alloc.h"
#include "network/network.h"
#include "siamese/siamese.h"

enum { D = 32, LABELS = 400, PER = 5, N = LABELS * PER, NQ = 40, K = 5 };
#define ARCH "1x12x12:flatten,fc32"

typedef struct model {
    sm_backend *be;
    sm_subnet *sub;
    sm_head *head;
} model;

static uint64_t rng = 0x9E3779B97F4A7C15u;
static float urand(void)
{
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (float)((rng >> 40) * (1.0 / 16777216.0));
}

static float clamp01(float v) { return v < 0.0f ? 0.0f : v > 1.0f ? 1.0f : v; }

/* A model whose head weighs every dimension -1 .. -0.5 (n_pos of them +0.5 .. +1), bias 4. */
static void model_open(model *m, int n_pos)
{
    sm_arch *arch;
    assert_int_equal(sm_backend_create(SM_BACKEND_CPU, &m->be), SM_OK);
    sm_backend_set_threads(m->be, 1);
    assert_int_equal(sm_arch_from_string(ARCH, &arch), SM_OK);
    assert_int_equal(sm_subnet_create(m->be, arch, 3, &m->sub), SM_OK);
    sm_arch_destroy(arch);
    assert_int_equal(sm_head_create(m->be, D, 4, &m->head), SM_OK);
    float p[D + 1];
    for (int j = 0; j < D; j++) p[j] = j < D - n_pos ? -0.5f - 0.5f * urand() : 0.5f + 0.5f * urand();
    p[D] = 4.0f;
    assert_int_equal(sm__head_write_params(m->head, p), SM_OK);
}

static void model_close(model *m)
{
    sm_head_destroy(m->head);
    sm_subnet_destroy(m->sub);
    sm_backend_destroy(m->be);
}

static float centres[LABELS][D];

/* LABELS labels "label0000".., PER examples each: a centre in [0.1, 0.9]^D, noise +-0.02. */
static sm_gallery *clustered_gallery_as(const model *m, sm_storage_type storage)
{
    sm_gallery *g;
    sm_gallery_options go = SM_GALLERY_OPTIONS_INIT;
    go.storage = storage;
    assert_int_equal(sm_gallery_create_with(m->sub, m->head, &go, &g), SM_OK);
    for (int l = 0; l < LABELS; l++) {
        float x[PER * D];
        for (int j = 0; j < D; j++) centres[l][j] = 0.1f + 0.8f * urand();
        for (int e = 0; e < PER; e++)
            for (int j = 0; j < D; j++)
                x[e * D + j] = clamp01(centres[l][j] + 0.04f * (urand() - 0.5f));
        char name[32];
        snprintf(name, sizeof name, "label%04d", l);
        assert_int_equal(sm_gallery_enrol_embeddings(g, name, PER, x), SM_OK);
    }
    return g;
}

static sm_gallery *clustered_gallery(const model *m)
{
    return clustered_gallery_as(m, SM_STORAGE_F32);
}

/* NQ queries, each near a label's centre (noise +-0.05). */
static void queries(float *q)
{
    for (int i = 0; i < NQ; i++) {
        int l = (int)(urand() * LABELS) % LABELS;
        for (int j = 0; j < D; j++) q[i * D + j] = clamp01(centres[l][j] + 0.1f * (urand() - 0.5f));
    }
}

/* The candidates' labels are re-scored with the gallery's own kernel: the same bits as the exact
 * search, whatever the storage type, and from a mapped file's rows too. */
static void test_storage_types_and_mapped_files(void **state)
{
    (void)state;
    model m;
    model_open(&m, 0);
    static float q[NQ * D];
    const char *path = "test_gallery_index.gallery";
    for (int t = SM_STORAGE_F32; t <= SM_STORAGE_U8; t++) {
        sm_gallery *made = clustered_gallery_as(&m, (sm_storage_type)t);
        queries(q);
        assert_int_equal(sm_gallery_save(made, path), SM_OK);
        sm_gallery *g;
        assert_int_equal(sm_gallery_load(m.sub, m.head, path, &g), SM_OK);
        assert_int_equal(sm_gallery_storage(g), t);
        assert_int_equal(sm_gallery_is_mapped(g), 1);
        sm_gallery *pair[2] = {made, g};
        for (int which = 0; which < 2; which++) {
            sm_gallery_match want[NQ * K], got[NQ * K];
            assert_int_equal(sm_gallery_identify_embeddings(pair[which], NQ, q, K, want, NULL),
                             SM_OK);
            sm_gallery_index_options o = SM_GALLERY_INDEX_OPTIONS_INIT;
            sm_gallery_index *ix;
            assert_int_equal(sm_gallery_index_build(pair[which], &o, &ix), SM_OK);
            assert_int_equal(sm_gallery_index_identify_embeddings(ix, NQ, q, K, got, NULL), SM_OK);
            for (size_t i = 0; i < (size_t)NQ * K; i++) {
                assert_int_equal(got[i].label, want[i].label);
                assert_true(got[i].score == want[i].score);
            }
            sm_gallery_index_destroy(ix);
        }
        sm_gallery_destroy(g);
        sm_gallery_destroy(made);
    }
    remove(path);
    model_close(&m);
}

static void assert_same_as_exact(const sm_gallery_match *got, const sm_gallery_match *want,
                                 size_t n)
{
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(got[i].label, want[i].label);
        assert_true(got[i].score == want[i].score); /* the gallery's kernel: the same bits */
        assert_int_equal(got[i].rank, want[i].rank);
        assert_int_equal(got[i].tied, want[i].tied);
    }
}

static void test_agrees_with_exact(void **state)
{
    (void)state;
    model m;
    model_open(&m, 0);
    sm_gallery *g = clustered_gallery(&m);
    static float q[NQ * D];
    queries(q);
    sm_gallery_match want[NQ * K], got[NQ * K];
    size_t found = 0;
    assert_int_equal(sm_gallery_identify_embeddings(g, NQ, q, K, want, &found), SM_OK);
    assert_int_equal(found, K);
    for (int kind = SM_GALLERY_INDEX_HNSW; kind <= SM_GALLERY_INDEX_IVF; kind++) {
        sm_gallery_index_options o = SM_GALLERY_INDEX_OPTIONS_INIT;
        o.kind = kind;
        if (kind == SM_GALLERY_INDEX_IVF) o.effort = 90; /* of 179 lists: the 4th and 5th labels are far */
        sm_gallery_index *ix;
        assert_int_equal(sm_gallery_index_build(g, &o, &ix), SM_OK);
        sm_gallery_index_stats st = {.struct_size = sizeof st};
        assert_int_equal(sm_gallery_index_info(ix, &st), SM_OK);
        assert_int_equal(st.kind, kind);
        assert_int_equal(st.examples, N);
        assert_int_equal(st.dims_indexed, D);
        assert_int_equal(st.dims_positive, 0);
        assert_true(st.positive_weight == 0.0);
        assert_int_equal(st.candidates, 256);
        assert_true(st.bytes >= (size_t)N * D * sizeof(float));
        assert_int_equal(st.ivf_lists, kind == SM_GALLERY_INDEX_IVF ? 179 : 0);
        memset(got, 0xAB, sizeof got);
        found = 0;
        assert_int_equal(sm_gallery_index_identify_embeddings(ix, NQ, q, K, got, &found), SM_OK);
        assert_int_equal(found, K);
        assert_same_as_exact(got, want, NQ * K);
        sm_gallery_index_destroy(ix);
    }
    sm_gallery_destroy(g);
    model_close(&m);
}

/* Images in: the model embeds them, then as from feature vectors. */
static void test_images(void **state)
{
    (void)state;
    model m;
    model_open(&m, 0);
    sm_dataset *ds;
    assert_int_equal(sm_dataset_create_synthetic(20, 4, 12, 12, 7, &ds), SM_OK);
    sm_gallery *g;
    assert_int_equal(sm_gallery_create(m.sub, m.head, &g), SM_OK);
    float x[4 * 144];
    for (int c = 0; c < 20; c++) {
        for (int i = 0; i < 3; i++)
            assert_int_equal(sm_dataset_get_image(ds, (size_t)c * 4 + i, x + i * 144), SM_OK);
        char name[16];
        snprintf(name, sizeof name, "c%02d", c);
        assert_int_equal(sm_gallery_enrol(g, name, 3, x), SM_OK);
    }
    for (int c = 0; c < 4; c++)
        assert_int_equal(sm_dataset_get_image(ds, (size_t)c * 4 + 3, x + c * 144), SM_OK);
    sm_gallery_index *ix;
    assert_int_equal(sm_gallery_index_build(g, NULL, &ix), SM_OK);
    sm_gallery_match want[4 * 3], got[4 * 3];
    assert_int_equal(sm_gallery_identify(g, 4, x, 3, want, NULL), SM_OK);
    assert_int_equal(sm_gallery_index_identify(ix, 4, x, 3, got, NULL), SM_OK);
    /* 60 examples, 256 candidates: every label is named, the answer is the exact one */
    assert_same_as_exact(got, want, 4 * 3);
    sm_gallery_index_destroy(ix);
    sm_gallery_destroy(g);
    sm_dataset_destroy(ds);
    model_close(&m);
}

/* Two labels near the query: A nearer in the indexed (negative-weight) dimensions, B a little
 * farther there but far from the query in the positive-weight ones, which raise its score above
 * A's. The index proposes both by the indexed distance, and the exact scores rank B first. */
static void test_positive_weights(void **state)
{
    (void)state;
    enum { POS = 8 };
    model m;
    model_open(&m, POS);
    sm_gallery *g = clustered_gallery(&m);
    float a[D], b[D], q[D];
    for (int j = 0; j < D; j++) q[j] = 0.5f;
    for (int j = 0; j < D; j++) {
        int pos = j >= D - POS;
        a[j] = pos ? 0.5f : 0.52f;  /* indexed: 0.02 away; positive dims: 0 away */
        b[j] = pos ? 1.0f : 0.53f;  /* indexed: 0.03 away; positive dims: 0.5 away */
    }
    assert_int_equal(sm_gallery_enrol_embeddings(g, "A", 1, a), SM_OK);
    assert_int_equal(sm_gallery_enrol_embeddings(g, "B", 1, b), SM_OK);
    sm_gallery_index *ix;
    sm_gallery_index_options o = SM_GALLERY_INDEX_OPTIONS_INIT;
    o.candidates = 8;
    assert_int_equal(sm_gallery_index_build(g, &o, &ix), SM_OK);
    sm_gallery_index_stats st = {.struct_size = sizeof st};
    assert_int_equal(sm_gallery_index_info(ix, &st), SM_OK);
    assert_int_equal(st.dims_indexed, D - POS);
    assert_int_equal(st.dims_positive, POS);
    assert_true(st.positive_weight >= 0.5 * POS && st.positive_weight <= 1.0 * POS);
    sm_gallery_match want[2], got[2];
    assert_int_equal(sm_gallery_identify_embeddings(g, 1, q, 2, want, NULL), SM_OK);
    assert_string_equal(sm_gallery_label_name(g, want[0].label), "B");
    assert_string_equal(sm_gallery_label_name(g, want[1].label), "A");
    assert_int_equal(sm_gallery_index_identify_embeddings(ix, 1, q, 2, got, NULL), SM_OK);
    assert_same_as_exact(got, want, 2);
    sm_gallery_index_destroy(ix);
    sm_gallery_destroy(g);
    model_close(&m);
}

/* The same answers, bit for bit: twice on one index, on a second build, one query at a time,
 * and with more backend threads. */
static void test_deterministic(void **state)
{
    (void)state;
    model m;
    model_open(&m, 4);
    sm_gallery *g = clustered_gallery(&m);
    static float q[NQ * D];
    queries(q);
    for (int kind = SM_GALLERY_INDEX_HNSW; kind <= SM_GALLERY_INDEX_IVF; kind++) {
        sm_gallery_index_options o = SM_GALLERY_INDEX_OPTIONS_INIT;
        o.kind = kind;
        o.candidates = 16; /* few: the answers depend on the graph and the lists */
        sm_gallery_index *ix, *iy;
        assert_int_equal(sm_gallery_index_build(g, &o, &ix), SM_OK);
        assert_int_equal(sm_gallery_index_build(g, &o, &iy), SM_OK);
        static sm_gallery_match r1[NQ * K], r2[NQ * K], r3[NQ * K], r4[NQ * K];
        memset(r1, 0, sizeof r1), memset(r2, 1, sizeof r2);
        memset(r3, 2, sizeof r3), memset(r4, 3, sizeof r4);
        assert_int_equal(sm_gallery_index_identify_embeddings(ix, NQ, q, K, r1, NULL), SM_OK);
        assert_int_equal(sm_gallery_index_identify_embeddings(ix, NQ, q, K, r2, NULL), SM_OK);
        assert_memory_equal(r1, r2, sizeof r1);
        assert_int_equal(sm_gallery_index_identify_embeddings(iy, NQ, q, K, r3, NULL), SM_OK);
        assert_memory_equal(r1, r3, sizeof r1);
        sm_backend_set_threads(m.be, 2);
        for (int i = 0; i < NQ; i++)
            assert_int_equal(
                sm_gallery_index_identify_embeddings(ix, 1, q + i * D, K, r4 + i * K, NULL),
                SM_OK);
        sm_backend_set_threads(m.be, 1);
        assert_memory_equal(r1, r4, sizeof r1);
        sm_gallery_index_destroy(ix);
        sm_gallery_index_destroy(iy);
    }
    sm_gallery_destroy(g);
    model_close(&m);
}

/* One candidate per query names one label: the index is asked again until k are named. */
static void test_widening(void **state)
{
    (void)state;
    model m;
    model_open(&m, 0);
    sm_gallery *g = clustered_gallery(&m);
    static float q[NQ * D];
    queries(q);
    for (int kind = SM_GALLERY_INDEX_HNSW; kind <= SM_GALLERY_INDEX_IVF; kind++) {
        sm_gallery_index_options o = SM_GALLERY_INDEX_OPTIONS_INIT;
        o.kind = kind;
        o.candidates = 1;
        sm_gallery_index *ix;
        assert_int_equal(sm_gallery_index_build(g, &o, &ix), SM_OK);
        sm_gallery_match r[NQ * K];
        size_t found = 0;
        assert_int_equal(sm_gallery_index_identify_embeddings(ix, NQ, q, K, r, &found), SM_OK);
        assert_int_equal(found, K);
        for (int i = 0; i < NQ * K; i++) assert_true(r[i].label < LABELS);
        /* more than the gallery has: every label, exactly */
        static sm_gallery_match all[LABELS + 5], want[LABELS + 5];
        assert_int_equal(sm_gallery_index_identify_embeddings(ix, 1, q, LABELS + 5, all, &found),
                         SM_OK);
        assert_int_equal(found, LABELS);
        assert_int_equal(sm_gallery_identify_embeddings(g, 1, q, LABELS + 5, want, NULL), SM_OK);
        /* every label with its exact score (the order of labels whose scores differ in the
         * last bits may differ: the two sum the logits in different orders) */
        static double score_of[LABELS];
        for (int i = 0; i < LABELS; i++) score_of[want[i].label] = want[i].score;
        for (int i = 0; i < LABELS; i++)
            assert_true(fabs(all[i].score - score_of[all[i].label]) < 1e-6);
        assert_int_equal(all[0].label, want[0].label);
        sm_gallery_index_destroy(ix);
    }
    sm_gallery_destroy(g);
    model_close(&m);
}

static void test_errors(void **state)
{
    (void)state;
    model m;
    model_open(&m, 0);
    sm_gallery *g;
    sm_gallery_index *ix = NULL;
    assert_int_equal(sm_gallery_create(m.sub, m.head, &g), SM_OK);
    /* empty */
    assert_int_equal(sm_gallery_index_build(g, NULL, &ix), SM_ERR_STATE);
    assert_null(ix);
    float f[3 * D];
    for (int i = 0; i < 3 * D; i++) f[i] = urand();
    assert_int_equal(sm_gallery_enrol_embeddings(g, "x", 2, f), SM_OK);
    assert_int_equal(sm_gallery_enrol_embeddings(g, "y", 1, f + 2 * D), SM_OK);
    assert_int_equal(sm_gallery_index_build(NULL, NULL, &ix), SM_ERR_INVALID_ARG);
    assert_int_equal(sm_gallery_index_build(g, NULL, NULL), SM_ERR_INVALID_ARG);
    /* bad options, each alone */
    for (int c = 0; c < 9; c++) {
        sm_gallery_index_options o = SM_GALLERY_INDEX_OPTIONS_INIT;
        switch (c) {
        case 0: o.struct_size = 0; break;
        case 1: o.kind = 7; break;
        case 2: o.reserved0 = 1; break;
        case 3: o.hnsw_m = 1; break;
        case 4: o.candidates = 65537; break;
        case 5: o.kind = SM_GALLERY_INDEX_IVF, o.ivf_lists = 4; break; /* 3 examples */
        case 6: o.kind = SM_GALLERY_INDEX_IVF, o.hnsw_m = 16; break;
        case 7: o.ivf_lists = 2; break; /* HNSW */
        case 8: o.kind = SM_GALLERY_INDEX_IVF, o.ivf_lists = 2, o.effort = 3; break;
        }
        assert_int_equal(sm_gallery_index_build(g, &o, &ix), SM_ERR_INVALID_ARG);
        assert_null(ix);
    }
    /* an older caller's struct: the fields past its size are 0, the defaults */
    sm_gallery_index_options old = SM_GALLERY_INDEX_OPTIONS_INIT;
    old.struct_size = offsetof(sm_gallery_index_options, candidates);
    old.candidates = 65537; /* past its size: not read */
    assert_int_equal(sm_gallery_index_build(g, &old, &ix), SM_OK);
    sm_gallery_index_stats st = {.struct_size = offsetof(sm_gallery_index_stats, effort)};
    st.effort = 77;
    assert_int_equal(sm_gallery_index_info(ix, &st), SM_OK);
    assert_int_equal(st.candidates, 256);
    assert_int_equal(st.effort, 77); /* past its size: not written */
    /* search parameters after the build */
    assert_int_equal(sm_gallery_index_set_search(ix, 8, 4), SM_OK); /* efSearch raised to 8 */
    st.struct_size = sizeof st;
    assert_int_equal(sm_gallery_index_info(ix, &st), SM_OK);
    assert_true(st.candidates == 8 && st.effort == 8);
    assert_int_equal(sm_gallery_index_set_search(ix, 0, 0), SM_OK);
    assert_int_equal(sm_gallery_index_info(ix, &st), SM_OK);
    assert_true(st.candidates == 256 && st.effort == 512);
    assert_int_equal(sm_gallery_index_set_search(ix, 65537, 0), SM_ERR_INVALID_ARG);
    assert_int_equal(sm_gallery_index_set_search(ix, 1, 65537), SM_ERR_INVALID_ARG);
    assert_int_equal(sm_gallery_index_set_search(NULL, 1, 1), SM_ERR_INVALID_ARG);
    st.struct_size = 0;
    assert_int_equal(sm_gallery_index_info(ix, &st), SM_ERR_INVALID_ARG);
    assert_int_equal(sm_gallery_index_info(NULL, &st), SM_ERR_INVALID_ARG);

    sm_gallery_match r[2];
    assert_int_equal(sm_gallery_index_identify_embeddings(NULL, 1, f, 1, r, NULL),
                     SM_ERR_INVALID_ARG);
    assert_int_equal(sm_gallery_index_identify_embeddings(ix, 1, f, 0, r, NULL),
                     SM_ERR_INVALID_ARG);
    assert_int_equal(sm_gallery_index_identify_embeddings(ix, 0, f, 1, r, NULL),
                     SM_ERR_INVALID_ARG);
    float bad[D];
    memcpy(bad, f, sizeof bad);
    bad[3] = NAN;
    assert_int_equal(sm_gallery_index_identify_embeddings(ix, 1, bad, 1, r, NULL),
                     SM_ERR_INVALID_ARG);
    bad[3] = 1.5f;
    assert_int_equal(sm_gallery_index_identify_embeddings(ix, 1, bad, 1, r, NULL),
                     SM_ERR_INVALID_ARG);
    float img[144];
    for (int i = 0; i < 144; i++) img[i] = 0.5f;
    img[7] = -1.0f;
    assert_int_equal(sm_gallery_index_identify(ix, 1, img, 1, r, NULL), SM_ERR_INVALID_ARG);
    size_t found = 0;
    assert_int_equal(sm_gallery_index_identify_embeddings(ix, 1, f, 2, r, &found), SM_OK);
    assert_int_equal(found, 2);

    /* stale: an enrolment, or a removal, since the build */
    assert_int_equal(sm_gallery_enrol_embeddings(g, "z", 1, f), SM_OK);
    assert_int_equal(sm_gallery_index_identify_embeddings(ix, 1, f, 1, r, NULL), SM_ERR_STATE);
    assert_non_null(strstr(sm_last_error(), "build it again"));
    sm_gallery_index_destroy(ix);
    assert_int_equal(sm_gallery_index_build(g, NULL, &ix), SM_OK);
    assert_int_equal(sm_gallery_index_identify_embeddings(ix, 1, f, 1, r, NULL), SM_OK);
    assert_int_equal(sm_gallery_remove(g, "nobody", NULL), SM_OK); /* no change */
    assert_int_equal(sm_gallery_index_identify_embeddings(ix, 1, f, 1, r, NULL), SM_OK);
    assert_int_equal(sm_gallery_remove(g, "z", NULL), SM_OK);
    assert_int_equal(sm_gallery_index_identify_embeddings(ix, 1, f, 1, r, NULL), SM_ERR_STATE);
    sm_gallery_index_destroy(ix);
    sm_gallery_index_destroy(NULL);

    /* a head with no negative weight, and one that is not finite */
    float p[D + 1];
    for (int j = 0; j <= D; j++) p[j] = j % 2 ? 0.5f : 0.0f;
    assert_int_equal(sm__head_write_params(m.head, p), SM_OK);
    ix = NULL;
    assert_int_equal(sm_gallery_index_build(g, NULL, &ix), SM_ERR_UNSUPPORTED);
    assert_null(ix);
    p[2] = -1.0f;
    p[5] = INFINITY;
    assert_int_equal(sm__head_write_params(m.head, p), SM_OK);
    assert_int_equal(sm_gallery_index_build(g, NULL, &ix), SM_ERR_NUMERIC);
    assert_null(ix);
    sm_gallery_destroy(g);
    model_close(&m);
}

/* Every allocation of the library failing in turn, through a build, a query and a query that
 * widens: each call says SM_ERR_NOMEM or succeeds, and nothing of the library's leaks. */
static void test_alloc_fail(void **state)
{
    (void)state;
    model m;
    model_open(&m, 4);
    sm_gallery *g;
    assert_int_equal(sm_gallery_create(m.sub, m.head, &g), SM_OK);
    float f[60 * D];
    for (int i = 0; i < 60 * D; i++) f[i] = urand();
    for (int l = 0; l < 12; l++) {
        char name[16];
        snprintf(name, sizeof name, "l%02d", l);
        assert_int_equal(sm_gallery_enrol_embeddings(g, name, 5, f + l * 5 * D), SM_OK);
    }
    for (int kind = SM_GALLERY_INDEX_HNSW; kind <= SM_GALLERY_INDEX_IVF; kind++) {
        sm_gallery_index_options o = SM_GALLERY_INDEX_OPTIONS_INIT;
        o.kind = kind;
        o.candidates = 2; /* k 4 needs more: the query widens */
        for (long n = 0;; n++) {
            const long live = sm__alloc_live();
            sm_gallery_index *ix = NULL;
            sm_gallery_match r[2 * 4];
            sm__alloc_fail_after(n);
            sm_status st = sm_gallery_index_build(g, &o, &ix), st2 = SM_ERR_NOMEM;
            if (st == SM_OK) st2 = sm_gallery_index_identify_embeddings(ix, 2, f, 4, r, NULL);
            sm__alloc_fail_after(-1);
            assert_true(st == SM_OK || st == SM_ERR_NOMEM);
            assert_true(st2 == SM_OK || st2 == SM_ERR_NOMEM);
            if (st != SM_OK) assert_null(ix);
            sm_gallery_index_destroy(ix);
            assert_int_equal(sm__alloc_live(), live);
            if (st2 == SM_OK) break;
            assert_true(n < 1000);
        }
    }
    sm_gallery_destroy(g);
    model_close(&m);
}

/* SIAMESE_BACKEND_DIR points where no module is (tests/meson.build): the index is refused as a
 * missing backend module is, and the exact search goes on. */
static void test_missing_module(void **state)
{
    (void)state;
    model m;
    model_open(&m, 0);
    sm_gallery *g;
    assert_int_equal(sm_gallery_create(m.sub, m.head, &g), SM_OK);
    float f[D];
    for (int i = 0; i < D; i++) f[i] = urand();
    assert_int_equal(sm_gallery_enrol_embeddings(g, "x", 1, f), SM_OK);
    assert_int_equal(sm_gallery_index_available(), SM_ERR_BACKEND_UNAVAILABLE);
    assert_non_null(strstr(sm_last_error(), "index-faiss"));
    sm_gallery_index *ix = NULL;
    assert_int_equal(sm_gallery_index_build(g, NULL, &ix), SM_ERR_BACKEND_UNAVAILABLE);
    assert_null(ix);
    assert_non_null(strstr(sm_last_error(), "-Dindex-faiss"));
    sm_gallery_match r[1];
    assert_int_equal(sm_gallery_identify_embeddings(g, 1, f, 1, r, NULL), SM_OK);
    sm_gallery_destroy(g);
    model_close(&m);
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--missing") == 0) {
        const struct CMUnitTest missing[] = {cmocka_unit_test(test_missing_module)};
        return cmocka_run_group_tests(missing, NULL, NULL);
    }
    if (sm_gallery_index_available() != SM_OK) {
        printf("SKIP: no index module here (%s); the index tests need a build with "
               "-Dindex-faiss (Debian libfaiss-dev)\n",
               sm_last_error());
        return 77;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_agrees_with_exact), cmocka_unit_test(test_images),
        cmocka_unit_test(test_positive_weights),  cmocka_unit_test(test_deterministic),
        cmocka_unit_test(test_widening),          cmocka_unit_test(test_errors),
        cmocka_unit_test(test_alloc_fail),
        cmocka_unit_test(test_storage_types_and_mapped_files),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
