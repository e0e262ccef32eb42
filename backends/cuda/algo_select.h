/* SPDX-License-Identifier: MIT */
/* Private to the cuda backend: ranking cuDNN's convolution algorithm results (algo_select.c).
 * Pure functions over plain records, with no CUDA runtime call, so the unit test
 * (tests/test_cuda_algo.c) runs on any machine with the cuDNN headers. */
#ifndef SM_CUDA_ALGO_SELECT_H
#define SM_CUDA_ALGO_SELECT_H

#include <stdbool.h>
#include <stddef.h>

#include <cudnn.h>

typedef enum smc_conv_dir { SMC_FWD = 0, SMC_BWD_DATA = 1, SMC_BWD_FILTER = 2 } smc_conv_dir;

/* What the algorithm computes with, which sets how far it may stray from a float32 im2col+GEMM
 * (smc_family_tolerance). */
typedef enum smc_algo_family {
    SMC_FAMILY_GEMM = 0,     /* implicit/explicit GEMM, direct, backward ALGO_0/1/3 */
    SMC_FAMILY_FFT = 1,      /* FFT, FFT_TILING */
    SMC_FAMILY_WINOGRAD = 2, /* WINOGRAD, WINOGRAD_NONFUSED */
} smc_algo_family;

/* One cuDNN result (the fields of cudnnConvolution*AlgoPerf_t), with `memory` replaced by the
 * workspace query's answer and `status` by the query's failure when it failed. */
typedef struct smc_algo_result {
    int algo; /* cudnnConvolution{Fwd,BwdData,BwdFilter}Algo_t */
    cudnnStatus_t status;
    float time;           /* ms; negative when not measured (the _v7 heuristics) */
    size_t memory;        /* workspace bytes */
    cudnnMathType_t math; /* what cuDNN reported */
    cudnnDeterminism_t determinism;
} smc_algo_result;

/* A candidate to run, best first. `math` is what to set on the descriptor before running it:
 * CUDNN_FMA_MATH whenever TF32 is off. */
typedef struct smc_algo_choice {
    int algo;
    cudnnMathType_t math;
    size_t memory;
    bool deterministic;
    bool fallback; /* the fixed algorithm, taken because no result qualified */
} smc_algo_choice;

/* Ranks `n` results into `out` (room for `max` >= 1) and returns how many were written, always
 * at least 1:
 *  - skips a result whose status is not success, whose workspace exceeds `budget`, or (TF32
 *    off) whose math type is a tensor-op one; FMA and DEFAULT are both accepted then (cuDNN
 *    tags results either way) and the choice runs with CUDNN_FMA_MATH;
 *  - TF32 on: any math type, run with the one cuDNN reported;
 *  - one choice per algorithm (the first listed), deterministic ones first, then cuDNN's order;
 *    with TF32 off a GEMM-family algorithm goes ahead of FFT/Winograd unless the latter was
 *    measured (time >= 0) faster than every GEMM-family one of its determinism;
 *  - nothing qualifies: the fixed fallback (smc_algo_fallback), with memory 0 (the caller asks
 *    its workspace) and `fallback` set. */
int smc_algo_rank(smc_conv_dir dir, const smc_algo_result *res, int n, bool tf32, size_t budget,
                  smc_algo_choice *out, int max);

/* The algorithm used when cuDNN's list yields nothing: implicit precomputed GEMM forward,
 * ALGO_1 for both backward directions (deterministic, GEMM family, no tensor ops needed). */
int smc_algo_fallback(smc_conv_dir dir);

smc_algo_family smc_algo_family_of(smc_conv_dir dir, int algo);
const char *smc_algo_name(smc_conv_dir dir, int algo); /* "IMPLICIT_PRECOMP_GEMM", ... */
const char *smc_family_name(smc_algo_family f);        /* "GEMM", "FFT", "Winograd" */
const char *smc_math_name(cudnnMathType_t m);          /* "FMA", "DEFAULT", ... */
const char *smc_dir_name(smc_conv_dir dir);            /* "forward", ... */
/* Relative error per element against cpu-blas that a float32 (FMA math) run of one
 * convolution of this family is expected to stay within (docs/cuda.md). */
double smc_family_tolerance(smc_algo_family f);

/* The workspace budget: min(1 GiB, free device memory / 8). */
size_t smc_workspace_budget(size_t free_bytes);

#endif
