#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Builds libsiamese's Debian packages and tests them as a user gets them (docs/packaging.md).
#
#   scripts/build-debs.sh [OPTIONS] OUTDIR
#
#  1. copies the source tree (tracked and untracked files git does not ignore; no build
#     folders) into a work folder, so that the checkout stays as it is;
#  2. dpkg-buildpackage -us -uc -b there (with --profiles, e.g. pkg.libsiamese.cuda or
#     nocheck), then moves the .deb files into OUTDIR;
#  3. lintian on the result (debian/source/lintian-overrides and the binary packages'
#     overrides say why each remaining tag is there);
#  4. builds a fresh Debian chroot with mmdebstrap (the suite this machine runs), installs
#     every .deb into it with apt-get, and runs debian/tests/ there: tests/pkgconfig/consumer.c
#     built through pkg-config, the tools, siamese-train under mpirun -np 2 through the MPI
#     module, and `import siamese` where python3-siamese was built;
#  5. prints the .deb files with their sizes and lintian's output.
#
# Options:
#   --profiles LIST   build profiles, comma-separated (DEB_BUILD_PROFILES; docs/packaging.md)
#   --no-chroot       stop after the build and lintian (no mmdebstrap)
#   --mirror URL      the chroot's Debian mirror (default: mmdebstrap's, deb.debian.org)
#   --keep            keep the work folder (printed at the end)
# Needs root, or sudo without a password, for the chroot (mmdebstrap --mode=root), the Debian
# mirror, and the packages `scripts/setup-debian.sh --packaging` installs (it says which are
# missing). Exit status 0 only when every step passed.
set -euo pipefail

usage() { sed -n '3,27s/^# \{0,1\}//p' "$0"; }
profiles='' chroot_test=1 mirror='' keep=0 out='' asroot=()
while [ $# -gt 0 ]; do
    case $1 in
        --profiles) profiles=${2:?--profiles needs a list}; shift ;;
        --profiles=*) profiles=${1#*=} ;;
        --no-chroot) chroot_test=0 ;;
        --mirror) mirror=${2:?--mirror needs a URL}; shift ;;
        --keep) keep=1 ;;
        -h|--help) usage; exit 0 ;;
        -*) echo "build-debs: unknown option '$1' (see --help)" >&2; exit 2 ;;
        *) [ -z "$out" ] || { echo "build-debs: one OUTDIR only" >&2; exit 2; }; out=$1 ;;
    esac
    shift
done
[ -n "$out" ] || { usage >&2; exit 2; }

src=$(cd "$(dirname "$0")/.." && pwd)
say() { printf 'build-debs: %s\n' "$*"; }
die() { printf 'build-debs: %s\n' "$*" >&2; exit 1; }
start=$(date +%s)
stamp() { printf '%dm%02ds' $((($(date +%s) - start) / 60)) $((($(date +%s) - start) % 60)); }

for tool in dpkg-buildpackage dh lintian help2man; do
    command -v "$tool" >/dev/null || die "no $tool: scripts/setup-debian.sh --packaging"
done
if [ "$chroot_test" = 1 ]; then
    command -v mmdebstrap >/dev/null ||
        die "no mmdebstrap: scripts/setup-debian.sh --packaging (or --no-chroot)"
    # root for mmdebstrap --mode=root: ours, or sudo's without a password (CI users)
    if [ "$(id -u)" != 0 ]; then
        sudo -n true 2>/dev/null ||
            die "the chroot needs root or sudo without a password (or --no-chroot)"
        asroot=(sudo -n)
    fi
fi

mkdir -p "$out"
out=$(cd "$out" && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/siamese-debs.XXXXXX")
cleanup() {
    if [ "$keep" = 1 ]; then say "work folder kept: $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

# --- 1. a copy of the tree ------------------------------------------------------------------
version=$(python3 "$src/scripts/version.py")
tree=$work/libsiamese-$version
mkdir -p "$tree"
if git -C "$src" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    # what a commit would hold plus new files, without ignored outputs, deleted files or build
    # folders git does not ignore (a top folder holding meson-private: obj-*, a mybuild/)
    (cd "$src" && git ls-files -z --cached --others --exclude-standard |
        xargs -0 sh -c 'for f; do
            [ -e "$f" ] && ! [ -d "${f%%/*}/meson-private" ] && printf "%s\0" "$f"
        done; true' sh |
        tar --null -T - -cf -) | tar -xf - -C "$tree"
else
    tar -C "$src" --exclude='./build*' --exclude=./obj-* -cf - . | tar -xf - -C "$tree"
fi
say "source copied to $tree ($(stamp))"
# the source package (3.0 native: a tarball of the copy) for lintian's source checks, made
# before the build writes into the copy
(cd "$work" && dpkg-source -b "libsiamese-$version") >"$work/source.log" 2>&1 ||
    { cat "$work/source.log" >&2; die "dpkg-source -b failed"; }

# --- 2. the packages --------------------------------------------------------------------------
# debian/control's Build-Depends are all in scripts/setup-debian.sh's lists (the one list of
# packages; --packaging installs them), the virtual ones by the package that provides them.
listed=" $("$src/scripts/setup-debian.sh" --list --tests --packaging |
    sed 's/^[a-z]*: //' | tr '\n' ' ') "
build_depends() {
    sed -n '/^Build-Depends:/,/^[A-Z][A-Za-z-]*:/{/^Standards-Version:/d; s/^Build-Depends://; p}' \
        "$tree/debian/control" | grep -v '^ *#' | tr ',' '\n' | awk '{print $1}' |
        sed 's/:any$//; s/^debhelper-compat$/debhelper/; s/^dh-sequence-python3$/dh-python/'
}
unlisted=''
for dep in $(build_depends); do
    case $listed in *" $dep "*) ;; *) unlisted="$unlisted $dep" ;; esac
