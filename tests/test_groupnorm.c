/* SPDX-License-Identifier: MIT */
/* GroupNorm layers (gnG, 0.4) through the whole twin, on cpu-blas and cpu-dnnl:
 *  - GroupNorm normalises each image by itself (batch normalisation would not), so an image's
 *    results do not depend on the other images of its micro-batch, P x K chunk or shard: the
 *    groupnorm ops give the same bits for an image alone and in a batch of 5, and in the twin
 *    an image's embedding (sm_embed) and every layer's output in the training forward are the
 *    same bits whatever the other 4 images of its batch are. The twin's output for an image
 *    alone, or at another position in the batch, is only printed: the convolutions' and the
 *    fc's GEMMs may round differently with the batch's shape, with or without groupnorm
 *    (measured: cpu-dnnl's sgemm for a 1-row fc; cpu-blas under valgrind, whose emulated CPU
 *    gets other OpenBLAS kernels);
 *  - cpu-blas and cpu-dnnl agree on the embeddings, the loss and every gradient.
 * The op-level checks are in test_ops_gradcheck.c, the PyTorch comparison in
 * test_reference_torch.c (case "gn"). */
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

#define ARCH "1x12x12:conv8k3,gn4,relu,pool2,conv8k3,gn2,relu,flatten,fc16"
enum { PIX = 144, N = 5 };

static uint64_t rng_state = 0x2545F4914F6CDD1Du;

static float urand(float lo, float hi)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return lo + (hi - lo) * (float)((rng_state >> 40) * (1.0 / 16777216.0));
}

/* A subnet of ARCH with fixed weights (He-scaled from the seed) and GroupNorm weights and
 * biases away from 1 and 0; NULL when the backend is not available here. */
static sm_subnet *make(sm_backend_kind kind, sm_backend **be)
{
    if (sm_backend_create(kind, be) != SM_OK) return NULL;
    sm_arch *arch;
    sm_subnet *s;
    assert_int_equal(sm_arch_from_string(ARCH, &arch), SM_OK);
    assert_int_equal(sm_subnet_create(*be, arch, 5, &s), SM_OK);
    sm_arch_destroy(arch);
    assert_int_equal(sm_subnet_init(s, SM_INIT_HE, 6), SM_OK);
    float *p = malloc(s->n_params * sizeof *p);
    assert_int_equal(sm__subnet_read_params(s, p), SM_OK);
    for (size_t i = 0; i < s->arch.n_layers; i++) {
        const sm__layer *l = &s->arch.layers[i];
        if (l->kind != SM_LAYER_GROUPNORM) continue;
        for (size_t k = 0; k < l->n_w; k++) {
            p[l->w_off + k] = 1.0f + 0.3f * sinf((float)(k + i));
            p[l->b_off + k] = 0.2f * cosf((float)(3 * k + i));
        }
    }
    assert_int_equal(sm__subnet_write_params(s, p), SM_OK);
    free(p);
    return s;
}

static void destroy(sm_subnet *s, sm_backend *be)
{
    sm_subnet_destroy(s);
    sm_backend_destroy(be);
}

/* The training workspace's forward (what the trainer's steps run) on n images: the output of
 * every layer that keeps its own (out[i], n x its size; NULL for the others). */
static void train_forward(const sm_subnet *s, size_t n, const float *images, float **out)
{
    sm__workspace ws;
    sm_backend *be = s->be;
    assert_int_equal(sm__workspace_create(s, N, true, &ws), SM_OK);
    assert_int_equal(be->ops->upload(be->ctx, ws.act[0], images, n * PIX * sizeof(float)), SM_OK);
    assert_int_equal(sm__subnet_forward(s, &ws, n), SM_OK);
    for (size_t i = 0; i < s->arch.n_layers; i++) {
        out[i] = NULL;
        if (!ws.plan[i].keep_output) continue;
        const size_t o = sm__layer_out_size(&s->arch.layers[i]);
        out[i] = malloc(n * o * sizeof(float));
        assert_int_equal(be->ops->download(be->ctx, out[i], ws.act[i + 1], n * o * sizeof(float)),
                         SM_OK);
    }
    sm__workspace_destroy(s, &ws);
}

