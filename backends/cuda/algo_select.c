/* SPDX-License-Identifier: MIT */
/* Ranking cuDNN's convolution algorithm results (algo_select.h): what conv_cudnn.c keeps of
 * cudnnGetConvolution*Algorithm_v7's answer, in which order, and what it falls back to. No CUDA
 * runtime call here; tests/test_cuda_algo.c runs it on synthetic result lists.
 *
 * Why FMA or DEFAULT with TF32 off: cuDNN documents a result's mathType as the math type to set
 * for that algorithm, and results for float data come back tagged CUDNN_DEFAULT_MATH as well as
 * CUDNN_FMA_MATH; keeping only FMA-tagged ones left the list empty and every convolution
 * refused. Only the tensor-op types are unwanted, and the choice runs under CUDNN_FMA_MATH,
 * which forbids tensor cores whatever the result said. */
#include "algo_select.h"

#include <string.h>

int smc_algo_fallback(smc_conv_dir dir)
{
    switch (dir) {
    case SMC_FWD: return CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM;
    case SMC_BWD_DATA: return CUDNN_CONVOLUTION_BWD_DATA_ALGO_1;
    case SMC_BWD_FILTER: return CUDNN_CONVOLUTION_BWD_FILTER_ALGO_1;
    }
    return 0;
}

smc_algo_family smc_algo_family_of(smc_conv_dir dir, int algo)
{
    switch (dir) {
    case SMC_FWD:
        switch (algo) {
        case CUDNN_CONVOLUTION_FWD_ALGO_FFT:
        case CUDNN_CONVOLUTION_FWD_ALGO_FFT_TILING: return SMC_FAMILY_FFT;
        case CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD:
        case CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD_NONFUSED: return SMC_FAMILY_WINOGRAD;
        default: return SMC_FAMILY_GEMM;
        }
    case SMC_BWD_DATA:
        switch (algo) {
        case CUDNN_CONVOLUTION_BWD_DATA_ALGO_FFT:
        case CUDNN_CONVOLUTION_BWD_DATA_ALGO_FFT_TILING: return SMC_FAMILY_FFT;
        case CUDNN_CONVOLUTION_BWD_DATA_ALGO_WINOGRAD:
        case CUDNN_CONVOLUTION_BWD_DATA_ALGO_WINOGRAD_NONFUSED: return SMC_FAMILY_WINOGRAD;
        default: return SMC_FAMILY_GEMM;
        }
    case SMC_BWD_FILTER:
        switch (algo) {
        case CUDNN_CONVOLUTION_BWD_FILTER_ALGO_FFT:
        case CUDNN_CONVOLUTION_BWD_FILTER_ALGO_FFT_TILING: return SMC_FAMILY_FFT;
        case CUDNN_CONVOLUTION_BWD_FILTER_ALGO_WINOGRAD:
        case CUDNN_CONVOLUTION_BWD_FILTER_ALGO_WINOGRAD_NONFUSED: return SMC_FAMILY_WINOGRAD;
        default: return SMC_FAMILY_GEMM;
        }
    }
    return SMC_FAMILY_GEMM;
}

const char *smc_algo_name(smc_conv_dir dir, int algo)
{
    static const char *const fwd[] = {
        "IMPLICIT_GEMM", "IMPLICIT_PRECOMP_GEMM", "GEMM", "DIRECT", "FFT", "FFT_TILING",
        "WINOGRAD",      "WINOGRAD_NONFUSED"};
    static const char *const data[] = {"ALGO_0",     "ALGO_1",   "FFT",
                                       "FFT_TILING", "WINOGRAD", "WINOGRAD_NONFUSED"};
    static const char *const filter[] = {
        "ALGO_0", "ALGO_1", "FFT", "ALGO_3", "WINOGRAD", "WINOGRAD_NONFUSED", "FFT_TILING"};
    const char *const *names = dir == SMC_FWD ? fwd : dir == SMC_BWD_DATA ? data : filter;
    int count = dir == SMC_FWD ? 8 : dir == SMC_BWD_DATA ? 6 : 7;
    return algo >= 0 && algo < count ? names[algo] : "unknown";
}

