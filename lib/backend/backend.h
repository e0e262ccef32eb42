/* SPDX-License-Identifier: MIT */
/* Private: the dispatch layer's view of a backend (the plug-in interface a backend implements
 * is lib/plugin/backend_plugin.h). */
#ifndef SM_LIB_BACKEND_H
#define SM_LIB_BACKEND_H

#include <stddef.h>

#include "plugin/backend_plugin.h"
#include "siamese/siamese.h"

struct sm_backend {
    const sm_backend_ops *ops;
    void *ctx;
    sm_backend_props props; /* ops->props with the defaults filled in */
    /* SM_BACKEND_AUTO that fell back to the CPU: why the accelerator was not taken; else "". */
    char fallback_reason[512];
};

/* The built-in backends (linked into the core). */
const sm_backend_ops *sm__cpu_blas_ops(void);

/* The backend's properties, every field set (zero fields of the table take the defaults). */
const sm_backend_props *sm__backend_props(const sm_backend *be);

/* The l1_scores slot (backend_plugin.h) with its arguments checked: SM_ERR_INVALID_ARG for an
 * empty shape, ld_out < n_rows or U8 rows without their (offset, scale) pairs; SM_ERR_UNSUPPORTED
 * for a backend without the slot; else the backend's status. */
sm_status sm__be_l1_scores(sm_backend *be, const sm_l1_shape *s, const float *queries,
                           const void *rows, const float *row_qp, const int32_t *row_index,
                           const float *w, float *out);

/* Convenience wrappers for the core: allocate n floats (or bytes) on the backend. */
sm_status sm__be_alloc_floats(sm_backend *be, size_t n, float **out);
void sm__be_free(sm_backend *be, void *p);

#endif
