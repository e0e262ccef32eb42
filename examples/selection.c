/* SPDX-License-Identifier: MIT */
/* Honest model selection for siamese-train (selection.h). */
#include "selection.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

#define VAL_WAY   20
#define VAL_SHOT  1
#define MAX_NAMES 256

selection selection_default(void)
{
    selection s;
    memset(&s, 0, sizeof s);
    s.val_episodes = 100;
    s.best = -1.0;
    return s;
}

/* "12" -> 12 (1); "A,B" -> 0 (names); -1 for "0", "-3", "". */
static long long count_or_names(const char *text)
{
    if (!text[0]) return -1;
    char *end;
    long long v = strtoll(text, &end, 10);
    if (*end) return text[0] == '-' || (text[0] >= '0' && text[0] <= '9' && end != text) ? -1 : 0;
    return v >= 1 ? v : -1;
}

int selection_option(selection *s, const char *opt, const char *value)
{
    if (!strcmp(opt, "val-alphabets")) {
        long long n = count_or_names(value);
        if (n < 0 || strstr(value, ",,") || value[0] == ',' || value[strlen(value) - 1] == ',') {
            cli_error(0,
                      "--val-alphabets wants a count (1 or more) or a list of alphabet names "
                      "A,B,..., got '%s'",
                      value);
            return -1;
        }
        s->val_alphabets = value;
    } else if (!strcmp(opt, "val-episodes")) {
        if (!cli_parse_ll(opt, value, 1, 1000000, &s->val_episodes)) return -1;
        s->episodes_given = 1;
    } else if (!strcmp(opt, "patience")) {
        if (!cli_parse_ll(opt, value, 0, 1000000, &s->patience)) return -1;
        s->patience_given = 1;
    } else if (!strcmp(opt, "resize-images")) {
        s->resize = 1;
    } else if (!strcmp(opt, "no-calibrate")) {
        s->no_calibrate = 1;
    } else {
        return 0;
    }
    return 1;
}

int selection_check_options(const selection *s, int have_data)
{
    (void)have_data;
    if (!s->val_alphabets && (s->episodes_given || s->patience_given))
        return cli_error(2, "%s needs --val-alphabets (the validation alphabets to measure)",
                         s->patience_given ? "--patience" : "--val-episodes");
    if (!s->val_alphabets && s->no_calibrate)
        return cli_error(2, "--no-calibrate needs --val-alphabets (only then does siamese-train "
                            "calibrate, on the validation alphabets)");
    return 0;
}

sm_status selection_open(const selection *s, const char *path, int h, int w,
                         const char *const *alphabets, size_t n_alphabets, sm_dataset **out)
{
    sm_dataset_options opt = SM_DATASET_OPTIONS_INIT;
    opt.resize = s->resize;
    return sm_dataset_open_with(path, h, w, alphabets, n_alphabets, &opt, out);
}

/* Splits "A,B,C" in place into `names` (at most `cap`); 0 when there are more. */
static size_t split_names(char *text, const char **names, size_t cap)
{
    size_t n = 0;
    for (char *tok = strtok(text, ","); tok; tok = strtok(NULL, ",")) {
        if (n == cap) return 0;
        names[n++] = tok;
    }
    return n;
}

static void print_val_set(const selection *s, const char *how)
{
    printf("validation set: %zu background alphabets held out of training (%s):",
           sm_dataset_num_alphabets(s->val), how);
    for (size_t a = 0; a < sm_dataset_num_alphabets(s->val); a++)
        printf("%s %s", a ? "," : "", sm_dataset_alphabet_name(s->val, a));
    printf("; %zu classes, %zu images\n", sm_dataset_num_classes(s->val),
           sm_dataset_num_images(s->val));
}

