#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The cuda backend's device check on the GPU machine (docs/cuda.md), in two calls of the device
# tool that each fit its 600-second command limit; the second is optional:
#
#   bash scripts/device/run-all.sh parity-bench   # call 1: parity tests, then the benchmark
#   bash scripts/device/run-all.sh reference      # call 2: the reference run (siamese-train)
#   bash scripts/device/run-all.sh oneshot        # or call 2: the one-shot recipe on the Koch
#                                                 # network (docs/results.md), instead of reference
#
# Each call unpacks what scripts/device/stage.sh put in .device/, finds cuDNN and cuBLAS in the
# machine's Python wheels, and runs its steps, each under a timeout budgeted from the time left
# (SIAMESE_DEVICE_BUDGET_S, default 540 s, minus what has run), so a slow step shortens the ones
# after it instead of overrunning the command. $OUT/summary.txt is written as it goes, one line
# per step as soon as the step ends, so a killed command still returns what it had.
#
# Time budget per step (seconds; each step gets min(its cap, time left - the caps of the steps
# after it); under 10 s left: the step is skipped and the summary says so):
#   parity-bench: unpack + libraries ~10 (not capped) | test_cuda_backend 30 | test_cuda_parity
#                 180 | test_comm_nccl 30 | bench_step TF32 off 90 | bench_step TF32 on 60 |
#                 PyTorch 120 | table 10: 530 of 540
#   reference:    unpack + libraries ~10 | siamese-train: the rest less 10 for the table, with
#                 --time-limit = that less 90 (loading the background set, then evaluating
#                 5 x 150 pairs and saving), so training stops by itself and still evaluates;
#                 the outer timeout is only a backstop
#   oneshot:      the same shape as reference, with SIAMESE_ONESHOT_RESERVE_S (default 150)
#                 kept for loading, the validation checks' last one and the evaluation
#                 (2000 episodes + 5 x 150 pairs)
#
# $OUT holds at most 5 files (the device tool returns 8): parity-bench: summary.txt,
# backend.log, parity.log, bench.log; reference: summary.txt, reference.log,
# reference_loss.csv.
#
# Settings (environment):
#   SIAMESE_DEVICE_BUDGET_S  seconds this call may take (default 540)
#   SIAMESE_BENCH_STEPS      timed steps per benchmark figure (default 10)
#   SIAMESE_BENCH_BATCHES    batch sizes timed (default 180,32)
#   SIAMESE_REF_ITERATIONS   the reference run's --iterations (default the reference's 10000; the time
#                            limit ends it sooner if need be, and the summary says after how many)
#   SIAMESE_REF_BATCH        its batch (default 180)
#   SIAMESE_REF_ARGS         replaces its data arguments (default: the staged Omniglot zips);
#                            the dry run passes synthetic data and a small --arch
#   SIAMESE_REF_RESERVE_S    seconds kept after --time-limit for loading and evaluating (90)
#   SIAMESE_ONESHOT_RECIPE   replaces the one-shot recipe's model and training options (the dry
#                            run passes a small --arch and a few steps); data as SIAMESE_REF_ARGS
#   SIAMESE_ONESHOT_RESERVE_S  as SIAMESE_REF_RESERVE_S for the oneshot phase (150)
#   SIAMESE_DEVICE_SKIP_PARITY=1  no parity step (the dry run's fault runs)
#   SIAMESE_SITE_PACKAGES    folders to search for nvidia/*/lib (default: python3's site dirs)
#   SIAMESE_DEVICE_PROGRAMS  a folder with bin/ and lib/ to use instead of unpacking the payload
#                            (the dry run: tests/test_device_dryrun.sh)
set -uo pipefail
cd "$(dirname "$0")/../.."
t_start=$(date +%s)
phase=${1:-parity-bench}
case $phase in parity-bench | reference | oneshot) ;; *) echo "run-all: the phase is parity-bench, reference or oneshot, not '$phase'"; exit 2 ;; esac
stage=${SIAMESE_DEVICE_DIR:-.device}
out=${OUT:-$stage/out}
budget=${SIAMESE_DEVICE_BUDGET_S:-540}
bench_steps=${SIAMESE_BENCH_STEPS:-10}
batches=${SIAMESE_BENCH_BATCHES:-180,32}
ref_iters=${SIAMESE_REF_ITERATIONS:-10000}
ref_batch=${SIAMESE_REF_BATCH:-180}
b_big=${batches%%,*}
b_small=${batches##*,}
mkdir -p "$out"
summary=$out/summary.txt
elapsed() { echo $(($(date +%s) - t_start)); }
say() { echo "[$(elapsed) s] $*"; }
# A line for the summary, written at once (a killed command keeps it) and echoed.
note() { printf '%s\n' "$*" >>"$summary"; say "$*"; }
verdict() { case $1 in 0) echo passed ;; 77) echo SKIPPED ;; 124 | 137) echo "TIMED OUT" ;; 125) echo "skipped (no time left)" ;; *) echo "FAILED (exit $1)" ;; esac; }
# step_time CAP RESERVE: the seconds a step may take (0: too little left to start it).
step_time() {
    local t=$((budget - $(elapsed) - $2))
    [ "$t" -gt "$1" ] && t=$1
    [ "$t" -lt 10 ] && t=0
    echo "$t"
}
# run_step NAME CAP RESERVE LOG COMMAND...: runs it under its budget, appends its output to LOG,
# notes the verdict and the seconds it took; sets rc.
run_step() {
    local name=$1 cap=$2 reserve=$3 log=$4 t t0
    shift 4
    t=$(step_time "$cap" "$reserve")
    if [ "$t" = 0 ]; then
        rc=125
        note "$(printf '%-34s %s' "$name" "$(verdict 125)")"
        return
    fi
    say "== $name (up to $t s)"
    t0=$(date +%s)
    timeout -k 5 "$t" "$@" >>"$log" 2>&1
    rc=$?
    note "$(printf '%-34s %s, %d s of %d' "$name" "$(verdict $rc)" $(($(date +%s) - t0)) "$t")"
}

