/* SPDX-License-Identifier: MIT */
/* The 0.3 training-recipe options (issue 11): negatives within the alphabet and alphabet-balanced
 * draws (statistical checks of the sampler's draws with fixed seeds), P x K batches (the
 * gradient equals the pair path's on the explicit list of all pairs, the loss goes down, bad
 * settings are refused with a status, never a crash). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/dataset.h"
#include "train/training.h"
#include "data/sampler.h"
#include "siamese/siamese.h"

#define ARCH "1x12x12:conv4k3,relu,pool2,conv4k3,relu,flatten,fc8"

/* ------------------------------------------------------------------ sampler */

/* Unequal alphabets: A has 8 classes, B 4, C 2, D 1 (alone in its alphabet); 3 images each
 * (D's class 5). */
static const int alpha_classes[4] = {8, 4, 2, 1};

static sm_dataset *unequal_dataset(void)
{
    sm_dataset *ds = NULL;
    assert_int_equal(sm_dataset_create(4, 4, &ds), SM_OK);
    float px[16];
    for (int a = 0; a < 4; a++)
        for (int c = 0; c < alpha_classes[a]; c++) {
            char label[32];
            snprintf(label, sizeof label, "%c/char%02d", 'A' + a, c);
            for (int i = 0; i < (a == 3 ? 5 : 3); i++) {
                for (int k = 0; k < 16; k++) px[k] = (float)((a * 31 + c * 7 + i + k) % 256) / 255;
                assert_int_equal(sm_dataset_add_image(ds, label, px), SM_OK);
            }
        }
    assert_int_equal(sm_dataset_num_alphabets(ds), 4);
    assert_int_equal(sm_dataset_num_classes(ds), 15);
    return ds;
}

static size_t alphabet_of(const sm_dataset *ds, size_t image)
{
    return ds->classes[ds->image_class[image]].alphabet;
}

/* |observed - expected| within 4.5 binomial standard deviations (and a hair for p ~ 0, 1) */
static void assert_binomial(size_t hits, size_t n, double p)
{
    double obs = (double)hits / (double)n;
    double sd = sqrt(p * (1 - p) / (double)n);
    if (fabs(obs - p) > 4.5 * sd + 1e-9)
        fail_msg("observed %.4f over %zu, expected %.4f", obs, n, p);
}

typedef struct draws {
    size_t n;
    float *l, *r, *lab;
    size_t *li, *ri;
} draws;

static draws draw(sm_sampler *s, size_t n)
{
    draws d = {n,
               malloc(n * 16 * sizeof(float)),
               malloc(n * 16 * sizeof(float)),
               malloc(n * sizeof(float)),
               malloc(n * sizeof(size_t)),
               malloc(n * sizeof(size_t))};
    assert_int_equal(sm_sampler_next(s, n, d.l, d.r, d.lab, d.li, d.ri), SM_OK);
    return d;
}

static void draws_free(draws *d) { free(d->l), free(d->r), free(d->lab), free(d->li), free(d->ri); }

static void test_defaults_draw_as_before(void **state)
{
    (void)state;
    sm_dataset *ds = unequal_dataset();
    sm_sampler *a, *b;
    assert_int_equal(sm_sampler_create(ds, 5, &a), SM_OK);
    assert_int_equal(sm_sampler_create(ds, 5, &b), SM_OK);
    sm__sampler_set_options(b, 0.0, false); /* explicitly off */
    draws x = draw(a, 500), y = draw(b, 500);
    assert_memory_equal(x.li, y.li, 500 * sizeof(size_t));
    assert_memory_equal(x.ri, y.ri, 500 * sizeof(size_t));
    assert_memory_equal(x.lab, y.lab, 500 * sizeof(float));
    draws_free(&x), draws_free(&y);
    sm_sampler_destroy(a), sm_sampler_destroy(b);
    sm_dataset_destroy(ds);
}

