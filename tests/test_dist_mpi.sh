#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Data-parallel training over MPI (Open MPI's mpirun, ranks on this machine, oversubscribed):
#  1. a small architecture, K = 4 shards, 6 steps: mpirun -np 1, 2, 4 (and -np 2 through the
#     comm-mpi module) give the parameters of one process with no communicator, bit for bit;
#     so do -np 2 and 4 with the exchange overlapped (MPI_THREAD_SERIALIZED, and the module)
#     in 64-byte buckets; under MPI_THREAD_FUNNELED the exchange does not overlap;
#  2. one step of the Koch et al. network (batch 4, K = 4), overlapped in the default buckets:
#     -np 2 equals one process, on
#     cpu-blas and, where its module loads, on cpu-dnnl with the default (AUTO) convolutions,
#     whose layers include FFT ones: every rank must choose as the single process did;
#  3. a stalled rank (the survivors' exchanges on their threads): the others get SM_ERR_COMM
#     within the timeout + 1 s, later calls return at once, and the job ends non-zero;
#  4. a killed rank: the job ends non-zero within a bounded time (wrapped in `timeout`);
#  5. saved at -np 2 after 3 steps, resumed at -np 1 and -np 4 for 3 more: equal to 6 steps of
#     one process.
# Usage: test_dist_mpi.sh DIST_RANK MPIRUN [quick]   (quick: without the Koch step)
set -euo pipefail
exe=$1 mpirun=$2 quick=${3:-}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_pml=ob1 OMPI_MCA_btl=self,vader OMPI_MCA_btl_vader_single_copy_mechanism=none
export OMPI_MCA_rmaps_base_oversubscribe=1 OMPI_MCA_mpi_yield_when_idle=1
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0
run() { timeout 120 "$mpirun" --oversubscribe -np "$@"; }
hash_of() { grep -o 'hash [0-9a-f]* loss [0-9a-f]*' "$1" | head -1; }
check_equal() { # name file reference
    local got want
    got=$(hash_of "$2" || true) want=$3
    if [ -n "$got" ] && [ "$got" = "$want" ]; then
        echo "ok: $1: $got"
    else
        echo "FAIL: $1: '$got', expected '$want'"; cat "$2"; fails=$((fails + 1))
    fi
}

check_overlap() { # name file 0|1: whether rank 0's exchange ran on its thread
    if grep -q "^overlap $3\$" "$2"; then
        echo "ok: $1: overlap $3"
    else
        echo "FAIL: $1: expected 'overlap $3'"; cat "$2"; fails=$((fails + 1))
    fi
}

tiny="1x12x12:conv4k3,relu,pool2,conv4k3,relu,flatten,fc8"
# 1. small architecture
"$exe" solo "$tiny" 6 24 4 4 > "$tmp/solo"
ref=$(hash_of "$tmp/solo")
echo "one process, K = 4, 6 steps of 24 pairs ($tiny): $ref"
for np in 1 2 4; do
    run "$np" "$exe" train "$tiny" 6 24 4 4 > "$tmp/np$np" 2>&1 || true
    check_equal "mpirun -np $np, adapter" "$tmp/np$np" "$ref"
done
check_overlap "mpirun -np 2, adapter, MPI_THREAD_FUNNELED" "$tmp/np2" 0
run 2 "$exe" --module train "$tiny" 6 24 4 4 > "$tmp/mod2" 2>&1 || true
check_equal "mpirun -np 2, comm-mpi module" "$tmp/mod2" "$ref"
check_overlap "mpirun -np 2, comm-mpi module" "$tmp/mod2" 1
# the exchange's thread, in buckets of 16 floats (about 30 for this model)
for np in 2 4; do
    SIAMESE_TEST_DM_BUCKET=64 run "$np" "$exe" --serialized train "$tiny" 6 24 4 4 > "$tmp/ser$np" 2>&1 || true
    check_equal "mpirun -np $np, adapter, MPI_THREAD_SERIALIZED, 64-byte buckets" "$tmp/ser$np" "$ref"
    check_overlap "mpirun -np $np, adapter, MPI_THREAD_SERIALIZED" "$tmp/ser$np" 1
done
SIAMESE_TEST_DM_BUCKET=64 run 2 "$exe" --module train "$tiny" 6 24 4 4 > "$tmp/modb2" 2>&1 || true
check_equal "mpirun -np 2, comm-mpi module, 64-byte buckets" "$tmp/modb2" "$ref"

