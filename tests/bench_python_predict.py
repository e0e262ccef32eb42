#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Benchmark (never a test): Model.predict_pairs through the Python package against the C
program tests/bench_predict.c on the same model, the same pairs and the same backend, in
alternating rounds; prints the ratio Python / C of the median call time (the binding's cost:
the goal is under 1.05) and checks that both computed the same bits.

    PYTHONPATH=python SIAMESE_LIBRARY=build/lib/libsiamese.so.0 \\
        python3 tests/bench_python_predict.py build/tests/bench_predict [--arch laptop]
        [--pairs 150] [--reps 20] [--rounds 5] [--backend auto] [--threads N]

(`meson test -C build --benchmark python-predict` runs it so.) The pairs are drawn as the C
program draws them: siamese.Model.create(seed 1), Sampler(Dataset.synthetic(50, 4, H, W, 3),
9).next(P). Each round runs the C program once (its own warm-up, then --reps timed calls) and
then --reps timed Python calls; the figure is the median over rounds of each side's median.
On a loaded machine that ratio is mostly noise, so the script also measures what the binding
adds per call, load aside: one pair through a 4x4 model ("1x4x4:flatten,fc2"), where the
library's own work is a few microseconds, 2000 calls each side: the difference of the medians
is the per-call cost of the Python layer (argument checks, the pointer hand-over, the status
check), to set against the milliseconds of a real call.
"""
import argparse
import os
import re
import statistics
import subprocess
import sys
import time


import siamese


def fnv1a64(data: bytes) -> str:
    h = 1469598103934665603
    for b in data:
        h = ((h ^ b) * 1099511628211) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


def overhead(bench: str, reps: int = 2000) -> tuple:
    """(C us, Python us) per predict_pairs call of one pair on a 4x4 model, one thread."""
    arch = "1x4x4:flatten,fc2"
    run = subprocess.run([bench, "--arch", arch, "--pairs", "1", "--reps", str(reps),
                          "--backend", "cpu", "--threads", "1"], capture_output=True, text=True,
                         check=True)
    c_us = 1e3 * float(re.search(r"ms=([0-9.]+)", run.stdout).group(1))
    with siamese.Backend("cpu", threads=1) as be:
        m = siamese.Model.create(be, arch, seed=1)
        pair = siamese.Sampler(siamese.Dataset.synthetic(50, 4, 4, 4, seed=3), seed=9).next(1)
        out = m.predict_pairs(pair.left, pair.right)
        t = []
        for _ in range(reps):
            t0 = time.perf_counter()
            m.predict_pairs(pair.left, pair.right, out=out)
            t.append(time.perf_counter() - t0)
        m.close()
    return c_us, 1e6 * statistics.median(t)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("bench_predict", help="the C program (build/tests/bench_predict)")
    p.add_argument("--arch", default="laptop")
    p.add_argument("--pairs", type=int, default=150)
    p.add_argument("--reps", type=int, default=20)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--backend", default="auto")
    p.add_argument("--threads", type=int, default=-1)
    a = p.parse_args()

    be = siamese.Backend(a.backend)
    if a.threads >= 0:
        be.threads = a.threads
    model = siamese.Model.create(be, a.arch, seed=1)
    _, h, w = model.input_shape
    pairs = siamese.Sampler(siamese.Dataset.synthetic(50, 4, h, w, seed=3), seed=9).next(a.pairs)
    left, right = pairs.left, pairs.right  # C-contiguous float32: passed by pointer
    out = model.predict_pairs(left, right)  # warm-up
    c_args = [a.bench_predict, "--arch", a.arch, "--pairs", str(a.pairs), "--reps", str(a.reps),
              "--backend", a.backend] + (["--threads", str(a.threads)] if a.threads >= 0 else [])
    c_ms, py_ms, c_hash = [], [], None
    for _ in range(a.rounds):
        run = subprocess.run(c_args, capture_output=True, text=True, check=True)
        m = re.search(r"RESULT what=predict backend=(\S+) pairs=\d+ ms=([0-9.]+) hash=(\w+)",
                      run.stdout)
        if not m:
            print(run.stdout, run.stderr, file=sys.stderr)
            return 1
        c_backend, c_hash = m.group(1), m.group(3)
        c_ms.append(float(m.group(2)))
        t = []
        for _ in range(a.reps):
            t0 = time.perf_counter()
            model.predict_pairs(left, right, out=out)
            t.append(time.perf_counter() - t0)
        py_ms.append(1e3 * statistics.median(t))
    same = fnv1a64(out.tobytes()) == c_hash
    cm, pm = statistics.median(c_ms), statistics.median(py_ms)
    cpu = next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo")
                if ln.startswith("model name")), "?") if os.path.exists("/proc/cpuinfo") else "?"
    print(f"predict_pairs, {a.pairs} pairs, arch {a.arch}, backend {be.name} "
          f"({be.threads} threads; C: {c_backend}), CPU {cpu}, {a.rounds} rounds x "
          f"{a.reps} calls")
    print(f"  C (bench_predict): median {cm:.3f} ms   rounds {', '.join(f'{v:.2f}' for v in c_ms)}")
    print(f"  Python:            median {pm:.3f} ms   rounds {', '.join(f'{v:.2f}' for v in py_ms)}")
    print(f"  ratio Python / C: {pm / cm:.4f} (goal < 1.05); same scores bit for bit: "
          f"{'yes' if same else 'NO'}")
    oc, op = overhead(a.bench_predict)
    print(f"  per call, one pair on a 4x4 model: C {oc:.1f} us, Python {op:.1f} us: the binding "
          f"adds {op - oc:.1f} us = {100 * (op - oc) / (1e3 * cm):.3f} % of the C call above")
    print(f"RESULT what=python_predict pairs={a.pairs} c_ms={cm:.4f} py_ms={pm:.4f} "
          f"ratio={pm / cm:.4f} same={int(same)} overhead_us={op - oc:.2f}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
