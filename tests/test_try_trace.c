/* SPDX-License-Identifier: MIT */
/* SM_TRY's debug trace: in a build without NDEBUG, a failure logs, at SM_LOG_DEBUG, the file,
 * line and expression of every SM_TRY it passes through. The project's default build is a
 * release build (NDEBUG), so this file undefines NDEBUG itself: its own SM_TRY always traces,
 * and the check runs in every CI configuration. The library's own frames trace exactly when the
 * library was built without NDEBUG (sm__try_traces), which is checked too. */
#undef NDEBUG

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "common/error.h"
#include "siamese/siamese.h"

enum { MAX_LINES = 16 };
static char lines[MAX_LINES][1024];
static sm_log_level levels[MAX_LINES];
static int n_lines;

static void capture(void *user, sm_log_level level, const char *message)
{
    (void)user;
    if (n_lines < MAX_LINES) {
        snprintf(lines[n_lines], sizeof lines[n_lines], "%s", message);
        levels[n_lines] = level;
    }
    n_lines++;
}

static int failing_line;

/* One frame of the host's own: a public call that fails (an unknown backend kind). */
static sm_status create_unknown_kind(sm_backend **be)
{
    failing_line = __LINE__ + 1;
    SM_TRY(sm_backend_create((sm_backend_kind)99, be));
    return SM_OK;
}

static int count_lines_with(const char *needle)
{
    int n = 0;
    for (int i = 0; i < n_lines && i < MAX_LINES; i++) n += strstr(lines[i], needle) != NULL;
    return n;
}

static void failure_logs_file_line_and_expression(void **state)
{
    (void)state;
    n_lines = 0;
    sm_set_log_callback(capture, NULL, SM_LOG_DEBUG);
    sm_backend *be = NULL;
    assert_int_equal(create_unknown_kind(&be), SM_ERR_INVALID_ARG);
    sm_set_log_callback(NULL, NULL, SM_LOG_INFO);

    char want[256];
    snprintf(want, sizeof want,
             "test_try_trace.c:%d: sm_backend_create((sm_backend_kind)99, be) failed: "
             "SM_ERR_INVALID_ARG",
             failing_line);
    int ours = -1;
    for (int i = 0; i < n_lines && i < MAX_LINES; i++)
        if (strstr(lines[i], want)) ours = i;
    if (ours < 0) fail_msg("no log line contains '%s' (%d lines)", want, n_lines);
    assert_int_equal(levels[ours], SM_LOG_DEBUG);
    /* the library's frame comes first (it is deeper), and only from a debug build of it */
    int lib_frames = count_lines_with("backend.c:");
    if (sm__try_traces) {
        assert_true(lib_frames >= 1);
        assert_non_null(strstr(lines[0], "backend.c:"));
    } else {
        assert_int_equal(lib_frames, 0);
    }
    assert_int_equal(n_lines, lib_frames + 1);
}

static void success_and_info_level_log_nothing(void **state)
{
    (void)state;
    n_lines = 0;
    sm_set_log_callback(capture, NULL, SM_LOG_DEBUG);
    sm_backend *be = NULL;
    assert_int_equal(sm_backend_create(SM_BACKEND_CPU, &be), SM_OK);
    sm_backend_destroy(be);
    assert_int_equal(n_lines, 0);

    sm_set_log_callback(capture, NULL, SM_LOG_INFO); /* debug lines are below the threshold */
    assert_int_equal(create_unknown_kind(&be), SM_ERR_INVALID_ARG);
    sm_set_log_callback(NULL, NULL, SM_LOG_INFO);
    assert_int_equal(n_lines, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(failure_logs_file_line_and_expression),
        cmocka_unit_test(success_and_info_level_log_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
