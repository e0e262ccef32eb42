/* SPDX-License-Identifier: MIT */
/* siamese-train: the reference pipeline (docs/reference.md) end to end, using only
 * <siamese/siamese.h>.
 *
 *   1. open the training set (Omniglot's images_background, a folder or the zip: --data, else
 *      looked for as omniglot_find.h says) or, when there is none, generate a synthetic set of
 *      handwriting-like glyphs;
 *   2. create the twin subnetwork (default: Koch et al. 2015), the head, Adam and a trainer;
 *   3. train for --iterations steps of --batch random pairs (optionally distorted, --augment;
 *      or P x K batches, --pk; sampling options --neg-same-alphabet, --alphabet-balanced,
 *      --rotate-classes),
 *      with a live progress line, a validation measurement and health warnings every so often,
 *      OUT/loss.csv, checkpoints to OUT/model.safetensors and the figures in OUT/figures;
 *   4. evaluate on the evaluation set (alphabets never seen in training): docs/reference.md's three
 *      numbers, each on its own line (eval_report.h).
 *
 * Run `siamese-train --help` for the options. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <siamese/siamese.h>

#include "cli.h"
#include "eval_report.h"
#include "figures.h"
#include "loss_log.h"
#include "omniglot_find.h"
#include "pipeline_figures.h"
#include "distributed.h"
#include "presets.h"
#include "selection.h"

typedef struct options {
    const char *data, *eval_data, *alphabets, *arch, *backend, *out, *figures;
    long long iterations, batch, micro_batch, save_every, figure_every;
    long long validate_every; /* -1: automatic */
    int validation_pairs;
    double lr, time_limit;
    /* Adam's schedule and weight decay (all off by default: the reference) */
    long long warmup, schedule_steps; /* schedule_steps 0: cosine's default */
    int schedule;                     /* an sm_adam_schedule */
    int init;                         /* an sm_init */
    const char *preset;               /* --preset NAME, or NULL */
    int cosine_by_time; /* cosine without --schedule-steps under --time-limit: fitted to it */
    double min_lr_factor, step_gamma, wd_conv, wd_fc, wd_head;
    unsigned long long seed;
    int threads, synthetic_classes, synthetic_images, resume, augment, no_figures;
    int distributed;       /* --distributed (or launched by mpirun with several ranks) */
    long long grad_shards; /* --grad-shards; 0: the number of ranks */
    /* 0.3 training recipe options (issue 11) */
    double neg_same_alphabet;
    int alphabet_balanced;
    int rotate_classes;              /* --rotate-classes (0.4) */
    long long pk_classes, pk_images; /* 0: random pairs */
    int pk_loss;                     /* sm_pk_loss */
    int synthetic_asked;             /* a --synthetic-* option was given: no looking for Omniglot */
    cli_backend_opts bopts;          /* --conv-algo, --precision */
    eval_plan eval;
    selection sel; /* --val-alphabets, --val-episodes, --patience, --resize-images */
} options;

static void usage(FILE *f)
{
    fprintf(
        f,
        "Usage: siamese-train [OPTIONS]\n"
        "Trains a Siamese network (Koch et al. 2015 by default) on Omniglot or on a built-in\n"
        "synthetic glyph set, draws figures of it, then evaluates it on held-out classes.\n"
        "\n"
        "Data:\n"
        "  --data PATH          training set: Omniglot images_background (folder or .zip),\n"
        "                       or a folder holding images_background.zip, or \"synthetic\";\n"
        "                       default: $SIAMESE_OMNIGLOT_DIR, then ./data/omniglot\n"
        "                       (scripts/fetch-omniglot.sh fills it), else a synthetic\n"
        "                       glyph set (sm_dataset_create_synthetic)\n"
        "  --eval-data PATH     evaluation set; default: images_evaluation.zip (or folder)\n"
        "                       beside --data, or a second synthetic set with other classes\n"
        "  --alphabets A,B,...  train on these alphabets of --data only\n"
        "  --synthetic-classes N  classes in the synthetic training set (default 200)\n"
        "  --synthetic-images N   images per synthetic class (default 20)\n"
        "Model and training:\n"
        "  --arch TEXT          \"koch\" (default, the reference), \"laptop\" (a CPU-friendly\n"
        "                       preset: use it with --lr 1e-3 --batch 32) or a layer list,\n"
        "                       e.g. "
        "\"1x105x105:conv32k10,relu,pool4,conv64k5,relu,pool2,flatten,fc128\"\n"
        "                       (layers: convNkK, relu, poolN, flatten, fcN, gnG = GroupNorm\n"
        "                       with G groups)\n"
        "  --backend NAME       auto (default), cpu, cpu-dnnl or cuda\n" CLI_BACKEND_OPTIONS_HELP
        "  --iterations N       training steps (default 10000)\n"
        "  --time-limit SECONDS stop training after this long (then save and evaluate as usual);\n"
        "                       \"15m\" and \"1h\" work too (default: none)\n"
        "  --batch N            pairs per step (default 180)\n"
        "  --micro-batch N      pairs per forward/backward chunk (memory only; default: "
        "library's)\n"
        "  --lr X               Adam learning rate (default 6e-5)\n"
        "  --init KIND          the twin's initial weights: reference (default: all from\n"
        "                       N(0, 0.01^2), Koch et al.'s) or he (N(0, 2/fan_in) per layer,\n"
        "                       biases 0: deeper or wider --arch lists need it to train)\n"
        "  --warmup N           linear learning-rate warm-up from 0 over the first N steps\n"
        "                       (step t of N runs at lr t/N; default 0: none)\n"
        "  --schedule KIND      after the warm-up: constant (default), cosine (down to\n"
        "                       lr * --min-lr-factor over --schedule-steps steps, then flat) or\n"
        "                       step (lr times --step-gamma every --schedule-steps steps)\n"
        "  --schedule-steps N   cosine's length (default: the floor is reached at the last of\n"
        "                       --iterations or, with --time-limit, at the time limit: the\n"
        "                       length is re-estimated from the measured step time as the\n"
        "                       run goes) or step's period (required with --schedule step)\n"
        "  --min-lr-factor F    cosine's floor as a fraction of --lr, 0..1 (default 0)\n"
        "  --step-gamma G       step decay's factor, (0, 1] (default 0.1)\n"
        "  --weight-decay-conv X  L2 weight decay (classic, added to the gradient as in Koch\n"
        "  --weight-decay-fc X      et al.; not AdamW's) of the convolution weights, the\n"
        "  --weight-decay-head X    twin's fully connected weights, the head's weights; biases\n"
        "                       are not decayed; 0..1 (default 0: none)\n"
        "                       Adam's settings are saved in checkpoints: --resume continues\n"
        "                       with the saved ones (learning rate and schedule alike)\n"
        "  --augment            distort every training image with Koch et al.'s random affine\n"
        "                       transforms (off by default: the reference trains without)\n"
        "  --neg-same-alphabet F  draw this fraction (0..1) of the dissimilar pairs' second\n"
        "                       class from the first class's alphabet (harder negatives; a\n"
        "                       class alone in its alphabet falls back to any; default 0);\n"
        "                       with --pk, the fraction of batches whose P classes all come\n"
        "                       from one alphabet\n"
        "  --alphabet-balanced  draw each class (of a pair or a P x K batch) by first choosing\n"
        "                       an alphabet uniformly, then a class in it (default: classes\n"
        "                       uniformly, so big alphabets dominate)\n"
        "  --rotate-classes     make each training character's 90, 180 and 270 degree\n"
        "                       rotations classes of their own (4x the classes, as most\n"
        "                       few-shot Omniglot results train; a rotated alphabet counts\n"
        "                       as an alphabet of its own for the two options above;\n"
        "                       square images only; validation and evaluation images are\n"
        "                       not rotated; default off)\n"
        "  --pk P,K             instead of --batch random pairs, each step takes K images of\n"
        "                       each of P classes, runs each image through the twin once and\n"
        "                       trains the head on all P*K*(P*K-1)/2 pairs of them (P >= 2,\n"
        "                       K >= 2, P*K <= 4096); --micro-batch sets the chunks\n"
        "  --pk-loss MODE       P x K loss: bce (default: similar and dissimilar pairs each\n"
        "                       half the loss), bce-unweighted (the mean over all pairs) or\n"
        "                       softmax (each image against all others, a cross-entropy whose\n"
        "                       target is its K-1 similar images)\n"
        "  --seed N             seed for weights, pairs and evaluation (default 1)\n"
        "  --threads N          worker threads, 0 = all cores (default 0)\n"
        "Training health:\n"
        "  --validate-every N   measure verification accuracy on held-out pairs every N steps and\n"
        "                       warn when training is stuck (default: 20 times per run, by\n"
        "                       --iterations: give it with --time-limit; 0 = never)\n"
        "  --validation-pairs N pairs of the evaluation set measured each time (default 300)\n"
        "Output:\n"
        "  --out DIR            writes DIR/model.safetensors and DIR/loss.csv (default \"out\")\n"
        "  --figures DIR        writes the figures (PNG) there (default DIR/figures of --out)\n"
        "  --no-figures         no figures\n"
        "  --figure-every N     redraws the loss curve every N steps (default: every 10 s)\n"
        "  --save-every N       also checkpoint every N iterations, 0 = only at the end\n"
        "                       (default 1000)\n"
        "  --resume             continue from DIR/model.safetensors if it exists\n"
        "Evaluation (on the evaluation set, after training):\n" EVAL_OPTIONS_HELP
            SELECTION_OPTIONS_HELP "  -h, --help           this text\n"
        "\n"
        "Data-parallel training (docs/distributed.md):\n"
        "  --distributed        train over MPI, one rank per process (the comm-mpi module); on\n"
        "                       by itself under mpirun with more than one rank. Rank 0 prints,\n"
        "                       draws, writes the files and evaluates\n"
        "  --grad-shards K      the batch's gradient in K shards summed in a fixed order\n"
        "                       (default: the number of ranks, or the checkpoint's with "
        "--resume);\n"
        "                       runs with the same K give the same model bit for bit, whatever\n"
        "                       the number of ranks dividing K\n"
        "Presets (--preset NAME: a recipe's options; any option given as well overrides it):\n");
    preset_usage(f);
    fprintf(
        f, "\n"
           "Ctrl-C stops training after the current step and saves a checkpoint (use --resume).\n");
}

