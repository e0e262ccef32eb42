/* SPDX-License-Identifier: MIT */
/* Evaluation reports (eval_report.h). */
#include "eval_report.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

eval_plan eval_plan_default(void)
{
    eval_plan p = {NULL, 5, 150, NULL, 0, 20, 1, 1, 1, 0, 0.5, NULL};
    return p;
}

int eval_plan_option(eval_plan *p, const char *opt, const char *value)
{
    long long v;
    if (!strcmp(opt, "eval-batches")) {
        if (!cli_parse_ll(opt, value, 0, 100000, &v)) return -1;
        p->verify_batches = (int)v;
    } else if (!strcmp(opt, "eval-pairs")) {
        if (!cli_parse_ll(opt, value, 1, 65536, &v)) return -1;
        p->verify_pairs = (int)v;
    } else if (!strcmp(opt, "oneshot-runs")) {
        p->runs = value;
    } else if (!strcmp(opt, "episodes")) {
        if (!cli_parse_ll(opt, value, 0, 1000000, &p->episodes)) return -1;
    } else if (!strcmp(opt, "way")) {
        if (!cli_parse_int(opt, value, 2, 1000, &p->way)) return -1;
    } else if (!strcmp(opt, "shot")) {
        if (!cli_parse_int(opt, value, 1, 100, &p->shot)) return -1;
    } else if (!strcmp(opt, "within-alphabet")) {
        p->within_alphabet = 1;
    } else if (!strcmp(opt, "between-alphabets")) {
        p->within_alphabet = 0;
    } else if (!strcmp(opt, "threshold")) {
        char *end;
        double t = strtod(value, &end);
        if (end == value || *end || !(t >= 0.0 && t <= 1.0))
            return cli_error(-1, "--threshold wants a score in 0..1, got '%s'", value);
        p->threshold = t;
        p->threshold_from = "--threshold";
    } else {
        return 0;
    }
    return 1;
}

static void print_result(const char *label, const char *title, const sm_eval_result *r,
                         const char *what)
{
    printf("%s %s: %.2f %% (%.1f of %llu %s; chance %.1f %%)\n", label, title, 100.0 * r->accuracy,
           r->correct, (unsigned long long)r->trials, what, 100.0 * r->chance);
    if (r->tied)
        printf("    %llu trials had tied top scores (each counted as 1/number tied)\n",
               (unsigned long long)r->tied);
    if (r->score_std < 1e-3)
        printf("    warning: every score is %.4f: the model gives the same answer to every "
               "pair, so this is chance\n",
               r->score_mean);
}

/* What the cut at 0.5 of (i) means for this model. */
static void print_calibration(const sm_head *head)
{
    int calibrated = 0;
    double scale = 1, shift = 0;
    size_t pairs = 0;
    sm_head_calibration(head, &calibrated, &scale, &shift, &pairs);
    if (calibrated)
        printf("    cut at 0.5, the calibrated decision point (Platt scaling folded into the "
               "head: scale %.6g, shift %+.6g, fitted on %zu pairs)\n",
               scale, shift, pairs);
    else
        printf("    cut at 0.5; the model is not calibrated, so 0.5 is where its training "
               "loss put the cut, not a calibrated decision point\n");
}

/* The ROC of the verification pairs (the same pairs as (i)): the equal error rate and the
 * threshold for a 1 % false-accept rate, printed under (i). */
static int report_roc(const sm_subnet *subnet, const sm_head *head, const sm_dataset *ds, size_t n,
                      uint64_t seed, sm_roc **roc_out)
{
    float *scores = malloc(n * sizeof *scores), *labels = malloc(n * sizeof *labels);
    sm_roc *roc = NULL;
    sm_status st = scores && labels
                       ? sm_verification_scores(subnet, head, ds, n, seed, scores, labels)
                       : SM_ERR_NOMEM;
    if (st == SM_OK) st = sm_roc_create(n, scores, labels, &roc);
    free(scores);
    free(labels);
    if (st == SM_ERR_INVALID_ARG) { /* all pairs of one kind: no curve */
        printf("    no ROC: %s\n", sm_last_error());
        return 0;
    }
    if (st) return cli_fail(st, "ROC of the verification pairs");
    double eer, t_eer, t1, far1, frr1;
    sm_roc_eer(roc, &eer, &t_eer);
    sm_roc_threshold_at_far(roc, 0.01, &t1, &far1, &frr1);
    printf("    equal error rate %.2f %% at threshold %.4g; for a false-accept rate of at most "
           "1 %%: threshold %.4g (FAR %.2f %%, FRR %.2f %%)\n",
           100 * eer, t_eer, t1, 100 * far1, 100 * frr1);
    if (roc_out) *roc_out = roc;
    else sm_roc_destroy(roc);
    return 0;
}

