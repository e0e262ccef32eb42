/* SPDX-License-Identifier: MIT */
/* Reduced gallery storage on real embeddings (integration suite): a small model is trained
 * briefly on Omniglot's background set (28 x 28, read from the zips in $SIAMESE_OMNIGLOT_DIR),
 * the first image of each of the evaluation set's 659 classes is enrolled, and the other 12,521
 * images are identified (top 5) in each storage type. bf16, f16 and u8 must keep the f32
 * gallery's best label for nearly every query and its accuracy within a point; the figures are
 * printed (docs/gallery.md quotes a longer-trained model's, from bench_gallery --omniglot).
 *
 * Without SIAMESE_OMNIGLOT_DIR the test says so loudly and exits 77 (meson: SKIP). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <siamese/siamese.h>

#define ARCH  "1x28x28:conv16k3,relu,pool2,conv32k3,relu,pool2,flatten,fc64"
#define STEPS 1500

#define ASSERT_OK(call)                                                                            \
    do {                                                                                           \
        sm_status st_ = (call);                                                                    \
        if (st_ != SM_OK) fail_msg("%s: %s: %s", #call, sm_status_name(st_), sm_last_error());     \
    } while (0)

static const char *data_dir;
static const char *const names[] = {"f32", "bf16", "f16", "u8"};

static sm_dataset *open_set(const char *name)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", data_dir, name);
    sm_dataset_options o = SM_DATASET_OPTIONS_INIT;
    o.resize = 1;
    sm_dataset *ds = NULL;
    ASSERT_OK(sm_dataset_open_with(path, 28, 28, NULL, 0, &o, &ds));
    return ds;
}

static void test_storage_agreement(void **state)
{
    (void)state;
    sm_dataset *bg = open_set("images_background.zip"), *ev = open_set("images_evaluation.zip");
    sm_backend *be;
    sm_arch *arch;
    sm_subnet *sub;
    sm_head *head;
    sm_adam *adam;
    sm_trainer *tr;
    ASSERT_OK(sm_backend_create(SM_BACKEND_CPU, &be));
    ASSERT_OK(sm_arch_from_string(ARCH, &arch));
    ASSERT_OK(sm_subnet_create(be, arch, 1, &sub));
    ASSERT_OK(sm_head_create(be, sm_subnet_feature_dim(sub), 2, &head));
    ASSERT_OK(sm_adam_create(sub, head, &adam));
    ASSERT_OK(sm_adam_set(adam, SM_ADAM_LEARNING_RATE, 1e-3));
    ASSERT_OK(sm_trainer_create(sub, head, adam, bg, 3, &tr));
    ASSERT_OK(sm_trainer_set_param(tr, SM_TRAINER_BATCH_SIZE, 32));
    for (int i = 0; i < STEPS; i++) ASSERT_OK(sm_train_step(tr, NULL));

    const size_t n = sm_dataset_num_images(ev), nc = sm_dataset_num_classes(ev);
    const size_t d = sm_subnet_feature_dim(sub), px = 28 * 28;
    float *feat = malloc(n * d * sizeof *feat), *img = malloc(64 * px * sizeof *img);
    float *q = malloc(n * d * sizeof *q);
    size_t *seen = calloc(nc, sizeof *seen), *truth = malloc(n * sizeof *truth), nq = 0;
    sm_gallery_match *ref = malloc(n * 5 * sizeof *ref), *m = malloc(n * 5 * sizeof *m);
    assert_true(feat && img && q && seen && truth && ref && m);
    for (size_t off = 0; off < n; off += 64) {
        size_t k = n - off < 64 ? n - off : 64;
        for (size_t i = 0; i < k; i++) ASSERT_OK(sm_dataset_get_image(ev, off + i, img + i * px));
        ASSERT_OK(sm_embed(sub, k, img, feat + off * d));
    }
    double acc[4] = {0};
    size_t same1[4] = {0}, same5[4] = {0};
    for (int t = SM_STORAGE_F32; t <= SM_STORAGE_U8; t++) {
        sm_gallery_options o = SM_GALLERY_OPTIONS_INIT;
        o.storage = (sm_storage_type)t;
        sm_gallery *g;
        ASSERT_OK(sm_gallery_create_with(sub, head, &o, &g));
        memset(seen, 0, nc * sizeof *seen);
        nq = 0;
        for (size_t i = 0; i < n; i++) {
            size_t c = sm_dataset_image_class(ev, i);
            if (seen[c]++ == 0) {
                ASSERT_OK(
                    sm_gallery_enrol_embeddings(g, sm_dataset_class_name(ev, c), 1, feat + i * d));
            } else {
                memcpy(q + nq * d, feat + i * d, d * sizeof *q);
                truth[nq++] = c;
            }
        }
        ASSERT_OK(sm_gallery_identify_embeddings(g, nq, q, 5, m, NULL));
        if (t == SM_STORAGE_F32) memcpy(ref, m, nq * 5 * sizeof *m);
        size_t right = 0;
        for (size_t k = 0; k < nq; k++) {
            right += !strcmp(sm_gallery_label_name(g, m[k * 5].label),
                             sm_dataset_class_name(ev, truth[k]));
            same1[t] += m[k * 5].label == ref[k * 5].label;
            int same = 1;
            for (int j = 0; j < 5; j++) same &= m[k * 5 + j].label == ref[k * 5 + j].label;
            same5[t] += same;
        }
        acc[t] = 100.0 * right / nq;
        printf("# %s: 659-way one-shot top-1 %.2f %%; same best label as f32 %.2f %%, same five "
               "%.2f %%\n",
               names[t], acc[t], 100.0 * same1[t] / nq, 100.0 * same5[t] / nq);
        sm_gallery_destroy(g);
    }
    assert_true(acc[SM_STORAGE_F32] > 2.0); /* chance: 0.15 % */
    for (int t = SM_STORAGE_BF16; t <= SM_STORAGE_U8; t++) {
        assert_true(fabs(acc[t] - acc[SM_STORAGE_F32]) <= 1.0);
        assert_true(same1[t] >= (t == SM_STORAGE_F16 ? 0.99 : 0.97) * (double)nq);
    }
    free(feat), free(img), free(q), free(seen), free(truth), free(ref), free(m);
    sm_trainer_destroy(tr);
    sm_adam_destroy(adam);
    sm_head_destroy(head);
    sm_subnet_destroy(sub);
    sm_arch_destroy(arch);
    sm_backend_destroy(be);
    sm_dataset_destroy(bg);
    sm_dataset_destroy(ev);
}

int main(void)
{
    data_dir = getenv("SIAMESE_OMNIGLOT_DIR");
    if (!data_dir || !data_dir[0]) {
        printf("SKIPPED: SIAMESE_OMNIGLOT_DIR not set; the reduced-storage agreement test on real "
               "embeddings did not run\n");
        fprintf(stderr, "SKIPPED: SIAMESE_OMNIGLOT_DIR not set; the reduced-storage agreement "
                        "test on real embeddings did not run\n");
        return 77;
    }
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_storage_agreement)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
