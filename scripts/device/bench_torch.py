#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The benchmark network of tests/bench_step.c in PyTorch, eager float32 on the GPU, for the
ratios in scripts/device/run-all.sh: the same architecture (parsed from the library's text form),
the same loss (sigmoid features, |F1 - F2|, fc, clipped BCE), Adam with the reference's settings, the
whole batch's left and right images through the subnet in one pass, and a host-to-device copy of
each batch, as the library does. cuDNN picks algorithms by heuristics (benchmark off), as the
library's cuda backend does. Prints "RESULT backend=torch ..." lines like bench_step."""
import argparse
import os
import statistics
import sys
import time

KOCH = ("1x105x105:conv64k10,relu,pool2,conv128k7,relu,pool2,"
        "conv128k4,relu,pool2,conv256k5,relu,flatten,fc4096")


def build(torch, arch):
    # the one parser of the arch text (tests/gen/make_reference.py, also used by
    # scripts/bench_torch_cpu.py); imported here because it needs torch, which main() checks
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                    "tests", "gen"))
    from make_reference import parse_arch
    nn = torch.nn
    try:
        (c, h, w), layers = parse_arch(arch)
    except ValueError as e:
        raise SystemExit(f"bench_torch: unknown layer '{e}'")
    shape = (c, h, w)
    mods, flat = [], None
    for kind, a, b in layers:
        if kind == "conv":
            mods.append(nn.Conv2d(c, a, b))
            c, h, w = a, h - b + 1, w - b + 1
        elif kind == "relu":
            mods.append(nn.ReLU())
        elif kind == "pool":
            mods.append(nn.MaxPool2d(a))
            h, w = h // a, w // a
        elif kind == "flatten":
            mods.append(nn.Flatten())
            flat = c * h * w
        elif kind == "fc":
            mods.append(nn.Linear(flat, a))
            flat = a
    return nn.Sequential(*mods), flat, shape


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--arch", default=KOCH)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--batches", default="180,32")
    ap.add_argument("--pairs", type=int, default=150, help="pairs predicted")
    a = ap.parse_args()
    try:
        import torch
    except ImportError as e:
        print(f"bench_torch: no PyTorch here ({e})")
        return 3
    if not torch.cuda.is_available():
        print("bench_torch: PyTorch sees no GPU")
        return 3
    dev = torch.device("cuda")
    torch.backends.cudnn.benchmark = False
    print(f"torch {torch.__version__}, cuDNN {torch.backends.cudnn.version()}, "
          f"{torch.cuda.get_device_name(0)}")
    eps = 2.0 ** -23
    for tf32 in (0, 1):
        torch.backends.cuda.matmul.allow_tf32 = bool(tf32)
        torch.backends.cudnn.allow_tf32 = bool(tf32)
        torch.manual_seed(1)
        sub, dim, (c, h, w) = build(torch, a.arch)
        sub = sub.to(dev)
        head = torch.nn.Linear(dim, 1).to(dev)
        params = list(sub.parameters()) + list(head.parameters())
        with torch.no_grad():
            for p in params:
                p.normal_(0.0, 0.01)
        opt = torch.optim.Adam(params, lr=6e-5, betas=(0.9, 0.99), eps=1e-8)

        def step(left, right, labels):
            x = torch.cat([left, right]).to(dev, non_blocking=False)
            y = labels.to(dev)
            f = torch.sigmoid(sub(x))
            n = left.shape[0]
            z = head(torch.abs(f[:n] - f[n:])).squeeze(1)
            s = torch.sigmoid(z).clamp(eps, 1.0 - eps)
            loss = torch.nn.functional.binary_cross_entropy(s, y)
            opt.zero_grad(set_to_none=False)
            loss.backward()
            opt.step()
            return loss

        for b in (int(v) for v in a.batches.split(",")):
            left, right = torch.rand(b, c, h, w), torch.rand(b, c, h, w)
            labels = (torch.rand(b) < 0.5).float()
            for _ in range(2):  # warm-up: cuDNN plans, allocator
                step(left, right, labels)
            torch.cuda.synchronize()
            times = []
            for _ in range(a.steps):
                t0 = time.perf_counter()
                loss = step(left, right, labels)
                loss.item()  # the library's step also returns the loss to the host
                times.append(time.perf_counter() - t0)
            ms = statistics.median(times) * 1e3
            print(f"torch TF32 {'on ' if tf32 else 'off'} train step, batch {b:3d}: "
                  f"median {ms:8.2f} ms over {a.steps} steps")
            print(f"RESULT backend=torch tf32={tf32} what=step batch={b} ms={ms:.3f}")

        # predictions: chunks of 32 pairs, as sm_predict_pairs
        P = a.pairs
        left, right = torch.rand(P, c, h, w), torch.rand(P, c, h, w)

        def predict():
            out = []
            with torch.no_grad():
                for i in range(0, P, 32):
                    x = torch.cat([left[i:i + 32], right[i:i + 32]]).to(dev)
                    f = torch.sigmoid(sub(x))
                    n = min(32, P - i)
                    out.append(torch.sigmoid(head(torch.abs(f[:n] - f[n:]))).cpu())
            return torch.cat(out)

        predict()
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        predict()
        dt = time.perf_counter() - t0
        print(f"torch TF32 {'on ' if tf32 else 'off'} predict {P} pairs: {dt * 1e3:.1f} ms "
              f"({P / dt:.1f} pairs/s)")
        print(f"RESULT backend=torch tf32={tf32} what=predict pairs={P} per_s={P / dt:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
