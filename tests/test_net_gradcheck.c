/* SPDX-License-Identifier: MIT */
/* The whole network's gradient, as the trainer computes it in float through the backend, against
 * central finite differences of a double-precision reference network (ref_ops.c) built from the
 * same layer list. This checks the core's wiring of the backward pass: layer order, aliasing,
 * ping-pong buffers, micro-batch accumulation and the head. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "train/training.h"
#include "test_backend.h"
#include "ref_ops.h"

typedef struct net_case {
    const sm_arch *arch;
    size_t n_sub, n_head, pairs, in;
    const double *left, *right, *labels;
    double *params; /* subnet params ++ head params */
} net_case;

/* Runs one image through the layer list in double; returns the output size. */
static size_t ref_subnet(const sm_arch *a, const double *p, const double *x, double *out,
                         double *scratch)
{
    size_t cap = 1 << 16;
    double *cur = scratch, *nxt = scratch + cap;
    memcpy(cur, x, sm__arch_in_size(a) * sizeof *cur);
    for (size_t i = 0; i < a->n_layers; i++) {
        const sm__layer *l = &a->layers[i];
        size_t no = sm__layer_out_size(l);
        switch (l->kind) {
        case SM_LAYER_CONV:
            ref_conv(1, l->in_c, l->in_h, l->in_w, l->out_c, l->b, l->b, cur, p + l->w_off,
                     p + l->b_off, nxt);
            break;
        case SM_LAYER_RELU: ref_relu(no, cur, nxt); break;
        case SM_LAYER_GROUPNORM:
            ref_groupnorm(1, l->in_c, l->in_h, l->in_w, l->a, 1e-5, cur, p + l->w_off, p + l->b_off,
                          nxt);
            break;
        case SM_LAYER_MAXPOOL: ref_maxpool(1, l->in_c, l->in_h, l->in_w, l->a, cur, nxt); break;
        case SM_LAYER_FLATTEN: memcpy(nxt, cur, no * sizeof *nxt); break;
        case SM_LAYER_FC: ref_fc(1, l->in_c, l->out_c, cur, p + l->w_off, p + l->b_off, nxt); break;
        }
        double *t = cur;
        cur = nxt;
        nxt = t;
    }
    size_t no = sm_arch_output_size(a);
    memcpy(out, cur, no * sizeof *out);
    return no;
}

static double ref_loss(void *ctx, const double *unused)
{
    (void)unused;
    net_case *c = ctx;
    size_t d = sm_arch_output_size(c->arch);
    double *scratch = malloc(2 * (1 << 16) * sizeof *scratch);
    double *f1 = malloc(d * sizeof *f1), *f2 = malloc(d * sizeof *f2);
    double *z = malloc(c->pairs * sizeof *z);
    const double *w = c->params + c->n_sub;
    for (size_t i = 0; i < c->pairs; i++) {
        ref_subnet(c->arch, c->params, c->left + i * c->in, f1, scratch);
        ref_subnet(c->arch, c->params, c->right + i * c->in, f2, scratch);
        ref_sigmoid(d, f1, f1);
        ref_sigmoid(d, f2, f2);
        ref_absdiff(d, f1, f2, f1);
        z[i] = w[d];
        for (size_t k = 0; k < d; k++) z[i] += w[k] * f1[k];
    }
    double l = ref_bce_mean((int)c->pairs, z, c->labels);
    free(scratch), free(f1), free(f2), free(z);
    return l;
}

