/* SPDX-License-Identifier: MIT */
/* Named recipes of siamese-train: each is a list of ordinary options, put before the user's
 * own, so any option given on the command line overrides the recipe's value for it. */
#ifndef SIAMESE_EXAMPLES_PRESETS_H
#define SIAMESE_EXAMPLES_PRESETS_H

#include <stdio.h>

/* Replaces "--preset NAME" (or "--preset=NAME") in argv by NAME's options, in a new argv
 * (*out_argv: the user's strings borrowed from argv, the recipe's copied into the same block;
 * one free() releases it, once nothing points into its strings any more). Returns 0
 * (also when there is no --preset: *out_argv is then a copy of argv), or 2 after printing
 * why (unknown name, missing value, --preset given twice, out of memory). *name: the preset
 * used, NULL for none. */
int preset_expand(int argc, char **argv, int *out_argc, char ***out_argv, const char **name);
/* Lists the presets and their options (for --help). */
void preset_usage(FILE *f);

#endif
