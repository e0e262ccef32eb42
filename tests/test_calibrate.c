/* SPDX-License-Identifier: MIT */
/* Calibration (since 0.4): the Platt fit (sm_calibrate_fit) recovers a known logistic model,
 * weighs the two classes equally and refuses degenerate input; folding it into the head
 * (sm_head_calibrate) is exact; checkpoints keep it (and older files, without it, load
 * uncalibrated); a training step clears it; damaged calibration metadata is SM_ERR_FORMAT. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>
#include <cmocka.h>

#include "network/network.h"
#include "siamese/siamese.h"

#define ARCH "1x12x12:conv4k3,relu,pool2,flatten,fc8"

/* ------------------------------------------------------------------ synthetic logits */

static uint64_t rng_next(uint64_t *s) /* splitmix64 */
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static double uniform(uint64_t *s)
{
    return ((double)(rng_next(s) >> 11) + 0.5) / 9007199254740992.0;
}

static double normal(uint64_t *s)
{
    return sqrt(-2.0 * log(uniform(s))) * cos(6.283185307179586 * uniform(s));
}

static double sigmoid(double u) { return 1.0 / (1.0 + exp(-u)); }

/* n logits uniform in [lo, hi], labels drawn from P(same | z) = sigmoid(a z + b). */
static void logistic_pairs(size_t n, double lo, double hi, double a, double b, uint64_t seed,
                           float *z, float *y, size_t *n_same)
{
    uint64_t s = seed;
    *n_same = 0;
    for (size_t i = 0; i < n; i++) {
        z[i] = (float)(lo + (hi - lo) * uniform(&s));
        y[i] = uniform(&s) < sigmoid(a * z[i] + b) ? 1.0f : 0.0f;
        *n_same += y[i] == 1.0f;
    }
}

/* ------------------------------------------------------------------ the fit */

static void test_fit_recovers_logistic_model(void **state)
{
    (void)state;
    enum { N = 40000 };
    float *z = malloc(N * sizeof *z), *y = malloc(N * sizeof *y);
    assert_non_null(z);
    assert_non_null(y);
    const double a = 1.5, b = -0.75;
    size_t n_same;
    logistic_pairs(N, -6.0, 6.0, a, b, 7, z, y, &n_same);
    double scale = 0, shift = 0;
    assert_int_equal(sm_calibrate_fit(N, z, y, &scale, &shift), SM_OK);
    /* each class weighs half: the fit's intercept is the model's moved by log(N- / N+), the
     * logit of the class-balanced posterior */
    const double want_shift = b + log((double)(N - n_same) / (double)n_same);
    printf("A %.4f (true %.4f), B %.4f (balanced %.4f; %zu of %d pairs same)\n", scale, a, shift,
           want_shift, n_same, N);
    assert_true(n_same < N / 2 - 1000); /* the classes are unbalanced: the shift matters */
    assert_true(fabs(scale - a) < 0.06);
    assert_true(fabs(shift - want_shift) < 0.06);

    /* balanced classes: the model's own intercept comes back */
    logistic_pairs(N, -6.0, 6.0, 2.0, 0.0, 8, z, y, &n_same);
    assert_int_equal(sm_calibrate_fit(N, z, y, &scale, &shift), SM_OK);
    assert_true(fabs(scale - 2.0) < 0.1);
    assert_true(fabs(shift - log((double)(N - n_same) / (double)n_same)) < 0.06);
    assert_true(fabs(shift) < 0.1);
    free(z);
    free(y);
}

