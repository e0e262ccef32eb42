#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The example programs as a user runs them (suite "examples").

siamese-train on a tiny synthetic setup with figures, validation and every kind of evaluation;
each figure exists and has the size examples/figures.h gives it; the loss log's rows;
siamese-compare on generated PNGs of other sizes, in colour and with alpha; siamese-eval on a
generated dataset folder and generated one-shot runs; and bad arguments: a clear message and
a nonzero exit, never a crash.

Usage (tests/meson.build): test_examples.py BUILD_EXAMPLES_DIR FIGURES(0|1) GRID_WxH PAIRS_WxH
LOSS_WxH ROC_WxH DNNL_BUILT(0|1)
"""
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import zlib

bindir, with_figures = sys.argv[1], sys.argv[2] == "1"
sizes = {name: tuple(int(v) for v in arg.split("x"))
         for name, arg in zip(("grid", "pairs", "loss", "roc"), sys.argv[3:7])}
dnnl_built = len(sys.argv) > 7 and sys.argv[7] == "1"
failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what)
    if not cond:
        failures.append(what)


# Runs see no Omniglot unless a check puts it there: CI sets SIAMESE_OMNIGLOT_DIR, and the
# programs look for data in it and in ./data/omniglot when --data is not given.
quiet_env = {k: v for k, v in os.environ.items() if k != "SIAMESE_OMNIGLOT_DIR"}
# ... nor a module folder: the programs must find the modules the build staged beside
# libsiamese.so (build/lib/libsiamese/), as a user running them from the build tree does
quiet_env.pop("SIAMESE_BACKEND_DIR", None)


def run(prog, *args, cwd=None, env=None):
    p = subprocess.run([os.path.join(bindir, prog), *args], capture_output=True, text=True,
                       timeout=120, cwd=cwd or scratch, env=env or quiet_env)
    return p.returncode, p.stdout, p.stderr


def png_size(path):
    with open(path, "rb") as f:
        head = f.read(24)
    if head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        return None
    return struct.unpack(">II", head[16:24])


def write_png(path, width, height, channels, pixel):
    """A PNG of 8-bit grey (1), grey+alpha (2), RGB (3) or RGBA (4) pixels pixel(x, y)."""
    colour_type = {1: 0, 2: 4, 3: 2, 4: 6}[channels]
    raw = b"".join(b"\0" + bytes(v for x in range(width) for v in pixel(x, y))
                   for y in range(height))

    def chunk(kind, data):
        return (struct.pack(">I", len(data)) + kind + data +
                struct.pack(">I", zlib.crc32(kind + data) & 0xffffffff))
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" +
                chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, colour_type, 0, 0, 0)) +
                chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def glyph(size, k, jitter):
    """A grey glyph: class k's strokes, shifted by `jitter` pixels (ink 0 on white 255)."""
    def pixel(x, y):
        xs, ys = x - jitter, y
        ink = (abs(xs - (k * 7) % size) < 2 or abs(ys - (k * 11) % size) < 2 or
               abs(xs - ys - (k * 5) % size + size // 2) < 2)
        return (0,) if ink else (255,)
    return pixel


def no_crash(rc):
    return 0 <= rc < 128


with tempfile.TemporaryDirectory(prefix="siamese-examples.") as tmp:
    scratch = os.path.join(tmp, "cwd")
    os.makedirs(scratch)
    out = os.path.join(tmp, "out")
    arch = "1x32x32:conv4k5,relu,pool2,conv8k3,relu,pool2,flatten,fc16"
    train_args = ["--arch", arch, "--lr", "1e-3", "--batch", "8", "--iterations", "12",
                  "--synthetic-classes", "30", "--synthetic-images", "4", "--threads", "1",
                  "--figure-every", "5", "--validate-every", "5", "--validation-pairs", "20",
                  "--eval-batches", "2", "--eval-pairs", "20", "--episodes", "3", "--way", "5",
                  "--between-alphabets", "--out", out]

    # --- siamese-train: figures, log, evaluation ------------------------------------------
    rc, so, se = run("siamese-train", *train_args)
    check(rc == 0, f"siamese-train on synthetic glyphs exits 0 (rc {rc}) {se[-400:]}")
    if dnnl_built:
        check(re.search(r"^backend: cpu-dnnl", so, re.M) is not None,
              "the build's cpu-dnnl module is found from the build tree (build/lib/libsiamese/): "
              + (re.search(r"^backend: .*", so, re.M) or re.search("", "")).group(0))
    check(re.search(r"^\(i\) +random-pair verification: [0-9.]+ %", so, re.M) is not None,
          "reports (i) verification on its own line")
    check(re.search(r"^\(i\) .*\n(    .*\n)*    cut at 0\.5; the model is not calibrated, so 0\.5 is where its "
                    r"training loss put the cut", so, re.M) is not None,
          "says that 0.5 is not a calibrated cut without --val-alphabets")
    check(re.search(r"^    equal error rate [0-9.]+ % at threshold [0-9.e+-]+; for a false-accept rate "
                    r"of at most 1 %: threshold", so, re.M) is not None,
          "reports the equal error rate and the threshold for 1 % FAR under (i)")
    check(re.search(r"^\(iii\) 5-way 1-shot episodes between alphabets: [0-9.]+ %.*of 15 .*chance 20\.0 %",
                    so, re.M) is not None, "reports (iii) 5-way episodes with trials and chance")
    check("validation at step 5:" in se and "validation at step 10:" in se,
          "prints a validation line every 5 steps")
    check("augmentation off" in so, "says augmentation is off by default")
    with open(os.path.join(out, "loss.csv")) as f:
        rows = f.read().splitlines()
    check(rows[0] == "iteration,loss,elapsed_s,val_accuracy", "loss.csv header")
    check(len(rows) == 13, f"loss.csv has 12 rows (has {len(rows) - 1})")
    check(all(len(r.split(",")) == 4 for r in rows[1:]), "loss.csv rows have 4 columns")
    check(rows[5].split(",")[3] != "" and rows[4].split(",")[3] == "",
          "val_accuracy only on validation rows")
    check(os.path.isfile(os.path.join(out, "model.safetensors")), "writes model.safetensors")
    figures = {"training-images.png": "grid", "training-pairs.png": "pairs",
               "training-loss.png": "loss", "test-pairs.png": "pairs", "roc.png": "roc"}
    if with_figures:
        for name, kind in figures.items():
            path = os.path.join(out, "figures", name)
            size = png_size(path) if os.path.isfile(path) else None
            check(size == sizes[kind], f"{name}: {size}, expected {sizes[kind]}")
        leftovers = [n for n in os.listdir(os.path.join(out, "figures")) if n.endswith(".tmp")]
        check(not leftovers, f"no temporary figure files left ({leftovers})")
    else:
        check("note: no figures" in so, "says that it was built without figures")

    # --augment, --resume and --no-figures, a second short run in another folder.
    out2 = os.path.join(tmp, "out2")
    base = train_args[:train_args.index("--out")]
    rc, so, se = run("siamese-train", *base, "--iterations", "4", "--augment", "--no-figures",
                     "--validate-every", "0", "--episodes", "0", "--out", out2)
    check(rc == 0 and "augmentation on" in so, f"--augment trains (rc {rc}) {se[-300:]}")
    check(not os.path.exists(os.path.join(out2, "figures")), "--no-figures draws nothing")
    rc, so, se = run("siamese-train", *base, "--iterations", "6", "--augment", "--no-figures",
                     "--validate-every", "0", "--episodes", "0", "--resume", "--out", out2)
    with open(os.path.join(out2, "loss.csv")) as f:
        iters = [r.split(",")[0] for r in f.read().splitlines()[1:]]
    check(rc == 0 and "resumed from" in so and iters == [str(i) for i in range(1, 7)],
          f"--resume continues the log at step 5 ({iters})")

    out3 = os.path.join(tmp, "out3")
    rc, so, se = run("siamese-train", *base, "--iterations", "1000000", "--time-limit", "1s",
                     "--no-figures", "--validate-every", "0", "--episodes", "0", "--out", out3)
    check(rc == 0 and "time limit of 1 s reached after" in so and "(i)" in so,
          f"--time-limit stops training, saves and evaluates (rc {rc})")

    # --pk, --pk-loss, --neg-same-alphabet, --alphabet-balanced (0.3), and a resume of them
    out_pk = os.path.join(tmp, "out-pk")
    pk = ["--pk", "4,3", "--pk-loss", "bce-unweighted", "--neg-same-alphabet", "0.5",
          "--alphabet-balanced", "--no-figures", "--validate-every", "0", "--episodes", "0",
          "--out", out_pk]
    rc, so, se = run("siamese-train", *base, "--iterations", "3", *pk)
    check(rc == 0 and "P x K batches: 4 classes x 3 images = 12 images, 66 pairs" in so
          and "alphabet-balanced on" in so, f"--pk trains (rc {rc}) {so[-300:]} {se[-300:]}")
    rc, so, se = run("siamese-train", *base, "--iterations", "5", "--resume", *pk)
    with open(os.path.join(out_pk, "loss.csv")) as f:
        iters = [r.split(",")[0] for r in f.read().splitlines()[1:]]
    check(rc == 0 and iters == [str(i) for i in range(1, 6)], f"--pk --resume ({iters})")
    for bad in (["--pk", "1,4"], ["--pk", "4"], ["--pk", "4,1"], ["--pk-loss", "hinge"],
                ["--neg-same-alphabet", "1.5"]):
        rc, so, se = run("siamese-train", *base, *bad, "--out", os.path.join(tmp, "bad"))
        check(rc == 2 and bad[0] in se, f"{bad} is refused (rc {rc}) {se[-200:]}")
    # --rotate-classes (0.4): 4x the training classes, with --pk and held-out alphabets (1 of the
    # 3 synthetic alphabets: 20 training classes -> 80), and a resume of it
    out_rot = os.path.join(tmp, "out-rot")
    rot = ["--rotate-classes", "--pk", "4,2", "--val-alphabets", "1", "--no-figures",
           "--validate-every", "0", "--episodes", "0", "--out", out_rot]
    rc, so, se = run("siamese-train", *base, "--iterations", "2", *rot)
    check(rc == 0 and "rotated classes on: each character also turned by 90, 180 and 270 degrees, "
          "20 -> 80 training classes" in so, f"--rotate-classes trains (rc {rc}) {so[-400:]} {se[-300:]}")
    rc, so, se = run("siamese-train", *base, "--iterations", "3", "--resume", *rot)
    check(rc == 0 and "resumed from" in so, f"--rotate-classes --resume (rc {rc}) {se[-300:]}")
    rc, so, se = run("siamese-train", *base, "--iterations", "2", "--pk", "4,5", "--no-figures",
                     "--validate-every", "0", "--episodes", "0", "--out", os.path.join(tmp, "out-pk-bad"))
    check(rc != 0 and "largest class has 4" in se, f"--pk 4,5 on 4-image classes: {se[-300:]}")

    # Learning-rate schedule and weight decay: the progress line shows the rate (warm-up 2:
    # half at step 1; cosine to 1e-3 * 0.1 reached at the last step by default), and a run
    # stopped at step 3 and resumed continues exactly (the same losses as one straight run).
    sched = ["--no-figures", "--validate-every", "0", "--episodes", "0", "--warmup", "2",
             "--schedule", "cosine", "--min-lr-factor", "0.1", "--weight-decay-conv", "1e-3",
             "--weight-decay-fc", "2e-3", "--weight-decay-head", "1e-2"]
    out4 = os.path.join(tmp, "out4")
    rc, so, se = run("siamese-train", *base, *sched, "--iterations", "6", "--out", out4)
    check(rc == 0 and "learning-rate schedule: warm-up 2 steps, then cosine over 3 steps down "
          "to 0.0001" in so and "weight decay (L2, biases excluded): conv 0.001, fc 0.002, "
          "head 0.01" in so, f"--warmup/--schedule cosine/--weight-decay-* train (rc {rc}) "
          f"{so[-300:]} {se[-300:]}")
    check(re.search(r"^1/6 .* lr 0\.0005 ", se, re.M) is not None and
          re.search(r"^6/6 .* lr 0\.0001 ", se, re.M) is not None,
          f"the progress line shows the scheduled rate ({se[:400]})")
    out5 = os.path.join(tmp, "out5")
    with open(os.path.join(out4, "loss.csv")) as f:
        straight = [r.split(",")[1] for r in f.read().splitlines()[1:]]
    rc1, _, se1 = run("siamese-train", *base, *sched, "--schedule-steps", "3", "--iterations",
                      "3", "--out", out5)
    rc2, so2, se2 = run("siamese-train", *base, *sched, "--schedule-steps", "3", "--iterations",
                        "6", "--resume", "--out", out5)
    with open(os.path.join(out5, "loss.csv")) as f:
        resumed = [r.split(",")[1] for r in f.read().splitlines()[1:]]
    check(rc1 == 0 and rc2 == 0 and "resumed from" in so2 and resumed == straight,
          f"a scheduled run resumed at step 4 gives the straight run's losses ({resumed} vs "
          f"{straight}) {se1[-200:]} {se2[-200:]}")
    out6 = os.path.join(tmp, "out6")
    rc, so, se = run("siamese-train", *base, "--no-figures", "--validate-every", "0",
                     "--episodes", "0", "--iterations", "7", "--schedule", "step",
                     "--schedule-steps", "3", "--step-gamma", "0.5", "--out", out6)
    check(rc == 0 and re.search(r"^3/7 .* lr 0\.001 ", se, re.M) is not None and
          re.search(r"^4/7 .* lr 0\.0005 ", se, re.M) is not None and
          re.search(r"^7/7 .* lr 0\.00025 ", se, re.M) is not None,
          f"--schedule step halves the rate every 3 steps (rc {rc}) {se[-500:]}")

    # A cosine schedule under --time-limit (no --schedule-steps) reaches its floor when the
    # time runs out, not at the last of --iterations: the last progress line's rate is near
    # the floor (1e-4), far from the 1e-3 a length of 100000 steps would still give.
    out7 = os.path.join(tmp, "out7")
    rc, so, se = run("siamese-train", *base, "--no-figures", "--validate-every", "0",
                     "--episodes", "0", "--iterations", "100000", "--time-limit", "3",
                     "--warmup", "1", "--schedule", "cosine", "--min-lr-factor", "0.1",
                     "--out", out7)
    last = re.findall(r"^ *([0-9]+)/100000 .* lr ([0-9.e-]+) ", se, re.M)
    check(rc == 0 and "cosine down to 0.0001 at the time limit" in so and last and
          int(last[-1][0]) > 10 and float(last[-1][1]) < 2.5e-4,
          f"--schedule cosine with --time-limit ends near its floor (rc {rc}, last {last[-1:]})"
          f" {se[-300:]}")

    # --preset: the recipe's options come first, so the user's override them; the preset's
    # --val-alphabets then wants 20-way episodes that synthetic alphabets (10 classes) cannot
    # give: a clear refusal after the options took effect, not a crash.
    rc, so, se = run("siamese-train", "--help")
    check(rc == 0 and "  oneshot-cpu: " in so and "--init he" in so, "--help lists the presets")
    tiny28 = "1x28x28:conv4k3,relu,pool2,flatten,fc8"
    rc, so, se = run("siamese-train", "--data", "synthetic", "--preset", "oneshot-cpu", "--arch",
                     tiny28, "--iterations", "2", "--no-figures", "--threads", "1", "--out",
                     os.path.join(tmp, "out8"))
    check(rc == 1 and "preset: oneshot-cpu" in so and f"arch: {tiny28} (" in so and
          "He initialisation" in so and "validation set: 5 background alphabets held out" in so
          and "cannot give 20-way 1-shot within-alphabet episodes" in se,
          f"--preset oneshot-cpu with --arch overriding its twin (rc {rc}) {so[-600:]} {se[-300:]}")
    for args, want in ((["--preset", "nope"], "unknown preset 'nope'"),
                       (["--preset"], "--preset needs a name"),
                       (["--preset=oneshot-cpu", "--preset", "oneshot-cpu"], "given twice")):
        rc, so, se = run("siamese-train", *args)
        check(rc == 2 and want in se, f"siamese-train {' '.join(args)}: exit 2, '{want}' ({se})")

    # --- siamese-compare on any PNG ---------------------------------------------------------
    model = os.path.join(out, "model.safetensors")
    pngs = {
        "grey32.png": (32, 32, 1, lambda x, y: glyph(32, 3, 0)(x, y)),
        "grey64x48.png": (64, 48, 1, lambda x, y: glyph(64, 3, 1)(x, y)),
        "rgb50.png": (50, 50, 3, lambda x, y: (200, 30, 30) if (x + y) % 9 < 3 else (255, 255, 255)),
        "rgba20x30.png": (20, 30, 4, lambda x, y: (0, 0, 0, 255 if x < 10 else 0)),
        "greyalpha.png": (40, 40, 2, lambda x, y: (0, (x * 6) % 256)),
    }
    for name, (w, h, ch, px) in pngs.items():
        write_png(os.path.join(tmp, name), w, h, ch, px)
    answer = re.compile(r"^[01]\.[0-9]{4} (same|different)\n$")
    for a, b in [("grey32.png", "grey64x48.png"), ("rgb50.png", "rgba20x30.png"),
                 ("greyalpha.png", "grey32.png")]:
        rc, so, se = run("siamese-compare", model, os.path.join(tmp, a), os.path.join(tmp, b))
        check(rc == 0 and answer.match(so) is not None,
              f"siamese-compare {a} {b}: rc {rc}, '{so.strip()}' {se.strip()}")
        check(se.startswith("siamese-compare: note: ") and "is not calibrated" in se,
              f"siamese-compare notes an uncalibrated model's 0.5 ({se.strip()})")

    # --- siamese-eval on a generated dataset and generated runs -------------------------------
    data = os.path.join(tmp, "data")
    for a in range(2):
        for c in range(6):
            d = os.path.join(data, f"Alpha{a}", f"character{c + 1:02d}")
            os.makedirs(d)
            for i in range(3):
                write_png(os.path.join(d, f"{i}.png"), 32, 32, 1, glyph(32, a * 6 + c, i))
    runs = os.path.join(tmp, "all_runs")
    for r in (1, 2):
        run_dir = os.path.join(runs, f"run{r:02d}")
        os.makedirs(os.path.join(run_dir, "training"))
        os.makedirs(os.path.join(run_dir, "test"))
        lines = []
        for k in range(5):
            write_png(os.path.join(run_dir, "training", f"class{k + 1:02d}.png"), 32, 32, 1,
                      glyph(32, k + r, 0))
            q = (k + 2) % 5
            write_png(os.path.join(run_dir, "test", f"item{k + 1:02d}.png"), 32, 32, 1,
                      glyph(32, q + r, 1))
            lines.append(f"run{r:02d}/test/item{k + 1:02d}.png run{r:02d}/training/class{q + 1:02d}.png")
        with open(os.path.join(run_dir, "class_labels.txt"), "w") as f:
            f.write("\n".join(lines) + "\n")
    rc, so, se = run("siamese-eval", model, "--data", data, "--eval-batches", "1",
                     "--eval-pairs", "30", "--oneshot-runs", runs, "--episodes", "4", "--way",
                     "5", "--within-alphabet", "--threshold", "0.25")
    check(rc == 0, f"siamese-eval exits 0 (rc {rc}) {se.strip()}")
    check(re.search(r"^    at threshold 0\.25 \(--threshold\) instead of 0\.5: [0-9.]+ % "
                    r"\([0-9.]+ of 30\)", so, re.M) is not None, f"siamese-eval --threshold ({so})")
    check(re.search(r"^\(i\) .*30 random pairs", so, re.M) is not None, "siamese-eval (i)")
    check(re.search(r"^\(ii\) +5-way one-shot, official runs:.*of 10 queries in 2 runs", so, re.M) is not None,
          "siamese-eval (ii) official-run format: 10 queries in 2 runs")
    check(re.search(r"^\(iii\) 5-way 1-shot episodes within alphabets:.*of 20 queries", so, re.M)
          is not None, "siamese-eval (iii) within alphabets: 20 queries")

    # --- where the programs look for Omniglot: --data, $SIAMESE_OMNIGLOT_DIR, ./data/omniglot ----
    short = ["--arch", arch, "--iterations", "1", "--batch", "4", "--threads", "1", "--no-figures",
             "--validate-every", "0", "--episodes", "0", "--eval-batches", "1", "--eval-pairs",
             "10"]
    home = os.path.join(tmp, "home")  # a working directory with ./data/omniglot filled
    shutil.copytree(data, os.path.join(home, "data", "omniglot", "images_background"))
    shutil.copytree(data, os.path.join(home, "data", "omniglot", "images_evaluation"))
    rc, so, se = run("siamese-train", *short, "--out", os.path.join(tmp, "o4"), cwd=home)
    check(rc == 0 and "Omniglot found: data/omniglot/images_background\n" in so and
          re.search(r"^training set: data/omniglot/images_background: 2 alphabets, 12 classes",
                    so, re.M) is not None and
          "evaluation set: data/omniglot/images_evaluation:" in so,
          f"siamese-train finds ./data/omniglot (rc {rc}) {so[-300:]} {se[-200:]}")
    env = dict(quiet_env, SIAMESE_OMNIGLOT_DIR=os.path.join(home, "data", "omniglot"))
    rc, so, se = run("siamese-train", *short, "--out", os.path.join(tmp, "o5"), env=env)
    check(rc == 0 and f"Omniglot found: {env['SIAMESE_OMNIGLOT_DIR']}/images_background" in so,
          f"siamese-train finds $SIAMESE_OMNIGLOT_DIR (rc {rc}) {so[-300:]}")
    rc, so, se = run("siamese-train", *short, "--data", "synthetic", "--out",
                     os.path.join(tmp, "o6"), env=env, cwd=home)
    check(rc == 0 and "training set: synthetic glyphs" in so and "Omniglot found" not in so,
          f"--data synthetic wins over the lookup (rc {rc})")
    rc, so, se = run("siamese-train", *short, "--data", os.path.join(home, "data", "omniglot"),
                     "--out", os.path.join(tmp, "o7"))
    check(rc == 0 and re.search(r"^training set: .*/data/omniglot/images_background: 2 alphabets",
                                so, re.M) is not None,
          f"--data FOLDER holding images_background/ (rc {rc}) {so[-300:]}")
    env_none = dict(quiet_env, SIAMESE_OMNIGLOT_DIR=os.path.join(tmp, "nowhere"))
    rc, so, se = run("siamese-train", *short, "--out", os.path.join(tmp, "o8"), env=env_none)
    check(rc == 0 and "no Omniglot data found ($SIAMESE_OMNIGLOT_DIR=" in so and
          "./data/omniglot has no images_background.zip or images_background/" in so and
          "training set: synthetic glyphs" in so,
          f"says where it looked, then trains on synthetic glyphs (rc {rc}) {so[-400:]}")
    rc, so, se = run("siamese-eval", model, "--eval-batches", "1", "--eval-pairs", "10",
                     "--episodes", "0", cwd=home)
    check(rc == 0 and "Omniglot found: data/omniglot/images_evaluation" in so,
          f"siamese-eval finds ./data/omniglot (rc {rc}) {se[-200:]}")
    rc, so, se = run("siamese-eval", model, env=env_none)
    check(rc == 2 and "nothing to evaluate" in se and "$SIAMESE_OMNIGLOT_DIR=" in se,
          f"siamese-eval says where it looked (rc {rc}) {se.strip()[:300]}")

    # --- bad arguments: a message naming the problem, a nonzero exit, no crash ---------------
    not_png = os.path.join(tmp, "not-a-png.png")
    with open(not_png, "w") as f:
        f.write("hello\n")
    bad = [
        ("siamese-train", ["--batch", "0"], "--batch wants a whole number"),
        ("siamese-train", ["--lr", "fast"], "--lr wants a number"),
        ("siamese-train", ["--lr", "nan"], "--lr wants a number"),
        ("siamese-train", ["--iterations"], "needs a value"),
        ("siamese-train", ["--bogus"], "unknown option '--bogus'"),
        ("siamese-train", ["stray"], "unexpected argument 'stray'"),
        ("siamese-train", ["--arch", "1x32x32:conv4k99", "--iterations", "1"], "bad --arch"),
        ("siamese-train", ["--data", os.path.join(tmp, "missing.zip"), "--arch", arch],
         "cannot open the training set"),
        ("siamese-train", ["--backend", "gpu"], "--backend wants auto, cpu, cpu-dnnl or cuda"),
        ("siamese-train", ["--conv-algo", "winograd"], "--conv-algo wants auto, direct, fft or measured"),
        ("siamese-train", ["--precision", "fp16"], "--precision wants fp32 or bf16"),
        # cpu-blas has no bf16 path: a status says so, never a silent slow path
        ("siamese-train", ["--backend", "cpu", "--precision", "bf16", "--iterations", "1"],
         "the cpu-blas backend refuses --precision bf16"),
        ("siamese-train", ["--way", "1"], "--way wants a whole number in [2, 1000]"),
        ("siamese-train", ["--time-limit", "-1m"], "--time-limit wants a duration"),
        ("siamese-train", ["--schedule", "linear"], "--schedule wants constant, cosine or step"),
        ("siamese-train", ["--schedule", "step"], "--schedule step needs --schedule-steps"),
        ("siamese-train", ["--schedule-steps", "0"], "--schedule-steps wants a whole number"),
        ("siamese-train", ["--warmup", "-1"], "--warmup wants a whole number"),
        ("siamese-train", ["--min-lr-factor", "1.5"], "--min-lr-factor wants a number"),
        ("siamese-train", ["--step-gamma", "0"], "--step-gamma wants a number"),
        ("siamese-train", ["--weight-decay-conv", "nan"], "--weight-decay-conv wants a number"),
        ("siamese-train", ["--weight-decay-fc", "-1"], "--weight-decay-fc wants a number"),
        ("siamese-train", ["--weight-decay-head", "2"], "--weight-decay-head wants a number"),
        ("siamese-compare", [], "expected 3 arguments"),
        ("siamese-compare", [model, not_png], "expected 3 arguments"),
        ("siamese-compare", [os.path.join(tmp, "none.safetensors"), not_png, not_png],
         "cannot load the model"),
        ("siamese-compare", [not_png, not_png, not_png], "cannot load the model"),
        ("siamese-compare", [model, not_png, os.path.join(tmp, "grey32.png")],
         "cannot read the image"),
        ("siamese-compare", [model, os.path.join(tmp, "none.png"), not_png],
         "cannot read the image"),
        ("siamese-eval", [], "no MODEL given"),
        ("siamese-eval", [model], "nothing to evaluate"),
        ("siamese-eval", [model, "--data", os.path.join(tmp, "nowhere")], "cannot open"),
        ("siamese-eval", [model, "--oneshot-runs", data], "cannot open the one-shot runs"),
        ("siamese-eval", [model, "--data", data, "--episodes", "2", "--way", "7",
                          "--within-alphabet"], "episodes"),
        ("siamese-eval", [model, "--shot", "0"], "--shot wants"),
        ("siamese-eval", [model, "--precision", "fp16"], "--precision wants fp32 or bf16"),
    ]
    for prog, args, message in bad:
        rc, so, se = run(prog, *args)
        check(rc != 0 and no_crash(rc) and message in se and se.startswith(prog + ": "),
              f"{prog} {' '.join(os.path.basename(a) for a in args)}: rc {rc}, "
              f"says '{message}' ({se.strip()[:200]})")
    for prog in ("siamese-train", "siamese-compare", "siamese-eval"):
        rc, so, se = run(prog, "--help")
        check(rc == 0 and so.startswith("Usage: " + prog), f"{prog} --help")

if failures:
    print(f"{len(failures)} check(s) failed", file=sys.stderr)
    sys.exit(1)
