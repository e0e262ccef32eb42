/* SPDX-License-Identifier: MIT */
/* The cuda backend's error paths without a GPU: the module's own sources built against a fake
 * CUDA runtime, cuDNN and cuBLAS (tests/cuda_fake/), which can fail any call (fake_vendor.c).
 * Each case runs in a child process, so every run loads the module afresh and reads its own
 * SIAMESE_CUDA_FAULT:
 *  - every vendor call fails in turn (the 1st, the 2nd, ... until a run hits none): the run must
 *    not crash, and a failure must come back as a status whose sm_last_error names the call (or,
 *    at the probe, says "cuda backend"); only cleanup calls, a workspace query (that candidate
 *    is skipped), the measured algorithm search (the heuristics stand in) and the cache's
 *    retried cudaMalloc may fail without failing the run;
 *  - a clean run picks cuDNN results tagged CUDNN_DEFAULT_MATH (not the fixed fallback), runs
 *    them under FMA math, logs each layer's choice, and plans TF32 only once TF32 is on;
 *  - a failed copy does not resurface as the next kernel's failure (the error is cleared);
 *  - a batch whose conv tensors exceed the module's element limit (small in this build) is
 *    split inside the conv ops instead of refused. */
#include <setjmp.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "siamese/siamese.h"

#define ARCH "1x28x28:conv8k5,gn4,relu,pool2,conv16k3,relu,pool2,flatten,fc32"

typedef struct outcome {
    int signal;       /* the child died of this signal (0: exited) */
    sm_status status; /* first failure, SM_OK when none */
    int retry_status; /* the same workload once more in that process (retry runs) */
    char hit[128];    /* the call the fake failed, "" when none */
    char msg[512];    /* sm_last_error() at the first failure */
    char log[8192];   /* the INFO log lines (clean runs) */
} outcome;

static char logbuf[8192];
static size_t loglen;

static void on_log(void *user, sm_log_level level, const char *message)
{
    (void)user;
    (void)level;
    int n = snprintf(logbuf + loglen, sizeof logbuf - loglen, "%s\n", message);
    if (n > 0)
        loglen += (size_t)n < sizeof logbuf - loglen ? (size_t)n : sizeof logbuf - loglen - 1;
}

/* Backend, subnet, head, Adam, trainer; a step with TF32 off, one with TF32 on, a prediction. */
static sm_status workload(size_t pairs, char *msg, size_t cap)
{
    sm_backend *be = NULL;
    sm_arch *arch = NULL;
    sm_subnet *sub = NULL;
    sm_head *head = NULL;
    sm_adam *adam = NULL;
    sm_trainer *tr = NULL;
    float *left = calloc(pairs * 784, sizeof *left), *right = calloc(pairs * 784, sizeof *right);
    float *labels = calloc(pairs, sizeof *labels), *scores = calloc(pairs, sizeof *scores);
    float loss = 0;
    sm_status st = left && right && labels && scores ? SM_OK : SM_ERR_NOMEM;
    for (size_t i = 0; i < pairs; i++) labels[i] = (float)(i % 2);
    for (size_t i = 0; i < pairs * 784; i++)
        left[i] = right[(i * 7) % (pairs * 784)] = (float)(i % 13) / 13;
    if (st == SM_OK) st = sm_backend_create(SM_BACKEND_CUDA, &be);
    if (st == SM_OK) st = sm_arch_from_string(ARCH, &arch);
    if (st == SM_OK) st = sm_subnet_create(be, arch, 1, &sub);
    if (st == SM_OK) st = sm_head_create(be, sm_subnet_feature_dim(sub), 2, &head);
    if (st == SM_OK) st = sm_adam_create(sub, head, &adam);
    if (st == SM_OK) st = sm_trainer_create(sub, head, adam, NULL, 3, &tr);
    if (st == SM_OK) st = sm_trainer_set_param(tr, SM_TRAINER_MICRO_BATCH, (int64_t)pairs);
    if (st == SM_OK) st = sm_train_step_batch(tr, pairs, left, right, labels, &loss);
    if (st == SM_OK && !strstr(logbuf, "TF32 off")) st = SM_ERR_INTERNAL;
    if (st == SM_OK && strstr(logbuf, "TF32 on")) st = SM_ERR_INTERNAL; /* planned too early */
    if (st == SM_OK) st = sm_backend_set_option(be, SM_BACKEND_OPT_TF32, 1);
    if (st == SM_OK) st = sm_train_step_batch(tr, pairs, left, right, labels, &loss);
    if (st == SM_OK) st = sm_predict_pairs(sub, head, pairs, left, right, scores);
    if (st != SM_OK) snprintf(msg, cap, "%s", sm_last_error());
    sm_trainer_destroy(tr);
    sm_adam_destroy(adam);
    sm_head_destroy(head);
    sm_subnet_destroy(sub);
    sm_arch_destroy(arch);
    sm_backend_destroy(be);
    free(left);
    free(right);
    free(labels);
    free(scores);
    return st;
}