static void test_fit_balances_the_classes(void **state)
{
    (void)state;
    /* equal-variance Gaussians at -2 and +2, 20 times more different-class pairs: the balanced
     * posterior's logit is 4 z, so the decision point stays at z = 0 (an unweighted fit would
     * put it at log(20) / 4 = 0.75) */
    enum { NP = 2000, NN = 40000, N = NP + NN };
    float *z = malloc(N * sizeof *z), *y = malloc(N * sizeof *y);
    assert_non_null(z);
    assert_non_null(y);
    uint64_t s = 11;
    for (size_t i = 0; i < N; i++) {
        y[i] = i < NP ? 1.0f : 0.0f;
        z[i] = (float)((i < NP ? 2.0 : -2.0) + normal(&s));
    }
    double scale, shift;
    assert_int_equal(sm_calibrate_fit(N, z, y, &scale, &shift), SM_OK);
    printf("A %.4f, B %.4f: decision point z = %.4f\n", scale, shift, -shift / scale);
    assert_true(fabs(scale - 4.0) < 0.3);
    assert_true(fabs(shift / scale) < 0.05);

    /* stationarity in B: the two classes' mean calibrated scores balance Platt's targets */
    double mean_p[2] = {0, 0};
    for (size_t i = 0; i < N; i++)
        mean_p[y[i] == 1.0f] += sigmoid(scale * z[i] + shift) / (y[i] == 1.0f ? NP : NN);
    const double t_pos = (NP + 1.0) / (NP + 2.0), t_neg = 1.0 / (NN + 2.0);
    assert_true(fabs(0.5 * mean_p[1] + 0.5 * mean_p[0] - 0.5 * (t_pos + t_neg)) < 1e-8);

    /* the same pairs with every different-class pair four times: the same fit (only Platt's
     * target for them moves, from 1/(N- + 2) to 1/(4 N- + 2)) */
    float *z4 = malloc((NP + 4 * NN) * sizeof *z4), *y4 = malloc((NP + 4 * NN) * sizeof *y4);
    assert_non_null(z4);
    assert_non_null(y4);
    size_t m = 0;
    for (size_t i = 0; i < N; i++)
        for (int r = 0; r < (i < NP ? 1 : 4); r++) z4[m] = z[i], y4[m++] = y[i];
    double scale4, shift4;
    assert_int_equal(sm_calibrate_fit(m, z4, y4, &scale4, &shift4), SM_OK);
    printf("with every different-class pair 4 times: A %.4f, B %.4f\n", scale4, shift4);
    assert_true(fabs(scale4 - scale) < 0.02);
    assert_true(fabs(shift4 - shift) < 0.02);
    free(z4);
    free(y4);
    free(z);
    free(y);
}

static void test_fit_separable_and_pk_like(void **state)
{
    (void)state;
    /* perfectly separable: Platt's smoothed targets keep the fit finite */
    enum { N = 200 };
    float z[N], y[N];
    for (size_t i = 0; i < N; i++) {
        y[i] = (float)(i % 2);
        z[i] = (float)(i % 2 ? 10.0 + (double)i / 20 : -20.0 + (double)i / 20);
    }
    double scale, shift;
    assert_int_equal(sm_calibrate_fit(N, z, y, &scale, &shift), SM_OK);
    assert_true(isfinite(scale) && scale > 0 && isfinite(shift));
    for (size_t i = 0; i < N; i++) assert_int_equal(scale * z[i] + shift >= 0, y[i] == 1.0f);

    /* a P x K model's logits: different-class pairs near -14 (scores ~1e-6), same-class ones
     * spread from -9 to +6; the fit moves 0.5 between the two */
    uint64_t s = 3;
    for (size_t i = 0; i < N; i++) {
        y[i] = i < N / 4 ? 1.0f : 0.0f;
        z[i] = (float)(i < N / 4 ? -1.5 + 3.0 * normal(&s) : -14.0 + 1.5 * normal(&s));
    }
    assert_int_equal(sm_calibrate_fit(N, z, y, &scale, &shift), SM_OK);
    const double cut = -shift / scale;
    printf("P x K-like logits: decision point z = %.3f (score %.3g before calibration)\n", cut,
           sigmoid(cut));
    assert_true(cut > -12.0 && cut < -6.0);
}

