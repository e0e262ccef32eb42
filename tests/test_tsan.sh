#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# tests/test_threads.c, tests/test_comm.c (ranks on threads) and tests/test_grad_exchange.c (the
# exchange's own thread) under ThreadSanitizer: builds this source tree again in
# BUILD_ROOT/sanitize-tsan (-Db_sanitize=thread, no examples), builds only those tests, runs
# them, and fails on any TSan report (data race, lock-order inversion, ...).
# Usage (from tests/meson.build): test_tsan.sh MESON SOURCE_ROOT BUILD_ROOT
set -euo pipefail

if [ "${SIAMESE_SANITIZE_INNER:-}" = 1 ]; then
    echo "SKIP: already inside a sanitizer run (no recursion)"
    exit 77
fi
[ $# -eq 3 ] || { echo "usage: $0 MESON SOURCE_ROOT BUILD_ROOT" >&2; exit 2; }
meson_cmd=$1 source_root=$2 build_root=$3
dir=$build_root/sanitize-tsan

cc=${CC:-cc}
probe=$build_root/.tsan-probe
if ! echo 'int main(void){return 0;}' | "$cc" -fsanitize=thread -x c - -o "$probe" 2>/dev/null ||
        ! "$probe" 2>/dev/null; then
    rm -f "$probe"
    echo "SKIP: $cc cannot build or run -fsanitize=thread programs here (libtsan missing?)"
    exit 77
fi
rm -f "$probe"

export SIAMESE_SANITIZE_INNER=1
if [ ! -f "$dir/build.ninja" ]; then
    echo "== configuring $dir"
    "$meson_cmd" setup "$dir" "$source_root" -Db_sanitize=thread -Dbuildtype=debugoptimized \
        -Dwerror="${SIAMESE_WERROR:-false}" \
        -Dexamples=false -Dcuda=disabled -Ddnnl=disabled -Dcomm-mpi=disabled -Dcomm-nccl=disabled
fi
echo "== building test_threads, test_comm and test_grad_exchange in $dir"
"$meson_cmd" compile -C "$dir" test_threads test_comm test_grad_exchange

# OpenBLAS is not built with TSan, so its own worker threads synchronise in ways TSan cannot
# see (spin-waits on plain variables) and would be reported as races inside libopenblas.
# One OpenBLAS thread keeps TSan's view to what this library does: the threads that call into
# libsiamese are still the test's four. No suppressions are used for this library's code.
export OPENBLAS_NUM_THREADS=1
export TSAN_OPTIONS="halt_on_error=1 exitcode=66 second_deadlock_stack=1"
export SIAMESE_TEST_DATA=$source_root/tests/data
echo "== running test_threads, test_comm and test_grad_exchange under TSan (OPENBLAS_NUM_THREADS=1; TSAN_OPTIONS=$TSAN_OPTIONS)"
# setarch -R: TSan's shadow mapping needs a predictable address space on kernels with large
# mmap randomisation; harmless elsewhere.
runner=()
if command -v setarch >/dev/null 2>&1 && setarch "$(uname -m)" -R true 2>/dev/null; then
    runner=(setarch "$(uname -m)" -R)
fi
"${runner[@]}" "$dir/tests/test_threads"
# the in-process communicator: ranks on threads meeting at a rendezvous (lib/comm/comm_local.c),
# each with its trainer's exchange thread (lib/comm/grad_exchange.c)
"${runner[@]}" "$dir/tests/test_comm"
"${runner[@]}" "$dir/tests/test_grad_exchange"
echo "tsan: OK (no data race reported)"
