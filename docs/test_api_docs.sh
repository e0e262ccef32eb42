#!/bin/sh
# SPDX-License-Identifier: MIT
# Builds the API reference (docs/Doxyfile.in) and fails on any Doxygen warning, so that a
# header comment whose markup does not render is caught when it is written.
# Usage (docs/meson.build): test_api_docs.sh DOXYGEN DOXYFILE OUTDIR SOURCE_ROOT
set -eu
doxygen=$1 doxyfile=$2 outdir=$3 srcdir=$4
"$doxygen" "$doxyfile"
[ -f "$outdir/html/index.html" ] || { echo "FAIL: no $outdir/html/index.html" >&2; exit 1; }
if [ -s "$outdir/warnings.txt" ]; then
    echo "FAIL: Doxygen warnings:" >&2
    cat "$outdir/warnings.txt" >&2
    exit 1
fi
# Every header of include/siamese/ has its page (INPUT names the folder): one missing is a
# header Doxygen did not read.
n=0
for h in "$srcdir"/include/siamese/*.h; do
    # Doxygen doubles the underscores of a file name in its page's name
    page=$outdir/html/$(basename "$h" .h | sed 's/_/__/g')_8h.html
    [ -f "$page" ] || { echo "FAIL: no page $page for $h" >&2; exit 1; }
    n=$((n + $(grep -c 'memitem:' "$page" || true)))
done
echo "API reference: $outdir/html/index.html ($n declarations in include/siamese/*.h)"