static void test_fit_refusals(void **state)
{
    (void)state;
    float z[4] = {-1, 0, 1, 2}, y[4] = {0, 0, 1, 1};
    double scale = 42, shift = 43;
    assert_int_equal(sm_calibrate_fit(4, NULL, y, &scale, &shift), SM_ERR_INVALID_ARG);
    assert_int_equal(sm_calibrate_fit(4, z, NULL, &scale, &shift), SM_ERR_INVALID_ARG);
    assert_int_equal(sm_calibrate_fit(4, z, y, NULL, &shift), SM_ERR_INVALID_ARG);
    assert_int_equal(sm_calibrate_fit(4, z, y, &scale, NULL), SM_ERR_INVALID_ARG);
    assert_int_equal(sm_calibrate_fit(1, z, y, &scale, &shift), SM_ERR_INVALID_ARG);
    assert_non_null(strstr(sm_last_error(), "at least 2"));
    assert_int_equal(sm_calibrate_fit(0, z, y, &scale, &shift), SM_ERR_INVALID_ARG);
    /* one kind of pair only */
    float same[4] = {1, 1, 1, 1}, diff[4] = {0, 0, 0, 0};
    assert_int_equal(sm_calibrate_fit(4, z, same, &scale, &shift), SM_ERR_INVALID_ARG);
    assert_non_null(strstr(sm_last_error(), "4 same-class and 0 different-class"));
    assert_int_equal(sm_calibrate_fit(4, z, diff, &scale, &shift), SM_ERR_INVALID_ARG);
    /* labels other than 0 and 1, logits not finite */
    float half[4] = {0, 0.5f, 1, 1};
    assert_int_equal(sm_calibrate_fit(4, z, half, &scale, &shift), SM_ERR_INVALID_ARG);
    assert_non_null(strstr(sm_last_error(), "label 1"));
    float bad[4] = {-1, NAN, 1, 2};
    assert_int_equal(sm_calibrate_fit(4, bad, y, &scale, &shift), SM_ERR_INVALID_ARG);
    assert_non_null(strstr(sm_last_error(), "logit 1"));
    bad[1] = INFINITY;
    assert_int_equal(sm_calibrate_fit(4, bad, y, &scale, &shift), SM_ERR_INVALID_ARG);
    /* all logits equal: nothing tells the pairs apart */
    float flat[4] = {0.25f, 0.25f, 0.25f, 0.25f};
    assert_int_equal(sm_calibrate_fit(4, flat, y, &scale, &shift), SM_ERR_INVALID_ARG);
    assert_non_null(strstr(sm_last_error(), "all equal"));
    /* different-class pairs ranked above same-class ones: the scale would be negative */
    float inverted[4] = {2, 1, 0, -1};
    assert_int_equal(sm_calibrate_fit(4, inverted, y, &scale, &shift), SM_ERR_INVALID_ARG);
    assert_non_null(strstr(sm_last_error(), "do not rank"));
    /* outputs untouched by every refusal */
    assert_true(scale == 42 && shift == 43);
}

/* ------------------------------------------------------------------ models */

typedef struct env {
    char dir[256];
    sm_backend *be;
    sm_dataset *ds;
    sm_subnet *s;
    sm_head *h;
} env;

