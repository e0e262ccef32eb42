/* SPDX-License-Identifier: MIT */
/* Host doubles to and from a backend's float buffers, for the tests that call the ops table
 * directly (the data crosses with upload/download, so the same tests serve a device backend). */
#ifndef SM_TESTS_BACKEND_BUFFERS_H
#define SM_TESTS_BACKEND_BUFFERS_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "backend/backend.h"
#include "network/network.h"

/* A new backend buffer holding h[0..n) rounded to float. */
static inline float *test_to_dev(sm_backend *be, const double *h, size_t n)
{
    float *tmp = malloc((n ? n : 1) * sizeof *tmp);
    void *d = NULL;
    assert_non_null(tmp);
    for (size_t i = 0; i < n; i++) tmp[i] = (float)h[i];
    assert_int_equal(be->ops->alloc(be->ctx, (n ? n : 1) * sizeof(float), &d), SM_OK);
    assert_int_equal(be->ops->upload(be->ctx, d, tmp, n * sizeof(float)), SM_OK);
    free(tmp);
    return d;
}

/* h[0..n) = the buffer's floats */
static inline void test_from_dev(sm_backend *be, const float *d, size_t n, double *h)
{
    float *tmp = malloc((n ? n : 1) * sizeof *tmp);
    assert_non_null(tmp);
    assert_int_equal(be->ops->download(be->ctx, tmp, d, n * sizeof(float)), SM_OK);
    for (size_t i = 0; i < n; i++) h[i] = tmp[i];
    free(tmp);
}

#endif
