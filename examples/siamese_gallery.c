/* SPDX-License-Identifier: MIT */
/* siamese-gallery: enrol images into a gallery file and identify or verify new images against
 * it, using only <siamese/siamese.h> (include/siamese/gallery.h; docs/gallery.md).
 *
 *   siamese-gallery enrol MODEL FOLDER|ZIP OUT.gallery [--append] [--storage f32|bf16|f16|u8]
 *   siamese-gallery identify MODEL GALLERY IMAGE.png... [--top K]
 *   siamese-gallery identify MODEL GALLERY IMAGE.png... --verify LABEL [--threshold T]
 *   siamese-gallery calibrate MODEL FOLDER|ZIP [--pairs N] [--far F] [--save OUT.safetensors]
 *   siamese-gallery list MODEL GALLERY
 *
 * MODEL is a file written by siamese-train. A folder or zip holds Alphabet/character/NAME.png
 * (the Omniglot layout) or label/NAME.png; any PNG works (made grey, resized to the model's
 * input). `calibrate` scores random pairs of a labelled folder (other classes than the
 * gallery's, ideally) and prints the equal-error-rate threshold and the threshold for a target
 * false-accept rate, for --threshold; with --save it first fits Platt scaling on those pairs
 * (sm_calibrate_fit), folds it into the head (sm_head_calibrate) and writes the calibrated model,
 * whose score 0.5 is then the balanced decision point: --verify's default threshold. */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <siamese/siamese.h>

#include "cli.h"

typedef struct options {
    const char *backend;
    int threads, top, append, pairs;
    int storage;       /* enrol --storage: an sm_storage_type, or -1 (not given) */
    int threshold_set; /* --threshold given */
    const char *verify;
    const char *save; /* calibrate --save */
    double threshold, far;
    uint64_t seed;
} options;

static void usage(FILE *f)
{
    fprintf(
        f,
        "Usage:\n"
        "  siamese-gallery enrol MODEL FOLDER|ZIP OUT.gallery [--append] [--storage S]\n"
        "  siamese-gallery identify MODEL GALLERY IMAGE.png... [--top K]\n"
        "  siamese-gallery identify MODEL GALLERY IMAGE.png... --verify LABEL [--threshold T]\n"
        "  siamese-gallery calibrate MODEL FOLDER|ZIP [--pairs N] [--far F] [--save OUT]\n"
        "  siamese-gallery list MODEL GALLERY\n"
        "\n"
        "enrol      embeds every PNG of FOLDER or ZIP (Alphabet/character/*.png or label/*.png;\n"
        "           the label is the last two folders, or the one) with MODEL (a file written by\n"
        "           siamese-train) and writes the gallery file; --append adds to an existing one\n"
        "  --storage f32|bf16|f16|u8  how a new gallery keeps its feature vectors: f32 (the\n"
        "           default, exact), bf16 or f16 (half the bytes), u8 (a quarter: 256 levels\n"
        "           per vector); smaller galleries search faster, and rarely change the top\n"
        "           label (docs/gallery.md)\n"
        "identify   prints, for each image, the K labels with the highest scores (default 5):\n"
        "           a label's score is the mean over its enrolled examples; tied labels share a\n"
        "           rank, marked '='\n"
        "  --verify LABEL  instead answers accept or reject for each image claimed to be LABEL:\n"
        "           accept when its score >= --threshold (default 0.5: the balanced decision\n"
        "           point of a calibrated model; on one that is not, take one from calibrate)\n"
        "calibrate  scores --pairs random pairs (default 2000) of a labelled FOLDER or ZIP and\n"
        "           prints the equal error rate with its threshold, and the threshold for a\n"
        "           false-accept rate of at most --far (default 0.01)\n"
        "  --save OUT  first fits Platt scaling on those pairs (the two kinds weighing\n"
        "           equally), folds it into the head and writes the calibrated model to OUT\n"
        "           (a .safetensors file): its score 0.5 is the balanced decision point, and\n"
        "           the thresholds printed are its. Enrol galleries with OUT: one enrolled with\n"
        "           MODEL does not load with it (the head, and so the fingerprint, differ)\n"
        "list       prints the gallery's labels and how many examples each has\n"
        "\n"
        "Options: --backend auto|cpu|cpu-dnnl|cuda (default auto), --threads N (0 = all cores),\n"
        "--seed N (calibrate's pairs, default 1).\n"
        "Any PNG works: it is made grey (colour and transparency over white) and resized to the\n"
        "model's input size.\n");
}