static void test_neg_same_alphabet(void **state)
{
    (void)state;
    sm_dataset *ds = unequal_dataset();
    const size_t C = 15;
    const double fs[] = {0.0, 0.3, 0.7, 1.0};
    for (size_t fi = 0; fi < 4; fi++) {
        double f = fs[fi];
        /* P(second class shares the first's alphabet), first class uniform */
        double expect = 0;
        for (int a = 0; a < 4; a++) {
            double na = alpha_classes[a];
            double p_same = na >= 2 ? f + (1 - f) * (na - 1) / (double)(C - 1)
                                    : 0.0; /* D: falls back, and no other class shares it */
            expect += na / (double)C * p_same;
        }
        sm_sampler *s;
        assert_int_equal(sm_sampler_create(ds, 42 + fi, &s), SM_OK);
        sm__sampler_set_options(s, f, false);
        draws d = draw(s, 40000);
        size_t neg = 0, same = 0;
        for (size_t i = 0; i < d.n; i++) {
            size_t ca = ds->image_class[d.li[i]], cb = ds->image_class[d.ri[i]];
            if (d.lab[i] == 1.0f) {
                assert_int_equal(ca, cb);
                continue;
            }
            assert_int_not_equal(ca, cb);
            neg++;
            int sa = alphabet_of(ds, d.li[i]) == alphabet_of(ds, d.ri[i]);
            same += (size_t)sa;
            /* f = 1: every negative whose first class has company is within its alphabet */
            if (f == 1.0 && alpha_classes[alphabet_of(ds, d.li[i])] >= 2) assert_true(sa);
        }
        assert_true(neg > 15000);
        assert_binomial(same, neg, expect);
        draws_free(&d);
        sm_sampler_destroy(s);
    }
    sm_dataset_destroy(ds);
}

static void test_alphabet_balanced(void **state)
{
    (void)state;
    sm_dataset *ds = unequal_dataset();
    for (int balanced = 0; balanced <= 1; balanced++) {
        sm_sampler *s;
        assert_int_equal(sm_sampler_create(ds, 7, &s), SM_OK);
        sm__sampler_set_options(s, 0.0, balanced);
        draws d = draw(s, 40000);
        size_t pos_a[4] = {0}, neg_a[4] = {0}, neg_b[4] = {0}, n_pos = 0, n_neg = 0;
        for (size_t i = 0; i < d.n; i++) {
            size_t a = alphabet_of(ds, d.li[i]);
            if (d.lab[i] == 1.0f) {
                pos_a[a]++, n_pos++;
            } else {
                neg_a[a]++, neg_b[alphabet_of(ds, d.ri[i])]++, n_neg++;
                assert_int_not_equal(ds->image_class[d.li[i]], ds->image_class[d.ri[i]]);
            }
        }
        for (int a = 0; a < 4; a++) {
            double p = balanced ? 0.25 : alpha_classes[a] / 15.0;
            assert_binomial(pos_a[a], n_pos, p);
            assert_binomial(neg_a[a], n_neg, p);
        }
        if (balanced) {
            /* second class: alphabet uniform, redrawn when it is the first class itself */
            double p2[4] = {0}, tot = 0;
            for (int a = 0; a < 4; a++) /* first class in alphabet a with prob 1/4 * 1/n_a */
                for (int c = 0; c < alpha_classes[a]; c++)
                    for (int b = 0; b < 4; b++) {
                        /* P(second in b | first = (a, c)) = weight of b's classes but c, over
                         * all weights but c's: weights 1/(4 n_b) per class */
                        double wc = 1.0 / (4.0 * alpha_classes[a]);
                        double wb = b == a ? 0.25 - wc : 0.25;
                        double pr = 0.25 / alpha_classes[a] * wb / (1.0 - wc);
                        p2[b] += pr, tot += pr;
                    }
            assert_true(fabs(tot - 1.0) < 1e-9);
            for (int b = 0; b < 4; b++) assert_binomial(neg_b[b], n_neg, p2[b]);
        }
        draws_free(&d);
        sm_sampler_destroy(s);
    }
    sm_dataset_destroy(ds);
}

/* Negatives within the alphabet in P x K form: with probability f a batch's P classes all come
 * from one alphabet, uniform among those with >= P eligible classes; none: the usual draw. */
