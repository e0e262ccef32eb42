/* SPDX-License-Identifier: MIT */
/* The CPU path against PyTorch: loss, every gradient, and three Adam steps on fixed weights and
 * inputs, read from tests/data/reference_<case>.bin (written by tests/gen/make_reference.py,
 * which documents the format). The reference is the float32 network evaluated in float64, so
 * the errors printed here are libsiamese's own rounding (the script prints, for scale, how far
 * float32 PyTorch lands from the same numbers).
 *
 * Each case runs twice: with a micro-batch smaller than the batch (gradients accumulated over
 * chunks, the last one partial) and with the whole batch in one chunk. Errors are per tensor:
 * max |ours - ref| / max |ref|. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "train/training.h"
#include "test_backend.h"

#ifndef SM_TEST_DATA_DIR
#define SM_TEST_DATA_DIR "tests/data"
#endif

#define REF_VERSION 1
#define HINT        "re-run `python3 tests/gen/make_reference.py` to regenerate tests/data/reference_*.bin"

#define TOL_LOSS 1e-5 /* the loss at the reference parameters */
#define TOL_GRAD 1e-4 /* each gradient tensor */
#define TOL_STEP 1e-4 /* losses of the Adam steps and parameters after them */

typedef struct ref_data {
    uint8_t *blob;
    char arch[512];
    uint32_t pairs, c, h, w, n_sub, n_head, n_steps;
    double lr, beta1, beta2, eps;
    float *sub, *head, *left, *right, *labels, *loss, *g_sub, *g_head, *losses, *p_sub, *p_head;
} ref_data;

/* ---- reading the file: explicit little-endian decoding, so any host reads it ---- */

typedef struct reader {
    const uint8_t *p, *end;
    int ok;
} reader;

static const uint8_t *take(reader *r, size_t n)
{
    if (!r->ok || (size_t)(r->end - r->p) < n) {
        r->ok = 0;
        return NULL;
    }
    const uint8_t *q = r->p;
    r->p += n;
    return q;
}

static uint64_t get_le(reader *r, size_t n)
{
    const uint8_t *q = take(r, n);
    uint64_t v = 0;
    for (size_t i = 0; q && i < n; i++) v |= (uint64_t)q[i] << (8 * i);
    return v;
}

static uint32_t get_u32(reader *r) { return (uint32_t)get_le(r, 4); }

static double get_f64(reader *r)
{
    uint64_t u = get_le(r, 8);
    double d;
    memcpy(&d, &u, sizeof d);
    return d;
}

/* Decodes n float32 values into a new array (freed by ref_free). */
static float *get_f32s(reader *r, size_t n)
{
    float *out = malloc((n ? n : 1) * sizeof *out);
    if (!out) {
        r->ok = 0;
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        uint32_t u = get_u32(r);
        memcpy(&out[i], &u, sizeof u);
    }
    return out;
}

static void ref_free(ref_data *d)
{
    float *arrays[] = {d->sub,   d->head,   d->left,   d->right, d->labels, d->loss,
                       d->g_sub, d->g_head, d->losses, d->p_sub, d->p_head};
    for (size_t i = 0; i < sizeof arrays / sizeof *arrays; i++) free(arrays[i]);
    free(d->blob);
    memset(d, 0, sizeof *d);
}