/* groupnorm_fwd and _bwd on 5 images and on each alone: the same y, statistics and d(input) */
static void check_op_invariance(sm_backend *be)
{
    enum { C = 6, HW = 20, G = 3, M = C * HW };
    const sm_norm_shape s5 = {N, C, 4, 5, G, 1e-5}, s1 = {1, C, 4, 5, G, 1e-5};
    float x[N * M], dy[N * M], gamma[C], beta[C];
    for (int i = 0; i < N * M; i++) x[i] = urand(-1, 3), dy[i] = urand(-1, 1);
    for (int i = 0; i < C; i++) gamma[i] = urand(0.5f, 1.5f), beta[i] = urand(-0.5f, 0.5f);
    void *dx_, *ddy, *dg, *db, *dy_, *dst, *ddx, *dgg, *dgb;
    const void *in[] = {x, dy, gamma, beta};
    void **bufs[] = {&dx_, &ddy, &dg, &db, &dy_, &dst, &ddx, &dgg, &dgb};
    const size_t sizes[] = {N * M, N * M, C, C, N * M, 2 * N * G, N * M, C, C};
    for (int i = 0; i < 9; i++) {
        assert_int_equal(be->ops->alloc(be->ctx, sizes[i] * sizeof(float), bufs[i]), SM_OK);
        if (i < 4) assert_int_equal(be->ops->upload(be->ctx, *bufs[i], in[i], sizes[i] * 4), SM_OK);
        else assert_int_equal(be->ops->zero(be->ctx, *bufs[i], sizes[i] * 4), SM_OK);
    }
    float y5[N * M], st5[2 * N * G], dx5[N * M], y1[M], st1[2 * G], dx1[M];
    assert_int_equal(be->ops->groupnorm_fwd(be->ctx, &s5, dx_, dg, db, dy_, dst), SM_OK);
    assert_int_equal(be->ops->groupnorm_bwd(be->ctx, &s5, dx_, ddy, dg, dst, ddx, dgg, dgb), SM_OK);
    assert_int_equal(be->ops->download(be->ctx, y5, dy_, sizeof y5), SM_OK);
    assert_int_equal(be->ops->download(be->ctx, st5, dst, sizeof st5), SM_OK);
    assert_int_equal(be->ops->download(be->ctx, dx5, ddx, sizeof dx5), SM_OK);
    for (int k = 0; k < N; k++) {
        const float *xk = (const float *)dx_ + k * M, *dyk = (const float *)ddy + k * M;
        assert_int_equal(be->ops->groupnorm_fwd(be->ctx, &s1, xk, dg, db, dy_, dst), SM_OK);
        assert_int_equal(be->ops->groupnorm_bwd(be->ctx, &s1, xk, dyk, dg, dst, ddx, dgg, dgb),
                         SM_OK);
        assert_int_equal(be->ops->download(be->ctx, y1, dy_, sizeof y1), SM_OK);
        assert_int_equal(be->ops->download(be->ctx, st1, dst, sizeof st1), SM_OK);
        assert_int_equal(be->ops->download(be->ctx, dx1, ddx, sizeof dx1), SM_OK);
        assert_memory_equal(y1, y5 + k * M, sizeof y1);
        assert_memory_equal(st1, st5 + k * 2 * G, sizeof st1);
        assert_memory_equal(dx1, dx5 + k * M, sizeof dx1);
    }
    for (int i = 0; i < 9; i++) be->ops->free(be->ctx, *bufs[i]);
}