static size_t single_alphabet_batches(sm_sampler *s, const sm_dataset *ds, size_t p, int rounds,
                                      size_t alpha_count[4])
{
    enum { K = 3 };
    size_t idx[16 * K], single = 0;
    for (int r = 0; r < rounds; r++) {
        assert_int_equal(sm__sampler_next_pk(s, p, K, NULL, idx), SM_OK);
        size_t a0 = alphabet_of(ds, idx[0]), same = 1;
        for (size_t q = 0; q < p; q++) {
            if (alphabet_of(ds, idx[q * K]) != a0) same = 0;
            for (size_t q2 = 0; q2 < q; q2++)
                assert_int_not_equal(ds->image_class[idx[q2 * K]], ds->image_class[idx[q * K]]);
        }
        single += same;
        if (same && alpha_count) alpha_count[a0]++;
    }
    return single;
}

static void test_pk_same_alphabet_batches(void **state)
{
    (void)state;
    sm_dataset *ds = unequal_dataset(); /* alphabets of 8, 4, 2 and 1 classes */
    sm_sampler *s;
    assert_int_equal(sm_sampler_create(ds, 5, &s), SM_OK);
    enum { ROUNDS = 4000 };
    /* f = 1, P = 4: every batch from A (8 classes) or B (4), half each */
    size_t alpha[4] = {0};
    sm__sampler_set_options(s, 1.0, false);
    assert_int_equal(single_alphabet_batches(s, ds, 4, ROUNDS, alpha), ROUNDS);
    assert_binomial(alpha[0], ROUNDS, 0.5);
    assert_int_equal(alpha[0] + alpha[1], ROUNDS);
    /* P = 5: only A has enough classes */
    memset(alpha, 0, sizeof alpha);
    assert_int_equal(single_alphabet_batches(s, ds, 5, ROUNDS, alpha), ROUNDS);
    assert_int_equal(alpha[0], ROUNDS);
    /* P = 9: no alphabet has 9 classes: the usual draw (9 of 15 classes span alphabets) */
    assert_int_equal(single_alphabet_batches(s, ds, 9, 200, NULL), 0);
    /* f = 0.5, P = 4: half the batches forced, the rest single by chance (71 of C(15,4)) */
    sm__sampler_set_options(s, 0.5, false);
    assert_binomial(single_alphabet_batches(s, ds, 4, ROUNDS, NULL), ROUNDS,
                    0.5 + 0.5 * 71.0 / 1365.0);
    sm_sampler_destroy(s);
    sm_dataset_destroy(ds);
}

static void test_pk_sampler(void **state)
{
    (void)state;
    sm_dataset *ds = unequal_dataset();
    for (int balanced = 0; balanced <= 1; balanced++) {
        sm_sampler *s;
        assert_int_equal(sm_sampler_create(ds, 9, &s), SM_OK);
        sm__sampler_set_options(s, 0.0, balanced);
        enum { P = 4, K = 3, ROUNDS = 6000 };
        size_t idx[P * K], first_alpha[4] = {0}, class_count[15] = {0};
        for (int r = 0; r < ROUNDS; r++) {
            assert_int_equal(sm__sampler_next_pk(s, P, K, NULL, idx), SM_OK);
            for (int q = 0; q < P; q++) {
                size_t c = ds->image_class[idx[q * K]];
                class_count[c]++;
                for (int i = 0; i < K; i++) {
                    assert_int_equal(ds->image_class[idx[q * K + i]], c); /* one class */
                    for (int j = 0; j < i; j++)
                        assert_int_not_equal(idx[q * K + i], idx[q * K + j]);
                }
                for (int q2 = 0; q2 < q; q2++)
                    assert_int_not_equal(ds->image_class[idx[q2 * K]], c);
            }
            first_alpha[alphabet_of(ds, idx[0])]++;
        }
        /* every class has >= 3 images: uniform classes give each P/15 of the slots */
        if (!balanced)
            for (int c = 0; c < 15; c++) assert_binomial(class_count[c], ROUNDS, P / 15.0);
        else
            for (int a = 0; a < 4; a++) assert_binomial(first_alpha[a], ROUNDS, 0.25);
        /* what the dataset cannot give: SM_ERR_DATASET, and the RNG does not move */
        uint64_t before[4], after[4];
        sm__sampler_get_state(s, before);
        assert_int_equal(sm__sampler_next_pk(s, 2, 6, NULL, idx), SM_ERR_DATASET); /* K > class */
        assert_non_null(strstr(sm_last_error(), "K = 6"));
        assert_int_equal(sm__sampler_next_pk(s, 2, 4, NULL, idx),
                         SM_ERR_DATASET); /* 1 class of 4+ */
        assert_non_null(strstr(sm_last_error(), "such classes"));
        assert_int_equal(sm__sampler_next_pk(s, 16, 3, NULL, idx),
                         SM_ERR_DATASET); /* P > classes */
        size_t *big = malloc(100 * sizeof *big);
        assert_int_equal(sm__sampler_next_pk(s, 25, 2, NULL, big), SM_ERR_DATASET); /* > images */
        free(big);
        sm__sampler_get_state(s, after);
        assert_memory_equal(before, after, sizeof before);
        sm_sampler_destroy(s);
    }
    sm_dataset_destroy(ds);
}