static void ref_load(const char *name, ref_data *d)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/reference_%s.bin", SM_TEST_DATA_DIR, name);
    memset(d, 0, sizeof *d);
    FILE *f = fopen(path, "rb");
    if (!f) fail_msg("cannot open %s; " HINT, path);
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    assert_true(size > 0);
    d->blob = malloc((size_t)size);
    assert_non_null(d->blob);
    assert_int_equal(fread(d->blob, 1, (size_t)size, f), (size_t)size);
    fclose(f);

    reader r = {d->blob, d->blob + size, 1};
    const uint8_t *magic = take(&r, 8);
    if (!magic || memcmp(magic, "SMREF001", 8) != 0) fail_msg("%s: bad magic; " HINT, path);
    uint32_t version = get_u32(&r);
    if (version != REF_VERSION)
        fail_msg("%s: format version %u, this test reads %d; " HINT, path, version, REF_VERSION);
    uint32_t len = get_u32(&r);
    const uint8_t *arch = take(&r, len);
    if (!arch || len >= sizeof d->arch) fail_msg("%s: bad arch string; " HINT, path);
    memcpy(d->arch, arch, len);
    d->arch[len] = '\0';
    d->pairs = get_u32(&r), d->c = get_u32(&r), d->h = get_u32(&r), d->w = get_u32(&r);
    d->n_sub = get_u32(&r), d->n_head = get_u32(&r), d->n_steps = get_u32(&r);
    d->lr = get_f64(&r), d->beta1 = get_f64(&r), d->beta2 = get_f64(&r), d->eps = get_f64(&r);
    const size_t img = (size_t)d->pairs * d->c * d->h * d->w;
    d->sub = get_f32s(&r, d->n_sub);
    d->head = get_f32s(&r, d->n_head);
    d->left = get_f32s(&r, img);
    d->right = get_f32s(&r, img);
    d->labels = get_f32s(&r, d->pairs);
    d->loss = get_f32s(&r, 1);
    d->g_sub = get_f32s(&r, d->n_sub);
    d->g_head = get_f32s(&r, d->n_head);
    d->losses = get_f32s(&r, d->n_steps);
    d->p_sub = get_f32s(&r, d->n_sub);
    d->p_head = get_f32s(&r, d->n_head);
    const uint8_t *end = take(&r, 8);
    if (!r.ok || !end || memcmp(end, "SMREFEND", 8) != 0 || r.p != r.end)
        fail_msg("%s: truncated or inconsistent; " HINT, path);
}

/* ---- comparison ---- */

/* max |a - b| / max |b| over n values (the absolute error where the reference is all zero). */
static double rel_err(const float *a, const float *b, size_t n)
{
    double num = 0.0, den = 0.0;
    for (size_t i = 0; i < n; i++) {
        num = fmax(num, fabs((double)a[i] - (double)b[i]));
        den = fmax(den, fabs((double)b[i]));
    }
    return den > 0.0 ? num / den : num;
}

typedef struct worst {
    double err;
    char what[64];
} worst;

#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static void
note(worst *w, double err, const char *fmt, ...)
{
    if (!(err <= w->err)) { /* also keeps a NaN */
        w->err = err;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(w->what, sizeof w->what, fmt, ap);
        va_end(ap);
    }
}

/* Per-tensor errors of a subnet-sized and a head-sized array against the reference. */
static void compare_tensors(const sm_subnet *s, const float *sub, const float *ref_sub, size_t dim,
                            const float *head, const float *ref_head, worst *w)
{
    for (size_t i = 0; i < s->arch.n_layers; i++) {
        const sm__layer *l = &s->arch.layers[i];
        if (l->n_w == 0) continue;
        note(w, rel_err(sub + l->w_off, ref_sub + l->w_off, l->n_w), "layer %zu weight", i);
        note(w, rel_err(sub + l->b_off, ref_sub + l->b_off, l->n_b), "layer %zu bias", i);
    }
    note(w, rel_err(head, ref_head, dim), "head weight");
    note(w, rel_err(head + dim, ref_head + dim, 1), "head bias");
}

/* ---- the test ---- */