static void check_invariance(sm_backend_kind kind)
{
    sm_backend *be;
    sm_subnet *s = make(kind, &be);
    if (!s) {
        printf("SKIPPED: *** backend %s is not available, its checks did NOT run: %s ***\n",
               sm_backend_kind_name(kind), sm_last_error());
        skip();
    }
    check_op_invariance(be);
    const sm_arch *a = &s->arch;
    const size_t d = sm_subnet_feature_dim(s), nl = a->n_layers;
    float batch[N * PIX], other[N * PIX];
    for (size_t i = 0; i < N * PIX; i++) batch[i] = urand(0, 1), other[i] = urand(-1, 2);
    float f5[N * 16], f1[16], g5[N * 16], *t5[16], *u5[16];
    assert_int_equal(d, 16);
    assert_true(nl <= 16);
    assert_int_equal(sm_embed(s, N, batch, f5), SM_OK);
    train_forward(s, N, batch, t5);
    int alone_differs = 0, moved_differs = 0;
    for (int k = 0; k < N; k++) {
        /* among other images, at its own position: the same bits, in inference and in every
         * layer of the training forward */
        float mixed[N * PIX];
        memcpy(mixed, other, sizeof mixed);
        memcpy(mixed + k * PIX, batch + k * PIX, PIX * sizeof *mixed);
        assert_int_equal(sm_embed(s, N, mixed, g5), SM_OK);
        assert_memory_equal(g5 + k * d, f5 + k * d, d * sizeof *g5);
        train_forward(s, N, mixed, u5);
        for (size_t i = 0; i < nl; i++) {
            const size_t o = sm__layer_out_size(&a->layers[i]);
            if (t5[i]) assert_memory_equal(u5[i] + k * o, t5[i] + k * o, o * sizeof(float));
            free(u5[i]);
        }
        /* alone, and at another position: printed only (see the top) */
        assert_int_equal(sm_embed(s, 1, batch + k * PIX, f1), SM_OK);
        alone_differs += memcmp(f1, f5 + k * d, d * sizeof *f1) != 0;
        memcpy(mixed, other, sizeof mixed);
        memcpy(mixed + (N - 1 - k) * PIX, batch + k * PIX, PIX * sizeof *mixed);
        assert_int_equal(sm_embed(s, N, mixed, g5), SM_OK);
        moved_differs += memcmp(g5 + (N - 1 - k) * d, f5 + k * d, d * sizeof *g5) != 0;
    }
    for (size_t i = 0; i < nl; i++) free(t5[i]);
    /* the embeddings do differ between images (the layer is not a constant) */
    assert_memory_not_equal(f5, f5 + d, d * sizeof *f5);
    printf("%s: groupnorm ops: the same bits alone and in a batch of %d; the twin: each image's "
           "outputs the same among other images; whole embedding alone / at another position "
           "differs for %d / %d of %d images (GEMM rounding by batch shape, not groupnorm)\n",
           sm_backend_name(be), N, alone_differs, moved_differs, N);
    destroy(s, be);
}

static void invariant_cpu_blas(void **state)
{
    (void)state;
    check_invariance(SM_BACKEND_CPU);
}

static void invariant_cpu_dnnl(void **state)
{
    (void)state;
    check_invariance(SM_BACKEND_CPU_DNNL);
}

static double rel_err(const float *a, const float *b, size_t n)
{
    double num = 0.0, den = 0.0;
    for (size_t i = 0; i < n; i++) {
        if (isnan(a[i]) || isnan(b[i])) return INFINITY;
        num = fmax(num, fabs((double)a[i] - b[i]));
        den = fmax(den, fabs((double)b[i]));
    }
    return den > 0.0 ? num / den : num;
}