/* ------------------------------------------------------------------ P x K steps */

typedef struct model {
    sm_backend *be;
    sm_subnet *s;
    sm_head *h;
    sm_adam *a;
    sm_trainer *t;
    sm_dataset *ds;
} model;

static void model_make(model *m, int classes, int per_class, uint64_t seed)
{
    memset(m, 0, sizeof *m);
    assert_int_equal(sm_backend_create(SM_BACKEND_CPU, &m->be), SM_OK);
    sm_backend_set_threads(m->be, 1);
    assert_int_equal(sm_dataset_create_synthetic(classes, per_class, 12, 12, 5, &m->ds), SM_OK);
    sm_arch *arch;
    assert_int_equal(sm_arch_from_string(ARCH, &arch), SM_OK);
    assert_int_equal(sm_subnet_create(m->be, arch, seed, &m->s), SM_OK);
    sm_arch_destroy(arch);
    assert_int_equal(sm_head_create(m->be, sm_subnet_feature_dim(m->s), seed + 1, &m->h), SM_OK);
    assert_int_equal(sm_adam_create(m->s, m->h, &m->a), SM_OK);
    assert_int_equal(sm_trainer_create(m->s, m->h, m->a, m->ds, seed, &m->t), SM_OK);
}

/* The reference's N(0, 0.01) start gives nearly equal features to every image on this tiny
 * net (and sits on the ln 2 plateau for long): weights (not biases) 30 times larger (std 0.3). */
static void widen_subnet(model *m)
{
    float *w = malloc(m->s->n_params * sizeof *w);
    assert_int_equal(sm__subnet_read_params(m->s, w), SM_OK);
    for (size_t l = 0; l < m->s->arch.n_layers; l++) { /* weights only, not the biases */
        const sm__layer *ly = &m->s->arch.layers[l];
        for (size_t i = 0; i < ly->n_w; i++) w[ly->w_off + i] *= 30.0f;
    }
    assert_int_equal(sm__subnet_write_params(m->s, w), SM_OK);
    free(w);
}

static void model_free(model *m)
{
    sm_trainer_destroy(m->t);
    sm_adam_destroy(m->a);
    sm_head_destroy(m->h);
    sm_subnet_destroy(m->s);
    sm_dataset_destroy(m->ds);
    sm_backend_destroy(m->be);
}

static float *grads_of(const model *m, size_t *n)
{
    *n = m->s->n_params + m->h->n_params;
    float *g = malloc(*n * sizeof *g);
    assert_int_equal(sm__subnet_read_grads(m->s, g), SM_OK);
    assert_int_equal(sm__head_read_grads(m->h, g + m->s->n_params), SM_OK);
    return g;
}

static void assert_close(const float *a, const float *b, size_t n)
{
    double scale = 0;
    for (size_t i = 0; i < n; i++) scale = fmax(scale, fabs((double)b[i]));
    assert_true(scale > 0);
    for (size_t i = 0; i < n; i++)
        if (fabs((double)a[i] - (double)b[i]) > 2e-5 * scale + 1e-7)
            fail_msg("gradient %zu: P x K %.9g, pairs %.9g (scale %g)", i, (double)a[i],
                     (double)b[i], scale);
}