static int setup(void **state)
{
    env *e = calloc(1, sizeof *e);
    const char *tmp = getenv("TMPDIR");
    snprintf(e->dir, sizeof e->dir, "%s/sm-calib-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(e->dir)) return -1;
    sm_arch *arch;
    if (sm_backend_create(SM_BACKEND_CPU, &e->be) || sm_backend_set_threads(e->be, 1) ||
        sm_dataset_create_synthetic(12, 4, 12, 12, 5, &e->ds) || sm_arch_from_string(ARCH, &arch))
        return -1;
    sm_status st = sm_subnet_create(e->be, arch, 1, &e->s);
    sm_arch_destroy(arch);
    if (st || sm_head_create(e->be, sm_subnet_feature_dim(e->s), 2, &e->h)) return -1;
    *state = e;
    return 0;
}

static int teardown(void **state)
{
    env *e = *state;
    const char *names[] = {"model.safetensors", "trainer.safetensors", "bad.safetensors",
                           "plain.safetensors"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char p[600];
        snprintf(p, sizeof p, "%s/%s", e->dir, names[i]);
        unlink(p);
    }
    rmdir(e->dir);
    sm_head_destroy(e->h);
    sm_subnet_destroy(e->s);
    sm_dataset_destroy(e->ds);
    sm_backend_destroy(e->be);
    free(e);
    return 0;
}

static const char *path_in(const env *e, const char *name)
{
    static char buf[2][512];
    static int k;
    k ^= 1;
    snprintf(buf[k], sizeof buf[k], "%s/%s", e->dir, name);
    return buf[k];
}

static float *head_params(const sm_head *h)
{
    float *p = malloc(h->n_params * sizeof *p);
    assert_non_null(p);
    assert_int_equal(sm__head_read_params(h, p), SM_OK);
    return p;
}

static void assert_calibration(const sm_head *h, int on, double scale, double shift, size_t n)
{
    int c = -1;
    double a = -1, b = -1;
    size_t m = 99;
    assert_int_equal(sm_head_calibration(h, &c, &a, &b, &m), SM_OK);
    assert_int_equal(c, on);
    assert_true(a == scale);
    assert_true(b == shift);
    assert_int_equal(m, n);
}

/* `n` pairs of the synthetic set (a fixed sample) */
static void pairs_of(const env *e, size_t n, float *left, float *right)
{
    sm_sampler *smp;
    float *labels = malloc(n * sizeof *labels);
    assert_non_null(labels);
    assert_int_equal(sm_sampler_create(e->ds, 3, &smp), SM_OK);
    assert_int_equal(sm_sampler_next(smp, n, left, right, labels, NULL, NULL), SM_OK);
    sm_sampler_destroy(smp);
    free(labels);
}

static void test_fold_is_exact(void **state)
{
    env *e = *state;
    enum { N = 40 };
    const size_t px = 144;
    float *l = malloc(N * px * sizeof *l), *r = malloc(N * px * sizeof *r);
    float z[N], z2[N], sc[N];
    assert_non_null(l);
    assert_non_null(r);
    pairs_of(e, N, l, r);
    assert_calibration(e->h, 0, 1.0, 0.0, 0);
    float *before = head_params(e->h);
    assert_int_equal(sm_predict_pairs_logits(e->s, e->h, N, l, r, z), SM_OK);
    assert_int_equal(sm_predict_pairs(e->s, e->h, N, l, r, sc), SM_OK);
    for (size_t i = 0; i < N; i++) assert_true(fabs(sigmoid(z[i]) - sc[i]) < 1e-6);

    const double A = 37.5, B = -2.25;
    assert_int_equal(sm_head_calibrate(e->h, A, B, 1234), SM_OK);
    assert_calibration(e->h, 1, A, B, 1234);
    /* the weights are A w and A b + B, each rounded once to float */
    float *after = head_params(e->h);
    const size_t d = e->h->dim;
    for (size_t j = 0; j < d; j++) assert_true(after[j] == (float)(A * (double)before[j]));
    assert_true(after[d] == (float)(A * (double)before[d] + B));
    /* the logit is A z + B to float rounding, the score its sigmoid */
    assert_int_equal(sm_predict_pairs_logits(e->s, e->h, N, l, r, z2), SM_OK);
    assert_int_equal(sm_predict_pairs(e->s, e->h, N, l, r, sc), SM_OK);
    for (size_t i = 0; i < N; i++) {
        const double want = A * z[i] + B;
        assert_true(fabs(z2[i] - want) <= 1e-5 * (1.0 + fabs(A * z[i]) + fabs(B)));
        assert_true(fabs(sc[i] - sigmoid(z2[i])) < 1e-6);
        float one;
        assert_int_equal(sm_predict_pair(e->s, e->h, l + i * px, r + i * px, &one), SM_OK);
        assert_true(fabs(one - sc[i]) < 1e-6);
    }

    /* a second fold composes: the record is the whole transform */
    assert_int_equal(sm_head_calibrate(e->h, 0.5, 1.0, 77), SM_OK);
    assert_calibration(e->h, 1, 0.5 * A, 0.5 * B + 1.0, 77);

    /* refusals leave the head as it was */
    float *kept = head_params(e->h);
    const double bad[][2] = {{0.0, 0.0}, {-1.0, 0.0},      {NAN, 0.0},  {INFINITY, 0.0},
                             {1.0, NAN}, {1.0, -INFINITY}, {1e300, 0.0}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(sm_head_calibrate(e->h, bad[i][0], bad[i][1], 1), SM_ERR_INVALID_ARG);
        float *now = head_params(e->h);
        assert_memory_equal(now, kept, e->h->n_params * sizeof *now);
        free(now);
        assert_calibration(e->h, 1, 0.5 * A, 0.5 * B + 1.0, 77);
    }
    assert_non_null(strstr(sm_last_error(), "overflow"));
    assert_int_equal(sm_head_calibrate(NULL, 1.0, 0.0, 0), SM_ERR_INVALID_ARG);
    assert_int_equal(sm_head_calibration(NULL, NULL, NULL, NULL, NULL), SM_ERR_INVALID_ARG);
    assert_int_equal(sm_head_calibration(e->h, NULL, NULL, NULL, NULL), SM_OK);
    assert_int_equal(sm_predict_pairs_logits(e->s, e->h, N, l, r, NULL), SM_ERR_INVALID_ARG);
    /* restore the head for the other tests */
    assert_int_equal(sm__head_write_params(e->h, before), SM_OK);
    e->h->cal = (sm__calibration){0};
    free(kept), free(after), free(before), free(l), free(r);
}

static void test_verification_logits(void **state)
{
    env *e = *state;
    enum { N = 300 };
    float z[N], y[N], sc[N], y2[N];
    assert_int_equal(sm_verification_logits(e->s, e->h, e->ds, N, 9, z, y), SM_OK);
    assert_int_equal(sm_verification_scores(e->s, e->h, e->ds, N, 9, sc, y2), SM_OK);
    assert_memory_equal(y, y2, sizeof y);
    for (size_t i = 0; i < N; i++) assert_true(fabs(sigmoid(z[i]) - sc[i]) < 1e-6);
    assert_int_equal(sm_verification_logits(e->s, e->h, e->ds, N, 9, NULL, y), SM_ERR_INVALID_ARG);
    assert_int_equal(sm_verification_logits(e->s, e->h, e->ds, 0, 9, z, y), SM_ERR_INVALID_ARG);
}

/* ------------------------------------------------------------------ checkpoints */

static uint8_t *read_all(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc((size_t)len + 1);
    assert_non_null(b);
    assert_int_equal(fread(b, 1, (size_t)len, f), (size_t)len);
    fclose(f);
    b[len] = 0;
    *n = (size_t)len;
    return b;
}

static void write_all(const char *path, const uint8_t *b, size_t n)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(b, 1, n, f), n);
    fclose(f);
}

