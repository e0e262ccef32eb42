/* siamese-compare: scores two images with a trained model, using only <siamese/siamese.h>.
 *
 *   siamese-compare MODEL A.png B.png
 *
 * MODEL is a file written by siamese-train (OUT/model.safetensors), sm_trainer_save or
 * sm_model_save. The images must be greyscale PNGs of the model's input size (105 x 105 for
 * Omniglot). Prints the score in [0, 1] and "same" (score >= 0.5) or "different". */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <siamese/siamese.h>

#define PROG "siamese-compare"

static int fail(sm_status st, const char *what, const char *arg)
{
    const char *detail = sm_last_error();
    fprintf(stderr, PROG ": %s '%s': %s (%s)%s%s\n", what, arg, sm_status_name(st),
            sm_status_str(st), detail[0] ? ": " : "", detail);
    return 1;
}

static void usage(FILE *f)
{
    fprintf(f, "Usage: " PROG " MODEL A.png B.png\n"
               "Prints the similarity score of two images (1 = same class) under MODEL, a file\n"
               "written by siamese-train, and \"same\" (score >= 0.5) or \"different\".\n"
               "The images must be greyscale PNGs of the model's input size.\n");
}

int main(int argc, char **argv)
{
    if (argc == 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
        usage(stdout);
        return 0;
    }
    if (argc != 4) {
        usage(stderr);
        return 2;
    }
    const char *model = argv[1], *paths[2] = {argv[2], argv[3]};

    int rc = 1;
    sm_status st;
    sm_backend *backend = NULL;
    sm_subnet *subnet = NULL;
    sm_head *head = NULL;
    sm_arch *arch = NULL;
    float *img[2] = {NULL, NULL};

    if ((st = sm_backend_create(SM_BACKEND_AUTO, &backend))) {
        rc = fail(st, "cannot create a backend", "auto");
        goto done;
    }
    if ((st = sm_model_load(backend, model, &subnet, &head))) {
        rc = fail(st, "cannot load the model", model);
        goto done;
    }
    int c = 0, h = 0, w = 0;
    if ((st = sm_subnet_get_arch(subnet, &arch)) ||
        (st = sm_arch_input_shape(arch, &c, &h, &w))) {
        rc = fail(st, "cannot read the architecture of", model);
        goto done;
    }
    if (c != 1) {
        fprintf(stderr, PROG ": the model takes %d-channel images; only greyscale PNGs are read\n",
                c);
        goto done;
    }
    for (int i = 0; i < 2; i++) {
        img[i] = malloc((size_t)h * (size_t)w * sizeof(float));
        if (!img[i]) {
            fprintf(stderr, PROG ": out of memory\n");
            goto done;
        }
        if ((st = sm_image_read_png(paths[i], h, w, img[i]))) {
            rc = fail(st, "cannot read the image", paths[i]);
            goto done;
        }
    }
    float score = 0.0f;
    if ((st = sm_predict_pair(subnet, head, img[0], img[1], &score))) {
        rc = fail(st, "cannot score the pair with", model);
        goto done;
    }
    printf("%.4f %s\n", (double)score, score >= 0.5f ? "same" : "different");
    rc = 0;

done:
    free(img[0]);
    free(img[1]);
    sm_arch_destroy(arch);
    sm_head_destroy(head);
    sm_subnet_destroy(subnet);
    sm_backend_destroy(backend);
    return rc;
}