/* Loss and gradients of 6 pairs in micro-batches of 4 (a partial last chunk). */
static float loss_and_grads(sm_subnet *s, const float *left, const float *right,
                            const float *labels, float *grads)
{
    sm_head *h;
    sm_adam *a;
    sm_trainer *t;
    const size_t d = sm_subnet_feature_dim(s);
    assert_int_equal(sm_head_create(s->be, d, 8, &h), SM_OK);
    float hw[17];
    for (size_t i = 0; i <= d; i++) hw[i] = urand(-2, 2);
    assert_int_equal(sm__head_write_params(h, hw), SM_OK);
    assert_int_equal(sm_adam_create(s, h, &a), SM_OK);
    assert_int_equal(sm_trainer_create(s, h, a, NULL, 3, &t), SM_OK);
    assert_int_equal(sm_trainer_set_param(t, SM_TRAINER_MICRO_BATCH, 4), SM_OK);
    float loss;
    assert_int_equal(sm__trainer_compute_grads(t, 6, left, right, labels, &loss), SM_OK);
    assert_int_equal(sm__subnet_read_grads(s, grads), SM_OK);
    sm_trainer_destroy(t);
    sm_adam_destroy(a);
    sm_head_destroy(h);
    return loss;
}

static void backends_agree(void **state)
{
    (void)state;
    sm_backend *bb, *bd;
    sm_subnet *sb = make(SM_BACKEND_CPU, &bb), *sd = make(SM_BACKEND_CPU_DNNL, &bd);
    assert_non_null(sb);
    if (!sd) {
        printf("SKIPPED: *** cpu-dnnl is not available, the comparison did NOT run: %s ***\n",
               sm_last_error());
        destroy(sb, bb);
        skip();
    }
    /* the same weights: the host RNG draws them, whatever the backend */
    const size_t np = sb->n_params, d = sm_subnet_feature_dim(sb);
    float *pb = malloc(np * sizeof *pb), *pd = malloc(np * sizeof *pd);
    assert_int_equal(sm__subnet_read_params(sb, pb), SM_OK);
    assert_int_equal(sm__subnet_read_params(sd, pd), SM_OK);
    assert_memory_equal(pb, pd, np * sizeof *pb);

    float imgs[2 * 6 * PIX], labels[6], fb[12 * 16], fd[12 * 16];
    for (size_t i = 0; i < 2 * 6 * PIX; i++) imgs[i] = urand(0, 1);
    for (int i = 0; i < 6; i++) labels[i] = (float)(i % 2);
    assert_int_equal(sm_embed(sb, 12, imgs, fb), SM_OK);
    assert_int_equal(sm_embed(sd, 12, imgs, fd), SM_OK);
    double ef = rel_err(fd, fb, 12 * d);

    const uint64_t keep = rng_state;
    float lb = loss_and_grads(sb, imgs, imgs + 6 * PIX, labels, pb);
    rng_state = keep; /* the same head weights */
    float ld = loss_and_grads(sd, imgs, imgs + 6 * PIX, labels, pd);
    double el = fabs((double)ld - lb) / fabs((double)lb), eg = 0.0;
    for (size_t i = 0; i < sb->arch.n_layers; i++) {
        const sm__layer *l = &sb->arch.layers[i];
        if (!l->n_w) continue;
        double ew = rel_err(pd + l->w_off, pb + l->w_off, l->n_w);
        double eb = rel_err(pd + l->b_off, pb + l->b_off, l->n_b);
        printf("  layer %zu: weight %.2e, bias %.2e\n", i, ew, eb);
        eg = fmax(eg, fmax(ew, eb));
    }
    printf("cpu-dnnl against cpu-blas: embeddings %.2e, loss %.2e (%.7f), gradients %.2e\n", ef, el,
           (double)lb, eg);
    assert_true(ef < 1e-5);
    assert_true(el < 1e-5);
    assert_true(eg < 1e-4);
    free(pb), free(pd);
    destroy(sb, bb);
    destroy(sd, bd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(invariant_cpu_blas),
        cmocka_unit_test(invariant_cpu_dnnl),
        cmocka_unit_test(backends_agree),
    };
    return cmocka_run_group_tests_name("groupnorm", tests, NULL, NULL);
}