done
[ -z "$unlisted" ] ||
    die "debian/control Build-Depends on$unlisted: add to scripts/setup-debian.sh's packaging list"
(cd "$tree" && dpkg-checkbuilddeps ${profiles:+-P"$profiles"}) ||
    die "missing build dependencies (above): scripts/setup-debian.sh --packaging"
say "dpkg-buildpackage -us -uc -b${profiles:+ -P$profiles} (log: $work/build.log)"
if ! (cd "$tree" && dpkg-buildpackage -us -uc -b ${profiles:+-P"$profiles"}) \
        >"$work/build.log" 2>&1; then
    tail -n 60 "$work/build.log" >&2
    keep=1
    die "dpkg-buildpackage failed (last lines above; whole log in $work/build.log)"
fi
changes=$(ls "$work"/libsiamese_"$version"_*.changes)
debs=$(ls "$work"/*.deb)
rm -f "$out"/*.deb
# shellcheck disable=SC2086 # a list of paths without spaces (package file names)
cp $debs "$out"/
say "built $(echo "$debs" | wc -w) packages ($(stamp))"

# --- 3. lintian -------------------------------------------------------------------------------
# every tag down to pedantic shown; errors and warnings fail the script. Its note about running
# as root (the chroot needs root) is left out.
set +e
lintian --display-level '>=pedantic' --tag-display-limit 0 --fail-on error,warning \
    "$work/libsiamese_$version.dsc" "$changes" >"$work/lintian.raw" 2>&1
lintian_rc=$?
set -e
sed 's/running with root privileges is not recommended!//; /^$/d' "$work/lintian.raw" \
    >"$work/lintian.txt"
say "lintian done ($(stamp))"

# --- 4. a fresh chroot, the packages installed, debian/tests run ------------------------------
chroot_rc=0
if [ "$chroot_test" = 1 ]; then
    suite=$(. /etc/os-release && echo "${VERSION_CODENAME:-stable}")
    mkdir -p "$work/chroot-in"
    # the packages without their detached debug symbols (-dbgsym)
    find "$out" -maxdepth 1 -name '*.deb' ! -name '*-dbgsym_*' -exec cp {} "$work/chroot-in/" \;
    cp -r "$tree/debian/tests" "$work/chroot-in/tests"
    cp "$tree/tests/pkgconfig/consumer.c" "$work/chroot-in/"
    # what debian/tests/control's Depends add to the packages themselves
    extra=gcc,libc6-dev,pkg-config,mpi-default-bin,ca-certificates
    cp "$src/scripts/debs-chroot-tests.sh" "$work/chroot-in/"
    say "mmdebstrap $suite: install the packages, run debian/tests (log: $work/chroot.log)"
    # --format=null: mmdebstrap makes the chroot in a temporary folder, mounts what the hooks
    # need (/proc, /dev), unmounts and deletes it itself, also when a hook fails.
    # shellcheck disable=SC2016 # $1 is mmdebstrap's (the chroot's root) in each hook
    "${asroot[@]}" mmdebstrap --mode=root --format=null --variant=apt --include="$extra" \
        --customize-hook="cp -r '$work/chroot-in' \"\$1/tmp/in\"" \
        --customize-hook='chroot "$1" /tmp/in/debs-chroot-tests.sh /tmp/in' \
        "$suite" /dev/null ${mirror:+"$mirror"} >"$work/chroot.log" 2>&1 || chroot_rc=$?
    say "chroot test $([ $chroot_rc = 0 ] && echo passed || echo FAILED) ($(stamp))"
fi

# --- 5. the report ----------------------------------------------------------------------------
echo
echo "== packages ($out)"
(cd "$out" && for f in *.deb; do
    printf '%8s  %s\n' "$(du -k "$f" | cut -f1)K" "$f"
done)
echo
echo "== lintian --display-level '>=pedantic' of the source and binary packages (exit $lintian_rc)"
if [ -s "$work/lintian.txt" ]; then cat "$work/lintian.txt"; else echo "(no tags)"; fi
if [ "$chroot_test" = 1 ]; then
    echo
    echo "== chroot test (exit $chroot_rc)"
    sed -n '/^[a-z0-9.+:-]*siamese[a-z0-9.+:-]*\t/p; /^== /,$p' "$work/chroot.log" |
        grep -v '^I: ' || true
    [ $chroot_rc = 0 ] || { keep=1; echo "(whole log: $work/chroot.log)"; }
fi
echo
say "done in $(stamp)"
[ "$lintian_rc" = 0 ] && [ "$chroot_rc" = 0 ]
