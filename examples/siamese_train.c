/* siamese-train: the reference pipeline (SPEC.md) end to end, using only <siamese/siamese.h>.
 *
 *   1. open the training set (Omniglot's images_background, a folder or the zip) or, without
 *      --data, generate a synthetic set of handwriting-like glyphs;
 *   2. create the twin subnetwork (default: Koch et al. 2015), the head, Adam and a trainer;
 *   3. train for --iterations steps of --batch random pairs, with a live progress line, writing
 *      OUT/loss.csv and checkpointing to OUT/model.safetensors;
 *   4. evaluate: --eval-batches batches of --eval-pairs random pairs from the evaluation set
 *      (alphabets never seen in training), accuracy = round(score) == label.
 *
 * Run `siamese-train --help` for the options. */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include <siamese/siamese.h>

#define PROG "siamese-train"

typedef struct options {
    const char *data;
    const char *eval_data;
    const char *alphabets;
    const char *arch;
    const char *backend;
    const char *out;
    long long iterations;
    long long batch;
    long long micro_batch;
    double lr;
    unsigned long long seed;
    int threads;
    long long save_every;
    int eval_batches;
    int eval_pairs;
    int synthetic_classes;
    int synthetic_images;
    int resume;
} options;

static void usage(FILE *f)
{
    fprintf(f,
        "Usage: " PROG " [OPTIONS]\n"
        "Trains a Siamese network (Koch et al. 2015 by default) on Omniglot or on a built-in\n"
        "synthetic glyph set, then evaluates it on random pairs from held-out classes.\n"
        "\n"
        "Data:\n"
        "  --data PATH          training set: Omniglot images_background (folder or .zip);\n"
        "                       default: a synthetic glyph set (sm_dataset_create_synthetic)\n"
        "  --eval-data PATH     evaluation set; default: images_evaluation.zip (or folder)\n"
        "                       beside --data, or a second synthetic set with other classes\n"
        "  --alphabets A,B,...  train on these alphabets of --data only\n"
        "  --synthetic-classes N  classes in the synthetic training set (default 200)\n"
        "  --synthetic-images N   images per synthetic class (default 20)\n"
        "Model and training:\n"
        "  --arch TEXT          \"koch\" (default) or a layer list, e.g. a small CPU-friendly one:\n"
        "                       \"1x105x105:conv32k10,relu,pool4,conv64k5,relu,pool2,flatten,fc128\"\n"
        "                       (with --lr 1e-3 --batch 32)\n"
        "  --backend NAME       auto (default), cpu or cuda\n"
        "  --iterations N       training steps (default 10000)\n"
        "  --batch N            pairs per step (default 180)\n"
        "  --micro-batch N      pairs per forward/backward chunk (memory only; default: library's)\n"
        "  --lr X               Adam learning rate (default 6e-5)\n"
        "  --seed N             seed for weights, pairs and evaluation (default 1)\n"
        "  --threads N          worker threads, 0 = all cores (default 0)\n"
        "Output:\n"
        "  --out DIR            writes DIR/model.safetensors and DIR/loss.csv (default \"out\")\n"
        "  --save-every N       also checkpoint every N iterations, 0 = only at the end\n"
        "                       (default 1000)\n"
        "  --resume             continue from DIR/model.safetensors if it exists\n"
        "Evaluation:\n"
        "  --eval-batches N     batches of random pairs (default 5; 0 = no evaluation)\n"
        "  --eval-pairs N       pairs per batch (default 150)\n"
        "  -h, --help           this text\n"
        "\n"
        "Ctrl-C stops training after the current step and saves a checkpoint (use --resume).\n");
}

/* ---------------------------------------------------------------------------------------------
 * Small helpers
 * ------------------------------------------------------------------------------------------- */

/* Set while a \r progress line is on the terminal, so that a message starts on a new line. */
static int progress_open = 0;

#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
static int fail(sm_status st, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "%s" PROG ": ", progress_open ? "\n" : "");
    progress_open = 0;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    const char *detail = sm_last_error();
    fprintf(stderr, ": %s (%s)%s%s\n", sm_status_name(st), sm_status_str(st),
            detail[0] ? ": " : "", detail);
    return 1;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* "12.3s", "4m05s", "2h07m". */
