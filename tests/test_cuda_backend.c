/* SPDX-License-Identifier: MIT */
/* The cuda backend's loading and refusal, on any machine: what the dispatch layer says when the
 * module is missing or broken, what the module says when there is no driver or no device, that
 * AUTO then falls back to cpu-blas and records why, and the option calls. Where a GPU is usable,
 * the same checks confirm that CUDA is chosen (the numbers are test_cuda_parity's job). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "fixtures.h"
#include "siamese/siamese.h"

static const char *module_dir; /* SIAMESE_BACKEND_DIR as the test environment set it */

static void with_backend_dir(const char *dir)
{
    if (dir) setenv("SIAMESE_BACKEND_DIR", dir, 1);
    else unsetenv("SIAMESE_BACKEND_DIR");
}

/* Runs first: once the real module has loaded, the loader keeps it. */
static void missing_module_is_named(void **state)
{
    (void)state;
    char *dir = fx_tempdir();
    assert_non_null(dir);
    with_backend_dir(dir);
    assert_int_equal(sm_backend_probe(SM_BACKEND_CUDA), SM_ERR_BACKEND_UNAVAILABLE);
    printf("# missing module: %s\n", sm_last_error());
    assert_non_null(strstr(sm_last_error(), "no cuda module at"));
    assert_non_null(strstr(sm_last_error(), dir));

    sm_backend *be = NULL;
    assert_int_equal(sm_backend_create(SM_BACKEND_AUTO, &be), SM_OK);
    assert_string_equal(sm_backend_name(be), "cpu-blas");
    assert_non_null(strstr(sm_backend_fallback_reason(be), "no cuda module at"));
    sm_backend_destroy(be);

    /* a file that is not a loadable library: the loader's own message, not "no module" */
    char *path = fx_join(dir, "libsiamese-cuda.so");
    assert_int_equal(fx_write_bytes(path, "not an ELF file", 15), 0);
    assert_int_equal(sm_backend_probe(SM_BACKEND_CUDA), SM_ERR_BACKEND_UNAVAILABLE);
    printf("# broken module: %s\n", sm_last_error());
    assert_non_null(strstr(sm_last_error(), "could not be loaded"));
    assert_null(strstr(sm_last_error(), "no cuda module"));
    fx_rmtree(dir);
    free(path);
    free(dir);
    with_backend_dir(module_dir);
}

/* Without a GPU the reason must say which of driver and device is missing; with one, CUDA is
 * what AUTO picks. */
static void probe_reason_is_precise(void **state)
{
    (void)state;
    sm_status s = sm_backend_probe(SM_BACKEND_CUDA);
    sm_backend *be = NULL;
    if (s == SM_OK) {
        printf("# cuda is usable here\n");
        assert_int_equal(sm_backend_create(SM_BACKEND_AUTO, &be), SM_OK);
        assert_string_equal(sm_backend_name(be), "cuda");
        assert_int_equal(sm_backend_get_kind(be), SM_BACKEND_CUDA);
        assert_string_equal(sm_backend_fallback_reason(be), "");
        sm_backend_destroy(be);
        return;
    }
    assert_int_equal(s, SM_ERR_BACKEND_UNAVAILABLE);
    const char *why = sm_last_error();
    printf("# cuda refused: %s\n", why);
    /* the module was found and loaded (the build made it): what is left is driver or device */
    assert_null(strstr(why, "no cuda module"));
    assert_null(strstr(why, "could not be loaded: cuDNN"));
    assert_true(strstr(why, "driver") != NULL || strstr(why, "device") != NULL);

    assert_int_equal(sm_backend_create(SM_BACKEND_CUDA, &be), SM_ERR_BACKEND_UNAVAILABLE);
    assert_null(be);
    assert_int_equal(sm_backend_create(SM_BACKEND_AUTO, &be), SM_OK);
    assert_string_equal(sm_backend_name(be), "cpu-blas");
    assert_int_equal(sm_backend_get_kind(be), SM_BACKEND_CPU);
    assert_true(strstr(sm_backend_fallback_reason(be), "driver") != NULL ||
                strstr(sm_backend_fallback_reason(be), "device") != NULL);
    sm_backend_destroy(be);
}

static void options(void **state)
{
    (void)state;
    sm_backend *be = NULL;
    assert_int_equal(sm_backend_create(SM_BACKEND_CPU, &be), SM_OK);
    assert_string_equal(sm_backend_fallback_reason(be), ""); /* explicit kind: no fallback */
    int64_t v = -1;
    assert_int_equal(sm_backend_get_option(be, SM_BACKEND_OPT_TF32, &v), SM_OK);
    assert_int_equal(v, 0);
    assert_int_equal(sm_backend_set_option(be, SM_BACKEND_OPT_TF32, 1), SM_OK);
    assert_int_equal(sm_backend_get_option(be, SM_BACKEND_OPT_TF32, &v), SM_OK);
    assert_int_equal(v, 0); /* no TF32 on the CPU: what is in force */
    assert_int_equal(sm_backend_set_option(be, SM_BACKEND_OPT_TF32, 2), SM_ERR_INVALID_ARG);
    assert_int_equal(sm_backend_set_option(be, (sm_backend_option)99, 0), SM_ERR_INVALID_ARG);
    assert_int_equal(sm_backend_get_option(be, (sm_backend_option)99, &v), SM_ERR_INVALID_ARG);
    assert_int_equal(sm_backend_get_option(be, SM_BACKEND_OPT_TF32, NULL), SM_ERR_INVALID_ARG);
    assert_int_equal(sm_backend_set_option(NULL, SM_BACKEND_OPT_TF32, 0), SM_ERR_INVALID_ARG);
    assert_string_equal(sm_backend_fallback_reason(NULL), "");
    sm_backend_destroy(be);
}

int main(void)
{
    module_dir = getenv("SIAMESE_BACKEND_DIR");
    if (!module_dir || !*module_dir) {
        /* the build did not make the module (-Dcuda=disabled, or no toolkit): nothing to load */
        const char *must = getenv("SIAMESE_REQUIRE_CUDA_MODULE");
        if (must && !strcmp(must, "1")) {
            fprintf(stderr, "FAIL: SIAMESE_REQUIRE_CUDA_MODULE=1 but this build has no cuda "
                            "module (see the 'Backends' section of meson's summary)\n");
            return 1;
        }
        printf("SKIPPED: this build has no cuda module (meson summary, 'Backends')\n");
        return 77;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(missing_module_is_named),
        cmocka_unit_test(probe_reason_is_precise),
        cmocka_unit_test(options),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
