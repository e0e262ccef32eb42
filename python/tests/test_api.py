# SPDX-License-Identifier: MIT
"""Every call of the package, on tiny shapes: library, backends, architectures, data, images,
models, calibration."""
import math
import os
import re

import numpy as np
import pytest

import siamese
from siamese import _lib
from conftest import SOURCE, TINY, glyph, write_png


def test_every_exported_call_is_bound_and_used():
    """Each sm_* of lib/libsiamese.map has a prototype (or is listed as not bound), and the
    package calls each prototype somewhere."""
    mapfile = open(os.path.join(SOURCE, "lib", "libsiamese.map")).read()
    exported = set(re.findall(r"^\s*(sm_[A-Za-z0-9_]+);", mapfile, re.M))
    bound = {n for t in _lib.TABLES.values() for n in t}
    assert exported - bound - _lib.NOT_BOUND == set()
    pkg = os.path.dirname(siamese.__file__)
    code = "".join(open(os.path.join(pkg, f)).read() for f in os.listdir(pkg)
                   if f.endswith(".py") and f != "_lib.py")
    unused = {n for n in bound if n not in code}
    assert unused == set()


def test_versions_and_statuses():
    assert re.fullmatch(r"\d+\.\d+\.\d+", siamese.version())
    major, minor, patch = (int(v) for v in siamese.version().split("."))
    assert siamese.version_number() == major * 10000 + minor * 100 + patch
    assert siamese.abi_version() == 0
    assert siamese.__version__ == siamese.version()
    assert siamese.status_name(3) == "SM_ERR_IO"
    assert siamese.status_str(0)
    assert os.path.basename(siamese.library_path()).startswith("libsiamese.so")
    assert not isinstance(_lib.lib, __import__("ctypes").PyDLL)  # CDLL: releases the GIL


def test_limits():
    old = siamese.get_limit("image_side")
    try:
        siamese.set_limit("image_side", 8)
        assert siamese.get_limit("image_side") == 8
    finally:
        siamese.set_limit("image_side", old)
    with pytest.raises(siamese.InvalidArgumentError, match="SM_ERR_INVALID_ARG"):
        siamese.set_limit("image_side", 0)
    with pytest.raises(siamese.InvalidArgumentError):
        siamese.get_limit("nope")


def test_log_callback(tmp_path, model):
    got = []
    siamese.set_log_callback(lambda level, msg: got.append((level, msg)), "debug")
    try:
        model.save(tmp_path / "m.safetensors")  # may or may not log: only the plumbing counts
        siamese.set_log_callback(lambda level, msg: 1 / 0, "debug")  # a raising callback
        model.save(tmp_path / "m.safetensors")
    finally:
        siamese.log_to_logging("warn")
    assert all(level in ("debug", "info", "warn", "error") for level, _ in got)
    siamese.set_log_callback(None)
    siamese.log_to_logging("warn")


def test_backend(backend):
    assert backend.name == "cpu-blas"
    assert backend.kind == "cpu"
    assert backend.threads == 1
    assert backend.fallback_reason == ""
    assert backend.get_option("conv_algo") == "direct"  # cpu-blas reads back DIRECT
    assert backend.get_option("precision") == "fp32"
    assert backend.get_option("tf32") == 0
    backend.set_option("conv_algo", "auto")
    with pytest.raises(siamese.UnsupportedError, match="SM_ERR_UNSUPPORTED"):
        backend.set_option("precision", "bf16")
    with pytest.raises(siamese.InvalidArgumentError):
        backend.set_option("precision", "fp8")
    assert siamese.probe_backend("cpu") == (True, "")
    assert siamese.backend.kind_name(3) == "cpu-dnnl"
    with pytest.raises(siamese.InvalidArgumentError):
        siamese.Backend("tpu")
    with siamese.Backend("auto") as be:
        assert be.name in ("cpu-blas", "cpu-dnnl", "cuda")
        assert be.kind != "auto"
        be.threads = 2
        assert be.threads == 2
        assert "Backend" in repr(be)
    assert "closed" in repr(be)


@pytest.mark.skipif(os.environ.get("SIAMESE_TEST_DNNL") != "1", reason="cpu-dnnl not built")
def test_dnnl_module_found_beside_the_library():
    """No SIAMESE_BACKEND_DIR: the library finds build/lib/libsiamese/ from its own path."""
    assert "SIAMESE_BACKEND_DIR" not in os.environ
    with siamese.Backend("cpu-dnnl") as be:
        assert be.name == "cpu-dnnl"


