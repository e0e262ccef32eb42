#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The data-parallel benchmark of docs/distributed.md, on one machine:
#  1. the collectives alone (tests/bench_comm): the all-to-all and all-gather of the Koch
#     network's exchange at 2 ranks (a 110.8 MB buffer per rank, 55.4 MB sent), and the whole
#     exchange (the two in 4 MiB buckets, with slicing and folding), through Open MPI's shared
#     memory with single copy (CMA, where this machine allows it) and without, and through the
#     in-process communicator; bytes sent per rank and second;
#  2. the laptop and Koch architectures at batch 180 (tests/bench_dist): N = 1 process of 2
#     threads (K = 1) against N = 2 ranks of 1 thread (K = 2), those with the exchange
#     overlapped with the backward pass and without, in the same run; the step times and their
#     ratios, the bytes each rank sends per step, the exchange's exposed time (what the step
#     waits for it, on the rank that finished its backward pass last) and its share of the step,
#     the load imbalance (wait), and the effective exchange rate; against the goals (exposed
#     <= 2 % of a Koch step, >= 2 GB/s effective);
#  3. Koch, overlapped, in buckets of BUCKETS MiB (the default bucket is 4 MiB).
# Needs an idle machine with 2 cores and a build with the comm-mpi module.
# Usage: scripts/bench_dist.sh [BUILD_DIR=build] [STEPS=3] [BACKEND=cpu] [BUCKETS="1 4 16 64"]
set -euo pipefail
build=${1:-build} steps=${2:-3} backend=${3:-cpu} buckets=${4:-"1 4 16 64"}
exe=$build/tests/bench_dist comm_exe=$build/tests/bench_comm
for e in "$exe" "$comm_exe"; do
    [ -x "$e" ] || { echo "no $e (meson compile -C $build)" >&2; exit 1; }
done
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_pml=ob1 OMPI_MCA_btl=self,vader
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
export SIAMESE_BACKEND_DIR=${SIAMESE_BACKEND_DIR:-$build/comm}
mpirun=$(command -v mpirun.openmpi || command -v mpirun)
field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$2"; }
echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(getconf _NPROCESSORS_ONLN) cores; load: $(cut -d' ' -f1-3 /proc/loadavg)"

# Single copy (the receiver reads the sender's memory, process_vm_readv) where the container
# allows it; otherwise every byte is copied twice through a shared buffer.
if OMPI_MCA_btl_vader_single_copy_mechanism=cma "$mpirun" -np 2 "$comm_exe" raw 1 1 >/dev/null 2>&1; then
    copy=cma
else
    copy=none
fi
export OMPI_MCA_btl_vader_single_copy_mechanism=$copy
echo "Open MPI shared memory single copy: $copy"

echo "== 1. the collectives alone: 110.8 MB buffers, 55.4 MB sent per rank"
mechs=$copy
[ "$copy" = cma ] && mechs="cma none"
for mech in $mechs; do
    for mode in raw mpi; do # MPI's own blocking calls; the adapter's (the trainer's) polled ones
        OMPI_MCA_btl_vader_single_copy_mechanism=$mech "$mpirun" -np 2 --bind-to core \
            "$comm_exe" "$mode" 110.8 5 | grep RESULT | sed "s/^RESULT /RESULT single_copy=$mech /"
    done
done
"$comm_exe" local 2 110.8 5 | grep RESULT

echo "== 2. steps at batch 180, N = 1 x 2 threads against N = 2 x 1 thread"
for arch in laptop koch; do
    one=$(OPENBLAS_NUM_THREADS=2 OMP_NUM_THREADS=2 "$exe" "$arch" 180 "$steps" 2 --solo --backend "$backend" | grep RESULT)
    off=$("$mpirun" -np 2 --bind-to core "$exe" "$arch" 180 "$steps" 1 --backend "$backend" --overlap 0 | grep RESULT)
    on=$("$mpirun" -np 2 --bind-to core "$exe" "$arch" 180 "$steps" 1 --backend "$backend" --overlap 1 | grep RESULT)
    printf '%s\n%s\n%s\n' "$one" "$off" "$on"
    awk -v one="$(field ms_per_step "$one")" -v off="$(field ms_per_step "$off")" \
        -v on="$(field ms_per_step "$on")" -v eoff="$(field exposed_ms "$off")" \
        -v eon="$(field exposed_ms "$on")" -v poff="$(field exposed_pct "$off")" \
        -v pon="$(field exposed_pct "$on")" -v roff="$(field exchange_mb_s "$off")" \
        -v ron="$(field exchange_mb_s "$on")" -v arch="$arch" 'BEGIN {
        printf "%s: step time N = 2 / N = 1: %.3f without overlap, %.3f with; overlap on / off: %.3f\n", arch, off / one, on / one, on / off
        printf "%s: exposed exchange %.1f ms (%.2f %%) without overlap, %.1f ms (%.2f %%) with (off / on: %.1f)\n", arch, eoff, poff, eon, pon, (eon > 0 ? eoff / eon : 0)
        if (arch == "koch") {
            printf "goal: exposed exchange <= 2 %% of a Koch step: %.2f %% without overlap (%s), %.2f %% with (%s)\n", poff, (poff <= 2 ? "met" : "NOT met"), pon, (pon <= 2 ? "met" : "NOT met")
            printf "goal: effective exchange >= 2000 MB/s: %.0f MB/s without overlap (%s), %.0f with (%s)\n", roff, (roff >= 2000 ? "met" : "NOT met"), ron, (ron >= 2000 ? "met" : "NOT met")
        } }'
done

echo "== 3. Koch, overlapped, by bucket size"
for mb in $buckets; do
    "$mpirun" -np 2 --bind-to core "$exe" koch 180 "$steps" 1 --backend "$backend" --overlap 1 \
        --bucket $((mb * 1048576)) | grep RESULT
done
