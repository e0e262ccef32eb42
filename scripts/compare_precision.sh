#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Accuracy kept? (issue 14, "must have" 4): trains with build/examples/siamese-train, for the same
# wall time each, three configurations of the cpu-dnnl backend
#   fp32 direct:  --conv-algo direct                  (the reference)
#   fp32 auto:    --conv-algo auto (FFT where it wins)
#   bf16:         --conv-algo auto --precision bf16    (n/a where the backend or CPU refuses it)
# for two recipes
#   laptop: --arch laptop --lr 1e-3 --batch 32        (docs/results.md, "Train on a laptop")
#   koch:   --arch koch --init he --lr 3e-4 --batch 32 --warmup 50 (the reference network; the
#           reference's own init, lr 6e-5 and batch 180 learn next to nothing in minutes on a
#           CPU, so its one-shot figures would all be chance and compare nothing)
# then evaluates each as siamese-train does at the end: (i) random-pair verification on the
# evaluation alphabets (at 0.5, with the equal error rate) and (iii) 20-way 1-shot episodes
# within alphabets; and prints one table, each configuration against fp32 direct of its recipe.
# Usage: scripts/compare_precision.sh BUILD_DIR OMNIGLOT_DIR WALL_TIME
#   OMNIGLOT_DIR holds images_background.zip and images_evaluation.zip (e.g.
#   data/omniglot after scripts/fetch-omniglot.sh; default $SIAMESE_OMNIGLOT_DIR); WALL_TIME is siamese-train's
#   --time-limit per run (900, 15m, 1h; checked between steps, so a Koch step of several
#   seconds may overrun a tiny limit). Six runs: the whole takes 6 x (WALL_TIME + loading and
#   evaluation, ~1-3 minutes each on 2 cores). Run it on an otherwise idle machine: the three
#   configurations are compared at equal wall time, so a busy neighbour skews the comparison.
# Environment: EPISODES (20-way episodes, default 400), EVAL_BATCHES x EVAL_PAIRS (verification
# pairs, default 5 x 150), THREADS (default 0: all cores), SEED (default 1), BACKEND (default
# cpu-dnnl, the backend that honours both options), RECIPES (default "laptop koch"), CONFIGS
# (default "direct auto bf16"), TRAIN_SET (default images_background.zip), OUT (folder of the
# runs' models and logs, default a new one under $TMPDIR).
# A smoke run of the script itself (minutes, numbers meaningless):
#   EPISODES=2 EVAL_BATCHES=1 EVAL_PAIRS=10 TRAIN_SET=images_background_small1.zip \
#     scripts/compare_precision.sh build data/omniglot 10
set -euo pipefail

[ $# -ge 2 ] && [ $# -le 3 ] ||
    { echo "usage: $0 BUILD_DIR [OMNIGLOT_DIR] WALL_TIME (see the top of the script)" >&2
      exit 2; }
build=$(cd "$1" && pwd)
if [ $# = 3 ]; then data=$2; wall=$3; else data=${SIAMESE_OMNIGLOT_DIR:-}; wall=$2; fi
[ -n "$data" ] || { echo "no OMNIGLOT_DIR and no \$SIAMESE_OMNIGLOT_DIR" >&2; exit 2; }
train_set=$data/${TRAIN_SET:-images_background.zip}
[ -f "$train_set" ] || { echo "no $train_set" >&2; exit 2; }
[ -f "$data/images_evaluation.zip" ] || [ -d "$data/images_evaluation" ] ||
    { echo "no images_evaluation.zip (or folder) in $data" >&2; exit 2; }
train=$build/examples/siamese-train
[ -x "$train" ] || { echo "no $train: meson compile -C $build" >&2; exit 1; }
export SIAMESE_BACKEND_DIR=$build/backends/cpu-dnnl
out=${OUT:-$(mktemp -d "${TMPDIR:-/tmp}/compare_precision.XXXXXX")}
mkdir -p "$out"
echo "runs in $out; $wall of training each; CPU: $(lscpu | sed -n 's/^Model name: *//p')"
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"

recipe_args() { # recipe name -> siamese-train options
    case $1 in
        laptop) echo --arch laptop --lr 1e-3 --batch 32 ;;
        koch) echo --arch koch --init he --lr 3e-4 --batch 32 --warmup 50 ;;
        *) echo "unknown recipe '$1' (laptop, koch)" >&2; return 2 ;;
    esac
}
config_args() { # configuration name -> siamese-train options
    case $1 in
        direct) echo --conv-algo direct ;;
        auto) echo --conv-algo auto ;;
        bf16) echo --conv-algo auto --precision bf16 ;;
        *) echo "unknown configuration '$1' (direct, auto, bf16)" >&2; return 2 ;;
    esac
}