static uint8_t *find(uint8_t *b, size_t n, const char *s)
{
    const size_t k = strlen(s);
    for (size_t i = 0; i + k <= n; i++)
        if (memcmp(b + i, s, k) == 0) return b + i;
    return NULL;
}

/* The checksum rule (docs/checkpoint-format.md): CRC-32 of the whole file with the crc32
 * value's 8 digits counted as '0'. */
static void fix_crc(uint8_t *b, size_t n)
{
    const uint8_t *at = find(b, n, "\"crc32\":\"");
    assert_non_null(at);
    const size_t pos = (size_t)(at - b) + 9;
    assert_true(pos + 8 <= n);
    for (size_t i = 0; i < 8; i++) b[pos + i] = '0';
    char hex[9];
    snprintf(hex, sizeof hex, "%08lx", (unsigned long)crc32(0, b, (uInt)n));
    for (size_t i = 0; i < 8; i++) b[pos + i] = (uint8_t)hex[i];
}

/* `src` with `from` replaced by `to` (same length) in its header, resealed, as `dst`. */
static void patched_copy(const char *src, const char *dst, const char *from, const char *to,
                         int reseal)
{
    size_t n;
    uint8_t *b = read_all(src, &n);
    assert_int_equal(strlen(from), strlen(to));
    uint8_t *p = find(b, n, from);
    if (!p) fail_msg("'%s' is not in %s", from, src);
    memcpy(p, to, strlen(to));
    if (reseal) fix_crc(b, n);
    write_all(dst, b, n);
    free(b);
}