static const char *const storage_names[] = {"f32", "bf16", "f16", "u8"};

/* The model and its input size. */
typedef struct model {
    sm_backend *backend;
    sm_subnet *subnet;
    sm_head *head;
    int h, w;
} model;

static void model_close(model *m)
{
    sm_head_destroy(m->head);
    sm_subnet_destroy(m->subnet);
    sm_backend_destroy(m->backend);
}

static int model_open(const options *o, const char *path, model *m)
{
    memset(m, 0, sizeof *m);
    sm_status st;
    sm_arch *arch = NULL;
    int c = 0;
    if (!cli_open_backend(o->backend, o->threads, &m->backend)) return 1;
    if ((st = sm_model_load(m->backend, path, &m->subnet, &m->head)))
        return cli_fail(st, "cannot load the model '%s'", path);
    st = sm_subnet_get_arch(m->subnet, &arch);
    if (st == SM_OK) st = sm_arch_input_shape(arch, &c, &m->h, &m->w);
    sm_arch_destroy(arch);
    if (st) return cli_fail(st, "cannot read the architecture of '%s'", path);
    if (c != 1)
        return cli_error(1, "the model takes %d-channel images; PNGs are read as grey ones", c);
    return 0;
}

/* Whether 0.5 is the model's calibrated decision point, in words. */
static void print_calibration(const model *m, const char *path)
{
    int calibrated = 0;
    double scale = 1, shift = 0;
    size_t pairs = 0;
    sm_head_calibration(m->head, &calibrated, &scale, &shift, &pairs);
    if (calibrated)
        printf("model %s: calibrated (Platt scaling, scale %.6g, shift %+.6g, fitted on %zu "
               "pairs): a score >= 0.5 reads \"same\"\n",
               path, scale, shift, pairs);
    else
        printf("model %s: not calibrated: 0.5 is not a calibrated decision point (--save "
               "writes a calibrated copy)\n",
               path);
}

static int cmd_enrol(const options *o, char **args)
{
    model m;
    int rc = model_open(o, args[0], &m);
    sm_gallery *g = NULL;
    sm_status st = SM_OK;
    if (rc) goto done;
    sm_gallery_options go = SM_GALLERY_OPTIONS_INIT;
    if (o->storage >= 0) go.storage = (sm_storage_type)o->storage;
    if (o->append && cli_file_exists(args[2])) st = sm_gallery_load(m.subnet, m.head, args[2], &g);
    else st = sm_gallery_create_with(m.subnet, m.head, &go, &g);
    if (st) {
        rc = cli_fail(st, "cannot %s the gallery '%s'", o->append ? "open" : "create", args[2]);
        goto done;
    }
    if (o->storage >= 0 && sm_gallery_storage(g) != go.storage) {
        rc = cli_error(1, "'%s' stores its vectors as %s: --storage cannot change that", args[2],
                       storage_names[sm_gallery_storage(g)]);
        goto done;
    }
    size_t n = 0;
    double t0 = cli_now();
    if ((st = sm_gallery_enrol_path(g, args[1], &n))) {
        rc = cli_fail(st, "cannot enrol '%s'", args[1]);
        goto done;
    }
    double dt = cli_now() - t0;
    if ((st = sm_gallery_save(g, args[2]))) {
        rc = cli_fail(st, "cannot write '%s'", args[2]);
        goto done;
    }
    printf("enrolled %zu images of %s in %.1f s; %s holds %zu examples of %zu labels "
           "(%s, %.0f bytes per example in memory)\n",
           n, args[1], dt, args[2], sm_gallery_num_examples(g), sm_gallery_num_labels(g),
           storage_names[sm_gallery_storage(g)], sm_gallery_bytes_per_example(g));
done:
    sm_gallery_destroy(g);
    model_close(&m);
    return rc;
}