def test_arch():
    a = siamese.Arch(TINY)
    assert str(a) == TINY
    assert len(a) == 5
    assert a.layers[0] == ("conv", 4, 3)
    assert a.input_shape == (1, 16, 16)
    assert a.output_size == 8
    assert a.num_params == 4 * 9 + 4 + 4 * 7 * 7 * 8 + 8
    b = siamese.Arch.empty(1, 16, 16).add_conv(4, 3).add_groupnorm(2).add_relu() \
        .add_maxpool(2).add_flatten().add_fc(8)
    assert str(b) == "1x16x16:conv4k3,gn2,relu,pool2,flatten,fc8"
    assert siamese.Arch.koch().num_params > 27_000_000
    assert str(siamese.Arch.laptop()) == str(siamese.Arch("laptop"))
    long = "1x64x64:" + ",".join(["conv2k1"] * 60) + ",flatten,fc4"
    assert str(siamese.Arch(long)) == long  # longer than the first buffer
    with pytest.raises(siamese.ShapeError, match="SM_ERR_SHAPE"):
        siamese.Arch.empty(1, 4, 4).add_conv(2, 9)
    with pytest.raises(siamese.InvalidArgumentError, match="nonsense"):
        siamese.Arch("1x16x16:nonsense")


def test_dataset(dataset, png_tree):
    assert len(dataset) == 80 and dataset.num_images == 80
    assert dataset.num_classes == 20 and dataset.num_alphabets == 2
    assert dataset.image_size == (16, 16)
    img = dataset[0]
    assert img.shape == (16, 16) and img.dtype == np.float32
    assert np.array_equal(dataset[-1], dataset.image(79))
    assert np.array_equal(dataset.images([0, 79]), np.stack([dataset[0], dataset[79]]))
    assert dataset.image_class(5) == 1
    assert list(dataset.labels[:8]) == [0, 0, 0, 0, 1, 1, 1, 1]
    assert dataset.class_name(0) == "synth00/char000"
    assert dataset.alphabet_names == ["synth00", "synth01"]
    assert dataset.image_source(0) == ""
    with pytest.raises(IndexError):
        dataset[80]
    with pytest.raises(IndexError):
        dataset.class_name(20)
    train, val = dataset.split_alphabets(1, seed=3)
    assert train.num_alphabets == 1 and val.num_alphabets == 1
    assert len(train) + len(val) == 80

    ds = siamese.Dataset.open(png_tree, 16, 16)
    assert ds.num_alphabets == 2 and ds.num_classes == 12 and len(ds) == 36
    assert ds.image_source(0).endswith(os.path.join("Alpha0", "character01", "0.png"))
    ds = siamese.Dataset.open(png_tree, 16, 16, alphabets=["Alpha1"])
    assert ds.alphabet_names == ["Alpha1"]
    ds = siamese.Dataset.open(str(png_tree), 8, 8, resize=True, exclude=["Alpha0"])
    assert ds.image_size == (8, 8) and ds.alphabet_names == ["Alpha1"]
    with pytest.raises(TypeError):
        siamese.Dataset()

    mem = siamese.Dataset.create(16, 16)
    mem.add_image("A/x", dataset[0])
    mem.add_image("A/y", (dataset[4] * 255).round().astype(np.uint8))
    assert len(mem) == 2 and mem.class_names == ["A/x", "A/y"]
    assert np.array_equal(mem[1], dataset[4])  # 8-bit, then / 255 again: the same floats
    with pytest.raises(siamese.InvalidArgumentError):
        mem.add_image("A/z", np.full((16, 16), np.nan, np.float32))


def test_sampler(dataset):
    s = siamese.Sampler(dataset, seed=4)
    p = s.next(10)
    assert p.left.shape == (10, 16, 16) and p.labels.shape == (10,)
    assert set(np.unique(p.labels)) <= {0.0, 1.0}
    for i in range(10):
        assert np.array_equal(p.left[i], dataset[p.left_index[i]])
        same = dataset.image_class(p.left_index[i]) == dataset.image_class(p.right_index[i])
        assert same == (p.labels[i] == 1)
    again = siamese.Sampler(dataset, seed=4).next(10)
    assert np.array_equal(again.left, p.left)