static void test_checkpoint_round_trip(void **state)
{
    env *e = *state;
    float *before = head_params(e->h);
    assert_int_equal(sm_head_calibrate(e->h, 2.5, -1.25, 1000), SM_OK);
    float *folded = head_params(e->h);
    const char *path = path_in(e, "model.safetensors");
    assert_int_equal(sm_model_save(e->s, e->h, path), SM_OK);
    size_t n;
    uint8_t *b = read_all(path, &n);
    assert_non_null(find(b, n, "\"calibration\":\"platt\""));
    assert_non_null(find(b, n, "\"calibration_scale\":\"2.5\""));
    assert_non_null(find(b, n, "\"calibration_shift\":\"-1.25\""));
    assert_non_null(find(b, n, "\"calibration_pairs\":\"1000\""));
    free(b);
    sm_subnet *s2;
    sm_head *h2;
    assert_int_equal(sm_model_load(e->be, path, &s2, &h2), SM_OK);
    assert_calibration(h2, 1, 2.5, -1.25, 1000);
    float *loaded = head_params(h2);
    assert_memory_equal(loaded, folded, e->h->n_params * sizeof *loaded);
    free(loaded);
    sm_head_destroy(h2);
    sm_subnet_destroy(s2);

    /* a value that %.17g does not write short comes back exactly */
    const double odd_scale = 1.0 / 3.0, odd_shift = -exp(1.0);
    assert_int_equal(sm__head_write_params(e->h, before), SM_OK);
    e->h->cal = (sm__calibration){0};
    assert_int_equal(sm_head_calibrate(e->h, odd_scale, odd_shift, 5), SM_OK);

    /* trainer files too: save, load into a trainer whose head is not calibrated */
    sm_adam *a;
    sm_trainer *t;
    assert_int_equal(sm_adam_create(e->s, e->h, &a), SM_OK);
    assert_int_equal(sm_trainer_create(e->s, e->h, a, e->ds, 4, &t), SM_OK);
    const char *tpath = path_in(e, "trainer.safetensors");
    assert_int_equal(sm_trainer_save(t, tpath), SM_OK);
    sm_arch *arch;
    sm_subnet *s3;
    sm_head *h3;
    sm_adam *a3;
    sm_trainer *t3;
    assert_int_equal(sm_arch_from_string(ARCH, &arch), SM_OK);
    assert_int_equal(sm_subnet_create(e->be, arch, 5, &s3), SM_OK);
    sm_arch_destroy(arch);
    assert_int_equal(sm_head_create(e->be, sm_subnet_feature_dim(s3), 6, &h3), SM_OK);
    assert_int_equal(sm_adam_create(s3, h3, &a3), SM_OK);
    assert_int_equal(sm_trainer_create(s3, h3, a3, e->ds, 4, &t3), SM_OK);
    assert_int_equal(sm_trainer_load(t3, tpath), SM_OK);
    assert_calibration(h3, 1, odd_scale, odd_shift, 5);
    float *p3 = head_params(h3), *p1 = head_params(e->h);
    assert_memory_equal(p3, p1, e->h->n_params * sizeof *p3);
    free(p3);
    free(p1);
    assert_int_equal(sm_model_load(e->be, tpath, &s2, &h2), SM_OK);
    assert_calibration(h2, 1, odd_scale, odd_shift, 5);
    sm_head_destroy(h2);
    sm_subnet_destroy(s2);

    /* an uncalibrated file (as every file before 0.4) loads uncalibrated, also into a trainer
     * whose head was: the file's state wins */
    const char *plain = path_in(e, "plain.safetensors");
    e->h->cal = (sm__calibration){0};
    assert_int_equal(sm_trainer_save(t, plain), SM_OK);
    b = read_all(plain, &n);
    assert_null(find(b, n, "calibration"));
    free(b);
    assert_int_equal(sm_trainer_load(t3, plain), SM_OK);
    assert_calibration(h3, 0, 1.0, 0.0, 0);
    assert_int_equal(sm_model_load(e->be, plain, &s2, &h2), SM_OK);
    assert_calibration(h2, 0, 1.0, 0.0, 0);
    sm_head_destroy(h2);
    sm_subnet_destroy(s2);

    sm_trainer_destroy(t3);
    sm_adam_destroy(a3);
    sm_head_destroy(h3);
    sm_subnet_destroy(s3);
    sm_trainer_destroy(t);
    sm_adam_destroy(a);
    assert_int_equal(sm__head_write_params(e->h, before), SM_OK);
    free(before);
    free(folded);
}

