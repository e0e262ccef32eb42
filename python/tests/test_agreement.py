# SPDX-License-Identifier: MIT
"""The package against the C example programs on the same seeds: the same model bytes and
the same numbers; `python -m siamese`; finding the library."""
import os
import re
import shutil
import subprocess
import sys

import pytest

import siamese
from conftest import BUILD, SOURCE, TINY, glyph, write_png

EXAMPLES = os.path.join(BUILD, "examples")
needs_examples = pytest.mark.skipif(
    not os.path.exists(os.path.join(EXAMPLES, "siamese-train")),
    reason="the example programs are not built (-Dexamples=false)")

COMMON = ["--data", "synthetic", "--synthetic-classes", "20", "--synthetic-images", "4",
          "--arch", TINY, "--batch", "8", "--lr", "1e-3", "--validate-every", "0",
          "--eval-batches", "1", "--eval-pairs", "50", "--save-every", "0", "--backend", "cpu",
          "--threads", "1", "--seed", "7", "--episodes", "10", "--way", "5"]


def env():
    """This process's package and library, as absolute paths (subprocesses run elsewhere)."""
    e = dict(os.environ)
    e.pop("SIAMESE_OMNIGLOT_DIR", None)
    e["PYTHONPATH"] = os.path.dirname(os.path.dirname(os.path.abspath(siamese.__file__)))
    e["SIAMESE_LIBRARY"] = siamese.library_path()
    return e


