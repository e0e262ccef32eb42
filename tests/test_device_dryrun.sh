#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# A dry run of the device check (scripts/device/run-all.sh, all three phases) on this machine, against
# the fake cuda module of tests/cuda_fake/ (a fake CUDA runtime, cuDNN and cuBLAS): the script's
# control flow, its time budgets, its summary and its $OUT file count, first with nothing failing,
# then with one cuDNN, cuBLAS, CUDA-runtime or kernel call failing every time it is made
# (SIAMESE_CUDA_FAULT=<call>*): each failure must be reported with the vendor call named in the
# logs and in the summary, and the summary must still be written. No number here means anything.
# Usage: test_device_dryrun.sh SOURCE_ROOT BUILD_ROOT FAKE_MODULE_DIR
set -uo pipefail
src=$1 build=$2 fake=$3
tmp=$(mktemp -d /tmp/siamese-dryrun.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
fails=0
bad() { echo "FAIL: $*"; fails=$((fails + 1)); }

# the programs the payload would hold, with the fake module in place of the real one
mkdir -p "$tmp/prog/bin" "$tmp/prog/lib"
for p in tests/test_cuda_backend tests/test_cuda_parity tests/bench_step examples/siamese-train \
    tests/test_comm_nccl; do
    ln -s "$build/$p" "$tmp/prog/bin/"
done
ln -s "$fake/libsiamese-cuda.so" "$tmp/prog/lib/"
mkdir -p "$tmp/site/nvidia" # no wheels: nothing is needed

export SIAMESE_DEVICE_PROGRAMS=$tmp/prog SIAMESE_SITE_PACKAGES=$tmp/site
export SIAMESE_BENCH_BATCHES=2,1 SIAMESE_BENCH_STEPS=1 SIAMESE_DEVICE_BUDGET_S=540
export SIAMESE_REF_ITERATIONS=3 SIAMESE_REF_BATCH=4
export SIAMESE_REF_ARGS="--synthetic-classes 20 --synthetic-images 4 --arch 1x32x32:conv4k5,relu,pool2,conv8k3,relu,pool2,flatten,fc16 --threads 1"

# run NAME PHASE [FAULT]: runs the phase with OUT=$tmp/NAME; checks what every run must do
run() {
    local name=$1 phase=$2 fault=${3:-}
    mkdir -p "$tmp/$name"
    SIAMESE_CUDA_FAULT=$fault OUT=$tmp/$name timeout 300 bash "$src/scripts/device/run-all.sh" "$phase" \
        >"$tmp/$name.console" 2>&1
    local rc=$?
    echo "== $name ($phase${fault:+, SIAMESE_CUDA_FAULT=$fault}): exit $rc"
    cat "$tmp/$name/summary.txt" 2>/dev/null | sed 's/^/   | /'
    [ $rc = 0 ] || bad "$name: run-all.sh exits $rc (tail: $(tail -c 300 "$tmp/$name.console"))"
    [ -s "$tmp/$name/summary.txt" ] || bad "$name: no summary.txt"
    grep -q '==== done in' "$tmp/$name/summary.txt" || bad "$name: the summary is not complete"
    local files
    files=$(find "$tmp/$name" -type f | wc -l)
    [ "$files" -le 8 ] || bad "$name: $files files in \$OUT (the device tool returns 8)"
}

run clean parity-bench
grep -q 'parity (test_cuda_backend) *passed' "$tmp/clean/summary.txt" || bad "clean: test_cuda_backend did not pass"
# the fake's numbers mean nothing: parity fails, and the summary says where
grep -q 'parity (test_cuda_parity) *FAILED' "$tmp/clean/summary.txt" || bad "clean: test_cuda_parity did not run or did not fail on the fake"
grep -qE 'first failure: .*(FAILED|ERROR)' "$tmp/clean/summary.txt" || bad "clean: the parity failure is not in the summary"
grep -q 'bench_step cuda, TF32 off *passed' "$tmp/clean/summary.txt" || bad "clean: bench_step did not pass"
# no comm-nccl module beside the fake (and no GPU): the NCCL check is skipped, and says why
grep -q 'nccl, one rank (test_comm_nccl) *SKIPPED' "$tmp/clean/summary.txt" || bad "clean: the NCCL check was not skipped"
grep -q 'SKIP: SM_ERR_' "$tmp/clean/summary.txt" || bad "clean: the NCCL skip does not say why"
grep -q 'train step, batch 2' "$tmp/clean/summary.txt" || bad "clean: no benchmark table"
grep -q 'TF32 off: forward IMPLICIT_PRECOMP_GEMM' "$tmp/clean/bench.log" || bad "clean: bench.log does not show the chosen algorithms"
run ref reference
grep -q 'reference run (cuda, float32) *passed' "$tmp/ref/summary.txt" || bad "ref: the reference run did not pass"
grep -q 'verification, 5 x 150 eval pairs: [0-9.]* %' "$tmp/ref/summary.txt" || bad "ref: no verification accuracy"

# a time limit reached: training stops by itself and still evaluates
SIAMESE_REF_ITERATIONS=100000000 SIAMESE_DEVICE_BUDGET_S=45 SIAMESE_REF_RESERVE_S=20 run timed reference
grep -q 'time limit of' "$tmp/timed/reference.log" || bad "timed: the time limit did not stop training"
grep -q 'verification, 5 x 150 eval pairs: [0-9.]* %' "$tmp/timed/summary.txt" || bad "timed: no evaluation after the time limit"

# the one-shot recipe's phase: its summary lines (a small net for a few steps; the numbers mean nothing)
SIAMESE_ONESHOT_RECIPE="--arch 1x32x32:conv4k5,relu,pool2,conv8k3,relu,pool2,flatten,fc16 --init he --pk 4,2 --warmup 1 --schedule cosine --iterations 3 --episodes 10 --way 5 --shot 1 --within-alphabet" \
    SIAMESE_ONESHOT_RESERVE_S=20 run oneshot oneshot
grep -q 'one-shot recipe (cuda, koch) *passed' "$tmp/oneshot/summary.txt" || bad "oneshot: the recipe did not pass"
grep -q '5-way 1-shot episodes within alphabets: [0-9.]* %' "$tmp/oneshot/summary.txt" || bad "oneshot: no episode accuracy"
grep -q 'verification, 5 x 150 eval pairs: [0-9.]* %' "$tmp/oneshot/summary.txt" || bad "oneshot: no verification accuracy"

# each failing call: reported, named, and the summary still written (the algorithm search's
# cudnnFind* falls back to the heuristics, so the search is failed through the math type)
# (parity skipped: it is the same bench_step failure, slower)
for call in cudaGetDeviceCount cudaMemcpyAsync cudnnCreate cudnnSetConvolutionMathType \
    cudnnConvolutionBackwardFilter cublasSgemm smk_adam; do
    SIAMESE_DEVICE_SKIP_PARITY=1 run "fault-$call" parity-bench "$call*"
    s=$tmp/fault-$call/summary.txt
    grep -q 'bench_step cuda, TF32 off *FAILED' "$s" || bad "$call: bench_step did not fail"
    want=$call
    case $call in
        smk_adam) want="Adam kernel" ;;              # a kernel: "Adam kernel failed"
        cudaGetDeviceCount) want="no usable CUDA device" ;; # at the probe: refused, with the reason
    esac
    grep -qi "$want" "$s" || bad "$call: the summary does not name it"
    grep -qi "$want" "$tmp/fault-$call/bench.log" || bad "$call: bench.log does not name it"
done
echo "dry run: $fails failure(s)"
[ $fails = 0 ]
