#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The set-up scripts as a user runs them, without a network (suite 'scripts'):
#  - scripts/fetch-omniglot.sh against a local "server" folder (file:// URL) and a sums file of
#    the test's own: downloads, verifies, keeps nothing partial or wrong, is a no-op when the
#    files are there, replaces a wrong file; and its pinned sums are the official zips' MD5s;
#  - scripts/setup-debian.sh --list names the packages, and an unknown option is refused.
# Usage (from tests/meson.build): test_setup_scripts.sh SOURCE_ROOT
set -euo pipefail

src=$1
fetch=$src/scripts/fetch-omniglot.sh
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0 passed=0
check() { # DESCRIPTION COMMAND...
    local what=$1; shift
    if "$@"; then echo "ok   $what"; passed=$((passed + 1)); else echo "FAIL $what"; failures=$((failures + 1)); fi
}

# The pinned sums are torchvision's for the official zips (a typo here would refuse every
# download).
check "pinned MD5 of images_background.zip" \
    grep -qx '68d2efa1b9178cc56df9314c21c6e718  images_background.zip' "$src/scripts/omniglot.md5"
check "pinned MD5 of images_evaluation.zip" \
    grep -qx '6b91aef0f799c5bb55b94e3f2daec811  images_evaluation.zip' "$src/scripts/omniglot.md5"

server=$tmp/server dest=$tmp/dest
mkdir -p "$server"
printf 'background bytes\n' >"$server/images_background.zip"
printf 'evaluation bytes\n' >"$server/images_evaluation.zip"
(cd "$server" && md5sum images_background.zip images_evaluation.zip) >"$tmp/sums"
export SIAMESE_OMNIGLOT_URL=file://$server SIAMESE_OMNIGLOT_SUMS=$tmp/sums

run() { "$fetch" "$dest" >"$tmp/out" 2>&1; }
no_leftovers() { [ -z "$(find "$dest" -name '*.part')" ]; }

check "fetches both zips" run
check "both zips in place, byte for byte" \
    cmp -s "$server/images_background.zip" "$dest/images_background.zip"
check "no .part files left" no_leftovers

rm "$server"/*.zip
check "a second run with the files present downloads nothing" run
check "... and says they are present" grep -q "images_evaluation.zip: present" "$tmp/out"

# A wrong file in DEST is replaced by a verified download.
printf 'evaluation bytes\n' >"$server/images_evaluation.zip"
printf 'background bytes\n' >"$server/images_background.zip"
printf 'stale\n' >"$dest/images_evaluation.zip"
check "a wrong file in DEST is fetched again" run
check "... and replaced" cmp -s "$server/images_evaluation.zip" "$dest/images_evaluation.zip"

# A download whose sum differs is refused and leaves nothing behind.
rm -rf "$dest"
printf 'tampered\n' >"$server/images_evaluation.zip"
check "a download with the wrong MD5 fails" bash -c '! "$0" "$1" >"$2" 2>&1' "$fetch" "$dest" "$tmp/out"
check "... naming both sums" grep -q "images_evaluation.zip: MD5 .*, expected " "$tmp/out"
check "... keeping no file under that name" test ! -e "$dest/images_evaluation.zip"
check "... and no .part file" no_leftovers
check "... while the good one was kept" test -f "$dest/images_background.zip"

# A source that is not there fails clearly.
rm -rf "$dest" "$server"
check "a missing source fails" bash -c '! "$0" "$1" >"$2" 2>&1' "$fetch" "$dest" "$tmp/out"
check "... saying the download failed" grep -q "download failed" "$tmp/out"
check "... and leaves nothing" bash -c '[ -z "$(ls -A "$0")" ]' "$dest"

check "setup-debian.sh --list names the required packages" \
    bash -c '"$0" --list --tests | grep -q "^required: .*libopenblas-dev.*libcmocka-dev"' \
    "$src/scripts/setup-debian.sh"
check "setup-debian.sh --list --tests names Open MPI and MPICH (the 'dist' suite)" \
    bash -c '"$0" --list --tests | grep -q "^required: .*openmpi-bin.*libopenmpi-dev.*libmpich-dev"' \
    "$src/scripts/setup-debian.sh"
check "setup-debian.sh refuses an unknown option" \
    bash -c '! "$0" --bogus 2>/dev/null' "$src/scripts/setup-debian.sh"

echo "$passed passed, $failures failed"
[ "$failures" = 0 ]