: >"$summary"
note "==== cuda device run, phase $phase, budget $budget s ($(date -u +%FT%TZ)) ===="

# ---- the programs: unpacked outside the tree (python3's tarfile needs no xz) ----
if [ -n "${SIAMESE_DEVICE_PROGRAMS:-}" ]; then
    dev=$(realpath "$SIAMESE_DEVICE_PROGRAMS")
    needed=/dev/null
else
    [ -f "$stage/payload.tar.xz" ] || { note "run-all: nothing staged in $stage (scripts/device/stage.sh, then carry .device)"; exit 2; }
    needed=$(realpath "$stage/needed-vendor-libs.txt")
    dev=${SIAMESE_UNPACK_DIR:-/tmp/siamese-device}
    rm -rf "$dev" && mkdir -p "$dev"
    python3 -c 'import sys, tarfile; kw = {"filter": "tar"} if hasattr(tarfile, "tar_filter") else {}; tarfile.open(sys.argv[1]).extractall(sys.argv[2], **kw)' \
        "$stage/payload.tar.xz" "$dev" || { note "run-all: cannot unpack the payload"; exit 2; }
    say "unpacked the staged programs into $dev"
fi
data=$(realpath -m "$stage/data")

# ---- cuDNN and cuBLAS from the wheels ----
sites=${SIAMESE_SITE_PACKAGES:-$(python3 -c 'import site; print(" ".join(site.getsitepackages() + [site.getusersitepackages()]))' 2>/dev/null)}
vendor_dirs=""
missing=""
while read -r lib; do
    [ -n "$lib" ] || continue
    found=""
    for s in $sites; do
        [ -d "$s/nvidia" ] || continue
        found=$(find -L "$s/nvidia" -maxdepth 4 -name "$lib" -print -quit 2>/dev/null)
        [ -n "$found" ] && break
    done
    if [ -n "$found" ]; then
        say "found $lib: $found"
        d=$(dirname "$found")
        case ":$vendor_dirs:" in *":$d:"*) ;; *) vendor_dirs="$vendor_dirs:$d" ;; esac
    elif ldconfig -p 2>/dev/null | grep -q "$lib"; then
        say "found $lib in the system's library cache"
    else
        missing="$missing $lib"
    fi
