#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Stages, under .device/ in the repository (git-ignored), what the GPU machine needs and lacks:
# the CUDA-enabled build's programs (test_cuda_backend, test_cuda_parity, bench_step,
# siamese-train), libsiamese.so and libsiamese-cuda.so, the shared libraries they need that a
# bare CUDA image lacks (OpenBLAS, libspng, libzip, cmocka, ... found with ldd), and the two
# Omniglot zips. NOT cuDNN or cuBLAS: the GPU machine has them in its Python wheels, and
# run-all.sh finds them there. Then: device run with carry [".device"] (docs/cuda.md).
#
# Layout: .device/payload.tar.xz (bin/, lib/), .device/data/*.zip, .device/needed-vendor-libs.txt.
# Usage: scripts/device/stage.sh [BUILD_DIR=build-cuda] [DATA_DIR=$SIAMESE_OMNIGLOT_DIR, else data/omniglot]
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${1:-build-cuda}
data=${2:-${SIAMESE_OMNIGLOT_DIR:-data/omniglot}}
stage=.device
limit_mib=${SIAMESE_STAGE_LIMIT_MIB:-56} # the device tool carries 64 MiB with the tree

die() { echo "stage: $*" >&2; exit 1; }
[ -f "$build/build.ninja" ] || die "no meson build in '$build' (meson setup $build)"
echo "== building what the device run needs in $build"
meson compile -C "$build" siamese-cuda siamese test_cuda_backend test_cuda_parity bench_step \
    siamese-train test_comm_nccl >/dev/null || die "the build failed"
[ -f "$build/backends/cuda/libsiamese-cuda.so" ] || die "'$build' has no cuda module (-Dcuda)"

rm -rf "$stage"
mkdir -p "$stage/bin" "$stage/lib" "$stage/data"
cp "$build/tests/test_cuda_backend" "$build/tests/test_cuda_parity" "$build/tests/bench_step" \
    "$build/examples/siamese-train" "$build/tests/test_comm_nccl" "$stage/bin/"
cp "$build/backends/cuda/libsiamese-cuda.so" "$stage/lib/"
# the NCCL communicator, when built (its one-rank check: test_comm_nccl; NCCL from the wheels)
[ -f "$build/comm/libsiamese-comm-nccl.so" ] && cp "$build/comm/libsiamese-comm-nccl.so" "$stage/lib/"
cp -P "$build"/lib/libsiamese.so "$build"/lib/libsiamese.so.[0-9] "$build"/lib/libsiamese.so.[0-9]*.[0-9]*[0-9] "$stage/lib/"

# Every library the programs and the module load, less the C runtime (every image has it) and
# the NVIDIA ones (the driver's, and cuDNN/cuBLAS/NCCL from the wheels there).
skip='^(linux-vdso|ld-linux|libc\.|libm\.|libdl\.|libpthread\.|librt\.|libgcc_s\.|libstdc\+\+\.|libcuda|libcudnn|libcublas|libnccl|libnvidia|libsiamese)'
for f in "$stage"/bin/* "$stage/lib/libsiamese-cuda.so" "$stage"/lib/libsiamese.so.*.*.*; do
    LD_LIBRARY_PATH="$build/lib" ldd "$f" | awk '$2 == "=>" && $3 ~ /^\// { print $1, $3 }'
done | sort -u | while read -r name path; do
    if [[ $name =~ $skip ]]; then continue; fi
    cp -L "$path" "$stage/lib/$name"
done

# The module's NEEDED vendor libraries, for run-all.sh to look for (it has no readelf there).
for m in "$stage/lib/libsiamese-cuda.so" "$stage"/lib/libsiamese-comm-nccl.so; do
    [ -f "$m" ] && readelf -d "$m" | sed -n 's/.*(NEEDED).*\[\(.*\)\].*/\1/p'
done | grep -E '^lib(cudnn|cublas|nccl)' | sort -u >"$stage/needed-vendor-libs.txt"

for z in images_background.zip images_evaluation.zip; do
    if [ -f "$data/$z" ]; then cp "$data/$z" "$stage/data/"; else echo "stage: warning: no $data/$z" >&2; fi
done
strip --strip-unneeded "$stage"/bin/* "$stage"/lib/* 2>/dev/null || true

# OpenBLAS alone is 35 MiB: the programs and libraries travel as one xz archive (about a
# quarter of that), which run-all.sh unpacks there with python3's tarfile (no xz needed).
echo "== compressing bin/ and lib/ (xz)"
tar -C "$stage" -cf - bin lib | xz -T0 -6 >"$stage/payload.tar.xz"
rm -rf "$stage/bin" "$stage/lib"

echo "== staged in $stage:"
(cd "$stage" && find . -type f -printf '%8k KiB  %p\n' | sort -k3)
echo "vendor libraries the module needs (from the GPU machine's wheels): $(tr '\n' ' ' <"$stage/needed-vendor-libs.txt")"
total_k=$(du -sk "$stage" | cut -f1)
tree_k=$(git ls-files -co --exclude-standard -z | du -ck --files0-from=- 2>/dev/null | tail -1 | cut -f1)
echo "total: $((total_k / 1024)) MiB staged + $((tree_k / 1024)) MiB working tree (limit 64 MiB)"
[ $((total_k / 1024)) -le "$limit_mib" ] || die "staged $((total_k / 1024)) MiB, more than $limit_mib MiB"
echo "carry: [\".device\"]   commands (two calls, the second optional): bash scripts/device/run-all.sh parity-bench; bash scripts/device/run-all.sh reference"