static void check_net(const char *arch_text, size_t pairs, int micro, unsigned seed)
{
    sm_backend *be;
    sm_arch *arch;
    sm_subnet *sub;
    sm_head *head;
    sm_adam *adam;
    sm_trainer *tr;
    assert_int_equal(test_backend_create(&be), SM_OK);
    assert_int_equal(sm_arch_from_string(arch_text, &arch), SM_OK);
    assert_int_equal(sm_subnet_create(be, arch, 1, &sub), SM_OK);
    size_t d = sm_subnet_feature_dim(sub);
    assert_int_equal(sm_head_create(be, d, 2, &head), SM_OK);
    assert_int_equal(sm_adam_create(sub, head, &adam), SM_OK);
    assert_int_equal(sm_trainer_create(sub, head, adam, NULL, 3, &tr), SM_OK);
    assert_int_equal(sm_trainer_set_param(tr, SM_TRAINER_MICRO_BATCH, micro), SM_OK);

    net_case c = {arch, sub->n_params, head->n_params, pairs, sm__arch_in_size(arch),
                  NULL, NULL,          NULL,           NULL};
    size_t np = c.n_sub + c.n_head;
    /* weights well above the narrow init, so every layer matters to the loss */
    c.params = malloc(np * sizeof *c.params);
    ref_fill_uniform(&seed, -0.6, 0.6, np, c.params);
    /* GroupNorm near its init (weight 1 +- 0.3, bias +- 0.18): a weight near 0 with a negative
     * bias would put every output below the ReLU after it, a dead layer with no gradient */
    for (size_t i = 0; i < arch->n_layers; i++) {
        const sm__layer *l = &arch->layers[i];
        if (l->kind != SM_LAYER_GROUPNORM) continue;
        for (size_t k = 0; k < l->n_w; k++)
            c.params[l->w_off + k] = 1.0 + 0.5 * c.params[l->w_off + k];
        for (size_t k = 0; k < l->n_b; k++) c.params[l->b_off + k] *= 0.3;
    }
    double *left = malloc(pairs * c.in * sizeof *left),
           *right = malloc(pairs * c.in * sizeof *right);
    double *labels = malloc(pairs * sizeof *labels);
    ref_fill_uniform(&seed, 0, 1, pairs * c.in, left);
    ref_fill_uniform(&seed, 0, 1, pairs * c.in, right);
    for (size_t i = 0; i < pairs; i++) labels[i] = (double)(i % 2);
    c.left = left, c.right = right, c.labels = labels;

    /* the library sees exactly the float-rounded values the reference uses */
    float *fp = malloc(np * sizeof *fp), *fl = malloc(pairs * c.in * sizeof *fl);
    float *fr = malloc(pairs * c.in * sizeof *fr), *fy = malloc(pairs * sizeof *fy);
    for (size_t i = 0; i < np; i++) c.params[i] = fp[i] = (float)c.params[i];
    for (size_t i = 0; i < pairs * c.in; i++) {
        left[i] = fl[i] = (float)left[i];
        right[i] = fr[i] = (float)right[i];
    }
    for (size_t i = 0; i < pairs; i++) fy[i] = (float)labels[i];
    assert_int_equal(sm__subnet_write_params(sub, fp), SM_OK);
    assert_int_equal(sm__head_write_params(head, fp + c.n_sub), SM_OK);

    float loss;
    assert_int_equal(sm__trainer_compute_grads(tr, pairs, fl, fr, fy, &loss), SM_OK);
    float *fg = malloc(np * sizeof *fg);
    assert_int_equal(sm__subnet_read_grads(sub, fg), SM_OK);
    assert_int_equal(sm__head_read_grads(head, fg + c.n_sub), SM_OK);
    for (size_t i = 0; i < np; i++) assert_true(isfinite(fg[i])); /* ref_rel_err skips NaN */

    double want_loss = ref_loss(&c, NULL);
    printf("%s, %zu pairs, micro-batch %d: loss %.6f (reference %.6f)\n", arch_text, pairs, micro,
           (double)loss, want_loss);
    assert_true(fabs(loss - want_loss) < 1e-5 * fmax(1.0, want_loss));

    double *num = malloc(np * sizeof *num), *ana = malloc(np * sizeof *ana);
    for (size_t i = 0; i < np; i++) {
        double keep = c.params[i];
        c.params[i] = keep + 1e-6;
        double up = ref_loss(&c, NULL);
        c.params[i] = keep - 1e-6;
        double dn = ref_loss(&c, NULL);
        c.params[i] = keep;
        num[i] = (up - dn) / 2e-6;
        ana[i] = fg[i];
    }
    /* per tensor, so a small tensor's error is not hidden by a large one's scale */
    double worst = 0;
    for (size_t i = 0; i < arch->n_layers; i++) {
        const sm__layer *l = &arch->layers[i];
        if (!l->n_w) continue;
        double ew = ref_rel_err(ana + l->w_off, num + l->w_off, l->n_w);
        double eb = ref_rel_err(ana + l->b_off, num + l->b_off, l->n_b);
        printf("  layer %zu (%s): weight %.2e, bias %.2e\n", i,
               l->kind == SM_LAYER_CONV ? "conv"
               : l->kind == SM_LAYER_FC ? "fc"
                                        : "gn",
               ew, eb);
        worst = fmax(worst, fmax(ew, eb));
    }
    double eh = ref_rel_err(ana + c.n_sub, num + c.n_sub, c.n_head);
    printf("  head: %.2e\n", eh);
    worst = fmax(worst, eh);
    assert_true(worst < 1e-4);

    free(c.params), free(left), free(right), free(labels), free(fp), free(fl), free(fr);
    free(fy), free(fg), free(num), free(ana);
    sm_trainer_destroy(tr);
    sm_adam_destroy(adam);
    sm_head_destroy(head);
    sm_subnet_destroy(sub);
    sm_arch_destroy(arch);
    sm_backend_destroy(be);
}

static void test_conv_net(void **state)
{
    (void)state;
    check_net("1x12x12:conv3k3,relu,pool2,conv4k2,relu,flatten,fc6", 5, 2, 7);
    check_net("1x12x12:conv3k3,relu,pool2,conv4k2,relu,flatten,fc6", 5, 32, 8);
}

static void test_mlp_tail(void **state)
{
    (void)state;
    /* fc -> relu -> fc, an odd-sized pool input, a conv with no ReLU after it */
    check_net("1x11x9:conv2k3,relu,pool2,conv3k3,flatten,fc8,relu,fc5", 4, 3, 9);
}

/* GroupNorm: before relu + pool (its output then lives in the gradient buffer), before relu +
 * flatten, as the first layer (no d(input)) with one channel per group, after a relu, and
 * feeding a conv (which reads its output in backward); micro-batches of 2 and 3 pairs over 5,
 * and all in one chunk. (Not one channel per group right after a conv: that conv's bias then
 * has a gradient of exactly 0, which a relative error cannot measure.) */
static void test_groupnorm_net(void **state)
{
    (void)state;
    check_net("1x12x12:conv4k3,gn2,relu,pool2,conv6k2,gn3,relu,flatten,fc6", 5, 2, 11);
    check_net("1x12x12:conv4k3,gn2,relu,pool2,conv6k2,gn3,relu,flatten,fc6", 5, 32, 12);
    check_net("2x9x9:gn2,conv4k3,relu,gn2,conv3k2,gn1,relu,pool2,flatten,fc5", 5, 3, 13);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conv_net),
        cmocka_unit_test(test_mlp_tail),
        cmocka_unit_test(test_groupnorm_net),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
