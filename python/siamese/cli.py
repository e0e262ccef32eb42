# SPDX-License-Identifier: MIT
"""``python -m siamese train|eval|compare``: the example programs (siamese-train, siamese-eval,
siamese-compare) in Python, on the same calls with the same seeds, so the same options give
the same model file and the same numbers.

train takes the main options of siamese-train (data, architecture, backend, the training
recipe: batches, P x K, sampling, learning-rate schedule, weight decay, augmentation; health
checks, checkpoints, --resume, the evaluation options). Not here: --preset, the selection and
calibration on held-out background alphabets (--val-alphabets, --val-episodes, --patience,
--no-calibrate), figures (see examples/python/train_laptop.py) and data-parallel training.
"""
from __future__ import annotations

import argparse
import math
import os
import signal
import sys
import time
from typing import List, Optional, Tuple

from . import errors
from .arch import Arch
from .backend import Backend
from .data import Dataset, load_png
from .evaluation import OneshotRuns, Roc, oneshot_episodes, verification_accuracy
from .evaluation import verification_scores
from .model import Model
from .train import Health, Trainer

PROG = "python -m siamese"
DEFAULT_DIR = "data/omniglot"


def _fail(what: str, e: errors.Error, prog: str) -> int:
    print(f"{prog}: {what}: {e.status_name or type(e).__name__}: {e.detail}", file=sys.stderr)
    return 1


def _set_in_folder(folder: str, name: str) -> Optional[str]:
    if os.path.exists(os.path.join(folder, name + ".zip")):
        return os.path.join(folder, name + ".zip")
    if os.path.isdir(os.path.join(folder, name)):
        return os.path.join(folder, name)
    return None


def find_omniglot(given: Optional[str], name: str) -> Tuple[Optional[str], str]:
    """examples/omniglot_find.h's rule: (path or None, where it looked)."""
    if given:
        if os.path.isdir(given):
            found = _set_in_folder(given, name)
            if found:
                return found, ""
        return given, ""
    looked = []
    env = os.environ.get("SIAMESE_OMNIGLOT_DIR")
    if env:
        found = _set_in_folder(env, name)
        if found:
            return found, ""
        looked.append(f"$SIAMESE_OMNIGLOT_DIR={env} has no {name}.zip or {name}/")
    else:
        looked.append("$SIAMESE_OMNIGLOT_DIR is not set")
    found = _set_in_folder(DEFAULT_DIR, name)
    if found:
        return found, ""
    looked.append(f"./{DEFAULT_DIR} has no {name}.zip or {name}/")
    return None, "; ".join(looked)


def _duration(text: str) -> float:
    unit = {"s": 1.0, "m": 60.0, "h": 3600.0}.get(text[-1:], None)
    try:
        v = float(text[:-1] if unit else text) * (unit or 1.0)
    except ValueError:
        v = -1.0
    if not (0 < v <= 1e7):
        raise argparse.ArgumentTypeError(f"wants a duration such as 900, 900s, 15m or 1.5h, "
                                         f"got '{text}'")
    return v


def _pk(text: str) -> Tuple[int, int]:
    try:
        p, k = (int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"wants P,K (e.g. 32,4), got '{text}'") from None
    if not (2 <= p <= 4096 and 2 <= k <= 4096 and p * k <= 4096):
        raise argparse.ArgumentTypeError(f"{text}: P, K >= 2 and P x K <= 4096")
    return p, k


def _eval_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("evaluation")
    g.add_argument("--eval-batches", type=int, default=5, help="verification batches (5)")
    g.add_argument("--eval-pairs", type=int, default=150, help="pairs per batch (150)")
    g.add_argument("--oneshot-runs", help="official runs (folder or .zip of runNN/)")
    g.add_argument("--episodes", type=int, default=0, help="N-way k-shot episodes (0: none)")
    g.add_argument("--way", type=int, default=20)
    g.add_argument("--shot", type=int, default=1)
    g.add_argument("--within-alphabet", dest="within", action="store_true", default=True)
    g.add_argument("--between-alphabets", dest="within", action="store_false")
    g.add_argument("--threshold", type=float, help="also judge verification at score >= T")


def _backend_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backend", default="auto", choices=["auto", "cpu", "cpu-dnnl", "cuda"])
    p.add_argument("--threads", type=int, default=0, help="0 = all cores")
    p.add_argument("--conv-algo", choices=["auto", "direct", "fft", "measured"])
    p.add_argument("--precision", choices=["fp32", "bf16"])


def _open_backend(a: argparse.Namespace) -> Backend:
    return Backend(a.backend, threads=a.threads, conv_algo=a.conv_algo, precision=a.precision)