/* The P x K gradient against sm__trainer_compute_grads (the pair path) on the explicit list of
 * every pair of the same images: unweighted = the mean over all pairs; balanced = half the
 * mean over the similar pairs plus half the mean over the dissimilar ones (two pair-path runs).
 * Micro-batch 4 with no one-pass budget (9 images in chunks of 8: features recomputed, head
 * chunks split across the similar/dissimilar boundary), micro-batch 4 within the budget (the
 * batch's own buffers: each image once forward, once backward) and 32 (the trainer's buffers
 * hold the batch). */
static void test_pk_gradient_equals_pairs(void **state)
{
    (void)state;
    enum { P = 3, K = 3, N = P * K, IN = 144 };
    const size_t n_pairs = N * (N - 1) / 2, n_sim = P * K * (K - 1) / 2;
    const int micros[] = {4, 4, 32};
    const size_t budgets[] = {0, SM__PK_ONE_PASS_BYTES, SM__PK_ONE_PASS_BYTES};
    for (int mi = 0; mi < 3; mi++) {
        model m;
        model_make(&m, 6, 4, 11);
        sm__pk_one_pass_bytes = budgets[mi];
        assert_int_equal(sm_trainer_set_param(m.t, SM_TRAINER_MICRO_BATCH, micros[mi]), SM_OK);
        float *img = malloc(N * IN * sizeof *img);
        assert_int_equal(sm__sampler_next_pk(m.t->sampler, P, K, img, NULL), SM_OK);
        /* similar pairs first, then dissimilar: left, right, labels */
        float *l = malloc(n_pairs * IN * sizeof *l), *r = malloc(n_pairs * IN * sizeof *r);
        float *lab = malloc(n_pairs * sizeof *lab);
        size_t q = 0;
        for (int sim = 1; sim >= 0; sim--)
            for (size_t i = 0; i < N; i++)
                for (size_t j = i + 1; j < N; j++)
                    if ((i / K == j / K) == sim) {
                        memcpy(l + q * IN, img + i * IN, IN * sizeof *l);
                        memcpy(r + q * IN, img + j * IN, IN * sizeof *r);
                        lab[q++] = (float)sim;
                    }
        assert_int_equal(q, n_pairs);

        size_t n;
        float loss_pk, loss_pairs, loss_sim, loss_dis;
        assert_int_equal(sm__trainer_compute_grads_pk(m.t, P, K, img, SM_PK_LOSS_BCE, &loss_pk),
                         SM_OK);
        float *g_pk = grads_of(&m, &n);
        assert_int_equal(sm__trainer_compute_grads(m.t, n_pairs, l, r, lab, &loss_pairs), SM_OK);
        float *g_pairs = grads_of(&m, &n);
        assert_true(fabsf(loss_pk - loss_pairs) < 1e-5f);
        assert_close(g_pk, g_pairs, n);

        assert_int_equal(
            sm__trainer_compute_grads_pk(m.t, P, K, img, SM_PK_LOSS_BCE_BALANCED, &loss_pk), SM_OK);
        float *g_bal = grads_of(&m, &n);
        assert_int_equal(sm__trainer_compute_grads(m.t, n_sim, l, r, lab, &loss_sim), SM_OK);
        float *g_sim = grads_of(&m, &n);
        assert_int_equal(sm__trainer_compute_grads(m.t, n_pairs - n_sim, l + n_sim * IN,
                                                   r + n_sim * IN, lab + n_sim, &loss_dis),
                         SM_OK);
        float *g_dis = grads_of(&m, &n);
        for (size_t i = 0; i < n; i++) g_sim[i] = 0.5f * g_sim[i] + 0.5f * g_dis[i];
        assert_true(fabsf(loss_pk - 0.5f * (loss_sim + loss_dis)) < 1e-5f);
        assert_close(g_bal, g_sim, n);
        /* and the two modes differ (the weighting does something) */
        double diff = 0;
        for (size_t i = 0; i < n; i++) diff = fmax(diff, fabs((double)g_bal[i] - g_pk[i]));
        assert_true(diff > 1e-4);

        /* which buffers ran it */
        assert_true(mi == 1 ? m.t->pk_buf.ws.cap >= N : m.t->pk_buf.ws.cap == 0);
        free(g_pk), free(g_pairs), free(g_bal), free(g_sim), free(g_dis);
        free(img), free(l), free(r), free(lab);
        model_free(&m);
    }
    sm__pk_one_pass_bytes = SM__PK_ONE_PASS_BYTES;
}

