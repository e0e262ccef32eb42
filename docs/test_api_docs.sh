#!/bin/sh
# Builds the API reference (docs/Doxyfile.in) and fails on any Doxygen warning, so that a
# header comment whose markup does not render is caught when it is written.
# Usage (docs/meson.build): test_api_docs.sh DOXYGEN DOXYFILE OUTDIR
set -eu
doxygen=$1 doxyfile=$2 outdir=$3
"$doxygen" "$doxyfile"
[ -f "$outdir/html/index.html" ] || { echo "FAIL: no $outdir/html/index.html" >&2; exit 1; }
if [ -s "$outdir/warnings.txt" ]; then
    echo "FAIL: Doxygen warnings:" >&2
    cat "$outdir/warnings.txt" >&2
    exit 1
fi
n=$(grep -c 'memitem:' "$outdir/html/siamese_8h.html" || true)
echo "API reference: $outdir/html/index.html ($n declarations in siamese.h)"
