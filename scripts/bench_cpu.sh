#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# libsiamese's CPU backends beside PyTorch on the reference (Koch) network, on this machine, in
# one run; prints ONE table of ratios (docs/performance.md shows its output):
#   - tests/bench_cpu --layers: per conv layer and op, cpu-blas and cpu-dnnl against OpenBLAS
#     SGEMM alone on cpu-blas's products; the flop-weighted SGEMM rate of a training step
#   - tests/bench_cpu --backend cpu | cpu-dnnl: steps at batch 180 and 32, prediction of 150
#     pairs, peak memory after training at batch 180 (one process per backend)
#   - scripts/bench_torch_cpu.py (Debian's python3-torch, /usr/bin/python3), the same network,
#     batch and docs/reference.md loss/Adam, with the same thread count:
#       default: NCHW, glibc's allocator as it comes
#       tuned:   channels_last, and glibc told to keep freed blocks (MALLOC_* below) so big
#                tensors are not page-faulted in again every step
# Usage: scripts/bench_cpu.sh [BUILD_DIR (default build)]
# Environment: THREADS (default: all cores), STEPS (timed steps after one warm-up, default 3),
# LAYER_REPS (repetitions of each op in the breakdown, default 7),
# MICROS="8 32" also times both backends at batch 180 with micro-batches of those sizes (the
# default is 16 pairs on the CPU; MICRO32=1 is MICROS=32); BATCHES and
# PAIRS (default 180,32 and 150) only to try the script itself quickly (the table wants those).
# Takes ~10 minutes on 2 cores (PyTorch's default step at batch 180 alone is ~30 s). Measure on
# an idle machine: the script prints the load average before and after.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-$root/build}" && pwd)
threads=${THREADS:-$(nproc)}
steps=${STEPS:-3}
batches=${BATCHES:-180,32}
pairs=${PAIRS:-150}
bench=$build/tests/bench_cpu
[ -x "$bench" ] || { echo "no $bench: meson compile -C $build tests/bench_cpu" >&2; exit 1; }
export SIAMESE_BACKEND_DIR=$build/backends/cpu-dnnl
logs=$(mktemp -d "${TMPDIR:-/tmp}/bench_cpu.XXXXXX")
echo "logs in $logs"

echo "== machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores;" \
     "$(grep -o 'avx512[a-z]*' /proc/cpuinfo | sort -u | tr '\n' ' ')"
echo "== OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset}, $threads threads, $steps timed steps"
echo "== load before: $(cut -d' ' -f1-3 /proc/loadavg)"

run() { # name, command...: output to the screen and the log
    local name=$1
    shift
    echo "== $name: $*"
    "$@" 2>&1 | tee "$logs/$name.log" | grep -v '^RESULT'
}

run layers "$bench" --layers --threads "$threads" --reps "${LAYER_REPS:-7}"
run cpu-blas "$bench" --backend cpu --threads "$threads" --steps "$steps" --batches "$batches" \
    --pairs "$pairs"
if "$bench" --backend cpu-dnnl --steps 1 --batches 1 --pairs 1 >/dev/null 2>&1; then
    run cpu-dnnl "$bench" --backend cpu-dnnl --threads "$threads" --steps "$steps" \
        --batches "$batches" --pairs "$pairs"
else
    echo "== cpu-dnnl: not built here (meson summary, 'Backends'): its columns are left empty"
fi
micros=${MICROS:-}
if [ "${MICRO32:-0}" = 1 ]; then micros="$micros 32"; fi
for m in $micros; do
    run "cpu-blas-micro$m" "$bench" --backend cpu --threads "$threads" --steps "$steps" \
        --batches 180 --pairs 1 --micro "$m"
    run "cpu-dnnl-micro$m" "$bench" --backend cpu-dnnl --threads "$threads" --steps "$steps" \
        --batches 180 --pairs 1 --micro "$m"
