#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""The oneshot-cpu preset's training step in PyTorch on the CPU, timed as tests/bench_preset.c
times libsiamese's, for scripts/bench_preset.sh.

Same twin (the architecture text, parsed by tests/gen/make_reference.py), He initialisation,
a P x K batch (P classes x K images, drawn on the host each step), features
F = sigmoid(twin(x)) of every image once, every pair i < j of the batch through the head
(|F_i - F_j|, fc, sigmoid clipped to [2^-23, 1 - 2^-23]), balanced BCE (half the mean over
similar pairs, half over dissimilar ones), backward, Adam (lr 1e-3, betas 0.9 / 0.99, eps 1e-8).
--channels-last is the tuned layout. Prints "RESULT key=value" lines.
"""
import argparse
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "gen"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_reference import parse_arch  # noqa: E402  (the one parser of the arch text)
from bench_torch_cpu import subnet as twin  # noqa: E402  (the same twin as the Koch benchmark)

CLIP_EPS = 2.0 ** -23
LR, BETA1, BETA2, ADAM_EPS = 1e-3, 0.9, 0.99, 1e-8


def build(arch_text, gen):
    in_shape, layers = parse_arch(arch_text)
    c, h, w = in_shape
    params, flat = [], None
    for kind, a, b in layers:
        if kind == "conv":
            std = (2.0 / (c * b * b)) ** 0.5
            params += [torch.randn(a, c, b, b, generator=gen) * std, torch.zeros(a)]
            c, h, w = a, h - b + 1, w - b + 1
        elif kind == "pool":
            h, w = h // a, w // a
        elif kind == "flatten":
            flat = c * h * w
        elif kind == "fc":
            params += [torch.randn(a, flat, generator=gen) * (2.0 / flat) ** 0.5, torch.zeros(a)]
            flat = a
    head = torch.randn(flat + 1, generator=gen) * 0.01
    return in_shape, layers, params, head


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", required=True)
    ap.add_argument("--pk", default="16,4")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--channels-last", action="store_true")
    ap.add_argument("--label", default="torch")
    o = ap.parse_args()
    p, k = (int(v) for v in o.pk.split(","))
    n = p * k
    torch.set_num_threads(o.threads)
    gen = torch.Generator().manual_seed(1)
    in_shape, layers, params, head = build(o.arch, gen)
    fmt = torch.channels_last if o.channels_last else torch.contiguous_format
    params = [(q.contiguous(memory_format=fmt) if q.dim() == 4 else q).requires_grad_(True)
              for q in params]
    head.requires_grad_(True)
    every = params + [head]
    m = [torch.zeros_like(q) for q in every]
    v = [torch.zeros_like(q) for q in every]
    i, j = torch.triu_indices(n, n, 1)
    same = (i // k) == (j // k)
    w = torch.where(same, 0.5 / same.sum(), 0.5 / (~same).sum())
    t = 0

    def step():
        nonlocal t
        x = (torch.rand(n, *in_shape, generator=gen) < 0.35).float().contiguous(memory_format=fmt)
        for q in every:
            q.grad = None
        f = torch.sigmoid(twin(x, layers, params))
        d = (f[i] - f[j]).abs()
        s = torch.sigmoid(d @ head[:-1] + head[-1]).clamp(CLIP_EPS, 1.0 - CLIP_EPS)
        y = same.float()
        loss = -(w * (y * torch.log(s) + (1.0 - y) * torch.log(1.0 - s))).sum()
        loss.backward()
        t += 1
        size = LR * (1.0 - BETA2 ** t) ** 0.5 / (1.0 - BETA1 ** t)
        with torch.no_grad():
            for q, mi, vi in zip(every, m, v):
                g = q.grad
                mi.mul_(BETA1).add_(g, alpha=1.0 - BETA1)
                vi.mul_(BETA2).addcmul_(g, g, value=1.0 - BETA2)
                q.addcdiv_(mi, vi.sqrt().add_(ADAM_EPS), value=-size)
        return loss.item()

    step()
    times = []
    for _ in range(o.steps):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    print(f"{o.label}: torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{'channels_last' if o.channels_last else 'NCHW'}, P x K {p} x {k}: "
          f"{med * 1e3:.2f} ms per step (median of {o.steps})")
    print(f"RESULT backend={o.label} pk={p}x{k} ms={med * 1e3:.3f}")


if __name__ == "__main__":
    main()
