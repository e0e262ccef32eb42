/* SPDX-License-Identifier: MIT */
/* Writes tests/data/gallery-v1/: a model and a gallery file of format version 1, as libsiamese
 * 0.4 wrote them (float32 rows at whatever 8-byte offset its header gave them), for
 * tests/test_gallery_store.c: galleries of 0.4 must load with 0.5 and answer as before. Built
 * against a 0.4 library (the tree at 7319583) with its public API only:
 *
 *   cc -O2 tests/gen/make_gallery_v1.c -I<0.4>/include -L<0.4 build>/lib -lsiamese \
 *      -Wl,-rpath,<0.4 build>/lib -o make_gallery_v1 && ./make_gallery_v1 tests/data/gallery-v1
 *
 * The model: 1x12x12:flatten,fc8, seeds 5 and 6; the gallery: 5 labels "alpha/charNN" with 3
 * images each of sm_dataset_create_synthetic(5, 4, 12, 12, 7) (image 4 c + j of class c). */
#include <stdio.h>
#include <stdlib.h>

#include <siamese/siamese.h>

#define CHECK(x)                                                                                   \
    do {                                                                                           \
        sm_status s_ = (x);                                                                        \
        if (s_) {                                                                                  \
            fprintf(stderr, "%s: %s\n", #x, sm_last_error());                                      \
            return 1;                                                                              \
        }                                                                                          \
    } while (0)

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: make_gallery_v1 OUT_DIR\n");
        return 2;
    }
    char model_path[4096], gallery_path[4096];
    snprintf(model_path, sizeof model_path, "%s/model.safetensors", argv[1]);
    snprintf(gallery_path, sizeof gallery_path, "%s/gallery.gallery", argv[1]);
    sm_backend *be;
    sm_arch *arch;
    sm_subnet *sub;
    sm_head *head;
    sm_dataset *ds;
    sm_gallery *g;
    CHECK(sm_backend_create(SM_BACKEND_CPU, &be));
    CHECK(sm_arch_from_string("1x12x12:flatten,fc8", &arch));
    CHECK(sm_subnet_create(be, arch, 5, &sub));
    CHECK(sm_head_create(be, sm_subnet_feature_dim(sub), 6, &head));
    CHECK(sm_dataset_create_synthetic(5, 4, 12, 12, 7, &ds));
    CHECK(sm_gallery_create(sub, head, &g));
    float img[3 * 144];
    for (size_t c = 0; c < 5; c++) {
        char label[32];
        snprintf(label, sizeof label, "alpha/char%02zu", c);
        for (size_t j = 0; j < 3; j++) CHECK(sm_dataset_get_image(ds, 4 * c + j, img + j * 144));
        CHECK(sm_gallery_enrol(g, label, 3, img));
    }
    CHECK(sm_model_save(sub, head, model_path));
    CHECK(sm_gallery_save(g, gallery_path));
    sm_gallery_destroy(g);
    sm_dataset_destroy(ds);
    sm_head_destroy(head);
    sm_subnet_destroy(sub);
    sm_arch_destroy(arch);
    sm_backend_destroy(be);
    return 0;
}
