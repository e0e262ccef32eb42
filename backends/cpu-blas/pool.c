/* Max pooling, window = stride; the argmax of each window is kept for the backward scatter
 * (darknet's maxpool_layer.c). Ties go to the first element in row-major order, as PyTorch. */
#include <string.h>

#include "cpu_internal.h"

sm_status sm__cpu_maxpool_fwd(void *ctx, const sm_pool_shape *s, const float *x, float *y,
                              int32_t *argmax)
{
    (void)ctx;
    const int k = s->size;
    const size_t planes = (size_t)s->n * s->c;
    for (size_t pl = 0; pl < planes; pl++) {
        const float *xp = x + pl * s->h * s->w;
        float *yp = y + pl * s->oh * s->ow;
        int32_t *ap = argmax + pl * s->oh * s->ow;
        for (int oy = 0; oy < s->oh; oy++)
            for (int ox = 0; ox < s->ow; ox++) {
                int best = (oy * k) * s->w + ox * k;
                float bv = xp[best];
                for (int i = 0; i < k; i++)
                    for (int j = 0; j < k; j++) {
                        int idx = (oy * k + i) * s->w + ox * k + j;
                        /* NaN propagates, as in PyTorch, so a bad value is not hidden */
                        if (xp[idx] > bv || xp[idx] != xp[idx]) {
                            bv = xp[idx];
                            best = idx;
                        }
                    }
                yp[oy * s->ow + ox] = bv;
                ap[oy * s->ow + ox] = best;
            }
    }
    return SM_OK;
}

sm_status sm__cpu_maxpool_bwd(void *ctx, const sm_pool_shape *s, const float *dy,
                              const int32_t *argmax, float *dx)
{
    (void)ctx;
    const size_t planes = (size_t)s->n * s->c;
    const size_t in_plane = (size_t)s->h * s->w, out_plane = (size_t)s->oh * s->ow;
    memset(dx, 0, planes * in_plane * sizeof(float));
    for (size_t pl = 0; pl < planes; pl++) {
        const float *dyp = dy + pl * out_plane;
        const int32_t *ap = argmax + pl * out_plane;
        float *dxp = dx + pl * in_plane;
        for (size_t o = 0; o < out_plane; o++) dxp[ap[o]] += dyp[o];
    }
    return SM_OK;
}