def run_c(prog, *args, cwd):
    p = subprocess.run([os.path.join(EXAMPLES, prog), *map(str, args)], cwd=cwd, env=env(),
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    return p.stdout


def run_py(*args, cwd, rc=0):
    p = subprocess.run([sys.executable, "-m", "siamese", *map(str, args)], cwd=cwd, env=env(),
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == rc, p.stderr
    return p.stdout if rc == 0 else p.stderr


def report_lines(out):
    """The evaluation lines, (i) to (iii) and the lines under them."""
    return [ln for ln in out.splitlines() if re.match(r"^(\((i|ii|iii)\)|    )", ln)]


@needs_examples
def test_api_train_gives_siamese_train_bytes(tmp_path):
    """The API, by hand, as siamese-train sets things up: the same file, byte for byte."""
    c = run_c("siamese-train", *COMMON, "--iterations", "5", "--out", "c", "--no-figures",
              cwd=tmp_path)
    c_losses = [float(r.split(",")[1]) for r in
                (tmp_path / "c" / "loss.csv").read_text().splitlines()[1:]]
    with siamese.Backend("cpu", threads=1) as be:
        m = siamese.Model.create(be, TINY, seed=7)
        ds = siamese.Dataset.synthetic(20, 4, 16, 16, seed=7)
        tr = siamese.Trainer(m, ds, seed=9, adam_lr=1e-3, batch_size=8)
        losses = [tr.step() for _ in range(5)]
        tr.save(tmp_path / "py.safetensors")
        ev = siamese.Dataset.synthetic(10, 4, 16, 16, seed=7 + 1000003)
        r = siamese.verification_accuracy(m, ev, 50, seed=7 + 0x5EED)
        tr.close()
        m.close()
    assert (tmp_path / "py.safetensors").read_bytes() == \
        (tmp_path / "c" / "model.safetensors").read_bytes()
    assert [round(v, 6) for v in losses] == c_losses
    assert f"verification: {100 * r.accuracy:.2f} % ({r.correct:.1f} of 50 random" in c


@needs_examples
@pytest.mark.parametrize("extra", [
    [],
    ["--pk", "4,2", "--pk-loss", "softmax", "--rotate-classes", "--augment", "--init", "he",
     "--warmup", "2", "--schedule", "cosine", "--weight-decay-fc", "0.01",
     "--alphabet-balanced", "--neg-same-alphabet", "0.5"],
])
def test_cli_train_matches_siamese_train(tmp_path, extra):
    c = run_c("siamese-train", *COMMON, *extra, "--iterations", "6", "--out", "c",
              "--no-figures", cwd=tmp_path)
    py = run_py("train", *COMMON, *extra, "--iterations", "6", "--out", "p", cwd=tmp_path)
    assert (tmp_path / "p" / "model.safetensors").read_bytes() == \
        (tmp_path / "c" / "model.safetensors").read_bytes()
    assert report_lines(py) == report_lines(c) and len(report_lines(c)) >= 4
    # resume: 3 more steps on each side
    run_c("siamese-train", *COMMON, *extra, "--iterations", "9", "--out", "c", "--resume",
          "--no-figures", cwd=tmp_path)
    run_py("train", *COMMON, *extra, "--iterations", "9", "--out", "p", "--resume", cwd=tmp_path)
    assert (tmp_path / "p" / "model.safetensors").read_bytes() == \
        (tmp_path / "c" / "model.safetensors").read_bytes()


@needs_examples
def test_cli_eval_and_compare_match(tmp_path, trained, png_tree, runs_tree):
    _, model = trained
    args = [model, "--data", png_tree, "--eval-batches", "1", "--eval-pairs", "30",
            "--oneshot-runs", runs_tree, "--episodes", "4", "--way", "5", "--threshold", "0.25"]
    c = run_c("siamese-eval", *args, cwd=tmp_path)
    py = run_py("eval", *args, cwd=tmp_path)
    assert report_lines(py) == report_lines(c)
    assert any(ln.startswith("(ii)") for ln in report_lines(c))
    write_png(tmp_path / "a.png", glyph(30, 2, 0))
    write_png(tmp_path / "b.png", glyph(20, 2, 1))
    assert run_py("compare", model, tmp_path / "a.png", tmp_path / "b.png", cwd=tmp_path) == \
        run_c("siamese-compare", model, tmp_path / "a.png", tmp_path / "b.png", cwd=tmp_path)


def test_cli_errors(tmp_path):
    err = run_py("compare", tmp_path / "none.safetensors", "a.png", "b.png", cwd=tmp_path, rc=1)
    assert "SM_ERR_IO" in err and "none.safetensors" in err
    assert "usage" in run_py("frobnicate", cwd=tmp_path, rc=2)
    assert "usage" in run_py("train", "--pk", "1,1", cwd=tmp_path, rc=2)
    assert run_py("--help", cwd=tmp_path).startswith("usage")


def _import(env_extra, cwd, code="import siamese; print(siamese.library_path())",
            pythonpath=None):
    e = env()
    e.pop("SIAMESE_LIBRARY", None)
    e.update(env_extra)
    if pythonpath is not None:
        e["PYTHONPATH"] = pythonpath
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=e, capture_output=True,
                          text=True, timeout=60)


def test_finding_the_library(tmp_path):
    lib = siamese.library_path()
    p = _import({"SIAMESE_LIBRARY": str(tmp_path / "nope.so.0")}, tmp_path)
    assert p.returncode != 0 and "SIAMESE_LIBRARY" in p.stderr and "nope.so.0" in p.stderr
    # a relative SIAMESE_LIBRARY, then another working folder: modules still found beside it
    rel = os.path.relpath(lib, os.path.dirname(lib) + "/..")
    code = ("import os, siamese; os.chdir('/'); print(siamese.library_path()); "
            "print(siamese.Backend('auto').name)")
    p = _import({"SIAMESE_LIBRARY": rel}, os.path.dirname(lib) + "/..", code)
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines()[0] == os.path.abspath(lib)
    if os.environ.get("SIAMESE_TEST_DNNL") == "1":
        assert p.stdout.splitlines()[1] == "cpu-dnnl"
    # an installed copy: _build_config.py names the libdir and soname, no variable needed
    pkg = tmp_path / "site" / "siamese"
    shutil.copytree(os.path.dirname(siamese.__file__), pkg,
                    ignore=shutil.ignore_patterns("__pycache__", "_build_config.py*"))
    (pkg / "_build_config.py").write_text(
        f'SONAME = "{os.path.basename(lib)}"\nLIBDIR = "{os.path.dirname(lib)}"\n'
        f"ABI_MAJOR = {siamese.abi_version()}\nVERSION = \"{siamese.version()}\"\n")
    p = _import({}, tmp_path, pythonpath=str(tmp_path / "site"))
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == lib
    (pkg / "_build_config.py").write_text(
        f'SONAME = "{os.path.basename(lib)}"\nLIBDIR = "{os.path.dirname(lib)}"\n'
        f"ABI_MAJOR = 99\nVERSION = \"x\"\n")
    p = _import({}, tmp_path, pythonpath=str(tmp_path / "site"))
    assert p.returncode != 0 and "ABI 99" in p.stderr


@pytest.mark.skipif(os.path.abspath(BUILD) != os.path.join(os.path.abspath(SOURCE), "build"),
                    reason="the build folder is not the checkout's build/")
def test_source_checkout_finds_build_folder(tmp_path):
    p = _import({}, tmp_path, pythonpath=os.path.join(SOURCE, "python"))
    assert p.returncode == 0, p.stderr
    assert os.path.dirname(p.stdout.strip()) == os.path.join(os.path.abspath(SOURCE), "build",
                                                             "lib")


def test_train_laptop_example_runs(tmp_path):
    """examples/python/train_laptop.py, for a second on a small synthetic set."""
    script = os.path.join(SOURCE, "examples", "python", "train_laptop.py")
    p = subprocess.run([sys.executable, script, "--minutes", "0.01", "--synthetic-classes", "20",
                        "--synthetic-images", "4", "--eval-pairs", "40", "--no-plot", "--out",
                        str(tmp_path / "o")], env=env(), cwd=tmp_path, capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert re.search(r"\] step \d+  loss [0-9.]+", p.stdout)
    assert "verification on held-out classes" in p.stdout
    assert (tmp_path / "o" / "model.safetensors").exists()
