#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""siamese-train's honest selection (suite "examples"; examples/selection.h): --val-alphabets
holds background alphabets out of training, validates 20-way one-shot on them, keeps
OUT/best.safetensors, stops after --patience checks, evaluates the best checkpoint, and reads
the evaluation set only at the end; calibrates the selected model on the validation alphabets
(Platt scaling folded into the head, saved over best.safetensors) unless --no-calibrate, and
reports verification at 0.5 and at the validation alphabets' equal-error threshold; --resize-images opens 40x40 files for a 20x20 arch; bad
options get clear messages.

Usage (tests/meson.build): test_selection.py BUILD_EXAMPLES_DIR
"""
import json
import os
import re
import struct
import subprocess
import sys
import tempfile
import zlib

bindir = sys.argv[1]
failures = []
env = {k: v for k, v in os.environ.items() if k != "SIAMESE_OMNIGLOT_DIR"}


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what)
    if not cond:
        failures.append(what)


def run(*args):
    p = subprocess.run([os.path.join(bindir, "siamese-train"), *args], capture_output=True,
                       text=True, timeout=120, cwd=tmp, env=env)
    return p.returncode, p.stdout, p.stderr


def write_png(path, size, pixel):
    raw = b"".join(b"\0" + bytes(pixel(x, y) for x in range(size)) for y in range(size))

    def chunk(kind, data):
        return (struct.pack(">I", len(data)) + kind + data +
                struct.pack(">I", zlib.crc32(kind + data) & 0xffffffff))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" +
                chunk(b"IHDR", struct.pack(">IIBBBBB", size, size, 8, 0, 0, 0, 0)) +
                chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def glyph(size, k, jitter):
    def pixel(x, y):
        xs = x - jitter
        ink = (abs(xs - (k * 7) % size) < 2 or abs(y - (k * 11) % size) < 2 or
               abs(xs - y - (k * 5) % size + size // 2) < 2)
        return 0 if ink else 255
    return pixel


def make_tree(root, alphabets, classes, size):
    for a, name in enumerate(alphabets):
        for c in range(classes):
            for i in range(2):
                write_png(os.path.join(root, name, f"character{c + 1:02d}", f"{i}.png"), size,
                          glyph(size, a * classes + c, i))


def safetensors_meta(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        return json.loads(f.read(n)).get("__metadata__", {})


def safetensors_iteration(path):
    return int(safetensors_meta(path)["iteration"])


with tempfile.TemporaryDirectory(prefix="siamese-selection.") as tmp:
    bg = os.path.join(tmp, "omniglot", "images_background")
    ev = os.path.join(tmp, "omniglot", "images_evaluation")
    background = ["Aleph", "Bet", "Gimel", "Dalet"]
    make_tree(bg, background, 20, 40)     # 40x40 files: --resize-images to the 20x20 arch
    make_tree(ev, ["Omega", "Psi"], 20, 20)
    arch = "1x20x20:conv4k3,relu,pool2,flatten,fc16"
    base = ["--data", bg, "--eval-data", ev, "--arch", arch, "--resize-images", "--batch", "8",
            "--threads", "1", "--no-figures", "--validation-pairs", "20", "--val-episodes",
            "3", "--eval-batches", "1", "--eval-pairs", "40", "--episodes", "0"]

    # --- without --resize-images the 40x40 files are refused, as before ----------------------
    rc, so, se = run(*[a for a in base if a not in ("--resize-images", "--val-episodes", "3")],
                     "--iterations", "1",
                     "--out", os.path.join(tmp, "o0"))
    check(rc != 0 and 0 <= rc < 128 and "SM_ERR_SHAPE" in se, f"40x40 files refused without --resize-images "
          f"(rc {rc}) {se.strip()[:200]}")

    # --- a run: 2 alphabets held out, a check every 3 steps -----------------------------------
    out = os.path.join(tmp, "out")
    rc, so, se = run(*base, "--lr", "1e-3", "--iterations", "12", "--validate-every", "3",
                     "--val-alphabets", "2", "--out", out)
    check(rc == 0, f"siamese-train --val-alphabets 2 exits 0 (rc {rc}) {se[-400:]}")
    m = re.search(r"^validation set: 2 background alphabets held out of training \(picked by "
                  r"sm_dataset_split_alphabets, seed 1\): (\w+), (\w+);", so, re.M)
    check(m is not None, "names the validation alphabets")
    held = set(m.groups()) if m else set()
    check(held <= set(background) and len(held) == 2, f"held-out alphabets {held}")
    check(re.search(r"^training set: .*: 2 alphabets, 40 classes, 80 images", so, re.M)
          is not None, "the training set has the other 2 alphabets only")
    # The same seed holds out the same alphabets; training never sees them (the library's
    # split, tests/test_select.c, checks that image by image).
    rc2, so2, _ = run(*base, "--iterations", "1", "--validate-every", "1", "--val-alphabets",
                      "2", "--no-calibrate", "--out", os.path.join(tmp, "o1"))
    check(rc2 == 0 and m is not None and m.group(0) in so2, "same --seed, same held-out alphabets")
    # --no-calibrate: best.safetensors as selected, 0.5 said to be uncalibrated, the equal-error
    # threshold still reported
    check("calibration:" not in so2 and "calibration" not in
          safetensors_meta(os.path.join(tmp, "o1", "best.safetensors")) and
          re.search(r"^    cut at 0\.5; the model is not calibrated", so2, re.M) is not None and
          re.search(r"^    at threshold [0-9.e+-]+ \(the validation alphabets' equal error "
                    r"rate\) instead of 0\.5: ", so2, re.M) is not None,
          f"--no-calibrate leaves the model uncalibrated ({so2[-700:]})")
    lines = re.findall(r"^validation one-shot at step (\d+): ([0-9.]+) % \(20-way 1-shot within "
                       r"alphabets, 3 episodes of the validation alphabets; chance 5\.0 %\)", se,
                       re.M)
    check([int(s) for s, _ in lines] == [3, 6, 9, 12], f"a one-shot line every 3 steps {lines}")
    with open(os.path.join(out, "loss.csv")) as f:
        rows = [r.split(",") for r in f.read().splitlines()]
    check(rows[0] == ["iteration", "loss", "elapsed_s", "val_accuracy", "val_oneshot"],
          f"loss.csv: val_oneshot appended after the existing columns {rows[0]}")
    oneshot = [(int(r[0]), float(r[4])) for r in rows[1:] if r[4]]
    check([i for i, _ in oneshot] == [3, 6, 9, 12], "val_oneshot on the checks' rows only")
    check(all(abs(100 * v - float(p)) < 0.01 for (_, v), (_, p) in zip(oneshot, lines)),
          "loss.csv's val_oneshot matches the validation lines")
    best_step, best_acc = None, -1.0
    for i, v in oneshot:
        if v > best_acc:
            best_step, best_acc = i, v
    best = os.path.join(out, "best.safetensors")
    check(os.path.isfile(best) and safetensors_iteration(best) == best_step,
          f"best.safetensors holds step {best_step}, the best validation line")
    m = re.search(r"^best checkpoint: .*best\.safetensors, step (\d+), validation one-shot "
                  r"([0-9.]+) %: the final evaluation uses it", so, re.M)
    check(m is not None and int(m.group(1)) == best_step and
          abs(float(m.group(2)) - 100 * best_acc) < 0.01, "says the final evaluation uses best")
    # the evaluation set is read only after training, and the report is the best model's
    first_read = so.find("evaluation set: " + ev + ": ")
    check(first_read > so.find("best checkpoint:") > 0 and "read now for the first time" in so,
          "the evaluation set is opened only for the final evaluation")
    check("not read until the final evaluation" in so, "says it defers the evaluation set")
    ver = re.search(r"^\(i\) .*", so, re.M)
    p = subprocess.run([os.path.join(bindir, "siamese-eval"), best, "--data", ev,
                        "--eval-batches", "1", "--eval-pairs", "40", "--episodes", "0"],
                       capture_output=True, text=True, timeout=60, env=env)
    ver_eval = re.search(r"^\(i\) .*", p.stdout, re.M)
    check(ver is not None and ver_eval is not None and
          ver.group(0).split("(")[1:2] == ver_eval.group(0).split("(")[1:2] and
          re.sub(r"of \S+\)", "", ver.group(0)) == re.sub(r"of \S+\)", "", ver_eval.group(0)),
          f"final evaluation equals siamese-eval of best.safetensors ({ver and ver.group(0)} / "
          f"{ver_eval and ver_eval.group(0)})")

    # calibration: Platt scaling on the validation alphabets' pairs, after the best checkpoint is
    # loaded and before the evaluation set is read; saved over best.safetensors (still the best
    # step's, now calibrated); model.safetensors, the resume point, stays as trained
    cal = re.search(r"^calibration: Platt scaling on 2000 random pairs of the validation "
                    r"alphabets \(the two kinds weighing equally\): score = sigmoid\(([0-9.e+-]+) "
                    r"z ([+-]) ([0-9.e+-]+)\) of the head's logit z, folded into the head", so, re.M)
    check(cal is not None and
          so.find("best checkpoint:") < cal.start() < so.find("\nevaluation on "),
          f"calibrates the selected model on the validation alphabets ({so[-1500:]})")
    check(f"saved the calibrated model as {best} (the best checkpoint; " in so,
          "says where the calibrated model is")
    meta = safetensors_meta(best)
    check(cal is not None and meta.get("calibration") == "platt" and
          meta.get("calibration_pairs") == "2000" and
          abs(float(meta.get("calibration_scale", "nan")) - float(cal.group(1))) <=
          1e-5 * float(cal.group(1)) and safetensors_iteration(best) == best_step and
          "calibration" not in safetensors_meta(os.path.join(out, "model.safetensors")),
          f"best.safetensors records the calibration, model.safetensors does not ({meta})")
    check(re.search(r"^\(i\) .*\n(    .*\n)*    cut at 0\.5, the calibrated decision point "
                    r"\(Platt scaling folded into the head: scale [0-9.e+-]+, shift [+-][0-9.e+-]+, "
                    r"fitted on 2000 pairs\)\n    at threshold [0-9.e+-]+ \(the validation "
                    r"alphabets' equal error rate\) instead of 0\.5: [0-9.]+ %", so, re.M) is not None,
          "verification on the evaluation set at the calibrated 0.5 and at the equal-error "
          "threshold")
    check("cut at 0.5, the calibrated decision point" in p.stdout,
          "siamese-eval reads best.safetensors as calibrated")
    # no validation check: the last step's weights are calibrated and saved as best
    out_n = os.path.join(tmp, "out_n")
    rc, so, se = run(*base, "--iterations", "2", "--validate-every", "0", "--val-alphabets", "2",
                     "--out", out_n)
    best_n = os.path.join(out_n, "best.safetensors")
    check(rc == 0 and f"saved the calibrated model as {best_n} (the last step's weights: no "
          "check ran;" in so and os.path.isfile(best_n) and
          safetensors_meta(best_n).get("calibration") == "platt" and
          safetensors_iteration(best_n) == 2,
          f"--validate-every 0: the last step's weights calibrated as best.safetensors (rc {rc}) "
          f"{so[-500:]} {se[-300:]}")

    # --- a broken evaluation set fails only after training (it is not read before) -----------
    broken = os.path.join(tmp, "broken_eval")
    make_tree(broken, ["Omega", "Psi"], 20, 20)
    with open(os.path.join(broken, "Psi", "character01", "0.png"), "wb") as f:
        f.write(b"not a png")
    out_b = os.path.join(tmp, "out_b")
    rc, so, se = run(*[a if a != ev else broken for a in base], "--iterations", "2",
                     "--validate-every", "1", "--val-alphabets", "2", "--out", out_b)
    check(rc != 0 and "validation one-shot at step 2" in se and
          os.path.isfile(os.path.join(out_b, "best.safetensors")) and
          "cannot open the evaluation set" in se,
          f"a broken evaluation set is noticed only at the final evaluation (rc {rc})")

    # --- named alphabets, patience ------------------------------------------------------------
    out_p = os.path.join(tmp, "out_p")
    rc, so, se = run(*base, "--lr", "1e-9", "--iterations", "40", "--validate-every", "2",
                     "--val-alphabets", "Gimel,Bet", "--patience", "2", "--out", out_p)
    check(rc == 0 and "held out of training (named by --val-alphabets): Bet, Gimel;" in so,
          f"--val-alphabets with names (rc {rc}) {se[-300:]}")
    with open(os.path.join(out_p, "loss.csv")) as f:
        last = int(f.read().splitlines()[-1].split(",")[0])
    check("early stop at step 6: 2 checks without improvement (--patience 2)" in so and
          last == 6, f"--patience 2 stops after 2 checks without improvement (last step {last})")
    check(safetensors_iteration(os.path.join(out_p, "best.safetensors")) == 2,
          "best.safetensors is the first check's when nothing improves")

    # --- the reference run is unchanged: no column, no best.safetensors ------------------------
    out_r = os.path.join(tmp, "out_r")
    rc, so, se = run(*[a for a in base if a not in ("--val-episodes", "3")], "--iterations",
                     "2", "--validate-every", "1", "--out", out_r)
    with open(os.path.join(out_r, "loss.csv")) as f:
        header = f.readline().strip()
    check(rc == 0 and header == "iteration,loss,elapsed_s,val_accuracy" and
          not os.path.exists(os.path.join(out_r, "best.safetensors")) and
          "calibration:" not in so,
          f"without --val-alphabets nothing changes (rc {rc}) {se[-200:]}")

    # --- bad options -------------------------------------------------------------------------
    bad = [
        (["--val-alphabets", "0"], "--val-alphabets wants a count"),
        (["--val-alphabets", "Bet,,Gimel"], "--val-alphabets wants a count"),
        (["--val-alphabets", "4"], "cannot hold out 4 of the 4 training alphabets"),
        (["--val-alphabets", "Zayin"], "excluded alphabet 'Zayin' not found"),
        (["--val-alphabets", "2", "--val-episodes", "0"], "--val-episodes wants"),
        (["--patience", "3"], "--patience needs --val-alphabets"),
        (["--val-episodes", "3"], "--val-episodes needs --val-alphabets"),
        (["--no-calibrate"], "--no-calibrate needs --val-alphabets"),
        (["--val-alphabets", "2", "--patience", "-1"], "--patience wants"),
        (["--val-alphabets", "2", "--patience", "2", "--validate-every", "0"],
         "--patience needs validation checks"),
    ]
    for args, message in bad:
        rc, so, se = run(*[a for a in base if a not in ("--val-episodes", "3")], *args,
                         "--iterations", "1", "--out", os.path.join(tmp, "bad"))
        check(rc != 0 and 0 <= rc < 128 and message in se and se.startswith("siamese-train: "),
              f"{' '.join(args)}: rc {rc}, says '{message}' ({se.strip()[:200]})")

    # 20-way episodes need an alphabet of 20 classes among the held-out ones
    small = os.path.join(tmp, "small")
    make_tree(small, ["Aleph", "Bet", "Gimel"], 5, 20)
    rc, so, se = run("--data", small, "--eval-data", ev, "--arch", arch, "--batch", "8",
                     "--threads", "1", "--no-figures", "--iterations", "1", "--val-alphabets",
                     "1", "--out", os.path.join(tmp, "o2"))
    check(rc != 0 and "cannot give 20-way 1-shot within-alphabet episodes" in se,
          f"too few classes to validate: a clear message (rc {rc}) {se.strip()[:200]}")

if failures:
    print(f"{len(failures)} check(s) failed", file=sys.stderr)
    sys.exit(1)
