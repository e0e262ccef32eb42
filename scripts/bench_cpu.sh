#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The speed table of issue 14 on whatever CPU this runs: libsiamese's cpu-dnnl backend beside
# PyTorch on the reference (Koch) network, in one run, each contender in its own process (so
# that its peak memory is its own); prints the CPU, its measured arithmetic peak, ONE table and
# the ratios against their targets (docs/performance.md shows its output).
#   - tests/bench_peak: fp32 FMA and bf16 dot-product peak on the same thread count, 12
#     independent accumulator chains (bf16: vdpbf16ps, AVX512_BF16)
#   - tests/bench_cpu --backend cpu-dnnl: steps at batch 180 and 32, prediction of 150 pairs,
#     peak memory after training at batch 180, three times:
#       cpu-dnnl fp32 direct:  --conv-algo direct (spatial convolution only)
#       cpu-dnnl fp32 auto:    --conv-algo auto (FFT for the layers and directions where it wins)
#       cpu-dnnl bf16:         --precision bf16 (auto algorithm); "n/a" where the CPU has no
#                              AVX512_BF16 or the backend refuses bf16 (bench_cpu exits 3)
#   - scripts/bench_torch_cpu.py (Debian's python3-torch, /usr/bin/python3), the same network,
#     batch, docs/reference.md loss/Adam and thread count, both tuned: channels_last, and
#     glibc told to keep freed blocks (MALLOC_* below) so big tensors are not page-faulted in
#     again every step:
#       torch tuned fp32
#       torch tuned bf16:      forward, loss and prediction under torch.autocast bf16
# Targets (issue 14): fp32 auto / torch fp32 <= 0.6 for both steps and prediction; bf16 /
# torch bf16 <= 0.9 for the steps and prediction; peak memory <= 0.25x PyTorch's tuned run of
# the same precision.
# Usage: scripts/bench_cpu.sh [BUILD_DIR (default build)]
# Environment: THREADS (default: all cores), STEPS (timed steps after one warm-up, default 3),
# EXTRA=1 also runs cpu-blas and PyTorch's default (NCHW, glibc's allocator as it comes): a few
# minutes more each; LAYERS=1 also runs the per-layer breakdown (bench_cpu --layers, LAYER_REPS
# repetitions, default 7), off by default to keep the script's time down; BATCHES and PAIRS
# (default 180,32 and 150) only to try the script itself quickly (the table wants those):
#   BATCHES=2,2 PAIRS=2 STEPS=1 scripts/bench_cpu.sh build
# Takes ~5 minutes on 2 cores at the default sizes. Measure on an idle machine: the script
# prints the load average before and after. Exits 1 when a contender failed (not when bf16 is
# unavailable).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-$root/build}" && pwd)
threads=${THREADS:-$(nproc)}
steps=${STEPS:-3}
batches=${BATCHES:-180,32}
pairs=${PAIRS:-150}
bench=$build/tests/bench_cpu
peak=$build/tests/bench_peak
for exe in "$bench" "$peak"; do
    [ -x "$exe" ] || { echo "no $exe: meson compile -C $build" >&2; exit 1; }
done
export SIAMESE_BACKEND_DIR=$build/backends/cpu-dnnl
logs=$(mktemp -d "${TMPDIR:-/tmp}/bench_cpu.XXXXXX")
echo "logs in $logs"
status=$logs/status # one line per contender: NAME ok | na REASON | failed RC
: >"$status"

flags=$(grep -m1 '^flags' /proc/cpuinfo | tr ' ' '\n' |
        grep -E '^(fma|avx2|avx512f|avx512bw|avx512_vnni|avx512_bf16|avx_vnni|amx_bf16|amx_tile)$' |
        tr '\n' ' ' || true)
model=$(lscpu | sed -n 's/^Model name: *//p' | head -1)
echo "== CPU: ${model:-unknown}, $(nproc) cores for this process ($(getconf _NPROCESSORS_ONLN)" \
     "online)"
echo "== CPU flags of interest: ${flags:-none}"
echo "== $threads threads, $steps timed steps, batches $batches, $pairs pairs"
echo "== load before: $(cut -d' ' -f1-3 /proc/loadavg)"

run() { # name, command...: output to the screen and the log; returns the command's status
    local name=$1 rc
    shift
    echo "== $name: $*"
    set +e
    "$@" 2>&1 | tee "$logs/$name.log" | grep -v '^RESULT'
    rc=${PIPESTATUS[0]}
    set -e
    return "$rc"
}

contend() { # name, command...: run, and record how it ended in $status
    local name=$1 rc=0
    run "$@" || rc=$?
    if [ "$rc" = 0 ]; then
        echo "$name ok" >>"$status"
    elif [ "$rc" = 3 ]; then # bench_cpu: the backend refused an option (bf16 here)
        local why
        why=$(sed -n 's/^RESULT what=refused //p' "$logs/$name.log")
        echo "== $name: not available here ($why): its column is n/a"
        echo "$name na refused: $why" >>"$status"
    else
        echo "== $name: FAILED (exit status $rc, log $logs/$name.log)"
        echo "$name failed $rc" >>"$status"
    fi
}

