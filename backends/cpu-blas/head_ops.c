/* SPDX-License-Identifier: MIT */
/* The head's element-wise ops: |F1 - F2| and the fused sigmoid + clipped BCE. */
#include <float.h>
#include <math.h>

#include "cpu_internal.h"

sm_status sm__cpu_absdiff_fwd(void *ctx, size_t n, const float *a, const float *b, float *d)
{
    (void)ctx;
    for (size_t i = 0; i < n; i++) d[i] = fabsf(a[i] - b[i]);
    return SM_OK;
}

sm_status sm__cpu_absdiff_bwd(void *ctx, size_t n, const float *a, const float *b, const float *dd,
                              float *da, float *db)
{
    (void)ctx;
    for (size_t i = 0; i < n; i++) {
        float diff = a[i] - b[i];
        /* sign(0) = 0, as torch.abs's gradient */
        float g = diff > 0.0f ? dd[i] : (diff < 0.0f ? -dd[i] : 0.0f);
        da[i] = g;
        db[i] = -g;
    }
    return SM_OK;
}

sm_status sm__cpu_bce_fwd_bwd(void *ctx, int n, const float *logits, const float *labels,
                              float scale, float *scores, float *loss_sum, float *dlogits)
{
    (void)ctx;
    const float eps = FLT_EPSILON, hi = 1.0f - FLT_EPSILON;
    double sum = 0.0;
    for (int i = 0; i < n; i++) {
        float z = logits[i];
        float s = z >= 0.0f ? 1.0f / (1.0f + expf(-z)) : expf(z) / (1.0f + expf(z));
        float c = s < eps ? eps : (s > hi ? hi : s);
        float y = labels[i];
        scores[i] = c;
        sum += -((double)y * log((double)c) + (1.0 - (double)y) * log(1.0 - (double)c));
        /* d/dz of BCE(sigmoid(z)) is s - y; the clip passes no gradient where it is active */
        if (dlogits) dlogits[i] = (s < eps || s > hi) ? 0.0f : scale * (s - y);
    }
    loss_sum[0] = (float)sum;
    return SM_OK;
}
