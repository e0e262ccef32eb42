/* SPDX-License-Identifier: MIT */
/* The comm-nccl module without a GPU: its source built against a fake NCCL and CUDA runtime
 * (tests/cuda_fake/fake_nccl.c), which keeps NCCL's rules for non-blocking communicators and
 * logs every NCCL call, opened as a program opens it (sm_comm_open("nccl") through a one-rank
 * bootstrap). Each case runs an allgather, a broadcast, a barrier and an all-to-all, then
 * destroys the communicator, and checks the teardown's calls:
 *  - ncclCommFinalize in progress (the non-blocking case): called once, waited for until
 *    ncclCommGetAsyncError says ncclSuccess, then ncclCommDestroy, no ncclCommAbort;
 *  - ncclCommFinalize failing at once, or later (its asynchronous state): ncclCommAbort, which
 *    frees the communicator, and no ncclCommDestroy (NCCL refuses it then; it would leak);
 *  - ncclCommInitRankConfig failing with a communicator made: sm_comm_open fails, and that
 *    communicator is aborted.
 * In every case no call is refused (ncclInvalidArgument / ncclInvalidUsage: a second finalise,
 * a call on a busy communicator) and nothing follows the call that freed the communicator. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "comm/comm_impl.h" /* sm__comm_alltoall: the trainer's, not public */
#include "siamese/siamese.h"

static char log_path[] = "/tmp/siamese-fake-nccl.XXXXXX";
static char calls[16384]; /* the fake's log of one case */

static int make_log(void **state)
{
    (void)state;
    int fd = mkstemp(log_path);
    if (fd < 0) return -1;
    close(fd);
    return setenv("SIAMESE_FAKE_NCCL_LOG", log_path, 1);
}

static int remove_log(void **state)
{
    (void)state;
    unlink(log_path);
    return 0;
}

/* An empty log, and the fake's behaviour for this case (NULL: the normal one). */
static void start_case(const char *init, const char *finalize)
{
    FILE *f = fopen(log_path, "w");
    assert_non_null(f);
    fclose(f);
    if (init) setenv("SIAMESE_FAKE_NCCL_INIT", init, 1);
    else unsetenv("SIAMESE_FAKE_NCCL_INIT");
    if (finalize) setenv("SIAMESE_FAKE_NCCL_FINALIZE", finalize, 1);
    else unsetenv("SIAMESE_FAKE_NCCL_FINALIZE");
}

static void read_calls(void)
{
    FILE *f = fopen(log_path, "r");
    assert_non_null(f);
    size_t n = fread(calls, 1, sizeof calls - 1, f);
    fclose(f);
    calls[n] = '\0';
}

static sm_status open_nccl(sm_comm **c)
{
    sm_comm *boot;
    assert_int_equal(sm_comm_local_create(1, &boot), SM_OK);
    sm_status st = sm_comm_open("nccl", boot, 0, c);
    sm_comm_destroy(boot);
    return st;
}

/* One rank: the collectives copy through the fake device. */
static void collectives(sm_comm *c)
{
    unsigned char in[1000], out[1000], b[333];
    for (int i = 0; i < 1000; i++) in[i] = (unsigned char)(i * 7);
    memset(out, 0, sizeof out);
    for (int i = 0; i < 333; i++) b[i] = (unsigned char)i;
    assert_int_equal(sm_comm_allgather(c, in, out, sizeof in), SM_OK);
    assert_memory_equal(in, out, sizeof in);
    assert_int_equal(sm_comm_broadcast(c, b, sizeof b, 0), SM_OK);
    assert_int_equal(b[200], 200);
    assert_int_equal(sm_comm_barrier(c), SM_OK);
    memset(out, 0, sizeof out);
    assert_int_equal(sm__comm_alltoall(c, in, out, sizeof in, "the test's all-to-all"), SM_OK);
    assert_memory_equal(in, out, sizeof in);
}

static const char *next_line(const char *p)
{
    const char *nl = strchr(p, '\n');
    return nl ? nl + 1 : p + strlen(p);
}

/* Lines of the log that start with `call` followed by a space. */
static int count_calls(const char *call)
{
    int n = 0;
    size_t len = strlen(call);
    for (const char *p = calls; *p; p = next_line(p))
        if (!strncmp(p, call, len) && p[len] == ' ') n++;
    return n;
}