/* "900", "900s", "15m", "1.5h" -> seconds. */
static int parse_time(const char *text, double *out)
{
    const char *orig = text;
    char buf[64];
    size_t n = strlen(text);
    double unit = 1.0;
    if (n > 0 && n < sizeof buf && strchr("smh", text[n - 1])) {
        unit = text[n - 1] == 'h' ? 3600.0 : text[n - 1] == 'm' ? 60.0 : 1.0;
        memcpy(buf, text, n - 1);
        buf[n - 1] = '\0';
        text = buf;
    }
    char *end;
    double v = strtod(text, &end);
    if (end == text || *end || !(v > 0.0 && v * unit <= 1e7)) {
        cli_error(0, "--time-limit wants a duration such as 900, 900s, 15m or 1.5h, got '%s'",
                  orig);
        return 0;
    }
    *out = v * unit;
    return 1;
}

static int parse_options(int argc, char **argv, options *o)
{
    enum {
        O_DATA = 256,
        O_EVAL_DATA,
        O_ALPHABETS,
        O_ARCH,
        O_BACKEND,
        O_ITER,
        O_BATCH,
        O_MICRO,
        O_LR,
        O_SEED,
        O_THREADS,
        O_OUT,
        O_SAVE_EVERY,
        O_SYN_CLASSES,
        O_SYN_IMAGES,
        O_RESUME,
        O_AUGMENT,
        O_FIGURES,
        O_NO_FIGURES,
        O_FIGURE_EVERY,
        O_VALIDATE_EVERY,
        O_VALIDATION_PAIRS,
        O_EVAL,
        O_TIME_LIMIT,
        O_NEG_SAME_ALPHABET,
        O_ALPHABET_BALANCED,
        O_ROTATE_CLASSES,
        O_PK,
        O_PK_LOSS,
        O_WARMUP,
        O_SCHEDULE,
        O_SCHEDULE_STEPS,
        O_DISTRIBUTED,
        O_GRAD_SHARDS,
        O_MIN_LR_FACTOR,
        O_STEP_GAMMA,
        O_WD_CONV,
        O_WD_FC,
        O_WD_HEAD,
        O_SEL,
        O_INIT,
        O_BACKEND_OPT
    };
    static const struct option longopts[] = {
        {"data", required_argument, NULL, O_DATA},
        {"eval-data", required_argument, NULL, O_EVAL_DATA},
        {"alphabets", required_argument, NULL, O_ALPHABETS},
        {"arch", required_argument, NULL, O_ARCH},
        {"backend", required_argument, NULL, O_BACKEND},
        {"conv-algo", required_argument, NULL, O_BACKEND_OPT},
        {"precision", required_argument, NULL, O_BACKEND_OPT},
        {"iterations", required_argument, NULL, O_ITER},
        {"time-limit", required_argument, NULL, O_TIME_LIMIT},
        {"batch", required_argument, NULL, O_BATCH},
        {"micro-batch", required_argument, NULL, O_MICRO},
        {"lr", required_argument, NULL, O_LR},
        {"warmup", required_argument, NULL, O_WARMUP},
        {"schedule", required_argument, NULL, O_SCHEDULE},
        {"init", required_argument, NULL, O_INIT},
        {"schedule-steps", required_argument, NULL, O_SCHEDULE_STEPS},
        {"min-lr-factor", required_argument, NULL, O_MIN_LR_FACTOR},
        {"step-gamma", required_argument, NULL, O_STEP_GAMMA},
        {"weight-decay-conv", required_argument, NULL, O_WD_CONV},
        {"weight-decay-fc", required_argument, NULL, O_WD_FC},
        {"weight-decay-head", required_argument, NULL, O_WD_HEAD},
        {"seed", required_argument, NULL, O_SEED},
        {"threads", required_argument, NULL, O_THREADS},
        {"out", required_argument, NULL, O_OUT},
        {"save-every", required_argument, NULL, O_SAVE_EVERY},
        {"synthetic-classes", required_argument, NULL, O_SYN_CLASSES},
        {"synthetic-images", required_argument, NULL, O_SYN_IMAGES},
        {"resume", no_argument, NULL, O_RESUME},
        {"distributed", no_argument, NULL, O_DISTRIBUTED},
        {"grad-shards", required_argument, NULL, O_GRAD_SHARDS},
        {"augment", no_argument, NULL, O_AUGMENT},
        {"neg-same-alphabet", required_argument, NULL, O_NEG_SAME_ALPHABET},
        {"alphabet-balanced", no_argument, NULL, O_ALPHABET_BALANCED},
        {"rotate-classes", no_argument, NULL, O_ROTATE_CLASSES},
        {"pk", required_argument, NULL, O_PK},
        {"pk-loss", required_argument, NULL, O_PK_LOSS},
        {"figures", required_argument, NULL, O_FIGURES},
        {"no-figures", no_argument, NULL, O_NO_FIGURES},
        {"figure-every", required_argument, NULL, O_FIGURE_EVERY},
        {"validate-every", required_argument, NULL, O_VALIDATE_EVERY},
        {"validation-pairs", required_argument, NULL, O_VALIDATION_PAIRS},
        {"eval-batches", required_argument, NULL, O_EVAL},
        {"eval-pairs", required_argument, NULL, O_EVAL},
        {"oneshot-runs", required_argument, NULL, O_EVAL},
        {"episodes", required_argument, NULL, O_EVAL},
        {"way", required_argument, NULL, O_EVAL},
        {"shot", required_argument, NULL, O_EVAL},
        {"within-alphabet", no_argument, NULL, O_EVAL},
        {"between-alphabets", no_argument, NULL, O_EVAL},
        {"threshold", required_argument, NULL, O_EVAL},
        {"val-alphabets", required_argument, NULL, O_SEL},
        {"val-episodes", required_argument, NULL, O_SEL},
        {"patience", required_argument, NULL, O_SEL},
        {"resize-images", no_argument, NULL, O_SEL},
        {"no-calibrate", no_argument, NULL, O_SEL},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    long long v;
    int c, index = 0;
    opterr = 0; /* our own message for unknown options */
    while ((c = getopt_long(argc, argv, ":h", longopts, &index)) != -1) {
        switch (c) {
        case O_DATA: o->data = optarg; break;
        case O_EVAL_DATA: o->eval_data = optarg; break;
        case O_ALPHABETS: o->alphabets = optarg; break;
        case O_ARCH: o->arch = optarg; break;
        case O_BACKEND: o->backend = optarg; break;
        case O_BACKEND_OPT:
            if (cli_backend_option(&o->bopts, longopts[index].name, optarg) < 0) return 2;
            break;
        case O_OUT: o->out = optarg; break;
        case O_FIGURES: o->figures = optarg; break;
        case O_NO_FIGURES: o->no_figures = 1; break;
        case O_RESUME: o->resume = 1; break;
        case O_DISTRIBUTED: o->distributed = 1; break;
        case O_GRAD_SHARDS:
            if (!cli_parse_ll("grad-shards", optarg, 1, 1024, &o->grad_shards)) return 2;
            break;
        case O_AUGMENT: o->augment = 1; break;
        case O_INIT:
            if (strcmp(optarg, "reference") == 0) o->init = SM_INIT_REFERENCE;
            else if (strcmp(optarg, "he") == 0) o->init = SM_INIT_HE;
            else return cli_error(2, "--init wants reference or he, got '%s'", optarg);
            break;
        case O_ALPHABET_BALANCED: o->alphabet_balanced = 1; break;
        case O_ROTATE_CLASSES: o->rotate_classes = 1; break;
        case O_NEG_SAME_ALPHABET:
            if (!cli_parse_double("neg-same-alphabet", optarg, 0.0, 0, 1.0, &o->neg_same_alphabet))
                return 2;
            break;
        case O_PK: {
            char *comma = strchr(optarg, ',');
            if (!comma) return cli_error(2, "--pk wants P,K (e.g. 32,4), got '%s'", optarg);
            *comma = '\0';
            int ok = cli_parse_ll("pk (P)", optarg, 2, 4096, &o->pk_classes) &&
                     cli_parse_ll("pk (K)", comma + 1, 2, 4096, &o->pk_images);
            *comma = ',';
            if (!ok) return 2;
            if (o->pk_classes * o->pk_images > 4096)
                return cli_error(2, "--pk %s: P x K = %lld images, at most 4096", optarg,
                                 o->pk_classes * o->pk_images);
            break;
        }
        case O_PK_LOSS:
            if (strcmp(optarg, "bce") == 0) o->pk_loss = SM_PK_LOSS_BCE_BALANCED;
            else if (strcmp(optarg, "bce-unweighted") == 0) o->pk_loss = SM_PK_LOSS_BCE;
            else if (strcmp(optarg, "softmax") == 0) o->pk_loss = SM_PK_LOSS_SOFTMAX;
            else
                return cli_error(2, "--pk-loss wants bce, bce-unweighted or softmax, got '%s'",
                                 optarg);
            break;
        case O_ITER:
            if (!cli_parse_ll("iterations", optarg, 0, INT64_MAX / 2, &o->iterations)) return 2;
            break;
        case O_BATCH:
            if (!cli_parse_ll("batch", optarg, 1, 65536, &o->batch)) return 2;
            break;
        case O_MICRO:
            if (!cli_parse_ll("micro-batch", optarg, 1, 65536, &o->micro_batch)) return 2;
            break;
        case O_SEED:
            if (!cli_parse_ll("seed", optarg, 0, INT64_MAX, &v)) return 2;
            o->seed = (unsigned long long)v;
            o->eval.seed = o->seed;
            break;
        case O_THREADS:
            if (!cli_parse_int("threads", optarg, 0, 1024, &o->threads)) return 2;
            break;
        case O_SAVE_EVERY:
            if (!cli_parse_ll("save-every", optarg, 0, INT64_MAX / 2, &o->save_every)) return 2;
            break;
        case O_FIGURE_EVERY:
            if (!cli_parse_ll("figure-every", optarg, 1, INT64_MAX / 2, &o->figure_every)) return 2;
            break;
        case O_VALIDATE_EVERY:
            if (!cli_parse_ll("validate-every", optarg, 0, INT32_MAX, &o->validate_every)) return 2;
            break;
        case O_VALIDATION_PAIRS:
            if (!cli_parse_int("validation-pairs", optarg, 1, 65536, &o->validation_pairs))
                return 2;
            break;
        case O_SYN_CLASSES:
            o->synthetic_asked = 1;
            if (!cli_parse_int("synthetic-classes", optarg, 2, 100000, &o->synthetic_classes))
                return 2;
            break;
        case O_SYN_IMAGES:
            o->synthetic_asked = 1;
            if (!cli_parse_int("synthetic-images", optarg, 2, 10000, &o->synthetic_images))
                return 2;
            break;
        case O_TIME_LIMIT:
            if (!parse_time(optarg, &o->time_limit)) return 2;
            break;
        case O_LR:
            if (!cli_parse_double("lr", optarg, 0.0, 1, 1.0, &o->lr)) return 2;
            break;
        case O_WARMUP:
            if (!cli_parse_ll("warmup", optarg, 0, INT32_MAX, &o->warmup)) return 2;
            break;
        case O_SCHEDULE:
            if (strcmp(optarg, "constant") == 0) o->schedule = SM_ADAM_SCHEDULE_CONSTANT;
            else if (strcmp(optarg, "cosine") == 0) o->schedule = SM_ADAM_SCHEDULE_COSINE;
            else if (strcmp(optarg, "step") == 0) o->schedule = SM_ADAM_SCHEDULE_STEP;
            else return cli_error(2, "--schedule wants constant, cosine or step, got '%s'", optarg);
            break;
        case O_SCHEDULE_STEPS:
            if (!cli_parse_ll("schedule-steps", optarg, 1, INT32_MAX, &o->schedule_steps)) return 2;
            break;
        case O_MIN_LR_FACTOR:
            if (!cli_parse_double("min-lr-factor", optarg, 0.0, 0, 1.0, &o->min_lr_factor))
                return 2;
            break;
        case O_STEP_GAMMA:
            if (!cli_parse_double("step-gamma", optarg, 0.0, 1, 1.0, &o->step_gamma)) return 2;
            break;
        case O_WD_CONV:
            if (!cli_parse_double("weight-decay-conv", optarg, 0.0, 0, 1.0, &o->wd_conv)) return 2;
            break;
        case O_WD_FC:
            if (!cli_parse_double("weight-decay-fc", optarg, 0.0, 0, 1.0, &o->wd_fc)) return 2;
            break;
        case O_WD_HEAD:
            if (!cli_parse_double("weight-decay-head", optarg, 0.0, 0, 1.0, &o->wd_head)) return 2;
            break;
        case O_EVAL:
            if (eval_plan_option(&o->eval, longopts[index].name, optarg) < 0) return 2;
            break;
        case O_SEL:
            if (selection_option(&o->sel, longopts[index].name, optarg) < 0) return 2;
            break;
        case 'h': usage(stdout); return -1;
        case ':': return cli_error(2, "%s needs a value (see --help)", argv[optind - 1]);
        default: return cli_error(2, "unknown option '%s' (see --help)", argv[optind - 1]);
        }
    }
    if (optind < argc) return cli_error(2, "unexpected argument '%s' (see --help)", argv[optind]);
    if (o->schedule == SM_ADAM_SCHEDULE_STEP && o->schedule_steps == 0)
        return cli_error(2, "--schedule step needs --schedule-steps (the decay's period)");
    if (o->schedule == SM_ADAM_SCHEDULE_COSINE && o->schedule_steps == 0) {
        /* the iterations after the warm-up: the floor is reached at the last step */
        long long left = o->iterations - o->warmup - 1;
        o->schedule_steps = left < 1 ? 1 : left > INT32_MAX ? INT32_MAX : left;
        o->cosine_by_time = o->time_limit > 0;
    }
    o->eval.resize_images = o->sel.resize;
    return selection_check_options(&o->sel, o->data != NULL);
}

/* The evaluation set beside a background set: PARENT/images_evaluation.zip or the folder. */
static int find_eval_beside(const char *data, char *out, size_t cap)
{
    char dir[4096];
    if (snprintf(dir, sizeof dir, "%s", data) >= (int)sizeof dir) return 0;
    size_t n = strlen(dir);
    while (n > 1 && dir[n - 1] == '/') dir[--n] = '\0';
    char *slash = strrchr(dir, '/');
    if (slash == dir) dir[1] = '\0';
    else if (slash) *slash = '\0';
    else snprintf(dir, sizeof dir, ".");
    if (omniglot_set_in_folder(dir, "images_evaluation", out, cap) == 1) return 1;
    snprintf(out, cap, "%s/images_evaluation.zip", dir);
    return 0;
}

/* Splits "A,B,C" in place into `names` (at most `cap`). */
static size_t split_commas(char *text, const char **names, size_t cap)
{
    size_t n = 0;
    for (char *tok = strtok(text, ","); tok && n < cap; tok = strtok(NULL, ",")) names[n++] = tok;
    return n;
}

static volatile sig_atomic_t interrupted = 0;

static void on_sigint(int sig)
{
    (void)sig;
    interrupted = 1;
}

/* ---------------------------------------------------------------------------------------------
 * Data
 * ------------------------------------------------------------------------------------------- */

/* Decides o->data: the Omniglot training set (given, or found as omniglot_find.h says), or NULL
 * for the synthetic set, saying where it looked when it found nothing. */
static int resolve_data(options *o)
{
    static char path[4200];
    char looked[9000];
    if (o->data && strcmp(o->data, "synthetic") == 0) {
        o->data = NULL;
        return 0;
    }
    if (!o->data && o->synthetic_asked) return 0;
    int r = omniglot_find(o->data, "images_background", path, sizeof path, looked, sizeof looked);
    if (r < 0) return cli_error(2, "the data path is too long");
    if (r == 0) {
        printf("no Omniglot data found (%s): training on the built-in synthetic glyph set; "
               "scripts/fetch-omniglot.sh downloads Omniglot into ./%s\n",
               looked, OMNIGLOT_DEFAULT_DIR);
        return 0;
    }
    if (!o->data) printf("Omniglot found: %s\n", path);
    o->data = path;
    return 0;
}

static int open_data(options *o, int h, int w, sm_dataset **train, sm_dataset **eval)
{
    sm_status st;
    int rc = resolve_data(o);
    if (rc) return rc;
    double t0 = cli_now();
    if (o->data) {
        const char *names[256];
        size_t n_names = 0;
        char *buf = NULL;
        if (o->alphabets) {
            if (!(buf = strdup(o->alphabets))) return cli_error(1, "out of memory");
            n_names = split_commas(buf, names, sizeof names / sizeof *names);
        }
        rc = selection_open_train(&o->sel, o->data, h, w, n_names ? names : NULL, n_names, o->seed,
                                  train);
        free(buf);
        if (rc) return rc;
        printf("training set: %s: %zu alphabets, %zu classes, %zu images (%.1fs)\n", o->data,
               sm_dataset_num_alphabets(*train), sm_dataset_num_classes(*train),
               sm_dataset_num_images(*train), cli_now() - t0);
    } else {
        if (o->alphabets) return cli_error(2, "--alphabets needs --data");
        if ((st = sm_dataset_create_synthetic(o->synthetic_classes, o->synthetic_images, h, w,
                                              o->seed, train)))
            return cli_fail(st, "cannot generate the synthetic training set");
        if ((rc = selection_open_train(&o->sel, NULL, h, w, NULL, 0, o->seed, train))) return rc;
        printf("training set: synthetic glyphs (no --data): %zu classes x %d images, %dx%d "
               "(%.1fs)\n",
               sm_dataset_num_classes(*train), o->synthetic_images, h, w, cli_now() - t0);
    }

    static char eval_path[4200];
    const char *ep = o->eval_data;
    if (!ep && o->data) {
        if (find_eval_beside(o->data, eval_path, sizeof eval_path)) ep = eval_path;
        else
            printf("note: no evaluation set found (looked for %s); pass --eval-data to "
                   "evaluate\n",
                   eval_path);
    }
    t0 = cli_now();
    if (ep && selection_defer_eval(&o->sel, ep, h, w)) {
        const char *base = strrchr(ep, '/');
        o->eval.split = base ? base + 1 : ep;
    } else if (ep) {
        if ((st = selection_open(&o->sel, ep, h, w, NULL, 0, eval)))
            return cli_fail(st, "cannot open the evaluation set '%s'", ep);
        printf("evaluation set: %s: %zu alphabets, %zu classes, %zu images (%.1fs)\n", ep,
               sm_dataset_num_alphabets(*eval), sm_dataset_num_classes(*eval),
               sm_dataset_num_images(*eval), cli_now() - t0);
        const char *base = strrchr(ep, '/');
        o->eval.split = base ? base + 1 : ep;
    } else if (!o->data) {
        /* Held-out classes: the same generator with another seed draws other figures. */
        int n_eval = o->synthetic_classes / 2 > 10 ? o->synthetic_classes / 2 : 10;
        if ((st = sm_dataset_create_synthetic(n_eval, o->synthetic_images, h, w,
                                              o->seed + 1000003ULL, eval)))
            return cli_fail(st, "cannot generate the synthetic evaluation set");
        printf("evaluation set: synthetic glyphs, %zu other classes (%.1fs)\n",
               sm_dataset_num_classes(*eval), cli_now() - t0);
        o->eval.split = "the synthetic evaluation set";
    }
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * Training health: the trainer measures held-out pairs every so often and says, in plain words,
 * when the loss sits at ln 2 or the scores collapsed (the classic "stuck at 50 %").
 * ------------------------------------------------------------------------------------------- */

typedef struct health_state {
    double val_accuracy; /* latest measurement, -1 before the first */
    int fresh;           /* measured at the step that just ended: goes into the CSV row */
    /* the softmax P x K loss ranks pairs but leaves the score's 0.5 anywhere: the health
     * check's accuracy at 0.5 says nothing until the model is calibrated after training */
    int score_uncalibrated;
} health_state;

static void on_health(void *user, const sm_health *h)
{
    health_state *hs = user;
    if (h->flags & SM_HEALTH_HAS_VALIDATION) {
        hs->val_accuracy = h->val_accuracy;
        hs->fresh = 1;
        fprintf(stderr,
                "%svalidation at step %lld: %.1f %% of %llu held-out pairs right at 0.5%s "
                "(chance 50 %%; scores average %.2f, spread %.3f); smoothed loss %.4f\n",
                cli_progress_open ? "\n" : "", (long long)h->iteration, 100.0 * h->val_accuracy,
                (unsigned long long)h->val_pairs,
                hs->score_uncalibrated ? ", which the softmax loss does not train (the saved "
                                         "model is calibrated after training)"
                                       : "",
                h->val_score_mean, h->val_score_std, (double)h->smoothed_loss);
        cli_progress_open = 0;
    }
    if (h->flags & SM_HEALTH_VALIDATION_FAILED) {
        fprintf(stderr, "%swarning: validation at step %lld failed: %s\n",
                cli_progress_open ? "\n" : "", (long long)h->iteration,
                sm_status_name(h->val_status));
        cli_progress_open = 0;
    }
    if (h->message && h->message[0]) {
        fprintf(stderr, "%swarning (step %lld): %s\n", cli_progress_open ? "\n" : "",
                (long long)h->iteration, h->message);
        cli_progress_open = 0;
    }
}

/* ---------------------------------------------------------------------------------------------
 * Main
 * ------------------------------------------------------------------------------------------- */

typedef struct run {
    options o;
    sm_backend *backend;
    sm_arch *arch;
    sm_dataset *train, *eval;
    sm_subnet *subnet;
    sm_head *head;
    sm_adam *adam;
    sm_trainer *trainer;
    loss_log log;
    int log_open;
    health_state health;
    char model_path[4200], csv_path[4200], fig_dir[4200], fig_loss[4300];
    int figures;
    int resumed; /* loaded a checkpoint */
    dist d;
} run;

static int setup_model(run *r)
{
    sm_status st;
    const options *o = &r->o;
    if ((st = sm_subnet_create(r->backend, r->arch, o->seed, &r->subnet)))
        return cli_fail(st, "cannot create the subnetwork");
    if (o->init != SM_INIT_REFERENCE && (st = sm_subnet_init(r->subnet, o->init, o->seed)))
        return cli_fail(st, "cannot initialise the subnetwork");
    if ((st = sm_head_create(r->backend, sm_subnet_feature_dim(r->subnet), o->seed + 1, &r->head)))
        return cli_fail(st, "cannot create the head");
    if ((st = sm_adam_create(r->subnet, r->head, &r->adam)) ||
        (st = sm_adam_set(r->adam, SM_ADAM_LEARNING_RATE, o->lr)) ||
        (st = sm_adam_set(r->adam, SM_ADAM_WARMUP_STEPS, (double)o->warmup)) ||
        (st = sm_adam_set(r->adam, SM_ADAM_SCHEDULE, o->schedule)) ||
        (st = sm_adam_set(r->adam, SM_ADAM_SCHEDULE_STEPS, (double)o->schedule_steps)) ||
        (st = sm_adam_set(r->adam, SM_ADAM_MIN_LR_FACTOR, o->min_lr_factor)) ||
        (st = sm_adam_set(r->adam, SM_ADAM_STEP_GAMMA, o->step_gamma)) ||
        (st = sm_adam_set(r->adam, SM_ADAM_WEIGHT_DECAY_CONV, o->wd_conv)) ||
        (st = sm_adam_set(r->adam, SM_ADAM_WEIGHT_DECAY_FC, o->wd_fc)) ||
        (st = sm_adam_set(r->adam, SM_ADAM_WEIGHT_DECAY_HEAD, o->wd_head)))
        return cli_fail(st, "cannot set up Adam");
    if ((st = sm_trainer_create(r->subnet, r->head, r->adam, r->train, o->seed + 2, &r->trainer)))
        return cli_fail(st, "cannot create the trainer");
    return 0;
}

/* Batch sizes and augmentation: after a resume too, since the command line wins over what
 * the checkpoint was saved with. */
static int set_trainer_params(run *r)
{
    sm_status st;
    const options *o = &r->o;
    if ((st = sm_trainer_set_param(r->trainer, SM_TRAINER_BATCH_SIZE, o->batch)) ||
        (o->micro_batch &&
         (st = sm_trainer_set_param(r->trainer, SM_TRAINER_MICRO_BATCH, o->micro_batch))))
        return cli_fail(st, "cannot set the batch size");
    if ((st =
             sm_trainer_set_param(r->trainer, SM_TRAINER_AUGMENT, o->augment ? SM_DISTORT_ALL : 0)))
        return cli_fail(st, "cannot set augmentation");
    if ((st =
             sm_trainer_set_real(r->trainer, SM_TRAINER_NEG_SAME_ALPHABET, o->neg_same_alphabet)) ||
        (st = sm_trainer_set_param(r->trainer, SM_TRAINER_ALPHABET_BALANCED, o->alphabet_balanced)))
        return cli_fail(st, "cannot set the sampling options");
    if ((st = sm_trainer_set_param(r->trainer, SM_TRAINER_ROTATED_CLASSES, o->rotate_classes)))
        return cli_fail(st, "cannot use --rotate-classes");
    /* K before P: P x K is checked against the current other value */
    if ((st = sm_trainer_set_param(r->trainer, SM_TRAINER_PK_CLASSES, 0)) ||
        (o->pk_classes &&
         ((st = sm_trainer_set_param(r->trainer, SM_TRAINER_PK_IMAGES, o->pk_images)) ||
          (st = sm_trainer_set_param(r->trainer, SM_TRAINER_PK_CLASSES, o->pk_classes)))) ||
        (st = sm_trainer_set_param(r->trainer, SM_TRAINER_PK_LOSS, o->pk_loss)))
        return cli_fail(st, "cannot set the P x K batches");
    /* --grad-shards, else after --resume the checkpoint's, else one per rank */
    int64_t k = r->o.grad_shards ? r->o.grad_shards : r->d.size;
    if ((r->o.grad_shards || !r->resumed) &&
        (st = sm_trainer_set_param(r->trainer, SM_TRAINER_GRAD_SHARDS, k)))
        return cli_fail(st, "cannot use %lld gradient shards", (long long)k);
    return 0;
}

static int setup_health(run *r)
{
    options *o = &r->o;
    if (r->d.rank != 0) return 0; /* rank 0 reports; health never changes the training */
    r->health.val_accuracy = -1.0;
    r->health.score_uncalibrated = r->o.pk_classes && r->o.pk_loss == SM_PK_LOSS_SOFTMAX;
    long long every = o->validate_every;
    if (every < 0) every = o->iterations / 20 > 0 ? o->iterations / 20 : 1;
    int rc =
        selection_start(&o->sel, r->subnet, r->head, every, o->out, o->seed + 0x5e1ec7ULL, &r->log);
    if (rc || every == 0) return rc;
    sm_status st;
    const sm_dataset *held_out = o->sel.val ? o->sel.val : r->eval; /* never both */
    if (held_out && (st = sm_trainer_set_validation(
                         r->trainer, held_out, (size_t)o->validation_pairs, o->seed + 0x7a1ULL)))
        return cli_fail(st, "cannot validate on the %s set",
                        o->sel.val ? "validation" : "evaluation");
    if ((st = sm_trainer_set_health(r->trainer, every, on_health, &r->health)))
        return cli_fail(st, "cannot ask for health reports");
    if (held_out)
        printf("health: every %lld steps, verification accuracy on %d held-out pairs of %s "
               "(not the final evaluation's pairs), and warnings if training is stuck\n",
               every, o->validation_pairs, o->sel.val ? "the validation alphabets" : o->eval.split);
    else
        printf("health: every %lld steps, warnings if training is stuck (no held-out set to "
               "validate on)\n",
               every);
    return 0;
}

/* How often the loss curve is redrawn when --figure-every is not given. */
enum { FIGURE_EVERY_SECONDS = 10 };

static void draw_loss(run *r, int64_t it, double per_step)
{
    if (!r->figures) return;
    char el[32], sub[256];
    fig_loss_data d = loss_log_data(&r->log);
    cli_duration(el, sizeof el, d.n ? d.elapsed_s[d.n - 1] : 0.0);
    char limit[32];
    cli_duration(limit, sizeof limit, r->o.time_limit);
    int len =
        r->o.time_limit > 0
            ? snprintf(sub, sizeof sub, "step %lld, %s elapsed of a %s time limit, %.3f s/step",
                       (long long)it, el, limit, per_step)
            : snprintf(sub, sizeof sub, "step %lld of %lld, %s elapsed, %.3f s/step", (long long)it,
                       (long long)r->o.iterations, el, per_step);
    if (r->health.val_accuracy >= 0 && !r->health.score_uncalibrated && len > 0 &&
        (size_t)len < sizeof sub)
        snprintf(sub + len, sizeof sub - (size_t)len, ", held-out verification %.1f %%",
                 100.0 * r->health.val_accuracy);
    if (fig_loss(r->fig_loss, "Training loss", sub, &d)) {
        cli_error(0, "warning: cannot draw %s: %s (no more loss figures)", r->fig_loss,
                  fig_last_error());
        r->figures = 0;
    }
}

/* A cosine schedule under --time-limit reaches its floor when time runs out, not at the last
 * of --iterations (which a timed run never reaches): its length is the steps done plus those
 * the measured step time leaves room for, never more than --iterations allows. */
static sm_status fit_cosine_to_time(sm_adam *adam, int64_t it, const options *o, double steps_left)
{
    double warmup = 0;
    sm_status st = sm_adam_get(adam, SM_ADAM_WARMUP_STEPS, &warmup);
    if (st) return st;
    double len = (double)it + (steps_left > 0 ? steps_left : 0) - warmup - 1;
    if (len > (double)o->schedule_steps) len = (double)o->schedule_steps;
    if (len < 1) len = 1;
    return sm_adam_set(adam, SM_ADAM_SCHEDULE_STEPS, floor(len));
}

static int train(run *r)
{
    const options *o = &r->o;
    sm_status st;
    int64_t start = sm_trainer_iteration(r->trainer), micro = 0;
    sm_trainer_get_param(r->trainer, SM_TRAINER_MICRO_BATCH, &micro);
    if (micro > o->batch) micro = o->batch;
    /* Adam's settings as they are now (after a resume: the checkpoint's) */
    double lr = o->lr, warmup = 0, sched = 0, sched_steps = 0, min_f = 0, gamma = 0;
    double wd[3] = {0, 0, 0};
    sm_adam_get(r->adam, SM_ADAM_LEARNING_RATE, &lr);
    sm_adam_get(r->adam, SM_ADAM_WARMUP_STEPS, &warmup);
    sm_adam_get(r->adam, SM_ADAM_SCHEDULE, &sched);
    sm_adam_get(r->adam, SM_ADAM_SCHEDULE_STEPS, &sched_steps);
    sm_adam_get(r->adam, SM_ADAM_MIN_LR_FACTOR, &min_f);
    sm_adam_get(r->adam, SM_ADAM_STEP_GAMMA, &gamma);
    sm_adam_get(r->adam, SM_ADAM_WEIGHT_DECAY_CONV, &wd[0]);
    sm_adam_get(r->adam, SM_ADAM_WEIGHT_DECAY_FC, &wd[1]);
    sm_adam_get(r->adam, SM_ADAM_WEIGHT_DECAY_HEAD, &wd[2]);
    const int show_lr = warmup > 0 || sched != SM_ADAM_SCHEDULE_CONSTANT;
    char batch[64];
    if (o->pk_classes) snprintf(batch, sizeof batch, "P x K batches (below)");
    else snprintf(batch, sizeof batch, "%lld pairs", (long long)o->batch);
    printf("training: %lld iterations of %s (micro-batch %lld), lr %g, augmentation %s, "
           "seed %llu -> %s\n",
           (long long)o->iterations, batch, (long long)micro, lr,
           o->augment ? "on (Koch et al.'s affine distortions)" : "off", o->seed, o->out);
    if (o->pk_classes)
        printf("  P x K batches: %lld classes x %lld images = %lld images, %lld pairs per step "
               "(not --batch), loss %s\n",
               o->pk_classes, o->pk_images, o->pk_classes * o->pk_images,
               o->pk_classes * o->pk_images * (o->pk_classes * o->pk_images - 1) / 2,
               o->pk_loss == SM_PK_LOSS_BCE       ? "bce-unweighted"
               : o->pk_loss == SM_PK_LOSS_SOFTMAX ? "softmax"
                                                  : "bce (balanced)");
    if (o->neg_same_alphabet > 0 || o->alphabet_balanced)
        printf("  sampling: %g of the negatives within the alphabet, alphabet-balanced %s\n",
               o->neg_same_alphabet, o->alphabet_balanced ? "on" : "off");
    if (o->rotate_classes)
        printf("  rotated classes on: each character also turned by 90, 180 and 270 degrees, "
               "%zu -> %zu training classes (validation and evaluation images unrotated)\n",
               sm_dataset_num_classes(r->train), 4 * sm_dataset_num_classes(r->train));
    if (show_lr) {
        printf("learning-rate schedule: warm-up %.0f steps, then ", warmup);
        if (sched == SM_ADAM_SCHEDULE_COSINE && o->cosine_by_time)
            printf("cosine down to %g at the time limit or at the last of --iterations, "
                   "whichever comes first (its length in steps estimated from the step time "
                   "as the run goes)\n",
                   lr * min_f);
        else if (sched == SM_ADAM_SCHEDULE_COSINE)
            printf("cosine over %.0f steps down to %g\n", sched_steps, lr * min_f);
        else if (sched == SM_ADAM_SCHEDULE_STEP)
            printf("times %g every %.0f steps\n", gamma, sched_steps);
        else printf("constant\n");
    }
    if (wd[0] > 0 || wd[1] > 0 || wd[2] > 0)
        printf("weight decay (L2, biases excluded): conv %g, fc %g, head %g\n", wd[0], wd[1],
               wd[2]);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    const int tty = isatty(fileno(stderr));
    const int64_t total = o->iterations;
    const int64_t line_every = total / 20 > 0 ? total / 20 : 1; /* without a terminal */
    const double elapsed_before = loss_log_last_elapsed(&r->log);
    double first_loss = NAN, smooth = NAN, per_step = 0.0;
    double t_start = cli_now(), t_shown = t_start, t_drawn = t_start;
    /* where the loop's time goes: the library's step, the validation checks, the figures */
    double in_step = 0, in_validation = 0, in_figures = 0;
    int64_t it = start;
    int timed_out = 0;
    while (it < total && !interrupted && !timed_out && !r->o.sel.stop) {
        float loss = 0.0f;
        r->health.fresh = 0;
        double t_step = cli_now();
        if ((st = sm_train_step(r->trainer, &loss)))
            return cli_fail(st, "training step %lld failed", (long long)it + 1);
        double t_stepped = cli_now();
        in_step += t_stepped - t_step;
        it = sm_trainer_iteration(r->trainer);
        int rc = selection_after_step(&r->o.sel, r->trainer, r->subnet, r->head, it, &r->log);
        if (rc) return rc;
        double t = cli_now(), ran = t - t_start, elapsed = elapsed_before + ran;
        in_validation += t - t_stepped;
        if (r->log_open && loss_log_add(&r->log, it, loss, elapsed,
                                        r->health.fresh ? r->health.val_accuracy : -1.0))
            return cli_error(1, "cannot write '%s': %s", r->csv_path, strerror(errno));
        if (isnan(first_loss)) first_loss = loss;
        smooth = isnan(smooth) ? loss : 0.95 * smooth + 0.05 * loss;

        per_step = ran / (double)(it - start);
        timed_out = o->time_limit > 0 && ran >= o->time_limit;
        if (r->d.comm) { /* rank 0's clock and Ctrl-C decide for every rank */
            int stop = interrupted ? 2 : timed_out ? 1 : 0;
            if ((rc = dist_agree(&r->d, &stop))) return rc;
            interrupted = stop == 2;
            timed_out = stop == 1;
        }
        if (o->cosine_by_time && !timed_out && it - start >= 20 && (it - start) % 10 == 0) {
            /* data-parallel: rank 0's clock fits the schedule for every rank */
            double steps_left = (o->time_limit - ran) / per_step;
            if ((rc = dist_agree_real(&r->d, &steps_left))) return rc;
            if ((st = fit_cosine_to_time(r->adam, it, o, steps_left)))
                return cli_fail(st, "cannot adjust the learning-rate schedule");
        }
        int last = it == total || timed_out || r->o.sel.stop;
        double left = per_step * (double)(total - it);
        if (o->time_limit > 0 && o->time_limit - ran < left) left = o->time_limit - ran;
        /* Without a terminal (a log file): 20 lines per run, and at least one a minute, which
         * matters when --time-limit ends a run long before --iterations. */
        if (r->d.rank == 0 && ((tty && (t - t_shown >= 0.25 || last)) ||
                               (!tty && (it % line_every == 0 || last || t - t_shown >= 60.0)))) {
            char el[32], eta[32], val[48] = "", lr_now[32] = "";
            double cur = 0;
            if (show_lr && sm_adam_current_lr(r->adam, &cur) == SM_OK)
                snprintf(lr_now, sizeof lr_now, "  lr %.3g", cur);
            cli_duration(el, sizeof el, elapsed);
            cli_duration(eta, sizeof eta, left);
            if (r->health.val_accuracy >= 0 && !r->health.score_uncalibrated)
                snprintf(val, sizeof val, "  held-out %.1f %%", 100.0 * r->health.val_accuracy);
            fprintf(stderr,
                    "%s%*lld/%lld  loss %.4f (avg %.4f)%s%s  elapsed %s  ETA %s  %.3f s/step%s",
                    tty ? "\r" : "", (int)snprintf(NULL, 0, "%lld", (long long)total),
                    (long long)it, (long long)total, (double)loss, smooth, lr_now, val, el, eta,
                    per_step, tty ? "\033[K" : "\n");
            fflush(stderr);
            cli_progress_open = tty;
            t_shown = t;
        }
        /* By default the loss curve is redrawn by the clock, not every few steps: a redraw
         * plots every step so far, so redrawing by steps would cost more the longer a run
         * goes (every 10 steps cost 12 s in a 3000-step run of the preset, 5.6 % of it, and grows with the square of the steps). */
        int redraw =
            o->figure_every > 0 ? it % o->figure_every == 0 : t - t_drawn >= FIGURE_EVERY_SECONDS;
        if (r->figures && (redraw || last)) {
            draw_loss(r, it, per_step);
            t_drawn = cli_now();
            in_figures += t_drawn - t;
        }
        if (o->save_every > 0 && it % o->save_every == 0 && it < total &&
            (st = sm_trainer_save(r->trainer, r->model_path)))
            return cli_fail(st, "cannot save '%s'", r->model_path);
    }
    if (cli_progress_open) fputc('\n', stderr);
    cli_progress_open = 0;
    if (interrupted && it > start) draw_loss(r, it, per_step);
    if (timed_out)
        printf("time limit of %.0f s reached after %lld steps\n", o->time_limit,
               (long long)(it - start));

    if ((st = sm_trainer_save(r->trainer, r->model_path)))
        return cli_fail(st, "cannot save '%s'", r->model_path);
    if (interrupted) {
        printf("interrupted at iteration %lld; saved %s (continue with --resume)\n", (long long)it,
               r->model_path);
        return 130;
    }
    if (it > start) {
        char el[32];
        cli_duration(el, sizeof el, cli_now() - t_start);
        printf("trained %lld iterations in %s (%.3f s/step): loss %.4f at the first step, %.4f "
               "(smoothed) at the last\n",
               (long long)(it - start), el, per_step, first_loss, smooth);
        double loop = cli_now() - t_start, outside = loop - in_step;
        printf("time: %.1f s in sm_train_step, %.1f s outside it (%.1f %%: validation checks "
               "%.1f s, loss figure %.1f s, logs and the rest %.1f s)\n",
               in_step, outside, loop > 0 ? 100.0 * outside / loop : 0.0, in_validation, in_figures,
               outside - in_validation - in_figures);
    }
    printf("saved %s and %s\n", r->model_path, r->csv_path);
    return 0;
}

/* The ROC of the evaluation's verification pairs, beside the other figures. */
static void draw_roc(run *r, const sm_roc *roc)
{
    size_t n = sm_roc_num_points(roc);
    double *far = malloc(n * sizeof *far), *frr = malloc(n * sizeof *frr);
    fig_roc_data d = {far, frr, n, 0, 0};
    if (far && frr) {
        for (size_t i = 0; i < n; i++) sm_roc_point(roc, i, NULL, &far[i], &frr[i]);
        sm_roc_eer(roc, &d.eer, &d.eer_threshold);
        char path[4300], sub[256];
        snprintf(path, sizeof path, "%s/roc.png", r->fig_dir);
        snprintf(sub, sizeof sub,
                 "random verification pairs of %s, a pair accepted when its "
                 "score >= the threshold",
                 r->o.eval.split ? r->o.eval.split : "the evaluation set");
        if (fig_roc(path, "ROC: verification on classes never seen in training", sub, &d) == 0)
            printf("figure: %s (equal error rate %.2f %%)\n", path, 100 * d.eer);
        else cli_error(0, "warning: cannot draw %s: %s", path, fig_last_error());
    }
    free(far);
    free(frr);
}

/* The figures that do not depend on training: drawn before the first step. */
static void draw_data_figures(run *r)
{
    char path[4300];
    snprintf(path, sizeof path, "%s/training-images.png", r->fig_dir);
    if (pf_training_images(path, r->train, r->o.seed) == 0) printf("figure: %s\n", path);
    snprintf(path, sizeof path, "%s/training-pairs.png", r->fig_dir);
    if (pf_training_pairs(path, r->train, r->o.seed + 11) == 0) printf("figure: %s\n", path);
    if (r->o.figure_every > 0)
        printf("figure: %s (redrawn every %lld steps while training runs)\n", r->fig_loss,
               r->o.figure_every);
    else
        printf("figure: %s (redrawn every %d s while training runs)\n", r->fig_loss,
               FIGURE_EVERY_SECONDS);
}

enum { CALIBRATION_PAIRS = 2000 };

/* With --val-alphabets (unless --no-calibrate): Platt scaling, fitted on the head's logits of
 * random pairs of the validation alphabets with the two kinds of pair weighing equally, is
 * folded into the head (sm_calibrate_fit, sm_head_calibrate), so that the selected model's
 * score 0.5 is the balanced decision point: P x K training moves the scores of dissimilar
 * pairs far below 0.5, and the fixed 0.5 cut undersells such a model. The calibrated model is
 * saved over OUT/best.safetensors (the model the final evaluation uses: the best check's
 * weights, or the last step's when no check ran); OUT/model.safetensors stays the last step's
 * state as trained, for --resume. A fit the pairs cannot give (say, a model that ranks
 * different-class pairs higher) leaves the model uncalibrated, with a note. */
static int calibrate_model(run *r)
{
    const char *best = r->o.sel.best_path;
    float *logits = malloc(CALIBRATION_PAIRS * sizeof *logits);
    float *labels = malloc(CALIBRATION_PAIRS * sizeof *labels);
    double scale = 1, shift = 0;
    sm_status st = logits && labels
                       ? sm_verification_logits(r->subnet, r->head, r->o.sel.val, CALIBRATION_PAIRS,
                                                r->o.seed + 0xca1bULL, logits, labels)
                       : SM_ERR_NOMEM;
    if (st) {
        free(logits);
        free(labels);
        return cli_fail(st, "cannot score the validation alphabets' pairs for calibration");
    }
    st = sm_calibrate_fit(CALIBRATION_PAIRS, logits, labels, &scale, &shift);
    free(logits);
    free(labels);
    if (st == SM_ERR_INVALID_ARG || st == SM_ERR_NUMERIC) {
        printf("calibration: none: %s; the model stays uncalibrated (0.5 is not a calibrated "
               "decision point)\n",
               sm_last_error());
        return 0;
    }
    if (st || (st = sm_head_calibrate(r->head, scale, shift, CALIBRATION_PAIRS)))
        return cli_fail(st, "cannot calibrate the model");
    printf("calibration: Platt scaling on %d random pairs of the validation alphabets (the two "
           "kinds weighing equally): score = sigmoid(%.6g z %c %.6g) of the head's logit z, "
           "folded into the head: a score >= 0.5 now reads \"same\"\n",
           CALIBRATION_PAIRS, scale, shift < 0 ? '-' : '+', fabs(shift));
    if ((st = sm_trainer_save(r->trainer, best)))
        return cli_fail(st, "cannot save the calibrated model as '%s'", best);
    printf("saved the calibrated model as %s (%s; %s stays the last step's uncalibrated state, "
           "for --resume)\n",
           best,
           r->o.sel.best >= 0 ? "the best checkpoint" : "the last step's weights: no check ran",
           r->model_path);
    return 0;
}

/* With --val-alphabets, the verification threshold is also chosen where the validation
 * alphabets' pairs have equal false-accept and false-reject rates (the model selected on
 * them): a choice made on background alphabets only, reported beside the cut at 0.5. */
static int calibrate_threshold(run *r)
{
    enum { PAIRS = CALIBRATION_PAIRS };
    float *scores = malloc(PAIRS * sizeof *scores), *labels = malloc(PAIRS * sizeof *labels);
    sm_roc *roc = NULL;
    double eer = 0, t = 0.5;
    sm_status st = scores && labels
                       ? sm_verification_scores(r->subnet, r->head, r->o.sel.val, PAIRS,
                                                r->o.seed + 0xca1bULL, scores, labels)
                       : SM_ERR_NOMEM;
    if (st == SM_OK) st = sm_roc_create(PAIRS, scores, labels, &roc);
    if (st == SM_OK) st = sm_roc_eer(roc, &eer, &t);
    sm_roc_destroy(roc);
    free(scores);
    free(labels);
    if (st) return cli_fail(st, "cannot calibrate the threshold on the validation alphabets");
    r->o.eval.threshold = t;
    r->o.eval.threshold_from = "the validation alphabets' equal error rate";
    printf("verification threshold: %.4g, where %d random pairs of the validation alphabets have "
           "equal error rates (%.2f %%)\n",
           t, PAIRS, 100.0 * eer);
    return 0;
}

static int run_all(run *r)
{
    options *o = &r->o;
    sm_status st;
    int rc;
    setvbuf(stdout, NULL, _IOLBF, 0);
    if ((o->distributed || dist_launched_size() > 1) && o->sel.val_alphabets)
        return cli_error(2, "--val-alphabets is not supported with --distributed yet");
    if ((rc = dist_start(&r->d, o->distributed))) return rc;
    printf("libsiamese %s\n", sm_version_string());
    if (o->preset) printf("preset: %s (options given with it override its values)\n", o->preset);

    if (!cli_open_backend(o->backend, o->threads, &r->backend)) return 1;
    if ((rc = cli_apply_backend_opts(r->backend, &o->bopts))) return rc;
    printf("backend: %s (%d threads)\n", sm_backend_name(r->backend),
           sm_backend_get_threads(r->backend));
    cli_print_backend_opts(r->backend, &o->bopts);
    if (sm_backend_fallback_reason(r->backend)[0])
        printf("note: not on CUDA: %s\n", sm_backend_fallback_reason(r->backend));

    if ((st = sm_arch_from_string(o->arch, &r->arch)))
        return cli_fail(st, "bad --arch '%s'", o->arch);
    int in_c = 0, in_h = 0, in_w = 0;
    sm_arch_input_shape(r->arch, &in_c, &in_h, &in_w);
    if (in_c != 1)
        return cli_error(1, "the arch takes %d channels; datasets are greyscale (1 channel)", in_c);
    char text[1024];
    if (sm_arch_to_string(r->arch, text, sizeof text, NULL) != SM_OK)
        snprintf(text, sizeof text, "%s", o->arch);
    printf("arch: %s (%zu parameters%s)\n", text, sm_arch_num_params(r->arch),
           o->init == SM_INIT_HE && !(o->resume && cli_file_exists(r->model_path))
               ? ", He initialisation"
               : "");

    if ((rc = open_data(o, in_h, in_w, &r->train, &r->eval))) return rc;
    if ((rc = setup_model(r)) || (rc = set_trainer_params(r))) return rc;

    if (cli_mkdir_p(o->out) != 0)
        return cli_error(1, "cannot create the output folder '%s': %s", o->out, strerror(errno));
    snprintf(r->model_path, sizeof r->model_path, "%s/model.safetensors", o->out);
    snprintf(r->csv_path, sizeof r->csv_path, "%s/loss.csv", o->out);
    if (o->resume && cli_file_exists(r->model_path)) {
        if ((st = sm_trainer_load(r->trainer, r->model_path)))
            return cli_fail(st, "cannot resume from '%s'", r->model_path);
        r->resumed = 1;
        if ((rc = set_trainer_params(r))) return rc;
        printf("resumed from %s at iteration %lld\n", r->model_path,
               (long long)sm_trainer_iteration(r->trainer));
    } else if (o->resume) {
        printf("note: --resume: no %s yet, starting from scratch\n", r->model_path);
    }
    if (r->d.comm && (st = sm_trainer_attach_comm(r->trainer, r->d.comm)))
        return cli_fail(st, "cannot train with the other ranks");
    if ((rc = setup_health(r))) return rc;
    if (r->d.rank == 0) {
        if (loss_log_open(&r->log, r->csv_path, sm_trainer_iteration(r->trainer)))
            return cli_error(1, "cannot write '%s': %s", r->csv_path, strerror(errno));
        r->log_open = 1;
    }

    if (r->d.rank != 0) o->no_figures = 1;
    if (!o->no_figures && !fig_available()) {
        printf("note: no figures: %s\n", fig_last_error());
    } else if (!o->no_figures) {
        if (o->figures) snprintf(r->fig_dir, sizeof r->fig_dir, "%s", o->figures);
        else snprintf(r->fig_dir, sizeof r->fig_dir, "%s/figures", o->out);
        snprintf(r->fig_loss, sizeof r->fig_loss, "%s/training-loss.png", r->fig_dir);
        if (cli_mkdir_p(r->fig_dir) != 0)
            return cli_error(1, "cannot create the figures folder '%s': %s", r->fig_dir,
                             strerror(errno));
        r->figures = 1;
        draw_data_figures(r);
    }

    if ((rc = train(r))) return rc;
    if (r->d.rank != 0) return 0; /* rank 0 evaluates, once */
    if ((rc = selection_finish(&o->sel, r->trainer, &r->eval))) return rc;
    if (o->sel.val && !o->sel.no_calibrate && (rc = calibrate_model(r))) return rc;
    if (o->sel.val && !o->eval.threshold_from && (rc = calibrate_threshold(r))) return rc;

    if (r->figures) {
        char path[4300];
        const sm_dataset *test = r->eval ? r->eval : r->train;
        snprintf(path, sizeof path, "%s/test-pairs.png", r->fig_dir);
        if (pf_test_pairs(path, r->subnet, r->head, test, o->seed + 0x7e57ULL) == 0)
            printf("figure: %s (pairs of the %s set)\n", path, r->eval ? "evaluation" : "training");
    }
    if (!r->eval) return 0;
    printf("evaluation on %s (classes never seen in training):\n", o->eval.split);
    sm_roc *roc = NULL;
    rc = eval_report(r->subnet, r->head, r->eval, &o->eval, r->figures ? &roc : NULL);
    if (rc == 0 && roc) draw_roc(r, roc);
    sm_roc_destroy(roc);
    return rc;
}

int main(int argc, char **argv)
{
    cli_prog = "siamese-train";
    cli_show_library_warnings();
    run r;
    memset(&r, 0, sizeof r);
    r.o = (options){
        .arch = "koch",
        .backend = "auto",
        .out = "out",
        .iterations = 10000,
        .batch = 180,
        .lr = 6e-5,
        .step_gamma = 0.1,
        .seed = 1,
        .save_every = 1000,
        .figure_every = 0,
        .validate_every = -1,
        .validation_pairs = 300,
        .synthetic_classes = 200,
        .synthetic_images = 20,
        .eval = eval_plan_default(),
        .sel = selection_default(),
        .bopts = CLI_BACKEND_OPTS_INIT,
    };
    int pargc = 0;
    char **pargv = NULL;
    int prc = preset_expand(argc, argv, &pargc, &pargv, &r.o.preset);
    if (prc) return prc;
    prc = parse_options(pargc, pargv, &r.o); /* r.o points into pargv's strings */
    if (prc) {
        free(pargv);
        return prc < 0 ? 0 : prc;
    }
    int rc = run_all(&r);
    if (r.log_open) loss_log_close(&r.log);
    sm_trainer_destroy(r.trainer);
    sm_adam_destroy(r.adam);
    sm_head_destroy(r.head);
    sm_subnet_destroy(r.subnet);
    sm_dataset_destroy(r.eval);
    selection_free(&r.o.sel);
    sm_dataset_destroy(r.train);
    sm_arch_destroy(r.arch);
    sm_backend_destroy(r.backend);
    free(pargv);
    dist_end(&r.d); /* last: the comm-mpi module finalises MPI */
    return rc;
}
