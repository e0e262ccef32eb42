#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# ABI guard: compares the library built from this tree with the committed baseline
# abi/libsiamese.abi (written by scripts/update-abi-baseline.sh at the last release) using
# libabigail's abidiff. Added functions pass (they belong in a new node of lib/libsiamese.map);
# a removed or changed function or variable, or any change of a public type, fails.
# The library is built again in BUILD_ROOT/abi-check with debug information (abidw and abidiff
# read types from DWARF), whatever the build type of the main build.
# Usage (from tests/meson.build): test_abi.sh MESON SOURCE_ROOT BUILD_ROOT
set -euo pipefail

[ $# -eq 3 ] || { echo "usage: $0 MESON SOURCE_ROOT BUILD_ROOT" >&2; exit 2; }
meson_cmd=$1 source_root=$2 build_root=$3
baseline=$source_root/abi/libsiamese.abi
dir=$build_root/abi-check

if ! command -v abidiff >/dev/null 2>&1 || ! command -v abidw >/dev/null 2>&1; then
    echo "SKIP: abidiff/abidw not found (apt-get install abigail-tools)"
    exit 77
fi
[ -f "$baseline" ] || { echo "FAIL: no baseline $baseline (scripts/update-abi-baseline.sh)" >&2; exit 1; }

if [ ! -f "$dir/build.ninja" ]; then
    "$meson_cmd" setup "$dir" "$source_root" -Dbuildtype=debugoptimized -Dtests=false \
        -Dexamples=false -Dcuda=disabled -Ddnnl=disabled >"$build_root/abi-check-setup.log" 2>&1 ||
        { cat "$build_root/abi-check-setup.log" >&2; echo "FAIL: meson setup $dir" >&2; exit 1; }
fi
"$meson_cmd" compile -C "$dir" siamese >"$build_root/abi-check-build.log" 2>&1 ||
    { cat "$build_root/abi-check-build.log" >&2; echo "FAIL: building $dir" >&2; exit 1; }
so=$(readlink -f "$dir/lib/libsiamese.so")

# The fresh library is described exactly as the baseline was (same abidw options), so the two
# corpora are compared like for like: only types reachable from the public headers count, and
# the definitions of opaque handles (private structs) do not.
current=$build_root/abi-check-current.abi
abidw --no-corpus-path --drop-private-types --short-locs --headers-dir "$source_root/include/siamese" \
    "$so" >"$current"
report=$build_root/abi-check-report.txt
set +e
abidiff "$baseline" "$current" >"$report" 2>&1
rc=$?
set -e
cat "$report"
# Exit status bits (man abidiff): 1 error, 2 usage error, 4 ABI change, 8 incompatible change.
if (( rc & 3 )); then
    echo "FAIL: abidiff could not compare (exit $rc)" >&2
    exit 1
fi
if (( rc & 8 )); then
    echo "FAIL: incompatible ABI change against abi/libsiamese.abi (a symbol was removed?)" >&2
    exit 1
fi
if (( rc & 4 )); then
    # A change that abidiff cannot classify: allowed only when nothing was removed or changed.
    bad=$(sed -n 's/^\(Functions\|Variables\) changes summary: \([0-9]*\) Removed, \([0-9]*\) Changed.*/\2 \3/p' "$report" |
          awk '$1 + $2 > 0' || true)
    types=$(grep -c 'Unreachable types summary: [1-9]\|changes summary: .*[1-9][0-9]* Changed' "$report" || true)
    if [ -n "$bad" ] || [ "$types" != 0 ]; then
        echo "FAIL: public functions, variables or types changed or were removed (see above)." >&2
        echo "An ABI break needs SM_ABI_MAJOR bumped; otherwise restore the old signatures." >&2
        exit 1
    fi
    echo "abi: only additions (list new symbols in a new node of lib/libsiamese.map)"
fi
echo "abi: OK (compatible with abi/libsiamese.abi)"