na() { # name, reason: a contender that cannot run on this machine
    echo "== $1: n/a: $2"
    echo "$1 na $2" >>"$status"
}

run peak "$peak" --threads "$threads" || echo "== peak: FAILED"
if grep -q 'bf16_gflops=n/a' "$logs/peak.log" 2>/dev/null; then
    bf16_missing="this CPU has no AVX512_BF16"
else
    bf16_missing=""
fi
if [ "${LAYERS:-0}" = 1 ]; then
    run layers "$bench" --layers --threads "$threads" --reps "${LAYER_REPS:-7}" ||
        echo "== layers: FAILED"
fi

ours=(--threads "$threads" --steps "$steps" --batches "$batches" --pairs "$pairs")
if "$bench" --backend cpu-dnnl --steps 1 --batches 1 --pairs 1 >/dev/null 2>&1; then
    contend dnnl-direct "$bench" --backend cpu-dnnl --conv-algo direct "${ours[@]}"
    contend dnnl-auto "$bench" --backend cpu-dnnl --conv-algo auto "${ours[@]}"
    if [ -n "$bf16_missing" ]; then
        na dnnl-bf16 "$bf16_missing"
    else
        contend dnnl-bf16 "$bench" --backend cpu-dnnl --conv-algo auto --precision bf16 \
            "${ours[@]}"
    fi
else
    for c in dnnl-direct dnnl-auto dnnl-bf16; do
        na "$c" "cpu-dnnl is not built here (meson summary, 'Backends')"
    done
fi
if [ "${EXTRA:-0}" = 1 ]; then
    contend cpu-blas "$bench" --backend cpu "${ours[@]}"
fi

# the architecture text for PyTorch: from a run above, else from a one-pair run of cpu-blas
arch=$(cat "$logs"/dnnl-*.log "$logs"/cpu-blas.log 2>/dev/null |
       sed -n 's/^RESULT what=arch text=//p' | head -1 || true)
[ -n "$arch" ] || arch=$("$bench" --backend cpu --steps 1 --batches 1 --pairs 1 |
                         sed -n 's/^RESULT what=arch text=//p')
torch=(/usr/bin/python3 "$root/scripts/bench_torch_cpu.py" --arch "$arch" --threads "$threads"
       --steps "$steps" --batches "$batches" --pairs "$pairs")
tuned=(env MALLOC_MMAP_THRESHOLD_=4294967296 MALLOC_TRIM_THRESHOLD_=68719476736)
if /usr/bin/python3 -c 'import torch' 2>/dev/null; then
    contend torch-fp32 "${tuned[@]}" "${torch[@]}" --channels-last --label torch-fp32
    if [ -n "$bf16_missing" ]; then
        na torch-bf16 "$bf16_missing"
    else
        contend torch-bf16 "${tuned[@]}" "${torch[@]}" --channels-last --bf16 --label torch-bf16
    fi
    if [ "${EXTRA:-0}" = 1 ]; then
        contend torch-default "${torch[@]}" --label torch-default
    fi
else
    for c in torch-fp32 torch-bf16; do
        na "$c" "no PyTorch for /usr/bin/python3 (apt-get install python3-torch)"
    done
fi
echo "== load after: $(cut -d' ' -f1-3 /proc/loadavg)"

python3 - "$logs" "$batches" "$pairs" "${model:-unknown}" "$threads" <<'EOF'
import glob, os, sys

logs, batches, pairs, model, threads = sys.argv[1:6]
batches = list(dict.fromkeys(int(b) for b in batches.split(",")))  # BATCHES=2,2: one row
res = {}
for path in glob.glob(os.path.join(logs, "*.log")):
    run = os.path.basename(path)[:-4]
    for line in open(path):
        if line.startswith("RESULT "):
            res.setdefault(run, []).append(dict(t.split("=", 1) for t in line.split()[1:]))
state = {}
for line in open(os.path.join(logs, "status")):
    name, how = line.rstrip("\n").split(" ", 1)
    state[name] = how

def get(run, what, key="ms", **match):
    for kv in res.get(run, []):
        if kv.get("what") == what and all(kv.get(k) == str(v) for k, v in match.items()):
            try:
                return float(kv[key])
            except ValueError:  # "n/a"
                return None
    return None

names = {"dnnl-direct": "cpu-dnnl fp32 direct", "dnnl-auto": "cpu-dnnl fp32 auto",
         "dnnl-bf16": "cpu-dnnl bf16", "cpu-blas": "cpu-blas fp32",
         "torch-fp32": "torch tuned fp32", "torch-bf16": "torch tuned bf16 autocast",
         "torch-default": "torch default fp32"}