done
arch=$(sed -n 's/^RESULT what=arch text=//p' "$logs/cpu-blas.log")
torch=(/usr/bin/python3 "$root/scripts/bench_torch_cpu.py" --arch "$arch" --threads "$threads"
       --steps "$steps" --batches "$batches" --pairs "$pairs")
run torch-default "${torch[@]}" --label torch-default
run torch-tuned env MALLOC_MMAP_THRESHOLD_=4294967296 MALLOC_TRIM_THRESHOLD_=68719476736 \
    "${torch[@]}" --channels-last --label torch-tuned
echo "== load after: $(cut -d' ' -f1-3 /proc/loadavg)"

python3 - "$logs" <<'EOF'
import glob, os, sys

res = {}
for path in glob.glob(os.path.join(sys.argv[1], "*.log")):
    run = os.path.basename(path)[:-4]
    for line in open(path):
        if not line.startswith("RESULT "):
            continue
        kv = dict(tok.split("=", 1) for tok in line.split()[1:])
        res.setdefault(run, []).append(kv)

def get(run, what, key="ms", **match):
    for kv in res.get(run, []):
        if kv.get("what") == what and all(kv.get(k) == str(v) for k, v in match.items()):
            return float(kv[key])
    return None

rows = [("training step, batch 180", "step", "ms", {"batch": 180}, 1e-3, "s"),
        ("training step, batch 32", "step", "ms", {"batch": 32}, 1e-3, "s"),
        ("predict 150 pairs", "predict", "ms", {"pairs": 150}, 1e-3, "s"),
        ("peak memory, training at batch 180", "train_peak_rss", "mib", {}, 1, "MiB")]
ours, theirs = ["cpu-blas", "cpu-dnnl"], ["torch-default", "torch-tuned"]
head = ["measure"] + ours + theirs + [f"{o} / {t.split('-')[1]}" for o in ours for t in theirs]
print("\n| " + " | ".join(head) + " |")
print("|" + "---|" * len(head))
for label, what, key, match, scale, unit in rows:
    v = {r: get(r, what, key, **match) for r in ours + theirs}
    fmt = lambda x: "-" if x is None else (f"{x * scale:.2f} {unit}" if unit == "s" else f"{x:.0f} {unit}")
    cells = [fmt(v[r]) for r in ours + theirs]
    for o in ours:
        for t in theirs:
            cells.append("-" if v[o] is None or v[t] is None else f"{v[o] / v[t]:.2f}x")
    print("| " + " | ".join([label] + cells) + " |")

sgemm = get("layers", "sgemm_rate", "gflops")
step = get("cpu-blas", "step", "ms", batch=180)
gflop = get("cpu-blas", "step", "gflop", batch=180)
if sgemm and step and gflop:
    rate = gflop / (step * 1e-3)
    print(f"\ncpu-blas step at batch 180: {gflop:.0f} GFLOP in {step * 1e-3:.2f} s = {rate:.1f} GFLOP/s"
          f" = {100 * rate / sgemm:.0f} % of OpenBLAS's SGEMM rate on the same products "
          f"({sgemm:.1f} GFLOP/s, this run)")
for o in ours:
    conv = get("layers", "conv_rate", "gflops", backend=o)
    if conv:
        print(f"{o}: all conv ops of one micro-batch at {conv:.1f} GFLOP/s")
micros = sorted(int(r.split("-micro")[1]) for r in res if r.startswith("cpu-blas-micro"))
for o in ours:
    for m in micros:
        s = get(f"{o}-micro{m}", "step", "ms", batch=180)
        if s:
            extra = f" = {100 * gflop / (s * 1e-3) / sgemm:.0f} % of the SGEMM rate" \
                if o == "cpu-blas" and sgemm and gflop else ""
            print(f"{o} at batch 180 with micro-batches of {m} pairs: {s * 1e-3:.2f} s{extra}, "
                  f"peak {get(f'{o}-micro{m}', 'train_peak_rss', 'mib'):.0f} MiB")
EOF