def _print_result(label: str, title: str, r, what: str) -> None:  # type: ignore[no-untyped-def]
    print(f"{label} {title}: {100 * r.accuracy:.2f} % ({r.correct:.1f} of {r.trials} {what}; "
          f"chance {100 * r.chance:.1f} %)")
    if r.tied:
        print(f"    {r.tied} trials had tied top scores (each counted as 1/number tied)")
    if r.score_std < 1e-3:
        print(f"    warning: every score is {r.score_mean:.4f}: the model gives the same answer "
              "to every pair, so this is chance")


def _g(v: float) -> str:
    """C's %.4g."""
    return "inf" if math.isinf(v) else f"{v:.4g}"


def eval_report(model: Model, ds: Optional[Dataset], a: argparse.Namespace, split: str,
                resize_runs: bool) -> int:
    """examples/eval_report.c's report: the three kinds of number, each on its own line."""
    seed = a.seed
    if ds is not None and a.eval_batches > 0:
        n = a.eval_batches * a.eval_pairs
        r = verification_accuracy(model, ds, n, seed + 0x5EED)
        _print_result("(i)  ", "random-pair verification", r,
                      f"random pairs ({a.eval_batches} x {a.eval_pairs}) of {split}")
        cal = model.calibration
        if cal.calibrated:
            print(f"    cut at 0.5, the calibrated decision point (Platt scaling folded into the "
                  f"head: scale {cal.scale:.6g}, shift {cal.shift:+.6g}, fitted on "
                  f"{cal.n_pairs} pairs)")
        else:
            print("    cut at 0.5; the model is not calibrated, so 0.5 is where its training "
                  "loss put the cut, not a calibrated decision point")
        if a.threshold is not None:
            rt = verification_accuracy(model, ds, n, seed + 0x5EED, threshold=a.threshold)
            print(f"    at threshold {a.threshold:.4g} (--threshold) instead of 0.5: "
                  f"{100 * rt.accuracy:.2f} % ({rt.correct:.1f} of {rt.trials})")
        scores, labels = verification_scores(model, ds, n, seed + 0x5EED)
        try:
            with Roc(scores, labels) as roc:
                eer, t_eer = roc.eer()
                t1, far1, frr1 = roc.threshold_at_far(0.01)
            print(f"    equal error rate {100 * eer:.2f} % at threshold {_g(t_eer)}; for a "
                  f"false-accept rate of at most 1 %: threshold {_g(t1)} (FAR {100 * far1:.2f} "
                  f"%, FRR {100 * frr1:.2f} %)")
        except errors.InvalidArgumentError as e:
            print(f"    no ROC: {e.detail}")
    if a.oneshot_runs:
        c, h, w = model.input_shape
        with OneshotRuns(a.oneshot_runs, h, w, resize=resize_runs) as runs:
            r = runs.evaluate(model)
            n_runs = len(runs)
        _print_result("(ii) ", f"{r.n_way}-way one-shot, official runs", r,
                      f"queries in {n_runs} runs of {a.oneshot_runs}")
    if ds is not None and a.episodes > 0:
        r = oneshot_episodes(model, ds, a.way, a.shot, a.episodes, a.within, seed + 0xE915)
        _print_result("(iii)", f"{a.way}-way {a.shot}-shot episodes "
                      f"{'within' if a.within else 'between'} alphabets", r,
                      f"queries in {a.episodes} episodes of {split}, seeded")
    return 0


# ---- train -----------------------------------------------------------------------------------