static void check_case(const char *name, int64_t micro)
{
    ref_data d;
    ref_load(name, &d);

    sm_backend *be = NULL;
    sm_arch *arch = NULL;
    sm_subnet *sub = NULL;
    sm_head *head = NULL;
    sm_adam *adam = NULL;
    sm_trainer *tr = NULL;
    assert_int_equal(test_backend_create(&be), SM_OK);
    assert_int_equal(sm_arch_from_string(d.arch, &arch), SM_OK);
    assert_int_equal(sm_subnet_create(be, arch, 1, &sub), SM_OK);
    if (sm_subnet_num_params(sub) != d.n_sub)
        fail_msg("%s: the library counts %zu parameters, the file %u; " HINT, name,
                 sm_subnet_num_params(sub), d.n_sub);
    const size_t dim = sm_subnet_feature_dim(sub);
    assert_int_equal(dim + 1, d.n_head);
    assert_int_equal(sm_head_create(be, dim, 2, &head), SM_OK);
    assert_int_equal(sm__subnet_write_params(sub, d.sub), SM_OK);
    assert_int_equal(sm__head_write_params(head, d.head), SM_OK);

    assert_int_equal(sm_adam_create(sub, head, &adam), SM_OK);
    assert_int_equal(sm_adam_set(adam, SM_ADAM_LEARNING_RATE, d.lr), SM_OK);
    assert_int_equal(sm_adam_set(adam, SM_ADAM_BETA1, d.beta1), SM_OK);
    assert_int_equal(sm_adam_set(adam, SM_ADAM_BETA2, d.beta2), SM_OK);
    assert_int_equal(sm_adam_set(adam, SM_ADAM_EPSILON, d.eps), SM_OK);
    assert_int_equal(sm_trainer_create(sub, head, adam, NULL, 3, &tr), SM_OK);
    assert_int_equal(sm_trainer_set_param(tr, SM_TRAINER_MICRO_BATCH, micro), SM_OK);

    float *sub_buf = malloc(d.n_sub * sizeof *sub_buf);
    float *head_buf = malloc(d.n_head * sizeof *head_buf);
    assert_true(sub_buf && head_buf);

    /* loss and gradients at the reference parameters */
    float loss;
    assert_int_equal(sm__trainer_compute_grads(tr, d.pairs, d.left, d.right, d.labels, &loss),
                     SM_OK);
    double e_loss = fabs((double)loss - (double)d.loss[0]) / fabs((double)d.loss[0]);
    worst w_grad = {0.0, ""};
    assert_int_equal(sm__subnet_read_grads(sub, sub_buf), SM_OK);
    assert_int_equal(sm__head_read_grads(head, head_buf), SM_OK);
    compare_tensors(sub, sub_buf, d.g_sub, dim, head_buf, d.g_head, &w_grad);

    /* Adam steps on the same batch */
    worst w_step = {0.0, ""};
    for (uint32_t k = 0; k < d.n_steps; k++) {
        float l;
        assert_int_equal(sm_train_step_batch(tr, d.pairs, d.left, d.right, d.labels, &l), SM_OK);
        note(&w_step, fabs((double)l - (double)d.losses[k]) / fabs((double)d.losses[k]),
             "loss of step %u", k + 1);
    }
    assert_int_equal(sm__subnet_read_params(sub, sub_buf), SM_OK);
    assert_int_equal(sm__head_read_params(head, head_buf), SM_OK);
    worst w_par = {0.0, ""};
    compare_tensors(sub, sub_buf, d.p_sub, dim, head_buf, d.p_head, &w_par);

    print_message("%-9s micro-batch %2lld of %u pairs: max rel err loss %.2e | grads %.2e (%s) | "
                  "step losses %.2e (%s) | params after %u steps %.2e (%s)\n",
                  name, (long long)micro, d.pairs, e_loss, w_grad.err, w_grad.what, w_step.err,
                  w_step.what, d.n_steps, w_par.err, w_par.what);

    free(sub_buf);
    free(head_buf);
    sm_trainer_destroy(tr);
    sm_adam_destroy(adam);
    sm_head_destroy(head);
    sm_subnet_destroy(sub);
    sm_arch_destroy(arch);
    sm_backend_destroy(be);
    ref_free(&d);

    /* checked after printing, so a failure still shows every number */
    assert_true(e_loss < TOL_LOSS);
    assert_true(w_grad.err < TOL_GRAD);
    assert_true(w_step.err < TOL_STEP);
    assert_true(w_par.err < TOL_STEP);
}

static void small_micro_batches(void **state)
{
    (void)state;
    check_case("small", 4); /* 6 pairs: chunks of 4 and 2 */
}

static void small_one_chunk(void **state)
{
    (void)state;
    check_case("small", 6);
}

static void koch_like_micro_batches(void **state)
{
    (void)state;
    check_case("koch_like", 3); /* 4 pairs: chunks of 3 and 1 */
}

static void koch_like_one_chunk(void **state)
{
    (void)state;
    check_case("koch_like", 32); /* the default micro-batch, larger than the batch */
}

/* GroupNorm (F.group_norm, as torch.nn.GroupNorm) with weights and biases away from 1 and 0 */
static void gn_micro_batches(void **state)
{
    (void)state;
    check_case("gn", 4); /* 6 pairs: chunks of 4 and 2, each image normalised by itself */
}

static void gn_one_chunk(void **state)
{
    (void)state;
    check_case("gn", 6);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(small_micro_batches),
        cmocka_unit_test(small_one_chunk),
        cmocka_unit_test(koch_like_micro_batches),
        cmocka_unit_test(koch_like_one_chunk),
        cmocka_unit_test(gn_micro_batches),
        cmocka_unit_test(gn_one_chunk),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