/* Runs the workload in a child with SIAMESE_CUDA_FAULT=fault (NULL: none). */
static outcome run_child(const char *fault, size_t pairs, bool retry)
{
    outcome o;
    memset(&o, 0, sizeof o);
    int fd[2];
    assert_int_equal(pipe(fd), 0);
    fflush(stdout);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(fd[0]);
        if (fault) setenv("SIAMESE_CUDA_FAULT", fault, 1);
        else unsetenv("SIAMESE_CUDA_FAULT");
        unsetenv("SIAMESE_CUDA_FAULT_HIT");
        sm_set_log_callback(on_log, NULL, SM_LOG_INFO);
        outcome r;
        memset(&r, 0, sizeof r);
        r.status = workload(pairs, r.msg, sizeof r.msg);
        r.retry_status = retry ? (int)workload(pairs, r.msg + strlen(r.msg), 8) : 0;
        const char *hit = getenv("SIAMESE_CUDA_FAULT_HIT");
        snprintf(r.hit, sizeof r.hit, "%s", hit ? hit : "");
        memcpy(r.log, logbuf, sizeof r.log);
        ssize_t w = write(fd[1], &r, sizeof r);
        _exit(w == (ssize_t)sizeof r ? 0 : 3);
    }
    close(fd[1]);
    size_t got = 0;
    while (got < sizeof o) {
        ssize_t n = read(fd[0], (char *)&o + got, sizeof o - got);
        if (n <= 0) break;
        got += (size_t)n;
    }
    close(fd[0]);
    int ws = 0;
    assert_int_equal(waitpid(pid, &ws, 0), pid);
    if (WIFSIGNALED(ws)) {
        memset(&o, 0, sizeof o);
        o.signal = WTERMSIG(ws);
    } else {
        assert_int_equal(WEXITSTATUS(ws), 0);
        assert_int_equal(got, sizeof o);
    }
    return o;
}

/* Calls whose failure may leave the run successful: cleanup (nothing to report to), the
 * workspace queries (that candidate is skipped), cudaMalloc (the cache empties itself and
 * retries once). */
static bool tolerated(const char *call)
{
    static const char *const ok[] = {"cudaFree",
                                     "cudaStreamDestroy",
                                     "cudaStreamSynchronize",
                                     "cudnnDestroy",
                                     "cudnnDestroyTensorDescriptor",
                                     "cudnnDestroyFilterDescriptor",
                                     "cudnnDestroyConvolutionDescriptor",
                                     "cublasDestroy",
                                     "cudnnGetConvolutionForwardWorkspaceSize",
                                     "cudnnGetConvolutionBackwardDataWorkspaceSize",
                                     "cudnnGetConvolutionBackwardFilterWorkspaceSize",
                                     "cudaMalloc",
                                     "cudnnFindConvolutionForwardAlgorithm",
                                     "cudnnFindConvolutionBackwardDataAlgorithm",
                                     "cudnnFindConvolutionBackwardFilterAlgorithm"};
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++)
        if (!strcmp(call, ok[i])) return true;
    return false;
}

static void every_call_fails_in_turn(void **state)
{
    (void)state;
    int failed = 0, tolerated_n = 0;
    for (int n = 1;; n++) {
        char fault[32];
        snprintf(fault, sizeof fault, "%d", n);
        outcome o = run_child(fault, 6, false);
        if (o.signal) fail_msg("fault %d: the child died of signal %d", n, o.signal);
        if (!o.hit[0]) {
            /* past the last call: the clean run */
            assert_int_equal(o.status, SM_OK);
            printf("# %d vendor calls; %d failures reported, %d tolerated\n", n - 1, failed,
                   tolerated_n);
            assert_true(n > 50);
            break;
        }
        if (o.status == SM_OK) {
            /* conv_workspace has no status: its planning failure is a warning naming the call,
             * and the op plans again */
            const char *warn = strstr(o.log, "for its workspace failed: cuda backend: ");
            if (warn && strstr(warn, o.hit)) {
                tolerated_n++;
                continue;
            }
            if (!tolerated(o.hit)) fail_msg("fault %d: %s failed but the run succeeded", n, o.hit);
            tolerated_n++;
            continue;
        }
        failed++;
        bool named = strstr(o.msg, o.hit) != NULL ||
                     (!strncmp(o.hit, "smk_", 4) && strstr(o.msg, "kernel") != NULL) ||
                     (o.status == SM_ERR_BACKEND_UNAVAILABLE && strstr(o.msg, "cuda backend"));
        if (!named || !strstr(o.msg, "cuda backend"))
            fail_msg("fault %d: %s failed, status %d, message does not name it: '%s'", n, o.hit,
                     o.status, o.msg);
        if (n <= 3 || n % 50 == 0) printf("# fault %d (%s): %s\n", n, o.hit, o.msg);
        assert_true(n < 5000);
    }
}

