/* SPDX-License-Identifier: MIT */
/* Stand-ins for figures.c when the examples are built without cairo: the programs run the
 * same, and say that figures were not built. */
#include "figures.h"

int fig_available(void) { return 0; }

const char *fig_last_error(void)
{
    return "built without cairo (install libcairo2-dev and reconfigure to get figures)";
}

int fig_image_grid(const char *path, const char *title, const float *images, int h, int w, size_t n,
                   const char *const *captions)
{
    (void)path, (void)title, (void)images, (void)h, (void)w, (void)n, (void)captions;
    return -1;
}

int fig_pairs(const char *path, const char *title, int h, int w, const fig_pair *pairs, size_t n)
{
    (void)path, (void)title, (void)h, (void)w, (void)pairs, (void)n;
    return -1;
}

int fig_loss(const char *path, const char *title, const char *subtitle, const fig_loss_data *d)
{
    (void)path, (void)title, (void)subtitle, (void)d;
    return -1;
}

int fig_roc(const char *path, const char *title, const char *subtitle, const fig_roc_data *d)
{
    (void)path, (void)title, (void)subtitle, (void)d;
    return -1;
}