static void fmt_duration(char *buf, size_t cap, double s)
{
    if (!(s >= 0.0) || s > 1e8) {
        snprintf(buf, cap, "--");
    } else if (s < 60.0) {
        snprintf(buf, cap, "%.1fs", s);
    } else if (s < 3600.0) {
        long t = lround(s);
        snprintf(buf, cap, "%ldm%02lds", t / 60, t % 60);
    } else {
        long t = lround(s / 60.0);
        snprintf(buf, cap, "%ldh%02ldm", t / 60, t % 60);
    }
}

static int parse_ll(const char *name, const char *text, long long lo, long long hi, long long *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    if (errno || end == text || *end || v < lo || v > hi) {
        fprintf(stderr, PROG ": --%s wants an integer in [%lld, %lld], got '%s'\n", name, lo, hi,
                text);
        return 0;
    }
    *out = v;
    return 1;
}

static int file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

static int mkdir_p(const char *dir)
{
    char path[4096];
    if (snprintf(path, sizeof path, "%s", dir) >= (int)sizeof path) return -1;
    for (char *p = path + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(path, 0777) != 0 && errno != EEXIST) return -1;
        *p = '/';
    }
    if (mkdir(path, 0777) != 0 && errno != EEXIST) return -1;
    return 0;
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
    static const char *const names[] = {"images_evaluation.zip", "images_evaluation"};
    for (size_t i = 0; i < 2; i++) {
        if (snprintf(out, cap, "%s/%s", dir, names[i]) >= (int)cap) continue;
        if (file_exists(out)) return 1;
    }
    snprintf(out, cap, "%s/images_evaluation.zip", dir);
    return 0;
}

static volatile sig_atomic_t interrupted = 0;

static void on_sigint(int sig)
{
    (void)sig;
    interrupted = 1;
}

/* Rewrites OUT/loss.csv for a resumed run: keeps the header and the rows up to `iteration`
 * (later rows belong to steps the checkpoint does not contain), returns the elapsed time of the
 * last kept row, so that elapsed_s continues. */
static double trim_loss_csv(const char *path, int64_t iteration)
{
    FILE *in = fopen(path, "r");
    if (!in) return 0.0;
    char tmp[4300];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp) {
        fclose(in);
        return 0.0;
    }
    FILE *outf = fopen(tmp, "w");
    if (!outf) {
        fclose(in);
        return 0.0;
    }
    double last_elapsed = 0.0;
    char line[256];
    fprintf(outf, "iteration,loss,elapsed_s\n");
    while (fgets(line, sizeof line, in)) {
        long long it;
        double loss, el;
        if (sscanf(line, "%lld,%lf,%lf", &it, &loss, &el) != 3) continue;
        if (it > iteration) break;
        fputs(line, outf);
        last_elapsed = el;
    }
    fclose(in);
    if (fclose(outf) != 0 || rename(tmp, path) != 0) remove(tmp);
    return last_elapsed;
}

/* ---------------------------------------------------------------------------------------------
 * Evaluation (SPEC.md): batches of random pairs, accuracy = round(score) == label
 * ------------------------------------------------------------------------------------------- */

static int evaluate(const sm_subnet *subnet, const sm_head *head, const sm_dataset *eval,
                    const options *o)
{
    int h = 0, w = 0;
    sm_status st = sm_dataset_image_size(eval, &h, &w);
    if (st) return fail(st, "evaluation set");
    size_t n = (size_t)o->eval_pairs, px = (size_t)h * (size_t)w;
    float *left = malloc(n * px * sizeof *left), *right = malloc(n * px * sizeof *right);
    float *labels = malloc(n * sizeof *labels), *scores = malloc(n * sizeof *scores);
    sm_sampler *sampler = NULL;
    int rc = 0;
    if (!left || !right || !labels || !scores) {
        fprintf(stderr, PROG ": out of memory for the evaluation pairs\n");
        rc = 1;
        goto done;
    }
    st = sm_sampler_create(eval, (uint64_t)o->seed + 0x5eedULL, &sampler);
    if (st) {
        rc = fail(st, "cannot sample pairs from the evaluation set");
        goto done;
    }
    printf("evaluation: %d batches of %d random pairs (chance 50%%)\n", o->eval_batches,
           o->eval_pairs);
    double sum = 0.0;
    for (int b = 0; b < o->eval_batches; b++) {
        st = sm_sampler_next(sampler, n, left, right, labels, NULL, NULL);
        if (st == SM_OK) st = sm_predict_pairs(subnet, head, n, left, right, scores);
        if (st) {
            rc = fail(st, "evaluation batch %d", b + 1);
            goto done;
        }
        size_t correct = 0, similar = 0;
        for (size_t i = 0; i < n; i++) {
            float pred = scores[i] >= 0.5f ? 1.0f : 0.0f; /* round(score), halves up */
            correct += pred == labels[i];
            similar += labels[i] == 1.0f;
        }
        double acc = (double)correct / (double)n;
        sum += acc;
        printf("  batch %d: %5.2f %% (%zu/%zu correct, %zu similar pairs)\n", b + 1, 100.0 * acc,
               correct, n, similar);
    }
    printf("mean accuracy: %.2f %% over %d x %d pairs\n", 100.0 * sum / o->eval_batches,
           o->eval_batches, o->eval_pairs);
done:
    sm_sampler_destroy(sampler);
    free(left), free(right), free(labels), free(scores);
    return rc;
}