/* The log's last line, and the one before it ("" when there is none). */
static void last_lines(char *last, char *before, size_t cap)
{
    const char *l = "", *b = "";
    for (const char *p = calls; *p; p = next_line(p)) b = l, l = p;
    snprintf(last, cap, "%.*s", (int)strcspn(l, "\n"), l);
    snprintf(before, cap, "%.*s", (int)strcspn(b, "\n"), b);
}

/* From the first ncclCommFinalize on (the whole log when there is none). */
static const char *teardown(void)
{
    for (const char *p = calls; *p; p = next_line(p))
        if (!strncmp(p, "ncclCommFinalize ", 17)) return p;
    return calls;
}

/* The checks every case makes, and `freed_by` (ncclCommDestroy or ncclCommAbort) the last call,
 * successful, after `wait_before`; the first failure is reported with the log (stdout) and its
 * teardown (the message). */
static void check_calls(int finalizes, const char *freed_by, const char *wait_before)
{
    char why[512] = "", last[128], before[128], want[128];
    read_calls();
    last_lines(last, before, sizeof last);
    snprintf(want, sizeof want, "%s ncclSuccess", freed_by);
    const char *other = strcmp(freed_by, "ncclCommDestroy") ? "ncclCommDestroy" : "ncclCommAbort";
    if (count_calls("ncclCommFinalize") != finalizes)
        snprintf(why, sizeof why, "%d ncclCommFinalize calls, expected %d",
                 count_calls("ncclCommFinalize"), finalizes);
    else if (strstr(calls, " ncclInvalidArgument") || strstr(calls, " ncclInvalidUsage"))
        snprintf(why, sizeof why, "NCCL refused a call (a misuse)");
    else if (strcmp(last, want) != 0)
        snprintf(why, sizeof why, "the last call is '%s', expected '%s'", last, want);
    else if (count_calls(other) != 0)
        snprintf(why, sizeof why, "%s was called besides %s", other, freed_by);
    else if (strcmp(before, wait_before) != 0)
        snprintf(why, sizeof why, "before %s: '%s', expected '%s'", freed_by, before, wait_before);
    if (why[0]) {
        print_message("the NCCL calls:\n%s", calls);
        fail_msg("%s; the teardown:\n%s", why, teardown());
    }
}

static void finalize_in_progress_is_waited_for_then_destroyed(void **state)
{
    (void)state;
    sm_comm *c;
    start_case(NULL, NULL);
    assert_int_equal(open_nccl(&c), SM_OK);
    collectives(c);
    sm_comm_destroy(c);
    check_calls(1, "ncclCommDestroy", "ncclCommGetAsyncError ncclSuccess ncclSuccess");
}

static void failed_finalize_is_aborted(void **state)
{
    (void)state;
    sm_comm *c;
    start_case(NULL, "error");
    assert_int_equal(open_nccl(&c), SM_OK);
    collectives(c);
    sm_comm_destroy(c);
    check_calls(1, "ncclCommAbort", "ncclCommFinalize ncclSystemError");
}

static void finalize_failing_later_is_aborted(void **state)
{
    (void)state;
    sm_comm *c;
    start_case(NULL, "async");
    assert_int_equal(open_nccl(&c), SM_OK);
    collectives(c);
    sm_comm_destroy(c);
    check_calls(1, "ncclCommAbort", "ncclCommGetAsyncError ncclSuccess ncclRemoteError");
}

static void failed_init_is_aborted(void **state)
{
    (void)state;
    sm_comm *c = NULL;
    start_case("error", NULL);
    sm_status st = open_nccl(&c);
    assert_int_equal(st, SM_ERR_COMM);
    assert_non_null(strstr(sm_last_error(), "ncclCommInitRankConfig"));
    check_calls(0, "ncclCommAbort", "ncclCommInitRankConfig ncclSystemError");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(finalize_in_progress_is_waited_for_then_destroyed),
        cmocka_unit_test(failed_finalize_is_aborted),
        cmocka_unit_test(finalize_failing_later_is_aborted),
        cmocka_unit_test(failed_init_is_aborted),
    };
    return cmocka_run_group_tests(tests, make_log, remove_log);
}