static void test_training_step_clears(void **state)
{
    env *e = *state;
    float *before = head_params(e->h);
    sm_adam *a;
    sm_trainer *t;
    assert_int_equal(sm_adam_create(e->s, e->h, &a), SM_OK);
    assert_int_equal(sm_trainer_create(e->s, e->h, a, e->ds, 4, &t), SM_OK);
    assert_int_equal(sm_trainer_set_param(t, SM_TRAINER_BATCH_SIZE, 4), SM_OK);
    assert_int_equal(sm_head_calibrate(e->h, 3.0, 0.5, 10), SM_OK);
    float loss;
    assert_int_equal(sm_train_step(t, &loss), SM_OK);
    assert_calibration(e->h, 0, 1.0, 0.0, 0);
    /* sm_train_step_batch too */
    assert_int_equal(sm_head_calibrate(e->h, 3.0, 0.5, 10), SM_OK);
    /* two pairs: two left images, then two right ones */
    float *l = calloc(4 * 144, sizeof *l), lab[2] = {1, 0};
    assert_non_null(l);
    assert_int_equal(sm_train_step_batch(t, 2, l, l + 2 * 144, lab, &loss), SM_OK);
    assert_calibration(e->h, 0, 1.0, 0.0, 0);
    /* a saved trainer after the step has no calibration keys */
    const char *path = path_in(e, "trainer.safetensors");
    assert_int_equal(sm_trainer_save(t, path), SM_OK);
    size_t n;
    uint8_t *b = read_all(path, &n);
    assert_null(find(b, n, "calibration"));
    free(b);
    free(l);
    sm_trainer_destroy(t);
    sm_adam_destroy(a);
    assert_int_equal(sm__head_write_params(e->h, before), SM_OK);
    free(before);
}