static int cmd_list(const options *o, char **args)
{
    model m;
    int rc = model_open(o, args[0], &m);
    sm_gallery *g = NULL;
    sm_status st;
    if (!rc && (st = sm_gallery_load(m.subnet, m.head, args[1], &g)))
        rc = cli_fail(st, "cannot open the gallery '%s'", args[1]);
    if (!rc) {
        printf("%zu examples of %zu labels, stored as %s\n", sm_gallery_num_examples(g),
               sm_gallery_num_labels(g), storage_names[sm_gallery_storage(g)]);
        for (size_t l = 0; l < sm_gallery_num_labels(g); l++)
            printf("%6zu  %s\n", sm_gallery_label_examples(g, l), sm_gallery_label_name(g, l));
    }
    sm_gallery_destroy(g);
    model_close(&m);
    return rc;
}

static void print_matches(const sm_gallery *g, const char *image, const sm_gallery_match *mt,
                          size_t n)
{
    printf("%s\n", image);
    for (size_t i = 0; i < n; i++) {
        char rank[32];
        snprintf(rank, sizeof rank, "%zu%s", mt[i].rank, mt[i].tied > 1 ? "=" : "");
        printf("  %-5s %.6f  %s", rank, mt[i].score, sm_gallery_label_name(g, mt[i].label));
        if (mt[i].tied > 1) printf("  (tied with %zu other labels)", mt[i].tied - 1);
        printf("\n");
    }
}

static int cmd_identify(const options *o, char **args, int n_images)
{
    model m;
    int rc = model_open(o, args[0], &m);
    sm_gallery *g = NULL;
    sm_status st = SM_OK;
    float *img = NULL;
    sm_gallery_match *mt = NULL;
    if (rc) goto done;
    if ((st = sm_gallery_load(m.subnet, m.head, args[1], &g))) {
        rc = cli_fail(st, "cannot open the gallery '%s'", args[1]);
        goto done;
    }
    if (o->verify && sm_gallery_find_label(g, o->verify) == SIZE_MAX) {
        rc = cli_error(1,
                       "the label '%s' is not enrolled in '%s' (siamese-gallery list shows "
                       "its labels)",
                       o->verify, args[1]);
        goto done;
    }
    int calibrated = 0;
    sm_head_calibration(m.head, &calibrated, NULL, NULL, NULL);
    if (o->verify && !o->threshold_set && !calibrated)
        cli_error(0,
                  "note: '%s' is not calibrated, so the default threshold 0.5 is not a "
                  "calibrated decision point: calibrate it (siamese-gallery calibrate MODEL "
                  "FOLDER --save OUT) or give --threshold",
                  args[0]);
    img = malloc((size_t)m.h * (size_t)m.w * sizeof *img);
    mt = malloc((size_t)o->top * sizeof *mt);
    if (!img || !mt) {
        rc = cli_error(1, "out of memory");
        goto done;
    }
    for (int i = 0; i < n_images; i++) {
        const char *path = args[2 + i];
        if ((st = sm_image_load_png(path, m.h, m.w, img))) {
            rc = cli_fail(st, "cannot read the image '%s'", path);
            goto done;
        }
        if (o->verify) {
            double score = 0;
            int accept = 0;
            st = sm_gallery_verify(g, o->verify, img, o->threshold, &score, &accept);
            if (!st)
                printf("%s: %s '%s' (score %.6g %s threshold %.6g)\n", path,
                       accept ? "accept" : "reject", o->verify, score, accept ? ">=" : "<",
                       o->threshold);
        } else {
            size_t found = 0;
            st = sm_gallery_identify(g, 1, img, (size_t)o->top, mt, &found);
            if (!st) print_matches(g, path, mt, found);
        }
        if (st) {
            rc = cli_fail(st, "cannot search '%s' for '%s'", args[1], path);
            goto done;
        }
    }
done:
    free(img);
    free(mt);
    sm_gallery_destroy(g);
    model_close(&m);
    return rc;
}

