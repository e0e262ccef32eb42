#!/bin/sh
# SPDX-License-Identifier: MIT
# The fuzz smoke test: builds the libFuzzer targets (fuzz/) with clang, ASan and UBSan in a
# build folder of its own under the build folder (kept between runs, so a rerun only rebuilds
# what changed), then runs each target on its committed corpus for SECONDS seconds (15 by
# default, FUZZ_SMOKE_SECONDS overrides). Any crash, leak, UB, timeout or broken invariant fails
# the test; the input is kept under <build>/fuzz-smoke/artifacts. Reports a skip (77) when clang
# or libFuzzer is missing.
# Usage (from tests/meson.build): test_fuzz_smoke.sh MESON SOURCE_ROOT BUILD_ROOT
set -eu

meson_cmd=$1 source_root=$2 build_root=$3
seconds=${FUZZ_SMOKE_SECONDS:-15}
targets="png zip_dataset checkpoint arch_text oneshot_runs gallery"
dir=$build_root/fuzz-smoke

skip() { echo "SKIP: $*"; exit 77; }
fail() { echo "FAIL: $*" >&2; exit 1; }

command -v clang >/dev/null 2>&1 ||
    skip "clang not found (apt-get install clang libclang-rt-14-dev)"
mkdir -p "$dir"
probe=$dir/probe
printf '%s\n' '#include <stddef.h>' '#include <stdint.h>' \
    'int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n);' \
    'int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { (void)d; (void)n; return 0; }' \
    >"$probe.c"
clang -fsanitize=fuzzer,address,undefined "$probe.c" -o "$probe" >"$probe.log" 2>&1 ||
    skip "clang cannot link libFuzzer (apt-get install libclang-rt-14-dev):" \
        "$(tail -n 1 "$probe.log")"

# Its own configuration, whatever the outer build's compiler and options.
if [ ! -f "$dir/build/build.ninja" ]; then
    CC=clang "$meson_cmd" setup "$dir/build" "$source_root" -Dfuzz=true -Dtests=false \
        -Dexamples=false -Db_sanitize=address,undefined -Db_lundef=false -Dcuda=disabled \
        -Dwerror="${SIAMESE_WERROR:-false}" >"$dir/setup.log" 2>&1 ||
        { cat "$dir/setup.log" >&2; fail "meson setup of the fuzz build"; }
fi
"$meson_cmd" compile -C "$dir/build" >"$dir/compile.log" 2>&1 ||
    { tail -n 40 "$dir/compile.log" >&2; fail "building the fuzz targets"; }

status=0
for t in $targets; do
    work=$dir/work/$t
    rm -rf "$work"
    mkdir -p "$work" "$dir/artifacts"
    # New inputs go to the work folder; the committed corpus and regressions are only read.
    regressions=$source_root/fuzz/regressions/$t
    [ -d "$regressions" ] || regressions=
    # shellcheck disable=SC2086 # $regressions: one folder or none
    if "$dir/build/fuzz/fuzz_$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 -artifact_prefix="$dir/artifacts/$t-" \
        "$work" "$source_root/fuzz/corpus/$t" $regressions >"$dir/$t.log" 2>&1; then
        echo "fuzz_$t: $(grep -o 'stat::number_of_executed_units: [0-9]*' "$dir/$t.log" ||
            tail -n 1 "$dir/$t.log")"
    else
        tail -n 60 "$dir/$t.log" >&2
        echo "FAIL: fuzz_$t found a problem; the input is in $dir/artifacts/ (add it to" \
            "fuzz/regressions/$t/, see fuzz/README.md)" >&2
        status=1
    fi
done
exit $status
