/* SPDX-License-Identifier: MIT */
/* siamese-train's named recipes (--preset). Their figures, with the commands that measured
 * them, are in docs/results.md; change a recipe only with a new measurement there. */
#include "presets.h"

#include <stdlib.h>
#include <string.h>

#include "cli.h"

typedef struct preset {
    const char *name, *what;
    /* the recipe's own options, then those it shares with others; each NULL-terminated */
    const char *const *args, *const *common;
} preset;

/* 20-way one-shot within alphabets on a 2-core CPU in 15 minutes (0.4): P x K batches on a twin
 * that sees the images at 28x28 (resized once at open) with GroupNorm after each convolution,
 * the softmax P x K loss, each background character's three rotations as classes of their own,
 * He's initialisation, a warm-up then a cosine learning rate that reaches its floor when the
 * time limit does, and the best checkpoint chosen on 5 held-out background alphabets (which
 * also calibrate the saved model's score). docs/results.md has the ablation that chose it. */
static const char *const oneshot_cpu[] = {
    "--arch",
    "1x28x28:conv64k3,gn8,relu,pool2,conv128k3,gn8,relu,pool2,conv256k3,gn8,relu,flatten,fc512",
    "--pk-loss",
    "softmax",
    "--rotate-classes",
    NULL};

/* The 0.3 recipe, kept so that its measured figures can be reproduced: the same twin without
 * GroupNorm, the balanced pair BCE, no rotated classes. */
static const char *const oneshot_cpu_bce[] = {
    "--arch", "1x28x28:conv64k3,relu,pool2,conv128k3,relu,pool2,conv256k3,relu,flatten,fc512",
    NULL};

/* What both one-shot recipes share: initialisation, batches, schedule, budget, selection and
 * the final evaluation; an option and its value per line. */
/* clang-format off */
static const char *const oneshot_common[] = {
    "--init", "he",
    "--resize-images",
    "--pk", "16,4",
    "--lr", "1e-3",
    "--warmup", "100",
    "--schedule", "cosine",
    "--min-lr-factor", "0.02",
    "--iterations", "1000000",
    "--time-limit", "15m",
    "--val-alphabets", "5",
    "--val-episodes", "100",
    "--validate-every", "1000",
    "--save-every", "0",
    "--eval-batches", "5",
    "--eval-pairs", "150",
    "--episodes", "2000",
    "--way", "20",
    "--shot", "1",
    "--within-alphabet",
    NULL};
/* clang-format on */

static const preset presets[] = {
    {"oneshot-cpu", "20-way one-shot on a 2-core CPU in 15 minutes", oneshot_cpu, oneshot_common},
    {"oneshot-cpu-bce", "the 0.3 one-shot recipe (pair BCE, no GroupNorm, no rotations)",
     oneshot_cpu_bce, oneshot_common},
};

static const preset *find(const char *name)
{
    for (size_t i = 0; i < sizeof presets / sizeof presets[0]; i++)
        if (strcmp(presets[i].name, name) == 0) return &presets[i];
    return NULL;
}

void preset_usage(FILE *f)
{
    for (size_t i = 0; i < sizeof presets / sizeof presets[0]; i++) {
        fprintf(f, "  %s: %s; the same as\n                      ", presets[i].name,
                presets[i].what);
        int col = 22;
        const char *const *lists[2] = {presets[i].args, presets[i].common};
        for (int l = 0; l < 2; l++)
            for (const char *const *a = lists[l]; *a; a++) {
                /* an option and its value stay on one line */
                const char *value = a[1] && strncmp(a[1], "--", 2) != 0 ? a[1] : NULL;
                int len = (int)strlen(*a) + 1 + (value ? (int)strlen(value) + 1 : 0);
                if (col + len > 92 && col > 22) {
                    fprintf(f, "\n                      ");
                    col = 22;
                }
                fprintf(f, " %s", *a);
                if (value) {
                    fprintf(f, " %s", value);
                    a++;
                }
                col += len;
            }
        fputc('\n', f);
    }
}

int preset_expand(int argc, char **argv, int *out_argc, char ***out_argv, const char **name)
{
    const preset *p = NULL;
    int at = -1, width = 0; /* where --preset is, and 1 or 2 argv slots */
    *name = NULL;
    for (int i = 1; i < argc; i++) {
        const char *v = NULL;
        int w = 0;
        if (strcmp(argv[i], "--") == 0) break;
        if (strcmp(argv[i], "--preset") == 0) {
            if (i + 1 >= argc) return cli_error(2, "--preset needs a name (see --help)");
            v = argv[i + 1];
            w = 2;
        } else if (strncmp(argv[i], "--preset=", 9) == 0) {
            v = argv[i] + 9;
            w = 1;
        } else continue;
        if (p) return cli_error(2, "--preset is given twice");
        if (!(p = find(v))) return cli_error(2, "unknown preset '%s' (see --help for the list)", v);
        at = i;
        width = w;
        i += w - 1;
    }
    const char *extra[256];
    int n_extra = 0;
    size_t text = 0;
    const char *const *lists[2] = {p ? p->args : NULL, p ? p->common : NULL};
    for (int l = 0; l < 2; l++)
        for (const char *const *a = lists[l]; a && *a; a++) {
            if (n_extra == (int)(sizeof extra / sizeof *extra))
                return cli_error(2, "preset '%s' has too many options", p->name);
            extra[n_extra++] = *a;
            text += strlen(*a) + 1;
        }
    /* One block: the array, then writable copies of the recipe's strings (the option parser
     * may write into its arguments, as into any argv) */
    size_t slots = (size_t)(argc - width + n_extra + 1);
    char **out = malloc(sizeof *out * slots + text);
    if (!out) return cli_error(2, "out of memory");
    char *copy = (char *)(out + slots);
    int k = 0;
    out[k++] = argv[0];
    for (int j = 0; j < n_extra; j++) {
        size_t len = strlen(extra[j]) + 1;
        out[k++] = memcpy(copy, extra[j], len);
        copy += len;
    }
    for (int i = 1; i < argc; i++)
        if (i < at || i >= at + width || at < 0) out[k++] = argv[i];
    out[k] = NULL;
    *out_argc = k;
    *out_argv = out;
    if (p) *name = p->name;
    return 0;
}
