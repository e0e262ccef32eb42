/* SPDX-License-Identifier: MIT */
/* siamese-compare: scores two images with a trained model, using only <siamese/siamese.h>.
 *
 *   siamese-compare MODEL A.png B.png
 *
 * MODEL is a file written by siamese-train (OUT/model.safetensors), sm_trainer_save or
 * sm_model_save. The images may be any PNGs: any size (resized to the model's input), colour
 * or with alpha (made grey by the library's grey rule, sm_image_load_png). Prints the score in
 * [0, 1] and a verdict: "same" (score >= 0.5) or "different". On a calibrated model
 * (siamese-train --val-alphabets, siamese-gallery calibrate --save) 0.5 is the balanced
 * decision point; on another, a note on stderr says that the verdict's cut is not calibrated. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <siamese/siamese.h>

#include "cli.h"

static void usage(FILE *f)
{
    fprintf(f, "Usage: siamese-compare MODEL A.png B.png\n"
               "Prints how similar two images are under MODEL (a file written by siamese-train):\n"
               "a score in [0, 1] (1 = the same class) and \"same\" (score >= 0.5) or\n"
               "\"different\". Any PNG works: it is made grey (colour and transparency over\n"
               "white) and resized to the model's input size. 0.5 is the balanced decision\n"
               "point of a calibrated model (siamese-train --val-alphabets, siamese-gallery\n"
               "calibrate --save); for a model that is not, a note on stderr says so.\n");
}

int main(int argc, char **argv)
{
    cli_prog = "siamese-compare";
    cli_show_library_warnings();
    if (argc == 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
        usage(stdout);
        return 0;
    }
    if (argc != 4) {
        cli_error(0, "expected 3 arguments (MODEL A.png B.png), got %d", argc - 1);
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

    if (!cli_open_backend("auto", 0, &backend)) goto done;
    if ((st = sm_model_load(backend, model, &subnet, &head))) {
        rc = cli_fail(st, "cannot load the model '%s'", model);
        goto done;
    }
    int c = 0, h = 0, w = 0;
    if ((st = sm_subnet_get_arch(subnet, &arch)) || (st = sm_arch_input_shape(arch, &c, &h, &w))) {
        rc = cli_fail(st, "cannot read the architecture of '%s'", model);
        goto done;
    }
    if (c != 1) {
        cli_error(1, "the model takes %d-channel images; the examples give it grey ones", c);
        goto done;
    }
    for (int i = 0; i < 2; i++) {
        if (!(img[i] = malloc((size_t)h * (size_t)w * sizeof(float)))) {
            cli_error(1, "out of memory");
            goto done;
        }
        if ((st = sm_image_load_png(paths[i], h, w, img[i]))) {
            rc = cli_fail(st, "cannot read the image '%s'", paths[i]);
            goto done;
        }
    }
    float score = 0.0f;
    if ((st = sm_predict_pair(subnet, head, img[0], img[1], &score))) {
        rc = cli_fail(st, "cannot score the pair with '%s'", model);
        goto done;
    }
    printf("%.4f %s\n", (double)score, score >= 0.5f ? "same" : "different");
    int calibrated = 0;
    sm_head_calibration(head, &calibrated, NULL, NULL, NULL);
    if (!calibrated)
        cli_error(0, "note: '%s' is not calibrated: \"same\" means a score >= 0.5, which is not "
                     "a calibrated decision point for it (siamese-gallery calibrate --save "
                     "writes a calibrated copy)",
                  model);
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
