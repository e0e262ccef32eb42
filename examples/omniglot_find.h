/* SPDX-License-Identifier: MIT */
/* Where the example programs find Omniglot when they are not told: one rule for all of them.
 *
 * A set ("images_background" or "images_evaluation") is looked for in order:
 *   1. the path the user gave (--data): a set's zip or folder as is, or a folder holding
 *      NAME.zip or NAME/ (such as the one scripts/fetch-omniglot.sh fills);
 *   2. the folder $SIAMESE_OMNIGLOT_DIR, holding NAME.zip or NAME/;
 *   3. ./data/omniglot, holding NAME.zip or NAME/ (fetch-omniglot.sh's default).
 * A given path is never passed over: when it is not there, opening it reports the error. */
#ifndef SIAMESE_EXAMPLES_OMNIGLOT_FIND_H
#define SIAMESE_EXAMPLES_OMNIGLOT_FIND_H

#include <stddef.h>

/* The folder the examples look in last, relative to the working directory. */
#define OMNIGLOT_DEFAULT_DIR "data/omniglot"

/* DIR/NAME.zip, else the folder DIR/NAME: 1 with the path in `out`, 0 if neither is there,
 * -1 if the path does not fit in `cap`. */
int omniglot_set_in_folder(const char *dir, const char *name, char *out, size_t cap);

/* Resolves set `name` as above into `out`. Returns 1 when found (or given); 0 when nothing was
 * found, with `looked` saying where it looked, for the user ("$SIAMESE_OMNIGLOT_DIR is not set;
 * data/omniglot/images_background.zip: not found"); -1 when a path does not fit in `cap`. */
int omniglot_find(const char *given, const char *name, char *out, size_t cap, char *looked,
                  size_t looked_cap);

#endif
