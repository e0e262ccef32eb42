/* SPDX-License-Identifier: MIT */
/* Scores of queries against a gallery's rows (gallery.h, sm__gallery_score): the head's logit of
 * every (query, row) pair by the backend's l1_scores op, the head's bias inside it, then the
 * sigmoid, both on the backend. On a backend whose buffers are host memory the op reads the
 * caller's queries and writes the caller's scores directly (no scratch at all: the rows may be
 * a mapped file's); on a device the queries go up and the scores come down in groups that
 * bound the device scratch. */
#include <string.h>

#include "common/alloc.h"
#include "common/error.h"
#include "gallery/gallery.h"

#define DEVICE_SCRATCH ((size_t)1 << 22) /* floats of logits per device call: 16 MiB */

/* The scores of queries [0, nq) against rows [0, nr) (or the listed ones) on a device:
 * DEVICE_SCRATCH floats of logits at a time. */
static sm_status score_device(const sm_gallery *g, size_t nq, const float *queries, size_t nr,
                              const uint32_t *rows, float *scores)
{
    const sm_backend_ops *ops = g->be->ops;
    void *ctx = g->be->ctx;
    const size_t d = g->dim, rc = nr < DEVICE_SCRATCH ? nr : DEVICE_SCRATCH;
    size_t gq = DEVICE_SCRATCH / rc;
    if (gq > nq) gq = nq;
    float *dq = NULL, *dout = NULL;
    void *didx = NULL;
    sm_status st = sm__be_alloc_floats(g->be, gq * d, &dq);
    if (st == SM_OK) st = sm__be_alloc_floats(g->be, gq * rc, &dout);
    if (st == SM_OK && rows) st = ops->alloc(ctx, rc * sizeof *rows, &didx);
    for (size_t r0 = 0; r0 < nr && st == SM_OK; r0 += rc) {
        const size_t mr = nr - r0 < rc ? nr - r0 : rc;
        if (rows) st = ops->upload(ctx, didx, rows + r0, mr * sizeof *rows);
        for (size_t q0 = 0; q0 < nq && st == SM_OK; q0 += gq) {
            const size_t mq = nq - q0 < gq ? nq - q0 : gq;
            sm_l1_shape s = {mq, mr, d, (sm_rows_dtype)g->storage, mr};
            /* without a list, rows [r0, r0 + mr) are the chunk: point at its first row */
            const uint8_t *base = (const uint8_t *)g->rows + (rows ? 0 : r0 * g->row_bytes);
            const float *qp = g->qp ? g->qp + (rows ? 0 : 2 * r0) : NULL;
            st = ops->upload(ctx, dq, queries + q0 * d, mq * d * sizeof(float));
            if (st == SM_OK)
                st = sm__be_l1_scores(g->be, &s, dq, base, qp, didx, g->head->params, dout);
            if (st == SM_OK) st = ops->sigmoid_fwd(ctx, mq * mr, dout, dout);
            for (size_t i = 0; i < mq && st == SM_OK; i++)
                st = ops->download(ctx, scores + (q0 + i) * nr + r0, dout + i * mr,
                                   mr * sizeof(float));
        }
    }
    sm__be_free(g->be, dq);
    sm__be_free(g->be, dout);
    sm__be_free(g->be, didx);
    return st;
}

sm_status sm__gallery_score(const sm_gallery *g, const char *fn, size_t nq, const float *queries,
                            size_t n_rows, const uint32_t *rows, float *scores)
{
    const size_t nr = rows ? n_rows : g->n;
    for (size_t i = 0; rows && i < nr; i++)
        SM_CHECK_ARG(rows[i] < g->n, "%s: example %u of %zu is out of range", fn, rows[i], g->n);
    if (nq == 0 || nr == 0) return SM_OK;
    size_t total;
    SM_CHECK_ARG(sm__mul_size(nq, nr, &total), "%s: %zu x %zu scores overflow", fn, nq, nr);
    sm_status st;
    if (sm__backend_props(g->be)->host_memory) {
        /* the list's values are below 2^31 (SM__GALLERY_MAX_EXAMPLES): the same as int32 */
        sm_l1_shape s = {nq, nr, g->dim, (sm_rows_dtype)g->storage, nr};
        st = sm__be_l1_scores(g->be, &s, queries, g->rows, g->qp, (const int32_t *)rows,
                              g->head->params, scores);
        if (st == SM_OK) st = g->be->ops->sigmoid_fwd(g->be->ctx, total, scores, scores);
    } else {
        st = score_device(g, nq, queries, nr, rows, scores);
    }
    SM_TRY(st);
    /* the queries and rows are in [0, 1], so a score outside it is the head's */
    size_t bad = sm__gallery_first_bad(total, scores);
    if (bad != SIZE_MAX) {
        const size_t e = rows ? rows[bad % nr] : bad % nr;
        return sm__fail(SM_ERR_NUMERIC,
                        "%s: the head scores example %zu (label '%.80s') %g, not in [0, 1]: the "
                        "head's parameters are not finite%s",
                        fn, e, g->labels[g->example_label[e]], (double)scores[bad],
                        g->map ? " (or the mapped file's rows, if it was loaded without "
                                 "checking them, are damaged)"
                               : "");
    }
    return SM_OK;
}