static void test_corrupt_metadata(void **state)
{
    env *e = *state;
    float *before = head_params(e->h);
    assert_int_equal(sm_head_calibrate(e->h, 2.5, -1.25, 1000), SM_OK);
    const char *path = path_in(e, "model.safetensors"), *bad = path_in(e, "bad.safetensors");
    assert_int_equal(sm_model_save(e->s, e->h, path), SM_OK);
    /* a trainer with a calibrated head of its own: a refused file leaves it as it was */
    sm_adam *a;
    sm_trainer *t;
    assert_int_equal(sm_adam_create(e->s, e->h, &a), SM_OK);
    assert_int_equal(sm_trainer_create(e->s, e->h, a, e->ds, 4, &t), SM_OK);
    const char *tpath = path_in(e, "trainer.safetensors");
    assert_int_equal(sm_trainer_save(t, tpath), SM_OK);

    /* the control: a well-formed change loads (the metadata records; the weights rule) */
    patched_copy(path, bad, "\"calibration_scale\":\"2.5\"", "\"calibration_scale\":\"3.5\"", 1);
    sm_subnet *s2 = NULL;
    sm_head *h2 = NULL;
    assert_int_equal(sm_model_load(e->be, bad, &s2, &h2), SM_OK);
    assert_calibration(h2, 1, 3.5, -1.25, 1000);
    sm_head_destroy(h2);
    sm_subnet_destroy(s2);

    static const char *const cases[][2] = {
        {"\"calibration_scale\":\"2.5\"", "\"calibration_scale\":\"-25\""},
        {"\"calibration_scale\":\"2.5\"", "\"calibration_scale\":\"0.0\""},
        {"\"calibration_scale\":\"2.5\"", "\"calibration_scale\":\"nan\""},
        {"\"calibration_scale\":\"2.5\"", "\"calibration_scale\":\"2,5\""},
        {"\"calibration_scale\":\"2.5\"", "\"calibration_scale\":\" 25\""},
        {"\"calibration_shift\":\"-1.25\"", "\"calibration_shift\":\"1e999\""},
        {"\"calibration_shift\":\"-1.25\"", "\"calibration_shift\":\"-inf_\""},
        {"\"calibration_shift\":\"-1.25\"", "\"calibration_shift\":\"0x1p0\""},
        {"\"calibration_pairs\":\"1000\"", "\"calibration_pairs\":\"-100\""},
        {"\"calibration_pairs\":\"1000\"", "\"calibration_pairs\":\"0100\""},
        {"\"calibration\":\"platt\"", "\"calibration\":\"plait\""},
        {"\"calibration_pairs\"", "\"calibration_pairz\""}, /* 3 of the 4 keys */
        {"\"calibration\":", "\"calibratioN\":"},           /* 3 of the 4 keys */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        for (int trainer = 0; trainer < 2; trainer++) {
            patched_copy(trainer ? tpath : path, bad, cases[i][0], cases[i][1], 1);
            s2 = NULL, h2 = NULL;
            sm_status st = sm_model_load(e->be, bad, &s2, &h2);
            printf("%s -> %s: %s\n", cases[i][0], cases[i][1], sm_last_error());
            assert_int_equal(st, SM_ERR_FORMAT);
            assert_null(s2);
            assert_null(h2);
            if (trainer) {
                assert_int_equal(sm_trainer_load(t, bad), SM_ERR_FORMAT);
                assert_calibration(e->h, 1, 2.5, -1.25, 1000);
            }
        }
    }
    /* unsealed: the checksum catches it first */
    patched_copy(path, bad, "\"calibration_scale\":\"2.5\"", "\"calibration_scale\":\"3.5\"", 0);
    assert_int_equal(sm_model_load(e->be, bad, &s2, &h2), SM_ERR_FORMAT);
    assert_non_null(strstr(sm_last_error(), "checksum"));

    sm_trainer_destroy(t);
    sm_adam_destroy(a);
    assert_int_equal(sm__head_write_params(e->h, before), SM_OK);
    e->h->cal = (sm__calibration){0};
    free(before);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fit_recovers_logistic_model),
        cmocka_unit_test(test_fit_balances_the_classes),
        cmocka_unit_test(test_fit_separable_and_pk_like),
        cmocka_unit_test(test_fit_refusals),
        cmocka_unit_test_setup_teardown(test_fold_is_exact, setup, teardown),
        cmocka_unit_test_setup_teardown(test_verification_logits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_checkpoint_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_training_step_clears, setup, teardown),
        cmocka_unit_test_setup_teardown(test_corrupt_metadata, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