int selection_open_train(selection *s, const char *path, int h, int w, const char *const *alphabets,
                         size_t n_alphabets, uint64_t seed, sm_dataset **train)
{
    sm_status st;
    long long n = s->val_alphabets ? count_or_names(s->val_alphabets) : -1;
    if (!s->val_alphabets || n > 0) {
        if (path && (st = selection_open(s, path, h, w, alphabets, n_alphabets, train)))
            return cli_fail(st, "cannot open the training set '%s'", path);
        if (!s->val_alphabets) return 0;
        sm_dataset *all = *train, *tr = NULL;
        if ((st = sm_dataset_split_alphabets(all, (size_t)n, seed, &tr, &s->val)))
            return cli_fail(st,
                            "--val-alphabets %lld: cannot hold out %lld of the %zu training "
                            "alphabets",
                            n, n, sm_dataset_num_alphabets(all));
        sm_dataset_destroy(all);
        *train = tr;
        char how[128];
        snprintf(how, sizeof how, "picked by sm_dataset_split_alphabets, seed %llu",
                 (unsigned long long)seed);
        print_val_set(s, how);
        return 0;
    }
    /* named alphabets: the training set is opened without them, the validation set with only
     * them */
    if (!path)
        return cli_error(2, "--val-alphabets with names needs --data (generated sets "
                            "take a count: --val-alphabets N)");
    char *buf = strdup(s->val_alphabets);
    const char *names[MAX_NAMES];
    if (!buf) return cli_error(1, "out of memory");
    size_t n_names = split_names(buf, names, MAX_NAMES);
    if (!n_names) {
        free(buf);
        return cli_error(2, "--val-alphabets: more than %d names", MAX_NAMES);
    }
    sm_dataset_options opt = SM_DATASET_OPTIONS_INIT;
    opt.resize = s->resize;
    opt.exclude = names;
    opt.n_exclude = n_names;
    st = sm_dataset_open_with(path, h, w, alphabets, n_alphabets, &opt, train);
    if (st) {
        free(buf);
        return cli_fail(st, "--val-alphabets: cannot open the training set '%s' without them",
                        path);
    }
    st = selection_open(s, path, h, w, names, n_names, &s->val);
    free(buf);
    if (st) return cli_fail(st, "cannot open the validation alphabets of '%s'", path);
    print_val_set(s, "named by --val-alphabets");
    return 0;
}

int selection_defer_eval(selection *s, const char *path, int h, int w)
{
    if (!s->val_alphabets) return 0;
    s->eval_path = path, s->eval_h = h, s->eval_w = w;
    printf("evaluation set: %s (not read until the final evaluation: --val-alphabets selects "
           "on background alphabets only)\n",
           path);
    return 1;
}

/* One check: 20-way 1-shot within-alphabet episodes on the validation alphabets. */
static sm_status measure(const selection *s, const sm_subnet *subnet, const sm_head *head,
                         size_t episodes, sm_eval_result *r)
{
    return sm_oneshot_episodes(subnet, head, s->val, VAL_WAY, VAL_SHOT, episodes, 1, s->seed, r);
}

int selection_start(selection *s, const sm_subnet *subnet, const sm_head *head, long long every,
                    const char *out_dir, uint64_t seed, loss_log *log)
{
    if (!s->val_alphabets) return 0;
    s->every = every;
    s->seed = seed;
    snprintf(s->path_buf, sizeof s->path_buf, "%s/best.safetensors", out_dir);
    s->best_path = s->path_buf;
    if (every == 0) {
        if (s->patience_given)
            return cli_error(2, "--patience needs validation checks (--validate-every > 0)");
        printf("selection: --validate-every 0: no validation checks; the validation alphabets "
               "stay out of training and the last step's weights are evaluated\n");
        return 0;
    }
    /* Before any training: can these alphabets give 20-way episodes at all? */
    sm_eval_result r = SM_EVAL_RESULT_INIT;
    sm_status st = measure(s, subnet, head, 1, &r);
    if (st)
        return cli_fail(st,
                        "the validation alphabets cannot give %d-way 1-shot within-alphabet "
                        "episodes (each needs an alphabet with %d classes of 2 or more images; "
                        "hold out other or more alphabets)",
                        VAL_WAY, VAL_WAY);
    log->oneshot_column = 1;
    printf("selection: every %lld steps, %d-way %d-shot within-alphabet one-shot on the "
           "validation alphabets (%lld episodes, seed %llu, the same each time); best kept as "
           "%s",
           every, VAL_WAY, VAL_SHOT, s->val_episodes, (unsigned long long)seed, s->best_path);
    if (s->patience > 0) printf("; stops after %lld checks without improvement", s->patience);
    printf("\n");
    return 0;
}