done <"$needed"
[ -n "$missing" ] && note "NOT FOUND (searched nvidia/ under: $sites):$missing"
# Python keeps the machine's own libraries: the staged ones (Debian's libz, libcrypto, ...) are
# older than what its modules may need.
python_ldp=${LD_LIBRARY_PATH:-}
export LD_LIBRARY_PATH="$dev/lib$vendor_dirs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export SIAMESE_BACKEND_DIR=$dev/lib
say "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
if command -v nvidia-smi >/dev/null; then
    note "GPU: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | head -1)"
else
    note "GPU: no nvidia-smi here"
fi

res() { # backend tf32 what key [batch] -> value of the first matching RESULT line in bench.log
    awk -v b="$1" -v t="$2" -v w="$3" -v k="$4" -v n="${5:-}" '
        $1 == "RESULT" { delete f; for (i = 2; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] }
            if (f["backend"] == b && f["tf32"] == t && f["what"] == w && (n == "" || f["batch"] == n)) { print f[k]; exit } }' "$out/bench.log" 2>/dev/null
}
# The first failure message a log holds (the library's sm_last_error as the programs print it),
# not the library's own log lines ("# ...").
first_error() { grep -v '^#' "$1" 2>/dev/null | grep -m1 -E 'SM_ERR_|cuda backend:|FAILED|failed|error' | cut -c1-300; }

if [ "$phase" = parity-bench ]; then
    # ---- parity (caps after it: 180 + 90 + 60 + 120 + 10) ----
    if [ "${SIAMESE_DEVICE_SKIP_PARITY:-0}" = 1 ]; then
        note "parity: skipped (SIAMESE_DEVICE_SKIP_PARITY=1)"
    else
        run_step "parity (test_cuda_backend)" 30 490 "$out/backend.log" "$dev/bin/test_cuda_backend"
        grep -E '^# ' "$out/backend.log"
        run_step "parity (test_cuda_parity)" 180 310 "$out/parity.log" "$dev/bin/test_cuda_parity"
        rc_parity=$rc
        grep -E 'worst|TF32:|\[  FAILED|log: .*TF32 off' "$out/parity.log" | head -40
        grep -E 'worst gradient rel err \(float32\)|TF32: loss rel err|worst op rel err' "$out/parity.log" |
            sed 's/^# */  /' >>"$summary"
        case $rc_parity in 0 | 77 | 125) ;; *) note "  first failure: $(grep -m1 -B3 -E '\[  (FAILED|ERROR) ' "$out/parity.log" | tr '\n' ' ' | cut -c1-400)" ;; esac
    fi

    # ---- comm-nccl on one GPU, one rank (all one GPU can check; docs/distributed.md) ----
    if [ -x "$dev/bin/test_comm_nccl" ]; then
        run_step "nccl, one rank (test_comm_nccl)" 30 280 "$out/backend.log" "$dev/bin/test_comm_nccl"
        grep -E '^(nccl|SKIP|FAIL)' "$out/backend.log" | sed 's/^/  /' | tee -a "$summary"
    fi

    # ---- benchmark ----
    : >"$out/bench.log"
    run_step "bench_step cuda, TF32 off" 90 190 "$out/bench.log" \
        "$dev/bin/bench_step" "$bench_steps" "$batches" cuda 0 "$b_big"
    if [ $rc = 0 ]; then
        run_step "bench_step cuda, TF32 on" 60 130 "$out/bench.log" \
            "$dev/bin/bench_step" "$bench_steps" "$batches" cuda 1 "$b_big"
    else
        note "  cuda unusable or failing: $(first_error "$out/bench.log")"
    fi
    LD_LIBRARY_PATH=$python_ldp PYTHONUNBUFFERED=1 run_step "PyTorch, same network" 120 10 \
        "$out/bench.log" python3 scripts/device/bench_torch.py --steps "$bench_steps" --batches "$batches"
    [ $rc = 0 ] || note "  torch: $(tail -n 1 "$out/bench.log" | cut -c1-200)"

    cell() { echo "${1:--}"; }
    ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "" || b == 0) print "-"; else printf "%.2f", a / b }'; }
    row() { printf '%-28s %11s %11s %11s %11s\n' "$@"; }
    {
        echo
        row "ms/step, pairs/s" cuda "cuda TF32" torch "torch TF32"
        for b in $b_big $b_small; do
            row "train step, batch $b" "$(cell "$(res cuda 0 step ms "$b")")" "$(cell "$(res cuda 1 step ms "$b")")" \
                "$(cell "$(res torch 0 step ms "$b")")" "$(cell "$(res torch 1 step ms "$b")")"
        done
        row "predictions per second" "$(cell "$(res cuda 0 predict per_s)")" "$(cell "$(res cuda 1 predict per_s)")" \
            "$(cell "$(res torch 0 predict per_s)")" "$(cell "$(res torch 1 predict per_s)")"
        for b in $b_big $b_small; do
            row "torch ms / ours, batch $b" "$(ratio "$(res torch 0 step ms "$b")" "$(res cuda 0 step ms "$b")")" \
                "$(ratio "$(res torch 1 step ms "$b")" "$(res cuda 1 step ms "$b")")" "" "(> 1: ours faster)"
        done
        echo "(reference ms/step for call 2: $(cell "$(res cuda 0 step ms "$b_big")") at batch $b_big)"
    } >>"$summary"