static int cmd_calibrate(const options *o, char **args)
{
    model m;
    int rc = model_open(o, args[0], &m);
    sm_dataset *ds = NULL;
    sm_roc *roc = NULL;
    float *scores = NULL, *labels = NULL;
    const size_t n = (size_t)o->pairs;
    sm_status st;
    if (rc) goto done;
    print_calibration(&m, args[0]);
    sm_dataset_options dopt = SM_DATASET_OPTIONS_INIT;
    dopt.resize = 1;
    if ((st = sm_dataset_open_with(args[1], m.h, m.w, NULL, 0, &dopt, &ds))) {
        rc = cli_fail(st, "cannot open '%s' (Alphabet/character/*.png)", args[1]);
        goto done;
    }
    scores = malloc(n * sizeof *scores);
    labels = malloc(n * sizeof *labels);
    if (!scores || !labels) {
        rc = cli_error(1, "out of memory");
        goto done;
    }
    printf("%d random pairs of %s (%zu classes)\n", o->pairs, args[1], sm_dataset_num_classes(ds));
    if (o->save) {
        /* the fit takes the head's logits (`scores` holds them for now), then the same pairs
         * are scored again by the calibrated model */
        double scale = 1, shift = 0;
        if ((st = sm_verification_logits(m.subnet, m.head, ds, n, o->seed, scores, labels)) ||
            (st = sm_calibrate_fit(n, scores, labels, &scale, &shift)) ||
            (st = sm_head_calibrate(m.head, scale, shift, n))) {
            rc = cli_fail(st, "cannot calibrate on pairs of '%s'", args[1]);
            goto done;
        }
        if ((st = sm_model_save(m.subnet, m.head, o->save))) {
            rc = cli_fail(st, "cannot write '%s'", o->save);
            goto done;
        }
        printf("Platt scaling (the two kinds of pair weighing equally): score = sigmoid(%.6g z "
               "%c %.6g) of the head's logit z, folded into the head; wrote %s: its score 0.5 "
               "is the balanced decision point (enrol galleries with it)\n",
               scale, shift < 0 ? '-' : '+', fabs(shift), o->save);
    }
    if ((st = sm_verification_scores(m.subnet, m.head, ds, n, o->seed, scores, labels)) ||
        (st = sm_roc_create(n, scores, labels, &roc))) {
        rc = cli_fail(st, "cannot score pairs of '%s'", args[1]);
        goto done;
    }
    size_t same = 0, same_in = 0, diff_in = 0;
    for (size_t i = 0; i < n; i++) {
        same += labels[i] == 1.0f;
        same_in += labels[i] == 1.0f && scores[i] >= 0.5f;
        diff_in += labels[i] == 0.0f && scores[i] >= 0.5f;
    }
    double eer, t_eer, t, far, frr;
    sm_roc_eer(roc, &eer, &t_eer);
    sm_roc_threshold_at_far(roc, o->far, &t, &far, &frr);
    printf("%s at threshold 0.5: FAR %.2f %%, FRR %.2f %%\n", o->save ? o->save : args[0],
           100.0 * (double)diff_in / (double)(n - same),
           100.0 * (double)(same - same_in) / (double)same);
    printf("equal error rate: %.2f %% at threshold %.6g\n", 100 * eer, t_eer);
    printf("false-accept rate <= %.2f %%: threshold %.6g (FAR %.2f %%, FRR %.2f %%)\n",
           100 * o->far, t, 100 * far, 100 * frr);
done:
    free(scores);
    free(labels);
    sm_roc_destroy(roc);
    sm_dataset_destroy(ds);
    model_close(&m);
    return rc;
}