const char *smc_family_name(smc_algo_family f)
{
    return f == SMC_FAMILY_FFT ? "FFT" : f == SMC_FAMILY_WINOGRAD ? "Winograd" : "GEMM";
}

const char *smc_math_name(cudnnMathType_t m)
{
    switch (m) {
    case CUDNN_DEFAULT_MATH: return "DEFAULT";
    case CUDNN_TENSOR_OP_MATH: return "TENSOR_OP";
    case CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION: return "TENSOR_OP_ALLOW_CONVERSION";
    case CUDNN_FMA_MATH: return "FMA";
    }
    return "unknown";
}

const char *smc_dir_name(smc_conv_dir dir)
{
    return dir == SMC_FWD ? "forward" : dir == SMC_BWD_DATA ? "backward-data" : "backward-filter";
}

/* Expected, not yet measured on a device: a GEMM-family algorithm sums the same products as
 * im2col+SGEMM in another order (~1e-6, bounded at 1e-5). FFT rounds through the transform
 * (error grows with log of the tile size and the input's dynamic range) and Winograd through
 * its transform matrices: ~1e-5 to 1e-4, bounded at 1e-3. */
double smc_family_tolerance(smc_algo_family f) { return f == SMC_FAMILY_GEMM ? 1e-5 : 1e-3; }

size_t smc_workspace_budget(size_t free_bytes)
{
    const size_t cap = (size_t)1 << 30;
    return free_bytes / 8 < cap ? free_bytes / 8 : cap;
}

static bool math_ok(cudnnMathType_t m, bool tf32)
{
    return tf32 || m == CUDNN_FMA_MATH || m == CUDNN_DEFAULT_MATH;
}

int smc_algo_rank(smc_conv_dir dir, const smc_algo_result *res, int n, bool tf32, size_t budget,
                  smc_algo_choice *out, int max)
{
    enum { MAX_IN = 64 };
    if (n > MAX_IN) n = MAX_IN;
    if (n < 0 || !res) n = 0;
    bool keep[MAX_IN];
    for (int i = 0; i < n; i++) {
        keep[i] = res[i].status == CUDNN_STATUS_SUCCESS && res[i].memory <= budget &&
                  math_ok(res[i].math, tf32);
        for (int j = 0; j < i && keep[i]; j++)
            if (keep[j] && res[j].algo == res[i].algo) keep[i] = false; /* first listed wins */
    }
    /* per determinism class, the fastest measured GEMM-family time (negative: none) */
    float gemm_best[2] = {-1.0f, -1.0f};
    for (int i = 0; i < n; i++) {
        if (!keep[i] || res[i].time < 0) continue;
        if (smc_algo_family_of(dir, res[i].algo) != SMC_FAMILY_GEMM) continue;
        int d = res[i].determinism == CUDNN_DETERMINISTIC;
        if (gemm_best[d] < 0 || res[i].time < gemm_best[d]) gemm_best[d] = res[i].time;
    }
    /* passes: 0 deterministic preferred, 1 deterministic demoted, 2 and 3 the same for the
     * non-deterministic ones; within a pass cuDNN's order */
    int got = 0;
    for (int pass = 0; pass < 4 && got < max; pass++)
        for (int i = 0; i < n && got < max; i++) {
            if (!keep[i]) continue;
            int d = res[i].determinism == CUDNN_DETERMINISTIC;
            if (d != (pass < 2)) continue;
            bool demoted = false;
            if (!tf32 && smc_algo_family_of(dir, res[i].algo) != SMC_FAMILY_GEMM)
                demoted = !(res[i].time >= 0 && gemm_best[d] >= 0 && res[i].time < gemm_best[d]);
            if (demoted != (pass % 2 == 1)) continue;
            out[got++] = (smc_algo_choice){
                .algo = res[i].algo,
                .math = tf32 ? res[i].math : CUDNN_FMA_MATH,
                .memory = res[i].memory,
                .deterministic = d,
                .fallback = false,
            };
        }
    if (got == 0 && max > 0)
        out[got++] = (smc_algo_choice){
            .algo = smc_algo_fallback(dir),
            .math = tf32 ? CUDNN_DEFAULT_MATH : CUDNN_FMA_MATH,
            .memory = 0,
            .deterministic = true,
            .fallback = true,
        };
    return got;
}