/* ---------------------------------------------------------------------------------------------
 * Main
 * ------------------------------------------------------------------------------------------- */

static int parse_options(int argc, char **argv, options *o)
{
    enum {
        O_DATA = 256, O_EVAL_DATA, O_ALPHABETS, O_ARCH, O_BACKEND, O_ITER, O_BATCH, O_MICRO, O_LR,
        O_SEED, O_THREADS, O_OUT, O_SAVE_EVERY, O_EVAL_BATCHES, O_EVAL_PAIRS, O_SYN_CLASSES,
        O_SYN_IMAGES, O_RESUME
    };
    static const struct option longopts[] = {
        {"data", required_argument, NULL, O_DATA},
        {"eval-data", required_argument, NULL, O_EVAL_DATA},
        {"alphabets", required_argument, NULL, O_ALPHABETS},
        {"arch", required_argument, NULL, O_ARCH},
        {"backend", required_argument, NULL, O_BACKEND},
        {"iterations", required_argument, NULL, O_ITER},
        {"batch", required_argument, NULL, O_BATCH},
        {"micro-batch", required_argument, NULL, O_MICRO},
        {"lr", required_argument, NULL, O_LR},
        {"seed", required_argument, NULL, O_SEED},
        {"threads", required_argument, NULL, O_THREADS},
        {"out", required_argument, NULL, O_OUT},
        {"save-every", required_argument, NULL, O_SAVE_EVERY},
        {"eval-batches", required_argument, NULL, O_EVAL_BATCHES},
        {"eval-pairs", required_argument, NULL, O_EVAL_PAIRS},
        {"synthetic-classes", required_argument, NULL, O_SYN_CLASSES},
        {"synthetic-images", required_argument, NULL, O_SYN_IMAGES},
        {"resume", no_argument, NULL, O_RESUME},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    long long v;
    int c;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case O_DATA: o->data = optarg; break;
        case O_EVAL_DATA: o->eval_data = optarg; break;
        case O_ALPHABETS: o->alphabets = optarg; break;
        case O_ARCH: o->arch = optarg; break;
        case O_BACKEND: o->backend = optarg; break;
        case O_OUT: o->out = optarg; break;
        case O_RESUME: o->resume = 1; break;
        case O_ITER:
            if (!parse_ll("iterations", optarg, 0, INT64_MAX / 2, &o->iterations)) return 2;
            break;
        case O_BATCH:
            if (!parse_ll("batch", optarg, 1, 65536, &o->batch)) return 2;
            break;
        case O_MICRO:
            if (!parse_ll("micro-batch", optarg, 1, 65536, &o->micro_batch)) return 2;
            break;
        case O_SEED:
            if (!parse_ll("seed", optarg, 0, INT64_MAX, &v)) return 2;
            o->seed = (unsigned long long)v;
            break;
        case O_THREADS:
            if (!parse_ll("threads", optarg, 0, 1024, &v)) return 2;
            o->threads = (int)v;
            break;
        case O_SAVE_EVERY:
            if (!parse_ll("save-every", optarg, 0, INT64_MAX / 2, &o->save_every)) return 2;
            break;
        case O_EVAL_BATCHES:
            if (!parse_ll("eval-batches", optarg, 0, 100000, &v)) return 2;
            o->eval_batches = (int)v;
            break;
        case O_EVAL_PAIRS:
            if (!parse_ll("eval-pairs", optarg, 1, 65536, &v)) return 2;
            o->eval_pairs = (int)v;
            break;
        case O_SYN_CLASSES:
            if (!parse_ll("synthetic-classes", optarg, 2, 100000, &v)) return 2;
            o->synthetic_classes = (int)v;
            break;
        case O_SYN_IMAGES:
            if (!parse_ll("synthetic-images", optarg, 2, 10000, &v)) return 2;
            o->synthetic_images = (int)v;
            break;
        case O_LR: {
            char *end;
            o->lr = strtod(optarg, &end);
            if (end == optarg || *end || !(o->lr > 0.0 && o->lr <= 1.0)) {
                fprintf(stderr, PROG ": --lr wants a number in (0, 1], got '%s'\n", optarg);
                return 2;
            }
            break;
        }
        case 'h': usage(stdout); return -1;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, PROG ": unexpected argument '%s' (see --help)\n", argv[optind]);
        return 2;
    }
    return 0;
}

