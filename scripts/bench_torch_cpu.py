#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""The reference network in PyTorch on the CPU, timed the way tests/bench_cpu.c times libsiamese,
for scripts/bench_cpu.sh's comparison table.

Same network (the architecture text libsiamese prints, parsed by tests/gen/make_reference.py),
same batch, same docs/reference.md step: F = sigmoid(subnet(x)) over both images of every pair at once,
|F1 - F2|, fc, sigmoid clipped to [2^-23, 1 - 2^-23], mean BCE, and the reference's Adam
(lr 6e-5, betas 0.9 / 0.99, eps 1e-8 outside the bias correction), with N(0, 0.01^2) weights.
A new random batch is drawn on the host each step (libsiamese samples its own inside the step).

--channels-last puts weights and inputs in torch.channels_last, the "tuned" run of the table
(bench_cpu.sh also raises glibc's malloc thresholds for it, from the environment); without it,
the NCHW default most code uses. --bf16 is PyTorch's standard CPU mixed precision: the training
step's forward pass and loss, and prediction, under torch.autocast("cpu", dtype=torch.bfloat16)
(convolutions and matrix products in bfloat16, accumulated in float32), with parameters, gradients
and Adam's state in float32; the scores are taken back to float32 before the clipped BCE, as
autocast does for its own loss functions. Prints "RESULT key=value ..." lines like bench_cpu,
each with precision=fp32 or precision=bf16.
"""
import contextlib
import argparse
import os
import resource
import statistics
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "gen"))
from make_reference import parse_arch  # noqa: E402  (the one parser of the arch text)

CLIP_EPS = 2.0 ** -23
LR, BETA1, BETA2, ADAM_EPS = 6e-5, 0.9, 0.99, 1e-8


def build(arch_text, gen):
    (c, h, w), layers = parse_arch(arch_text)
    params, flat = [], None
    for kind, a, b in layers:
        if kind == "conv":
            params += [torch.randn(a, c, b, b, generator=gen) * 0.01,
                       torch.randn(a, generator=gen) * 0.01]
            c, h, w = a, h - b + 1, w - b + 1
        elif kind == "pool":
            h, w = h // a, w // a
        elif kind == "flatten":
            flat = c * h * w
        elif kind == "fc":
            params += [torch.randn(a, flat, generator=gen) * 0.01,
                       torch.randn(a, generator=gen) * 0.01]
            flat = a
    head = torch.randn(flat + 1, generator=gen) * 0.01
    return parse_arch(arch_text)[0], layers, params, head


def subnet(x, layers, params):
    i = 0
    for kind, a, _ in layers:
        if kind == "conv":
            x = F.conv2d(x, params[i], params[i + 1])
            i += 2
        elif kind == "relu":
            x = F.relu(x)
        elif kind == "pool":
            x = F.max_pool2d(x, a)
        elif kind == "flatten":
            x = x.flatten(1)
        elif kind == "fc":
            x = F.linear(x, params[i], params[i + 1])
            i += 2
    return x


def scores(left, right, layers, params, head):
    n = left.shape[0]
    f = torch.sigmoid(subnet(torch.cat([left, right]), layers, params))
    d = (f[:n] - f[n:]).abs()
    return torch.sigmoid(d @ head[:-1] + head[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", required=True, help="libsiamese's architecture text")
    ap.add_argument("--batches", default="180,32")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--pairs", type=int, default=150)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--channels-last", action="store_true")
    ap.add_argument("--bf16", action="store_true",
                    help="forward, loss and prediction under bfloat16 autocast")
    ap.add_argument("--label", default=None, help="default: torch, or torch-bf16 with --bf16")
    o = ap.parse_args()
    if o.label is None:
        o.label = "torch-bf16" if o.bf16 else "torch"
    prec = "bf16" if o.bf16 else "fp32"

    def autocast():
        # a fresh context each time: autocast's cast cache lives as long as the context
        if o.bf16:
            return torch.autocast("cpu", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    torch.set_num_threads(o.threads)
    gen = torch.Generator().manual_seed(1)
    in_shape, layers, params, head = build(o.arch, gen)
    fmt = torch.channels_last if o.channels_last else torch.contiguous_format
    params = [(p.contiguous(memory_format=fmt) if p.dim() == 4 else p).requires_grad_(True)
              for p in params]
    head.requires_grad_(True)
    every = params + [head]
    m = [torch.zeros_like(p) for p in every]
    v = [torch.zeros_like(p) for p in every]
    t = 0
    print(f"{o.label}: torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{'channels_last' if o.channels_last else 'NCHW'}, "
          f"{'bf16 autocast' if o.bf16 else 'fp32'}, "
          f"{sum(p.numel() for p in every)} parameters")

    def batch(n):
        x = (torch.rand(2 * n, *in_shape, generator=gen) < 0.35).float()
        x = x.contiguous(memory_format=fmt)
        return x[:n], x[n:], (torch.rand(n, generator=gen) < 0.5).float()

    def step(n):
        nonlocal t
        left, right, labels = batch(n)
        for p in every:
            p.grad = None
        with autocast():
            # float32 before the clip: 1 - 2^-23 is 1 in bfloat16
            s = scores(left, right, layers, params, head).float()
            s = s.clamp(CLIP_EPS, 1.0 - CLIP_EPS)
            loss = -(labels * torch.log(s) + (1.0 - labels) * torch.log(1.0 - s)).mean()
        loss.backward()
        t += 1
        size = LR * (1.0 - BETA2 ** t) ** 0.5 / (1.0 - BETA1 ** t)
        with torch.no_grad():
            for p, mi, vi in zip(every, m, v):
                g = p.grad
                mi.mul_(BETA1).add_(g, alpha=1.0 - BETA1)
                vi.mul_(BETA2).addcmul_(g, g, value=1.0 - BETA2)
                p.addcdiv_(mi, vi.sqrt().add_(ADAM_EPS), value=-size)
        return loss.item()

    for b in (int(x) for x in o.batches.split(",")):
        step(b)  # warm-up
        times, faults = [], resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        for _ in range(o.steps):
            t0 = time.perf_counter()
            loss = step(b)
            times.append(time.perf_counter() - t0)
        faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults) / o.steps
        med = statistics.median(times)
        print(f"train step, batch {b:3d}: median {med * 1e3:8.1f} ms over {o.steps} steps, "
              f"loss {loss:.4f}, {faults:.0f} page faults per step")
        print(f"RESULT backend={o.label} precision={prec} what=step batch={b} "
              f"ms={med * 1e3:.3f}")

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(f"peak resident memory after training: {peak:.0f} MiB")
    print(f"RESULT backend={o.label} precision={prec} what=train_peak_rss mib={peak:.1f}")

    left, right, _ = batch(o.pairs)
    with torch.no_grad(), autocast():
        scores(left, right, layers, params, head)  # warm-up
        times = []
        for _ in range(o.steps):
            t0 = time.perf_counter()
            scores(left, right, layers, params, head)
            times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    print(f"predict {o.pairs} pairs: median {med * 1e3:.1f} ms")
    print(f"RESULT backend={o.label} precision={prec} what=predict pairs={o.pairs} "
          f"ms={med * 1e3:.3f}")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(f"peak resident memory, prediction included: {peak:.0f} MiB")
    print(f"RESULT backend={o.label} precision={prec} what=peak_rss mib={peak:.1f}")


if __name__ == "__main__":
    main()