static void default_math_results_are_chosen_and_logged(void **state)
{
    (void)state;
    outcome o = run_child(NULL, 6, false);
    assert_int_equal(o.signal, 0);
    if (o.status != SM_OK) fail_msg("clean run failed: %s", o.msg);
    printf("%s", o.log);
    /* the fake answers DEFAULT-tagged results (and a tensor-op one first): TF32 off must take
     * the DEFAULT one under FMA math, not the tensor-op one, not the fallback */
    assert_non_null(strstr(o.log, "TF32 off: forward IMPLICIT_PRECOMP_GEMM (GEMM family, "
                                  "deterministic, FMA math"));
    assert_non_null(strstr(o.log, "TF32 off: backward-data ALGO_1 (GEMM family"));
    assert_non_null(strstr(o.log, "TF32 off: backward-filter ALGO_1 (GEMM family"));
    assert_null(strstr(o.log, "fixed fallback"));
    /* TF32 on: the result's own (tensor-op) math type */
    assert_non_null(strstr(o.log, "TF32 on: forward IMPLICIT_PRECOMP_GEMM (GEMM family, "
                                  "deterministic, TENSOR_OP math"));
}

static void every_workspace_query_failing_falls_back(void **state)
{
    (void)state;
    /* every forward workspace query fails but the fallback's own: candidates skipped, then the
     * fallback's query fails too and is reported */
    outcome o = run_child("cudnnGetConvolutionForwardWorkspaceSize*", 6, false);
    assert_int_equal(o.signal, 0);
    assert_int_equal(o.status, SM_ERR_DEVICE);
    assert_non_null(strstr(o.msg, "cudnnGetConvolutionForwardWorkspaceSize failed"));
    /* one failing query: that candidate is skipped and the run succeeds */
    o = run_child("cudnnGetConvolutionBackwardDataWorkspaceSize", 6, false);
    assert_int_equal(o.status, SM_OK);
    assert_string_equal(o.hit, "cudnnGetConvolutionBackwardDataWorkspaceSize");
}

static void failed_copy_is_not_a_later_kernel_failure(void **state)
{
    (void)state;
    outcome o = run_child("cudaMemcpyAsync", 6, true);
    assert_int_equal(o.signal, 0);
    assert_string_equal(o.hit, "cudaMemcpyAsync");
    assert_int_equal(o.status, SM_ERR_DEVICE);
    printf("# first run: %s\n", o.msg);
    assert_non_null(strstr(o.msg, "cudaMemcpyAsync"));
    /* the same workload again in that process: no stale error shows up in a kernel launch */
    assert_int_equal(o.retry_status, SM_OK);
}

static void large_batch_is_split(void **state)
{
    (void)state;
    /* conv1's output is 8 x 24 x 24 = 4,608 floats per image; this build's limit is 10^6
     * elements, so 217 images per cuDNN call: 150 pairs (300 images) take two pieces */
    outcome o = run_child(NULL, 150, false);
    assert_int_equal(o.signal, 0);
    if (o.status != SM_OK) fail_msg("large batch failed: %s", o.msg);
    assert_non_null(strstr(o.log, "conv 217x1x28x28"));
    assert_non_null(strstr(o.log, "conv 83x1x28x28"));
    assert_null(strstr(o.log, "conv 300x1x28x28"));
}

int main(void)
{
    const char *dir = getenv("SIAMESE_BACKEND_DIR");
    if (!dir || !*dir) {
        printf("SKIPPED: no fake cuda module in this build (needs the CUDA toolkit's headers)\n");
        return 77;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(default_math_results_are_chosen_and_logged),
        cmocka_unit_test(every_workspace_query_failing_falls_back),
        cmocka_unit_test(failed_copy_is_not_a_later_kernel_failure),
        cmocka_unit_test(large_batch_is_split),
        cmocka_unit_test(every_call_fails_in_turn),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