def test_images(tmp_path):
    g = glyph(20, 3, 0)
    write_png(tmp_path / "g.png", g)
    rgba = np.zeros((12, 30, 4), np.uint8)
    rgba[..., 3] = 0  # transparent: white after the grey rule
    write_png(tmp_path / "c.png", rgba)
    exact = siamese.read_png(tmp_path / "g.png", 20, 20)
    assert np.array_equal(exact, np.divide(g, np.float32(255), dtype=np.float32))
    fitted = siamese.load_png(tmp_path / "g.png", 16, 16)
    assert fitted.shape == (16, 16)
    assert np.array_equal(fitted, siamese.resize(exact, 16, 16))
    assert np.all(siamese.load_png(tmp_path / "c.png", 16, 16) == 1.0)
    both = siamese.load_pngs([tmp_path / "g.png", tmp_path / "c.png"], 16, 16)
    assert both.shape == (2, 16, 16) and np.array_equal(both[0], fitted)
    with pytest.raises(siamese.ShapeError):
        siamese.read_png(tmp_path / "g.png", 16, 16)
    assert np.array_equal(siamese.distort(exact, seed=1, parts=0), exact)
    d1 = siamese.distort(exact, seed=1)
    assert not np.array_equal(d1, exact)
    assert np.array_equal(d1, siamese.distort(exact, seed=1, parts=["rotate", "shear",
                                                                    "scale", "shift"]))
    with pytest.raises(siamese.InvalidArgumentError):
        siamese.distort(exact, seed=1, parts="spin")


def test_model_predict_and_embed(model, dataset):
    x = dataset.images(range(8))
    y = dataset.images(range(8, 16))
    s = model.predict_pairs(x, y)
    assert s.shape == (8,) and s.dtype == np.float32
    assert np.all((s >= 0) & (s <= 1))
    # layouts: (N, 1, H, W), uint8, float64, non-contiguous: the same scores
    assert np.array_equal(model.predict_pairs(x[:, None], y[:, None]), s)
    u8x = np.round(x * 255).astype(np.uint8)
    u8y = np.round(y * 255).astype(np.uint8)
    assert np.array_equal(model.predict_pairs(u8x, u8y), s)  # the dataset's 8-bit pixels
    assert np.array_equal(model.predict_pairs(x.astype(np.float64), y), s)
    assert np.array_equal(model.predict_pairs(np.concatenate([x, y], 2)[:, :, :16], y), s)
    assert model.predict_pair(x[3], y[3]) == pytest.approx(float(s[3]), abs=0)
    out = np.empty(8, np.float32)
    assert model.predict_pairs(x, y, out=out) is out
    z = model.logits(x, y)
    assert np.allclose(1 / (1 + np.exp(-z.astype(np.float64))), s, atol=1e-6)
    f = model.embed(x)
    assert f.shape == (8, model.feature_dim) and np.all((f > 0) & (f < 1))
    assert model.predict_pairs(x[:0], y[:0]).shape == (0,)
    with pytest.raises(siamese.ShapeError):
        model.predict_pairs(x[:, :8], y[:, :8])
    with pytest.raises(siamese.InvalidArgumentError):
        model.predict_pairs(x, y[:3])
    with pytest.raises(siamese.InvalidArgumentError):
        model.predict_pairs(x, y, out=np.empty(3, np.float32))


def test_model_properties_save_load(model, backend, dataset, tmp_path):
    assert model.input_shape == (1, 16, 16)
    assert str(model.arch) == TINY
    assert model.num_params == siamese.Arch(TINY).num_params
    assert model.feature_dim == 8 and model.head.feature_dim == 8
    assert not model.calibration.calibrated
    path = tmp_path / "m.safetensors"
    model.save(path)
    x = dataset.images(range(4))
    with siamese.Model.load(backend, path) as again:
        assert np.array_equal(again.predict_pairs(x, x[::-1]), model.predict_pairs(x, x[::-1]))
    # He initialisation and seeds
    he = siamese.Model.create(backend, TINY, seed=7, init="he")
    assert not np.array_equal(he.embed(x), model.embed(x))
    other = siamese.Model.create(backend, TINY, seed=7, head_seed=99)
    assert np.array_equal(other.embed(x), model.embed(x))
    with pytest.raises(siamese.InvalidArgumentError):
        model.subnet.init("xavier")
    imgs = model.load_images([])
    assert imgs.shape == (0, 16, 16)


def test_calibration(model, dataset):
    x = dataset.images(range(8))
    z = model.logits(x, x[::-1])
    model.calibrate(2.0, -0.5, 100)
    cal = model.calibration
    assert cal == siamese.Calibration(True, 2.0, -0.5, 100)
    z2 = model.logits(x, x[::-1])
    assert np.allclose(z2, 2 * z - 0.5, atol=1e-5)
    with pytest.raises(siamese.InvalidArgumentError):
        model.calibrate(-1.0, 0.0)
    logits = np.array([-3, -2, -1, 0.5, 1, 2, 3, -0.5], np.float32)
    labels = np.array([0, 0, 0, 1, 1, 1, 1, 0], np.float32)
    scale, shift = siamese.calibrate_fit(logits, labels)
    assert scale > 0 and math.isfinite(shift)
    with pytest.raises(siamese.InvalidArgumentError, match="SM_ERR_INVALID_ARG"):
        siamese.calibrate_fit(logits, np.zeros(8, np.float32))
