#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Every public header (siamese.h and each topic header it includes) compiles on its own
# (included first and alone, twice for the include guard), as C11 and as C++11, with warnings
# as errors; and siamese.h includes every other header, so that it stays the one include a
# user needs. The one exception is siamese/comm_mpi.h, the header-only MPI adapter: it needs
# the host's mpi.h, so siamese.h does not include it, and it is compiled here against the MPI
# that pkg-config finds (Open MPI's ompi-c, else mpich), or skipped with a note; the MPICH
# check is tests/test_mpi_adapter.sh.
# Usage (from tests/meson.build): test_headers.sh SOURCE_ROOT
set -euo pipefail

[ $# -eq 1 ] || { echo "usage: $0 SOURCE_ROOT" >&2; exit 2; }
inc=$1/include
cc=${CC:-cc}
cxx=${CXX:-g++}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/siamese-headers.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

headers=()
for h in "$inc"/siamese/*.h; do headers+=("siamese/$(basename "$h")"); done
[ ${#headers[@]} -gt 0 ] || { echo "FAIL: no headers under $inc/siamese" >&2; exit 1; }

have_cxx=1
if ! command -v "$cxx" >/dev/null 2>&1; then
    have_cxx=0
    echo "note: $cxx not found: the C++ part is skipped (apt-get install g++)"
fi

mpi_flags=$(pkg-config --cflags ompi-c 2>/dev/null || pkg-config --cflags mpich 2>/dev/null ||
            echo none)

failed=0
for h in "${headers[@]}"; do
    [ "$h" = siamese/siamese.h ] && continue
    [ "$h" = siamese/comm_mpi.h ] && continue
    if ! grep -q "^#include \"$h\"" "$inc/siamese/siamese.h"; then
        echo "FAIL  siamese.h does not include $h"
        failed=1
    fi
done
for h in "${headers[@]}"; do
    extra=()
    if [ "$h" = siamese/comm_mpi.h ]; then
        if [ "$mpi_flags" = none ]; then
            echo "note  $h skipped: no MPI found by pkg-config (libopenmpi-dev)"
            continue
        fi
        read -r -a extra <<<"$mpi_flags -DOMPI_SKIP_MPICXX -DMPICH_SKIP_MPICXX"
    fi
    tu=$tmp/$(basename "$h" .h)
    printf '#include "%s"\n#include "%s"\nint sm_header_test_dummy;\n' "$h" "$h" >"$tu.c"
    cp "$tu.c" "$tu.cpp"
    if "$cc" -std=c11 -Wall -Wextra -Werror -pedantic -I"$inc" "${extra[@]}" -fsyntax-only "$tu.c"; then
        echo "ok    C11   $h"
    else
        echo "FAIL  C11   $h"
        failed=1
    fi
    if [ $have_cxx = 1 ]; then
        if "$cxx" -std=c++11 -Wall -Wextra -Werror -pedantic -I"$inc" "${extra[@]}" -fsyntax-only "$tu.cpp"; then
            echo "ok    C++11 $h"
        else
            echo "FAIL  C++11 $h"
            failed=1
        fi
    fi
done
[ $failed = 0 ] || { echo "headers: FAILED" >&2; exit 1; }
echo "headers: OK (${#headers[@]} headers)"