int main(int argc, char **argv)
{
    cli_prog = "siamese-gallery";
    cli_show_library_warnings();
    options o = {.backend = "auto",
                 .top = 5,
                 .threshold = 0.5,
                 .pairs = 2000,
                 .far = 0.01,
                 .seed = 1,
                 .storage = -1};
    enum {
        O_BACKEND = 1,
        O_THREADS,
        O_TOP,
        O_APPEND,
        O_VERIFY,
        O_THRESHOLD,
        O_PAIRS,
        O_FAR,
        O_SEED,
        O_SAVE,
        O_STORAGE,
        O_HELP
    };
    static const struct option longs[] = {
        {"backend", required_argument, NULL, O_BACKEND},
        {"threads", required_argument, NULL, O_THREADS},
        {"top", required_argument, NULL, O_TOP},
        {"append", no_argument, NULL, O_APPEND},
        {"verify", required_argument, NULL, O_VERIFY},
        {"threshold", required_argument, NULL, O_THRESHOLD},
        {"pairs", required_argument, NULL, O_PAIRS},
        {"far", required_argument, NULL, O_FAR},
        {"seed", required_argument, NULL, O_SEED},
        {"save", required_argument, NULL, O_SAVE},
        {"storage", required_argument, NULL, O_STORAGE},
        {"help", no_argument, NULL, O_HELP},
        {NULL, 0, NULL, 0},
    };
    int c;
    long long seed = 1;
    while ((c = getopt_long(argc, argv, "h", longs, NULL)) != -1) {
        int ok = 1;
        switch (c) {
        case O_BACKEND: o.backend = optarg; break;
        case O_THREADS: ok = cli_parse_int("threads", optarg, 0, 1024, &o.threads); break;
        case O_TOP: ok = cli_parse_int("top", optarg, 1, 100000, &o.top); break;
        case O_APPEND: o.append = 1; break;
        case O_VERIFY: o.verify = optarg; break;
        case O_THRESHOLD:
            ok = cli_parse_double("threshold", optarg, 0, 0, 1, &o.threshold);
            o.threshold_set = 1;
            break;
        case O_PAIRS: ok = cli_parse_int("pairs", optarg, 2, 10000000, &o.pairs); break;
        case O_FAR: ok = cli_parse_double("far", optarg, 0, 0, 1, &o.far); break;
        case O_SEED: ok = cli_parse_ll("seed", optarg, 0, 0x7fffffffffffffffLL, &seed); break;
        case O_SAVE: o.save = optarg; break;
        case O_STORAGE:
            for (int t = 0; t < 4; t++)
                if (!strcmp(optarg, storage_names[t])) o.storage = t;
            if (o.storage < 0) {
                cli_error(0, "--storage takes f32, bf16, f16 or u8, not '%s'", optarg);
                ok = 0;
            }
            break;
        case 'h':
        case O_HELP: usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
        if (!ok) return 2;
    }
    o.seed = (uint64_t)seed;
    int n = argc - optind;
    char **args = argv + optind + 1;
    const char *cmd = n > 0 ? argv[optind] : "";
    if (o.threshold_set && !o.verify)
        return cli_error(2, "--threshold is for --verify LABEL (identify)");
    if (o.save && strcmp(cmd, "calibrate") != 0) return cli_error(2, "--save is for calibrate");
    if (o.storage >= 0 && strcmp(cmd, "enrol") != 0) return cli_error(2, "--storage is for enrol");
    if (!strcmp(cmd, "enrol") && n == 4) return cmd_enrol(&o, args);
    if (!strcmp(cmd, "identify") && n >= 4) return cmd_identify(&o, args, n - 3);
    if (!strcmp(cmd, "calibrate") && n == 3) return cmd_calibrate(&o, args);
    if (!strcmp(cmd, "list") && n == 3) return cmd_list(&o, args);
    if (!strcmp(cmd, "enrol") || !strcmp(cmd, "identify") || !strcmp(cmd, "calibrate") ||
        !strcmp(cmd, "list"))
        cli_error(0, "wrong number of arguments for '%s'", cmd);
    else cli_error(0, n ? "unknown command '%s'" : "expected a command%s", cmd);
    usage(stderr);
    return 2;
}