/* The softmax mode against a double-precision reference computed on the host from the same
 * features (the trainer's host copy of them) and head parameters: the loss and the head's
 * gradient (whose bias part must vanish: a shift of every logit changes no softmax). The rest
 * of the way back (dL/dfeature to the subnet) is the code the BCE modes share, checked above. */
static void test_pk_softmax_reference(void **state)
{
    (void)state;
    enum { P = 3, K = 3, N = P * K, IN = 144 };
    model m;
    model_make(&m, 6, 4, 13);
    widen_subnet(&m);
    assert_int_equal(sm_trainer_set_param(m.t, SM_TRAINER_MICRO_BATCH, 5), SM_OK);
    float *img = malloc(N * IN * sizeof *img);
    assert_int_equal(sm__sampler_next_pk(m.t->sampler, P, K, img, NULL), SM_OK);
    /* larger head weights than the N(0, 0.01) start, so the softmax is not flat */
    const size_t d = m.h->dim;
    float *hp = malloc((d + 1) * sizeof *hp);
    for (size_t e = 0; e < d; e++) hp[e] = (float)((int)(e * 37 % 11) - 5) * 0.7f;
    hp[d] = 0.25f;
    assert_int_equal(sm__head_write_params(m.h, hp), SM_OK);
    float loss;
    assert_int_equal(sm__trainer_compute_grads_pk(m.t, P, K, img, SM_PK_LOSS_SOFTMAX, &loss),
                     SM_OK);
    size_t n;
    float *g = grads_of(&m, &n);
    const float *f = m.t->pk_feat;
    double z[N][N], ref_loss = 0, gw[64] = {0}, gb = 0;
    assert_true(d <= 64);
    for (int i = 0; i < N; i++)
        for (int j = 0; j < N; j++) {
            z[i][j] = hp[d];
            for (size_t e = 0; e < d; e++)
                z[i][j] += hp[e] * fabs((double)f[i * d + e] - f[j * d + e]);
        }
    for (int i = 0; i < N; i++) {
        double mx = -INFINITY, sum = 0;
        for (int j = 0; j < N; j++)
            if (j != i) mx = fmax(mx, z[i][j]);
        for (int j = 0; j < N; j++)
            if (j != i) sum += exp(z[i][j] - mx);
        for (int j = 0; j < N; j++) {
            if (j == i) continue;
            double ls = z[i][j] - mx - log(sum), t = (i / K == j / K) ? 1.0 / (K - 1) : 0.0;
            ref_loss -= t * ls / N;
            double dz = (exp(ls) - t) / N; /* query i's part of dL/dz_ij */
            gb += dz;
            for (size_t e = 0; e < d; e++) gw[e] += dz * fabs((double)f[i * d + e] - f[j * d + e]);
        }
    }
    assert_true(ref_loss > 0.1);
    if (fabs(loss - ref_loss) > 1e-5 * ref_loss)
        fail_msg("loss %.9g, reference %.9g", loss, ref_loss);
    const float *gh = g + m.s->n_params;
    double scale = 0;
    for (size_t e = 0; e < d; e++) scale = fmax(scale, fabs(gw[e]));
    if (!(scale > 1e-4)) fail_msg("reference head gradient too small: %g", scale);
    for (size_t e = 0; e < d; e++)
        if (fabs(gh[e] - gw[e]) > 1e-4 * scale)
            fail_msg("dw[%zu] %.9g, reference %.9g", e, gh[e], gw[e]);
    assert_true(fabs(gb) < 1e-12);
    assert_true(fabs(gh[d]) < 1e-5 * scale);
    /* and the subnet got a gradient */
    double gs = 0;
    for (size_t i = 0; i < m.s->n_params; i++) gs = fmax(gs, fabs(g[i]));
    assert_true(gs > 0);
    free(g), free(hp), free(img);
    model_free(&m);
}

