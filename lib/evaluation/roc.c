/* SPDX-License-Identifier: MIT */
/* ROC curves from labelled pairs, the equal error rate and the threshold for a target
 * false-accept rate (include/siamese/evaluation.h). A threshold t accepts score >= t. */
#include <math.h>
#include <stdlib.h>

#include "common/alloc.h"
#include "common/error.h"
#include "siamese/siamese.h"

struct sm_roc {
    size_t n; /* points */
    double *thr, *far, *frr;
};

typedef struct scored {
    float score;
    int same;
} scored;

static int by_score(const void *a, const void *b)
{
    float x = ((const scored *)a)->score, y = ((const scored *)b)->score;
    return (x > y) - (x < y);
}

SM_API sm_status sm_roc_create(size_t n, const float *scores, const float *labels, sm_roc **out)
{
    SM_CHECK_ARG(scores && labels && out, "sm_roc_create: NULL argument");
    size_t n_same = 0;
    for (size_t i = 0; i < n; i++) {
        SM_CHECK_ARG(scores[i] >= 0.0f && scores[i] <= 1.0f,
                     "sm_roc_create: score %zu is %g, expected [0, 1]", i, (double)scores[i]);
        SM_CHECK_ARG(labels[i] == 0.0f || labels[i] == 1.0f,
                     "sm_roc_create: label %zu is %g, expected 0 or 1", i, (double)labels[i]);
        n_same += labels[i] == 1.0f;
    }
    SM_CHECK_ARG(n_same > 0 && n_same < n,
                 "sm_roc_create: %zu same-class and %zu "
                 "different-class pairs; the curve needs at least one of each",
                 n_same, n - n_same);
    size_t n_diff = n - n_same;
    scored *v = sm__malloc(n * sizeof *v);
    sm_roc *r = sm__calloc(1, sizeof *r);
    if (r) {
        r->thr = sm__malloc((n + 1) * sizeof *r->thr);
        r->far = sm__malloc((n + 1) * sizeof *r->far);
        r->frr = sm__malloc((n + 1) * sizeof *r->frr);
    }
    if (!v || !r || !r->thr || !r->far || !r->frr) {
        sm__free(v);
        sm_roc_destroy(r);
        return sm__fail(SM_ERR_NOMEM, "sm_roc_create: out of memory");
    }
    for (size_t i = 0; i < n; i++) v[i] = (scored){scores[i], labels[i] == 1.0f};
    qsort(v, n, sizeof *v, by_score);
    /* sweep: before value v[i], `below_same` same-class and `below_diff` different-class pairs
     * score lower (refused) */
    size_t below_same = 0, below_diff = 0;
    for (size_t i = 0; i < n;) {
        float s = v[i].score;
        r->thr[r->n] = s;
        r->frr[r->n] = (double)below_same / (double)n_same;
        r->far[r->n] = (double)(n_diff - below_diff) / (double)n_diff;
        r->n++;
        for (; i < n && v[i].score == s; i++) {
            below_same += v[i].same;
            below_diff += !v[i].same;
        }
    }
    r->thr[r->n] = INFINITY;
    r->far[r->n] = 0.0;
    r->frr[r->n] = 1.0;
    r->n++;
    sm__free(v);
    *out = r;
    return SM_OK;
}

SM_API void sm_roc_destroy(sm_roc *r)
{
    if (!r) return;
    sm__free(r->thr), sm__free(r->far), sm__free(r->frr);
    sm__free(r);
}

SM_API size_t sm_roc_num_points(const sm_roc *r) { return r ? r->n : 0; }

SM_API sm_status sm_roc_point(const sm_roc *r, size_t i, double *threshold, double *far,
                              double *frr)
{
    SM_CHECK_ARG(r && i < r->n, "sm_roc_point: NULL curve or index %zu out of range", i);
    if (threshold) *threshold = r->thr[i];
    if (far) *far = r->far[i];
    if (frr) *frr = r->frr[i];
    return SM_OK;
}

SM_API sm_status sm_roc_eer(const sm_roc *r, double *eer, double *threshold)
{
    SM_CHECK_ARG(r, "sm_roc_eer: NULL curve");
    /* the last point (+infinity: |FAR - FRR| = 1, the largest possible) is left out, so that
     * the threshold is always a score */
    size_t best = 0;
    for (size_t i = 1; i + 1 < r->n; i++)
        if (fabs(r->far[i] - r->frr[i]) < fabs(r->far[best] - r->frr[best])) best = i;
    if (eer) *eer = (r->far[best] + r->frr[best]) / 2;
    if (threshold) *threshold = r->thr[best];
    return SM_OK;
}

SM_API sm_status sm_roc_threshold_at_far(const sm_roc *r, double target, double *threshold,
                                         double *far, double *frr)
{
    SM_CHECK_ARG(r, "sm_roc_threshold_at_far: NULL curve");
    SM_CHECK_ARG(target >= 0.0 && target <= 1.0,
                 "sm_roc_threshold_at_far: target %g outside [0, 1]", target);
    size_t i = 0;
    while (i + 1 < r->n && r->far[i] > target) i++; /* FAR falls along the curve */
    if (threshold) *threshold = r->thr[i];
    if (far) *far = r->far[i];
    if (frr) *frr = r->frr[i];
    return SM_OK;
}