failed=0
for recipe in ${RECIPES:-laptop koch}; do
    r_args=$(recipe_args "$recipe")
    for config in ${CONFIGS:-direct auto bf16}; do
        c_args=$(config_args "$config")
        name=$recipe-$config
        echo "== $name: siamese-train $r_args $c_args --time-limit $wall"
        rc=0
        # shellcheck disable=SC2086 # the recipes' options are words
        "$train" --data "$train_set" --backend "${BACKEND:-cpu-dnnl}" $r_args $c_args \
            --time-limit "$wall" --iterations 100000000 --seed "${SEED:-1}" \
            --threads "${THREADS:-0}" --validate-every 0 --save-every 0 --no-figures \
            --eval-batches "${EVAL_BATCHES:-5}" --eval-pairs "${EVAL_PAIRS:-150}" \
            --episodes "${EPISODES:-400}" --way 20 --shot 1 --within-alphabet \
            --out "$out/$name" >"$out/$name.log" 2>&1 || rc=$?
        grep -E '^(backend|arch|time limit|trained|\(i|    equal)' "$out/$name.log" || true
        if [ "$rc" = 2 ] && grep -q 'refuses --' "$out/$name.log"; then
            echo "$name: refused: $(grep -m1 'refuses --' "$out/$name.log")"
            echo "refused" >"$out/$name.status"
        elif [ "$rc" != 0 ]; then
            echo "$name: FAILED (exit status $rc): tail of $out/$name.log:"
            tail -5 "$out/$name.log"
            echo "failed $rc" >"$out/$name.status"
            failed=1
        else
            echo ok >"$out/$name.status"
        fi
    done
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"

python3 - "$out" "${RECIPES:-laptop koch}" "${CONFIGS:-direct auto bf16}" "$wall" <<'EOF'
import os, re, sys

out, recipes, configs, wall = sys.argv[1], sys.argv[2].split(), sys.argv[3].split(), sys.argv[4]
label = {"direct": "fp32 direct", "auto": "fp32 auto (FFT)", "bf16": "bf16 (auto)"}

def parse(name):
    st = open(os.path.join(out, name + ".status")).read().split()[0]
    r = {"status": st}
    if st != "ok":
        return r
    text = open(os.path.join(out, name + ".log")).read()
    m = re.search(r"^trained (\d+) iterations in \S+ \(([\d.]+) s/step\): loss ([\d.naif]+) at "
                  r"the first step, ([\d.naif]+)", text, re.M)
    if m:
        r["steps"], r["s_step"], r["loss"] = int(m[1]), float(m[2]), m[4]
    m = re.search(r"^\(i\)\s+random-pair verification: ([\d.]+) %", text, re.M)
    r["verif"] = float(m[1]) if m else None
    m = re.search(r"equal error rate ([\d.]+) %", text)
    r["eer"] = float(m[1]) if m else None
    m = re.search(r"^\(iii\)\s*20-way 1-shot episodes within alphabets: ([\d.]+) %", text, re.M)
    r["within"] = float(m[1]) if m else None
    return r

def pct(v, ref=None):
    if v is None:
        return "-"
    return f"{v:.2f} %" + (f" ({v - ref:+.2f})" if ref is not None else "")

print(f"\n{wall} of training per run; (i) verification at 0.5, equal error rate; (iii) 20-way "
      "1-shot within alphabets; in brackets: points against fp32 direct of the same recipe\n")
head = ["recipe", "configuration", "steps", "s/step", "last loss", "(i) verification",
        "equal error rate", "(iii) 20-way within"]
print("| " + " | ".join(head) + " |")
print("|" + "---|" * len(head))
for recipe in recipes:
    res = {c: parse(f"{recipe}-{c}") for c in configs}
    ref = res.get("direct", {})
    for c in configs:
        r = res[c]
        if r["status"] != "ok":
            cells = ["n/a (refused)" if r["status"] == "refused" else "FAILED"] + ["-"] * 5
        else:
            rel = c != "direct" and ref.get("status") == "ok"
            cells = [str(r.get("steps", "-")), f"{r['s_step']:.3f}" if "s_step" in r else "-",
                     r.get("loss", "-"),
                     pct(r["verif"], ref.get("verif") if rel and ref.get("verif") else None),
                     pct(r["eer"], ref.get("eer") if rel and ref.get("eer") else None),
                     pct(r["within"], ref.get("within") if rel and ref.get("within") else None)]
        print("| " + " | ".join([recipe, label.get(c, c)] + cells) + " |")
EOF
exit "$failed"