cols = [c for c in names if c in state]

def cell(run, v, fmt):
    if state.get(run, "").startswith("na"):
        return "n/a"
    return "-" if v is None else fmt(v)

peak32 = get("peak", "peak", "fp32_gflops")
peak16 = get("peak", "peak", "bf16_gflops")
print(f"\nCPU: {model}; {threads} threads")
print("measured peak (12 independent chains, all threads): fp32 FMA "
      + (f"{peak32:.0f} GFLOP/s" if peak32 else "n/a") + ", bf16 dot products (vdpbf16ps) "
      + (f"{peak16:.0f} GFLOP/s" if peak16 else "n/a (no AVX512_BF16)"))

rows = [(f"train step, batch {b}", "step", "ms", {"batch": b}) for b in batches]
rows += [(f"predict {pairs} pairs", "predict", "ms", {"pairs": pairs}),
         (f"peak memory, training at batch {batches[0]}", "train_peak_rss", "mib", {})]
head = ["measure"] + [names[c] for c in cols]
print("\n| " + " | ".join(head) + " |")
print("|" + "---|" * len(head))
for label, what, key, match in rows:
    if key == "ms":
        fmt = lambda x: f"{x * 1e-3:.2f} s" if x >= 100 else f"{x:.1f} ms"
    else:
        fmt = lambda x: f"{x:.0f} MiB"
    cells = [cell(c, get(c, what, key, **match), fmt) for c in cols]
    print("| " + " | ".join([label] + cells) + " |")

for c in cols:
    if state[c].startswith("na") or state[c].startswith("failed"):
        print(f"{names[c]}: {'n/a: ' + state[c][3:] if state[c].startswith('na') else 'FAILED'}")

# what the step's arithmetic runs at, counted as direct convolution (FFT does fewer operations,
# so its "direct-equivalent" rate may pass the peak)
b0 = batches[0]
for c in ("dnnl-direct", "dnnl-auto", "dnnl-bf16", "cpu-blas"):
    ms, gflop = get(c, "step", "ms", batch=b0), get(c, "step", "gflop", batch=b0)
    if ms and gflop:
        rate = gflop / (ms * 1e-3)
        pk = peak16 if c == "dnnl-bf16" else peak32
        share = f", {100 * rate / pk:.0f} % of the {'bf16' if c == 'dnnl-bf16' else 'fp32'} peak" \
            if pk else ""
        print(f"{names[c]}: step at batch {b0}: {gflop:.0f} GFLOP (as direct convolution) in "
              f"{ms * 1e-3:.2f} s = {rate:.0f} GFLOP/s{share}")

print("\nratios (issue 14's targets):")
checks = [(f"fp32 auto / torch fp32, step at batch {b}", "dnnl-auto", "torch-fp32", "step",
           "ms", {"batch": b}, 0.6) for b in batches]
checks += [(f"fp32 auto / torch fp32, predict {pairs} pairs", "dnnl-auto", "torch-fp32",
            "predict", "ms", {"pairs": pairs}, 0.6)]
checks += [(f"bf16 / torch bf16, step at batch {b}", "dnnl-bf16", "torch-bf16", "step", "ms",
            {"batch": b}, 0.9) for b in batches]
checks += [(f"bf16 / torch bf16, predict {pairs} pairs", "dnnl-bf16", "torch-bf16", "predict",
            "ms", {"pairs": pairs}, 0.9)]
checks += [("fp32 auto / torch fp32, peak memory", "dnnl-auto", "torch-fp32", "train_peak_rss",
            "mib", {}, 0.25),
           ("bf16 / torch bf16, peak memory", "dnnl-bf16", "torch-bf16", "train_peak_rss", "mib",
            {}, 0.25)]
seen = set()
for label, ours, theirs, what, key, match, target in checks:
    if label in seen:  # BATCHES=2,2 and the like
        continue
    seen.add(label)
    a, b = get(ours, what, key, **match), get(theirs, what, key, **match)
    if state.get(ours, "").startswith("na") or state.get(theirs, "").startswith("na"):
        verdict = "n/a"
        ratio = "n/a"
    elif a is None or b is None:
        verdict, ratio = "-", "-"
    else:
        ratio = f"{a / b:.2f}x"
        verdict = "PASS" if a / b <= target else "MISS"
    print(f"  {label}: {ratio} (target <= {target}x): {verdict}")
for b in batches[:1]:
    a, t = get("dnnl-direct", "step", "ms", batch=b), get("torch-fp32", "step", "ms", batch=b)
    if a and t:
        print(f"  (no target) fp32 direct / torch fp32, step at batch {b}: {a / t:.2f}x")
EOF
if grep -q ' failed ' "$status"; then
    echo "some contenders failed: $(grep ' failed ' "$status" | cut -d' ' -f1 | tr '\n' ' ')" >&2
    exit 1
fi
