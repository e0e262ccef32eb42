#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Downloads Omniglot's official zips (images_background.zip, images_evaluation.zip) from the
# dataset's public repository (github.com/brendenlake/omniglot, folder python/) into a folder,
# ./data/omniglot by default: the folder the example programs look in. Nothing is unpacked;
# libsiamese reads the zips as they are.
#
#   scripts/fetch-omniglot.sh [DEST]
#
# Each file is checked against its pinned MD5 (the sums torchvision pins for the same files,
# in scripts/omniglot.md5) before it takes its name, so DEST never holds a partial or wrong
# file: a download goes to NAME.part, and a mismatch removes it and fails naming both sums.
# A file already in DEST with the right sum is kept and not downloaded again; one with another
# sum is replaced. Needs curl or wget (file:// sources need neither).
#
# Environment, for mirrors and tests:
#   SIAMESE_OMNIGLOT_URL   where the zips are (default below); file:///path works
#   SIAMESE_OMNIGLOT_SUMS  a sums file in md5sum's format instead of scripts/omniglot.md5
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
dest=${1:-data/omniglot}
base=${SIAMESE_OMNIGLOT_URL:-https://raw.githubusercontent.com/brendenlake/omniglot/master/python}
sums=${SIAMESE_OMNIGLOT_SUMS:-$here/omniglot.md5}

die() { echo "fetch-omniglot: $*" >&2; exit 1; }

[ $# -le 1 ] || die "usage: $0 [DEST]"
[ -r "$sums" ] || die "no sums file '$sums'"
command -v md5sum >/dev/null || die "md5sum not found (coreutils)"

fetch() { # URL FILE
    case $1 in
        file://*) cp -- "${1#file://}" "$2" ;;
        *)
            if command -v curl >/dev/null; then
                curl -fL --retry 3 --connect-timeout 30 -o "$2" "$1"
            elif command -v wget >/dev/null; then
                wget -q -O "$2" "$1"
            else
                die "neither curl nor wget is installed (apt-get install curl)"
            fi ;;
    esac
}

md5_of() { md5sum -- "$1" | cut -d' ' -f1; }

mkdir -p -- "$dest"
status=0
while read -r want name; do
    case $want in ''|'#'*) continue ;; esac
    target=$dest/$name
    if [ -f "$target" ] && [ "$(md5_of "$target")" = "$want" ]; then
        echo "$target: present, MD5 $want"
        continue
    fi
    part=$target.part
    rm -f -- "$part"
    echo "$target: downloading $base/$name"
    if ! fetch "$base/$name" "$part"; then
        rm -f -- "$part"
        echo "fetch-omniglot: $name: download failed from $base/$name" >&2
        status=1
        continue
    fi
    got=$(md5_of "$part")
    if [ "$got" != "$want" ]; then
        rm -f -- "$part"
        echo "fetch-omniglot: $name: MD5 $got, expected $want: not kept" >&2
        status=1
        continue
    fi
    mv -f -- "$part" "$target"
    echo "$target: MD5 $want"
done <"$sums"
[ "$status" = 0 ] || exit 1
echo "Omniglot is in $dest: the example programs find it there when run from $(pwd)"
