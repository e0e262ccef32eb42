#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Regenerates abi/libsiamese.abi, the ABI baseline that tests/test_abi.sh compares every build
# against. Run it only when a release is cut (after adding the release's node to
# lib/libsiamese.map), and commit the result with the release:
#     scripts/update-abi-baseline.sh
# It builds the library with debug information (abidw reads the types from DWARF) in a
# temporary folder, so the baseline does not depend on how you configured your own build.
set -euo pipefail

source_root=$(cd "$(dirname "$0")/.." && pwd)
for tool in abidw meson; do
    command -v "$tool" >/dev/null 2>&1 ||
        { echo "error: $tool not found (apt-get install abigail-tools meson)" >&2; exit 1; }
done
tmp=$(mktemp -d "${TMPDIR:-/tmp}/siamese-abi.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

meson setup "$tmp/build" "$source_root" -Dbuildtype=debugoptimized -Dtests=false \
    -Dexamples=false -Dcuda=disabled >"$tmp/setup.log" 2>&1 ||
    { cat "$tmp/setup.log" >&2; exit 1; }
meson compile -C "$tmp/build" siamese >"$tmp/build.log" 2>&1 || { cat "$tmp/build.log" >&2; exit 1; }
so=$(readlink -f "$tmp/build/lib/libsiamese.so")
mkdir -p "$source_root/abi"
# The same options as tests/test_abi.sh uses for the fresh build: keep them in step.
abidw --no-corpus-path --drop-private-types --short-locs --headers-dir "$source_root/include/siamese" "$so" \
    >"$source_root/abi/libsiamese.abi"
echo "wrote abi/libsiamese.abi from $(basename "$so") ($(grep -c '<elf-symbol ' "$source_root/abi/libsiamese.abi") ELF symbols)"