# 2. one Koch step
if [ "$quick" != quick ]; then
    t0=$(date +%s%N)
    "$exe" solo koch 1 4 1 4 > "$tmp/ksolo"
    kref=$(hash_of "$tmp/ksolo")
    echo "one process, Koch, K = 4, one step of 4 pairs: $kref"
    # -np 2 only: -np 1 and 4 are the small architecture's (a Koch rank costs seconds of set-up)
    # overlapped, in the default 4 MiB buckets (27 for Koch's 111 MB)
    run 2 "$exe" --serialized train koch 1 4 1 4 > "$tmp/knp2" 2>&1 || true
    check_equal "Koch, mpirun -np 2, overlapped" "$tmp/knp2" "$kref"
    check_overlap "Koch, mpirun -np 2" "$tmp/knp2" 1
    if SIAMESE_TEST_DM_BACKEND=cpu-dnnl "$exe" solo koch 1 4 1 4 > "$tmp/kdsolo" 2>&1; then
        kdref=$(hash_of "$tmp/kdsolo")
        echo "one process, Koch on cpu-dnnl (AUTO), K = 4, one step of 4 pairs: $kdref"
        SIAMESE_TEST_DM_BACKEND=cpu-dnnl run 2 "$exe" train koch 1 4 1 4 > "$tmp/kdnp2" 2>&1 || true
        check_equal "Koch on cpu-dnnl (AUTO), mpirun -np 2" "$tmp/kdnp2" "$kdref"
    else
        echo "skip: Koch on cpu-dnnl: $(tail -1 "$tmp/kdsolo")"
    fi
    echo "Koch checks: $(awk -v a="$t0" -v b="$(date +%s%N)" 'BEGIN { printf "%.1f", (b - a) / 1e9 }') s"
fi

# 3. a stalled rank
t0=$(date +%s%N)
set +e
timeout 60 "$mpirun" --oversubscribe -np 3 "$exe" --serialized stall 2 > "$tmp/stall" 2>&1
rc=$?
set -e
el=$(awk -v a="$t0" -v b="$(date +%s%N)" 'BEGIN { printf "%.1f", (b - a) / 1e9 }')
grep -E "status|again" "$tmp/stall" || true
n_status=$(grep -c "status SM_ERR_COMM after" "$tmp/stall" || true)
slow=$(awk '/status SM_ERR_COMM after/ { if ($6 > 2 + 1.0) print }' "$tmp/stall")
slow_again=$(awk '/again SM_ERR_COMM after/ { if ($6 > 0.1) print }' "$tmp/stall")
if [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] && [ "$n_status" -ge 1 ] && [ -z "$slow" ] && [ -z "$slow_again" ]; then
    echo "ok: stalled rank: $n_status survivor(s) got SM_ERR_COMM within 2 s + 1 s; job ended with $rc after $el s"
else
    echo "FAIL: stalled rank: rc $rc, $n_status statuses, slow '$slow' '$slow_again'"; cat "$tmp/stall"
    fails=$((fails + 1))
fi

# 4. a killed rank
t0=$(date +%s%N)
set +e
timeout 60 "$mpirun" --oversubscribe -np 3 "$exe" kill 20 > "$tmp/kill" 2>&1
rc=$?
set -e
el=$(awk -v a="$t0" -v b="$(date +%s%N)" 'BEGIN { printf "%.1f", (b - a) / 1e9 }')
if [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ]; then
    echo "ok: killed rank: the job ended with status $rc after $el s (bound 60 s)"
else
    echo "FAIL: killed rank: status $rc after $el s"; cat "$tmp/kill"; fails=$((fails + 1))
fi

# 5. save at N = 2, resume at N = 1 and N = 4
run 2 "$exe" save "$tmp/ck.safetensors" 3 > "$tmp/save" 2>&1 || { cat "$tmp/save"; fails=$((fails + 1)); }
for np in 1 4; do
    run "$np" "$exe" resume "$tmp/ck.safetensors" 3 > "$tmp/res$np" 2>&1 || true
    check_equal "saved at -np 2 after 3 steps, resumed at -np $np for 3" "$tmp/res$np" "$ref"
done
leftovers=$(ls "$tmp" | grep -c '\.tmp\.' || true)
[ "$leftovers" = 0 ] || { echo "FAIL: $leftovers temporary files left"; fails=$((fails + 1)); }

echo "$fails failure(s)"
[ "$fails" = 0 ]