static void test_pk_loss_decreases(void **state)
{
    (void)state;
    for (int mode = 0; mode <= SM_PK_LOSS_SOFTMAX; mode++) {
        model m;
        model_make(&m, 10, 6, 13 /* seed 3: every relu dead, features all equal */);
        assert_int_equal(sm_adam_set(m.a, SM_ADAM_LEARNING_RATE, 1e-2), SM_OK);
        assert_int_equal(sm_trainer_set_param(m.t, SM_TRAINER_PK_LOSS, mode), SM_OK);
        widen_subnet(&m);
        assert_int_equal(sm_trainer_set_param(m.t, SM_TRAINER_PK_CLASSES, 5), SM_OK);
        assert_int_equal(sm_trainer_set_param(m.t, SM_TRAINER_PK_IMAGES, 3), SM_OK);
        enum { STEPS = 150 };
        double first = 0, last = 0;
        for (int i = 0; i < STEPS; i++) {
            float loss;
            assert_int_equal(sm_train_step(m.t, &loss), SM_OK);
            assert_true(isfinite(loss));
            if (i < 10) first += loss;
            if (i >= STEPS - 10) last += loss;
        }
        assert_int_equal(sm_trainer_iteration(m.t), STEPS);
        printf("# P x K loss mode %d: mean of the first 10 steps %.4f, of the last 10 %.4f\n", mode,
               first / 10, last / 10);
        if (!(last < 0.7 * first)) fail_msg("loss %g -> %g", first / 10, last / 10);
        model_free(&m);
    }
}

/* Augmentation applies to P x K images too: the same seed without it gives another step. */
static void test_pk_augment(void **state)
{
    (void)state;
    float *params[2];
    size_t np = 0;
    for (int aug = 0; aug <= 1; aug++) {
        model m;
        model_make(&m, 6, 4, 5);
        assert_int_equal(sm_trainer_set_param(m.t, SM_TRAINER_PK_CLASSES, 3), SM_OK);
        assert_int_equal(sm_trainer_set_param(m.t, SM_TRAINER_PK_IMAGES, 2), SM_OK);
        assert_int_equal(sm_trainer_set_param(m.t, SM_TRAINER_AUGMENT, aug ? SM_DISTORT_ALL : 0),
                         SM_OK);
        sm__rng aug_before = m.t->aug_rng;
        assert_int_equal(sm_train_step(m.t, NULL), SM_OK);
        assert_int_equal(memcmp(&aug_before, &m.t->aug_rng, sizeof aug_before) != 0, aug);
        np = m.s->n_params;
        params[aug] = malloc(np * sizeof(float));
        assert_int_equal(sm__subnet_read_params(m.s, params[aug]), SM_OK);
        model_free(&m);
    }
    assert_true(memcmp(params[0], params[1], np * sizeof(float)) != 0);
    free(params[0]), free(params[1]);
}