int eval_report(const sm_subnet *subnet, const sm_head *head, const sm_dataset *ds,
                const eval_plan *p, sm_roc **roc)
{
    sm_status st;
    const char *split = p->split ? p->split : "the evaluation set";
    if (ds && p->verify_batches > 0) {
        sm_eval_result r = SM_EVAL_RESULT_INIT;
        size_t n = (size_t)p->verify_batches * (size_t)p->verify_pairs;
        if ((st = sm_verification_accuracy(subnet, head, ds, n, p->seed + 0x5eedULL, &r)))
            return cli_fail(st, "verification on %s", split);
        char what[256];
        snprintf(what, sizeof what, "random pairs (%d x %d) of %s", p->verify_batches,
                 p->verify_pairs, split);
        print_result("(i)  ", "random-pair verification", &r, what);
        print_calibration(head);
        if (p->threshold_from) {
            sm_eval_result rt = SM_EVAL_RESULT_INIT;
            if ((st = sm_verification_accuracy_at(subnet, head, ds, n, p->seed + 0x5eedULL,
                                                  p->threshold, &rt)))
                return cli_fail(st, "verification at threshold %g on %s", p->threshold, split);
            printf("    at threshold %.4g (%s) instead of 0.5: %.2f %% (%.1f of %llu)\n",
                   p->threshold, p->threshold_from, 100.0 * rt.accuracy, rt.correct,
                   (unsigned long long)rt.trials);
        }
        if (report_roc(subnet, head, ds, n, p->seed + 0x5eedULL, roc)) return 1;
    }
    if (p->runs) {
        sm_oneshot_runs *runs = NULL;
        int h = 0, w = 0;
        sm_arch *arch = NULL;
        if ((st = sm_subnet_get_arch(subnet, &arch)) ||
            (st = sm_arch_input_shape(arch, NULL, &h, &w))) {
            sm_arch_destroy(arch);
            return cli_fail(st, "cannot read the model's input size");
        }
        sm_arch_destroy(arch);
        sm_dataset_options ro = SM_DATASET_OPTIONS_INIT;
        ro.resize = p->resize_images;
        if ((st = sm_oneshot_runs_open_with(p->runs, h, w, &ro, &runs)))
            return cli_fail(st, "cannot open the one-shot runs '%s'", p->runs);
        sm_eval_result r = SM_EVAL_RESULT_INIT;
        st = sm_oneshot_evaluate_runs(subnet, head, runs, &r);
        size_t n_runs = sm_oneshot_runs_count(runs);
        sm_oneshot_runs_destroy(runs);
        if (st) return cli_fail(st, "one-shot runs '%s'", p->runs);
        char what[4300];
        snprintf(what, sizeof what, "queries in %zu runs of %s", n_runs, p->runs);
        char title[64];
        snprintf(title, sizeof title, "%d-way one-shot, official runs", r.n_way);
        print_result("(ii) ", title, &r, what);
    }
    if (ds && p->episodes > 0) {
        sm_eval_result r = SM_EVAL_RESULT_INIT;
        if ((st = sm_oneshot_episodes(subnet, head, ds, p->way, p->shot, (size_t)p->episodes,
                                      p->within_alphabet, p->seed + 0xe915ULL, &r)))
            return cli_fail(st, "%d-way %d-shot episodes on %s", p->way, p->shot, split);
        char what[320], title[96];
        snprintf(what, sizeof what, "queries in %lld episodes of %s, seeded", p->episodes, split);
        snprintf(title, sizeof title, "%d-way %d-shot episodes %s alphabets", p->way, p->shot,
                 p->within_alphabet ? "within" : "between");
        print_result("(iii)", title, &r, what);
    }
    return 0;
}
