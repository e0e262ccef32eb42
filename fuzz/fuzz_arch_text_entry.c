/* SPDX-License-Identifier: MIT */
#include <stdlib.h>
#include <string.h>

#include "fuzz_entries.h"
#include "siamese/siamese.h"

/* The arch's text in a new buffer (free), or NULL. */
static char *text_of(const sm_arch *a)
{
    size_t need = 0;
    sm_arch_to_string(a, NULL, 0, &need);
    char *s = malloc(need + 1);
    if (s && sm_arch_to_string(a, s, need + 1, NULL) != SM_OK) {
        free(s);
        return NULL;
    }
    return s;
}

int sm_fuzz_arch_text(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (!text) return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    sm_arch *a = NULL, *b = NULL;
    sm_status st = sm_arch_from_string(text, &a);
    int bad = 0;
    if (st != SM_OK) {
        bad = (st != SM_ERR_INVALID_ARG && st != SM_ERR_SHAPE && st != SM_ERR_LIMIT &&
               st != SM_ERR_NOMEM) ||
              !sm_last_error()[0];
    } else {
        char *t1 = text_of(a), *t2 = NULL;
        bad = !t1;
        /* the text written must parse, and to an arch that writes the same text */
        if (t1 && sm_arch_from_string(t1, &b) != SM_OK) bad = 1;
        if (b) t2 = text_of(b);
        if (b && (!t2 || strcmp(t1, t2) != 0)) bad = 1;
        /* and describe the same layers */
        if (b && sm_arch_num_layers(a) != sm_arch_num_layers(b)) bad = 1;
        if (b && sm_arch_num_params(a) != sm_arch_num_params(b)) bad = 1;
        if (b && sm_arch_output_size(a) != sm_arch_output_size(b)) bad = 1;
        free(t1);
        free(t2);
    }
    sm_arch_destroy(a);
    sm_arch_destroy(b);
    free(text);
    return bad;
}
