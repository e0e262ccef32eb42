#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Trains the laptop recipe from Python for a few minutes, with a live progress bar, then
evaluates it on held-out classes and draws the loss curve and the ROC (matplotlib, where it
is installed).

The recipe is siamese-train's `--arch laptop --lr 1e-3 --batch 32` (README, "Real Omniglot
data"): the CPU-friendly twin (0.87 M parameters), Adam at 1e-3, 32 random pairs per step. On
Omniglot (./data/omniglot or $SIAMESE_OMNIGLOT_DIR, as the C examples look) it trains on
images_background and evaluates on images_evaluation; without it, on the built-in synthetic
glyphs and a second synthetic set of other classes.

    PYTHONPATH=python SIAMESE_LIBRARY=build/lib/libsiamese.so.0 \\
        python3 examples/python/train_laptop.py [--minutes 3] [--out out-py]

Writes OUT/model.safetensors (resumable with --resume), OUT/loss.csv, and with matplotlib
OUT/loss.png and OUT/roc.png. Ctrl-C stops after the current step and saves.
"""
import argparse
import os
import signal
import sys
import time

import numpy as np

import siamese
from siamese.cli import find_omniglot


def bar(done: float, width: int = 30) -> str:
    full = int(round(done * width))
    return "[" + "#" * full + "." * (width - full) + "]"


def clock(seconds: float) -> str:
    s = int(max(seconds, 0))
    return f"{s // 60}m{s % 60:02d}s"


def open_data(args, h, w):
    train_path, looked = find_omniglot(args.data, "images_background")
    if train_path is None:
        print(f"no Omniglot ({looked}): synthetic glyphs")
        train = siamese.Dataset.synthetic(args.synthetic_classes, args.synthetic_images, h, w,
                                          args.seed)
        held = siamese.Dataset.synthetic(max(args.synthetic_classes // 2, 10),
                                         args.synthetic_images, h, w, args.seed + 1000003)
        return train, held
    eval_path, _ = find_omniglot(os.path.dirname(train_path) or ".", "images_evaluation")
    train = siamese.Dataset.open(train_path, h, w)
    held = siamese.Dataset.open(eval_path, h, w)
    print(f"Omniglot: {train_path} ({len(train)} images), held out: {eval_path}")
    return train, held


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--minutes", type=float, default=3.0, help="training time (default 3)")
    p.add_argument("--data", help="Omniglot images_background or the folder holding it")
    p.add_argument("--out", default="out-py")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--threads", type=int, default=0, help="0 = all cores")
    p.add_argument("--resume", action="store_true")
    p.add_argument("--synthetic-classes", type=int, default=200)
    p.add_argument("--synthetic-images", type=int, default=20)
    p.add_argument("--eval-pairs", type=int, default=750)
    p.add_argument("--no-plot", action="store_true")
    args = p.parse_args()

    backend = siamese.Backend("auto", threads=args.threads)
    print(f"libsiamese {siamese.version()}, backend {backend.name} ({backend.threads} threads)")
    model = siamese.Model.create(backend, "laptop", seed=args.seed)
    _, h, w = model.input_shape
    train, held = open_data(args, h, w)
    trainer = siamese.Trainer(model, train, seed=args.seed + 2, adam_lr=1e-3, batch_size=32)
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "model.safetensors")
    if args.resume and os.path.exists(path):
        trainer.load(path)
        print(f"resumed from {path} at step {trainer.iteration}")
    trainer.set_validation(held, 300, seed=args.seed + 0x7A1)
    latest = {"val": None}

    def on_health(report):
        if "has_validation" in report.flags:
            latest["val"] = report.val_accuracy
        if report.message:
            print(f"\nwarning (step {report.iteration}): {report.message}")
    trainer.set_health(200, on_health)

    stop = {"now": False}
    signal.signal(signal.SIGINT, lambda *_: stop.update(now=True))
    budget = 60.0 * args.minutes
    steps, losses, smooth = [], [], None
    t0 = time.monotonic()
    shown = 0.0
    while not stop["now"]:
        loss = trainer.step()  # the GIL is released during the step
        steps.append(trainer.iteration)
        losses.append(loss)
        smooth = loss if smooth is None else 0.98 * smooth + 0.02 * loss
        ran = time.monotonic() - t0
        if ran - shown >= 0.2 or ran >= budget:
            shown = ran
            val = f"  held-out {100 * latest['val']:.1f} %" if latest["val"] is not None else ""
            line = (f"\r{bar(min(ran / budget, 1))} step {trainer.iteration}  loss "
                    f"{smooth:.4f}{val}  {clock(ran)} / {clock(budget)}")
            print(line, end="", flush=True)
        if ran >= budget:
            break
    print()
    trainer.save(path)
    with open(os.path.join(args.out, "loss.csv"), "w") as f:
        f.write("iteration,loss\n")
        f.writelines(f"{s},{v:.6f}\n" for s, v in zip(steps, losses))
    print(f"{len(steps)} steps in {clock(time.monotonic() - t0)}; saved {path}")

    result = siamese.verification_accuracy(model, held, args.eval_pairs, seed=args.seed)
    scores, labels = siamese.verification_scores(model, held, args.eval_pairs, seed=args.seed)
    roc = siamese.Roc(scores, labels)
    eer, threshold = roc.eer()
    print(f"verification on held-out classes: {100 * result.accuracy:.2f} % of "
          f"{result.trials} pairs at 0.5 (chance 50 %); equal error rate {100 * eer:.2f} % at "
          f"threshold {threshold:.4g}")

    if args.no_plot:
        return 0
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("no matplotlib (Debian: python3-matplotlib): no figures drawn")
        return 0
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(steps, losses, lw=0.5, alpha=0.4, label="batch loss")
    k = max(len(losses) // 50, 1)
    ax.plot(steps[k - 1:], np.convolve(losses, np.ones(k) / k, mode="valid"), label="smoothed")
    ax.set(xlabel="step", ylabel="loss", title="Training loss (laptop recipe)")
    ax.legend()
    fig.savefig(os.path.join(args.out, "loss.png"), dpi=120, bbox_inches="tight")
    _, far, frr = roc.points()
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot(far, 1 - frr)
    ax.plot([0, 1], [0, 1], ls=":", c="grey")
    ax.set(xlabel="false-accept rate", ylabel="true-accept rate",
           title=f"ROC on held-out classes (EER {100 * eer:.1f} %)")
    fig.savefig(os.path.join(args.out, "roc.png"), dpi=120, bbox_inches="tight")
    print(f"figures: {args.out}/loss.png, {args.out}/roc.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
