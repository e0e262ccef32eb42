#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Installs what libsiamese needs on Debian 12 (or a close relative) with apt-get, as root or
# through sudo. The one list of packages: README's commands and CI (.ci/run) both call this.
#
#   scripts/setup-debian.sh            build the library and run the examples
#   scripts/setup-debian.sh --tests    ... and run the whole test suite (cmocka, sanitizers,
#                                      valgrind, ABI check, fuzz smoke test, API reference,
#                                      Open MPI for the data-parallel tests, MPICH's headers,
#                                      pytest for the Python package's tests)
#   scripts/setup-debian.sh --packaging  ... and build the Debian packages (debian/'s
#                                      Build-Depends, lintian, mmdebstrap: scripts/build-debs.sh)
#   scripts/setup-debian.sh --list     print the packages it would need, install nothing
#
# A no-op (no apt-get at all) when every package is installed already. Optional parts are
# installed when Debian has them and said in one line each when it does not; they never fail
# the set-up: oneDNN (the faster cpu-dnnl backend), cairo (the examples' figures), NumPy (the
# Python package, python/siamese, needs it; without it the package's test is a skip), Faiss and
# g++ (the index-faiss module: approximate search of large galleries). The CUDA toolkit is not a
# Debian package here: it is looked for, and its absence said in one line.
set -euo pipefail

required=(meson ninja-build gcc libc6-dev pkg-config python3
          libopenblas-dev libspng-dev libzip-dev zlib1g-dev)
optional=(libdnnl-dev libcairo2-dev fonts-dejavu-core python3-numpy libfaiss-dev g++)
tests=(libcmocka-dev valgrind g++ binutils clang libclang-rt-14-dev abigail-tools doxygen
       openmpi-bin libopenmpi-dev libmpich-dev python3-pytest)
# debian/control's Build-Depends beyond the lists above, and the tools of scripts/build-debs.sh
packaging=(debhelper dh-python help2man lintian mmdebstrap mpi-default-dev libcmocka-dev
           libcairo2-dev python3-numpy python3-pytest)

list_only=0
for arg in "$@"; do
    case $arg in
        --tests) required+=("${tests[@]}") ;;
        --packaging) required+=("${packaging[@]}") ;;
        --list) list_only=1 ;;
        -h|--help) sed -n '2,20s/^# \{0,1\}//p' "$0"; exit 0 ;;
        *) echo "setup-debian.sh: unknown option '$arg' (see --help)" >&2; exit 2 ;;
    esac
done

if [ "$list_only" = 1 ]; then
    echo "required: ${required[*]}"
    echo "optional: ${optional[*]}"
    exit 0
fi

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "ok installed"; }

missing=() missing_optional=()
if command -v dpkg-query >/dev/null 2>&1; then
    for p in "${required[@]}"; do installed "$p" || missing+=("$p"); done
    for p in "${optional[@]}"; do installed "$p" || missing_optional+=("$p"); done
fi

say_cuda() {
    local nvcc=/usr/local/cuda/bin/nvcc
    if [ -x "$nvcc" ] || command -v nvcc >/dev/null 2>&1; then
        echo "setup: CUDA toolkit found: the cuda backend will be built"
    else
        echo "setup: no CUDA toolkit (/usr/local/cuda or nvcc on PATH): no cuda backend (optional)"
    fi
}

if ! command -v apt-get >/dev/null 2>&1; then
    echo "setup: no apt-get on this machine: install by hand the equivalents of" \
         "${required[*]} (optional: ${optional[*]}); meson setup names what is missing"
    say_cuda
    exit 0
fi

if [ ${#missing[@]} -eq 0 ] && [ ${#missing_optional[@]} -eq 0 ]; then
    echo "setup: all packages present"
    say_cuda
    exit 0
fi

sudo=()
if [ "$(id -u)" != 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        sudo=(sudo)
    else
        echo "setup: not root and no sudo: run as root:" >&2
        echo "  apt-get update && apt-get install -y ${missing[*]} ${missing_optional[*]}" >&2
        exit 1
    fi
fi
export DEBIAN_FRONTEND=noninteractive

echo "setup: apt-get update"
"${sudo[@]}" apt-get update -qq

# An optional package this release of Debian lacks is left out, not an error.
available=()
for p in "${missing_optional[@]}"; do
    if apt-cache show "$p" >/dev/null 2>&1; then
        available+=("$p")
    else
        case $p in
            libdnnl-dev) echo "setup: no oneDNN package (libdnnl-dev): no cpu-dnnl backend (optional)" ;;
            libcairo2-dev) echo "setup: no cairo package (libcairo2-dev): examples draw no figures (optional)" ;;
            libfaiss-dev) echo "setup: no Faiss package (libfaiss-dev): no index-faiss module, galleries are searched exactly (optional)" ;;
            *) echo "setup: no package $p (optional)" ;;
        esac
    fi
done

todo=("${missing[@]}" "${available[@]}")
echo "setup: installing ${todo[*]}"
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${todo[@]}" >/dev/null
say_cuda
