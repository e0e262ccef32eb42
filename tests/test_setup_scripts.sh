#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The set-up scripts as a user runs them, without a network (suite 'scripts'):
#  - scripts/fetch-omniglot.sh against a local "server" folder (file:// URL) and a sums file of
#    the test's own: downloads, verifies, keeps nothing partial or wrong, is a no-op when the
#    files are there, replaces a wrong file; and its pinned sums are the official zips' MD5s;
#  - scripts/setup-debian.sh --list names the packages, and an unknown option is refused;
#  - README's two Quick start commands in that order (their meson parts, in folders of the
#    test's own, with cmocka hidden from the first as its set-up does not install it): the second
#    leaves a folder that has the cmocka tests, whatever the first did; with cmocka still
#    missing its tests fail saying so instead of passing with none run; .ci/run ends with it.
# Usage (from tests/meson.build): test_setup_scripts.sh SOURCE_ROOT [MESON]
set -euo pipefail

src=$1
meson=${2:-meson}
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

# README's Quick start: exactly two commands, the set-up then meson. The first configures build/
# without cmocka (setup-debian.sh without --tests does not install it); the second installs it
# and must leave build/ with the cmocka tests: `meson setup build` alone keeps a configured
# folder as it is, and `meson test` then ran nothing and passed.
starts_with() { case $1 in "$2"*) ;; *) return 1 ;; esac; }
mapfile -t cmds < <(awk '/^## Quick start/ { q = 1; next } q && /^## / { exit }
    q && /^```sh$/ { b = 1; next } b && /^```$/ { b = 0; next } b' "$src/README.md")
check "README's Quick start gives exactly two commands" test "${#cmds[@]}" = 2
cmd1=${cmds[0]-} cmd2=${cmds[1]-}
check "... the first sets up without the test tools" starts_with "$cmd1" "scripts/setup-debian.sh && meson setup build"
check "... the second with them, then meson" starts_with "$cmd2" "scripts/setup-debian.sh --tests && meson setup"
check "... the second ends in meson test -C build" \
    bash -c '[[ "$0" == *" && meson test -C build"* ]]' "$cmd2"
check ".ci/run's last line is README's test command, verbatim" \
    test "$(tail -n 1 "$src/.ci/run")" = "$cmd2"

# The `meson setup` parts of a command, one a line.
setups() { sed 's/ && /\n/g' <<<"$1" | grep '^meson setup ' || true; }
# cmocka hidden: a pkg-config folder with every .pc file but cmocka.pc, and a cmake that fails
# (Debian's libcmocka-dev has a CMake package too, which meson's dependency() tries next).
pcdir=$tmp/pkgconfig-no-cmocka nocmake=$tmp/no-cmake
mkdir -p "$pcdir" "$nocmake"
IFS=: read -ra pc_path <<<"${PKG_CONFIG_PATH:+$PKG_CONFIG_PATH:}$(pkg-config --variable pc_path pkg-config)"
for d in "${pc_path[@]}"; do
    for f in "$d"/*.pc; do
        [ -e "$f" ] && [ "${f##*/}" != cmocka.pc ] && [ ! -e "$pcdir/${f##*/}" ] && ln -s "$f" "$pcdir/"
    done
done
printf '#!/bin/sh\nexit 1\n' >"$nocmake/cmake"
chmod +x "$nocmake/cmake"
hide=()
# run_setup DIR SEGMENT: a `meson setup ...` part of a command, run from the source root as the
# user does, with build/ standing for DIR (cmocka hidden while hide is set).
run_setup() {
    local dir=$1 w words args=()
    read -ra words <<<"$2"
    for w in "${words[@]:1}"; do
        [ "$w" = build ] && w=$dir
        args+=("$w")
    done
    if ! (cd "$src" && "${hide[@]}" "$meson" "${args[@]}") >"$tmp/setup.log" 2>&1; then
        echo "-- $2 (build = $dir):" >&2; cat "$tmp/setup.log" >&2; return 1
    fi
}
# lists DIR TEST: `meson test --list` in DIR names TEST (lacks: does not).
lists() { local out; out=$("$meson" test -C "$1" --list 2>&1) || true; grep -q " / $2\$" <<<"$out"; }
lacks() { ! lists "$@"; }
werror_true() { local out; out=$("$meson" configure "$1"); grep -Eq '^ *werror +true ' <<<"$out"; }
hide_cmocka() { hide=(env -u PKG_CONFIG_PATH PKG_CONFIG_LIBDIR="$pcdir" PATH="$nocmake:$PATH"); }

# 1. The README's order: the first command's configuration, without cmocka, then the second's.
hide_cmocka
while read -r seg; do check "first command: $seg (cmocka missing)" run_setup "$tmp/order" "$seg"; done < <(setups "$cmd1")
check "... that folder has no cmocka test ('api')" lacks "$tmp/order" api
check "... but has 'cmocka-missing'" lists "$tmp/order" cmocka-missing
hide=()
while read -r seg; do check "second command: $seg (cmocka installed)" run_setup "$tmp/order" "$seg"; done < <(setups "$cmd2")
check "... then the folder has the cmocka tests ('api')" lists "$tmp/order" api
check "... and no 'cmocka-missing'" lacks "$tmp/order" cmocka-missing

# 2. The second command alone on a new folder (a fresh clone has no build/).
while read -r seg; do check "second command on a new folder: $seg" run_setup "$tmp/fresh" "$seg"; done < <(setups "$cmd2")
check "... has the cmocka tests ('api')" lists "$tmp/fresh" api

# 3. .ci/run's order (build/ configured -Dwerror=true first) with cmocka still missing after the
# set-up: the option is kept, and the tests fail saying why. (Only 'cmocka-missing' is run, not
# rebuilding: the whole `meson test` would first build the project, for 'api-docs'.)
hide_cmocka
check "meson setup build -Dwerror=true (cmocka missing)" run_setup "$tmp/ci" "meson setup build -Dwerror=true"
while read -r seg; do check "second command: $seg (cmocka still missing)" run_setup "$tmp/ci" "$seg"; done < <(setups "$cmd2")
hide=()
check "... keeps werror=true" werror_true "$tmp/ci"
check "... its test 'cmocka-missing' fails" \
    bash -c '! "$0" test -C "$1" --no-rebuild --print-errorlogs cmocka-missing >"$2" 2>&1' "$meson" "$tmp/ci" "$tmp/out"
check "... saying that cmocka was not found and what to do" \
    grep -q "cmocka was not found when $tmp/ci was configured.*install libcmocka-dev (scripts/setup-debian.sh --tests) and run meson setup --reconfigure $tmp/ci" "$tmp/out"

echo "$passed passed, $failures failed"
[ "$failures" = 0 ]