/* Splits "A,B,C" in place into `names` (at most `cap`). */
static size_t split_commas(char *text, const char **names, size_t cap)
{
    size_t n = 0;
    for (char *tok = strtok(text, ","); tok && n < cap; tok = strtok(NULL, ",")) names[n++] = tok;
    return n;
}

int main(int argc, char **argv)
{
    options o = {
        .arch = "koch", .backend = "auto", .out = "out", .iterations = 10000, .batch = 180,
        .lr = 6e-5, .seed = 1, .save_every = 1000, .eval_batches = 5, .eval_pairs = 150,
        .synthetic_classes = 200, .synthetic_images = 20,
    };
    int prc = parse_options(argc, argv, &o);
    if (prc) return prc < 0 ? 0 : prc;

    int rc = 1;
    sm_status st;
    sm_backend *backend = NULL;
    sm_arch *arch = NULL;
    sm_dataset *train = NULL, *eval = NULL;
    sm_subnet *subnet = NULL;
    sm_head *head = NULL;
    sm_adam *adam = NULL;
    sm_trainer *trainer = NULL;
    FILE *csv = NULL;
    char *alpha_buf = NULL;
    char model_path[4200], csv_path[4200], eval_path[4200];

    setvbuf(stdout, NULL, _IOLBF, 0);
    printf("libsiamese %s\n", sm_version_string());

    /* Backend. */
    sm_backend_kind kind;
    if (!strcmp(o.backend, "auto")) kind = SM_BACKEND_AUTO;
    else if (!strcmp(o.backend, "cpu")) kind = SM_BACKEND_CPU;
    else if (!strcmp(o.backend, "cuda")) kind = SM_BACKEND_CUDA;
    else {
        fprintf(stderr, PROG ": --backend wants auto, cpu or cuda, got '%s'\n", o.backend);
        return 2;
    }
    if ((st = sm_backend_create(kind, &backend))) {
        rc = fail(st, "cannot create the %s backend", o.backend);
        goto done;
    }
    if ((st = sm_backend_set_threads(backend, o.threads))) {
        rc = fail(st, "cannot use %d threads", o.threads);
        goto done;
    }
    printf("backend: %s (%d threads)\n", sm_backend_name(backend), sm_backend_get_threads(backend));

    /* Architecture. */
    if ((st = sm_arch_from_string(o.arch, &arch))) {
        rc = fail(st, "bad --arch '%s'", o.arch);
        goto done;
    }
    int in_c = 0, in_h = 0, in_w = 0;
    sm_arch_input_shape(arch, &in_c, &in_h, &in_w);
    if (in_c != 1) {
        fprintf(stderr, PROG ": the arch takes %d channels; datasets are greyscale (1 channel)\n",
                in_c);
        goto done;
    }
    {
        char text[1024];
        if (sm_arch_to_string(arch, text, sizeof text, NULL) != SM_OK) snprintf(text, sizeof text, "%s", o.arch);
        printf("arch: %s (%zu parameters)\n", text, sm_arch_num_params(arch));
    }

    /* Data. */
    double t0 = now_s();
    if (o.data) {
        const char *names[256];
        size_t n_names = 0;
        if (o.alphabets) {
            alpha_buf = strdup(o.alphabets);
            if (!alpha_buf) goto done;
            n_names = split_commas(alpha_buf, names, sizeof names / sizeof *names);
        }
        if ((st = sm_dataset_open(o.data, in_h, in_w, n_names ? names : NULL, n_names, &train))) {
            rc = fail(st, "cannot open the training set '%s'", o.data);
            goto done;
        }
        printf("training set: %s: %zu alphabets, %zu classes, %zu images (%.1fs)\n", o.data,
               sm_dataset_num_alphabets(train), sm_dataset_num_classes(train),
               sm_dataset_num_images(train), now_s() - t0);
    } else {
        if (o.alphabets) {
            fprintf(stderr, PROG ": --alphabets needs --data\n");
            goto done;
        }
        if ((st = sm_dataset_create_synthetic(o.synthetic_classes, o.synthetic_images, in_h, in_w,
                                              o.seed, &train))) {
            rc = fail(st, "cannot generate the synthetic training set");
            goto done;
        }
        printf("training set: synthetic glyphs (no --data): %zu classes x %d images, %dx%d (%.1fs)\n",
               sm_dataset_num_classes(train), o.synthetic_images, in_h, in_w, now_s() - t0);
    }

    if (o.eval_batches > 0) {
        const char *ep = o.eval_data;
        if (!ep && o.data) {
            if (find_eval_beside(o.data, eval_path, sizeof eval_path)) {
                ep = eval_path;
            } else {
                printf("note: no evaluation set found (looked for %s); pass --eval-data to "
                       "evaluate\n", eval_path);
            }
        }
        t0 = now_s();
        if (ep) {
            if ((st = sm_dataset_open(ep, in_h, in_w, NULL, 0, &eval))) {
                rc = fail(st, "cannot open the evaluation set '%s'", ep);
                goto done;
            }
            printf("evaluation set: %s: %zu alphabets, %zu classes, %zu images (%.1fs)\n", ep,
                   sm_dataset_num_alphabets(eval), sm_dataset_num_classes(eval),
                   sm_dataset_num_images(eval), now_s() - t0);
        } else if (!o.data) {
            /* Held-out classes: the same generator with another seed draws other figures. */
            int n_eval = o.synthetic_classes / 2 > 10 ? o.synthetic_classes / 2 : 10;
            if ((st = sm_dataset_create_synthetic(n_eval, o.synthetic_images, in_h, in_w,
                                                  o.seed + 1000003ULL, &eval))) {
                rc = fail(st, "cannot generate the synthetic evaluation set");
                goto done;
            }
            printf("evaluation set: synthetic glyphs, %zu other classes (%.1fs)\n",
                   sm_dataset_num_classes(eval), now_s() - t0);
        }
    }

    /* Model, optimiser, trainer. */
    if ((st = sm_subnet_create(backend, arch, o.seed, &subnet))) {
        rc = fail(st, "cannot create the subnetwork");
        goto done;
    }
    if ((st = sm_head_create(backend, sm_subnet_feature_dim(subnet), o.seed + 1, &head))) {
        rc = fail(st, "cannot create the head");
        goto done;
    }
    if ((st = sm_adam_create(subnet, head, &adam)) ||
        (st = sm_adam_set(adam, SM_ADAM_LEARNING_RATE, o.lr))) {
        rc = fail(st, "cannot set up Adam");
        goto done;
    }
    if ((st = sm_trainer_create(subnet, head, adam, train, o.seed + 2, &trainer))) {
        rc = fail(st, "cannot create the trainer");
        goto done;
    }
    if ((st = sm_trainer_set_param(trainer, SM_TRAINER_BATCH_SIZE, o.batch)) ||
        (o.micro_batch && (st = sm_trainer_set_param(trainer, SM_TRAINER_MICRO_BATCH,
                                                     o.micro_batch)))) {
        rc = fail(st, "cannot set the batch size");
        goto done;
    }
    int64_t micro = 0;
    sm_trainer_get_param(trainer, SM_TRAINER_MICRO_BATCH, &micro);

    /* Output folder, resume. */
    if (mkdir_p(o.out) != 0) {
        fprintf(stderr, PROG ": cannot create the output folder '%s': %s\n", o.out,
                strerror(errno));
        goto done;
    }
    snprintf(model_path, sizeof model_path, "%s/model.safetensors", o.out);
    snprintf(csv_path, sizeof csv_path, "%s/loss.csv", o.out);
    double elapsed_before = 0.0;
    if (o.resume && file_exists(model_path)) {
        if ((st = sm_trainer_load(trainer, model_path))) {
            rc = fail(st, "cannot resume from '%s'", model_path);
            goto done;
        }
        /* The checkpoint restores the batch sizes it was saved with; the command line wins. */
        if ((st = sm_trainer_set_param(trainer, SM_TRAINER_BATCH_SIZE, o.batch)) ||
            (o.micro_batch && (st = sm_trainer_set_param(trainer, SM_TRAINER_MICRO_BATCH,
                                                         o.micro_batch)))) {
            rc = fail(st, "cannot set the batch size");
            goto done;
        }
        sm_trainer_get_param(trainer, SM_TRAINER_MICRO_BATCH, &micro);
        elapsed_before = trim_loss_csv(csv_path, sm_trainer_iteration(trainer));
        printf("resumed from %s at iteration %lld\n", model_path,
               (long long)sm_trainer_iteration(trainer));
    } else if (o.resume) {
        printf("note: --resume: no %s yet, starting from scratch\n", model_path);
    }
    int64_t start = sm_trainer_iteration(trainer);
    csv = fopen(csv_path, start > 0 ? "a" : "w");
    if (!csv) {
        fprintf(stderr, PROG ": cannot write '%s': %s\n", csv_path, strerror(errno));
        goto done;
    }
    if (start == 0) fprintf(csv, "iteration,loss,elapsed_s\n");

    /* Training. */
    if (micro > o.batch) micro = o.batch;
    printf("training: %lld iterations of %lld pairs (micro-batch %lld), lr %g, seed %llu -> %s\n",
           (long long)o.iterations, (long long)o.batch, (long long)micro, o.lr, o.seed, o.out);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    const int tty = isatty(fileno(stderr));
    const int64_t total = o.iterations;
    const int64_t line_every = total / 20 > 0 ? total / 20 : 1; /* without a terminal */
    double first_loss = NAN, smooth = NAN;
    double t_start = now_s(), t_shown = 0.0;
    int64_t it = start;
    while (it < total && !interrupted) {
        float loss = 0.0f;
        if ((st = sm_train_step(trainer, &loss))) {
            rc = fail(st, "training step %lld failed", (long long)it + 1);
            goto done;
        }
        it = sm_trainer_iteration(trainer);
        double t = now_s(), run = t - t_start, elapsed = elapsed_before + run;
        fprintf(csv, "%lld,%.6f,%.3f\n", (long long)it, (double)loss, elapsed);
        fflush(csv); /* one line per step, so the curve can be watched (tail -f) while it runs */
        if (isnan(first_loss)) first_loss = loss;
        smooth = isnan(smooth) ? loss : 0.95 * smooth + 0.05 * loss;

        double per_step = run / (double)(it - start);
        int last = it == total;
        if ((tty && (t - t_shown >= 0.25 || last)) || (!tty && (it % line_every == 0 || last))) {
            char el[32], eta[32];
            fmt_duration(el, sizeof el, elapsed);
            fmt_duration(eta, sizeof eta, per_step * (double)(total - it));
            fprintf(stderr, "%s%*lld/%lld  loss %.4f (avg %.4f)  elapsed %s  ETA %s  %.3f s/step%s",
                    tty ? "\r" : "", (int)snprintf(NULL, 0, "%lld", (long long)total),
                    (long long)it, (long long)total, (double)loss, smooth, el, eta, per_step,
                    tty ? "\033[K" : "\n");
            fflush(stderr);
            progress_open = tty;
            t_shown = t;
        }
        if (o.save_every > 0 && it % o.save_every == 0 && it < total) {
            if ((st = sm_trainer_save(trainer, model_path))) {
                rc = fail(st, "cannot save '%s'", model_path);
                goto done;
            }
        }
    }
    if (progress_open) fputc('\n', stderr);
    progress_open = 0;
    fflush(csv);

    if ((st = sm_trainer_save(trainer, model_path))) {
        rc = fail(st, "cannot save '%s'", model_path);
        goto done;
    }
    if (interrupted) {
        printf("interrupted at iteration %lld; saved %s (continue with --resume)\n",
               (long long)it, model_path);
        rc = 130;
        goto done;
    }
    if (it > start) {
        char el[32];
        fmt_duration(el, sizeof el, now_s() - t_start);
        printf("trained %lld iterations in %s: loss %.4f at the first step, %.4f (smoothed) at "
               "the last\n", (long long)(it - start), el, first_loss, smooth);
    }
    printf("saved %s and %s\n", model_path, csv_path);

    rc = 0;
    if (eval) rc = evaluate(subnet, head, eval, &o);

done:
    if (csv) fclose(csv);
    sm_trainer_destroy(trainer);
    sm_adam_destroy(adam);
    sm_head_destroy(head);
    sm_subnet_destroy(subnet);
    sm_dataset_destroy(eval);
    sm_dataset_destroy(train);
    sm_arch_destroy(arch);
    sm_backend_destroy(backend);
    free(alpha_buf);
    return rc;
}
