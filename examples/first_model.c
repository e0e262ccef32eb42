/* SPDX-License-Identifier: MIT */
/* first_model.c: libsiamese in one sitting; read it first.
 * Trains a small Siamese network for a few steps on generated glyphs, saves it, loads it back
 * and scores two pairs of images. Every status is checked: that is the pattern to copy.
 * Build: cc first_model.c $(pkg-config --cflags --libs siamese) */
#include <stdio.h>

#include <siamese/siamese.h>

/* A failed call: say which, its status and the library's detail for this thread, then clean up. */
#define CHECK(call)                                                                                \
    do {                                                                                           \
        sm_status st_ = (call);                                                                    \
        if (st_ != SM_OK) {                                                                        \
            fprintf(stderr, "%s: %s: %s\n", #call, sm_status_name(st_), sm_last_error());          \
            goto done;                                                                             \
        }                                                                                          \
    } while (0)

int main(int argc, char **argv)
{
    const char *path = argc > 1 ? argv[1] : "first-model.safetensors";
    sm_backend *be = NULL;
    sm_arch *arch = NULL;
    sm_dataset *ds = NULL;
    sm_subnet *net = NULL, *loaded_net = NULL;
    sm_head *head = NULL, *loaded_head = NULL;
    sm_adam *adam = NULL;
    sm_trainer *tr = NULL;
    float img[3][32 * 32], loss = 0.0f, same = 0.0f, different = 0.0f;
    int rc = 1;

    CHECK(sm_backend_create(SM_BACKEND_AUTO, &be)); /* cuda, else cpu-dnnl, else cpu-blas */
    /* 32x32 greyscale in; two conv + ReLU + max-pool stages, then 32 features per image. */
    CHECK(
        sm_arch_from_string("1x32x32:conv8k5,relu,pool2,conv16k3,relu,pool2,flatten,fc32", &arch));
    CHECK(sm_dataset_create_synthetic(20, 6, 32, 32, /*seed*/ 7, &ds)); /* 20 classes x 6 */
    CHECK(sm_subnet_create(be, arch, /*seed*/ 1, &net));
    CHECK(sm_head_create(be, sm_subnet_feature_dim(net), /*seed*/ 2, &head));
    CHECK(sm_adam_create(net, head, &adam));
    CHECK(sm_adam_set(adam, SM_ADAM_LEARNING_RATE, 3e-3));
    CHECK(sm_trainer_create(net, head, adam, ds, /*seed*/ 3, &tr));
    CHECK(sm_trainer_set_param(tr, SM_TRAINER_BATCH_SIZE, 16)); /* random pairs per step */
    for (int step = 1; step <= 100; step++) {
        CHECK(sm_train_step(tr, &loss));
        if (step % 25 == 0) printf("step %d: loss %.4f\n", step, loss);
    }
    CHECK(sm_model_save(net, head, path)); /* atomic: an old file survives a failed save */

    CHECK(sm_model_load(be, path, &loaded_net, &loaded_head));
    for (size_t i = 0; i < 3; i++) /* images 0 and 1 share a class; image 6 is another's */
        CHECK(sm_dataset_get_image(ds, i == 2 ? 6 : i, img[i]));
    CHECK(sm_predict_pair(loaded_net, loaded_head, img[0], img[1], &same));
    CHECK(sm_predict_pair(loaded_net, loaded_head, img[0], img[2], &different));
    printf("same class: %.3f, different classes: %.3f (>= 0.5 reads \"same\")\n", same, different);
    rc = 0;
done: /* destroy in reverse order of creation; every destroy accepts NULL */
    sm_trainer_destroy(tr);
    sm_adam_destroy(adam);
    sm_head_destroy(loaded_head);
    sm_subnet_destroy(loaded_net);
    sm_head_destroy(head);
    sm_subnet_destroy(net);
    sm_dataset_destroy(ds);
    sm_arch_destroy(arch);
    sm_backend_destroy(be);
    return rc;
}