def train_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=f"{PROG} train", description=(
        "Trains a Siamese network as siamese-train does (same options, seeds and files)."))
    d = p.add_argument_group("data")
    d.add_argument("--data", help="Omniglot images_background (folder or .zip), a folder "
                   "holding it, or 'synthetic'")
    d.add_argument("--eval-data", help="evaluation set (default: images_evaluation beside "
                   "--data, or a synthetic set of other classes)")
    d.add_argument("--alphabets", help="train on these alphabets only (A,B,...)")
    d.add_argument("--synthetic-classes", type=int, default=None)
    d.add_argument("--synthetic-images", type=int, default=None)
    d.add_argument("--resize-images", action="store_true",
                   help="resize images of other sizes to the architecture's input")
    m = p.add_argument_group("model and training")
    m.add_argument("--arch", default="koch")
    _backend_options(m)
    m.add_argument("--iterations", type=int, default=10000)
    m.add_argument("--time-limit", type=_duration, default=0.0)
    m.add_argument("--batch", type=int, default=180)
    m.add_argument("--micro-batch", type=int, default=0)
    m.add_argument("--lr", type=float, default=6e-5)
    m.add_argument("--init", choices=["reference", "he"], default="reference")
    m.add_argument("--warmup", type=int, default=0)
    m.add_argument("--schedule", choices=["constant", "cosine", "step"], default="constant")
    m.add_argument("--schedule-steps", type=int, default=0)
    m.add_argument("--min-lr-factor", type=float, default=0.0)
    m.add_argument("--step-gamma", type=float, default=0.1)
    m.add_argument("--weight-decay-conv", type=float, default=0.0)
    m.add_argument("--weight-decay-fc", type=float, default=0.0)
    m.add_argument("--weight-decay-head", type=float, default=0.0)
    m.add_argument("--augment", action="store_true")
    m.add_argument("--neg-same-alphabet", type=float, default=0.0)
    m.add_argument("--alphabet-balanced", action="store_true")
    m.add_argument("--rotate-classes", action="store_true")
    m.add_argument("--pk", type=_pk, default=None, help="P,K: P x K batches")
    m.add_argument("--pk-loss", choices=["bce", "bce-unweighted", "softmax"], default="bce")
    m.add_argument("--seed", type=int, default=1)
    h = p.add_argument_group("training health and output")
    h.add_argument("--validate-every", type=int, default=-1)
    h.add_argument("--validation-pairs", type=int, default=300)
    h.add_argument("--out", default="out")
    h.add_argument("--save-every", type=int, default=1000)
    h.add_argument("--resume", action="store_true")
    _eval_options(p)
    return p


