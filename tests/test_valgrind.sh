#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Runs test executables of the normal build under valgrind's memcheck: any invalid read or
# write, use of uninitialised memory, or definite/indirect leak fails the test.
# The executables are run directly (not through a nested `meson test` on the same build folder,
# which would contend for its lock and log files), one after another, with the environment
# `meson test` would give them.
# Usage (from tests/meson.build): test_valgrind.sh SOURCE_ROOT EXECUTABLE...
set -euo pipefail

if [ "${SIAMESE_SANITIZE_INNER:-}" = 1 ]; then
    echo "SKIP: inside a sanitizer build (valgrind runs on the normal build only)"
    exit 77
fi
if ! command -v valgrind >/dev/null 2>&1; then
    echo "SKIP: valgrind is not installed (apt-get install valgrind)"
    exit 77
fi
[ $# -ge 2 ] || { echo "usage: $0 SOURCE_ROOT EXECUTABLE..." >&2; exit 2; }
source_root=$1
shift

export SIAMESE_TEST_DATA=$source_root/tests/data
unset SIAMESE_OMNIGLOT_DIR
log_dir=$(mktemp -d "${TMPDIR:-/tmp}/siamese-valgrind.XXXXXX")
trap 'rm -rf "$log_dir"' EXIT

failed=()
for exe in "$@"; do
    name=$(basename "$exe")
    log=$log_dir/$name.log
    start=$SECONDS
    # --error-exitcode: any error (leaks of the kinds below included) makes the run fail.
    # --track-origins doubles the run time: it is added only when a program is run again to
    # explain a failure.
    vg=(valgrind --quiet --error-exitcode=99 --leak-check=full
        --errors-for-leak-kinds=definite,indirect --show-leak-kinds=definite,indirect)
    if "${vg[@]}" --log-file="$log" "$exe" >"$log_dir/$name.out" 2>&1; then
        echo "ok    $name ($((SECONDS - start)) s)"
    else
        rc=$?
        echo "FAIL  $name (exit $rc, $((SECONDS - start)) s)"
        "${vg[@]}" --track-origins=yes --log-file="$log" "$exe" >"$log_dir/$name.out" 2>&1 || true
        echo "---- valgrind report for $name (second run, with --track-origins=yes):"
        cat "$log"
        echo "---- output of $name (last 40 lines):"
        tail -n 40 "$log_dir/$name.out"
        failed+=("$name")
    fi
done

if [ ${#failed[@]} -gt 0 ]; then
    echo "valgrind: FAILED: ${failed[*]}" >&2
    exit 1
fi
echo "valgrind: OK ($# programs, no errors, no definite or indirect leaks)"
