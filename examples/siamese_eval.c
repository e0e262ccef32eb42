/* SPDX-License-Identifier: MIT */
/* siamese-eval: evaluates a saved model, using only <siamese/siamese.h>.
 *
 *   siamese-eval MODEL --data images_evaluation.zip [--oneshot-runs all_runs.zip]
 *                [--episodes 400 --way 20 --shot 1 --within-alphabet]
 *
 * Reports docs/reference.md's three numbers separately (eval_report.h): random-pair verification on
 * --data, 20-way one-shot on the official runs, N-way k-shot episodes drawn from --data. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include <siamese/siamese.h>

#include "cli.h"
#include "eval_report.h"
#include "omniglot_find.h"

static void usage(FILE *f)
{
    fprintf(
        f,
        "Usage: siamese-eval MODEL [--data PATH] [OPTIONS]\n"
        "Evaluates MODEL (a file written by siamese-train) and prints each kind of number on\n"
        "its own line: (i) random-pair verification, (ii) 20-way one-shot on the official runs,\n"
        "(iii) N-way k-shot episodes.\n"
        "\n"
        "  --data PATH          evaluation set (folder or .zip laid out as Omniglot's) for (i)\n"
        "                       and (iii), or a folder holding images_evaluation.zip; images\n"
        "                       are made grey and resized to the model's size; default:\n"
        "                       $SIAMESE_OMNIGLOT_DIR, then ./data/omniglot (unless only\n"
        "                       --oneshot-runs is given)\n" EVAL_OPTIONS_HELP
        "  --seed N             seed of the pairs and episodes (default 1)\n"
        "  --backend NAME       auto (default), cpu, cpu-dnnl or cuda\n" CLI_BACKEND_OPTIONS_HELP
        "  --threads N          worker threads, 0 = all cores (default 0)\n"
        "  -h, --help           this text\n");
}

int main(int argc, char **argv)
{
    cli_prog = "siamese-eval";
    cli_show_library_warnings();
    enum { O_DATA = 256, O_SEED, O_BACKEND, O_THREADS, O_EVAL, O_BACKEND_OPT };
    static const struct option longopts[] = {
        {"data", required_argument, NULL, O_DATA},
        {"seed", required_argument, NULL, O_SEED},
        {"backend", required_argument, NULL, O_BACKEND},
        {"conv-algo", required_argument, NULL, O_BACKEND_OPT},
        {"precision", required_argument, NULL, O_BACKEND_OPT},
        {"threads", required_argument, NULL, O_THREADS},
        {"eval-batches", required_argument, NULL, O_EVAL},
        {"eval-pairs", required_argument, NULL, O_EVAL},
        {"oneshot-runs", required_argument, NULL, O_EVAL},
        {"episodes", required_argument, NULL, O_EVAL},
        {"way", required_argument, NULL, O_EVAL},
        {"shot", required_argument, NULL, O_EVAL},
        {"within-alphabet", no_argument, NULL, O_EVAL},
        {"between-alphabets", no_argument, NULL, O_EVAL},
        {"threshold", required_argument, NULL, O_EVAL},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    eval_plan plan = eval_plan_default();
    cli_backend_opts bopts = CLI_BACKEND_OPTS_INIT;
    const char *data = NULL, *backend_name = "auto";
    int threads = 0, c, index = 0;
    long long seed;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", longopts, &index)) != -1) {
        switch (c) {
        case O_DATA: data = optarg; break;
        case O_BACKEND: backend_name = optarg; break;
        case O_BACKEND_OPT:
            if (cli_backend_option(&bopts, longopts[index].name, optarg) < 0) return 2;
            break;
        case O_SEED:
            if (!cli_parse_ll("seed", optarg, 0, INT64_MAX, &seed)) return 2;
            plan.seed = (uint64_t)seed;
            break;
        case O_THREADS:
            if (!cli_parse_int("threads", optarg, 0, 1024, &threads)) return 2;
            break;
        case O_EVAL:
            if (eval_plan_option(&plan, longopts[index].name, optarg) < 0) return 2;
            break;
        case 'h': usage(stdout); return 0;
        case ':': return cli_error(2, "%s needs a value (see --help)", argv[optind - 1]);
        default: return cli_error(2, "unknown option '%s' (see --help)", argv[optind - 1]);
        }
    }
    if (optind != argc - 1) {
        cli_error(0, optind == argc ? "no MODEL given" : "expected one MODEL, got %d arguments",
                  argc - optind);
        usage(stderr);
        return 2;
    }
    /* --data may name a folder holding images_evaluation.zip; without it (and without runs)
     * the evaluation set is looked for as omniglot_find.h says. */
    static char data_path[4200];
    if (data || !plan.runs) {
        char looked[9000];
        int found = omniglot_find(data, "images_evaluation", data_path, sizeof data_path, looked,
                                  sizeof looked);
        if (found < 0) return cli_error(2, "the data path is too long");
        if (found == 0)
            return cli_error(2,
                             "nothing to evaluate: no --data, no --oneshot-runs, and no "
                             "Omniglot evaluation set found (%s)",
                             looked);
        if (!data) printf("Omniglot found: %s\n", data_path);
        data = data_path;
    }
    const char *model = argv[optind];

    int rc = 1;
    sm_status st;
    sm_backend *backend = NULL;
    sm_subnet *subnet = NULL;
    sm_head *head = NULL;
    sm_arch *arch = NULL;
    sm_dataset *ds = NULL;
    if (!cli_open_backend(backend_name, threads, &backend)) goto done;
    if ((rc = cli_apply_backend_opts(backend, &bopts))) goto done;
    rc = 1;
    cli_print_backend_opts(backend, &bopts);
    if ((st = sm_model_load(backend, model, &subnet, &head))) {
        rc = cli_fail(st, "cannot load the model '%s'", model);
        goto done;
    }
    int h = 0, w = 0;
    if ((st = sm_subnet_get_arch(subnet, &arch)) ||
        (st = sm_arch_input_shape(arch, NULL, &h, &w))) {
        rc = cli_fail(st, "cannot read the architecture of '%s'", model);
        goto done;
    }
    plan.resize_images = 1; /* the official runs' images too */
    printf("model: %s (%zu parameters), backend %s\n", model, sm_subnet_num_params(subnet),
           sm_backend_name(backend));
    if (data) {
        /* as --help promises: images of another size are resized to the model's, once */
        sm_dataset_options opts = SM_DATASET_OPTIONS_INIT;
        opts.resize = 1;
        if ((st = sm_dataset_open_with(data, h, w, NULL, 0, &opts, &ds))) {
            rc = cli_fail(st, "cannot open '%s'", data);
            goto done;
        }
        const char *base = strrchr(data, '/');
        plan.split = base && base[1] ? base + 1 : data;
        printf("evaluation set: %s: %zu alphabets, %zu classes, %zu images\n", data,
               sm_dataset_num_alphabets(ds), sm_dataset_num_classes(ds), sm_dataset_num_images(ds));
    }
    rc = eval_report(subnet, head, ds, &plan, NULL);

done:
    sm_dataset_destroy(ds);
    sm_arch_destroy(arch);
    sm_head_destroy(head);
    sm_subnet_destroy(subnet);
    sm_backend_destroy(backend);
    return rc;
}
