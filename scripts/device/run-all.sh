#!/usr/bin/env bash
# The cuda backend's whole device check, in one call on the GPU machine (docs/cuda.md):
#   1. finds cuDNN and cuBLAS in the Python wheels there and prints what it found,
#   2. the parity tests (test_cuda_backend, test_cuda_parity: every op, loss and gradients,
#      Adam steps, checkpoints across backends),
#   3. the benchmark: bench_step on cuda (TF32 off, on), then the same network in PyTorch
#      (scripts/device/bench_torch.py), at batch 180 and 32, and predictions per second,
#   4. the reference run: siamese-train on cuda, the whole background set, batch 180, then
#      5 x 150 verification pairs of the evaluation set,
#   5. a short table, last.
# It uses only what scripts/device/stage.sh put in .device/ plus the machine's own python3,
# torch and NVIDIA wheels. Logs go to $OUT (the device tool's folder) or .device/out.
#
# Settings (environment):
#   SIAMESE_REF_ITERATIONS  iterations of the reference run: a number, or "auto" (default):
#                           SPEC.md's 10000 if the measured step time fits the budget, else as
#                           many as fit (the table says how many ran)
#   SIAMESE_DEVICE_BUDGET_S seconds the whole script may take (default 540: one device command
#                           is limited to 600)
#   SIAMESE_BENCH_STEPS     timed steps per benchmark figure (default 10)
#   SIAMESE_SITE_PACKAGES   folders to search for nvidia/*/lib (default: python3's site dirs)
#   SIAMESE_BENCH_BATCHES   batch sizes timed (default 180,32)
#   SIAMESE_DEVICE_BACKEND  cuda (default); cpu only to dry-run this script's control flow on a
#                           machine without a GPU (with tiny batches and iterations)
set -uo pipefail
cd "$(dirname "$0")/../.."
t_start=$(date +%s)
dev=${SIAMESE_DEVICE_DIR:-.device}
out=${OUT:-$dev/out}
budget=${SIAMESE_DEVICE_BUDGET_S:-540}
ref_iters=${SIAMESE_REF_ITERATIONS:-auto}
bench_steps=${SIAMESE_BENCH_STEPS:-10}
batches=${SIAMESE_BENCH_BATCHES:-180,32}
backend=${SIAMESE_DEVICE_BACKEND:-cuda}
be_name=$([ "$backend" = cpu ] && echo cpu-blas || echo "$backend")
b_big=${batches%%,*}
b_small=${batches##*,}
mkdir -p "$out"
elapsed() { echo $(($(date +%s) - t_start)); }
say() { echo "[$(elapsed) s] $*"; }
verdict() { case $1 in 0) echo passed ;; 77) echo SKIPPED ;; 124) echo "TIMED OUT" ;; *) echo "FAILED (exit $1)" ;; esac; }

[ -f "$dev/payload.tar.xz" ] || { echo "run-all: nothing staged in $dev (scripts/device/stage.sh, then carry .device)"; exit 2; }
# The staged programs and libraries: unpacked outside the tree (python3's tarfile needs no xz).
data=$(realpath "$dev/data")
needed=$(realpath "$dev/needed-vendor-libs.txt")
dev=${SIAMESE_UNPACK_DIR:-/tmp/siamese-device}
rm -rf "$dev" && mkdir -p "$dev"
python3 -c 'import sys, tarfile; kw = {"filter": "tar"} if hasattr(tarfile, "tar_filter") else {}; tarfile.open(sys.argv[1]).extractall(sys.argv[2], **kw)' \
    "${SIAMESE_DEVICE_DIR:-.device}/payload.tar.xz" "$dev" || { echo "run-all: cannot unpack the payload"; exit 2; }
say "unpacked the staged programs into $dev"

# ---- 1. cuDNN and cuBLAS from the wheels ----
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
        say "NOT FOUND: $lib (searched nvidia/ under: $sites)"
        missing="$missing $lib"
    fi
done <"$needed"
# Python keeps the machine's own libraries: the staged ones (Debian's libz, libcrypto, ...) are
# older than what its modules may need.
python_ldp=${LD_LIBRARY_PATH:-}
export LD_LIBRARY_PATH="$(realpath "$dev/lib")$vendor_dirs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export SIAMESE_BACKEND_DIR=$(realpath "$dev/lib")
say "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
if command -v nvidia-smi >/dev/null; then
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | sed 's/^/GPU: /'
else
    say "no nvidia-smi here"
fi

# ---- 2. parity ----
say "== parity tests"
timeout 60 "$dev/bin/test_cuda_backend" >"$out/cuda_backend.log" 2>&1
rc_backend=$?
grep -E '^# ' "$out/cuda_backend.log"
timeout 300 "$dev/bin/test_cuda_parity" >"$out/parity.log" 2>&1
rc_parity=$?
grep -E 'SKIPPED|network|worst|TF32:|checkpoint|step [0-9] loss|FAILED|\[  FAILED' "$out/parity.log"
say "test_cuda_backend: $(verdict $rc_backend); test_cuda_parity: $(verdict $rc_parity)"
usable=1
if ! "$dev/bin/bench_step" 1 1 "$backend" 0 >"$out/probe.log" 2>&1; then
    usable=0
    say "the $backend backend is not usable here: $(head -c 400 "$out/probe.log")"
fi