def _open_train_data(a: argparse.Namespace, h: int, w: int
                     ) -> Tuple[Dataset, Optional[Dataset], str]:
    synthetic_asked = a.synthetic_classes is not None or a.synthetic_images is not None
    a.synthetic_classes = a.synthetic_classes or 200
    a.synthetic_images = a.synthetic_images or 20
    data = None
    if a.data != "synthetic" and not (a.data is None and synthetic_asked):
        data, looked = find_omniglot(a.data, "images_background")
        if data is None:
            print(f"no Omniglot data found ({looked}): training on the built-in synthetic "
                  f"glyph set; scripts/fetch-omniglot.sh downloads Omniglot into ./{DEFAULT_DIR}")
        elif a.data is None:
            print(f"Omniglot found: {data}")
    names = a.alphabets.split(",") if a.alphabets else None
    if data:
        train = Dataset.open(data, h, w, alphabets=names, resize=a.resize_images)
        print(f"training set: {data}: {train.num_alphabets} alphabets, {train.num_classes} "
              f"classes, {len(train)} images")
    else:
        train = Dataset.synthetic(a.synthetic_classes, a.synthetic_images, h, w, a.seed)
        print(f"training set: synthetic glyphs (no --data): {train.num_classes} classes x "
              f"{a.synthetic_images} images, {h}x{w}")
    ev, split = None, "the evaluation set"
    ep = a.eval_data
    if not ep and data:
        parent = os.path.dirname(os.path.normpath(data)) or "."
        ep = _set_in_folder(parent, "images_evaluation")
        if not ep:
            print(f"note: no evaluation set found (looked for {parent}/images_evaluation.zip); "
                  "pass --eval-data to evaluate")
    if ep:
        ev = Dataset.open(ep, h, w, resize=a.resize_images)
        split = os.path.basename(os.path.normpath(ep)) or ep
        print(f"evaluation set: {ep}: {ev.num_alphabets} alphabets, {ev.num_classes} classes, "
              f"{len(ev)} images")
    elif not data:
        n_eval = max(a.synthetic_classes // 2, 10)
        ev = Dataset.synthetic(n_eval, a.synthetic_images, h, w, a.seed + 1000003)
        split = "the synthetic evaluation set"
        print(f"evaluation set: synthetic glyphs, {ev.num_classes} other classes")
    return train, ev, split


def _apply_trainer_options(tr: Trainer, a: argparse.Namespace, resumed: bool) -> None:
    """siamese-train's set_trainer_params, in its order."""
    tr.set("batch_size", a.batch)
    if a.micro_batch:
        tr.set("micro_batch", a.micro_batch)
    tr.set("augment", "all" if a.augment else 0)
    tr.set("neg_same_alphabet", a.neg_same_alphabet)
    tr.set("alphabet_balanced", a.alphabet_balanced)
    tr.set("rotated_classes", a.rotate_classes)
    tr.set("pk_classes", 0)
    if a.pk:
        tr.set("pk_images", a.pk[1])
        tr.set("pk_classes", a.pk[0])
    tr.set("pk_loss", a.pk_loss)
    if not resumed:
        tr.set("grad_shards", 1)


def train_main(argv: List[str]) -> int:
    a = train_parser().parse_args(argv)
    prog = f"{PROG} train"
    if a.schedule == "step" and a.schedule_steps == 0:
        print(f"{prog}: --schedule step needs --schedule-steps (the decay's period)",
              file=sys.stderr)
        return 2
    cosine_by_time = False
    if a.schedule == "cosine" and a.schedule_steps == 0:
        a.schedule_steps = min(max(a.iterations - a.warmup - 1, 1), 2 ** 31 - 1)
        cosine_by_time = a.time_limit > 0
    from .library import version
    print(f"libsiamese {version()} (Python)")
    try:
        be = _open_backend(a)
        print(f"backend: {be.name} ({be.threads} threads)")
        if be.fallback_reason:
            print(f"note: not on CUDA: {be.fallback_reason}")
        arch = Arch(a.arch)
        c, h, w = arch.input_shape
        if c != 1:
            print(f"{prog}: the arch takes {c} channels; datasets are greyscale", file=sys.stderr)
            return 1
        print(f"arch: {arch} ({arch.num_params} parameters)")
        train, ev, split = _open_train_data(a, h, w)
        model = Model.create(be, arch, a.seed, init=a.init)
        tr = Trainer(model, train, a.seed + 2)
        tr.update(adam_lr=a.lr, adam_warmup_steps=a.warmup, adam_schedule=a.schedule,
                  adam_schedule_steps=a.schedule_steps, adam_min_lr_factor=a.min_lr_factor,
                  adam_step_gamma=a.step_gamma, adam_weight_decay_conv=a.weight_decay_conv,
                  adam_weight_decay_fc=a.weight_decay_fc,
                  adam_weight_decay_head=a.weight_decay_head)
        _apply_trainer_options(tr, a, False)
        os.makedirs(a.out, exist_ok=True)
        model_path = os.path.join(a.out, "model.safetensors")
        if a.resume and os.path.exists(model_path):
            tr.load(model_path)
            _apply_trainer_options(tr, a, True)
            print(f"resumed from {model_path} at iteration {tr.iteration}")
        every = a.validate_every if a.validate_every >= 0 else max(a.iterations // 20, 1)
        if every:
            if ev is not None:
                tr.set_validation(ev, a.validation_pairs, a.seed + 0x7A1)
            tr.set_health(every, _on_health)
        rc = _train_loop(tr, a, model_path, cosine_by_time)
        if rc or ev is None:
            return rc
        print(f"evaluation on {split} (classes never seen in training):")
        return eval_report(model, ev, a, split, a.resize_images)
    except errors.Error as e:
        return _fail("failed", e, prog)


def _on_health(h: Health) -> None:
    if "has_validation" in h.flags:
        print(f"\nvalidation at step {h.iteration}: {100 * h.val_accuracy:.1f} % of "
              f"{h.val_pairs} held-out pairs right at 0.5 (chance 50 %; scores average "
              f"{h.val_score_mean:.2f}, spread {h.val_score_std:.3f}); smoothed loss "
              f"{h.smoothed_loss:.4f}", file=sys.stderr)
    if "validation_failed" in h.flags:
        print(f"\nwarning: validation at step {h.iteration} failed: {h.val_status}",
              file=sys.stderr)
    if h.message:
        print(f"\nwarning (step {h.iteration}): {h.message}", file=sys.stderr)


def _train_loop(tr: Trainer, a: argparse.Namespace, model_path: str,
                cosine_by_time: bool) -> int:
    stop = {"now": False}

    def on_signal(_sig: int, _frame: object) -> None:
        stop["now"] = True

    old = signal.signal(signal.SIGINT, on_signal)
    start = it = tr.iteration
    total = a.iterations
    tty = sys.stderr.isatty()
    line_every = max(total // 20, 1)
    t0 = shown = time.monotonic()
    first = smooth = math.nan
    per_step = 0.0
    csv_path = os.path.join(a.out, "loss.csv")
    with open(csv_path, "a" if a.resume and start else "w") as log:
        if not (a.resume and start):
            log.write("iteration,loss,elapsed_s,val_accuracy\n")
        try:
            while it < total and not stop["now"]:
                loss = tr.step()
                it = tr.iteration
                now = time.monotonic()
                ran = now - t0
                log.write(f"{it},{loss:.6f},{ran:.3f},\n")
                first = loss if math.isnan(first) else first
                smooth = loss if math.isnan(smooth) else 0.95 * smooth + 0.05 * loss
                per_step = ran / (it - start)
                timed_out = a.time_limit > 0 and ran >= a.time_limit
                if cosine_by_time and not timed_out and it - start >= 20 and \
                        (it - start) % 10 == 0:
                    left = (a.time_limit - ran) / per_step
                    n = it + max(left, 0) - tr.get("adam_warmup_steps") - 1
                    tr.set("adam_schedule_steps", math.floor(max(min(n, a.schedule_steps), 1)))
                last = it == total or timed_out
                if (tty and (now - shown >= 0.25 or last)) or \
                        (not tty and (it % line_every == 0 or last or now - shown >= 60)):
                    cr = "\r" if tty else ""
                    print(f"{cr}{it}/{total}  loss {loss:.4f} (avg "
                          f"{smooth:.4f})  {per_step:.3f} s/step", end="\033[K" if tty else "\n",
                          file=sys.stderr, flush=True)
                    shown = now
                if a.save_every > 0 and it % a.save_every == 0 and it < total:
                    tr.save(model_path)
                if timed_out:
                    print(f"\ntime limit of {a.time_limit:.0f} s reached after {it - start} "
                          "steps")
                    break
        finally:
            signal.signal(signal.SIGINT, old)
    if tty:
        print(file=sys.stderr)
    tr.save(model_path)
    if stop["now"]:
        print(f"interrupted at iteration {it}; saved {model_path} (continue with --resume)")
        return 130
    if it > start:
        print(f"trained {it - start} iterations ({per_step:.3f} s/step): loss {first:.4f} at "
              f"the first step, {smooth:.4f} (smoothed) at the last")
    print(f"saved {model_path} and {csv_path}")
    return 0


# ---- eval, compare ---------------------------------------------------------------------------

def eval_main(argv: List[str]) -> int:
    p = argparse.ArgumentParser(prog=f"{PROG} eval", description=(
        "Evaluates MODEL as siamese-eval does: each kind of number on its own line."))
    p.add_argument("model")
    p.add_argument("--data", help="evaluation set (folder or .zip), or a folder holding "
                   "images_evaluation")
    p.add_argument("--seed", type=int, default=1)
    _backend_options(p)
    _eval_options(p)
    a = p.parse_args(argv)
    prog = f"{PROG} eval"
    data = a.data
    if data or not a.oneshot_runs:
        data, looked = find_omniglot(a.data, "images_evaluation")
        if data is None:
            print(f"{prog}: nothing to evaluate: no --data, no --oneshot-runs, and no Omniglot "
                  f"evaluation set found ({looked})", file=sys.stderr)
            return 2
    try:
        be = _open_backend(a)
        model = Model.load(be, a.model)
        c, h, w = model.input_shape
        print(f"model: {a.model} ({model.num_params} parameters), backend {be.name}")
        ds, split = None, "the evaluation set"
        if data:
            ds = Dataset.open(data, h, w, resize=True)
            split = os.path.basename(os.path.normpath(data)) or data
            print(f"evaluation set: {data}: {ds.num_alphabets} alphabets, {ds.num_classes} "
                  f"classes, {len(ds)} images")
        return eval_report(model, ds, a, split, True)
    except errors.Error as e:
        return _fail("failed", e, prog)


def compare_main(argv: List[str]) -> int:
    p = argparse.ArgumentParser(prog=f"{PROG} compare", description=(
        "Scores two PNGs with MODEL as siamese-compare does: a score in [0, 1] and same "
        "(>= 0.5) or different."))
    p.add_argument("model")
    p.add_argument("a")
    p.add_argument("b")
    _backend_options(p)
    a = p.parse_args(argv)
    prog = f"{PROG} compare"
    try:
        model = Model.load(_open_backend(a), a.model)
        c, h, w = model.input_shape
        if c != 1:
            print(f"{prog}: the model takes {c}-channel images; PNGs load as grey",
                  file=sys.stderr)
            return 1
        score = model.predict_pair(load_png(a.a, h, w), load_png(a.b, h, w))
    except errors.Error as e:
        return _fail("failed", e, prog)
    print(f"{score:.4f} {'same' if score >= 0.5 else 'different'}")
    if not model.calibration.calibrated:
        print(f"{prog}: note: '{a.model}' is not calibrated: \"same\" means a score >= 0.5, "
              "which is not a calibrated decision point for it", file=sys.stderr)
    return 0


COMMANDS = {"train": train_main, "eval": eval_main, "compare": compare_main}


def main(argv: Optional[List[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        out = sys.stdout if argv and argv[0] in ("-h", "--help") else sys.stderr
        print(f"usage: {PROG} {{train,eval,compare}} [OPTIONS] (--help after a command lists "
              "its options)", file=out)
        return 0 if out is sys.stdout else 2
    return COMMANDS[argv[0]](argv[1:])
