#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The whole test suite under AddressSanitizer + UndefinedBehaviorSanitizer (leak detection on).
# Configures a second build of this source tree in BUILD_ROOT/sanitize-asan
# (-Db_sanitize=address,undefined, debugoptimized, no examples), builds it, and runs its
# `meson test` for every suite except those that would recurse or take too long:
#   sanitize (this script, valgrind, tsan), abi, install, fuzz, integration, docs (its
#   sample programs are built by plain cc, and an ASan library cannot be loaded by them) and
#   python (an uninstrumented python3 cannot load an ASan library either: ASan must come first
#   in a process; the package only passes arguments through, and the C tests cover the calls).
# Fails if any test fails or any sanitizer reports an error or a leak.
# Usage (from tests/meson.build): test_sanitizers.sh MESON SOURCE_ROOT BUILD_ROOT
set -euo pipefail

if [ "${SIAMESE_SANITIZE_INNER:-}" = 1 ]; then
    echo "SKIP: already inside a sanitizer run (no recursion)"
    exit 77
fi
[ $# -eq 3 ] || { echo "usage: $0 MESON SOURCE_ROOT BUILD_ROOT" >&2; exit 2; }
meson_cmd=$1 source_root=$2 build_root=$3
dir=$build_root/sanitize-asan

cc=${CC:-cc}
if ! echo 'int main(void){return 0;}' |
        "$cc" -fsanitize=address,undefined -x c - -o "$build_root/.asan-probe" 2>/dev/null; then
    echo "SKIP: $cc cannot build with -fsanitize=address,undefined (libasan/libubsan missing?)"
    exit 77
fi
rm -f "$build_root/.asan-probe"

export SIAMESE_SANITIZE_INNER=1
if [ ! -f "$dir/build.ninja" ]; then
    echo "== configuring $dir"
    # No modules: cuda needs a GPU, and cpu-dnnl's JIT code and libgomp add nothing to check
    # but reports from uninstrumented code and minutes (its ops run in the main build's tests);
    # no comm modules: Open MPI's own allocations would read as leaks (the 'dist' suite's
    # in-process communicator test, test_comm, still runs here, and under TSan).
    # Warnings are errors here when they are in the outer build (CI): SIAMESE_WERROR.
    "$meson_cmd" setup "$dir" "$source_root" -Db_sanitize=address,undefined \
        -Dbuildtype=debugoptimized -Dwerror="${SIAMESE_WERROR:-false}" -Dexamples=false \
        -Dcuda=disabled -Ddnnl=disabled -Dcomm-mpi=disabled -Dcomm-nccl=disabled
fi
echo "== building $dir"
"$meson_cmd" compile -C "$dir"

# abort_on_error: a report kills the test (a failure, not a line in a log nobody reads).
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
# Real-data runs are too slow instrumented.
unset SIAMESE_OMNIGLOT_DIR
# This build has no cuda module by design (above): CI's demand that the module exist (.ci/run)
# is for the main build only.
unset SIAMESE_REQUIRE_CUDA_MODULE
echo "== meson test (ASan + UBSan): ASAN_OPTIONS=$ASAN_OPTIONS UBSAN_OPTIONS=$UBSAN_OPTIONS"
"$meson_cmd" test -C "$dir" --no-rebuild --print-errorlogs \
    --no-suite sanitize --no-suite abi --no-suite install --no-suite fuzz --no-suite integration \
    --no-suite docs --no-suite python
echo "sanitizers: OK"