# ---- 3. benchmark ----
: >"$out/bench.log"
if [ $usable = 1 ]; then
    for tf in 0 1; do
        say "== bench_step $backend, TF32 $tf"
        timeout 150 "$dev/bin/bench_step" "$bench_steps" "$batches" "$backend" "$tf" "$b_big" 2>&1 | tee -a "$out/bench.log"
    done
    say "== PyTorch, same network"
    LD_LIBRARY_PATH=$python_ldp PYTHONUNBUFFERED=1 timeout 200 python3 scripts/device/bench_torch.py --steps "$bench_steps" \
        --batches "$batches" 2>&1 | tee -a "$out/bench.log"
fi
res() { # backend tf32 what key -> value of the first matching RESULT line
    awk -v b="$1" -v t="$2" -v w="$3" -v k="$4" -v n="${5:-}" '
        $1 == "RESULT" { delete f; for (i = 2; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] }
            if (f["backend"] == b && f["tf32"] == t && f["what"] == w && (n == "" || f["batch"] == n)) { print f[k]; exit } }' "$out/bench.log"
}

# ---- 4. reference run ----
ref_note=""
ref_acc=""
ref_wall=""
if [ $usable = 1 ] && [ -f "$data/images_background.zip" ]; then
    ms=$(res "$be_name" 0 step ms "$b_big")
    left=$((budget - $(elapsed) - 45)) # data loading, evaluation, the table
    if [ "$ref_iters" = auto ]; then
        if [ -n "$ms" ]; then
            ref_iters=$(awk -v l="$left" -v ms="$ms" 'BEGIN { n = int(l * 1000 / (ms * 1.08)); print (n > 10000 ? 10000 : n < 100 ? 0 : n) }')
            say "reference run: $ms ms/step measured, $left s left: $ref_iters iterations (SPEC: 10000, ~$(awk -v ms="$ms" 'BEGIN { printf "%.0f", ms * 10.8 }') s)"
        else
            ref_iters=0
        fi
    fi
    if [ "$ref_iters" -ge 1 ] 2>/dev/null; then
        say "== reference run: $ref_iters iterations x $b_big pairs on $backend"
        t0=$(date +%s)
        timeout $((left + 30)) "$dev/bin/siamese-train" --backend "$backend" \
            --data "$data/images_background.zip" --eval-data "$data/images_evaluation.zip" \
            --iterations "$ref_iters" --batch "$b_big" --micro-batch "$b_big" --seed 1 \
            --out /tmp/siamese-reference --no-figures --save-every 0 --validate-every 0 \
            --eval-batches 5 --eval-pairs 150 >"$out/reference.log" 2>"$out/reference.err"
        rc_ref=$?
        ref_wall=$(($(date +%s) - t0))
        cp /tmp/siamese-reference/loss.csv "$out/reference_loss.csv" 2>/dev/null
        tail -n 15 "$out/reference.log"
        tail -c 600 "$out/reference.err"
        ref_acc=$(grep -iE 'verification' "$out/reference.log" | grep -oE '[0-9]+\.[0-9]+ %' | head -1)
        [ $rc_ref = 0 ] || ref_note="exit $rc_ref"
    else
        ref_note="not run (iterations: $ref_iters)"
    fi
else
    ref_note="not run ($backend unusable or no data staged)"
fi

# ---- 5. the table ----
cell() { echo "${1:--}"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "" || b == 0) print "-"; else printf "%.2f", a / b }'; }
row() { printf '%-28s %11s %11s %11s %11s\n' "$@"; }
{
    echo
    echo "==== $be_name backend, device run ($(elapsed) s) ===="
    printf '%-40s %s\n' "parity (test_cuda_backend)" "$(verdict $rc_backend)"
    printf '%-40s %s\n' "parity (test_cuda_parity)" "$(verdict $rc_parity)"
    grep -E 'worst gradient rel err \(float32\)|TF32: loss rel err|worst op rel err' "$out/parity.log" | sed 's/^# */  /'
    [ -n "$missing" ] && echo "  missing vendor libraries:$missing"
    echo
    row "ms/step, pairs/s" "$be_name" "$be_name TF32" "torch" "torch TF32"
    for b in $b_big $b_small; do
        row "train step, batch $b" "$(cell "$(res "$be_name" 0 step ms $b)")" "$(cell "$(res "$be_name" 1 step ms $b)")" \
            "$(cell "$(res torch 0 step ms $b)")" "$(cell "$(res torch 1 step ms $b)")"
    done
    row "predictions per second" "$(cell "$(res "$be_name" 0 predict per_s)")" "$(cell "$(res "$be_name" 1 predict per_s)")" \
        "$(cell "$(res torch 0 predict per_s)")" "$(cell "$(res torch 1 predict per_s)")"
    for b in $b_big $b_small; do
        row "torch ms / ours, batch $b" "$(ratio "$(res torch 0 step ms $b)" "$(res "$be_name" 0 step ms $b)")" \
            "$(ratio "$(res torch 1 step ms $b)" "$(res "$be_name" 1 step ms $b)")" "" "(> 1: ours faster)"
    done
    echo
    printf '%-40s %s\n' "reference run ($be_name, float32)" "${ref_iters} iterations x $b_big pairs, ${ref_wall:-?} s wall ${ref_note}"
    printf '%-40s %s\n' "verification, 5 x 150 eval pairs" "${ref_acc:-n/a} (reference: 89.07 %)"
} | tee "$out/summary.txt"