int selection_after_step(selection *s, sm_trainer *trainer, const sm_subnet *subnet,
                         const sm_head *head, long long it, loss_log *log)
{
    if (!s->val_alphabets || s->every <= 0 || it % s->every != 0) return 0;
    sm_eval_result r = SM_EVAL_RESULT_INIT;
    sm_status st = measure(s, subnet, head, (size_t)s->val_episodes, &r);
    if (st) return cli_fail(st, "validation one-shot at step %lld failed", it);
    s->checks++;
    log->next_oneshot = r.accuracy;
    char verdict[4400];
    if (r.accuracy > s->best) {
        if ((st = sm_trainer_save(trainer, s->best_path)))
            return cli_fail(st, "cannot save '%s'", s->best_path);
        s->best = r.accuracy, s->best_step = it, s->since_best = 0;
        snprintf(verdict, sizeof verdict, "best so far, saved %s", s->best_path);
    } else {
        s->since_best++;
        snprintf(verdict, sizeof verdict,
                 "best %.2f %% at step %lld; %lld check%s without "
                 "improvement%s",
                 100.0 * s->best, s->best_step, s->since_best, s->since_best == 1 ? "" : "s",
                 s->patience > 0 ? " (patience " : "");
        if (s->patience > 0) {
            size_t len = strlen(verdict);
            snprintf(verdict + len, sizeof verdict - len, "%lld)", s->patience);
        }
    }
    fprintf(stderr,
            "%svalidation one-shot at step %lld: %.2f %% (%d-way %d-shot within "
            "alphabets, %llu episodes of the validation alphabets; chance %.1f %%): %s\n",
            cli_progress_open ? "\n" : "", it, 100.0 * r.accuracy, VAL_WAY, VAL_SHOT,
            (unsigned long long)r.episodes, 100.0 * r.chance, verdict);
    cli_progress_open = 0;
    if (s->patience > 0 && s->since_best >= s->patience) {
        s->stop = 1;
        printf("early stop at step %lld: %lld checks without improvement (--patience %lld); "
               "best %.2f %% at step %lld\n",
               it, s->since_best, s->patience, 100.0 * s->best, s->best_step);
    }
    return 0;
}

int selection_finish(selection *s, sm_trainer *trainer, sm_dataset **eval)
{
    if (!s->val_alphabets) return 0;
    sm_status st;
    if (s->best >= 0) {
        if ((st = sm_trainer_load(trainer, s->best_path)))
            return cli_fail(st, "cannot load the best checkpoint '%s'", s->best_path);
        printf("best checkpoint: %s, step %lld, validation one-shot %.2f %%: the final "
               "evaluation uses it (not the last step's weights)\n",
               s->best_path, s->best_step, 100.0 * s->best);
    } else {
        printf("no validation check ran: the final evaluation uses the last step's weights\n");
    }
    if (s->eval_path) {
        double t0 = cli_now();
        if ((st = selection_open(s, s->eval_path, s->eval_h, s->eval_w, NULL, 0, eval)))
            return cli_fail(st, "cannot open the evaluation set '%s'", s->eval_path);
        printf("evaluation set: %s: %zu alphabets, %zu classes, %zu images (%.1fs), read now "
               "for the first time\n",
               s->eval_path, sm_dataset_num_alphabets(*eval), sm_dataset_num_classes(*eval),
               sm_dataset_num_images(*eval), cli_now() - t0);
    }
    return 0;
}

void selection_free(selection *s)
{
    sm_dataset_destroy(s->val);
    s->val = NULL;
}