else
    # ---- the training runs: the data as staged (or SIAMESE_REF_ARGS) ----
    if [ -n "${SIAMESE_REF_ARGS:-}" ]; then
        read -r -a data_args <<<"$SIAMESE_REF_ARGS"
    elif [ -f "$data/images_background.zip" ]; then
        data_args=(--data "$data/images_background.zip" --eval-data "$data/images_evaluation.zip")
    else
        data_args=()
        note "$phase run: no Omniglot zips staged in $data"
    fi
fi
if [ "$phase" = oneshot ] && [ ${#data_args[@]} -gt 0 ]; then
    # ---- the GPU one-shot recipe (docs/results.md): the Koch network's layers with GroupNorm
    # (8 groups) after each convolution, trained with the CPU preset's levers (the softmax
    # P x K loss, rotated classes) on P x K batches with He's initialisation, a warm-up then a
    # cosine learning rate that reaches its floor at the time limit, Koch's affine distortions,
    # and the checkpoint kept (and the score calibrated) by 20-way within-alphabet episodes on 5
    # held-out background alphabets; evaluated on 2000 within-alphabet 20-way episodes of the
    # evaluation set and 5 x 150 random pairs at the calibrated 0.5 ----
    if [ -n "${SIAMESE_ONESHOT_RECIPE:-}" ]; then
        read -r -a recipe <<<"$SIAMESE_ONESHOT_RECIPE"
    else
        recipe=(--arch "1x105x105:conv64k10,gn8,relu,pool2,conv128k7,gn8,relu,pool2,conv128k4,gn8,relu,pool2,conv256k5,gn8,relu,flatten,fc4096"
                --pk-loss softmax --rotate-classes --init he --pk 32,4 --lr 3e-4 --warmup 200 --schedule cosine
                --min-lr-factor 0.02 --augment --val-alphabets 5 --val-episodes 200
                --validate-every 1000 --iterations 1000000 --episodes 2000 --way 20 --shot 1
                --within-alphabet)
    fi
    t=$(step_time 100000 10)
    limit=$((t - ${SIAMESE_ONESHOT_RESERVE_S:-150}))
    if [ "$limit" -lt 10 ]; then
        note "one-shot recipe: $(verdict 125) ($t s left)"
    else
        say "== one-shot recipe: ${recipe[*]}, --time-limit $limit s (timeout $t s)"
        t0=$(date +%s)
        timeout -k 5 "$t" "$dev/bin/siamese-train" --backend cuda "${data_args[@]}" "${recipe[@]}" \
            --seed 1 --time-limit "$limit" --out /tmp/siamese-oneshot --no-figures --save-every 0 \
            --eval-batches 5 --eval-pairs 150 >"$out/oneshot.log" 2>&1
        rc=$?
        cp /tmp/siamese-oneshot/loss.csv "$out/oneshot_loss.csv" 2>/dev/null
        tail -n 15 "$out/oneshot.log"
        ran=$(tail -n 1 "$out/oneshot_loss.csv" 2>/dev/null | cut -d, -f1)
        within=$(grep -E '^\(iii\)' "$out/oneshot.log" | head -1 | sed 's/^(iii) *//' | cut -c1-160)
        verif=$(grep -E '^\(i\)' "$out/oneshot.log" | grep -oE '[0-9]+\.[0-9]+ %' | head -1)
        best=$(grep -E '^best checkpoint' "$out/oneshot.log" | grep -oE 'step [0-9]+, validation one-shot [0-9.]+ %' | head -1)
        note "$(printf '%-34s %s, %d s of %d' "one-shot recipe (cuda, koch)" "$(verdict $rc)" $(($(date +%s) - t0)) "$t")"
        note "  ${ran:-0} steps in --time-limit $limit s; best checkpoint: ${best:-n/a}"
        note "  ${within:-episodes: n/a}"
        note "    (aim: >= 90 % on 2000 20-way within-alphabet episodes; Koch et al.: 92.0 %)"
        note "  verification, 5 x 150 eval pairs: ${verif:-n/a}"
        [ $rc = 0 ] || note "  first failure: $(first_error "$out/oneshot.log")"
    fi
fi
if [ "$phase" = reference ]; then
    # ---- the reference run: the reference's 10,000 iterations x 180 pairs, stopped by the time limit ----
    if [ ${#data_args[@]} -gt 0 ]; then
        t=$(step_time 100000 10)
        limit=$((t - ${SIAMESE_REF_RESERVE_S:-90}))
        if [ "$limit" -lt 10 ]; then
            note "reference run: $(verdict 125) ($t s left)"
        else
            say "== reference run: up to $ref_iters iterations x $ref_batch pairs, --time-limit $limit s (timeout $t s)"
            t0=$(date +%s)
            timeout -k 5 "$t" "$dev/bin/siamese-train" --backend cuda "${data_args[@]}" \
                --iterations "$ref_iters" --batch "$ref_batch" --micro-batch "$ref_batch" --seed 1 \
                --time-limit "$limit" --out /tmp/siamese-reference --no-figures --save-every 0 \
                --validate-every 0 --eval-batches 5 --eval-pairs 150 >"$out/reference.log" 2>&1
            rc=$?
            cp /tmp/siamese-reference/loss.csv "$out/reference_loss.csv" 2>/dev/null
            tail -n 15 "$out/reference.log"
            ran=$(tail -n 1 "$out/reference_loss.csv" 2>/dev/null | cut -d, -f1)
            acc=$(grep -iE 'verification' "$out/reference.log" | grep -oE '[0-9]+\.[0-9]+ %' | head -1)
            note "$(printf '%-34s %s, %d s of %d' "reference run (cuda, float32)" "$(verdict $rc)" $(($(date +%s) - t0)) "$t")"
            note "  ${ran:-0} iterations x $ref_batch pairs (of $ref_iters; --time-limit $limit s)"
            note "  verification, 5 x 150 eval pairs: ${acc:-n/a} (reference: 89.07 %)"
            [ $rc = 0 ] || note "  first failure: $(first_error "$out/reference.log")"
        fi
    fi
fi
note "==== done in $(elapsed) s ===="
cat "$summary"