static void test_pk_bad_settings(void **state)
{
    (void)state;
    model m;
    model_make(&m, 6, 4, 1); /* 6 classes of 4 images */
    sm_trainer *t = m.t;
    int64_t v;
    /* defaults: off */
    assert_int_equal(sm_trainer_get_param(t, SM_TRAINER_PK_CLASSES, &v), SM_OK);
    assert_int_equal(v, 0);
    assert_int_equal(sm_trainer_get_param(t, SM_TRAINER_PK_IMAGES, &v), SM_OK);
    assert_int_equal(v, 4);
    assert_int_equal(sm_trainer_get_param(t, SM_TRAINER_PK_LOSS, &v), SM_OK);
    assert_int_equal(v, SM_PK_LOSS_BCE_BALANCED);
    assert_int_equal(sm_trainer_get_param(t, SM_TRAINER_ALPHABET_BALANCED, &v), SM_OK);
    assert_int_equal(v, 0);
    double f;
    assert_int_equal(sm_trainer_get_real(t, SM_TRAINER_NEG_SAME_ALPHABET, &f), SM_OK);
    assert_true(f == 0.0);

    assert_int_equal(sm_trainer_set_param(t, SM_TRAINER_PK_CLASSES, 1), SM_ERR_INVALID_ARG);
    assert_int_equal(sm_trainer_set_param(t, SM_TRAINER_PK_CLASSES, -3), SM_ERR_INVALID_ARG);
    assert_int_equal(sm_trainer_set_param(t, SM_TRAINER_PK_IMAGES, 1), SM_ERR_INVALID_ARG);
    assert_int_equal(sm_trainer_set_param(t, SM_TRAINER_PK_IMAGES, 0), SM_ERR_INVALID_ARG);
    assert_int_equal(sm_trainer_set_param(t, SM_TRAINER_PK_CLASSES, 2000), SM_ERR_INVALID_ARG);
    assert_non_null(strstr(sm_last_error(), "4096"));
    assert_int_equal(sm_trainer_set_param(t, SM_TRAINER_PK_LOSS, 3), SM_ERR_INVALID_ARG);
    assert_int_equal(sm_trainer_set_param(t, SM_TRAINER_ALPHABET_BALANCED, 2), SM_ERR_INVALID_ARG);
    assert_int_equal(sm_trainer_set_real(t, SM_TRAINER_NEG_SAME_ALPHABET, -0.1),
                     SM_ERR_INVALID_ARG);
    assert_int_equal(sm_trainer_set_real(t, SM_TRAINER_NEG_SAME_ALPHABET, 1.5), SM_ERR_INVALID_ARG);
    assert_int_equal(sm_trainer_set_real(t, SM_TRAINER_NEG_SAME_ALPHABET, NAN), SM_ERR_INVALID_ARG);
    assert_int_equal(sm_trainer_set_real(t, (sm_trainer_real)99, 0.5), SM_ERR_INVALID_ARG);
    assert_int_equal(sm_trainer_set_real(NULL, SM_TRAINER_NEG_SAME_ALPHABET, 0.5),
                     SM_ERR_INVALID_ARG);
    assert_int_equal(sm_trainer_get_real(t, SM_TRAINER_NEG_SAME_ALPHABET, NULL),
                     SM_ERR_INVALID_ARG);
    /* nothing changed */
    assert_int_equal(sm_trainer_get_param(t, SM_TRAINER_PK_CLASSES, &v), SM_OK);
    assert_int_equal(v, 0);

    /* settings the dataset cannot serve: SM_ERR_DATASET from the step, which changes nothing */
    struct {
        int p, k;
        const char *msg;
    } bad[] = {
        {2, 5, "largest class"},      /* K larger than a class */
        {7, 2, "such classes"},       /* P larger than the classes */
        {7, 4, "the dataset has 24"}, /* P x K above the dataset */
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        assert_int_equal(sm_trainer_set_param(t, SM_TRAINER_PK_IMAGES, bad[i].k), SM_OK);
        assert_int_equal(sm_trainer_set_param(t, SM_TRAINER_PK_CLASSES, bad[i].p), SM_OK);
        float loss = -1;
        assert_int_equal(sm_train_step(t, &loss), SM_ERR_DATASET);
        assert_non_null(strstr(sm_last_error(), bad[i].msg));
        assert_true(loss == -1);
        assert_int_equal(sm_trainer_iteration(t), 0);
        assert_int_equal(sm_adam_steps(m.a), 0);
    }
    /* more images than the dataset has */
    model_free(&m);
    model_make(&m, 3, 2, 1); /* 6 images */
    assert_int_equal(sm_trainer_set_param(m.t, SM_TRAINER_PK_IMAGES, 2), SM_OK);
    assert_int_equal(sm_trainer_set_param(m.t, SM_TRAINER_PK_CLASSES, 4), SM_OK);
    assert_int_equal(sm_train_step(m.t, NULL), SM_ERR_DATASET);
    assert_non_null(strstr(sm_last_error(), "the dataset has 6"));
    assert_int_equal(sm_trainer_set_param(m.t, SM_TRAINER_PK_CLASSES, 3), SM_OK);
    assert_int_equal(sm_train_step(m.t, NULL), SM_OK); /* all of it: fine */
    model_free(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults_draw_as_before),
        cmocka_unit_test(test_neg_same_alphabet),
        cmocka_unit_test(test_alphabet_balanced),
        cmocka_unit_test(test_pk_sampler),
        cmocka_unit_test(test_pk_same_alphabet_batches),
        cmocka_unit_test(test_pk_gradient_equals_pairs),
        cmocka_unit_test(test_pk_softmax_reference),
        cmocka_unit_test(test_pk_loss_decreases),
        cmocka_unit_test(test_pk_augment),
        cmocka_unit_test(test_pk_bad_settings),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
