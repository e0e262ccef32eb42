#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The data-parallel benchmark of docs/distributed.md: on one machine, N = 2 ranks of 1 thread
# each (mpirun, K = 2) against N = 1 process of 2 threads (K = 1), the laptop and Koch
# architectures at batch 180; prints each RESULT line and the step-time ratio. Needs an idle
# machine with 2 cores and a build with the comm-mpi module (tests/bench_dist).
# Usage: scripts/bench_dist.sh [BUILD_DIR=build] [STEPS=5] [BACKEND=cpu]
set -euo pipefail
build=${1:-build} steps=${2:-5} backend=${3:-cpu}
exe=$build/tests/bench_dist
[ -x "$exe" ] || { echo "no $exe (meson compile -C $build bench_dist)" >&2; exit 1; }
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_pml=ob1 OMPI_MCA_btl=self,vader OMPI_MCA_btl_vader_single_copy_mechanism=none
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
mpirun=$(command -v mpirun.openmpi || command -v mpirun)
field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$2"; }
for arch in laptop koch; do
    one=$(OPENBLAS_NUM_THREADS=2 OMP_NUM_THREADS=2 "$exe" "$arch" 180 "$steps" 2 --solo --backend "$backend" | grep RESULT)
    two=$("$mpirun" -np 2 --bind-to core "$exe" "$arch" 180 "$steps" 1 --backend "$backend" | grep RESULT)
    echo "$one"
    echo "$two"
    awk -v a="$(field ms_per_step "$two")" -v b="$(field ms_per_step "$one")" -v arch="$arch" \
        'BEGIN { printf "%s, batch 180: N = 2 x 1 thread / N = 1 x 2 threads: step time ratio %.3f\n", arch, a / b }'
done
